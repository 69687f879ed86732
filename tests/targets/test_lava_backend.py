"""Tests of the Lava backend (``neuro_hw.targets.loihi2.lava_backend``) against hand-computed values.

Every test runs real Lava 0.10 (Loihi2SimCfg) in a worker process group; after every test no child
process of the test process may be left.  Expected numbers follow ``docs/lava-semantics.md``.
"""

from __future__ import annotations

import numpy as np
import pytest

from neuro_hw.compiler.program import (
    ConnectionProgram,
    InputProgram,
    LearningProgram,
    NeuronProgram,
    Program,
    learning_rng_seed,
)
from neuro_hw.errors import InputError
from neuro_hw.targets.loihi2.lava_backend import (
    LavaRunError,
    run_program_lava,
)
from neuro_hw.targets.loihi2.process_guard import child_pids, group_members

pytest.importorskip("lava")


@pytest.fixture(autouse=True)
def no_leftover_processes():
    """Every test must leave no child processes behind (the worker and Lava's workers are killed)."""
    assert child_pids() == []
    yield
    assert child_pids() == []


def lif(name, n, *, du=0, dv=0, vth=10, bias_mant=0, bias_exp=0, u=0, v=0, **kw):
    return NeuronProgram(
        name, n, du=du, dv=dv, vth=vth, bias_mant=bias_mant, bias_exp=bias_exp, u_init=u, v_init=v, **kw
    )


def program(inputs=(), neurons=(), connections=()):
    return Program(
        target="loihi2",
        dt=1.0,
        inputs={i.name: i for i in inputs},
        neurons={p.name: p for p in neurons},
        connections={c.name: c for c in connections},
        circuit_hash="abc123",
    )


# ---------------------------------------------------------------------------------------------------
# 1. LIF with bias only
# ---------------------------------------------------------------------------------------------------
def _lif_by_hand(steps, du, dv, vth, bias, u0, v0):
    """Fixed-point LIF of docs/lava-semantics.md §2 for one neuron without input (plain Python ints)."""

    def decay(x, d):
        p = x * (4096 - d)
        return -((-p) >> 12) if p < 0 else p >> 12  # toward zero

    u, v, us, vs, ss = u0, v0, [], [], []
    for _ in range(steps):
        u = decay(u, du + 1)
        v = max(min(decay(v, dv) + u + bias, 2**23 - 1), -(2**23 - 1))
        s = v > vth << 6
        if s:
            v = 0
        us.append(u)
        vs.append(v)
        ss.append(s)
    return np.array(ss), np.array(us), np.array(vs)


def test_lif_bias_only_matches_hand_computed_spike_times():
    steps = 40
    # neuron 0: v_k = 100 k, threshold 10<<6 = 640 -> spikes when v reaches 700: steps 7, 14, 21, ...
    # neuron 1: bias 7<<3 = 56, leaky v (dv=300), decaying initial current u0=5000 (du=2000)
    # neuron 2: negative bias_exp: 200 >> 1 = 100 per step, starts at v0 = 600 -> spikes at step 1 (700)
    pop = lif(
        "p",
        3,
        du=2000,
        dv=0,
        vth=10,
        bias_mant=[100, 7, 200],
        bias_exp=[0, 3, -1],
        u=[0, 5000, 0],
        v=[0, 0, 600],
        shape=(3,),
    )
    # dv is per population in Lava: use a second population for the leaky neuron
    leaky = lif("q", 1, du=2000, dv=300, vth=10, bias_mant=7, bias_exp=3, u=5000, v=0)
    res = run_program_lava(program(neurons=[pop, leaky]), {}, steps)

    assert res.backend == "lava" and res.batch == 1 and res.steps == steps
    assert res.circuit_hash == "abc123" and res.target == "loihi2"
    assert res.spikes["p"].shape == (1, steps, 3) and res.spikes["p"].dtype == bool
    assert res.states["p.v"].dtype == np.int32

    spikes0 = np.flatnonzero(res.spikes["p"][0, :, 0]) + 1
    np.testing.assert_array_equal(spikes0, np.arange(7, steps + 1, 7))
    np.testing.assert_array_equal(res.states["p.v"][0, :6, 0], [100, 200, 300, 400, 500, 600])
    assert res.states["p.v"][0, 6, 0] == 0  # reset after the spike at step 7
    # neuron 2: 600 + 100 = 700 > 640 at step 1, then every 7th step from 0
    np.testing.assert_array_equal(np.flatnonzero(res.spikes["p"][0, :, 2]) + 1, [1, 8, 15, 22, 29, 36])

    for p, i, (du, dv, bias, u0, v0) in [
        ("p", 1, (2000, 0, 56, 5000, 0)),
        ("q", 0, (2000, 300, 56, 5000, 0)),
    ]:
        s, u, v = _lif_by_hand(steps, du, dv, 10, bias, u0, v0)
        np.testing.assert_array_equal(res.spikes[p][0, :, i], s)
        np.testing.assert_array_equal(res.states[f"{p}.u"][0, :, i], u)
        np.testing.assert_array_equal(res.states[f"{p}.v"][0, :, i], v)
        assert s.any()  # the case exercises the threshold


