"""Sample schedule of error-driven circuits (neuro_hw.schedule): latencies, offsets, layout, refusals."""

import nir
import numpy as np
import pytest

import neuro_hw
from neuro_hw.circuits.error_driven_numpy import ErrorDrivenParams, init_weights
from neuro_hw.circuits.feedback_alignment import error_driven_circuit
from neuro_hw.errors import InputError, ValidationError
from neuro_hw.ir.graded import GradedNeuron
from neuro_hw.schedule import SampleSchedule, plan_schedule

DT = 1e-3
PARAMS = ErrorDrivenParams(n_in=4, n_hidden=5, n_out=3, epochs=1)


def fa_circuit(rule="fa"):
    w1, w2, b = init_weights(PARAMS, 0)
    return error_driven_circuit(PARAMS, w1, w2, b, rule)


def test_feedback_alignment_schedule():
    """The 2-layer feedback-alignment circuit (neuro_hw.circuits.feedback_alignment)::

        x -w1-> h -w2-> o -o_to_err-> err <-target_to_err- target;  err -feedback-> delta <-h_gate- Delay(2) <- h

    Every weight node adds one step, the Delay two, graded neurons none: h is 1 step behind x, o 2, err 3, delta
    4 (B err at 3 + 1; the gate h at 1 + 2 + 1).  The pre activities of the plastic weights are x (w1, 0 steps)
    and h (w2, 1 step), so gap = max pre latency = 1: the previous sample's h has left before the next epoch
    starts.  The third factors are err (3) and delta (4); each must be read at the epoch's last step while it
    still shows this sample, so period = max factor latency + 1 = 5 and hold = period - gap = 4.  The target
    reaches err through one weight node (1 step) where x takes 3, so it is shown 2 steps later (offset 2)."""
    circuit, schedule = fa_circuit()
    assert (schedule.hold, schedule.gap, schedule.period) == (4, 1, 5)
    assert schedule.offsets == {"x": 0, "target": 2}
    assert schedule.primary == "x"
    assert schedule.latencies == {
        "x": 0, "w1": 0, "h": 1, "w2": 1, "o": 2, "o_to_err": 2, "err": 3, "feedback": 3, "delta": 4,
        "h_delay": 1, "h_gate": 3,
    }  # fmt: skip
    assert "target" not in schedule.latencies and "target_to_err" not in schedule.latencies
    assert all(spec.t_epoch == 5 for spec in circuit.plasticity.values())
    assert schedule.steps(3) == 15
    assert [schedule.learning_step(k) for k in range(3)] == [5, 10, 15]
    assert plan_schedule(circuit, "x", DT) == schedule  # planning is deterministic


def test_delta_rule_schedule_has_a_shorter_period():
    """Without the feedback path the last factor is err (3 steps): period 4, hold 3, gap 1."""
    _, schedule = fa_circuit("delta")
    assert (schedule.hold, schedule.gap, schedule.period) == (3, 1, 4)
    assert schedule.offsets == {"x": 0, "target": 2}


