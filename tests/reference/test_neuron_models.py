"""Reference neuron models against closed forms (exact integration) and Euler convergence."""

import math

import nir
import numpy as np
import pytest

from neuro_hw.errors import UnsupportedNodeError, ValidationError
from neuro_hw.reference.neurons import build_neuron

DT = 1e-4


def run(node, x, dt=DT, method="exact", var="v"):
    """Drive ``node`` with input ``x`` (T, *shape) or (B, T, *shape); return (outputs, var trace)."""
    x = np.asarray(x, dtype=float)
    if x.ndim == 2:
        x = x[None]
    stepper = build_neuron(node, dt, method)
    state = stepper.init_state(x.shape[0])
    outs, trace = [], []
    for t in range(x.shape[1]):
        outs.append(stepper.step(state, x[:, t]))
        trace.append(state[var].copy())
    return np.stack(outs, 1), np.stack(trace, 1)


def lif(tau=0.02, r=1.0, v_leak=0.0, v_th=1.0, v_reset=0.0, n=1):
    f = lambda v: np.full(n, float(v))  # noqa: E731
    return nir.LIF(tau=f(tau), r=f(r), v_leak=f(v_leak), v_threshold=f(v_th), v_reset=f(v_reset))


def test_lif_membrane_under_constant_current_matches_closed_form():
    tau, r, current = 0.02, 2.0, 0.4  # r I = 0.8 < threshold 1: no spikes
    steps = 2000
    _, v = run(lif(tau, r), np.full((steps, 1), current))
    t = np.arange(1, steps + 1) * DT
    np.testing.assert_allclose(v[0, :, 0], r * current * (1 - np.exp(-t / tau)), rtol=1e-12, atol=1e-14)