# ---------------------------------------------------------------------------------------------------
# 2. RingBuffer -> Dense -> LIF: latency, MIXED LSB truncation, EXCITATORY clip + truncation
# ---------------------------------------------------------------------------------------------------
def test_input_dense_lif_latency_and_weight_truncation():
    steps = 8
    inp = InputProgram("in", 3)
    # du=4095: u keeps nothing of the past, so u_k = (a_k << 6) exactly; huge vth: no spikes
    out = lif("out", 2, du=4095, dv=4095, vth=100000)
    mixed = ConnectionProgram("mixed", "in", "out", weights=[[3, -3, 67], [0, 0, 0]], sign_mode="mixed")
    exc = ConnectionProgram(
        "exc", "in", "out", weights=[[0, 0, 0], [5, 300, 7]], sign_mode="excitatory", num_weight_bits=6
    )
    # DelayDense: a spike at step t arrives at t + 1 + delay
    late = lif("late", 1, du=4095, dv=4095, vth=100000)
    delayed = ConnectionProgram(
        "delayed", "in", "late", weights=[[10, 20, 0]], delays=[[3, 0, 0]], sign_mode="excitatory"
    )
    x = np.zeros((steps, 3), dtype=np.int8)
    x[0, 0] = 1  # step 1: input 0 only
    x[2, :] = 1  # step 3: all inputs
    x[4, 1] = 1  # step 5: input 1
    res = run_program_lava(program([inp], [out, late], [mixed, exc, delayed]), {"in": x}, steps)

    # effective weights: MIXED drops the LSB with a floor shift (3->2, -3->-4, 67->66);
    # EXCITATORY with 6 weight bits: clip to 255, then drop 2 LSBs (5->4, 300->255->252, 7->4)
    np.testing.assert_array_equal(res.weights["mixed.w"][0, 0], [[2, -4, 66], [0, 0, 0]])
    np.testing.assert_array_equal(res.weights["exc.w"][0, 0], [[0, 0, 0], [4, 252, 4]])
    np.testing.assert_array_equal(res.weight_steps["mixed.w"], [0])
    assert res.weights["mixed.w"].shape == (1, 1, 2, 3)

    u = res.states["out.u"][0]
    expected = np.zeros((steps, 2), dtype=np.int64)
    expected[1] = [2 * 64, 4 * 64]  # input at step 1 arrives at step 2
    expected[3] = [(2 - 4 + 66) * 64, (4 + 252 + 4) * 64]  # step 3 -> step 4
    expected[5] = [-4 * 64, 252 * 64]  # step 5 -> step 6
    np.testing.assert_array_equal(u, expected)
    assert u[0].tolist() == [0, 0]  # nothing arrives in the step of the input itself
    # input 0 (delay 3) at steps 1, 3 -> steps 5, 7; input 1 (delay 0) at steps 3, 5 -> steps 4, 6
    np.testing.assert_array_equal(res.states["late.u"][0, :, 0], [0, 0, 0, 20 * 64, 10 * 64, 20 * 64, 10 * 64, 0])
    np.testing.assert_array_equal(res.weights["delayed.w"][0, 0], [[10, 20, 0]])
    assert not res.spikes["out"].any()


