"""The demo sections' precision sweep: a metric against weight bits (and trace bits), float as the baseline."""

from __future__ import annotations

from pathlib import Path
from typing import Any

#: Loihi 2's trace width: the sections' weight-bit tables are read at it.
LOIHI2_TRACE_BITS = 7


def precision_sweep(
    name: str,
    evaluate: str,
    metric: str,
    params: dict[str, Any],
    grid: dict[str, tuple[int, ...]],
    seeds: tuple[int, ...],
    out_dir: Path,
    progress: bool,
    engine_options: dict | None,
) -> Any:
    """Run ``evaluate`` over ``grid`` on the emulator with the float reference as the baseline (``ratio.<metric>``
    columns) and a precision plot of ``metric`` against weight bits (a line per trace width when swept); returns the
    :class:`~neuro_hw.sweep.SweepResult`."""
    from neuro_hw.sweep import PlotSpec, SweepSpec, run_sweep

    spec = SweepSpec(
        name=name,
        evaluate=evaluate,
        params=dict(params),
        grid={k: list(v) for k, v in grid.items()},
        backends=["reference", "emulator"],
        baseline="reference",
        seeds=list(seeds),
        plots=[PlotSpec("precision", metric, x="target.weights.bits", file=f"{name}.png",
                        series="target.learning.trace_bits" if "target.learning.trace_bits" in grid else None)],
    )  # fmt: skip
    return run_sweep(spec, out_dir, resume=False, progress=progress, **(engine_options or {}))


def by_weight_bits(rows: list[dict[str, Any]], column: str) -> dict[int, list[float]]:
    """``column`` of the successful emulator rows at Loihi 2's trace width, grouped by weight bits (sorted)."""
    out: dict[int, list[float]] = {}
    for r in rows:
        if r["backend"] != "emulator" or r["status"] != "ok":
            continue
        if int(r.get("param.target.learning.trace_bits") or LOIHI2_TRACE_BITS) != LOIHI2_TRACE_BITS:
            continue
        out.setdefault(int(r["param.target.weights.bits"]), []).append(float(r[column]))
    return dict(sorted(out.items()))
