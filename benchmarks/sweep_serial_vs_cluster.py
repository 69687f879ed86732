"""The STDP precision sweep (examples/sweeps/stdp_precision.toml) serially and on a 2-worker LocalCluster, in one run.

What is measured, and how:

* **The same sweep both ways.**  The sweep file (default: weight bits 2..8 x trace bits 3..7 on the emulator, the
  float reference as the baseline, 5 seeds batched per task, 20000 steps) is run with ``run_sweep(...,
  serial=True)`` (every task in one process, the emulator's batches on one thread per core) and with a
  ``DaskEngine(workers=2)`` (a LocalCluster of 2 worker processes with one task thread and one emulator thread
  each).  ``resume=False``, no progress bar, no plots: the engine's work only.  The two tables must hold the same
  rows with the same metrics (checked: a digest of keys and metrics), else the run fails.
* **Cold processes, interleaved.**  Every timed run is a new Python process (this script with ``--child``), so
  both pay the same start: imports, and loading every compiled kernel from the on-disk cache (a serial rerun in
  one process would find them in memory).  Runs alternate serial, cluster, serial, cluster, ... (``--repeats``),
  and medians are reported.  ``sweep_s`` is the wall time of ``run_sweep``; the cluster's ``startup_s`` (starting
  the LocalCluster and its workers) is reported beside it and included in its ``total_s``.
* **Kernel compilation separately.**  Every (weight bits, trace bits) pair is a new emulator kernel structure.
  Before the timed runs, the sweep is run with 10 steps on an empty kernel cache (``NEURO_HW_CACHE`` set to a new
  temporary folder) twice: serially, and on the 2-worker cluster (each with its own empty cache).  That compiles
  every kernel once, in one process or spread over the workers (``kernel_compilation``: seconds of the whole
  process, kernels compiled).  The timed runs share the serial compilation's cache, so they only load kernels
  (checked: ``kernels_compiled_during_timed_runs`` = 0).
* **Conditions.**  Points, runs, seeds, steps, cores, the emulator threads, package versions and the machine's
  1/5/15-minute load average before and after every run.  ``--max-load L`` waits (up to ``--max-wait`` seconds)
  for the 1-minute load average to drop below ``L``, before the compilations and again before the timed runs:
  the machine is shared, and other processes on it slow both sides.

    python benchmarks/sweep_serial_vs_cluster.py [--spec FILE] [--repeats 2] [--max-load 1.0] [--json out.json]

``--steps N`` overrides the sweep's steps (a quick check).  Writes ``benchmarks/results/sweep_serial_vs_cluster.json``
by default and prints the conditions and times.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SPEC = ROOT / "examples" / "sweeps" / "stdp_precision.toml"
DEFAULT_JSON = ROOT / "benchmarks" / "results" / "sweep_serial_vs_cluster.json"


def load() -> list[float]:
    return [round(v, 2) for v in os.getloadavg()]


def digest(rows: list[dict]) -> str:
    """A hash of every row's key, status and metrics (what serial and cluster must agree on)."""
    h = hashlib.sha256()
    for r in sorted(rows, key=lambda r: r["key"]):
        metrics = {c: v for c, v in r.items() if c.startswith(("metric.", "ratio."))}
        h.update(json.dumps([r["key"], r["status"], metrics], sort_keys=True, default=repr).encode())
    return h.hexdigest()[:16]


def _spec(path: str, steps: int | None):
    from neuro_hw.sweep import load as load_sweep

    spec = load_sweep(path)
    if steps is not None:
        spec.params["steps"] = steps
    return spec


