"""What a sweep is: the points (circuit parameters x target variants x backends), the seeds, the evaluation.

A :class:`SweepSpec` is built in Python or read from a TOML file (:func:`load_spec`)::

    [sweep]
    name = "stdp_precision"
    evaluate = "neuro_hw.sweep.examples:stdp_selectivity"   # module:function
    backends = ["reference", "emulator"]
    seeds = [0, 1, 2, 3, 4]          # or 5 (= 0..4) or { from = 0, to = 4 }
    seeds_per_task = "all"           # all seeds of a point in one task (the emulator batches them), or an int
    target = "loihi2"                # base target: a name or a .toml path (relative to this file)
    baseline = "reference"           # optional: ratio.<metric> = metric / the baseline backend's, same point+seed

    [params]                         # fixed parameters of every point
    steps = 20000

    [grid]                           # axes; the points are their product, in this order
    "target.weights.bits" = { from = 2, to = 8 }
    "target.learning.trace_bits" = [3, 4, 5, 6, 7]

    [[points]]                       # optional explicit list (each crossed with the grid, if there is one)
    a_plus = 0.005

    [[plots]]
    kind = "precision"               # or "param" (metric vs parameter)
    metric = "selectivity"

A parameter named ``target.<section>.<key>`` is a target setting: the evaluation receives
``load_target(target).variant(**{"<section>.<key>": value, ...})``; every other parameter goes to the
evaluation in ``params``.  Points are expanded backend by backend (the baseline first); on the ``reference``
backend the target settings do not apply, so the evaluation gets ``target=None`` and points that differ only in
target settings are one point.  Each point is run for every seed; :attr:`SweepSpec.seeds_per_task` seeds of a
point form one task (one call of the evaluation function).
"""

from __future__ import annotations

import hashlib
import importlib
import itertools
import json
import math
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from neuro_hw.backends import BACKENDS
from neuro_hw.errors import NeuroHWError, ValidationError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

#: Prefix of parameters that are target settings (``target.weights.bits``).
TARGET_PREFIX = "target."
#: Plot kinds of :class:`PlotSpec`.
PLOT_KINDS = ("precision", "param")

#: The signature of an evaluation function: ``(params, target, backend, seeds) -> one metrics dict per seed``.
Evaluation = Callable[[dict[str, Any], Any, str, list[int]], Sequence[Mapping[str, Any]]]


class SweepSpecError(ValidationError):
    """A sweep description is invalid; the message names the file and the field."""


@dataclass(frozen=True)
class PlotSpec:
    """A standard plot of the sweep's table.

    ``kind="precision"``: ``metric`` (mean +- std over seeds) against the axis ``x`` (default: the first target
    axis), one line per value of ``series`` (default: the second target axis), next to a heat map of the mean over
    ``x`` x ``series`` (of ``ratio.<metric>`` when the sweep has a baseline).  ``kind="param"``: ``metric``
    against the parameter ``x`` (default: the first axis), one line per value of ``series`` (optional).  The
    baseline backend's mean is drawn as a horizontal line.  ``file`` defaults to ``<sweep>_<kind>_<metric>.png``.
    """

    kind: str
    metric: str
    x: str | None = None
    series: str | None = None
    file: str | None = None


@dataclass(frozen=True)
class Point:
    """One point of a sweep: ``params`` for the evaluation, ``target`` settings (``{"weights.bits": 6}``; empty:
    the base target; ``None``: no target, the reference backend) and the backend.  ``index`` is its place in the
    expansion."""

    index: int
    params: dict[str, Any]
    target: dict[str, Any] | None
    backend: str

    @property
    def columns(self) -> dict[str, Any]:
        """The point as table columns: ``param.<name>`` and ``param.target.<setting>``."""
        cols = {f"param.{k}": v for k, v in self.params.items()}
        cols.update({f"param.{TARGET_PREFIX}{k}": v for k, v in (self.target or {}).items()})
        return cols

    def label(self) -> str:
        """A short description for messages: ``emulator a=1 target.weights.bits=6``."""
        parts = [f"{k}={v!r}" for k, v in self.params.items()]
        parts += [f"{TARGET_PREFIX}{k}={v!r}" for k, v in (self.target or {}).items()]
        return " ".join([self.backend, *parts])


