"""Populations: ask/evaluate/tell loops of gradient-free optimisers, each generation one batch of sweep tasks.

An optimiser (:class:`Optimizer`) proposes a generation of parameter vectors (:meth:`~Optimizer.ask`) and is told
their losses (:meth:`~Optimizer.tell`); it always *minimises* (a metric with ``goal = "max"`` is negated).  Two
are built in, both deterministic for a given seed:

* :class:`CMAES` -- ``cma.CMAEvolutionStrategy`` (Hansen's CMA-ES), with bounds and per-variable scales;
* :class:`Evolution` -- a plain (mu, lambda) evolution strategy with its own ``numpy`` Generator.

:func:`run_population` evaluates every individual of a generation for every seed of the spec through the sweep
machinery: one task per individual (its seeds batched), all tasks of the generation submitted together to the
engine (serial or Dask), the rows kept in ``<out>/<name>.csv`` with their ``generation`` and ``individual``.  The
fitness of an individual is the mean of the metric over its seeds; an individual whose evaluation failed gets the
worst fitness (its error is in the table).  Because the optimisers are deterministic, rerunning an interrupted
population replays the same candidates, finds their rows in the table by key and evaluates only the rest.  The
progress (best, mean, worst per generation) goes to ``<out>/<name>_generations.csv`` and
``<out>/<name>_progress.png``.

A population in TOML is a sweep file (``[sweep]`` with one backend, ``[params]`` fixed; no grid) with::

    [population]
    method = "cma"          # or "evolution"
    generations = 20
    size = 8                # individuals per generation (lambda)
    parents = 2             # mu, for "evolution"
    sigma = 0.5             # initial step size, in the variables' units (times each variable's scale)
    sigma_decay = 1.0       # "evolution": sigma is multiplied by this every generation
    seed = 0
    metric = "loss"
    goal = "min"            # or "max"

    [population.variables]
    x0 = { init = 0.0, lower = -5.0, upper = 5.0 }   # lower/upper/scale optional
"""

from __future__ import annotations

import contextlib
import csv
import math
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from neuro_hw.backends import BACKENDS
from neuro_hw.sweep.engine import Engine, make_engine
from neuro_hw.sweep.plots import plot_population
from neuro_hw.sweep.progress import Progress
from neuro_hw.sweep.run import execute
from neuro_hw.sweep.spec import (
    TARGET_PREFIX,
    Point,
    SweepSpec,
    SweepSpecError,
    Task,
    read_toml,
    row_key,
    spec_from_dict,
    target_fingerprint,
)
from neuro_hw.sweep.table import ResultTable, is_number, write_csv_atomic
from neuro_hw.sweep.task import package_versions

METHODS = ("cma", "evolution")


class Optimizer(Protocol):
    """Ask/tell interface of a gradient-free minimiser."""

    def ask(self) -> list[np.ndarray]:
        """The next generation's parameter vectors."""
        ...

    def tell(self, solutions: Sequence[np.ndarray], losses: Sequence[float]) -> None:
        """The losses of the vectors :meth:`ask` returned (same order)."""
        ...


class CMAES:
    """CMA-ES through ``cma.CMAEvolutionStrategy``, deterministic for ``seed``.

    ``cma`` draws from numpy's global random state (and treats seed 0 as "seed from the clock"), so this wrapper
    passes ``seed + 1`` and keeps its own copy of the global state, swapped in around every ``ask``/``tell``:
    whatever else runs in the process between generations (e.g. a serial evaluation) does not change the
    candidates.  Non-finite losses (failed evaluations) are replaced by a value worse than every finite one.
    """

    def __init__(
        self,
        x0: Sequence[float],
        sigma0: float,
        seed: int = 0,
        popsize: int | None = None,
        lower: Sequence[float] | None = None,
        upper: Sequence[float] | None = None,
        scales: Sequence[float] | None = None,
    ) -> None:
        import cma

        options: dict[str, Any] = {"seed": int(seed) + 1, "verbose": -9, "verb_log": 0, "verb_disp": 0}
        if popsize is not None:
            options["popsize"] = int(popsize)
        if lower is not None or upper is not None:
            n = len(x0)
            options["bounds"] = [
                [(-np.inf if v is None else v) for v in (lower or [None] * n)],
                [(np.inf if v is None else v) for v in (upper or [None] * n)],
            ]
        if scales is not None:
            options["CMA_stds"] = list(scales)
        saved = np.random.get_state()
        try:
            self.es = cma.CMAEvolutionStrategy(list(map(float, x0)), float(sigma0), options)
            self._state = np.random.get_state()
        finally:
            np.random.set_state(saved)

    @contextlib.contextmanager
    def _own_random_state(self) -> Iterator[None]:
        saved = np.random.get_state()
        np.random.set_state(self._state)
        try:
            yield
        finally:
            self._state = np.random.get_state()
            np.random.set_state(saved)

    def ask(self) -> list[np.ndarray]:
        with self._own_random_state():
            return [np.asarray(x, dtype=float) for x in self.es.ask()]

    def tell(self, solutions: Sequence[np.ndarray], losses: Sequence[float]) -> None:
        with self._own_random_state():
            self.es.tell(list(solutions), finite_losses(losses))


