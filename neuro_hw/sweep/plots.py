"""Standard plots of a sweep table: metric vs bits (precision), metric vs parameter, population progress.

All plots read the rows of :class:`~neuro_hw.sweep.table.ResultTable` (``ok`` rows only) and average a metric
over everything except the plotted axes (the seeds, and any other axis of the sweep): mean +- standard deviation,
with the number of runs per point available from :func:`aggregate`.  The baseline backend (e.g. the float
reference) is drawn as a horizontal band (its mean +- std).  Files are PNG, written with matplotlib's Agg backend.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from neuro_hw.sweep.table import is_number


@dataclass(frozen=True)
class Stat:
    """Mean, standard deviation (ddof 0) and count of the finite values of one group."""

    mean: float
    std: float
    n: int


def _stat(values: Sequence[float]) -> Stat:
    finite = [float(v) for v in values if is_number(v) and math.isfinite(v)]
    if not finite:
        return Stat(math.nan, math.nan, 0)
    return Stat(float(np.mean(finite)), float(np.std(finite)), len(finite))


def ok_rows(rows: Sequence[dict[str, Any]], backends: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """The ``ok`` rows (of ``backends``, if given)."""
    return [r for r in rows if r.get("status") == "ok" and (backends is None or r.get("backend") in backends)]


def aggregate(
    rows: Sequence[dict[str, Any]], column: str, x: str, series: str | None = None
) -> dict[Any, dict[Any, Stat]]:
    """``{series value: {x value: Stat of column}}`` over ``rows`` (``x``/``series`` are column names; without a
    series, the one key is None)."""
    groups: dict[Any, dict[Any, list[float]]] = {}
    for r in rows:
        if column not in r or x not in r:
            continue
        s = r.get(series) if series else None
        groups.setdefault(_hashable(s), {}).setdefault(_hashable(r[x]), []).append(r[column])
    return {
        s: {xv: _stat(v) for xv, v in sorted(g.items(), key=_sort_key)}
        for s, g in sorted(groups.items(), key=_sort_key)
    }


def _hashable(v: Any) -> Any:
    return tuple(v) if isinstance(v, list) else v


def _sort_key(item: tuple[Any, Any]) -> tuple[int, Any]:
    k = item[0]
    return (0, k) if is_number(k) else (1, str(k))


def _baseline_stat(rows: Sequence[dict[str, Any]], baseline: str | None, column: str) -> Stat | None:
    if baseline is None:
        return None
    stat = _stat([r.get(column) for r in ok_rows(rows, [baseline])])
    return stat if stat.n else None


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def _label(name: str) -> str:
    return name.removeprefix("param.").removeprefix("metric.").removeprefix("target.")


def _lines(ax: Any, table: dict[Any, dict[Any, Stat]], series: str | None, base: Stat | None, base_name: str) -> None:
    for s, points in table.items():
        xs = list(points)
        numeric = all(is_number(v) for v in xs)
        pos = xs if numeric else list(range(len(xs)))
        means = [p.mean for p in points.values()]
        stds = [p.std for p in points.values()]
        label = f"{_label(series)} = {s}" if series else None
        ax.errorbar(pos, means, yerr=stds, marker="o", ms=4, capsize=3, label=label)
        if not numeric:
            ax.set_xticks(pos, [str(v) for v in xs])
        elif all(isinstance(v, int) for v in xs):  # bits and other integer axes: a tick per value
            ax.set_xticks(xs)
    if base is not None:
        ax.axhline(base.mean, color="k", ls="--", lw=1, label=f"{base_name} (mean)")
        if base.std > 0:
            ax.axhspan(base.mean - base.std, base.mean + base.std, color="k", alpha=0.08, lw=0)
    ax.grid(alpha=0.3)


def plot_precision(
    rows: Sequence[dict[str, Any]],
    path: str | Path,
    metric: str,
    x: str,
    series: str | None,
    baseline: str | None = None,
    title: str | None = None,
) -> Path:
    """Metric vs bits: left, ``metric`` (mean +- std over seeds) against axis ``x``, a line per ``series`` value,
    with the baseline's band; right, a heat map of the mean over ``x`` x ``series`` -- of ``ratio.<metric>`` (the
    fraction of the baseline's value) when the rows have it, else of the metric.  ``x``/``series`` are axis names
    (``target.weights.bits``), ``metric`` a metric name."""
    plt = _pyplot()
    col, xcol = f"metric.{metric}", f"param.{x}"
    scol = f"param.{series}" if series else None
    runs = [r for r in ok_rows(rows) if r.get("backend") != baseline]
    lines = aggregate(runs, col, xcol, scol)
    ratio_col = f"ratio.{metric}"
    use_ratio = any(ratio_col in r for r in runs)
    heat = aggregate(runs, ratio_col if use_ratio else col, xcol, scol)
    base = _baseline_stat(rows, baseline, col)

    fig, (ax, hx) = plt.subplots(1, 2, figsize=(13, 5), gridspec_kw={"width_ratios": [1.1, 1]})
    _lines(ax, lines, scol, base, baseline or "")
    ax.set_xlabel(_label(x))
    ax.set_ylabel(f"{metric} (mean +- std over seeds)")
    ax.legend(fontsize=8)
    xs = sorted({xv for pts in heat.values() for xv in pts}, key=lambda v: _sort_key((v, None)))
    ss = list(heat)
    grid = np.full((len(ss), len(xs)), np.nan)
    for i, s in enumerate(ss):
        for j, xv in enumerate(xs):
            if xv in heat[s]:
                grid[i, j] = heat[s][xv].mean
    finite = grid[np.isfinite(grid)]
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    if use_ratio:  # 1 = as good as the baseline
        vmin, vmax, cmap = min(0.0, lo), max(1.0, hi), "RdYlGn"
    else:
        vmin, vmax, cmap = lo, hi, "viridis"
    image = hx.imshow(grid, origin="lower", aspect="auto", cmap=cmap, vmin=vmin, vmax=max(vmax, vmin + 1e-12))
    for i in range(len(ss)):
        for j in range(len(xs)):
            if np.isfinite(grid[i, j]):
                hx.text(j, i, f"{grid[i, j]:.2f}", ha="center", va="center", fontsize=8)
    hx.set_xticks(range(len(xs)), [str(v) for v in xs])
    hx.set_yticks(range(len(ss)), [str(s) for s in ss])
    hx.set_xlabel(_label(x))
    hx.set_ylabel(_label(series) if series else "")
    what = f"{metric} / {baseline} {metric} (same seed)" if use_ratio else metric
    hx.set_title(f"mean over seeds of {what}", fontsize=10)
    fig.colorbar(image, ax=hx)
    fig.suptitle(title or f"{metric} vs {_label(x)}")
    fig.tight_layout()
    return _save(fig, plt, path)


def plot_metric_vs_param(
    rows: Sequence[dict[str, Any]],
    path: str | Path,
    metric: str,
    x: str,
    series: str | None = None,
    baseline: str | None = None,
    title: str | None = None,
) -> Path:
    """``metric`` (mean +- std over seeds and other axes) against parameter ``x``, a line per ``series`` value."""
    plt = _pyplot()
    col = f"metric.{metric}"
    runs = [r for r in ok_rows(rows) if r.get("backend") != baseline]
    table = aggregate(runs, col, f"param.{x}", f"param.{series}" if series else None)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    _lines(ax, table, f"param.{series}" if series else None, _baseline_stat(rows, baseline, col), baseline or "")
    ax.set_xlabel(_label(x))
    ax.set_ylabel(f"{metric} (mean +- std)")
    if series or baseline:
        ax.legend(fontsize=8)
    ax.set_title(title or f"{metric} vs {_label(x)}")
    fig.tight_layout()
    return _save(fig, plt, path)


def plot_population(history: Sequence[dict[str, Any]], path: str | Path, metric: str, title: str | None = None) -> Path:
    """Population progress: the best, mean and worst fitness of every generation and the best so far.
    ``history`` rows have ``generation``, ``best``, ``mean``, ``worst`` (in the metric's units)."""
    plt = _pyplot()
    gens = [h["generation"] for h in history]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for key, style in (("worst", ":"), ("mean", "--"), ("best", "-")):
        ax.plot(gens, [h[key] for h in history], style, marker="o", ms=3, label=f"{key} of generation")
    ax.plot(gens, [h["best_so_far"] for h in history], "k-", lw=2, alpha=0.5, label="best so far")
    values = [h[k] for h in history for k in ("best", "mean", "worst") if is_number(h[k]) and math.isfinite(h[k])]
    if values and min(values) > 0 and max(values) > 100 * min(values):
        ax.set_yscale("log")  # a loss falling over decades
    ax.set_xlabel("generation")
    ax.set_ylabel(metric)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(title or f"population progress ({metric})")
    fig.tight_layout()
    return _save(fig, plt, path)


def _save(fig: Any, plt: Any, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)
    return path
