"""Pair-based STDP selecting correlated inputs (Song, Miller & Abbott 2000, Nat. Neurosci. 3:919).

Circuit: ``n_in`` input spike trains -> plastic ``Linear`` -> ``n_out`` LIF neurons -> Output.

* LIF: ``tau dv/dt = -v + r I`` with ``tau = 20 ms``, ``r = tau/dt`` (one input spike through weight
  ``w`` raises v by about ``w``), threshold 1, reset 0.
* Rule (additive, all-to-all traces): ``dw = A_plus * x1 * y0 - A_minus * y1 * x0`` every step,
  with pre trace ``x1`` and post trace ``y1`` (impulse 1, ``tau_plus = tau_minus = 20 ms``), weights
  clipped to ``[0, w_max]``.  For a pre spike at ``t_pre`` and post spike at ``t_post`` the weight
  change is ``A_plus exp(-(t_post - t_pre)/tau_plus)`` if pre comes first, and
  ``-A_minus exp(-(t_pre - t_post)/tau_minus)`` otherwise.
* Inputs: the first half of the inputs share a common rate modulation (correlated), the other
  half are independent Poisson trains with the same mean rate.  STDP potentiates the correlated group
  and depresses the rest, the classic competitive outcome.
"""

from __future__ import annotations

import nir
import numpy as np

from neuro_hw.ir.circuit import Circuit

DT = 1e-3  # s


def stdp_circuit(
    n_in: int = 40,
    n_out: int = 2,
    *,
    dt: float = DT,
    tau_mem: float = 0.02,
    v_threshold: float = 1.0,
    a_plus: float = 0.005,
    a_minus_ratio: float = 1.05,
    tau_plus: float = 0.02,
    tau_minus: float = 0.02,
    w_max: float = 0.25,
    w_init: float = 0.125,
    seed: int = 0,
) -> Circuit:
    """Build the STDP circuit (see module docstring); initial weights are ``w_init`` +/- 20 % (seeded)."""
    rng = np.random.default_rng(seed)
    weight = np.clip(w_init * (1 + 0.2 * rng.uniform(-1, 1, size=(n_out, n_in))), 0, w_max)
    ones = np.ones(n_out)
    nodes = {
        "input": nir.Input(np.array([n_in])),
        "synapses": nir.Linear(weight),
        "neurons": nir.LIF(
            tau=tau_mem * ones,
            r=(tau_mem / dt) * ones,
            v_leak=0 * ones,
            v_threshold=v_threshold * ones,
            v_reset=0 * ones,
        ),
        "output": nir.Output(np.array([n_out])),
    }
    edges = [("input", "synapses"), ("synapses", "neurons"), ("neurons", "output")]
    circuit = Circuit(nodes, edges, metadata={"name": "stdp-correlated-inputs", "dt": dt})
    circuit.add_plasticity(
        "synapses",
        f"dw = {a_plus!r}*x1*y0 - {a_plus * a_minus_ratio!r}*y1*x0",
        traces={"x1": (1.0, tau_plus), "y1": (1.0, tau_minus)},
        t_epoch=1,
        w_bounds=(0.0, w_max),
    )
    return circuit


def correlated_inputs(
    steps: int,
    n_in: int = 40,
    *,
    batch: int = 1,
    rate: float = 20.0,
    correlation: float = 0.4,
    dt: float = DT,
    seed: int = 0,
) -> np.ndarray:
    """Spike trains ``(batch, steps, n_in)``: first half correlated, second half independent Poisson.

    Correlated inputs follow a shared process: with probability ``correlation`` a spike is copied
    from a common "source" train of rate ``rate``, otherwise drawn independently, so every input
    has mean rate ``rate`` (Hz) and the first half has pairwise spike correlation ``~correlation**2``.
    """
    rng = np.random.default_rng(seed)
    p = rate * dt
    spikes = rng.random((batch, steps, n_in)) < p
    half = n_in // 2
    source = rng.random((batch, steps, 1)) < p
    copy = rng.random((batch, steps, half)) < correlation
    spikes[:, :, :half] = np.where(copy, source, spikes[:, :, :half])
    return spikes.astype(np.float64)