class Evolution:
    """A (mu, lambda) evolution strategy: each generation ``size`` children, each a copy of a parent chosen
    uniformly among the ``parents`` best of the previous generation (the first generation: ``x0``) plus
    Gaussian noise ``sigma * scale`` per variable, clipped to the bounds; ``sigma`` is multiplied by
    ``sigma_decay`` after every generation.  Comma selection (parents are not kept).  All draws come from
    ``numpy.random.default_rng(seed)``.
    """

    def __init__(
        self,
        x0: Sequence[float],
        sigma: float,
        seed: int = 0,
        size: int = 10,
        parents: int = 3,
        lower: Sequence[float | None] | None = None,
        upper: Sequence[float | None] | None = None,
        scales: Sequence[float] | None = None,
        sigma_decay: float = 1.0,
    ) -> None:
        if size < 1 or not 1 <= parents <= size:
            raise ValueError(f"need 1 <= parents <= size, got parents={parents}, size={size}")
        n = len(x0)
        self.rng = np.random.default_rng(seed)
        self.size, self.mu, self.sigma, self.sigma_decay = size, parents, float(sigma), float(sigma_decay)
        self.lower = np.array([-np.inf if v is None else v for v in (lower or [None] * n)], dtype=float)
        self.upper = np.array([np.inf if v is None else v for v in (upper or [None] * n)], dtype=float)
        self.scales = np.ones(n) if scales is None else np.asarray(scales, dtype=float)
        self.parents = [np.clip(np.asarray(x0, dtype=float), self.lower, self.upper)]

    def ask(self) -> list[np.ndarray]:
        picks = self.rng.integers(0, len(self.parents), size=self.size)
        noise = self.rng.standard_normal((self.size, len(self.scales))) * self.sigma * self.scales
        return [np.clip(self.parents[p] + noise[i], self.lower, self.upper) for i, p in enumerate(picks)]

    def tell(self, solutions: Sequence[np.ndarray], losses: Sequence[float]) -> None:
        order = np.argsort(finite_losses(losses), kind="stable")
        self.parents = [np.asarray(solutions[i], dtype=float) for i in order[: self.mu]]
        self.sigma *= self.sigma_decay


def finite_losses(losses: Sequence[float]) -> list[float]:
    """Losses with NaN/inf (failures) replaced by a finite value worse than every finite loss."""
    values = [float(v) for v in losses]
    finite = [v for v in values if math.isfinite(v)]
    worst = (max(finite) + abs(max(finite)) + 1.0) if finite else 1.0
    return [v if math.isfinite(v) else worst for v in values]


@dataclass(frozen=True)
class Variable:
    """An optimised parameter: its start value, optional bounds and a step scale (multiplies sigma)."""

    name: str
    init: float
    lower: float | None = None
    upper: float | None = None
    scale: float = 1.0


