"""Differential test: convolution connections on the emulator vs Lava 0.10 fixed_pt, zero mismatches, batch of 2.

The connections Lava runs as ``lava.proc.conv`` ``Conv`` processes (kernel flipped and transposed, virtual
reshape/transpose ports, exponent folded into the kernel) and those it runs as Dense / DelayDense with the
unrolled matrix (negative exponent, delay, asymmetric padding) are packed into one Program, so Lava starts once.
"""

from __future__ import annotations

import numpy as np
import pytest
from conv_cases import ConvBook, Geometry
from emulator_cases import assert_identical

from neuro_hw.compiler.conv_weights import kernel_from_lava, lava_conv_reason, lava_kernel
from neuro_hw.emulator import run_program_emulator
from neuro_hw.ir.conv import ConvGeometry
from neuro_hw.targets.loihi2 import lava_backend

STEPS = 30


def _book() -> tuple[ConvBook, dict[str, str | None]]:
    """The cases and the lowering each must get (None: Lava's Conv; else a word of the Dense reason)."""
    book = ConvBook(STEPS, batch=2, seed=11)
    expect: dict[str, str | None] = {}

    def add(name, g, lowering, **kw):
        book.add(name, g, **kw)
        expect[name] = lowering

    add("pad", Geometry(2, 4, 1, 6, 5, 3, 3, padding=(1, 1)), None, weight_exp=1, rate=0.4)
    add("grp", Geometry(4, 4, 2, 7, 7, 3, 2, stride=(2, 1)), None, sign_mode="excitatory", rate=0.4)
    add("dil", Geometry(2, 2, 1, 7, 6, 2, 3, dilation=(2, 1), padding=(0, 2)), None, graded=3, weight_exp=2)
    add("dw", Geometry(3, 3, 3, 6, 6, 2, 2, stride=(2, 2)), None, via_population=True, sign_mode="excitatory")
    add("c1d", Geometry(2, 3, 1, 1, 9, 1, 3, stride=(1, 2), padding=(0, 1)), None, rate=0.5, vth=30)
    add("neg", Geometry(2, 2, 1, 5, 5, 3, 3), "weight_exp", weight_exp=-2)
    add("late", Geometry(2, 2, 1, 5, 5, 2, 2), "delay", delay=2, rate=0.4)
    book.join()  # one Lava runtime per trial instead of one per case and trial
    return book, expect


def test_lava_kernel_layout_round_trips_and_matches_lava_conv_to_sparse():
    """The flip/transpose into Lava's layout, checked against Lava's own unrolling (``conv_to_sparse``)."""
    utils = pytest.importorskip("lava.proc.conv.utils")
    rng = np.random.default_rng(3)
    k = rng.integers(-9, 10, (4, 1, 3, 2))
    g = ConvGeometry((2, 6, 5), (4, 3, 5), k, (2, 1), (1, 1), (1, 2), 2)
    np.testing.assert_array_equal(kernel_from_lava(lava_kernel(k)), k)
    dst, src, w = utils.conv_to_sparse((5, 6, 2), (5, 3, 4), lava_kernel(k), (1, 2), (1, 1), (2, 1), 2)
    lava = np.zeros((g.n_out, g.n_in))

    def flat(i, shape):  # Lava's (x, y, c) index -> our C-ordered (c, h, w) index
        x, rest = divmod(i, shape[1] * shape[2])
        y, c = divmod(rest, shape[2])
        return (c * shape[1] + y) * shape[0] + x

    np.add.at(lava, (flat(dst, (5, 3, 4)), flat(src, (5, 6, 2))), w)
    np.testing.assert_array_equal(lava, g.dense(np.int64))


@pytest.mark.lava
def test_convolutions_match_lava():
    book, expect = _book()
    prog = book.program()
    for name, word in expect.items():
        reason = lava_conv_reason(prog, name)
        assert (reason is None) if word is None else (word in reason), (name, reason)
    emu = run_program_emulator(prog, book.data, STEPS, seed=0)
    lava = lava_backend.run_program_lava(prog, book.data, STEPS, seed=0)
    assert_identical(emu, lava, "convolutions")
    for name in expect:
        assert lava.spikes[f"{name}_post"].any(), name
    assert not np.array_equal(lava.spikes["pad_post"][0], lava.spikes["pad_post"][1])  # the trials differ
    assert lava.states["hub.v"].any()


def test_lava_conv_lowering_is_refused_where_it_would_differ():
    """Asymmetric padding (``padding="same"`` with an even kernel) and sums that could reach 2**23 (Lava's Conv
    clamps to 24 bits, a Dense wraps at 32) go to a Dense."""
    book = ConvBook(5, seed=2)
    book.add("ok", Geometry(1, 2, 1, 6, 6, 3, 3))
    book.add("big", Geometry(1, 2, 1, 6, 6, 3, 3), graded=8, weight_exp=7)  # 9 taps * 256 * 255 << 7 > 2**23
    prog = book.program()
    assert lava_conv_reason(prog, "ok") is None
    assert "2**23" in lava_conv_reason(prog, "big")
    conn = prog.connections["ok"]
    g = conn.conv
    same = ConvGeometry(g.in_shape, (2, 6, 6), np.ones((2, 1, 2, 2), np.int32), (1, 1), (0, 0), (1, 1), 1)
    conn.conv, conn.weights = same, same.dense(np.int32)
    assert "asymmetric padding" in lava_conv_reason(prog, "ok")
