"""Heterosynaptic circuits (seed P2 reconstruction): topologies, the numpy ground truth and its monitors, the
circuit in the float reference against numpy, the compiled motif on the emulator, emulator vs Lava."""

from __future__ import annotations

import numpy as np
import pytest

import neuro_hw
from neuro_hw.circuits import heterosynaptic as hc
from neuro_hw.circuits import heterosynaptic_numpy as hn
from neuro_hw.circuits.digits import epoch_order, load_digits_split, one_hot


@pytest.fixture(scope="module")
def split():
    return load_digits_split()


def _first_states_equal(topo, params, state, x, t, form, n=12, ranges=None):
    """Max |W_circuit - W_numpy| (and V) after each of the first ``n`` samples, circuit run in the float reference."""
    spec = hc.CircuitSpec(topo, params, form=form, ranges=ranges or hc.SignalRanges(delta=(4.0, 4.0)))
    circuit, sched = hc.heterosynaptic_circuit(spec, state)
    stim = sched.present(x[:n], t[:n], phase=form == "hardware")
    ref = neuro_hw.simulate(circuit, stim, sched.steps(n), hc.DT, weights_every=sched.period)
    truth = hn.train(topo, params, state.copy(), x, t, np.arange(n), record_first=n)
    w = hc.recorded_weights(ref)
    diff, moved = 0.0, 0.0
    for k in range(n):
        s = hc.state_from_weights(topo, w, k + 1)
        for key in topo.forward:
            diff = max(diff, float(np.abs(s.W[key] - truth.first[k].W[key]).max()))
            moved = max(moved, float(np.abs(s.W[key] - state.W[key]).max()))
        for key in topo.feedback:
            diff = max(diff, float(np.abs(s.V[key] - truth.first[k].V[key]).max()))
            moved = max(moved, float(np.abs(s.V[key] - state.V[key]).max()))
    return diff, moved


@pytest.mark.parametrize("form", ["direct", "hardware"])
@pytest.mark.parametrize("kind", ["motif", "amorphous_blocks", "amorphous"])
def test_circuit_in_the_float_reference_equals_numpy(split, kind, form):
    """Every W and V after each of the first 12 samples (measured: < 1e-15).  The block-amorphous network
    (topology seed 2) has forward skips from the input to level 2 and to the output and from level 1 to the output;
    level 1 gets its projection from the output directly, so its forward edge to level 2 has no feedback
    counterpart.  The neuron-level amorphous network's sparse matrices become plasticity masks: the absent synapses
    stay 0 as in numpy."""
    if kind == "motif":
        topo = hn.motif(64, 3, 10)
    elif kind == "amorphous_blocks":
        topo = hn.amorphous_blocks((64, 4, 4, 10), seed=2)
        assert {(2, 0), (3, 0), (3, 1)} <= set(topo.forward) and set(topo.feedback) == {(1, 3), (2, 3)}
    else:
        topo = hn.amorphous((64, 6, 6, 10), seed=2)
        assert not all(m.all() for m in [*topo.forward.values(), *topo.feedback.values()])
        circuit, _ = hc.heterosynaptic_circuit(hc.CircuitSpec(topo), hn.init_state(topo, hn.HeteroParams(), 0))
        masked = {name for name, spec in circuit.plasticity.items() if spec.mask is not None}
        assert len(masked) >= len(topo.forward) + len(topo.feedback) - 1
    params = hn.HeteroParams(eta=0.05, eta_v=0.05, lam=0.01, lam_v=0.02)
    state = hn.init_state(topo, params, 0)
    order = epoch_order(split.n_train, 1, 0)[:12]
    diff, moved = _first_states_equal(topo, params, state, split.x_train[order], one_hot(split.y_train[order]), form)
    assert moved > 1e-3  # it learned
    assert diff < 1e-9


def _probe_with_v_equal_w_transpose(sizes):
    topo = hn.structured(sizes)
    params = hn.HeteroParams()
    state = hn.init_state(topo, params, 3)
    for l, m in topo.feedback:
        state.V[(l, m)] = state.W[(m, l)].T.copy()
    return topo, params, state