@dataclass(frozen=True)
class Task:
    """One call of the evaluation function: a point and some of its seeds, with the table key of every seed."""

    point: Point
    seeds: tuple[int, ...]
    keys: tuple[str, ...]
    evaluate: str
    base_target: str
    #: Extra columns written with every row of this task (e.g. ``generation`` and ``individual``).
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class SweepSpec:
    """A sweep (see the module docstring for the semantics of every field)."""

    name: str
    evaluate: str
    params: dict[str, Any] = field(default_factory=dict)
    grid: dict[str, list[Any]] = field(default_factory=dict)
    points: list[dict[str, Any]] = field(default_factory=list)
    backends: list[str] = field(default_factory=lambda: ["emulator"])
    seeds: list[int] = field(default_factory=lambda: [0])
    #: Seeds per task; ``None``: all seeds of a point in one task.
    seeds_per_task: int | None = None
    #: Base target, a name or a ``.toml`` path.
    target: str = "loihi2"
    #: Backend whose metrics the others are divided by (``ratio.<metric>`` columns); must be one of ``backends``.
    baseline: str | None = None
    plots: list[PlotSpec] = field(default_factory=list)
    #: The TOML file this came from (for messages), if any.
    source: str | None = None

    def __post_init__(self) -> None:
        self.evaluate = evaluation_name(self.evaluate)
        self.validate()

    # -- checks ---------------------------------------------------------------------------------------
    def _error(self, reason: str, where: str) -> SweepSpecError:
        return SweepSpecError(reason, file=self.source, field=where)

    def validate(self) -> None:
        """Check every field; raises :class:`SweepSpecError` naming the file and field."""
        if not isinstance(self.name, str) or not self.name or any(c in self.name for c in "/\\\0"):
            raise self._error(f"must be a non-empty name without slashes, got {self.name!r}", "sweep.name")
        for where, table in (("params", self.params), ("grid", self.grid)):
            if not isinstance(table, dict):
                raise self._error(f"must be a table, got {type(table).__name__}", where)
        for key, values in self.grid.items():
            if not isinstance(values, list) or not values:
                raise self._error("an axis must be a non-empty list of values", f"grid.{key}")
        if not isinstance(self.points, list) or not all(isinstance(p, dict) for p in self.points):
            raise self._error("must be a list of tables ([[points]])", "points")
        for i, p in enumerate(self.points):
            for key in p:
                if key in self.grid:
                    raise self._error(f"'{key}' is both a grid axis and set by a point", f"points[{i}].{key}")
        for key in self.params:
            if key in self.grid:
                raise self._error(f"'{key}' is both a fixed parameter and a grid axis", f"params.{key}")
        for key in [*self.params, *self.grid, *(k for p in self.points for k in p)]:
            if key.startswith(TARGET_PREFIX) and key.count(".") != 2:
                raise self._error("a target setting is named target.<section>.<key>", key)
        if not isinstance(self.backends, list) or not self.backends:
            raise self._error("must be a non-empty list of backends", "sweep.backends")
        for b in self.backends:
            if b not in BACKENDS:
                raise self._error(f"unknown backend {b!r}; choose from {sorted(BACKENDS)}", "sweep.backends")
        if len(set(self.backends)) != len(self.backends):
            raise self._error("a backend is listed twice", "sweep.backends")
        if self.baseline is not None and self.baseline not in self.backends:
            raise self._error(
                f"baseline {self.baseline!r} is not one of the backends {self.backends}", "sweep.baseline"
            )
        if not self.seeds or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in self.seeds):
            raise self._error(f"must be non-negative integers, got {self.seeds!r}", "sweep.seeds")
        if len(set(self.seeds)) != len(self.seeds):
            raise self._error("a seed is listed twice", "sweep.seeds")
        if self.seeds_per_task is not None and (
            not isinstance(self.seeds_per_task, int) or isinstance(self.seeds_per_task, bool) or self.seeds_per_task < 1
        ):
            raise self._error(
                f"must be 'all' or a positive integer, got {self.seeds_per_task!r}", "sweep.seeds_per_task"
            )
        for i, plot in enumerate(self.plots):
            if plot.kind not in PLOT_KINDS:
                raise self._error(f"unknown plot kind {plot.kind!r}; choose from {PLOT_KINDS}", f"plots[{i}].kind")
            for name in (plot.x, plot.series):
                if name is not None and name not in self.axes:
                    raise self._error(f"{name!r} is not an axis of the sweep ({self.axes})", f"plots[{i}]")

    @property
    def axes(self) -> list[str]:
        """The names that vary between points: the grid axes, then the keys of the explicit points."""
        names = list(self.grid)
        for p in self.points:
            names += [k for k in p if k not in names]
        return names

    # -- expansion ------------------------------------------------------------------------------------
    def expand(self) -> list[Point]:
        """The points: (each explicit point or one empty point) x the product of the grid axes, for every
        backend (the baseline first); on the reference backend without target settings, deduplicated."""
        combos = []
        axes = list(self.grid)
        for base in self.points or [{}]:
            for values in itertools.product(*(self.grid[a] for a in axes)):
                combos.append({**self.params, **base, **dict(zip(axes, values, strict=True))})
        backends = sorted(self.backends, key=lambda b: b != self.baseline)
        points: list[Point] = []
        seen: set[str] = set()
        for backend in backends:
            uses_target = BACKENDS[backend].fixed_point
            for combo in combos:
                params = {k: plain(v) for k, v in combo.items() if not k.startswith(TARGET_PREFIX)}
                target = {k[len(TARGET_PREFIX) :]: plain(v) for k, v in combo.items() if k.startswith(TARGET_PREFIX)}
                point = Point(len(points), params, target if uses_target else None, backend)
                ident = canonical({"p": point.params, "t": point.target, "b": backend})
                if ident in seen:
                    continue
                seen.add(ident)
                points.append(point)
        return points

    def seed_groups(self) -> list[tuple[int, ...]]:
        """The seeds split into the groups of one task each."""
        size = self.seeds_per_task or len(self.seeds)
        return [tuple(self.seeds[i : i + size]) for i in range(0, len(self.seeds), size)]

    def tasks(self, versions: Mapping[str, str]) -> list[Task]:
        """Every task of the sweep, in order (points, then seed groups), with the keys of their rows."""
        self.check_targets()
        out = []
        for point in self.expand():
            for seeds in self.seed_groups():
                keys = tuple(row_key(point, s, self.evaluate, self.target_fingerprint(point), versions) for s in seeds)
                out.append(Task(point, seeds, keys, self.evaluate, self.resolved_target_path()))
        return out

    # -- targets ----------------------------------------------------------------------------------------
    def resolved_target_path(self) -> str:
        """The base target as given, or its absolute path when it is a file relative to the TOML file."""
        t = str(self.target)
        if t.endswith(".toml") and self.source and not os.path.isabs(t):
            return str((Path(self.source).parent / t).resolve())
        return t

    def check_targets(self) -> None:
        """Resolve every target variant of the sweep once (``weights.bits`` out of range, unknown settings, ...)."""
        for point in self.expand():
            if point.target is None:
                continue
            try:
                resolve_target(self.resolved_target_path(), point.target)
            except NeuroHWError as err:
                setting = f"{TARGET_PREFIX}{err.field}" if err.field else None
                if setting in self.grid:
                    where = f"grid.{setting}"
                elif setting in self.params:
                    where = f"params.{setting}"
                elif setting is not None and any(setting in p for p in self.points):
                    where = f"points.{setting}"
                else:
                    where = "sweep.target"
                variant = ", ".join(f"{TARGET_PREFIX}{k}={v!r}" for k, v in point.target.items())
                raise self._error(f"target variant {variant or repr(self.target)}: {err.reason}", where) from None

    def target_fingerprint(self, point: Point) -> str | None:
        """A hash of the resolved target of ``point`` (its whole description), or None without a target."""
        return target_fingerprint(self.resolved_target_path(), point.target)


