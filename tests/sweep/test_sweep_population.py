"""Populations: CMA-ES and the (mu, lambda) loop improve a known quadratic, deterministically for a seed; an
interrupted population resumes from its table; failures rank last."""

from __future__ import annotations

import math
import textwrap

import numpy as np
import pytest

from neuro_hw.sweep import (
    CMAES,
    Evolution,
    PopulationSpec,
    SweepSpec,
    SweepSpecError,
    Variable,
    load,
    read_csv,
    run_population,
)
from neuro_hw.sweep.population import finite_losses, read_history

Q = "neuro_hw.sweep.examples:quadratic"


def _spec(method: str, generations: int = 12, seed: int = 0, goal: str = "min", **bounds) -> PopulationSpec:
    sweep = SweepSpec(name=f"pop-{method}", evaluate=Q, params={"noise": 0.01}, backends=["reference"], seeds=[0, 1])
    variables = [Variable("x0", 0.0, **bounds), Variable("x1", 0.0, **bounds)]  # optimum (1, 2), loss 5 at the start
    return PopulationSpec(sweep, variables, metric="loss", goal=goal, method=method, generations=generations,
                          size=8, parents=2, sigma=0.5, sigma_decay=0.85, seed=seed)  # fmt: skip


@pytest.mark.parametrize("method", ["cma", "evolution"])
def test_optimisers_improve_a_quadratic_deterministically(tmp_path, method):
    result = run_population(_spec(method), tmp_path / "a", serial=True, progress=False)
    history = result.history
    assert len(history) == 12 and result.ran == 12 * 8 * 2 and not result.failures
    assert history[0]["best"] > 0.3 and result.best_value < 0.05  # from loss ~5 at the start to near the optimum
    assert np.allclose([result.best_params["x0"], result.best_params["x1"]], [1, 2], atol=0.2)
    so_far = [h["best_so_far"] for h in history]
    assert so_far == sorted(so_far, reverse=True)  # the best so far never gets worse
    again = run_population(_spec(method), tmp_path / "b", serial=True, progress=False, plots=False)
    assert again.history == history and again.best_params == result.best_params  # same seed: same candidates
    other = run_population(_spec(method, seed=1), tmp_path / "c", serial=True, progress=False, plots=False)
    assert other.history != history
    rows = read_csv(result.csv)
    assert len(rows) == 12 * 8 * 2 and {r["generation"] for r in rows} == set(range(12))
    assert read_history(result.generations_csv)[-1]["best_so_far"] == pytest.approx(history[-1]["best_so_far"])
    png = result.plot.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000


def test_an_interrupted_population_resumes_from_its_table(tmp_path):
    full = run_population(_spec("cma", generations=6), tmp_path / "full", serial=True, progress=False, plots=False)
    short = run_population(_spec("cma", generations=4), tmp_path / "r", serial=True, progress=False, plots=False)
    resumed = run_population(_spec("cma", generations=6), tmp_path / "r", serial=True, progress=False, plots=False)
    assert (resumed.ran, resumed.skipped) == (2 * 8 * 2, 4 * 8 * 2)  # the 4 generations done are replayed
    assert resumed.history == full.history and short.history == full.history[:4]


def test_maximising_stays_in_bounds(tmp_path):
    spec = _spec("evolution", generations=8, goal="max", lower=-1.0, upper=1.0)
    result = run_population(spec, tmp_path, serial=True, progress=False, plots=False)
    # the farthest point from (1, 2) in [-1, 1]^2 is (-1, -1): loss 4 + 9 = 13
    assert result.best_value > 11 and all(-1 <= v <= 1 for v in result.best_params.values())
    assert result.history[-1]["best"] >= result.history[0]["best"]


def test_ask_tell_objects_directly():
    def loss(x):
        return float(np.sum((np.asarray(x) - [1.0, 2.0]) ** 2))

    for opt in (CMAES([0.0, 0.0], 0.5, seed=3, popsize=6), Evolution([0.0, 0.0], 0.5, seed=3, size=6, parents=2)):
        first = None
        for _ in range(10):
            xs = opt.ask()
            losses = [loss(x) for x in xs]
            first = min(losses) if first is None else first
            np.random.seed(123)  # other users of numpy's global state do not change CMA-ES's candidates
            opt.tell(xs, losses)
        assert min(losses) < first
    a, b = CMAES([0.0], 1.0, seed=5), CMAES([0.0], 1.0, seed=5)
    np.random.seed(1)
    first = np.array(a.ask())
    np.random.seed(2)  # the global state at ask time does not matter either
    assert np.array_equal(first, np.array(b.ask()))


def test_failed_individuals_rank_last():
    assert finite_losses([1.0, math.nan, 3.0, math.inf]) == [1.0, 7.0, 3.0, 7.0]
    assert finite_losses([math.nan]) == [1.0]
    evo = Evolution([0.0], 1.0, seed=0, size=3, parents=1)
    xs = evo.ask()
    evo.tell(xs, [math.nan, 2.0, 1.0])
    assert np.array_equal(evo.parents[0], xs[2])


POPULATION = """
    [sweep]
    name = "p"
    evaluate = "neuro_hw.sweep.examples:quadratic"
    backends = ["reference"]
    seeds = [0]

    [population]
    method = "cma"
    generations = 3
    size = 4
    metric = "loss"

    [population.variables]
    x0 = { init = 0.0, lower = -3.0, upper = 3.0 }
    x1 = 0.5
"""


def test_population_toml(tmp_path):
    path = tmp_path / "p.toml"
    path.write_text(textwrap.dedent(POPULATION))
    spec = load(path)
    assert isinstance(spec, PopulationSpec) and spec.size == 4
    assert spec.variables == [Variable("x0", 0.0, -3.0, 3.0), Variable("x1", 0.5)]
    for edit, field in (
        (('method = "cma"', 'method = "pso"'), "population.method"),
        (("x1 = 0.5", "x1 = { start = 0.5 }"), "population.variables.x1"),
        (('metric = "loss"', ""), "population.metric"),
        (("size = 4", "size = 0"), "population.size"),
        (('backends = ["reference"]', 'backends = ["reference", "emulator"]'), "sweep.backends"),
        (("init = 0.0, lower", "init = 5.0, lower"), "population.variables.x0"),
    ):
        path.write_text(textwrap.dedent(POPULATION).replace(*edit))
        with pytest.raises(SweepSpecError) as info:
            load(path)
        assert info.value.field == field and info.value.file == str(path)