def test_probe_of_an_exact_kolen_pollack_state(split):
    """V = W^T makes the learning potential the backprop signal: alignment 1, phi 1, HS residual 0, DC 1; with the
    signs of the dW flipped the alignment is -1 (gradient ascent)."""
    topo, params, state = _probe_with_v_equal_w_transpose((64, 12, 12, 10))
    x, t = split.x_train[:100], one_hot(split.y_train[:100])
    pr = hn.probe(topo, params, state, x, t)
    np.testing.assert_allclose(pr.alignment, [1.0, 1.0], atol=1e-12)
    np.testing.assert_allclose(pr.phi_patch, [1.0, 1.0], atol=1e-12)
    assert pr.hs_residual < 1e-20 and pr.dc == 1.0 and pr.dc_positive == 1.0
    flipped = hn.probe(topo, params, state, x, t, hn.Gains(w=(-1.0, -1.0)))
    np.testing.assert_allclose(flipped.alignment, [-1.0, -1.0], atol=1e-12)
    # a random V: the alignment is far from 1
    state.V = hn.init_state(topo, params, 4).V
    assert max(hn.probe(topo, params, state, x, t).alignment) < 0.6


def test_structured_network_reaches_heterosynaptic_stability(split):
    """From random V, the Kolen-Pollack-like V rule with decay aligns the update with the gradient: measured after
    6000 samples (64-16-16-10, eta 0.02, lam 0.01, seed 0): alignment 0.977/0.967 (-0.15/0.05 at the start), phi
    1.19/1.12 per level, HS residual 0.055 (0.92 at the start)."""
    topo = hn.structured((64, 16, 16, 10))
    params = hn.HeteroParams(lam=0.01, lam_v=0.01)
    state = hn.init_state(topo, params, 0)
    x, t = split.x_train, one_hot(split.y_train)
    order = epoch_order(len(x), 5, 0)[:6000]
    trace = hn.train(topo, params, state, x, t, order, x[:200], t[:200], probe_every=6000)
    start, end = trace.probes
    assert max(abs(a) for a in start.alignment) < 0.3 and start.hs_residual > 0.8
    assert min(end.alignment) > 0.95 and end.hs_residual < 0.1
    assert all(0.8 < phi < 1.5 for phi in end.phi_patch)
    assert trace.v_drift.shape == (1,) and trace.v_drift[0] > 0


def test_amorphous_topology_is_sparse_skipping_and_connected():
    topo = hn.amorphous((64, 20, 20, 20, 10), seed=0)
    L = topo.n_levels
    assert any(j < l - 1 for (l, j) in topo.forward) and any(m > l + 1 for (l, m) in topo.feedback)
    assert 0.2 < topo.forward[(2, 1)].mean() < 0.8
    for l in range(1, L):
        ins = np.any([topo.forward[k].any(axis=1) for k in topo.forward_keys(l)], axis=0)
        outs = np.any([topo.forward[(m, j)].any(axis=0) for (m, j) in topo.forward if j == l], axis=0)
        proj = np.any([topo.feedback[k].any(axis=1) for k in topo.feedback_keys(l)], axis=0)
        assert ins.all() and outs.all() and proj.all(), l
    with pytest.raises(ValueError, match="expected"):
        hn.Topology((4, 3, 2), {(1, 0): np.ones((3, 3)), (2, 1): np.ones((2, 3))}, {(1, 2): np.ones((3, 2))})


def test_schedule_pulses_and_phase():
    sched = hc.Schedule(3)
    assert sched.period == 11 and [sched.g_time(lv) for lv in (3, 2, 1)] == [5, 8, 11]
    stim = sched.present(np.ones((2, 4)), np.ones((2, 5)))
    assert stim["x"].shape == (22, 4) and np.flatnonzero(stim["x"][:, 0]).tolist() == [0, 11]
    assert np.flatnonzero(stim["target"][:, 0]).tolist() == [3, 14]
    # channel l-1 on at offsets gp_time(l) - 2, gp_time(l) - 1 (1-based), i.e. c arrives at gp_time - 1 and gp_time
    assert np.flatnonzero(stim["phase"][:11, 0]).tolist() == [sched.gp_time(1) - 3, sched.gp_time(1) - 2]