# -- helpers -----------------------------------------------------------------------------------------------
def plain(value: Any) -> Any:
    """``value`` as plain Python (numpy scalars and arrays to numbers and lists), for hashing and tables."""
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):
        return value.tolist()
    if isinstance(value, tuple):
        return [plain(v) for v in value]
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    return value


def canonical(value: Any) -> str:
    """Canonical JSON (sorted keys, exact float reprs): the text every key is hashed from."""
    return json.dumps(plain(value), sort_keys=True, separators=(",", ":"), default=str)


def target_fingerprint(base: str, changes: Mapping[str, Any] | None) -> str | None:
    """A hash of the resolved target ``base`` with ``changes`` (its whole description); None without a target."""
    if changes is None:
        return None
    target = resolve_target(base, changes)
    return hashlib.sha256(canonical(target.data).encode()).hexdigest()[:16]


def row_key(point: Point, seed: int, evaluate: str, target_fingerprint: str | None, versions: Mapping[str, str]) -> str:
    """The stable key of one row: a hash of the point's parameters, target (its resolved description), backend,
    seed, evaluation function and the package versions.  A row with this key in the table is not run again."""
    ident = {
        "params": point.params,
        "target": target_fingerprint,
        "backend": point.backend,
        "seed": seed,
        "evaluate": evaluate,
        "versions": dict(versions),
    }
    return hashlib.sha256(canonical(ident).encode()).hexdigest()[:20]


