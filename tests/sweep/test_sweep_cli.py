"""``neuro-hw sweep``: a TOML sweep run from the command line, resume, failures, errors, options."""

from __future__ import annotations

import textwrap

import pytest

import neuro_hw.sweep
from neuro_hw.cli import build_parser, main
from neuro_hw.sweep import read_csv

SWEEP = """
    [sweep]
    name = "cli"
    evaluate = "sweep_objectives:quadratic_or_fail"
    backends = ["reference"]
    seeds = [0, 1]

    [params]
    noise = 0.1

    [grid]
    x0 = [0.0, 1.0, 2.0]
    x1 = [2.0, 3.0]

    [[plots]]
    kind = "param"
    metric = "loss"
    x = "x0"
    series = "x1"
    file = "loss.png"
"""


def _toml(tmp_path, text=SWEEP, name="s.toml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def test_cli_sweep_runs_writes_and_resumes(tmp_path, capsys):
    path, out = _toml(tmp_path), tmp_path / "out"
    assert main(["sweep", str(path), "--serial", "--out", str(out), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "sweep cli: 12 runs (12 now, 0 found done in the table) on serial" in printed
    assert f"table: {out / 'cli.csv'}" in printed and f"plot: {out / 'loss.png'}" in printed
    rows = read_csv(out / "cli.csv")
    assert len(rows) == 12 and all(r["status"] == "ok" for r in rows)
    assert (out / "loss.png").read_bytes()[:4] == b"\x89PNG"
    assert main(["sweep", str(path), "--serial", "--out", str(out), "--no-progress"]) == 0
    assert "(0 now, 12 found done in the table)" in capsys.readouterr().out
    assert main(["sweep", str(path), "--serial", "--out", str(out), "--no-progress", "--no-resume"]) == 0
    assert "(12 now, 0 found done in the table)" in capsys.readouterr().out


def test_cli_sweep_reports_failures_and_exits_1(tmp_path, capsys):
    path = _toml(tmp_path, SWEEP.replace("[0.0, 1.0, 2.0]", "[0.0, 13, 2.0]"))
    code = main(["sweep", str(path), "--serial", "--out", str(tmp_path / "o"), "--no-progress"])
    captured = capsys.readouterr()
    assert code == 1
    assert "4 run(s) failed" in captured.err and "x0=13" in captured.err
    assert "ZeroDivisionError: division by zero" in captured.err
    assert len(read_csv(tmp_path / "o" / "cli.csv")) == 12


@pytest.mark.parametrize(
    ("text", "args", "message"),
    [
        (SWEEP.replace("x0 = [0.0, 1.0, 2.0]", "x0 = 1.0"), [], "field 'grid.x0': an axis is a list or a range"),
        (SWEEP, ["--serial", "--workers", "2"], "--serial runs in this process"),
        (SWEEP, ["--scheduler", "tcp://127.0.0.1:1", "--workers", "2"], "--workers sizes the LocalCluster"),
        (SWEEP, ["--workers", "0"], "--workers must be positive"),
    ],
)
def test_cli_sweep_errors(tmp_path, capsys, text, args, message):
    path = _toml(tmp_path, text)
    assert main(["sweep", str(path), "--no-progress", *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("neuro-hw sweep: error: ") and message in err
    if "grid.x0" in message:
        assert f"file '{path}'" in err


def test_cli_sweep_passes_the_engine_options(tmp_path, monkeypatch, capsys):
    seen = {}

    def fake(spec, out, **kwargs):
        seen.update(kwargs, out=out)
        return neuro_hw.sweep.SweepResult(spec, out / "x.csv", [], 0, 0, [], engine="fake")

    monkeypatch.setattr(neuro_hw.sweep, "run_sweep", fake)
    path = _toml(tmp_path)
    assert main(["sweep", str(path), "--workers", "3", "--no-resume"]) == 0
    assert seen == {"serial": False, "scheduler": None, "workers": 3, "resume": False, "progress": True,
                    "out": seen["out"]}  # fmt: skip
    assert str(seen["out"]).endswith("out/sweeps/cli")
    assert main(["sweep", str(path), "--scheduler", "tcp://127.0.0.1:8786", "--out", "x", "--no-progress"]) == 0
    assert seen["scheduler"] == "tcp://127.0.0.1:8786" and seen["workers"] is None and str(seen["out"]) == "x"


def test_cli_sweep_runs_a_population(tmp_path, capsys):
    text = """
        [sweep]
        name = "pop"
        evaluate = "neuro_hw.sweep.examples:quadratic"
        backends = ["reference"]
        seeds = [0]

        [population]
        method = "evolution"
        generations = 4
        size = 6
        parents = 2
        sigma = 0.5
        metric = "loss"

        [population.variables]
        x0 = 0.0
    """
    path = _toml(tmp_path, text)
    assert main(["sweep", str(path), "--serial", "--out", str(tmp_path / "o"), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "population pop: 4 generations x 6 individuals x 1 seeds (evolution); 24 runs now" in printed
    assert "best loss = " in printed and (tmp_path / "o" / "pop_progress.png").exists()


def test_cli_sweep_help_explains_every_option():
    sub = build_parser()._subparsers._group_actions[0].choices["sweep"]
    text = sub.format_help()
    for option in ("spec", "--scheduler ADDRESS", "--workers N", "--out DIR", "--serial", "--no-resume"):
        assert option in text
    for action in sub._actions:
        assert action.help, action.dest
