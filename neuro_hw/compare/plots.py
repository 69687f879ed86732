"""Plots of Results written to files (matplotlib, headless ``Agg`` backend)."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from neuro_hw.result import Result  # noqa: E402


def raster(ax, spikes: np.ndarray, dt: float, *, t0: int = 0, color: str = "k", label: str = "") -> None:
    """Draw a spike raster of ``spikes`` ``(T, n)`` on ``ax`` (time axis in the graph's time unit)."""
    steps, neurons = np.nonzero(np.asarray(spikes).reshape(spikes.shape[0], -1))
    ax.scatter((steps + t0 + 1) * dt, neurons, s=2, marker="|", color=color, linewidths=0.8)
    ax.set_ylabel(label or "neuron")
    ax.set_ylim(-0.5, spikes.reshape(spikes.shape[0], -1).shape[1] - 0.5)


def plot_learning_run(
    result: Result,
    path: str | os.PathLike,
    *,
    input_spikes: np.ndarray | None = None,
    spike_node: str,
    weight_key: str,
    groups: Mapping[str, Sequence[int]] | None = None,
    trial: int = 0,
    window: int = 1000,
    title: str = "",
) -> Path:
    """Raster (inputs and outputs over the last ``window`` steps), weight evolution and final weights.

    ``groups`` names sets of presynaptic indices whose mean weight is plotted over time.
    """
    path = Path(path)
    w = result.weights[weight_key][trial]  # (K, n_post, n_pre)
    steps = result.weight_steps[weight_key]
    t0 = max(0, result.steps - window)
    rows = 4 if input_spikes is not None else 3
    fig, axes = plt.subplots(rows, 1, figsize=(9, 2.4 * rows), constrained_layout=True)
    i = 0
    if input_spikes is not None:
        raster(axes[i], input_spikes[trial, t0 : result.steps], result.dt, t0=t0, label="input")
        axes[i].set_title(f"input spikes (last {result.steps - t0} steps)")
        i += 1
    raster(axes[i], result.spikes[spike_node][trial, t0:], result.dt, t0=t0, color="tab:red", label=spike_node)
    axes[i].set_title(f"{spike_node} spikes")
    axes[i].set_xlabel("time")
    i += 1
    ax = axes[i]
    groups = groups or {"all": range(w.shape[2])}
    for (name, idx), color in zip(groups.items(), ["tab:blue", "tab:orange", "tab:green", "tab:purple"], strict=False):
        idx = list(idx)
        ax.plot(steps * result.dt, w[:, :, idx].mean(axis=(1, 2)), color=color, label=f"{name} (mean)")
        ax.fill_between(
            steps * result.dt, w[:, :, idx].min(axis=(1, 2)), w[:, :, idx].max(axis=(1, 2)), color=color, alpha=0.15
        )
    ax.set_xlabel("time")
    ax.set_ylabel("weight")
    ax.set_title(f"{weight_key} over time (band: min..max)")
    ax.legend(loc="best", fontsize=8)
    i += 1
    im = axes[i].imshow(w[-1], aspect="auto", interpolation="nearest", cmap="viridis")
    axes[i].set_xlabel("presynaptic index")
    axes[i].set_ylabel("postsynaptic")
    axes[i].set_title("final weights")
    fig.colorbar(im, ax=axes[i])
    if title:
        fig.suptitle(title)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _save(fig, path: str | os.PathLike) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_raster(result: Result, node: str, path: str | os.PathLike, *, trial: int = 0) -> Path:
    """Spike raster of ``node`` in one trial."""
    fig, ax = plt.subplots(figsize=(9, 3), constrained_layout=True)
    raster(ax, result.spikes[node][trial], result.dt, label=node)
    ax.set_xlabel("time")
    ax.set_title(f"{node} spikes ({result.backend}, trial {trial})")
    return _save(fig, path)


def plot_states(
    result: Result, keys: Sequence[str], path: str | os.PathLike, *, trial: int = 0, neurons: Sequence[int] = (0,)
) -> Path:
    """Traces of recorded state variables (in float units when the result is fixed point)."""
    fig, axes = plt.subplots(len(keys), 1, figsize=(9, 2.4 * len(keys)), squeeze=False, constrained_layout=True)
    t = np.arange(1, result.steps + 1) * result.dt
    for ax, key in zip(axes[:, 0], keys, strict=True):
        data = _float_or_raw(result, key)[trial].reshape(result.steps, -1)
        for i in neurons:
            ax.plot(t, data[:, i], lw=0.8, label=f"[{i}]")
        ax.set_ylabel(key)
        ax.legend(loc="upper right", fontsize=7)
    axes[-1, 0].set_xlabel("time")
    fig.suptitle(f"states ({result.backend}, trial {trial})")
    return _save(fig, path)


def plot_weight_evolution(
    result: Result, key: str, path: str | os.PathLike, *, trial: int = 0, max_lines: int = 50
) -> Path:
    """Every synapse's weight over time (up to ``max_lines``), mean in black."""
    w = _float_or_raw(result, key)[trial]
    k = w.reshape(w.shape[0], -1)
    t = result.weight_steps[key] * result.dt
    fig, ax = plt.subplots(figsize=(9, 3.2), constrained_layout=True)
    ax.plot(t, k[:, :max_lines], lw=0.5, alpha=0.6)
    ax.plot(t, k.mean(axis=1), color="k", lw=2, label="mean")
    ax.set_xlabel("time")
    ax.set_ylabel(key)
    ax.legend()
    ax.set_title(f"{key} ({result.backend}, trial {trial})")
    return _save(fig, path)


def _float_or_raw(result: Result, key: str) -> np.ndarray:
    try:
        return result.in_float_units(key)
    except KeyError:
        return result.states[key] if key in result.states else result.weights[key]


def plot_overlay(
    reference: Result,
    fixed: Result,
    path: str | os.PathLike,
    *,
    state: str,
    spikes: str,
    neuron: int = 0,
    trial: int = 0,
    divergence_step: int | None = None,
) -> Path:
    """Float vs fixed: one neuron's state (fixed in float units) and both rasters, first divergence marked.

    ``divergence_step`` defaults to the first step at which the two spike trains of ``spikes`` differ.
    """
    t = np.arange(1, reference.steps + 1) * reference.dt
    a = _float_or_raw(reference, state)[trial].reshape(reference.steps, -1)[:, neuron]
    b = _float_or_raw(fixed, state)[trial].reshape(fixed.steps, -1)[:, neuron]
    sa = reference.spikes[spikes][trial].reshape(reference.steps, -1)
    sb = fixed.spikes[spikes][trial].reshape(fixed.steps, -1)
    if divergence_step is None:
        diff = np.flatnonzero((sa != sb).any(axis=1))
        divergence_step = int(diff[0]) + 1 if diff.size else None
    fig, axes = plt.subplots(2, 1, figsize=(9, 5), sharex=True, constrained_layout=True)
    axes[0].plot(t, a, lw=1.2, label=f"{reference.backend} (float)")
    axes[0].plot(t, b, lw=0.9, ls="--", label=f"{fixed.backend} (fixed, in float units)")
    axes[0].set_ylabel(f"{state}[{neuron}]")
    axes[0].legend(loc="upper right", fontsize=8)
    raster(axes[1], sa, reference.dt, color="tab:blue", label=spikes)
    steps_b, idx_b = np.nonzero(sb)
    axes[1].scatter((steps_b + 1) * fixed.dt, idx_b + 0.3, s=2, marker="|", color="tab:red")
    axes[1].set_xlabel("time")
    axes[1].set_title("spikes: blue = float, red (offset) = fixed")
    for ax in axes:
        if divergence_step is not None:
            ax.axvline(divergence_step * reference.dt, color="k", ls=":", lw=1)
    title = "float vs fixed"
    if divergence_step is not None:
        title += f" - first spike divergence at step {divergence_step}"
    fig.suptitle(title)
    return _save(fig, path)


def plot_comparison(comparison, path: str | os.PathLike) -> Path:
    """Summary of a statistical Comparison: each metric against its profile threshold."""
    p = comparison.profile
    rows = []
    for pop, m in comparison.population_metrics.items():
        rows.append((f"{pop} count err", m["spike_count_error"], p.max_spike_count_error, "max"))
        rows.append((f"{pop} 1 - cosine", 1 - m["activity_cosine"], 1 - p.min_activity_cosine, "max"))
    for key, m in comparison.weight_metrics.items():
        rows.append((f"{key} angle/90", m["angle_deg"] / 90, p.max_weight_angle_deg / 90, "max"))
        rows.append((f"{key} RMSE rel", m["rmse_rel"], p.max_weight_rmse_rel, "max"))
    fig, ax = plt.subplots(figsize=(8, 0.5 * len(rows) + 1.5), constrained_layout=True)
    names = [r[0] for r in rows]
    values = [r[1] for r in rows]
    limits = [r[2] for r in rows]
    colors = ["tab:green" if v <= lim else "tab:red" for v, lim in zip(values, limits, strict=True)]
    y = np.arange(len(rows))
    ax.barh(y, values, color=colors)
    ax.scatter(limits, y, marker="|", s=300, color="k", label="profile limit")
    for yi, v in zip(y, values, strict=True):
        ax.annotate(f"{v:.3g}", (max(v, 1e-4), yi), xytext=(4, 0), textcoords="offset points", va="center", fontsize=8)
    ax.set_yticks(y, names)
    ax.set_xscale("symlog", linthresh=1e-3)
    ax.legend(loc="lower right")
    verdict = "PASS" if comparison.passed else "FAIL"
    ax.set_title(f"{comparison.a_backend} vs {comparison.b_backend}, profile '{p.name}': {verdict}")
    return _save(fig, path)