def evaluation_name(evaluate: str | Callable[..., Any]) -> str:
    """``"module:function"`` for a name or an importable function (a lambda or local function is refused)."""
    if isinstance(evaluate, str):
        return evaluate
    module, qualname = getattr(evaluate, "__module__", None), getattr(evaluate, "__qualname__", "")
    if not module or "<" in qualname:
        raise SweepSpecError(
            f"the evaluation function must be importable as module:function (got {evaluate!r}); "
            "define it at the top level of a module",
            field="evaluate",
        )
    return f"{module}:{qualname}"


def import_evaluation(name: str, source: str | None = None) -> Evaluation:
    """Import ``"module:function"``; raises :class:`SweepSpecError` (field ``sweep.evaluate``) if it is not there."""
    module_name, sep, attr = name.partition(":")
    if not sep or not module_name or not attr:
        raise SweepSpecError(f"expected 'module:function', got {name!r}", file=source, field="sweep.evaluate")
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as err:
        raise SweepSpecError(
            f"cannot import module {module_name!r} ({err})", file=source, field="sweep.evaluate"
        ) from None
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise SweepSpecError(f"module {module_name!r} has no {attr!r}", file=source, field="sweep.evaluate")
        obj = getattr(obj, part)
    if not callable(obj):
        raise SweepSpecError(f"{name!r} is not callable", file=source, field="sweep.evaluate")
    return obj


_TARGETS: dict[str, Any] = {}


def resolve_target(base: str, changes: Mapping[str, Any]) -> Any:
    """``load_target(base).variant(**changes)``, memoised per process (a worker resolves each variant once)."""
    from neuro_hw.compiler.target import load_target

    key = canonical({"base": base, "changes": dict(changes)})
    if key not in _TARGETS:
        target = load_target(base)
        _TARGETS[key] = target.variant(**changes) if changes else target
    return _TARGETS[key]


# -- TOML ------------------------------------------------------------------------------------------------
_SWEEP_KEYS = {"name", "evaluate", "backends", "seeds", "seeds_per_task", "target", "baseline"}
_TOP_KEYS = {"sweep", "params", "grid", "points", "plots", "population"}
_PLOT_KEYS = {"kind", "metric", "x", "series", "file"}


def expand_values(value: Any, where: str, file: str | None) -> list[Any]:
    """An axis: a list as it is, or ``{from, to[, step]}`` (inclusive) or ``{from, to, num[, log]}``."""
    if isinstance(value, list):
        return value
    if not isinstance(value, dict):
        raise SweepSpecError(f"an axis is a list or a range table, got {value!r}", file=file, field=where)
    unknown = set(value) - {"from", "to", "step", "num", "log"}
    if unknown or "from" not in value or "to" not in value:
        raise SweepSpecError(
            "a range is { from = A, to = B } (inclusive), with step = S or num = N (and log = true)",
            file=file,
            field=where,
        )
    lo, hi = value["from"], value["to"]
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (lo, hi)):
        raise SweepSpecError("from and to must be numbers", file=file, field=where)
    if "num" in value:
        num = value["num"]
        if not isinstance(num, int) or num < 1 or "step" in value:
            raise SweepSpecError("num must be a positive integer (and no step with it)", file=file, field=where)
        if value.get("log", False):
            if lo <= 0 or hi <= 0:
                raise SweepSpecError("a log range needs positive from and to", file=file, field=where)
            return [float(lo * (hi / lo) ** (i / max(1, num - 1))) for i in range(num)]
        return [float(lo + (hi - lo) * i / max(1, num - 1)) for i in range(num)]
    step = value.get("step", 1)
    if not isinstance(step, (int, float)) or isinstance(step, bool) or step <= 0 or hi < lo:
        raise SweepSpecError("needs from <= to and a positive step", file=file, field=where)
    count = int(math.floor((hi - lo) / step + 1e-9)) + 1
    if all(isinstance(v, int) for v in (lo, hi, step)):
        return [lo + i * step for i in range(count)]
    return [float(lo + i * step) for i in range(count)]