def test_the_schedule_makes_each_learning_step_see_its_own_sample():
    """At the learning step L_k of sample k, err is o_k - t_k and w2's x1 is h_k where h_k is active (forward with
    the weights before sample k), and delta is (B e_k) * g(h_k)."""
    circuit, schedule = fa_circuit()
    rng = np.random.default_rng(3)
    x = rng.uniform(0, 1, (3, PARAMS.n_in))
    t = np.eye(3)[[2, 0, 1]]
    stim = schedule.present({"x": x, "target": t})
    r = neuro_hw.simulate(circuit, stim, schedule.steps(3), DT, weights_every=schedule.period, record="w2.x1")
    _, _, b = init_weights(PARAMS, 0)
    for k in range(3):
        step = schedule.learning_step(k) - 1
        w1, w2 = r.weights["w1.w"][0, k], r.weights["w2.w"][0, k]
        a1 = w1 @ x[k]
        h = np.clip(a1, 0, PARAMS.c_h)
        e = w2 @ h - t[k]
        np.testing.assert_allclose(r.states["err.y"][0, step], e, rtol=1e-12, atol=1e-15)
        active = h > 0  # x1 holds an older activity where h is 0 (x0 gates those synapses)
        np.testing.assert_allclose(r.states["w2.x1"][0, step][active], h[active], rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(r.states["delta.y"][0, step], (b @ e) * ((h > 0) & (h < 1)), rtol=1e-12, atol=1e-15)


def test_latencies_through_delays_and_graded_neurons():
    nodes = {
        "x": nir.Input(np.array([2])),
        "w": nir.Linear(np.eye(2)),
        "g": GradedNeuron(np.array([2]), "relu"),
        "dl": nir.Delay(np.full(2, 3 * DT)),
        "v": nir.Linear(np.eye(2)),
        "g2": GradedNeuron(np.array([2]), "identity"),
    }
    edges = [("x", "w"), ("w", "g"), ("g", "dl"), ("dl", "v"), ("v", "g2")]
    circuit = neuro_hw.Circuit(nodes, edges)
    schedule = plan_schedule(circuit, "x", DT)
    assert schedule.latencies == {"x": 0, "w": 0, "g": 1, "dl": 1, "v": 4, "g2": 5}
    # no plasticity: nothing to align, the shortest schedule
    assert (schedule.hold, schedule.gap) == (1, 0)
    # the same delay in steps of another dt
    assert plan_schedule(circuit, "x", 0.5 * DT).latencies["g2"] == 8
    circuit.nodes["dl"] = nir.Delay(np.array([DT, 2 * DT]))
    with pytest.raises(ValidationError, match="node 'dl', field 'delay': a schedule needs one delay per Delay node"):
        plan_schedule(circuit, "x", DT)


def test_present_layout():
    schedule = SampleSchedule("x", hold=3, gap=2, offsets={"x": 0, "t": 2})
    x = np.array([[1.0, 2.0], [3.0, 4.0]])
    t = np.array([[10.0], [20.0]])
    stim = schedule.present({"x": x, "t": t})
    assert stim["x"].shape == (10, 2) and stim["t"].shape == (10, 1)
    assert stim["x"].tolist() == [[1, 2]] * 3 + [[0, 0]] * 2 + [[3, 4]] * 3 + [[0, 0]] * 2
    # shifted by its offset: 2 leading zeros, and the tail of the last sample falls off the end
    assert stim["t"][:, 0].tolist() == [0, 0, 10, 10, 10, 0, 0, 20, 20, 20]
    schedule = SampleSchedule("x", hold=3, gap=1, offsets={"x": 0, "t": 2})
    assert schedule.present({"t": t})["t"][:, 0].tolist() == [0, 0, 10, 10, 10, 0, 20, 20]
    # a batch axis: (B, N, n) -> (B, N * period, n), each trial laid out alone
    batch = np.stack([x, 2 * x])
    out = SampleSchedule("x", hold=3, gap=2, offsets={"x": 0}).present({"x": batch})["x"]
    assert out.shape == (2, 10, 2)
    np.testing.assert_array_equal(out[0], stim["x"])
    np.testing.assert_array_equal(out[1], 2 * stim["x"])
    with pytest.raises(InputError, match="node 'y': not an input of the schedule"):
        schedule.present({"y": x})
    with pytest.raises(InputError, match=r"node 'x': per-sample values must be \(N, n\) or \(B, N, n\)"):
        schedule.present({"x": np.ones(3)})


def test_apply_sets_the_epoch_and_check_refuses_another():
    circuit, schedule = fa_circuit()
    circuit.plasticity["w1"].t_epoch = 3
    with pytest.raises(
        ValidationError, match="node 'w1', field 't_epoch': t_epoch is 3 but the schedule's period is 5"
    ):
        schedule.check(circuit)
    longer = plan_schedule(circuit, "x", DT, hold=6)
    assert (longer.hold, longer.gap, longer.period) == (6, 1, 7)
    assert longer.apply(circuit) is circuit
    assert {spec.t_epoch for spec in circuit.plasticity.values()} == {7}
    longer.check(circuit)
    with pytest.raises(ValidationError, match="t_epoch is 7 but the schedule's period is 5"):
        schedule.check(circuit)


def test_too_short_hold_is_refused():
    circuit, _ = fa_circuit()
    with pytest.raises(ValidationError, match="field 'hold': hold=3 is too short; the circuit needs at least 4"):
        plan_schedule(circuit, "x", DT, hold=3)


def _learning(third_source_nodes, third):
    nodes = {
        "x": nir.Input(np.array([2])),
        "w1": nir.Linear(np.eye(2)),
        "h": GradedNeuron(np.array([2]), "relu"),
        "w2": nir.Linear(np.eye(2) * 0.5),
        "o": GradedNeuron(np.array([2]), "identity"),
        **third_source_nodes,
    }
    circuit = neuro_hw.Circuit(nodes, [("x", "w1"), ("w1", "h"), ("h", "w2"), ("w2", "o")])
    circuit.add_plasticity("w2", "dw = -0.1*x0*e*x1", traces={"x1": "activity"}, third_factor={"e": third})
    return circuit


def test_third_factor_independent_of_the_primary_input_is_refused():
    circuit = _learning({"r": nir.Input(np.array([2]))}, "r")
    with pytest.raises(ValidationError, match="node 'w2', field 'third_factor': third factor 'r' does not depend on"):
        plan_schedule(circuit, "x", DT)


def test_pre_independent_of_the_primary_input_is_refused():
    nodes = {
        "x": nir.Input(np.array([2])),
        "r": nir.Input(np.array([2])),
        "w": nir.Linear(np.eye(2)),
        "g": GradedNeuron(np.array([2]), "identity"),
        "v": nir.Linear(np.eye(2)),
        "m": GradedNeuron(np.array([2]), "identity"),
    }
    circuit = neuro_hw.Circuit(nodes, [("r", "w"), ("w", "g"), ("x", "v"), ("v", "m")])
    circuit.add_plasticity("w", "dw = 0.1*x0*e*x1", traces={"x1": "activity"}, third_factor={"e": "m"})
    with pytest.raises(ValidationError, match="node 'w': the pre node 'r' does not depend on input 'x'"):
        plan_schedule(circuit, "x", DT)


def test_third_factor_before_the_pre_activity_is_refused():
    circuit = _learning({}, "x")  # x is 0 steps behind itself, the pre h 1 step
    with pytest.raises(ValidationError, match="field 'third_factor': a third factor arrives 0 steps after the input"):
        plan_schedule(circuit, "x", DT)
    assert plan_schedule(_learning({}, "o"), "x", DT).period == 3  # o at 2 steps: period 3, gap 1, hold 2


def test_unequal_path_latencies_are_refused():
    nodes = {
        "x": nir.Input(np.array([2])),
        "wa": nir.Linear(np.eye(2)),
        "wb": nir.Linear(np.eye(2)),
        "m": GradedNeuron(np.array([2]), "relu"),
        "wc": nir.Linear(np.eye(2)),
        "g": GradedNeuron(np.array([2]), "identity"),
    }
    edges = [("x", "wa"), ("wa", "g"), ("x", "wb"), ("wb", "m"), ("m", "wc"), ("wc", "g")]
    circuit = neuro_hw.Circuit(nodes, edges)
    with pytest.raises(
        ValidationError, match=r"node 'g': signals from 'x' reach this node after \d and after \d steps"
    ):
        plan_schedule(circuit, "x", DT)
    # aligned with a Delay of one step on the short path, it plans
    nodes["dl"] = nir.Delay(np.full(2, DT))
    edges = [("x", "dl"), ("dl", "wa"), ("wa", "g"), ("x", "wb"), ("wb", "m"), ("m", "wc"), ("wc", "g")]
    assert plan_schedule(neuro_hw.Circuit(nodes, edges), "x", DT).latencies["g"] == 2


def test_inputs_that_would_have_to_lead_or_meet_twice_are_refused():
    nodes = {
        "x": nir.Input(np.array([2])),
        "t": nir.Input(np.array([2])),
        "wx": nir.Linear(np.eye(2)),
        "wt": nir.Linear(np.eye(2)),
        "m": GradedNeuron(np.array([2]), "relu"),
        "wm": nir.Linear(np.eye(2)),
        "g": GradedNeuron(np.array([2]), "identity"),
    }
    edges = [("x", "wx"), ("wx", "g"), ("t", "wt"), ("wt", "m"), ("m", "wm"), ("wm", "g")]
    with pytest.raises(ValidationError, match="node 't': input 't' would have to lead 'x' by 1 steps"):
        plan_schedule(neuro_hw.Circuit(nodes, edges), "x", DT)
    assert plan_schedule(neuro_hw.Circuit(nodes, edges), "t", DT).offsets == {"t": 0, "x": 1}
    with pytest.raises(ValidationError, match="field 'primary': 'm' is not an input"):
        plan_schedule(neuro_hw.Circuit(nodes, edges), "m", DT)