def child(mode: str, spec_path: str, steps: int | None, out: str, workers: int) -> dict:
    """One timed run in this (fresh) process; returns its measurements."""
    from neuro_hw.sweep import DaskEngine, run_sweep

    spec = _spec(spec_path, steps)
    before = load()
    result: dict = {"mode": mode, "load_before": before}
    if mode == "serial":
        start = time.perf_counter()
        res = run_sweep(spec, out, serial=True, resume=False, progress=False, plots=False)
        result["sweep_s"] = time.perf_counter() - start
        result["startup_s"] = 0.0
    else:
        start = time.perf_counter()
        engine = DaskEngine(workers=workers).start()
        result["startup_s"] = time.perf_counter() - start
        try:
            start = time.perf_counter()
            res = run_sweep(spec, out, engine=engine, resume=False, progress=False, plots=False)
            result["sweep_s"] = time.perf_counter() - start
        finally:
            engine.close()
    result["total_s"] = result["sweep_s"] + result["startup_s"]
    result.update(runs=len(res.rows), failures=len(res.failures), digest=digest(res.rows), engine=res.engine,
                  load_after=load())  # fmt: skip
    return result


def run_child(mode: str, args: argparse.Namespace, env: dict, out: Path, compile_only: bool = False) -> dict:
    cmd = [sys.executable, __file__, "--child", mode, "--spec", str(args.spec), "--out-dir", str(out),
           "--workers", str(args.workers)] + (["--steps", str(args.steps)] if args.steps else [])  # fmt: skip
    if compile_only:
        cmd += ["--steps", "10"]
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout + proc.stderr)
        raise SystemExit(f"{mode} run failed (exit {proc.returncode})")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result["process_s"] = time.perf_counter() - start  # with interpreter start and imports
    return result