def _seeds(value: Any, file: str | None) -> list[int]:
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 1:
            raise SweepSpecError(f"a seed count must be positive, got {value}", file=file, field="sweep.seeds")
        return list(range(value))
    return expand_values(value, "sweep.seeds", file)


def spec_from_dict(data: Mapping[str, Any], source: str | None = None) -> SweepSpec:
    """A :class:`SweepSpec` from parsed TOML (see the module docstring); errors name ``source`` and the field."""
    unknown = set(data) - _TOP_KEYS
    if unknown:
        raise SweepSpecError(f"unknown section(s) {sorted(unknown)}; expected {sorted(_TOP_KEYS)}", file=source,
                             field=sorted(unknown)[0])  # fmt: skip
    sweep = data.get("sweep")
    if not isinstance(sweep, dict):
        raise SweepSpecError("missing section [sweep]", file=source, field="sweep")
    unknown = set(sweep) - _SWEEP_KEYS
    if unknown:
        raise SweepSpecError(f"unknown key; expected one of {sorted(_SWEEP_KEYS)}", file=source,
                             field=f"sweep.{sorted(unknown)[0]}")  # fmt: skip
    for key in ("name", "evaluate"):
        if key not in sweep:
            raise SweepSpecError("missing key", file=source, field=f"sweep.{key}")
        if not isinstance(sweep[key], str):
            raise SweepSpecError(f"must be a string, got {sweep[key]!r}", file=source, field=f"sweep.{key}")
    backends = sweep.get("backends", ["emulator"])
    if isinstance(backends, str):
        backends = [backends]
    per_task = sweep.get("seeds_per_task", "all")
    if per_task == "all":
        per_task = None
    grid_raw = data.get("grid", {})
    if not isinstance(grid_raw, dict):
        raise SweepSpecError("must be a table [grid]", file=source, field="grid")
    grid = {k: expand_values(v, f"grid.{k}", source) for k, v in grid_raw.items()}
    points = data.get("points", [])
    plots = []
    for i, raw in enumerate(data.get("plots", [])):
        if not isinstance(raw, dict):
            raise SweepSpecError("must be a table ([[plots]])", file=source, field=f"plots[{i}]")
        unknown = set(raw) - _PLOT_KEYS
        if unknown or "kind" not in raw or "metric" not in raw:
            raise SweepSpecError(
                f"a plot has kind and metric, optionally x, series and file (got {sorted(raw)})",
                file=source,
                field=f"plots[{i}]",
            )
        plots.append(PlotSpec(**raw))
    target = sweep.get("target", "loihi2")
    if not isinstance(target, str):
        raise SweepSpecError(f"must be a target name or .toml path, got {target!r}", file=source, field="sweep.target")
    spec = SweepSpec(
        name=sweep["name"],
        evaluate=sweep["evaluate"],
        params=dict(data.get("params", {})) if isinstance(data.get("params", {}), dict) else data["params"],
        grid=grid,
        points=points,
        backends=backends,
        seeds=_seeds(sweep.get("seeds", [0]), source),
        seeds_per_task=per_task,
        target=target,
        baseline=sweep.get("baseline"),
        plots=plots,
        source=source,
    )
    import_evaluation(spec.evaluate, source)
    spec.check_targets()
    return spec


def read_toml(path: str | os.PathLike) -> dict[str, Any]:
    """The parsed TOML file; :class:`SweepSpecError` naming the file if it is missing or not TOML."""
    path = Path(path)
    if not path.is_file():
        raise SweepSpecError("no such sweep file", file=str(path))
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise SweepSpecError(f"invalid TOML ({err})", file=str(path)) from None
    except OSError as err:
        raise SweepSpecError(f"cannot read the sweep file ({err.strerror or err})", file=str(path)) from None


def load_spec(path: str | os.PathLike) -> SweepSpec:
    """Read a sweep TOML file; raises :class:`SweepSpecError` (file, field, reason) on any problem."""
    data = read_toml(path)
    if "population" in data:
        raise SweepSpecError(
            "this file describes a population ([population]); load it with neuro_hw.sweep.load_population_spec",
            file=str(path),
            field="population",
        )
    return spec_from_dict(data, str(path))
