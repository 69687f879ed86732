"""Closed-loop host I/O on the emulator: chunked == whole run; a spiking tracking loop that works."""

import numpy as np
import pytest

import neuro_hw
from neuro_hw.circuits.stdp import correlated_inputs, stdp_circuit
from neuro_hw.circuits.tracking import TrackingEnv, tracking_circuit
from neuro_hw.emulator import EmulatorSession
from neuro_hw.errors import InputError
from neuro_hw.hil.closed_loop import run_closed_loop

DT = 1e-3


def test_chunked_session_equals_one_run():
    program = neuro_hw.compile(stdp_circuit(n_in=12, n_out=3), dt=DT)
    x = correlated_inputs(300, 12, seed=3)[0]
    whole = neuro_hw.run(program, {"input": x}, 300, backend="emulator", seed=4)
    bounds = [0, 7, 57, 58, 300]
    with EmulatorSession(program, seed=4) as session:
        parts = [session.step({"input": x[a:b]}, b - a) for a, b in zip(bounds, bounds[1:], strict=False)]
    for key in whole.spikes:
        np.testing.assert_array_equal(np.concatenate([p.spikes[key] for p in parts], axis=1), whole.spikes[key])
    for key in whole.states:
        np.testing.assert_array_equal(np.concatenate([p.states[key] for p in parts], axis=1), whole.states[key])
    w = np.concatenate([p.weights["synapses.w"] for p in parts], axis=1)
    np.testing.assert_array_equal(w, whole.weights["synapses.w"][:, 1:])
    assert whole.spikes["neurons"].sum() > 0
    with pytest.raises(InputError, match="session is closed"):
        session.step({"input": x[:1]}, 1)


def _track(gain, chunk=20, steps=1000, backend="emulator"):
    program = neuro_hw.compile(tracking_circuit(), dt=DT)
    env = TrackingEnv(chunk=chunk, gain=gain)
    run = run_closed_loop(program, env, steps, chunk, backend=backend)
    return env, run


def test_tracking_loop_reduces_error_and_is_deterministic():
    controlled, run = _track(gain=0.01)
    uncontrolled, _ = _track(gain=0.0)
    err_on = np.mean(np.abs(controlled.errors[5:]))
    err_off = np.mean(np.abs(uncontrolled.errors[5:]))
    assert err_on < 0.5 * err_off, (err_on, err_off)
    assert run.spikes("right").sum() > 0 and run.spikes("left").sum() > 0
    again, _ = _track(gain=0.01)
    np.testing.assert_array_equal(controlled.positions, again.positions)


def test_closed_loop_refuses_bad_arguments():
    program = neuro_hw.compile(tracking_circuit(), dt=DT)
    env = TrackingEnv(chunk=10)
    with pytest.raises(InputError, match="chunk must be a positive integer"):
        run_closed_loop(program, env, 100, 0)
    with pytest.raises(InputError, match="closed loop runs on 'emulator' or 'lava'"):
        run_closed_loop(program, env, 100, 10, backend="reference")


@pytest.mark.lava
def test_lava_closed_loop_trajectory_equals_emulator():
    """The same controller in the loop on a persistent Lava run and on the emulator: identical trajectories."""
    env_lava, run_lava = _track(gain=0.01, steps=200, backend="lava")
    env_emu, run_emu = _track(gain=0.01, steps=200)
    assert run_lava.backend == "lava" and len(run_lava.chunks) == 10
    np.testing.assert_array_equal(env_lava.positions, env_emu.positions)
    np.testing.assert_array_equal(run_lava.spikes("left"), run_emu.spikes("left"))
    assert run_lava.spikes("left").sum() + run_lava.spikes("right").sum() > 0
    assert np.ptp(env_lava.positions) > 0  # the controller actually moved the plant
