"""Differential tests: emulator vs Lava 0.10 ``Loihi2SimCfg(select_tag="fixed_pt")``, zero mismatches.

Every recorded variable (spikes, u, v, trace registers, weights, tag_1, tag_2) is compared at every
step; a failure names the first ``(step, node, variable, trial, index, emulator, lava)``.  To keep
the suite fast, independent sub-circuits are packed into one Program, so Lava starts once per test
(the Lava backend runs each connected component as its own network; learning rng seeds follow the
Program order of the plastic connections, on both sides).
"""

from __future__ import annotations

import numpy as np
import pytest
from emulator_cases import (
    EPOCHS,
    MAX_DELAYS,
    CaseBook,
    assert_identical,
    learning,
    learning_cases,
    lif_dense_cases,
    rules,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from neuro_hw.emulator import run_program_emulator
from neuro_hw.targets.loihi2 import lava_backend

pytestmark = pytest.mark.lava
STEPS = 200


def run_both(book: CaseBook, steps: int = STEPS, seed=0, data=None):
    prog = book.program()
    data = book.data if data is None else data
    emu = run_program_emulator(prog, data, steps, seed=seed)
    lava = lava_backend.run_program_lava(prog, data, steps, seed=seed)
    return emu, lava


def test_lif_dense_cases_match_lava():
    emu, lava = run_both(lif_dense_cases(STEPS, seed=1))
    assert_identical(emu, lava, "LIF/Dense/DelayDense cases")
    # the edge cases were really exercised
    u = lava.states["p_ovf_pos.u"].astype(np.int64)
    assert (u > 2**23).any()  # the single conditional wrap leaves |u| above 24 bits ...
    assert (np.diff(u, axis=1) < 0).any()  # ... until int32 wraps around
    assert (lava.states["p_ovf_neg.u"] > 0).any()
    assert (lava.states["p_bias.v"] == -(2**23 - 1)).any() or (lava.states["p_bias.v"] == 2**23 - 1).any()
    for pop in ("p_mixed", "p_exc", "p_inh", "p_wexp", "p_wexp_pos", "p_graded", "p_delay", "p_chain2"):
        assert lava.spikes[pop].any(), pop
    assert (emu.weights["mixed.w"] % 2 == 0).all()  # MIXED drops the weight LSB


def test_learning_cases_match_lava():
    emu, lava = run_both(learning_cases(STEPS, seed=2), seed=5)
    assert_identical(emu, lava, "2-factor and 3-factor learning cases")
    for conn in ("stdp1", "stdp4", "multi", "tags", "inhib", "three"):
        w = lava.weights[f"{conn}.w"]
        assert not np.array_equal(w[:, 1], w[:, -1]), f"{conn}: weights did not learn"
    assert np.abs(lava.weights["tags.t"]).sum() > 0 and np.abs(lava.weights["tags.d"]).sum() > 0
    assert (lava.weights["multi.w"] < 0).any()  # mixed signs, sgn(w - 10) and w factors in use
    assert (lava.weights["inhib.w"] <= 0).all()
    assert (lava.states["three.y1"] > 0).any()  # the reward overwrites y1
    # t_epoch 4: some x1 registers grew inside an epoch (multi-spike impulse in the spiking phase)
    x1 = lava.states["stdp4.x1"][0].astype(int)
    inside = np.array([t % 4 != 0 for t in range(2, STEPS + 1)])
    assert (np.diff(x1, axis=0)[inside] > 0).any()


def test_batched_trials_match_lava():
    book = learning_cases(STEPS, seed=3)
    # keep two sub-circuits (a 2-factor and the 3-factor one) to bound Lava's run time
    keep = {"stdp4", "three"}
    book.conns = [c for c in book.conns if c.name in keep]
    used = {c.source for c in book.conns} | {c.target for c in book.conns} | {"reward"}
    book.neurons = [p for p in book.neurons if p.name in used]
    book.inputs = [i for i in book.inputs if i.name in used]
    rng = np.random.default_rng(8)
    data = {k: np.stack([v, v[rng.permutation(len(v))]]) for k, v in book.data.items() if k in used}
    emu, lava = run_both(book, seed=[4, 11], data=data)
    assert emu.batch == lava.batch == 2
    assert_identical(emu, lava, "batch of 2 trials")


# ---------------------------------------------------------------------------------------------------
# randomised circuits
# ---------------------------------------------------------------------------------------------------
@st.composite
def circuits(draw) -> tuple[CaseBook, int]:
    steps = STEPS
    b = CaseBook(steps, draw(st.integers(0, 2**16)))
    r = b.rng
    n_in = draw(st.integers(1, 12))
    n0 = draw(st.integers(1, 10))
    rate = draw(st.floats(0.02, 0.5))
    b.spikes("i0", n_in, rate)
    lif_kw = dict(
        du=draw(st.integers(0, 4095)),
        dv=draw(st.integers(0, 4095)),
        vth=draw(st.integers(1, 3000)),
        bias_mant=r.integers(-200, 200, n0),
        bias_exp=draw(st.integers(-3, 5)),
        u_init=r.integers(-2000, 2000, n0),
        v_init=r.integers(-2000, 2000, n0),
    )
    b.pop("p0", n0, **lif_kw)
    sign = draw(st.sampled_from(["mixed", "excitatory", "inhibitory"]))
    lo, hi = {"mixed": (-300, 300), "excitatory": (0, 300), "inhibitory": (-300, 0)}[sign]
    # delays 0..d, d up to 63 (Lava's limit)
    delays = r.integers(0, draw(st.integers(0, 5) | MAX_DELAYS) + 1, (n0, n_in)) if draw(st.booleans()) else None
    b.conn(
        "c0",
        "i0",
        "p0",
        r.integers(lo, hi + 1, (n0, n_in)),
        sign_mode=sign,
        weight_exp=draw(st.integers(-4, 3)),
        num_weight_bits=draw(st.integers(2, 8)),
        delays=delays,
    )
    if draw(st.booleans()):
        b.graded("g0", n_in, rate, 255)
        b.conn(
            "cg", "g0", "p0", r.integers(-60, 60, (n0, n_in)), num_message_bits=8, weight_exp=draw(st.integers(-4, 0))
        )
    target = "p0"
    if draw(st.booleans()):
        n1 = draw(st.integers(1, 8))
        b.pop("p1", n1, du=draw(st.integers(0, 4095)), dv=draw(st.integers(0, 4095)), vth=draw(st.integers(1, 500)))
        b.conn("c1", "p0", "p1", r.integers(-128, 128, (n1, n0)), weight_exp=draw(st.integers(-2, 2)))
        target = "p1"
    k = draw(st.integers(0, 2))
    rule_set = {tgt: draw(rules(k)) for tgt in draw(st.sets(st.sampled_from(["dw", "dt", "dd"]), min_size=1))}
    three = draw(st.booleans())
    quarter = st.integers(0, 100).map(lambda q: q / 4)
    imp = {t: draw(quarter) for t in ("x1", "x2")}
    tau = {t: draw(st.integers(0, 20)) for t in ("x1", "x2", "y1", "y2", "y3")}
    n_t = next(p.n for p in b.neurons if p.name == target)
    third = {}
    if three:
        b.graded("r0", n_t, 0.2, draw(st.sampled_from([1, 127, 255])))
        third = {"y1": "r0", "y2": target}
    else:
        imp.update({t: draw(quarter) for t in ("y1", "y2", "y3")})
    # pre side: the spike input, a graded input (graded spiking path), a population (same-step spikes), or the
    # target itself (a recurrent plastic connection: pre and post spikes of the same neurons)
    sources = ["i0"] + (["g0"] if "g0" in b.data else []) + (["p0"] if target == "p1" else []) + [target]
    source = draw(st.sampled_from(sources))
    n_s = {"i0": n_in, "g0": n_in, "p0": n0}.get(source, n_t)
    p_sign = draw(st.sampled_from(["mixed", "excitatory", "inhibitory"]))
    # initial weights may lie outside the sign-mode range: LearningDense does not clip them
    wide = draw(st.booleans())
    lo, hi = (-400, 400) if wide else {"mixed": (-120, 120), "excitatory": (0, 120), "inhibitory": (-120, 0)}[p_sign]
    b.conn(
        "L",
        source,
        target,
        r.integers(lo, hi + 1, (n_t, n_s)),
        sign_mode=p_sign,
        weight_exp=draw(st.integers(-2, 1)),
        num_message_bits=8 if source == "g0" else 0,
        learning=learning(rule_set, imp, tau, t_epoch=draw(st.integers(1, 4) | EPOCHS), third_factor=third),
    )
    return b, draw(st.integers(0, 1000))


def _check_random_circuit(case):
    book, seed = case
    emu, lava = run_both(book, seed=seed)
    assert_identical(emu, lava, f"random circuit (seed {seed}, rules {book.conns[-1].learning.rules})")


@settings(max_examples=3, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(circuits())
def test_random_circuits_match_lava(case):
    _check_random_circuit(case)


@pytest.mark.slow
@settings(max_examples=40, deadline=None, derandomize=False, suppress_health_check=list(HealthCheck))
@given(circuits())
def test_random_circuits_match_lava_exhaustive(case):
    _check_random_circuit(case)


def test_initial_learning_weights_beyond_int16_match_lava():
    # LearningDense does not clip its initial weights: values outside int16 keep the emulator's int32
    # storage (the usual 9-bit weights are held in int16); the first epoch clips them to the sign-mode range
    book = CaseBook(60, seed=3)
    book.spikes("in", 3, 0.3)
    book.pop("p", 2, vth=2**20)
    w0 = np.array([[40000, -40000, 300], [70000, 5, -(2**20)]])
    book.conn("wide", "in", "p", w0, learning=learning({"dw": "2^-2*x1*y0 - 2^-3*y1*x0"}, {"x1": 20.0, "y1": 20.0}))
    emu, lava = run_both(book, steps=60, seed=2)
    assert_identical(emu, lava, "initial weights beyond int16")
    assert emu.weights["wide.w"][0, 0].tolist() == [[40000, -40000, 300], [70000, 4, -(2**20)]]  # LSB truncation
    assert np.abs(emu.weights["wide.w"][0, -1]).max() <= 256  # clipped by the first learning epoch
