"""Run a sweep: expand it into tasks, skip those already in the table, run the rest on an engine, write the table
and the plots.

:func:`run_sweep` is what ``neuro-hw sweep`` calls.  The table is ``<out>/<name>.csv``; every finished task's
rows are added to it (rewritten atomically at most every two seconds and at the end, also when the sweep is
interrupted), so an interrupted sweep resumes from the rows already there: a rerun with ``resume=True`` skips
every (point, seed) whose key (:func:`~neuro_hw.sweep.spec.row_key`: parameters, target, backend, seed,
evaluation, package versions) has an ``ok`` row.  A task whose evaluation raised leaves ``error`` rows with the
exception; the sweep goes on, and :attr:`SweepResult.failures` lists them (the CLI prints them and exits 1).
Failed rows run again on the next resume.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from neuro_hw.sweep.engine import Engine, SerialEngine, make_engine
from neuro_hw.sweep.plots import plot_metric_vs_param, plot_precision
from neuro_hw.sweep.progress import Progress
from neuro_hw.sweep.spec import TARGET_PREFIX, PlotSpec, SweepSpec, Task
from neuro_hw.sweep.table import ResultTable, is_number
from neuro_hw.sweep.task import package_versions


@dataclass
class SweepResult:
    """What a sweep produced."""

    spec: SweepSpec
    #: The table file.
    csv: Path
    #: The rows of this sweep (one per point and seed), in sweep order.
    rows: list[dict[str, Any]]
    #: Rows run now and rows found done in the table.
    ran: int
    skipped: int
    #: The error rows of this sweep.
    failures: list[dict[str, Any]]
    plots: list[Path] = field(default_factory=list)
    seconds: float = 0.0
    engine: str = ""

    @property
    def ok(self) -> bool:
        """No point failed."""
        return not self.failures

    def failure_report(self, limit: int = 20) -> str:
        """The failed points: parameters, seed, exception type and message (one line each, up to ``limit``)."""
        lines = []
        for row in self.failures[:limit]:
            params = " ".join(f"{c.removeprefix('param.')}={row[c]!r}" for c in row if c.startswith("param."))
            lines.append(
                f"  point {row.get('point')} {row.get('backend')} seed={row.get('seed')} {params}: "
                f"{row.get('error_type')}: {row.get('error_message')}"
            )
        if len(self.failures) > limit:
            lines.append(f"  ... and {len(self.failures) - limit} more (status=error in {self.csv})")
        return "\n".join(lines)


def default_plots(spec: SweepSpec, rows: list[dict[str, Any]]) -> list[PlotSpec]:
    """The plots of a spec without ``[[plots]]``: each numeric metric against the first axis (a line per value of
    the second); a precision plot when the first axis is a target setting.  None without axes."""
    axes = spec.axes
    if not axes:
        return []
    metrics = []
    for r in rows:
        for c, v in r.items():
            if c.startswith("metric.") and is_number(v) and c[7:] not in metrics:
                metrics.append(c[7:])
    kind = "precision" if axes[0].startswith(TARGET_PREFIX) and len(axes) > 1 else "param"
    series = axes[1] if len(axes) > 1 else None
    return [PlotSpec(kind, m, axes[0], series) for m in metrics]


def write_plots(spec: SweepSpec, rows: list[dict[str, Any]], out_dir: Path) -> list[Path]:
    """The sweep's plots (``spec.plots`` or :func:`default_plots`) as PNG files in ``out_dir``."""
    paths = []
    target_axes = [a for a in spec.axes if a.startswith(TARGET_PREFIX)]
    for plot in spec.plots or default_plots(spec, rows):
        file = out_dir / (plot.file or f"{spec.name}_{plot.kind}_{plot.metric}.png")
        if plot.kind == "precision":
            x = plot.x or (target_axes[0] if target_axes else spec.axes[0])
            others = [a for a in (target_axes or spec.axes) if a != x]
            series = plot.series or (others[0] if others else None)
            paths.append(plot_precision(rows, file, plot.metric, x, series, spec.baseline, title=spec.name))
        else:
            x = plot.x or spec.axes[0]
            paths.append(plot_metric_vs_param(rows, file, plot.metric, x, plot.series, spec.baseline, title=spec.name))
    return paths


def execute(
    tasks: list[Task],
    table: ResultTable,
    engine: Engine,
    name: str,
    order: list[str],
    progress: bool = True,
    bar: Progress | None = None,
) -> tuple[int, int]:
    """Run the ``tasks`` whose rows are not all done in ``table`` on ``engine``, adding their rows to the table as
    they finish (written at most every ``table.write_every`` seconds, and at the end or on an interrupt).
    ``bar``: a progress bar to advance (else one is made for these tasks when ``progress``).
    Returns (runs done now, runs skipped)."""
    todo = [t for t in tasks if not all(table.done(k) for k in t.keys)]
    skipped = sum(len(t.keys) for t in tasks) - sum(len(t.keys) for t in todo)
    own_bar = bar is None
    if bar is None:
        bar = Progress(sum(len(t.seeds) for t in todo), name, skipped=skipped, enabled=progress)
    else:
        bar.update(skipped, skipped=skipped)
    done_before = bar.done

    def on_rows(task: Task, rows: list[dict[str, Any]]) -> None:
        table.add(rows, sweep=name)
        bar.update(len(rows), failed=sum(r.get("status") != "ok" for r in rows))
        table.maybe_write(order)

    try:
        engine.run(todo, on_rows)
    finally:
        if own_bar:
            bar.close()
        table.write(order)
    return bar.done - done_before, skipped


def run_sweep(
    spec: SweepSpec,
    out_dir: str | Path | None = None,
    *,
    engine: Engine | None = None,
    serial: bool = False,
    client: Any = None,
    scheduler: str | None = None,
    workers: int | None = None,
    resume: bool = True,
    progress: bool = True,
    plots: bool = True,
) -> SweepResult:
    """Run ``spec`` and write ``<out_dir>/<name>.csv`` and its plots (see module doc).

    Parameters
    ----------
    out_dir:
        Output folder (default ``out/sweeps/<name>``).
    engine:
        Where to run the tasks (left open); else one is made from ``serial``/``client``/``scheduler``/``workers``
        (:func:`~neuro_hw.sweep.engine.make_engine`: by default a LocalCluster with a worker per core) and closed.
    resume:
        Skip the (point, seed) rows already ``ok`` in the table; ``False`` replaces the table.
    progress:
        Show a progress bar on stderr.
    plots:
        Write the plots.
    """
    start = time.perf_counter()
    out = Path(out_dir) if out_dir is not None else Path("out") / "sweeps" / spec.name
    out.mkdir(parents=True, exist_ok=True)
    table = ResultTable(out / f"{spec.name}.csv", resume=resume, baseline=spec.baseline)
    tasks = spec.tasks(package_versions())
    order = [k for t in tasks for k in t.keys]
    todo = [t for t in tasks if not all(table.done(k) for k in t.keys)]
    own = engine is None
    if engine is None:  # nothing to run: no cluster to start
        engine = make_engine(serial, client, scheduler, workers) if todo else SerialEngine()
    description = engine.description
    try:
        ran, skipped = execute(tasks, table, engine, spec.name, order, progress)
    finally:
        if own:
            engine.close()
    rows = [table.rows[k] for k in order if k in table.rows]
    failures = [r for r in rows if r.get("status") != "ok"]
    paths = write_plots(spec, rows, out) if plots and len(failures) < len(rows) else []
    return SweepResult(spec, table.path, rows, ran, skipped, failures, paths, time.perf_counter() - start,
                       description)  # fmt: skip
