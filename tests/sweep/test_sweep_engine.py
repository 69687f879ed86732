"""Running sweeps: serial == a 2-worker LocalCluster, failures captured per point, resume, interrupts.

One LocalCluster (2 worker processes) serves the whole module and is always closed.
"""

from __future__ import annotations

import psutil
import pytest

from neuro_hw.sweep import DaskEngine, SerialEngine, SweepSpec, read_csv, run_sweep
from neuro_hw.sweep.engine import Engine
from neuro_hw.sweep.task import run_task

Q = "neuro_hw.sweep.examples:quadratic"


def _children() -> list[str]:
    return [" ".join(c.cmdline()[:4]) for c in psutil.Process().children(recursive=True)]


@pytest.fixture(scope="module")
def cluster():
    before = _children()
    engine = DaskEngine(workers=2).start()
    try:
        yield engine
    finally:
        engine.close()
    assert _children() == before  # workers, nanny and the resource tracker they needed are all gone


def _metrics(rows):
    """What must agree between runs: the identity and every metric of every row."""
    return [(r["key"], r["status"], {c: v for c, v in r.items() if c.startswith(("metric.", "ratio."))}) for r in rows]


def test_worker_count_reads_neuro_hw_threads(monkeypatch):
    from neuro_hw.emulator.step_kernel import worker_count

    monkeypatch.setenv("NEURO_HW_THREADS", "3")
    assert worker_count() == 3
    monkeypatch.setenv("NEURO_HW_THREADS", "zero")
    with pytest.raises(ValueError, match="NEURO_HW_THREADS must be a positive integer"):
        worker_count()
    monkeypatch.delenv("NEURO_HW_THREADS")
    assert worker_count() >= 1


def test_serial_and_cluster_give_identical_rows(tmp_path, cluster):
    spec = SweepSpec(
        name="q",
        evaluate="sweep_objectives:bits_probe",
        grid={"a": [0.5, 1.5], "target.weights.bits": [3, 8], "target.learning.trace_bits": [4, 7]},
        backends=["reference", "emulator"],
        seeds=[0, 1, 2],
    )
    serial = run_sweep(spec, tmp_path / "serial", serial=True, progress=False, plots=False)
    spec.seeds_per_task = 1  # other tasks, same runs
    parallel = run_sweep(spec, tmp_path / "cluster", engine=cluster, progress=False, plots=False)
    assert serial.ok and parallel.ok and serial.ran == parallel.ran == (2 + 8) * 3
    assert _metrics(serial.rows) == _metrics(parallel.rows)
    by_target = {(r["param.target.weights.bits"], r["param.target.learning.trace_bits"], r["seed"]): r
                 for r in serial.rows if r["backend"] == "emulator"}  # fmt: skip
    row = by_target[(3, 7, 2)]
    assert (row["metric.weight_bits"], row["metric.trace_bits"], row["metric.seed"]) == (3, 7, 2)
    assert {r["metric.weight_bits"] for r in serial.rows if r["backend"] == "reference"} == {-1}
    assert len({r["worker"] for r in parallel.rows}) >= 1 and "Dask LocalCluster" in parallel.engine
    assert parallel.csv.read_text().count("\n") == 31


def test_stdp_precision_sweep_is_identical_serial_and_on_the_cluster(tmp_path, cluster):
    """The real evaluation: STDP on the emulator at two target variants against the float reference; the cluster
    runs every seed as its own task (one emulator thread per worker), the serial run batches the seeds."""
    spec = SweepSpec(
        name="stdp",
        evaluate="neuro_hw.sweep.examples:stdp_selectivity",
        params={"n_in": 10, "steps": 600},
        points=[
            {"target.weights.bits": 8, "target.learning.trace_bits": 7},  # Loihi 2
            {"target.weights.bits": 5, "target.learning.trace_bits": 4},
        ],
        backends=["reference", "emulator"],
        baseline="reference",
        seeds=[0, 1],
    )
    serial = run_sweep(spec, tmp_path / "serial", serial=True, progress=False, plots=False)
    spec.seeds_per_task = 1
    parallel = run_sweep(spec, tmp_path / "cluster", engine=cluster, progress=False, plots=False)
    assert serial.ok and parallel.ok, serial.failure_report() + parallel.failure_report()
    assert _metrics(serial.rows) == _metrics(parallel.rows)
    emu = [r for r in serial.rows if r["backend"] == "emulator"]
    assert len(emu) == 4 and all("ratio.selectivity" in r for r in emu)
    assert len({r["metric.w_corr"] for r in emu}) == 4  # variants and seeds differ


def test_cluster_workers_run_the_emulator_on_one_thread(tmp_path, cluster):
    spec = SweepSpec(name="t", evaluate="sweep_objectives:emulator_threads", backends=["reference"], seeds=[0, 1])
    result = run_sweep(spec, tmp_path, engine=cluster, progress=False, plots=False)
    assert {r["metric.threads"] for r in result.rows} == {1}


