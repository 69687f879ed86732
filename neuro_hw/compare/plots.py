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
