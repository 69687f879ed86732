"""Sweeps, precision studies and populations, run serially or on Dask.

A sweep is a grid (or list) of points -- circuit parameters, target settings such as ``target.weights.bits``,
backends -- crossed with seeds, and one evaluation function ``module:function`` called per task as
``evaluate(params, target, backend, seeds) -> [metrics per seed]``::

    from neuro_hw.sweep import SweepSpec, run_sweep

    spec = SweepSpec(
        name="precision",
        evaluate="neuro_hw.sweep.examples:stdp_selectivity",
        params={"steps": 5000},
        grid={"target.weights.bits": [4, 6, 8], "target.learning.trace_bits": [5, 7]},
        backends=["reference", "emulator"],
        baseline="reference",
        seeds=[0, 1, 2],
    )
    result = run_sweep(spec, "out/precision")            # a LocalCluster with a worker per core
    result = run_sweep(spec, "out/precision", serial=True)  # or in this process; same numbers
    result.csv, result.plots, result.failures

or ``neuro-hw sweep file.toml`` (:mod:`neuro_hw.sweep.spec` describes the TOML format).  Modules: :mod:`.spec`
(points, tasks, keys, TOML), :mod:`.task` (one task, failures captured), :mod:`.engine` (serial and Dask),
:mod:`.table` (the CSV, resume), :mod:`.run` (:func:`run_sweep`), :mod:`.population` (CMA-ES and a (mu, lambda)
evolution loop), :mod:`.plots`, :mod:`.progress`, :mod:`.examples` (evaluation functions).
"""

from __future__ import annotations

import os

from neuro_hw.sweep.engine import DaskEngine, Engine, SerialEngine, make_engine
from neuro_hw.sweep.population import (
    CMAES,
    Evolution,
    Optimizer,
    PopulationResult,
    PopulationSpec,
    Variable,
    load_population_spec,
    population_spec_from_dict,
    run_population,
)
from neuro_hw.sweep.run import SweepResult, run_sweep
from neuro_hw.sweep.spec import PlotSpec, Point, SweepSpec, SweepSpecError, Task, load_spec, read_toml, spec_from_dict
from neuro_hw.sweep.table import ResultTable, read_csv


def load(path: str | os.PathLike) -> SweepSpec | PopulationSpec:
    """A sweep or population TOML file (a population file has a ``[population]`` section)."""
    data = read_toml(path)
    if "population" in data:
        return population_spec_from_dict(data, str(path))
    return spec_from_dict(data, str(path))


__all__ = [
    "CMAES",
    "DaskEngine",
    "Engine",
    "Evolution",
    "Optimizer",
    "PlotSpec",
    "Point",
    "PopulationResult",
    "PopulationSpec",
    "ResultTable",
    "SerialEngine",
    "SweepResult",
    "SweepSpec",
    "SweepSpecError",
    "Task",
    "Variable",
    "load",
    "load_population_spec",
    "load_spec",
    "make_engine",
    "read_csv",
    "run_population",
    "run_sweep",
    "spec_from_dict",
]
