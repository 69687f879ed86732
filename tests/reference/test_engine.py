"""Reference engine: graph semantics, delay policy, recording, inputs and Result files."""

import h5py
import nir
import numpy as np
import pytest

import neuro_hw
from neuro_hw.errors import CircuitFileError, InputError, ValidationError

DT = 1e-3


def li(n=1, tau=1e9):
    return nir.LI(tau=np.full(n, tau), r=np.full(n, tau / DT), v_leak=np.zeros(n))  # ~ pure integrator of x


def test_synaptic_delay_policy_one_step_per_weight_node():
    nodes = {
        "in": nir.Input(np.array([1])),
        "w1": nir.Linear(np.array([[2.0]])),
        "a": nir.IF(r=np.array([1 / DT]), v_threshold=np.array([0.5]), v_reset=np.zeros(1)),
        "w2": nir.Linear(np.array([[1.0]])),
        "b": nir.IF(r=np.array([1 / DT]), v_threshold=np.array([0.5]), v_reset=np.zeros(1)),
    }
    edges = [("in", "w1"), ("w1", "a"), ("a", "w2"), ("w2", "b")]
    circuit = neuro_hw.Circuit(nodes, edges)
    x = np.zeros((10, 1))
    x[2] = 1.0  # stimulus of step 3
    r1 = neuro_hw.simulate(circuit, {"in": x}, steps=10, dt=DT)
    assert np.flatnonzero(r1.spikes["a"][0, :, 0]).tolist() == [3]  # index 3 = step 4
    assert np.flatnonzero(r1.spikes["b"][0, :, 0]).tolist() == [4]
    r0 = neuro_hw.simulate(circuit, {"in": x}, steps=10, dt=DT, synaptic_delay=0)
    assert np.flatnonzero(r0.spikes["a"][0, :, 0]).tolist() == [2]
    assert np.flatnonzero(r0.spikes["b"][0, :, 0]).tolist() == [2]


def test_recurrent_loop_needs_delay_under_policy_zero():
    nodes = {"in": nir.Input(np.array([1])), "pop": li(), "rec": nir.Linear(np.array([[0.5]]))}
    circuit = neuro_hw.Circuit(nodes, [("in", "pop"), ("pop", "rec"), ("rec", "pop")])
    x = np.zeros((5, 1))
    x[0] = 1.0
    res = neuro_hw.simulate(circuit, {"in": x}, steps=5, dt=DT, record="pop.v")
    v = res.states["pop.v"][0, :, 0]
    np.testing.assert_allclose(v, [1, 1.5, 2.25, 3.375, 5.0625], rtol=1e-6)  # v += 0.5 v_prev each step
    with pytest.raises(ValidationError, match="loop without a delaying node"):
        neuro_hw.simulate(circuit, {"in": x}, steps=5, dt=DT, synaptic_delay=0)


def test_delay_scale_threshold_affine_flatten_output():
    nodes = {
        "in": nir.Input(np.array([2, 2])),
        "flat": nir.Flatten(input_type={"input": np.array([2, 2])}, start_dim=0),
        "scale": nir.Scale(np.array([1.0, 2.0, 3.0, 4.0])),
        "delay": nir.Delay(np.array([0.0, 1e-3, 2e-3, 3e-3])),
        "aff": nir.Affine(np.eye(4), np.array([0.5, 0, 0, 0])),
        "th": nir.Threshold(np.full(4, 1.5)),
        "out": nir.Output(np.array([4])),
    }
    edges = [("in", "flat"), ("flat", "scale"), ("scale", "delay"), ("delay", "aff"), ("aff", "th"), ("th", "out")]
    circuit = neuro_hw.Circuit(nodes, edges)
    x = np.zeros((8, 2, 2))
    x[0] = 1.0
    res = neuro_hw.simulate(circuit, {"in": x}, steps=8, dt=DT, record="aff")
    out = res.states["out.output"][0]
    # element k: value (k+1) delayed k steps, plus the weight node's one step; bias 0.5 on element 0
    expected = np.zeros((8, 4))
    expected[:, 0] = 0.5
    for k in range(4):
        expected[1 + k, k] += k + 1
    np.testing.assert_allclose(res.states["aff.output"][0], expected)
    np.testing.assert_array_equal(out, expected > 1.5)
    np.testing.assert_array_equal(res.spikes["th"][0], expected > 1.5)