def test_lif_with_leak_relaxes_to_v_leak_plus_r_i():
    _, v = run(lif(tau=0.01, r=1.0, v_leak=-0.3, v_th=5.0), np.full((3000, 1), 0.5))
    t = np.arange(1, 3001) * DT
    np.testing.assert_allclose(v[0, :, 0], 0.2 + (0 - 0.2) * np.exp(-t / 0.01), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("r_i", [1.2, 2.0, 5.0])
def test_lif_first_spike_time_and_isi(r_i):
    tau, v_th = 0.02, 1.0
    t_star = -tau * math.log(1 - v_th / r_i)  # v(t*) = v_th under v = r I (1 - exp(-t/tau))
    first = math.floor(t_star / DT) + 1  # first step whose end time exceeds t* (strict >)
    steps = 4 * first + 10
    z, _ = run(lif(tau, r_i, v_th=v_th), np.ones((steps, 1)))
    times = np.flatnonzero(z[0, :, 0]) + 1
    assert times[0] == first
    # After reset to 0 the trajectory restarts: every inter-spike interval equals the first spike time.
    np.testing.assert_array_equal(np.diff(times), first)


def test_lif_subthreshold_never_spikes():
    z, _ = run(lif(r=1.0, v_th=1.0), np.ones((5000, 1)))  # r I == v_th: approached, never exceeded
    assert z.sum() == 0


def test_li_impulse_response():
    tau, r = 0.005, 3.0
    x = np.zeros((400, 1))
    x[0] = 1.0
    out, v = run(nir.LI(tau=np.array([tau]), r=np.array([r]), v_leak=np.zeros(1)), x)
    first = r * (1 - math.exp(-DT / tau))
    k = np.arange(400)
    np.testing.assert_allclose(v[0, :, 0], first * np.exp(-k * DT / tau), rtol=1e-12)
    np.testing.assert_array_equal(out, v)  # non-spiking: the output is v


def cuba(tau_s, tau_m, r=1.0, w_in=1.0, spiking=False):
    f = lambda v: np.array([float(v)])  # noqa: E731
    if spiking:
        return nir.CubaLIF(
            tau_syn=f(tau_s), tau_mem=f(tau_m), r=f(r), v_leak=f(0), v_threshold=f(1e9), v_reset=f(0), w_in=f(w_in)
        )
    return nir.CubaLI(tau_syn=f(tau_s), tau_mem=f(tau_m), r=f(r), v_leak=f(0), w_in=f(w_in))


def _analytic_cuba_step_pulse(t, tau_s, tau_m, r, w_in, dt):
    """v(t) after a pulse x=1 on [0, dt): superposition of a step at 0 and a negative step at dt."""

    def step_response(s):
        s = np.maximum(s, 0.0)
        if abs(tau_s - tau_m) < 1e-6 * tau_m:  # difference formula cancels; the limit is exact to ~1e-9
            return r * w_in * (1 - np.exp(-s / tau_m) - (s / tau_m) * np.exp(-s / tau_m))
        return r * w_in * (1 - (tau_s * np.exp(-s / tau_s) - tau_m * np.exp(-s / tau_m)) / (tau_s - tau_m))

    return step_response(t) - step_response(t - dt)


@pytest.mark.parametrize("tau_s, tau_m", [(0.002, 0.01), (0.01, 0.002), (0.005, 0.005), (0.005, 0.005 * (1 + 1e-9))])
@pytest.mark.parametrize("spiking", [False, True])
def test_cuba_impulse_response_double_exponential_and_alpha_limit(tau_s, tau_m, spiking):
    r, w_in, steps = 2.0, 1.5, 600
    x = np.zeros((steps, 1))
    x[0] = 1.0
    _, v = run(cuba(tau_s, tau_m, r, w_in, spiking), x)
    t = np.arange(1, steps + 1) * DT
    expected = _analytic_cuba_step_pulse(t, tau_s, tau_m, r, w_in, DT)
    assert np.all(np.isfinite(v))
    np.testing.assert_allclose(v[0, :, 0], expected, rtol=1e-6, atol=1e-12 * expected.max())


def test_if_counting_and_integrator():
    r, x, v_th, steps = 2.0, 3.0, 1.0, 1000
    node = nir.IF(r=np.array([r]), v_threshold=np.array([v_th]), v_reset=np.zeros(1))
    z, _ = run(node, np.full((steps, 1), x))
    per_step = r * x * DT  # 6e-4 per step: spike at the first k with k * 6e-4 > 1, i.e. every 1667 steps
    k = math.floor(v_th / per_step) + 1
    assert z.sum() == steps // k
    z, _ = run(node, np.full((10000, 1), x))
    assert z.sum() == 10000 // k == 5
    _, v = run(nir.I(r=np.array([r])), np.full((50, 1), x))
    np.testing.assert_allclose(v[0, :, 0], per_step * np.arange(1, 51), rtol=1e-12)


def test_euler_converges_at_first_order():
    tau, r, current = 0.01, 1.0, 0.5
    t_end = 0.02

    def error(dt):
        steps = round(t_end / dt)
        _, v = run(lif(tau, r, v_th=10), np.full((steps, 1), current), dt=dt, method="euler")
        return abs(v[0, -1, 0] - r * current * (1 - math.exp(-t_end / tau)))

    e1, e2 = error(1e-3), error(5e-4)
    assert 1.7 < e1 / e2 < 2.3  # halves with dt


def test_batch_equals_single_trials():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, 200, 4)) * 40
    node = nir.CubaLIF(
        tau_syn=np.full(4, 0.003),
        tau_mem=np.full(4, 0.01),
        r=np.ones(4),
        v_leak=np.zeros(4),
        v_threshold=np.full(4, 0.05),
        v_reset=np.zeros(4),
        w_in=np.ones(4),
    )
    z_all, v_all = run(node, x)
    for b in range(3):
        z, v = run(node, x[b])
        np.testing.assert_array_equal(z[0], z_all[b])
        np.testing.assert_array_equal(v[0], v_all[b])
    assert z_all.sum() > 0


def test_validation_errors_name_the_field():
    with pytest.raises(ValidationError, match="field 'tau'"):
        build_neuron(lif(tau=-1.0), DT)
    with pytest.raises(ValidationError, match="field 'r'"):
        build_neuron(lif(r=np.nan), DT)
    with pytest.raises(ValidationError, match="field 'dt'"):
        build_neuron(lif(), 0.0)
    with pytest.raises(UnsupportedNodeError, match="Affine is not a neuron model"):
        build_neuron(nir.Affine(np.ones((2, 2)), np.zeros(2)), DT)