@pytest.mark.slow
def test_compiled_motif_learns_on_the_emulator_with_the_monitors(split):
    """The motif (64-8-10) compiled for Loihi 2 and trained on the emulator for one epoch (1347 samples), monitors
    from the weights read back in float units (measured: probe accuracy 0.07 -> 0.42, alignment -0.06 -> 0.52,
    phi > 0 in 80 % of the neurons; the float reference reaches 0.52 / 0.86 / 100 %).  A broken offset or rail
    would freeze V or scramble its sign.  ``slow``: numba compiles the kernel of this circuit in minutes."""
    from neuro_hw.circuits.heterosynaptic_run import hardware_setup

    topo, spec, state, circuit, sched = hardware_setup()
    program = neuro_hw.compile(circuit, dt=hc.DT, **hc.compile_options(spec))
    assert {"d1+", "d1-", "m2+", "m2-"} <= set(program.neurons)  # signed modulators of W on two rails
    assert "(x1-63)" in program.connections["v1_2"].learning.rules["dw"]  # V's offset-coded pre trace
    n = split.n_train
    x, t = split.x_train, one_hot(split.y_train)
    order = epoch_order(n, 1, 0)
    emu = neuro_hw.run(program, sched.present(x[order], t[order]), sched.steps(n), backend="emulator", seed=0,
                       weights_every=sched.period * 100)  # fmt: skip
    weights = hc.recorded_weights(emu)
    before, after = (hc.state_from_weights(topo, weights, i) for i in (0, -1))
    p0 = hn.probe(topo, spec.params, before, x[:300], t[:300])
    p1 = hn.probe(topo, spec.params, after, x[:300], t[:300])
    assert np.abs(after.V[(1, 2)] - before.V[(1, 2)]).max() > 0.02
    assert p1.accuracy > p0.accuracy + 0.25
    assert p1.alignment_all > 0.3 and p1.dc_positive >= 0.6 and p1.phi_patch[0] > 0.5


@pytest.mark.slow  # compiles its own emulator kernel (minutes on a busy 2-core machine): outside make test's budget
@pytest.mark.lava
@pytest.mark.parametrize("kind", ["motif", "amorphous"])
def test_first_200_steps_emulator_equals_lava(kind):
    """The compiled motif (rails, offset-coded pre traces, decay-free rules) and the neuron-level amorphous
    64-8-8-10 network (9 sparse plastic matrices with plasticity masks: LearningSparse on Lava): every recorded value
    of the first 200 steps identical on the emulator and on Lava 0.10 fixed_pt (measured, amorphous: 1,486,144
    values)."""
    from neuro_hw.circuits.heterosynaptic_run import lava_check

    result = lava_check(200, kind=kind)
    assert result["passed"], result["report"]
    assert result["compared_values"] > 100_000


@pytest.mark.slow
def test_evolution_fitness_separates_descent_from_ascent():
    """The evolution's evaluation (1000-sample lifetime, test loss): all gains +1 learns (measured loss 0.255,
    accuracy 78 %, alignment 0.52); dW signs flipped on every hidden level: loss 0.362, alignment -0.01 (zero
    gains: 0.372).  ``slow``: 2.8 s on a quieter machine, 33 s at load 13."""
    from neuro_hw.circuits.heterosynaptic_sims import evolve_evaluate

    good = evolve_evaluate({"s1": 1, "s2": 1, "s3": 1, "r1": 1, "r2": 1, "r3": 1}, None, "reference", [0])[0]
    bad = evolve_evaluate({"s1": -1, "s2": -1, "s3": -1, "r1": 1, "r2": 1, "r3": 1}, None, "reference", [0])[0]
    assert good["loss"] < bad["loss"] - 0.05
    assert good["alignment"] > 0.3 and abs(bad["alignment"]) < 0.2
    with pytest.raises(ValueError, match="backend must be 'reference'"):
        evolve_evaluate({}, None, "emulator", [0])


def test_metaplasticity_curve_of_a_kolen_pollack_motif(split):
    """With V = W2^T the heterosynaptic dW of a motif neuron is the gradient step: it falls with the neuron's
    activity (more activity -> more output error through W2 -> depression), linearly."""
    from neuro_hw.circuits.heterosynaptic_sims import _crossing, dw_curve

    topo = hn.motif(64, 2, 10)
    params = hn.HeteroParams(c_h=4.0)
    state = hn.init_state(topo, params, 0)
    state.V[(1, 2)] = state.W[(2, 1)].T.copy()
    h = np.linspace(0, 4, 41)
    x, t = split.x_train[:50], one_hot(split.y_train[:50])
    curve = dw_curve(topo, params, state, x, t, 0, h)
    assert np.all(np.diff(curve) < 0)
    # linear in h with slope -eta * mean(x) * |W2[:, 0]|^2 (the curvature of the loss along h_0)
    slope = -params.eta * np.mean(x.mean(axis=1)) * np.sum(state.W[(2, 1)][:, 0] ** 2)
    np.testing.assert_allclose(np.diff(curve) / np.diff(h), slope, rtol=1e-9)
    assert _crossing(h, 1.05 - h) == pytest.approx(1.05) and np.isnan(_crossing(h, np.ones_like(h)))