def test_inputs_are_broadcast_and_batched_and_graded_payloads_weighted():
    inp = InputProgram("in", 1)
    graded = InputProgram("g", 1, graded=True, max_payload=7)
    out = lif("out", 1, du=4095, dv=4095, vth=100000)
    conn = ConnectionProgram("c", "in", "out", weights=[[10]], sign_mode="excitatory")
    gconn = ConnectionProgram("gc", "g", "out", weights=[[6]], sign_mode="excitatory", num_message_bits=3)
    x = np.zeros((2, 4, 1), dtype=int)  # batched: B = 2
    x[0, 0, 0] = 1
    x[1, 1, 0] = 1
    g = np.array([[0], [3], [0], [0]])  # (T, n): the same for both trials
    res = run_program_lava(program([inp, graded], [out], [conn, gconn]), {"in": x, "g": g}, 3, seed=[3, 4])
    assert res.batch == 2 and res.metadata["lava"]["seeds"] == [3, 4] and res.seed == 3
    # graded payload 3 sent at step 2 adds 6 * 3 = 18 (<< 6) to u at step 3
    np.testing.assert_array_equal(res.states["out.u"][:, :, 0], [[0, 640, 1152], [0, 0, 640 + 1152]])


# ---------------------------------------------------------------------------------------------------
# 3. LearningDense with pair-based STDP
# ---------------------------------------------------------------------------------------------------
def _stdp_program():
    rng = np.random.default_rng(7)
    inp = InputProgram("pre", 4)
    post = lif("post", 2, du=2000, dv=1000, vth=300)
    learn = LearningProgram(
        rules={"dw": "2^-2*x1*y0 - 2^-2*y1*x0"},
        impulses={"x1": 16.0, "x2": 0.0, "y1": 16.0, "y2": 0.0, "y3": 0.0},
        taus={"x1": 10, "x2": 0, "y1": 10, "y2": 0, "y3": 0},
        t_epoch=1,
    )
    plastic = ConnectionProgram("syn", "pre", "post", weights=rng.integers(40, 120, size=(2, 4)), learning=learn)
    x = (rng.random((2, 60, 4)) < 0.3).astype(np.int8)
    return program([inp], [post], [plastic]), x


