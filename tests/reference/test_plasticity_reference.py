"""Float reference plasticity against analytic values (pair STDP kernel, epochs, third factor, u_k)."""

import math

import nir
import numpy as np
import pytest

import neuro_hw

DT = 1e-3
TAU_PLUS, TAU_MINUS = 0.02, 0.01
A_PLUS, A_MINUS = 0.01, 0.012


def pair_circuit(t_epoch=1, rule=None, traces=None, third=None, w0=1e-6, extra_nodes=None):
    """Pre input -> plastic syn -> post LIF; a second input forces post spikes through a strong weight."""
    lif = nir.LIF(
        tau=np.array([0.02]), r=np.array([1.0]), v_leak=np.zeros(1), v_threshold=np.array([0.5]), v_reset=np.zeros(1)
    )
    nodes = {
        "pre": nir.Input(np.array([1])),
        "syn": nir.Linear(np.array([[w0]])),
        "drive_in": nir.Input(np.array([1])),
        "drive": nir.Linear(np.array([[100.0]])),
        "post": lif,
    }
    nodes.update(extra_nodes or {})
    edges = [("pre", "syn"), ("syn", "post"), ("drive_in", "drive"), ("drive", "post")]
    circuit = neuro_hw.Circuit(nodes, edges)
    circuit.add_plasticity(
        "syn",
        rule or f"dw = {A_PLUS}*x1*y0 - {A_MINUS}*y1*x0",
        pre="pre",
        post="post",
        traces=traces or {"x1": (1.0, TAU_PLUS), "y1": (1.0, TAU_MINUS)},
        third_factor=third or {},
        t_epoch=t_epoch,
    )
    return circuit


def pair_inputs(t_pre, t_post, steps, batch):
    """Stimuli so that pre spikes at step t_pre[b] and post at step t_post[b] (steps are 1-based)."""
    pre = np.zeros((batch, steps, 1))
    drive = np.zeros((batch, steps, 1))
    for b in range(batch):
        pre[b, t_pre[b] - 1, 0] = 1.0
        drive[b, t_post[b] - 2, 0] = 1.0  # one-step synaptic delay through "drive"
    return {"pre": pre, "drive_in": drive}


def test_pair_stdp_matches_exponential_kernel_batched():
    deltas = np.array([-30, -12, -5, -1, 0, 1, 3, 10, 25, 40])  # t_post - t_pre in steps
    t_pre = 50 - np.minimum(deltas, 0)
    t_post = t_pre + deltas
    steps = 120
    result = neuro_hw.simulate(pair_circuit(), pair_inputs(t_pre, t_post, steps, len(deltas)), steps=steps, dt=DT)
    post_spikes = result.spikes["post"][:, :, 0]
    np.testing.assert_array_equal(post_spikes.sum(axis=1), 1)
    np.testing.assert_array_equal(np.argmax(post_spikes, axis=1) + 1, t_post)
    dw = result.final_weights("syn")[:, 0, 0] - 1e-6
    lag = deltas * DT
    expected = np.where(lag > 0, A_PLUS * np.exp(-lag / TAU_PLUS), -A_MINUS * np.exp(lag / TAU_MINUS))
    expected[deltas == 0] = A_PLUS - A_MINUS  # simultaneous: both terms see the spike's own impulse
    np.testing.assert_allclose(dw, expected, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("t_epoch", [1, 4, 8])
def test_epoch_reads_traces_at_spike_times(t_epoch):
    # pre at step 9, post at step 11 (same epoch for t_epoch 4? 9..12 yes; for 8: 9..16 yes)
    steps = 40
    result = neuro_hw.simulate(pair_circuit(t_epoch), pair_inputs([9], [11], steps, 1), steps=steps, dt=DT)
    w = result.weights["syn.w"][0, :, 0, 0]
    wsteps = result.weight_steps["syn.w"]
    expected = A_PLUS * math.exp(-2 * DT / TAU_PLUS)
    epoch_end = int(math.ceil(11 / t_epoch) * t_epoch)
    before = w[wsteps < epoch_end]
    after = w[wsteps >= epoch_end]
    np.testing.assert_allclose(before, 1e-6, rtol=0, atol=1e-18)
    np.testing.assert_allclose(after - 1e-6, expected, rtol=1e-12)


def test_third_factor_sets_trace_and_gates_learning():
    reward = nir.Input(np.array([1]))
    circuit = pair_circuit(
        rule="dw = 0.5*x1*reward",
        traces={"x1": (1.0, math.inf)},
        third={"y2": "reward"},
        extra_nodes={"reward": reward},
    )
    steps = 30
    inputs = pair_inputs([3], [25], steps, 1)
    r = np.zeros((1, steps, 1))
    r[0, 9, 0] = 2.0  # reward 2 at step 10 only
    r[0, 19, 0] = -1.0  # punishment -1 at step 20
    inputs["reward"] = r
    result = neuro_hw.simulate(circuit, inputs, steps=steps, dt=DT, record=["syn.y2", "syn.x1"])
    w = result.weights["syn.w"][0, :, 0, 0] - 1e-6
    # x1 = 1 from step 3 on (tau = inf); dw = 0.5 * x1 * y2 at every epoch (u0 dependency: end of epoch values)
    np.testing.assert_allclose(result.states["syn.y2"][0, :, 0], r[0, :, 0])
    np.testing.assert_allclose(w[-1], 0.5 * 2.0 - 0.5 * 1.0, rtol=1e-12)
    np.testing.assert_allclose(w[9], 0.0, atol=1e-15)  # index k = after step k (index 0 = initial)
    np.testing.assert_allclose(w[10], 1.0, rtol=1e-12)  # the reward step itself learns


def test_decimation_dependency_and_weight_decay_with_bounds():
    circuit = pair_circuit(rule="dw = -0.25*w*u1", t_epoch=2, w0=1.0)
    circuit.plasticity["syn"].w_bounds = (0.2, 2.0)
    steps = 32
    result = neuro_hw.simulate(circuit, pair_inputs([1], [2], steps, 1), steps=steps, dt=DT)
    w = result.weights["syn.w"][0, :, 0, 0]
    wsteps = result.weight_steps["syn.w"]
    # epochs end at steps 2,4,..,32; epoch index e = t // 2; u1 active when e % 2 == 0 -> t = 4, 8, 12, 16
    expected = [1.0]
    for t in range(1, steps + 1):
        value = expected[-1]
        if t % 2 == 0 and (t // 2) % 2 == 0:
            value = max(0.2, value * 0.75)
        expected.append(value)
    np.testing.assert_allclose(w, np.array(expected)[wsteps], rtol=1e-12)
    assert w[-1] == pytest.approx(0.2)  # clipped at w_min


def test_tag_rule_and_sgn():
    circuit = pair_circuit(rule="dt = 0.5*x1*y0", w0=0.3)
    circuit.add_plasticity(
        "syn",
        ["dt = 0.5*x1*y0", "dw = 0.1*sgn(t-0.2)*u0"],
        pre="pre",
        post="post",
        traces={"x1": (1.0, math.inf)},
    )
    steps = 12
    result = neuro_hw.simulate(circuit, pair_inputs([2], [5], steps, 1), steps=steps, dt=DT)
    t = result.weights["syn.t"][0, :, 0, 0]
    w = result.weights["syn.w"][0, :, 0, 0]
    # tag becomes 0.5 at step 5; dw uses the pre-update tag: sgn(0-0.2) = -1 through step 5, +1 after
    assert t[-1] == pytest.approx(0.5)
    assert w[-1] == pytest.approx(0.3 - 0.1 * 5 + 0.1 * (steps - 5))
