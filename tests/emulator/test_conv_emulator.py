"""The emulator's convolution kernel (:mod:`neuro_hw.emulator.conv`) sends what the unrolled Dense matrix sends.

Lava runs a convolution connection as a Dense (or DelayDense) with the unrolled matrix, and the emulator's Dense
path equals Lava bit for bit (``test_emulator_vs_lava.py``); so a convolution run on its kernel must equal the same
Program run on its matrix, in every recorded value.  Geometries, sign modes, exponents, graded payloads, delays and
batches are drawn by hypothesis (small sizes; one kernel compile per structure).
"""

from __future__ import annotations

import numpy as np
import pytest
from conv_cases import ConvBook, Geometry, geometries, without_conv
from emulator_cases import assert_identical
from hypothesis import given, settings
from hypothesis import strategies as st

from neuro_hw.compiler.checks import check_program
from neuro_hw.emulator import run_program_emulator
from neuro_hw.errors import ValidationError

STEPS = 25


def run_both(book: ConvBook, steps: int = STEPS):
    prog = book.program()
    kernel = run_program_emulator(prog, book.data, steps, seed=0)
    dense = run_program_emulator(without_conv(prog), book.data, steps, seed=0)
    return kernel, dense


@settings(max_examples=30)
@given(
    g=geometries(),
    sign_mode=st.sampled_from(["mixed", "excitatory", "inhibitory"]),
    weight_exp=st.integers(-3, 3),
    graded=st.sampled_from([0, 0, 3]),
    delay=st.sampled_from([None, None, 1, 3]),
    seed=st.integers(0, 2**16),
)
def test_kernel_equals_unrolled_matrix(g, sign_mode, weight_exp, graded, delay, seed):
    book = ConvBook(STEPS, batch=2, seed=seed)
    book.add("c", g, sign_mode=sign_mode, weight_exp=weight_exp, graded=graded, delay=delay)
    kernel, dense = run_both(book)
    assert_identical(kernel, dense, f"{g} {sign_mode} exp={weight_exp} graded={graded} delay={delay}")


@pytest.mark.slow  # compiles its own emulator kernel (minutes on a busy 2-core machine): outside make test's budget
def test_kernel_equals_matrix_from_a_population_with_activity():
    """A convolution reading a LIF population's spikes (several cases in one Program, batch of 3)."""
    book = ConvBook(60, batch=3, seed=4)
    posts = [
        book.add("pop_a", Geometry(2, 4, 1, 6, 5, 3, 3, padding=(1, 1)), via_population=True),
        book.add("pop_b", Geometry(4, 4, 4, 6, 6, 2, 2, stride=(2, 2)), via_population=True, sign_mode="excitatory"),
        book.add(
            "pop_c",
            Geometry(2, 2, 2, 7, 7, 3, 2, dilation=(2, 1)),
            via_population=True,
            delay=2,
            sign_mode="excitatory",
        ),
    ]
    kernel, dense = run_both(book, 60)
    assert_identical(kernel, dense, "population sources")
    for post in posts:
        assert kernel.spikes[post].any(), post
    assert not np.array_equal(kernel.spikes[posts[0]][0], kernel.spikes[posts[0]][1])  # trials differ


def test_check_program_refuses_a_kernel_that_is_not_the_matrix():
    book = ConvBook(5, seed=1)
    book.add("c", Geometry(1, 1, 1, 4, 4, 2, 2))
    prog = book.program()
    conn = prog.connections["c"]
    conn.weights = conn.weights.copy()
    conn.weights[0, 0] += 2
    with pytest.raises(ValidationError, match="node 'c', field 'conv': the weights are not the unrolled"):
        check_program(prog)