def test_stdp_learning_is_seeded_recorded_and_matches_var_get():
    prog, x = _stdp_program()
    steps = 60
    a = run_program_lava(prog, {"pre": x}, steps, seed=[5, 6], read_back=True)
    b = run_program_lava(prog, {"pre": x[:1]}, steps, seed=5)

    w = a.weights["syn.w"]
    assert w.shape == (2, steps + 1, 2, 4)
    np.testing.assert_array_equal(a.weight_steps["syn.w"], np.arange(steps + 1))
    assert a.states["syn.x1"].shape == (2, steps, 4) and a.states["syn.y1"].shape == (2, steps, 2)
    assert a.spikes["post"].any()  # post spikes exist, so both STDP branches can act

    # index 0: the initial weights after Lava's first-step MIXED LSB truncation
    w_init = prog.connections["syn"].weights
    np.testing.assert_array_equal(w[:, 0], np.broadcast_to((w_init >> 1) << 1, (2, 2, 4)))
    assert np.any(w[:, -1] != w[:, 0])  # learning changed the weights
    # the recordings at the last step equal Lava's own Var.get() after the run
    get = {k: np.asarray(v) for k, v in a.metadata["lava_get"].items()}
    np.testing.assert_array_equal(w[:, -1], get["syn.w"])
    np.testing.assert_array_equal(a.weights["syn.t"][:, -1], get["syn.t"])
    for k in ("x1", "x2", "y1", "y2", "y3"):
        np.testing.assert_array_equal(a.states[f"syn.{k}"][:, -1], get[f"syn.{k}"])
    np.testing.assert_array_equal(a.states["post.v"][:, -1], get["post.v"])
    np.testing.assert_array_equal(a.states["post.u"][:, -1], get["post.u"])
    # ... and mid-run: row k is the state after k steps *including* step k's learning phase
    k = 31
    assert np.any(w[:, k] != w[:, k - 1])  # learning acted in step k, so the check can tell
    m = run_program_lava(prog, {"pre": x}, k, seed=[5, 6], read_back=True)
    np.testing.assert_array_equal(np.asarray(m.metadata["lava_get"]["syn.w"]), w[:, k])
    np.testing.assert_array_equal(np.asarray(m.metadata["lava_get"]["syn.x1"]), a.states["syn.x1"][:, k - 1])
    # sparser weight sampling gives the same values at the sampled steps (and always the last one)
    e = run_program_lava(prog, {"pre": x}, steps, seed=[5, 6], weights_every=7)
    sampled = [0, 7, 14, 21, 28, 35, 42, 49, 56, 60]
    np.testing.assert_array_equal(e.weight_steps["syn.w"], sampled)
    np.testing.assert_array_equal(e.weights["syn.w"], w[:, sampled])

    # seeded: trial 0 (seed 5) of the batch is identical to a separate run with seed 5
    assert a.metadata["lava"]["learning_rng_seeds"]["syn"] == [learning_rng_seed(5, 0), learning_rng_seed(6, 0)]
    np.testing.assert_array_equal(b.weights["syn.w"][0], w[0])
    np.testing.assert_array_equal(b.states["syn.x1"][0], a.states["syn.x1"][0])
    np.testing.assert_array_equal(b.spikes["post"][0], a.spikes["post"][0])
    # another seed with the same input changes the stochastic rounding of the traces
    c = run_program_lava(prog, {"pre": x[:1]}, steps, seed=6)
    assert np.any(c.states["syn.x1"][0] != b.states["syn.x1"][0]) or np.any(c.weights["syn.w"] != b.weights["syn.w"])


# ---------------------------------------------------------------------------------------------------
# 4. three-factor rule: third factor from an input on y2
# ---------------------------------------------------------------------------------------------------
def test_three_factor_rule_changes_weights_only_with_third_factor():
    steps = 20
    pre = InputProgram("pre", 2)
    reward = InputProgram("reward", 1, graded=True, max_payload=127)
    post = lif("post", 1, du=4095, dv=4095, vth=100000)
    learn = LearningProgram(rules={"dw": "4*x0*y2"}, t_epoch=1, third_factor={"y2": "reward"})
    syn = ConnectionProgram("syn", "pre", "post", weights=[[20, 40]], learning=learn)
    x = np.ones((steps, 2), dtype=int)  # pre neurons spike every step
    r = np.zeros((steps, 1), dtype=int)
    r[[3, 9, 10], 0] = [5, 2, 7]  # third factor sent at steps 4, 10, 11
    res = run_program_lava(program([pre, reward], [post], [syn]), {"pre": x, "reward": r}, steps, seed=1)

    w = res.weights["syn.w"][0, :, 0, :]  # (T+1, 2)
    changed = np.flatnonzero(np.any(np.diff(w, axis=0) != 0, axis=1)) + 1  # steps with a weight change
    np.testing.assert_array_equal(changed, [4, 10, 11])
    # y2 is overwritten in the same step by the value the input sends
    np.testing.assert_array_equal(res.states["syn.y2"][0, :, 0], r[:, 0])
    assert np.all(np.diff(w, axis=0) >= 0)  # a positive third factor only potentiates
    np.testing.assert_array_equal(w[0], [20, 40])


# ---------------------------------------------------------------------------------------------------
# 5. errors, cleanup
# ---------------------------------------------------------------------------------------------------
def _simple():
    inp = InputProgram("in", 2)
    out = lif("out", 1)
    return program([inp], [out], [ConnectionProgram("c", "in", "out", weights=[[10, 10]])])


