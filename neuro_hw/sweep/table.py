"""The sweep's one table: a CSV with a row per (point, seed), written atomically, read back to resume.

Columns: the meta columns of :data:`~neuro_hw.sweep.task.META_COLUMNS` (``key``, ``status``, ``backend``, ``seed``,
errors, ...), then ``param.<name>`` (``param.target.<section>.<key>`` for target settings), ``metric.<name>``,
``ratio.<name>`` (a metric divided by the baseline backend's at the same non-target parameters and seed, when the
sweep has a baseline) and ``version.<package>``.  A cell holds a number, ``true``/``false``, a string, JSON for a
list or table, or nothing.

:class:`ResultTable` keeps the rows in memory, keyed by ``key``; :meth:`ResultTable.write` replaces the file
atomically (a temporary file in the same folder, then ``os.replace``), so an interrupted sweep leaves either the
previous or the new table, never half a file.  Reading a table back (``resume=True``) makes its ``ok`` rows
*done*: their keys are not run again.  Error rows are run again on a rerun and replaced.
"""

from __future__ import annotations

import csv
import json
import math
import os
import re
import tempfile
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from neuro_hw.sweep.task import META_COLUMNS

_PREFIX_ORDER = ("param.", "metric.", "ratio.", "version.")
_NUMERIC_META = {"point", "seed", "seconds", "generation", "individual"}
_INT = re.compile(r"^[+-]?\d+$")


def format_cell(value: Any) -> str:
    """A value as CSV text (see module doc)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else str(value)
    if isinstance(value, (int, str)):
        return str(value)
    return json.dumps(value, sort_keys=True)


def parse_cell(text: str) -> Any:
    """The value of a ``param.``/``metric.``/``ratio.`` or numeric meta cell (inverse of :func:`format_cell`)."""
    if text == "":
        return None
    if text in ("true", "false"):
        return text == "true"
    if _INT.match(text):
        return int(text)
    try:
        return float(text)
    except ValueError:
        pass
    if text[:1] in "[{":
        try:
            return json.loads(text)
        except ValueError:
            return text
    return text


def _parse_row(raw: dict[str, str]) -> dict[str, Any]:
    row: dict[str, Any] = {}
    for col, text in raw.items():
        if col is None:
            continue
        if col in _NUMERIC_META or col.startswith(("param.", "metric.", "ratio.")):
            row[col] = parse_cell(text or "")
        elif text != "":
            row[col] = text
    return row


def column_order(columns: Iterable[str]) -> list[str]:
    """Meta columns first (in their fixed order), then ``param.``, ``metric.``, ``ratio.``, ``version.`` columns,
    each group in order of first appearance."""
    cols = list(dict.fromkeys(columns))
    ordered = [c for c in META_COLUMNS if c in cols]
    for prefix in _PREFIX_ORDER:
        ordered += [c for c in cols if c.startswith(prefix)]
    ordered += [c for c in cols if c not in ordered]
    return ordered


def write_csv_atomic(path: Path, rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> Path:
    """Write ``rows`` to ``path`` via a temporary file in the same folder and ``os.replace`` (atomic)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp's 0600 -> what a plain open() would give
        with os.fdopen(fd, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(columns)
            for row in rows:
                writer.writerow([format_cell(row.get(c)) for c in columns])
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def read_csv(path: str | os.PathLike) -> list[dict[str, Any]]:
    """The rows of a sweep table, with numbers parsed (see :func:`parse_cell`)."""
    with open(path, newline="") as f:
        return [_parse_row(raw) for raw in csv.DictReader(f)]


def is_number(value: Any) -> bool:
    """A finite or infinite real number (not a bool)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


class ResultTable:
    """The rows of a sweep table in memory and their CSV file (see module doc).

    Parameters
    ----------
    path:
        The CSV file.
    resume:
        Read the existing file (its ``ok`` rows count as done); else start empty and replace it on the first write.
    baseline:
        A backend whose metrics the other rows are divided by (``ratio.*`` columns), or None.
    write_every:
        :meth:`maybe_write` writes at most once per this many seconds.
    """

    def __init__(
        self, path: str | os.PathLike, resume: bool = True, baseline: str | None = None, write_every: float = 2.0
    ) -> None:
        self.path = Path(path)
        self.baseline = baseline
        self.write_every = write_every
        self.rows: dict[str, dict[str, Any]] = {}
        self._last_write = 0.0
        if resume and self.path.exists():
            for row in read_csv(self.path):
                if "key" in row:
                    self.rows[row["key"]] = row

    def done(self, key: str) -> bool:
        """Whether the row ``key`` is in the table with ``status == "ok"``."""
        row = self.rows.get(key)
        return row is not None and row.get("status") == "ok"

    def add(self, rows: Iterable[dict[str, Any]], sweep: str | None = None) -> None:
        """Add rows (a row with the key of an existing one replaces it)."""
        for row in rows:
            if sweep is not None:
                row = {"sweep": sweep, **row}
            self.rows[row["key"]] = row

    def ordered(self, order: Sequence[str] = ()) -> list[dict[str, Any]]:
        """All rows: those of ``order`` (keys) first in that order, then the others as they were."""
        first = [self.rows[k] for k in order if k in self.rows]
        listed = set(order)
        return first + [r for k, r in self.rows.items() if k not in listed]

    def derive_ratios(self) -> None:
        """Fill ``ratio.<metric>`` of every non-baseline ``ok`` row (see module doc)."""
        if self.baseline is None:
            return
        by_point: dict[str, list[dict[str, Any]]] = {}
        for row in self.rows.values():
            if row.get("backend") == self.baseline and row.get("status") == "ok":
                by_point.setdefault(_identity(row), []).append(row)
        for row in self.rows.values():
            for col in [c for c in row if c.startswith("ratio.")]:
                del row[col]
            if row.get("backend") == self.baseline or row.get("status") != "ok":
                continue
            candidates = by_point.get(_identity(row), [])
            same_target = [c for c in candidates if _targets(c) == _targets(row)]
            base = same_target[0] if same_target else (candidates[0] if len(candidates) == 1 else None)
            if base is None:
                continue
            for col, value in list(row.items()):
                if not col.startswith("metric."):
                    continue
                ref = base.get(col)
                if is_number(value) and is_number(ref) and ref != 0:
                    row[f"ratio.{col[len('metric.') :]}"] = value / ref

    def write(self, order: Sequence[str] = ()) -> Path:
        """Write the whole table atomically (rows of ``order`` first)."""
        self.derive_ratios()
        rows = self.ordered(order)
        columns = column_order(c for r in rows for c in r)
        self._last_write = time.monotonic()
        return write_csv_atomic(self.path, rows, columns)

    def maybe_write(self, order: Sequence[str] = ()) -> None:
        """:meth:`write` if the last write is at least ``write_every`` seconds old."""
        if time.monotonic() - self._last_write >= self.write_every:
            self.write(order)


def _identity(row: dict[str, Any]) -> str:
    """A row's non-target parameters, evaluation, seed and generation/individual (what a baseline row shares)."""
    ident = {c: v for c, v in row.items() if c.startswith("param.") and not c.startswith("param.target.")}
    for c in ("evaluate", "seed", "generation", "individual"):
        ident[c] = row.get(c)
    return json.dumps(ident, sort_keys=True, default=str)


def _targets(row: dict[str, Any]) -> dict[str, Any]:
    return {c: v for c, v in row.items() if c.startswith("param.target.")}
