"""The experiments of seed P2 on the reconstruction (numpy ground truth, float64), scaled to a small machine.

* :func:`curves`: the monitors over training of amorphous / structured networks on the digits (paper Fig. 2b);
* :func:`metaplasticity`: dW against postsynaptic activity in the motif, at init and after two activity histories
  (paper Fig. 2a2);
* :func:`flexibility`: two input branches (image, noise) onto a shared level; the branches are swapped at epoch
  ``RT`` (paper Fig. 3);
* :func:`evolve_evaluate`: the evaluation function of the evolution experiment (a ``neuro_hw.sweep`` population:
  random signs and gains of the heterosynaptic updates, selection on the task loss).

Everything is seeded; the conditions of each number are in the returned dicts (``docs/heterosynaptic.md``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict
from typing import Any

import numpy as np

from neuro_hw.circuits import heterosynaptic_numpy as hn
from neuro_hw.circuits.digits import DigitsSplit, epoch_order, load_digits_split, one_hot

CURVE_SIZES = (64, 20, 20, 20, 10)


def _split(split: DigitsSplit | None) -> DigitsSplit:
    return load_digits_split() if split is None else split


def curves(kind: str = "amorphous", samples: int = 20000, probe_every: int = 1000, seed: int = 0,
           params: hn.HeteroParams | None = None, sizes: Sequence[int] = CURVE_SIZES, n_probe: int = 300,
           split: DigitsSplit | None = None) -> dict[str, Any]:  # fmt: skip
    """Train one network online on the digits for ``samples`` updates and probe it every ``probe_every``.

    ``kind``: ``amorphous`` (neuron-level random masks, :func:`~.heterosynaptic_numpy.amorphous` with topology
    seed ``seed``), ``amorphous_matched`` (the same forward wiring, projections mirroring it:
    :func:`~.heterosynaptic_numpy.matched`), ``amorphous_blocks`` or ``structured``.  Probe batch: the first
    ``n_probe`` training samples.
    Returns the series (per hidden level where it applies) and the test accuracy at the end."""
    sp = _split(split)
    params = params or hn.HeteroParams(lam=0.001, lam_v=0.001)
    topo = {
        "amorphous": lambda: hn.amorphous(sizes, seed=seed),
        "amorphous_matched": lambda: hn.matched(hn.amorphous(sizes, seed=seed)),
        "amorphous_blocks": lambda: hn.amorphous_blocks(sizes, seed=seed),
        "structured": lambda: hn.structured(sizes),
    }[kind]()
    state = hn.init_state(topo, params, seed)
    x, t = sp.x_train, one_hot(sp.y_train)
    epochs = -(-samples // len(x))
    order = epoch_order(len(x), epochs, seed)[:samples]
    trace = hn.train(topo, params, state, x, t, order, x[:n_probe], t[:n_probe], probe_every)
    L = topo.n_levels
    drift = trace.v_drift
    return {
        "kind": kind,
        "seed": seed,
        "sizes": list(topo.sizes),
        "samples": trace.samples.tolist(),
        "params": asdict(params),
        "forward_synapses": topo.n_forward_synapses(),
        "feedback_synapses": topo.n_feedback_synapses(),
        "alignment": {str(lv): trace.series("alignment", lv).tolist() for lv in range(1, L)},
        "alignment_all": trace.series("alignment_all").tolist(),
        "alignment_p": trace.series("alignment_p").tolist(),
        "phi_patch": {str(lv): trace.series("phi_patch", lv).tolist() for lv in range(1, L)},
        "dc": trace.series("dc").tolist(),
        "dc_positive": trace.series("dc_positive").tolist(),
        "dc_patches5": [_patch_dc(p, 5) for p in trace.probes],
        "hs_residual": trace.series("hs_residual").tolist(),
        "hebbian": {str(lv): trace.series("hebbian", lv).tolist() for lv in range(1, L)},
        "hebbian_bp": {str(lv): trace.series("hebbian_bp", lv).tolist() for lv in range(1, L)},
        "v_drift": drift.tolist(),
        "v_drift_relative": (drift / drift[0]).tolist() if drift.size else [],
        "loss": trace.series("loss").tolist(),
        "train_accuracy": trace.series("accuracy").tolist(),
        "test_accuracy": hn.accuracy(topo, params, state, sp.x_test, sp.y_test),
    }


def _patch_dc(probe: hn.Probe, size: int) -> float:
    """DC over patches of ``size`` neurons (consecutive neurons of a level; phi pooled per patch)."""
    phis = []
    for phi in probe.phi:
        for k in range(0, len(phi), size):
            block = phi[k : k + size]
            block = block[np.isfinite(block)]
            if block.size:
                phis.append(float(np.mean(block)))
    return hn.monitors.dc_fraction(np.asarray(phis))[1]


# ---------------------------------------------------------------- metaplasticity


def dw_curve(topo: hn.Topology, params: hn.HeteroParams, state: hn.State, x: np.ndarray, t: np.ndarray,
             neuron: int, activities: np.ndarray) -> np.ndarray:  # fmt: skip
    """The heterosynaptic dW of hidden neuron ``neuron`` of the motif (mean over its input synapses) when its
    activity is clamped to each value of ``activities`` on the samples ``x``/``t`` (mean over samples):
    ``dW_i. = -eta * p_i(t') * h~`` with ``p_i = V_i . e``, ``e`` the output error with ``h_i`` clamped (the
    gate is taken open: the curve is the rule's dependence on the post activity)."""
    out = []
    for v in activities:
        sig = hn.run_signals(topo, params, state, x, t)
        h1 = sig.h[1].copy()
        h1[:, neuron] = v
        o = h1 @ state.W[(2, 1)].T
        e = o - t
        p = e @ state.V[(1, 2)][neuron]
        out.append(float(np.mean(-params.eta * p * x.mean(axis=1))))
    return np.asarray(out)


def _crossing(h: np.ndarray, dw: np.ndarray) -> float:
    """The activity at which ``dw`` changes sign (linear interpolation; NaN without a crossing)."""
    s = np.sign(dw)
    idx = np.flatnonzero(s[:-1] * s[1:] < 0)
    if idx.size == 0:
        return float("nan")
    k = idx[0]
    return float(h[k] - dw[k] * (h[k + 1] - h[k]) / (dw[k + 1] - dw[k]))


def metaplasticity(n_hidden: int = 4, c_h: float = 4.0, samples: int = 3000, histories: Sequence[float] = (0.5, 1.5),
                   seed: int = 0, split: DigitsSplit | None = None) -> dict[str, Any]:  # fmt: skip
    """dW against the post activity of each motif neuron (``c_h`` = 4 as the paper's axis), at init and after
    ``samples`` updates under each activity history (the input scaled by ``k``), on the same 100 probe samples."""
    sp = _split(split)
    topo = hn.motif(64, n_hidden, 10)
    params = hn.HeteroParams(eta=0.01, eta_v=0.01, c_h=c_h, lam=0.001, lam_v=0.001)
    x, t = sp.x_train, one_hot(sp.y_train)
    probe_x, probe_t = x[:100], t[:100]
    h = np.linspace(0.0, c_h, 41)
    start = hn.init_state(topo, params, seed)
    out: dict[str, Any] = {"activities": h.tolist(), "params": asdict(params), "samples": samples, "seed": seed}
    out["init"] = [dw_curve(topo, params, start, probe_x, probe_t, i, h).tolist() for i in range(n_hidden)]
    out["init_threshold"] = [_crossing(h, np.asarray(c)) for c in out["init"]]
    order = epoch_order(len(x), -(-samples // len(x)), seed)[:samples]
    for k in histories:
        state = start.copy()
        hn.train(topo, params, state, x * k, t, order)
        curves_k = [dw_curve(topo, params, state, probe_x, probe_t, i, h) for i in range(n_hidden)]
        sig = hn.run_signals(topo, params, state, x[order[-500:]] * k, t[order[-500:]])
        out[f"history_{k:g}"] = {
            "curves": [c.tolist() for c in curves_k],
            "threshold": [_crossing(h, c) for c in curves_k],
            "mean_activity": sig.h[1].mean(axis=0).tolist(),
        }
    return out


# ---------------------------------------------------------------- flexibility


def branch_topology(n_in: int = 64, n_branch: int = 16, n_shared: int = 16, n_out: int = 10) -> hn.Topology:
    """Two input branches: input ``[A | B]`` (2 n_in), level 1 = branch A (first ``n_branch``, reads A) and branch
    B (reads B), level 2 shared, level 3 output; projections from level 2 onto both branches and from the output
    onto the shared level (dense)."""
    sizes = (2 * n_in, 2 * n_branch, n_shared, n_out)
    m10 = np.zeros((2 * n_branch, 2 * n_in), dtype=bool)
    m10[:n_branch, :n_in] = True
    m10[n_branch:, n_in:] = True
    fwd = {(1, 0): m10, (2, 1): np.ones((n_shared, 2 * n_branch), bool), (3, 2): np.ones((n_out, n_shared), bool)}
    fb = {(1, 2): np.ones((2 * n_branch, n_shared), bool), (2, 3): np.ones((n_shared, n_out), bool)}
    return hn.Topology(sizes, fwd, fb, "branches")


def flexibility(rts: Sequence[int] = (0, 1, 5, 10, 30, 50), after: int = 30, n_train: int = 300,
                seeds: Sequence[int] = (0, 1, 2), params: hn.HeteroParams | None = None,
                split: DigitsSplit | None = None) -> dict[str, Any]:  # fmt: skip
    """Swap the branches' inputs at epoch ``RT``: before, the image enters A and uniform noise (fresh every sample)
    enters B; from epoch ``RT`` on the image enters B and the noise A.  Train ``after`` epochs after the swap
    (epochs of ``n_train`` samples), test accuracy at the end (with the swapped wiring); ``original``: never
    swapped, ``after`` epochs."""
    sp = _split(split)
    params = params or hn.HeteroParams(eta=0.02, eta_v=0.02, lam=0.001, lam_v=0.001)
    topo = branch_topology()
    xs, ts = sp.x_train[:n_train], one_hot(sp.y_train[:n_train])
    results: dict[str, Any] = {"rts": list(rts), "after": after, "n_train": n_train, "seeds": list(seeds),
                               "params": asdict(params), "final": {}, "curves": {}}  # fmt: skip
    for key in ["original", *[str(r) for r in rts]]:
        finals, curves_ = [], []
        for seed in seeds:
            rng = np.random.default_rng([seed, 11])
            state = hn.init_state(topo, params, seed)
            rt = None if key == "original" else int(key)
            total = after if rt is None else rt + after
            order = epoch_order(n_train, total, seed)
            noise = rng.random((len(order), 64))
            acc = []
            for epoch in range(total):
                swapped = rt is not None and epoch >= rt
                idx = order[epoch * n_train : (epoch + 1) * n_train]
                nz = noise[epoch * n_train : (epoch + 1) * n_train]
                x = np.concatenate([nz, xs[idx]] if swapped else [xs[idx], nz], axis=1)
                hn.train(topo, params, state, x, ts[idx], np.arange(n_train))
                test_noise = np.random.default_rng([seed, 12]).random((sp.n_test, 64))
                xt = np.concatenate([test_noise, sp.x_test] if swapped else [sp.x_test, test_noise], axis=1)
                acc.append(hn.accuracy(topo, params, state, xt, sp.y_test))
            finals.append(acc[-1])
            curves_.append(acc)
        results["final"][key] = finals
        results["curves"][key] = curves_
    return results


# ---------------------------------------------------------------- evolution

EVOLVE_DEFAULTS: dict[str, Any] = {
    "sizes": "64,16,16,16,10",
    "samples": 1000,
    "n_probe": 200,
    "eta": 0.05,
    "lam": 0.001,
    "topology_seed": 0,
    "out_gain": 1.0,
}


def evolve_evaluate(params: Mapping[str, Any], target: Any, backend: str, seeds: list[int]) -> list[dict[str, Any]]:
    """Evaluation of one circuit of the evolution experiment (``neuro_hw.sweep`` population, reference backend).

    The genome: ``s1..s{L-1}`` (sign and gain of dW per hidden level) and ``r1..r{L-1}`` (of dV); the readout
    learns with gain ``out_gain`` (default 1; with a fixed readout the Kolen-Pollack-like matching has nothing to
    match and no genome learns: measured 12-19 % accuracy after 1000 samples).  An amorphous
    network (``topology_seed``) is trained online for ``samples`` digits with those gains -- no gradient is
    computed in training -- and its ``loss`` (mean ``|e|^2/2`` on 450 test samples, the fitness) is returned with
    the monitors on a probe batch: ``alignment`` (over all hidden synapses; the true gradient is computed for this
    measurement only), ``dc_positive`` (fraction of neurons with phi > 0), ``dc`` and ``accuracy``."""
    if backend != "reference":
        raise ValueError(f"evolve_evaluate runs the numpy ground truth: backend must be 'reference', got {backend!r}")
    p = {**EVOLVE_DEFAULTS, **params}
    sizes = tuple(int(s) for s in str(p["sizes"]).split(","))
    L = len(sizes) - 1
    gains = hn.Gains(w=tuple(float(p.get(f"s{lv}", 1.0)) for lv in range(1, L)),
                     v=tuple(float(p.get(f"r{lv}", 1.0)) for lv in range(1, L)), out=float(p["out_gain"]))  # fmt: skip
    hp = hn.HeteroParams(eta=float(p["eta"]), eta_v=float(p["eta"]), lam=float(p["lam"]), lam_v=float(p["lam"]))
    topo = hn.amorphous(sizes, seed=int(p["topology_seed"]))
    sp = load_digits_split()
    x, t = sp.x_train, one_hot(sp.y_train)
    out = []
    for seed in seeds:
        state = hn.init_state(topo, hp, seed)
        order = epoch_order(len(x), 1, seed)[: int(p["samples"])]
        hn.train(topo, hp, state, x, t, order, gains=gains)
        test = hn.probe(topo, hp, state, sp.x_test, one_hot(sp.y_test), gains, labels=sp.y_test)
        pr = hn.probe(topo, hp, state, x[: int(p["n_probe"])], t[: int(p["n_probe"])], gains)
        loss = test.loss if np.isfinite(test.loss) else 1e6
        out.append({"loss": float(loss), "accuracy": test.accuracy, "alignment": pr.alignment_all,
                    "dc": pr.dc, "dc_positive": pr.dc_positive})  # fmt: skip
    return out