@pytest.mark.parametrize(
    "inputs, match",
    [
        ({"in": np.zeros((5, 3))}, "channels"),
        ({"in": np.zeros((2, 5, 2, 1))}, "expected shape"),
        ({"in": np.zeros((3, 2))}, "fewer than steps"),
        ({}, "missing input"),
        ({"in": np.zeros((5, 2)), "other": np.zeros((5, 2))}, "unexpected input"),
        ({"in": np.full((5, 2), 2)}, "only 0 and 1"),
    ],
)
def test_bad_inputs_raise_input_error(inputs, match):
    with pytest.raises(InputError, match=match) as info:
        run_program_lava(_simple(), inputs, 5)
    if match not in ("missing input", "unexpected input"):
        assert "'in'" in str(info.value)


def test_graded_payload_out_of_range_raises_input_error():
    inp = InputProgram("g", 2, graded=True, max_payload=15)
    out = lif("out", 1)
    conn = ConnectionProgram("c", "g", "out", weights=[[1, 1]], num_message_bits=4)
    with pytest.raises(InputError, match="0..15"):
        run_program_lava(program([inp], [out], [conn]), {"g": np.full((5, 2), 16)}, 5)


def test_bad_seed_batch_raises_input_error():
    with pytest.raises(InputError, match="seeds"):
        run_program_lava(_simple(), {"in": np.zeros((2, 5, 2))}, 5, seed=[1, 2, 3])


def test_process_model_exception_surfaces_with_its_message():
    inp = InputProgram("in", 2)
    out = lif("out", 1)
    # Lava's DelayDense model raises in its first run_spk for delays > 63
    conn = ConnectionProgram("c", "in", "out", weights=[[10, 10]], delays=[[1, 64]])
    with pytest.raises(LavaRunError, match="between 0 and 63") as info:
        run_program_lava(program([inp], [out], [conn]), {"in": np.ones((5, 2))}, 5)
    err = info.value
    assert err.model_tracebacks and "ValueError" in err.model_tracebacks[0]
    assert err.worker_pid and group_members(err.worker_pid) == []


def test_timeout_kills_the_whole_process_group():
    inp = InputProgram("in", 2)
    out = lif("out", 2, bias_mant=5)
    conn = ConnectionProgram("c", "in", "out", weights=[[10, 10], [3, 4]])
    x = np.ones((1, 2))
    with pytest.raises(LavaRunError, match="timed out") as info:
        # far more steps than can run in 3 s: the run is killed mid-flight
        run_program_lava(program([inp], [out], [conn]), {"in": np.repeat(x, 10**6, 0)}, 10**6, timeout=3.0)
    assert group_members(info.value.worker_pid) == []


# ---------------------------------------------------------------------------------------------------
# 6. floating_pt
# ---------------------------------------------------------------------------------------------------
def test_floating_pt_runs_and_returns_float_states_in_fixed_units():
    steps = 30
    inp = InputProgram("in", 2)
    # du=4095, dv=0 are exact in float ((du+1)/4096 = 1, dv/4096 = 0); the dyadic values make
    # float and fixed agree exactly in this case
    out = lif("out", 2, du=4095, dv=0, vth=20, bias_mant=[30, 50], bias_exp=[1, 0])
    conn = ConnectionProgram("c", "in", "out", weights=[[8, 0], [0, 6]], sign_mode="excitatory", weight_exp=1)
    x = (np.arange(steps)[:, None] % np.array([3, 5]) == 0).astype(int)
    prog = program([inp], [out], [conn])
    fl = run_program_lava(prog, {"in": x}, steps, select_tag="floating_pt")
    fx = run_program_lava(prog, {"in": x}, steps)

    assert fl.backend == "lava-float"
    assert fl.states["out.v"].dtype == np.float64 and fl.states["out.u"].dtype == np.float64
    assert fl.spikes["out"].dtype == bool and fl.spikes["out"].any()
    np.testing.assert_array_equal(fl.spikes["out"], fx.spikes["out"])
    np.testing.assert_array_equal(fl.states["out.v"], fx.states["out.v"])
    np.testing.assert_array_equal(fl.states["out.u"], fx.states["out.u"])
    np.testing.assert_array_equal(fl.weights["c.w"], fx.weights["c.w"])
