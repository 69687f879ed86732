"""Per-trial weights in a batch: one compiled Program (or one circuit), a different initialisation and feedback
matrix per trial -- on the reference, the emulator and Lava, equal to running the trials one by one."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import neuro_hw
from neuro_hw.circuits.digits import epoch_order, load_digits_split, one_hot
from neuro_hw.circuits.error_driven_numpy import ErrorDrivenParams, init_weights
from neuro_hw.circuits.feedback_alignment import SignalRanges, error_driven_circuit, stimuli
from neuro_hw.compiler.trial_weights import trial_weights
from neuro_hw.errors import InputError

PARAMS = ErrorDrivenParams(n_hidden=24)
SEEDS = [3, 4, 5]
STEPS = 60


@pytest.fixture(scope="module")
def setup():
    split = load_digits_split()
    w1, w2, b = init_weights(PARAMS, 0)
    circuit, schedule = error_driven_circuit(PARAMS, w1, w2, b, "fa")
    program = neuro_hw.compile(circuit, dt=1e-3, **SignalRanges().compile_options())
    order = epoch_order(len(split.y_train), 1, 0)[: STEPS // schedule.period + 1]
    stim = stimuli(schedule, split.x_train[order], one_hot(split.y_train[order]))
    w1s, w2s, bs = init_weights(PARAMS, SEEDS)  # (3, ...) each: other initialisations and feedback
    return circuit, program, stim, {"w1": w1s, "w2": w2s, "feedback": bs}


def test_the_circuits_own_weights_give_the_programs_integers(setup):
    """Quantising a node's own matrix reproduces the compiler's integers for every connection made from it (the
    plastic w1, w2, the four rail connections of the signed feedback, the gate into both rails of delta)."""
    circuit, program, _, _ = setup
    nodes = {name: circuit.nodes[name].weight for name in ("w1", "w2", "feedback", "h_gate")}
    ints = trial_weights(program, nodes, 2)
    assert {k for k in ints if k.startswith("feedback")} == {f"feedback[err{s}->delta{t}]" for s in "+-" for t in "+-"}
    assert {k for k in ints if k.startswith("h_gate")} == {"h_gate[h->delta+]", "h_gate[h->delta-]"}
    assert len(ints) == 8
    for name, arr in ints.items():
        assert arr.shape == (2,) + program.connections[name].shape
        np.testing.assert_array_equal(arr[1], program.connections[name].weights, err_msg=name)


def test_emulator_batch_equals_trials_run_one_by_one(setup):
    """Three trials with their own W1, W2, B in one batch == three runs of Programs holding those integers
    (every spike, payload, trace and weight); and they differ from each other, so per-trial weights are used."""
    from neuro_hw.compare import compare

    _, program, stim, weights = setup
    batch = neuro_hw.run(program, stim, STEPS, backend="emulator", seed=SEEDS, weights=weights)
    ints = trial_weights(program, weights, len(SEEDS))
    for b, seed in enumerate(SEEDS):
        conns = {
            name: dataclasses.replace(conn, weights=ints[name][b]) if name in ints else conn
            for name, conn in program.connections.items()
        }
        single = neuro_hw.run(dataclasses.replace(program, connections=conns), stim, STEPS, "emulator", seed)
        c = compare(single, batch.trial(b), "exact")
        assert c.passed and not c.only_in_one, c.report()
        assert c.compared_values > 50_000
    final = batch.weights["w1.w"][:, -1]
    assert not np.array_equal(final[0], final[1])
    np.testing.assert_array_equal(batch.weights["feedback[err+->delta+].w"][:, 0], ints["feedback[err+->delta+]"])


def test_reference_batch_equals_trials_run_one_by_one(setup):
    circuit, _, stim, weights = setup
    batch = neuro_hw.simulate(circuit, stim, STEPS, 1e-3, weights=weights)
    assert batch.batch == len(SEEDS)  # the trials come from the weights
    for b in range(len(SEEDS)):
        single = neuro_hw.simulate(circuit, stim, STEPS, 1e-3, weights={k: v[b] for k, v in weights.items()})
        for key in ("w1.w", "w2.w"):  # float: batched (einsum) and single (matmul) products round apart
            np.testing.assert_allclose(single.weights[key][0], batch.weights[key][b], rtol=0, atol=1e-14)
        np.testing.assert_allclose(single.states["o.y"][0], batch.states["o.y"][b], rtol=0, atol=1e-14)
    assert not np.array_equal(batch.states["o.y"][0], batch.states["o.y"][1])


def test_bad_weights_are_refused_with_node_and_reason(setup):
    circuit, program, stim, weights = setup
    run = dict(inputs=stim, steps=5, backend="emulator", seed=SEEDS)
    with pytest.raises(InputError, match="not a weight node") as err:
        neuro_hw.run(program, weights={"h": weights["w1"]}, **run)
    assert err.value.node == "h"
    with pytest.raises(InputError, match="shape"):
        neuro_hw.run(program, weights={"w1": weights["w1"][:, :3]}, **run)
    with pytest.raises(InputError, match=r"\(2, 24, 64\); expected \(24, 64\) or \(3, 24, 64\) for 3 trials"):
        neuro_hw.run(program, weights={"w1": weights["w1"][:2]}, **run)
    too_big = weights["w1"].copy()
    too_big[1, 2, 3] = 5.0  # w_bounds are +-1
    with pytest.raises(InputError, match=r"trial 1, row 2, column 3") as err:
        neuro_hw.run(program, weights={"w1": too_big}, **run)
    assert err.value.node == "w1" and err.value.field == "weights"
    nan = weights["feedback"].copy()
    nan[0, 0, 0] = np.nan
    with pytest.raises(InputError, match="NaN"):
        neuro_hw.run(program, weights={"feedback": nan}, **run)
    with pytest.raises(InputError, match="not a weight node"):
        neuro_hw.simulate(circuit, stim, 5, 1e-3, weights={"nope": weights["w1"]})
    with pytest.raises(InputError, match="trials"):
        neuro_hw.simulate(circuit, {k: np.stack([v, v]) for k, v in stim.items()}, 5, 1e-3, weights=weights)


@pytest.mark.lava
def test_lava_batch_with_per_trial_weights_equals_the_emulator(setup):
    from neuro_hw.compare import compare

    _, program, stim, weights = setup
    two = {k: v[:2] for k, v in weights.items()}
    emu = neuro_hw.run(program, stim, 30, backend="emulator", seed=SEEDS[:2], weights=two)
    lava = neuro_hw.run(program, stim, 30, backend="lava", seed=SEEDS[:2], weights=two)
    c = compare(lava, emu, "exact")
    assert c.passed and not c.only_in_one, c.report()
    assert not np.array_equal(lava.weights["w1.w"][0, -1], lava.weights["w1.w"][1, -1])
