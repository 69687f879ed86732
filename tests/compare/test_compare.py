"""compare(): exact first divergence, statistical metrics and profiles, assert_equivalent."""

import numpy as np
import pytest

import neuro_hw
from neuro_hw.circuits.stdp import correlated_inputs, stdp_circuit
from neuro_hw.compare import assert_equivalent, compare, metrics
from neuro_hw.errors import InputError

DT = 1e-3


@pytest.fixture(scope="module")
def runs():
    circuit = stdp_circuit(n_in=10, n_out=3)
    x = correlated_inputs(600, 10, batch=2, seed=2)
    ref = neuro_hw.simulate(circuit, {"input": x}, 600, DT, record="all")
    return circuit, x, ref


def test_metrics_on_known_trains():
    a = np.zeros((1, 100, 2))
    a[0, [10, 50], 0] = 1
    b = a.copy()
    assert metrics.jaccard(a, b) == 1.0 and metrics.van_rossum_distance(a, b) == 0.0
    b[0, 50, 0], b[0, 51, 0] = 0, 1  # one spike moved by one step
    assert metrics.jaccard(a, b) == pytest.approx(1 / 3)
    assert metrics.jaccard(a, b, window=1) == 1.0
    assert 0 < metrics.van_rossum_distance(a, b) < 0.3
    c = a.copy()
    c[0, 80, 1] = 1  # one extra spike on an otherwise silent neuron
    # extra spike at step index 80 of 100: filtered values exp(-k/10), k = 0..19 on neuron 1, nothing on neuron 0
    sum_sq = sum(np.exp(-2 * k / 10) for k in range(20))
    assert metrics.van_rossum_distance(a, c, tau_steps=10) == pytest.approx(np.sqrt(sum_sq / 10) / 2, rel=1e-12)
    assert metrics.spike_count_error(a, c) == pytest.approx(0.5)
    assert metrics.activity_cosine(a, c) == pytest.approx(2 / np.sqrt(5))
    assert metrics.weight_angle_deg(np.array([1.0, 0]), np.array([0, 2.0])) == pytest.approx(90)
    assert metrics.weight_rmse(np.ones(4), np.zeros(4)) == 1.0


def test_exact_mode_finds_first_divergence(runs):
    circuit, x, ref = runs
    other = neuro_hw.simulate(circuit, {"input": x}, 600, DT, record="all")
    assert compare(ref, other).passed
    other.states["neurons.v"][1, 37, 2] += 1e-9
    other.spikes["neurons"][0, 200, 0] ^= True
    c = compare(ref, other)
    assert not c.passed and c.mismatches == 2
    d = c.first_divergence
    assert (d.step, d.node, d.variable, d.index) == (38, "neurons", "v", (1, 2))
    with pytest.raises(AssertionError, match="first divergence: step 38, node 'neurons', variable 'v'"):
        assert_equivalent(ref, other)


def test_statistical_profiles_and_overrides(runs):
    circuit, x, ref = runs
    euler = neuro_hw.simulate(circuit, {"input": x}, 600, DT, method="euler", record="all")
    c = compare(ref, euler, "fixed-vs-float")
    m = c.population_metrics["neurons"]
    assert m["spikes_a"] > 0 and 0 <= m["spike_count_error"] < 0.2 and m["activity_cosine"] > 0.9
    assert "synapses.w" in c.weight_metrics
    strict = compare(ref, euler, "strict", max_spike_count_error=0.0)
    assert not strict.passed and any("spike-count error" in f for f in strict.failures) or m["spike_count_error"] == 0
    loose = compare(
        ref,
        euler,
        "fixed-vs-float",
        min_activity_cosine=0.0,
        max_spike_count_error=1.0,
        max_weight_angle_deg=90,
        max_weight_rmse_rel=10,
    )
    assert loose.passed
    task = compare(
        ref, euler, "fixed-vs-float", task=lambda r: r.final_weights("synapses").mean(), max_task_difference=0.0
    )
    assert "difference" in task.task


def test_refuses_unrelated_results(runs):
    circuit, x, ref = runs
    other = neuro_hw.simulate(stdp_circuit(n_in=10, n_out=3, seed=9), {"input": x}, 600, DT)
    with pytest.raises(InputError, match="different circuits"):
        compare(ref, other)
    with pytest.raises(InputError, match="unknown profile"):
        compare(ref, ref, "lenient")
    with pytest.raises(InputError, match="unknown profile setting"):
        compare(ref, ref, "exact", max_pizza=1)


def test_fixed_point_result_in_float_units_vs_reference():
    circuit = stdp_circuit(n_in=10, n_out=3)
    x = {"input": correlated_inputs(800, 10, seed=1)}
    ref = neuro_hw.simulate(circuit, x, 800, DT)
    fixed = neuro_hw.run(neuro_hw.compile(circuit, dt=DT), x, 800, backend="lava")
    c = assert_equivalent(ref, fixed, "fixed-vs-float")
    assert c.weight_metrics["synapses.w"]["angle_deg"] < 15
    w = fixed.in_float_units("synapses.w")
    assert w.dtype == np.float64 and 0 <= w.min() and w.max() <= 0.26