@pytest.mark.parametrize("where", ["serial", "cluster"])
def test_a_failing_point_is_reported_with_its_parameters_and_the_rest_completes(tmp_path, cluster, where):
    spec = SweepSpec(name="f", evaluate="sweep_objectives:quadratic_or_fail", grid={"x0": [0, 13, 2]},
                     backends=["reference"], seeds=[0, 1])  # fmt: skip
    engine = SerialEngine() if where == "serial" else cluster
    result = run_sweep(spec, tmp_path, engine=engine, progress=False)
    assert not result.ok and len(result.rows) == 6 and len(result.failures) == 2
    for row in result.failures:
        assert row["param.x0"] == 13 and row["status"] == "error" and row["error_type"] == "ZeroDivisionError"
        assert row["error_message"] == "division by zero" and "1 / 0" in row["traceback"]
    assert all(r["status"] == "ok" and r["metric.loss"] >= 0 for r in result.rows if r["param.x0"] != 13)
    report = result.failure_report()
    assert "x0=13" in report and "ZeroDivisionError: division by zero" in report
    on_disk = read_csv(result.csv)
    assert [r["status"] for r in on_disk] == ["ok", "ok", "error", "error", "ok", "ok"]
    assert result.plots  # the plots are made from the points that worked


def test_a_malformed_evaluation_is_a_failure(tmp_path):
    spec = SweepSpec(name="w", evaluate="sweep_objectives:wrong_count", backends=["reference"], seeds=[0, 1, 2])
    result = run_sweep(spec, tmp_path, serial=True, progress=False, plots=False)
    assert len(result.failures) == 3
    assert result.failures[0]["error_message"] == "the evaluation returned 2 metrics dicts for 3 seeds [0, 1, 2]"


def _calls(path):
    return path.read_text().splitlines() if path.exists() else []


def test_resume_skips_the_runs_already_in_the_table(tmp_path, monkeypatch):
    log = tmp_path / "calls.txt"
    monkeypatch.setenv("SWEEP_TEST_CALLS", str(log))
    spec = SweepSpec(name="r", evaluate="sweep_objectives:quadratic_or_fail", grid={"x0": [0, 1, 13, 3]},
                     params={"noise": 0.5}, backends=["reference"], seeds=[0, 1, 2], seeds_per_task=1)  # fmt: skip
    first = run_sweep(spec, tmp_path, serial=True, progress=False, plots=False)
    assert (first.ran, first.skipped, len(_calls(log))) == (12, 0, 12)
    # again: the ok runs are skipped, the failed point is retried (and fails again)
    log.unlink()
    second = run_sweep(spec, tmp_path, serial=True, progress=False, plots=False)
    assert (second.ran, second.skipped) == (3, 9)
    assert _calls(log) == ["13 [0]", "13 [1]", "13 [2]"]
    assert _metrics(second.rows) == _metrics(first.rows)
    # a table that lost rows (an interrupted sweep): only those run; a grown grid runs only the new points
    lines = first.csv.read_text().splitlines()
    first.csv.write_text("\n".join(lines[:4]) + "\n")  # header + 3 rows (x0 = 0)
    spec.grid["x0"] = [0, 1, 13, 3, 4]
    log.unlink()
    third = run_sweep(spec, tmp_path, serial=True, progress=False, plots=False)
    assert third.skipped == 3 and sorted(_calls(log)) == sorted(
        f"{x} [{s}]" for x in (1, 13, 3, 4) for s in (0, 1, 2)
    )  # fmt: skip
    assert _metrics(third.rows[:12]) == _metrics(first.rows)
    # --no-resume: everything again, the table replaced
    log.unlink()
    fourth = run_sweep(spec, tmp_path, serial=True, progress=False, plots=False, resume=False)
    assert fourth.ran == 15 and len(_calls(log)) == 15 and len(read_csv(fourth.csv)) == 15


class _InterruptedEngine(Engine):
    """Runs tasks in this process and raises KeyboardInterrupt after ``after`` of them (Ctrl-C mid-sweep)."""

    def __init__(self, after: int) -> None:
        self.after = after

    def run(self, tasks, on_rows):
        for i, task in enumerate(tasks):
            if i == self.after:
                raise KeyboardInterrupt
            on_rows(task, run_task(task))


def test_an_interrupted_sweep_keeps_its_finished_rows_and_resumes(tmp_path):
    spec = SweepSpec(name="i", evaluate=Q, grid={"x0": [0.0, 1.0, 2.0, 3.0]}, backends=["reference"], seeds=[0, 1])
    with pytest.raises(KeyboardInterrupt):
        run_sweep(spec, tmp_path, engine=_InterruptedEngine(after=3), progress=False, plots=False)
    assert len(read_csv(tmp_path / "i.csv")) == 6  # 3 tasks x 2 seeds, written although interrupted
    assert not list(tmp_path.glob(".*tmp"))  # no temporary file left behind
    resumed = run_sweep(spec, tmp_path, serial=True, progress=False, plots=False)
    assert (resumed.ran, resumed.skipped) == (2, 6)
    full = run_sweep(spec, tmp_path / "full", serial=True, progress=False, plots=False)
    assert _metrics(resumed.rows) == _metrics(full.rows)


def test_a_client_passed_in_is_used_and_left_open(tmp_path, cluster):
    spec = SweepSpec(name="c", evaluate=Q, grid={"x0": [1.0, 2.0]}, backends=["reference"], seeds=[0])
    result = run_sweep(spec, tmp_path, client=cluster.client, progress=False, plots=False)
    assert result.ok and result.ran == 2 and result.engine == "Dask client given"
    assert cluster.client.status == "running"