def wait_for_load(max_load: float | None, max_wait: float) -> dict:
    if max_load is None:
        return {"waited_s": 0.0, "threshold": None, "timed_out": False}
    start = time.monotonic()
    while os.getloadavg()[0] >= max_load and time.monotonic() - start < max_wait:
        print(f"  load average {load()} >= {max_load}: waiting ...", flush=True)
        time.sleep(30)
    return {"waited_s": round(time.monotonic() - start, 1), "threshold": max_load,
            "timed_out": os.getloadavg()[0] >= max_load}  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--spec", default=str(DEFAULT_SPEC), help="the sweep TOML (default: the STDP precision sweep)")
    parser.add_argument("--repeats", type=int, default=2, help="timed runs of each side, interleaved (default 2)")
    parser.add_argument("--workers", type=int, default=2, help="LocalCluster worker processes (default 2)")
    parser.add_argument("--steps", type=int, default=None, help="override the sweep's steps (quick checks)")
    parser.add_argument("--max-load", type=float, default=None, help="wait for the 1-minute load to drop below this")
    parser.add_argument("--max-wait", type=float, default=1800.0, help="longest wait for --max-load (s)")
    parser.add_argument("--json", default=str(DEFAULT_JSON), help="where to write the results")
    parser.add_argument("--child", choices=("serial", "cluster"), help=argparse.SUPPRESS)
    parser.add_argument("--out-dir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.spec, args.steps, args.out_dir, args.workers)))
        return 0

    from neuro_hw.sweep import load as load_sweep
    from neuro_hw.sweep.task import package_versions

    spec = load_sweep(args.spec)
    steps = args.steps or spec.params.get("steps")
    points = spec.expand()
    cores = len(os.sched_getaffinity(0))
    conditions = {
        "spec": str(Path(args.spec).resolve().relative_to(ROOT))
        if ROOT in Path(args.spec).resolve().parents
        else args.spec,
        "points": len(points),
        "emulator_points": sum(p.backend == "emulator" for p in points),
        "seeds": spec.seeds,
        "runs": len(points) * len(spec.seeds),
        "tasks": len(points) * len(spec.seed_groups()),
        "steps": steps,
        "cores": cores,
        "serial_emulator_threads": cores,
        "cluster": f"LocalCluster, {args.workers} worker processes x 1 task thread, NEURO_HW_THREADS=1",
        "versions": package_versions(),
        "python": sys.version.split()[0],
    }
    print(f"sweep {spec.name}: {conditions['points']} points x {len(spec.seeds)} seeds = {conditions['runs']} runs "
          f"({conditions['tasks']} tasks) of {steps} steps; {cores} cores; load {load()}")  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="sweep_bench_") as tmp:
        env = {**os.environ, "NEURO_HW_CACHE": str(Path(tmp) / "cache")}
        env.pop("NEURO_HW_THREADS", None)
        conditions["load_wait_before_compilation"] = wait_for_load(args.max_load, args.max_wait)
        compile_info: dict = {}
        for mode in ("serial", "cluster"):
            cache = Path(tmp) / ("cache" if mode == "serial" else "cache-cluster")
            print(f"compiling the kernels ({mode}, empty cache, 10 steps) ...", flush=True)
            run = run_child(mode, args, {**env, "NEURO_HW_CACHE": str(cache)}, Path(tmp) / f"compile-{mode}", True)
            kernels = len(list((cache / "kernels").glob("*.py")))
            compile_info[mode] = {"seconds": round(run["process_s"], 2), "kernels": kernels,
                                  "load_before": run["load_before"], "load_after": run["load_after"]}  # fmt: skip
            print(f"  {kernels} kernels in {run['process_s']:.1f} s (load {run['load_after']})", flush=True)
        kernels = compile_info["serial"]["kernels"]
        waited = wait_for_load(args.max_load, args.max_wait)
        conditions["load_before_timed_runs"] = load()
        conditions["load_wait"] = waited
        print(f"timed runs (load average {conditions['load_before_timed_runs']}) ...", flush=True)
        runs: dict[str, list[dict]] = {"serial": [], "cluster": []}
        for i in range(args.repeats):
            for mode in ("serial", "cluster"):
                r = run_child(mode, args, env, Path(tmp) / f"{mode}{i}")
                runs[mode].append(r)
                print(f"  {mode:<7} #{i}: sweep {r['sweep_s']:6.2f} s + start-up {r['startup_s']:5.2f} s = "
                      f"{r['total_s']:6.2f} s (process {r['process_s']:.2f} s); load {r['load_before']} -> "
                      f"{r['load_after']}; digest {r['digest']}", flush=True)  # fmt: skip
        kernels_after = len(list((Path(tmp) / "cache" / "kernels").glob("*.py")))
    compile_info["kernels_compiled_during_timed_runs"] = kernels_after - kernels
    digests = {r["digest"] for rs in runs.values() for r in rs}
    failures = sum(r["failures"] for rs in runs.values() for r in rs)
    summary = {}
    for mode, rs in runs.items():
        summary[mode] = {k: round(statistics.median(r[k] for r in rs), 2) for k in ("sweep_s", "startup_s", "total_s")}
    speedup = {
        "total": round(summary["serial"]["total_s"] / summary["cluster"]["total_s"], 2),
        "sweep_only": round(summary["serial"]["sweep_s"] / summary["cluster"]["sweep_s"], 2),
    }
    result = {
        "benchmark": "sweep_serial_vs_cluster",
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "conditions": conditions,
        "kernel_compilation": compile_info,
        "runs": runs,
        "median": summary,
        "speedup_cluster_over_serial": speedup,
        "identical_results": len(digests) == 1,
        "valid": compile_info["kernels_compiled_during_timed_runs"] == 0,
        "failed_runs": failures,
        "load_after": load(),
    }
    print(f"median serial {summary['serial']['total_s']:.2f} s, cluster {summary['cluster']['total_s']:.2f} s "
          f"({summary['cluster']['startup_s']:.2f} s start-up): cluster {speedup['total']}x serial "
          f"({speedup['sweep_only']}x without start-up); identical results: {result['identical_results']}")  # fmt: skip
    path = Path(args.json)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp_path = path.with_suffix(".json.tmp")
    tmp_path.write_text(json.dumps(result, indent=2) + "\n")
    tmp_path.replace(path)
    print(f"written to {path}")
    recompiled = compile_info["kernels_compiled_during_timed_runs"]
    if recompiled:  # e.g. the emulator's sources changed under the run: the timed runs paid compilation
        print(f"INVALID: {recompiled} kernels were compiled during the timed runs (emulator sources changed?); "
              "the times include compilation", file=sys.stderr)  # fmt: skip
    return 0 if result["identical_results"] and not failures and not recompiled else 1


if __name__ == "__main__":
    sys.exit(main())