@dataclass
class PopulationSpec:
    """A population run: the sweep parts (``sweep``: evaluation, fixed ``params``, one backend, seeds, target) and
    the optimiser (see the module docstring)."""

    sweep: SweepSpec
    variables: list[Variable]
    metric: str
    goal: str = "min"
    method: str = "cma"
    generations: int = 10
    size: int = 8
    parents: int = 2
    sigma: float = 0.3
    sigma_decay: float = 1.0
    seed: int = 0

    def __post_init__(self) -> None:
        src = self.sweep.source

        def err(reason: str, where: str) -> SweepSpecError:
            return SweepSpecError(reason, file=src, field=where)

        if self.sweep.grid or self.sweep.points:
            raise err("a population has no [grid] or [[points]]: its points come from the optimiser", "population")
        if len(self.sweep.backends) != 1:
            raise err(f"a population runs on one backend, got {self.sweep.backends}", "sweep.backends")
        if self.method not in METHODS:
            raise err(f"unknown method {self.method!r}; choose from {METHODS}", "population.method")
        if self.goal not in ("min", "max"):
            raise err(f"goal must be 'min' or 'max', got {self.goal!r}", "population.goal")
        if not self.variables:
            raise err("no variables to optimise", "population.variables")
        for v in self.variables:
            if v.name in self.sweep.params:
                raise err(f"'{v.name}' is both a variable and a fixed parameter", f"population.variables.{v.name}")
            if v.name.startswith(TARGET_PREFIX):
                raise err("target settings cannot be optimised (they are integers)", f"population.variables.{v.name}")
            if v.lower is not None and v.upper is not None and not v.lower < v.upper:
                raise err("needs lower < upper", f"population.variables.{v.name}")
            if not (v.lower is None or v.lower <= v.init) or not (v.upper is None or v.init <= v.upper):
                raise err("init lies outside [lower, upper]", f"population.variables.{v.name}")
        for name in ("generations", "size", "parents"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise err(f"must be a positive integer, got {value!r}", f"population.{name}")
        if self.method == "evolution" and self.parents > self.size:
            raise err("parents must not exceed size", "population.parents")
        if not self.sigma > 0:
            raise err(f"must be positive, got {self.sigma!r}", "population.sigma")

    @property
    def name(self) -> str:
        return self.sweep.name

    def optimizer(self) -> Optimizer:
        """A fresh optimiser for this spec (same seed: same candidates)."""
        x0 = [v.init for v in self.variables]
        bounds = {"lower": [v.lower for v in self.variables], "upper": [v.upper for v in self.variables]}
        if all(b is None for b in bounds["lower"]) and all(b is None for b in bounds["upper"]):
            bounds = {"lower": None, "upper": None}
        scales = [v.scale for v in self.variables]
        if self.method == "cma":
            return CMAES(x0, self.sigma, self.seed, self.size, scales=scales, **bounds)
        return Evolution(x0, self.sigma, self.seed, self.size, self.parents, scales=scales,
                         sigma_decay=self.sigma_decay, **bounds)  # fmt: skip


_POPULATION_KEYS = {"method", "generations", "size", "parents", "sigma", "sigma_decay", "seed", "metric", "goal",
                    "variables"}  # fmt: skip
_VARIABLE_KEYS = {"init", "lower", "upper", "scale"}


def population_spec_from_dict(data: Mapping[str, Any], source: str | None = None) -> PopulationSpec:
    """A :class:`PopulationSpec` from parsed TOML (see the module docstring)."""
    raw = data.get("population")
    if not isinstance(raw, dict):
        raise SweepSpecError("missing section [population]", file=source, field="population")
    unknown = set(raw) - _POPULATION_KEYS
    if unknown:
        raise SweepSpecError(f"unknown key; expected one of {sorted(_POPULATION_KEYS)}", file=source,
                             field=f"population.{sorted(unknown)[0]}")  # fmt: skip
    if "metric" not in raw or not isinstance(raw["metric"], str):
        raise SweepSpecError("missing key (the metric to optimise)", file=source, field="population.metric")
    variables = []
    raw_vars = raw.get("variables", {})
    if not isinstance(raw_vars, dict):
        raise SweepSpecError("must be a table", file=source, field="population.variables")
    for name, v in raw_vars.items():
        where = f"population.variables.{name}"
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            v = {"init": v}
        if not isinstance(v, dict) or "init" not in v or set(v) - _VARIABLE_KEYS:
            raise SweepSpecError("a variable is { init = X, lower = A, upper = B, scale = S } (only init required)",
                                 file=source, field=where)  # fmt: skip
        if not all(is_number(x) for x in v.values()):
            raise SweepSpecError(f"values must be numbers, got {v}", file=source, field=where)
        variables.append(Variable(name, float(v["init"]), v.get("lower"), v.get("upper"), float(v.get("scale", 1.0))))
    sweep = spec_from_dict({k: v for k, v in data.items() if k != "population"}, source)
    settings = {k: raw[k] for k in ("method", "generations", "size", "parents", "sigma", "sigma_decay", "seed", "goal")
                if k in raw}  # fmt: skip
    return PopulationSpec(sweep, variables, raw["metric"], **settings)


def load_population_spec(path: str | Path) -> PopulationSpec:
    """Read a population TOML file (see the module docstring)."""
    return population_spec_from_dict(read_toml(path), str(path))


@dataclass
class PopulationResult:
    """What a population run produced (fitness in the metric's own units: larger is better for ``goal="max"``)."""

    spec: PopulationSpec
    best_params: dict[str, float]
    best_value: float
    #: Per generation: ``generation``, ``best``, ``mean``, ``worst``, ``best_so_far``, ``failed`` and the variables
    #: of that generation's best individual.
    history: list[dict[str, Any]]
    csv: Path
    generations_csv: Path
    plot: Path | None
    failures: list[dict[str, Any]] = field(default_factory=list)
    ran: int = 0
    skipped: int = 0
    seconds: float = 0.0


def generation_tasks(
    spec: PopulationSpec, generation: int, xs: Sequence[np.ndarray], versions: Mapping[str, str]
) -> list[Task]:
    """One task per individual of ``xs`` (all seeds of the spec, in groups of ``seeds_per_task``)."""
    sweep = spec.sweep
    base = sweep.resolved_target_path()
    fixed = {k: v for k, v in sweep.params.items() if not k.startswith(TARGET_PREFIX)}
    target_settings = {k[len(TARGET_PREFIX) :]: v for k, v in sweep.params.items() if k.startswith(TARGET_PREFIX)}
    backend = sweep.backends[0]
    target = target_settings if BACKENDS[backend].fixed_point else None
    fingerprint = target_fingerprint(base, target)
    tasks = []
    for i, x in enumerate(xs):
        params = {**fixed, **{v.name: float(val) for v, val in zip(spec.variables, x, strict=True)}}
        point = Point(i, params, target, backend)
        for seeds in sweep.seed_groups():
            keys = tuple(row_key(point, s, sweep.evaluate, fingerprint, versions) for s in seeds)
            tasks.append(Task(point, seeds, keys, sweep.evaluate, base, {"generation": generation, "individual": i}))
    return tasks


def run_population(
    spec: PopulationSpec,
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
) -> PopulationResult:
    """Run the ask/evaluate/tell loop of ``spec`` for its generations (see the module docstring; the engine
    arguments are those of :func:`~neuro_hw.sweep.run.run_sweep`)."""
    start = time.perf_counter()
    out = Path(out_dir) if out_dir is not None else Path("out") / "sweeps" / spec.name
    out.mkdir(parents=True, exist_ok=True)
    table = ResultTable(out / f"{spec.name}.csv", resume=resume)
    versions = package_versions()
    spec.sweep.check_targets()
    optimizer = spec.optimizer()
    sign = -1.0 if spec.goal == "max" else 1.0
    own = engine is None
    engine = engine or make_engine(serial, client, scheduler, workers)
    n_runs = spec.generations * spec.size * len(spec.sweep.seeds)
    bar = Progress(n_runs, spec.name, enabled=progress)
    history: list[dict[str, Any]] = []
    order: dict[str, None] = {}  # the table's row order: keys in order of first use
    best_loss, best_x = math.inf, None
    ran = skipped = 0
    col = f"metric.{spec.metric}"
    try:
        for generation in range(spec.generations):
            xs = optimizer.ask()
            tasks = generation_tasks(spec, generation, xs, versions)
            order.update(dict.fromkeys(k for t in tasks for k in t.keys))
            done, skip = execute(tasks, table, engine, spec.name, list(order), progress=False, bar=bar)
            ran, skipped = ran + done, skipped + skip
            losses = []
            for i in range(len(xs)):
                rows = [table.rows[k] for t in tasks if t.point.index == i for k in t.keys]
                values = [r.get(col) for r in rows]
                ok = all(r.get("status") == "ok" for r in rows) and all(is_number(v) for v in values)
                losses.append(sign * float(np.mean(values)) if ok else math.nan)
            optimizer.tell(xs, losses)
            finite = [v for v in losses if math.isfinite(v)]
            gen_best = int(np.argmin(finite_losses(losses)))
            if finite and losses[gen_best] < best_loss:
                best_loss, best_x = losses[gen_best], xs[gen_best]
            history.append({
                "generation": generation,
                "best": sign * min(finite) if finite else math.nan,
                "mean": sign * float(np.mean(finite)) if finite else math.nan,
                "worst": sign * max(finite) if finite else math.nan,
                "best_so_far": sign * best_loss,
                "failed": len(losses) - len(finite),
                **{f"best.{v.name}": float(val) for v, val in zip(spec.variables, xs[gen_best], strict=True)},
            })  # fmt: skip
            _write_history(out / f"{spec.name}_generations.csv", history)
    finally:
        bar.close()
        if own:
            engine.close()
    plot = None
    if plots and history:
        plot = plot_population(history, out / f"{spec.name}_progress.png", spec.metric, title=spec.name)
    rows = [table.rows[k] for k in order if k in table.rows]
    best_params = {} if best_x is None else {v.name: float(x) for v, x in zip(spec.variables, best_x, strict=True)}
    return PopulationResult(
        spec=spec,
        best_params=best_params,
        best_value=sign * best_loss,
        history=history,
        csv=table.path,
        generations_csv=out / f"{spec.name}_generations.csv",
        plot=plot,
        failures=[r for r in rows if r.get("status") != "ok"],
        ran=ran,
        skipped=skipped,
        seconds=time.perf_counter() - start,
    )


def _write_history(path: Path, history: list[dict[str, Any]]) -> None:
    columns = list(dict.fromkeys(c for h in history for c in h))
    write_csv_atomic(path, history, columns)


def read_history(path: str | Path) -> list[dict[str, Any]]:
    """The rows of a ``<name>_generations.csv`` file, numbers parsed."""
    with open(path, newline="") as f:
        return [{k: float(v) if v not in ("", None) else math.nan for k, v in row.items()} for row in csv.DictReader(f)]
