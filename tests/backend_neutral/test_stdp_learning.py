"""Backend-neutral: the STDP circuit learns the same thing on every backend (``pytest --target=...``).

Each test here runs once per ``--target`` given (default: reference; ``make test`` passes reference and
emulator; ``--target=lava`` runs them on Lava).  Float and fixed point must reach the same qualitative
outcome; the goldens pin each backend's exact trajectory.
"""

import numpy as np
import pytest

from neuro_hw.circuits.stdp import correlated_inputs, stdp_circuit

DT = 1e-3


def test_stdp_potentiates_the_correlated_inputs(target):
    """40 inputs (first 20 correlated), 2 LIF neurons, 6 s, 3 trials: on every trial and neuron the correlated
    group ends with a larger mean weight than the independent group (Song et al. 2000)."""
    steps, n_in = 6000, 40
    x = correlated_inputs(steps, n_in, batch=3, seed=11)
    result = target.run(stdp_circuit(n_in=n_in), {"input": x}, steps, DT, seed=[0, 1, 2], weights_every=steps)
    w = result.in_float_units("synapses.w") if target.fixed_point else result.weights["synapses.w"]
    final = w[:, -1]  # (B, n_out, n_in)
    correlated, independent = final[:, :, : n_in // 2].mean(axis=2), final[:, :, n_in // 2 :].mean(axis=2)
    assert result.spikes["neurons"].sum() > 0
    assert np.all(correlated > independent + 0.02), (correlated, independent)


def test_stdp_run_equals_its_golden(target, golden):
    """A short run of 300 steps equals the golden recorded for this backend: exact for fixed point (integers),
    the ``strict`` profile for the float reference (last-bit float differences across numpy builds)."""
    x = correlated_inputs(300, 8, seed=4)[0]
    circuit = stdp_circuit(n_in=8, n_out=2)
    options = {} if target.fixed_point else {"record": "all"}
    result = target.run(circuit, {"input": x}, 300, DT, seed=0, **options)
    profile = "exact" if target.fixed_point else "strict"
    comparison = golden(result, f"stdp_{target.backend}", profile)
    assert comparison.passed


@pytest.mark.fixed_point
def test_tracking_closed_loop_reduces_the_error(target):
    """Closed loop (host in the loop every 20 steps) on the backend: the controller halves the tracking error.

    Fixed point only: closed-loop stepping needs a resumable run (the emulator's or Lava's session); the
    float reference has none."""
    import neuro_hw
    from neuro_hw.circuits.tracking import TrackingEnv, tracking_circuit
    from neuro_hw.hil.closed_loop import run_closed_loop

    program = target.compile(tracking_circuit(), DT)
    errors = {}
    for gain in (0.01, 0.0):
        env = TrackingEnv(chunk=20, gain=gain)
        run_closed_loop(program, env, 600, 20, backend=target.backend)
        errors[gain] = np.mean(np.abs(env.errors[5:]))
    assert errors[0.01] < 0.5 * errors[0.0], errors
    assert isinstance(program, neuro_hw.compiler.Program)
