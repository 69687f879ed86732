"""Golden traces: record a Result once, replay later and compare.

A golden file is a :class:`~neuro_hw.result.Result` file (HDF5, written atomically: temporary file +
rename) that carries the circuit hash, target, backend, seed and package versions of the run that made it.
:func:`check_golden` refuses a golden recorded for another circuit, target, backend or seed with a clear
error instead of comparing unrelated runs; intended changes are recorded again with ``update=True``
(``pytest --update-golden`` in the plugin).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from neuro_hw.compare import Comparison, Profile, compare
from neuro_hw.errors import NeuroHWError
from neuro_hw.result import Result


class GoldenMismatchError(NeuroHWError):
    """A golden trace exists but belongs to a different circuit or set-up."""


class GoldenMissingError(NeuroHWError):
    """No golden trace has been recorded yet."""


def record_golden(result: Result, path: str | os.PathLike) -> Path:
    """Write ``result`` as the golden trace at ``path`` (atomic)."""
    result.metadata["golden"] = True
    return result.save(path)


def check_golden(
    result: Result,
    path: str | os.PathLike,
    profile: str | Profile = "exact",
    *,
    update: bool = False,
    **overrides,
) -> Comparison:
    """Compare ``result`` with the golden at ``path``; raise ``AssertionError`` with the diff if it fails.

    With ``update=True`` the golden is (re)written from ``result`` instead and the comparison is trivial.
    """
    path = Path(path)
    if not isinstance(result, Result):
        raise TypeError(f"check_golden() expects a Result, got {type(result).__name__}")
    if update:
        record_golden(result, path)
    if not path.exists():
        raise GoldenMissingError(
            "no golden trace recorded yet; record it with update=True (pytest --update-golden)", file=str(path)
        )
    golden = Result.load(path)
    checks = (
        ("circuit_hash", golden.circuit_hash, result.circuit_hash),
        ("target", golden.target, result.target),
        ("backend", golden.backend, result.backend),
        ("seed", golden.seed, result.seed),
        ("steps", golden.steps, result.steps),
        ("batch", golden.batch, result.batch),
        ("dt", golden.dt, result.dt),
    )
    for field_name, recorded, now in checks:
        if recorded != now:
            shown = (recorded[:12], now[:12]) if field_name == "circuit_hash" else (recorded, now)
            raise GoldenMismatchError(
                f"golden was recorded with {field_name} {shown[0]!r}, this run has {shown[1]!r}; it is not a golden "
                "for this run (re-record with update=True / pytest --update-golden if the change is intended)",
                file=str(path),
                field=field_name,
            )
    for group in ("spikes", "states", "weights"):
        # the comparison only looks at what both sides recorded: a golden without a population would pass
        recorded, now = set(getattr(golden, group)), set(getattr(result, group))
        if recorded != now:
            raise GoldenMismatchError(
                f"golden {group} {sorted(recorded - now)} are not in this run and this run's {sorted(now - recorded)} "
                "are not in the golden; it is not a golden for this run (re-record with update=True / pytest "
                "--update-golden if the change is intended)",
                file=str(path),
                field=group,
            )
        for key in recorded:
            a, b = np.shape(getattr(golden, group)[key]), np.shape(getattr(result, group)[key])
            if a != b:
                raise GoldenMismatchError(f"golden {group} {key!r} has shape {a}, this run's has {b}", file=str(path),
                                          field=group)  # fmt: skip
    comparison = compare(golden, result, profile, **overrides)
    if not comparison.passed:
        raise AssertionError(f"run differs from golden trace {path}:\n{comparison.report()}")
    return comparison
