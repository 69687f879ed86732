"""Evaluation functions for sweeps: the STDP precision study and a toy objective.

An evaluation function is called as ``evaluate(params, target, backend, seeds)`` -- ``params`` the point's
parameters (a dict), ``target`` the resolved :class:`~neuro_hw.compiler.target.Target` variant (``None`` on the
``reference`` backend), ``backend`` a name of :mod:`neuro_hw.backends`, ``seeds`` a list -- and returns one dict of
scalar metrics per seed, in order.  It is named in a sweep as ``module:function`` and imported by every worker.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

#: Parameters of :func:`stdp_selectivity` and their defaults (the demo circuit: ``neuro-hw demo``).
STDP_DEFAULTS: dict[str, Any] = {
    "n_in": 40,
    "n_out": 2,
    "steps": 20000,
    "dt": 1e-3,
    "a_plus": 0.005,
    "a_minus_ratio": 1.05,
    "tau": 0.02,
    "w_max": 0.25,
    "w_init": 0.125,
    "rate": 20.0,
    "correlation": 0.4,
    "weight_seed": 0,
}


def _with_defaults(params: Mapping[str, Any], defaults: Mapping[str, Any], name: str) -> dict[str, Any]:
    unknown = sorted(set(params) - set(defaults))
    if unknown:
        raise ValueError(f"{name}: unknown parameter(s) {unknown}; known: {sorted(defaults)}")
    return {**defaults, **params}


def stdp_selectivity(params: Mapping[str, Any], target: Any, backend: str, seeds: list[int]) -> list[dict[str, Any]]:
    """How well pair-based STDP selects the correlated inputs (the demo circuit, ``neuro_hw.circuits.stdp``).

    Builds ``stdp_circuit(n_in, n_out, a_plus=, a_minus_ratio=, tau_plus=tau_minus=tau, w_max=, w_init=,
    seed=weight_seed)`` -- the same initial weights for every seed -- and runs it for ``steps`` steps of ``dt`` on
    ``correlated_inputs(steps, n_in, rate=, correlation=, seed=s)``, one trial per seed ``s``, all seeds of the
    call as one batch: the float64 reference (``backend="reference"``) or the circuit compiled for ``target`` on
    a fixed-point backend, whose learning engine's stochastic rounding is seeded with ``s`` too.

    Metrics per seed, weights in the circuit's float units (``Result.in_float_units``): ``selectivity`` = mean final
    weight of the correlated half of the inputs minus that of the independent half (0.08-0.12 in the reference
    with the defaults; ``w_max`` = 0.25 at most), ``w_corr``, ``w_indep`` (the two means), ``rate_hz`` (mean
    output rate).  A sweep with ``baseline = "reference"`` adds ``ratio.selectivity``: the fraction of the float
    reference's selectivity that the fixed-point run keeps.
    """
    import neuro_hw
    from neuro_hw.circuits.stdp import correlated_inputs, stdp_circuit

    p = _with_defaults(params, STDP_DEFAULTS, "stdp_selectivity")
    n_in, steps, dt = int(p["n_in"]), int(p["steps"]), float(p["dt"])
    circuit = stdp_circuit(
        n_in,
        int(p["n_out"]),
        dt=dt,
        a_plus=float(p["a_plus"]),
        a_minus_ratio=float(p["a_minus_ratio"]),
        tau_plus=float(p["tau"]),
        tau_minus=float(p["tau"]),
        w_max=float(p["w_max"]),
        w_init=float(p["w_init"]),
        seed=int(p["weight_seed"]),
    )
    spikes = np.concatenate([
        correlated_inputs(steps, n_in, rate=float(p["rate"]), correlation=float(p["correlation"]), dt=dt, seed=s)
        for s in seeds
    ])  # fmt: skip
    if backend == "reference":
        result = neuro_hw.simulate(circuit, {"input": spikes}, steps, dt, seed=int(seeds[0]), weights_every=steps)
        w_final = result.weights["synapses.w"][:, -1]
    else:
        program = neuro_hw.compile(circuit, target=target, dt=dt)
        result = neuro_hw.run(program, {"input": spikes}, steps, backend=backend, seed=list(seeds), weights_every=steps)
        w_final = result.in_float_units("synapses.w")[:, -1]
    half = n_in // 2
    counts = (result.spikes["neurons"] != 0).sum(axis=1)  # (B, n_out)
    rows = []
    for b in range(len(seeds)):
        w_corr, w_indep = float(w_final[b, :, :half].mean()), float(w_final[b, :, half:].mean())
        rows.append({
            "selectivity": w_corr - w_indep,
            "w_corr": w_corr,
            "w_indep": w_indep,
            "rate_hz": float(counts[b].mean() / (steps * dt)),
        })  # fmt: skip
    return rows


def quadratic(params: Mapping[str, Any], target: Any, backend: str, seeds: list[int]) -> list[dict[str, Any]]:
    """A toy objective with a known optimum, for trying engines and optimisers: parameters ``x0, x1, ...``, optimum
    ``x_i = i + 1``; ``loss = sum_i (x_i - (i + 1))^2 + noise * N(0, 1)`` with the normal draw seeded by the seed
    (``noise`` a parameter, default 0).  Metrics: ``loss`` and ``distance`` (Euclidean, noise-free)."""
    noise = float(params.get("noise", 0.0))
    xs = {k: float(v) for k, v in params.items() if k.startswith("x") and k[1:].isdigit()}
    sq = sum((v - (int(k[1:]) + 1)) ** 2 for k, v in xs.items())
    return [
        {"loss": sq + noise * float(np.random.default_rng(s).standard_normal()), "distance": float(np.sqrt(sq))}
        for s in seeds
    ]
