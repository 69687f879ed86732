"""The sweep table (columns, cells, ratios to the baseline, atomic writes) and the plots."""

from __future__ import annotations

import csv
import math

import pytest

from neuro_hw.sweep import SweepSpec, read_csv, run_sweep
from neuro_hw.sweep.plots import aggregate, plot_metric_vs_param, plot_population, plot_precision
from neuro_hw.sweep.table import format_cell, parse_cell, write_csv_atomic

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def probe_sweep(tmp_path_factory):
    spec = SweepSpec(
        name="probe",
        evaluate="sweep_objectives:bits_probe",
        params={"a": 0.25},
        grid={"target.weights.bits": [4, 8], "target.learning.trace_bits": [5, 7]},
        backends=["reference", "emulator"],
        baseline="reference",
        seeds=[0, 1, 2],
    )
    return run_sweep(spec, tmp_path_factory.mktemp("probe"), serial=True, progress=False, plots=False)


def test_table_columns_and_cells(probe_sweep):
    with open(probe_sweep.csv, newline="") as f:
        header = next(csv.reader(f))
    assert header[:8] == ["key", "sweep", "status", "point", "backend", "seed", "evaluate", "target"]
    params = [c for c in header if c.startswith("param.")]
    assert params == ["param.a", "param.target.weights.bits", "param.target.learning.trace_bits"]
    assert header.index("metric.weight_bits") > header.index(params[-1])
    assert header.index("ratio.a") > header.index("metric.a")
    assert {"version.neuro-hw", "version.numpy", "version.numba", "version.emulator-kernels"} <= set(header)
    rows = read_csv(probe_sweep.csv)
    assert len(rows) == 3 + 4 * 3 and [r["seed"] for r in rows[:4]] == [0, 1, 2, 0]
    ref, emu = rows[0], rows[3]
    assert ref["backend"] == "reference" and "target" not in ref and ref["param.target.weights.bits"] is None
    assert emu["target"] == "loihi2" and emu["param.target.weights.bits"] == 4 and emu["metric.trace_bits"] == 5
    assert emu["metric.backend"] == "emulator" and emu["sweep"] == "probe" and emu["status"] == "ok"
    assert all(r["ratio.a"] == 1.0 for r in rows[3:]) and ref["ratio.a"] is None  # a / the reference's a, same seed
    assert emu["ratio.weight_bits"] == -4.0  # 4 / -1 (the reference has no target)
    assert len({r["key"] for r in rows}) == 15 and all(len(r["key"]) == 20 for r in rows)


@pytest.mark.parametrize("value", [0, -7, 0.1, 1e-300, 2.5e10, math.inf, True, False, "stochastic", [1, 2], {"a": 1}])
def test_cells_round_trip(value):
    assert parse_cell(format_cell(value)) == value
    assert format_cell(None) == "" and parse_cell("") is None and math.isnan(parse_cell(format_cell(math.nan)))


def test_csv_write_is_atomic(tmp_path):
    path = tmp_path / "t.csv"
    write_csv_atomic(path, [{"a": 1}], ["a"])
    with pytest.raises(TypeError):
        write_csv_atomic(path, [{"a": 2}, {"a": object()}], ["a"])  # fails half-way through
    assert path.read_text() == "a\n1\n" and [p.name for p in tmp_path.iterdir()] == ["t.csv"]


def test_plots_are_written(probe_sweep, tmp_path):
    rows = probe_sweep.rows
    stats = aggregate(rows, "metric.weight_bits", "param.target.weights.bits", "param.target.learning.trace_bits")
    assert stats[5][8].mean == 8 and stats[5][8].n == 3 and stats[7][4].std == 0
    paths = [
        plot_precision(rows, tmp_path / "p.png", "a", "target.weights.bits", "target.learning.trace_bits",
                       baseline="reference"),  # fmt: skip
        plot_metric_vs_param(rows, tmp_path / "m.png", "weight_bits", "target.learning.trace_bits", "a", "reference"),
        plot_population(
            [{"generation": g, "best": 1 / (g + 1), "mean": 2 / (g + 1), "worst": 3, "best_so_far": 1 / (g + 1)}
             for g in range(5)],
            tmp_path / "pop.png", "loss",
        ),
    ]  # fmt: skip
    for path in paths:
        data = path.read_bytes()
        assert data[:8] == PNG and len(data) > 10_000


def test_sweep_writes_its_plots(tmp_path):
    spec = SweepSpec(
        name="q",
        evaluate="neuro_hw.sweep.examples:quadratic",
        grid={"x0": [0.0, 1.0, 2.0], "x1": [1.0, 2.0]},
        backends=["reference"],
        seeds=[0, 1],
    )
    result = run_sweep(spec, tmp_path, serial=True, progress=False)
    assert [p.name for p in result.plots] == ["q_param_loss.png", "q_param_distance.png"]
    assert all(p.read_bytes()[:8] == PNG and p.stat().st_size > 10_000 for p in result.plots)