def test_delay_not_multiple_of_dt():
    nodes = {"in": nir.Input(np.array([1])), "d": nir.Delay(np.array([1.5e-3])), "pop": li()}
    circuit = neuro_hw.Circuit(nodes, [("in", "d"), ("d", "pop")])
    with pytest.raises(ValidationError, match="node 'd', field 'delay': delays must be multiples of dt"):
        neuro_hw.simulate(circuit, {"in": np.zeros((3, 1))}, steps=3, dt=DT)


def simple():
    nodes = {"in": nir.Input(np.array([2])), "w": nir.Linear(np.ones((1, 2))), "pop": li()}
    return neuro_hw.Circuit(nodes, [("in", "w"), ("w", "pop")])


@pytest.mark.parametrize(
    "inputs, steps, match",
    [
        ({}, 5, "node 'in', field 'inputs': no stimulus given"),
        ({"in": np.zeros((5, 2)), "x": np.zeros((5, 1))}, 5, "not input nodes"),
        ({"in": np.zeros((5, 3))}, 5, "stimulus has shape \\(5, 3\\)"),
        ({"in": np.zeros((3, 2))}, 5, "covers 3 steps, the run needs 5"),
        ({"in": np.full((5, 2), np.nan)}, 5, "NaN or inf"),
        ({"in": np.array([["a", "b"]] * 5)}, 5, "must be numeric"),
        ({"in": np.zeros((5, 2))}, 0, "steps must be a positive integer"),
    ],
)
def test_bad_inputs(inputs, steps, match):
    with pytest.raises(InputError, match=match):
        neuro_hw.simulate(simple(), inputs, steps=steps, dt=DT)


def test_bad_run_options():
    x = {"in": np.zeros((5, 2))}
    with pytest.raises(InputError, match="field 'dt'"):
        neuro_hw.simulate(simple(), x, steps=5, dt=-1.0)
    with pytest.raises(InputError, match="field 'method'"):
        neuro_hw.simulate(simple(), x, steps=5, dt=DT, method="rk4")
    with pytest.raises(InputError, match="node 'pop', field 'record'.*has variables"):
        neuro_hw.simulate(simple(), x, steps=5, dt=DT, record="pop.u")
    with pytest.raises(InputError, match="no such node"):
        neuro_hw.simulate(simple(), x, steps=5, dt=DT, record="ghost.v")


def test_batch_matches_single_trials_with_plasticity():
    from neuro_hw.circuits.stdp import correlated_inputs, stdp_circuit

    circuit = stdp_circuit(n_in=8, seed=3)
    x = correlated_inputs(400, 8, batch=3, seed=5)
    batched = neuro_hw.simulate(circuit, {"input": x}, steps=400, dt=DT, record="all")
    for b in range(3):
        single = neuro_hw.simulate(circuit, {"input": x[b]}, steps=400, dt=DT, record="all")
        np.testing.assert_array_equal(single.spikes["neurons"][0], batched.spikes["neurons"][b])
        np.testing.assert_allclose(single.weights["synapses.w"][0], batched.weights["synapses.w"][b], rtol=0, atol=0)
        np.testing.assert_allclose(single.states["synapses.x1"][0], batched.states["synapses.x1"][b])
    assert batched.spikes["neurons"].sum() > 0


def test_result_file_round_trip_and_errors(tmp_path):
    from neuro_hw.circuits.stdp import correlated_inputs, stdp_circuit

    circuit = stdp_circuit(n_in=6)
    res = neuro_hw.simulate(circuit, {"input": correlated_inputs(50, 6)}, steps=50, dt=DT, seed=7, record="all")
    path = res.save(tmp_path / "r.h5")
    back = neuro_hw.Result.load(path)
    assert back.circuit_hash == circuit.hash() and back.seed == 7 and back.backend == "reference"
    assert back.versions["nir"] == res.versions["nir"]
    for group in ("spikes", "states", "weights", "weight_steps"):
        a, b = getattr(res, group), getattr(back, group)
        assert a.keys() == b.keys()
        for k in a:
            np.testing.assert_array_equal(a[k], b[k])
    with pytest.raises(CircuitFileError, match="no such result file"):
        neuro_hw.Result.load(tmp_path / "missing.h5")
    with h5py.File(tmp_path / "other.h5", "w") as f:
        f["x"] = 1
    with pytest.raises(CircuitFileError, match="not a neuro-hw result file"):
        neuro_hw.Result.load(tmp_path / "other.h5")
    (tmp_path / "trunc.h5").write_bytes(path.read_bytes()[:200])
    with pytest.raises(CircuitFileError, match="cannot read result file"):
        neuro_hw.Result.load(tmp_path / "trunc.h5")
