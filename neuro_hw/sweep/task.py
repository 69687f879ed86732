"""Running one task (a point and some of its seeds) wherever it lands: in this process or on a Dask worker.

:func:`run_task` imports the evaluation function, resolves the target variant (both memoised per process, so a
worker does it once), calls ``evaluate(params, target, backend, seeds)`` and turns the returned metrics, one dict
per seed, into table rows.  It never raises: an exception of the evaluation (or a malformed return value) becomes
one ``status="error"`` row per seed of the task, with the exception's type, message and a traceback summary, so
the rest of the sweep goes on.  All seeds of a task share its fate (they ran in one call).

Every row has the meta columns of :data:`META_COLUMNS`, the point's ``param.*`` columns, ``metric.<name>`` for
each metric, and ``version.<package>`` for the packages that determine the numbers.
"""

from __future__ import annotations

import functools
import math
import os
import socket
import time
import traceback
from collections.abc import Mapping
from importlib import metadata
from typing import Any

from neuro_hw.sweep.spec import Task, import_evaluation, resolve_target

#: Columns every row has, in this order (then ``param.*``, ``metric.*``, ``ratio.*``, ``version.*``).
META_COLUMNS = (
    "key", "sweep", "status", "point", "backend", "seed", "evaluate", "target",
    "generation", "individual", "error_type", "error_message", "traceback", "seconds", "worker",
)  # fmt: skip
#: Lines of traceback kept in a failed row (the innermost frames).
TRACEBACK_LINES = 12


def package_versions() -> dict[str, str]:
    """Versions of what determines a row's numbers: :func:`neuro_hw.result.package_versions` plus numba and a
    hash of the emulator's kernel sources (a changed kernel is a new version)."""
    return dict(_versions())


@functools.lru_cache(maxsize=1)
def _versions() -> dict[str, str]:
    from neuro_hw.emulator.step_kernel import _kernel_fingerprint
    from neuro_hw.result import package_versions as result_versions

    versions = result_versions()
    try:
        versions["numba"] = metadata.version("numba")
    except metadata.PackageNotFoundError:  # pragma: no cover
        versions["numba"] = "not installed"
    versions["emulator-kernels"] = _kernel_fingerprint()
    return versions


def _check_metrics(result: Any, seeds: tuple[int, ...]) -> list[dict[str, Any]]:
    """The evaluation's return value as one dict of scalar metrics per seed (else a TypeError/ValueError)."""
    if isinstance(result, Mapping) or not hasattr(result, "__len__"):
        raise TypeError(
            f"the evaluation must return a list with one metrics dict per seed, got {type(result).__name__}"
        )
    if len(result) != len(seeds):
        raise ValueError(f"the evaluation returned {len(result)} metrics dicts for {len(seeds)} seeds {list(seeds)}")
    rows = []
    for seed, metrics in zip(seeds, result, strict=True):
        if not isinstance(metrics, Mapping):
            raise TypeError(f"metrics of seed {seed} must be a dict, got {type(metrics).__name__}")
        row = {}
        for name, value in metrics.items():
            if hasattr(value, "item") and getattr(value, "ndim", 0) == 0:
                value = value.item()  # numpy scalar
            if not isinstance(value, (int, float, str, bool)) and value is not None:
                raise TypeError(
                    f"metric {name!r} of seed {seed} must be a number or string, got {type(value).__name__}"
                )
            row[f"metric.{name}"] = value
        rows.append(row)
    return rows


def _traceback_summary(err: BaseException) -> str:
    lines = traceback.format_exception(type(err), err, err.__traceback__)
    text = "".join(lines).rstrip().splitlines()
    return "\n".join(text[-TRACEBACK_LINES:])


def base_row(task: Task, index: int) -> dict[str, Any]:
    """The columns of row ``index`` (its seed) of ``task`` that do not depend on how it ran."""
    point = task.point
    return {
        "key": task.keys[index],
        "point": point.index,
        "backend": point.backend,
        "seed": task.seeds[index],
        "evaluate": task.evaluate,
        "target": "" if point.target is None else task.base_target,
        **task.extra,
        **point.columns,
    }


def error_rows(task: Task, err_type: str, message: str, tb: str, seconds: float = math.nan) -> list[dict[str, Any]]:
    """One ``status="error"`` row per seed of ``task``."""
    return [
        {**base_row(task, i), "status": "error", "error_type": err_type, "error_message": message, "traceback": tb,
         "seconds": seconds}
        for i in range(len(task.seeds))
    ]  # fmt: skip


def run_task(task: Task) -> list[dict[str, Any]]:
    """Run ``task`` here and return its rows (``status`` ``ok`` or ``error``); never raises (see module doc)."""
    start = time.perf_counter()
    worker = f"{socket.gethostname()}:{os.getpid()}"
    versions = {f"version.{k}": v for k, v in package_versions().items()}
    try:
        evaluate = import_evaluation(task.evaluate)
        target = None if task.point.target is None else resolve_target(task.base_target, task.point.target)
        result = evaluate(dict(task.point.params), target, task.point.backend, list(task.seeds))
        metrics = _check_metrics(result, task.seeds)
    except Exception as err:  # noqa: BLE001 - a failing point is data, reported in the table
        rows = error_rows(task, type(err).__name__, str(err), _traceback_summary(err), time.perf_counter() - start)
        return [{**row, "worker": worker, **versions} for row in rows]
    seconds = time.perf_counter() - start
    return [
        {**base_row(task, i), "status": "ok", "seconds": seconds / len(task.seeds), "worker": worker, **versions,
         **metrics[i]}
        for i in range(len(task.seeds))
    ]  # fmt: skip
