"""Emulator vs Lava 0.10 (Loihi2SimCfg fixed_pt): whole-run wall and CPU times of the same runs, side by side.

Circuit: Input(n) -> Linear(n x n) -> LIF(n) -> Linear(n x n) [-> pair STDP, t_epoch = 1] -> LIF(n), compiled
once per case by ``neuro_hw.compile`` and run by ``neuro_hw.run(..., backend="lava")`` and
``neuro_hw.run(..., backend="emulator")`` on identical stimuli, seeds, steps, trials and recording (spikes,
``u``, ``v`` and learning traces every step; plastic weights and tags at the first and last step:
``weights_every=steps``).  What is measured, and how:

* **Rates are held, and measured on the timed runs.**  Inputs spike with probability ``r`` per step (seeded);
  the weight gains of both layers are calibrated per case (bisection on the gain, with emulator runs of the
  timed run's own stimulus, steps and seeds) so that layer 1 and layer 2 fire at ``r`` per neuron and step.
  The rates stored with each case are counted in the timed runs' results; a case whose layers are not within
  ``RATE_BAND`` (relative) of ``r`` is flagged and makes the run fail.  Every size is run at r = 1 %, 5 % and
  20 % (``RATES``): the emulator's work grows with activity (it visits only the synapses of neurons that
  spiked), Lava's does not, so the ratio depends on the regime.
* **The timed runs are the compared runs.**  Each case is timed ``repeats`` times on each side, interleaved
  (Lava, emulator, Lava, emulator, ...; before them one untimed emulator call loads the circuit's kernel
  into the process, and one untimed Lava call at the start warms the file cache), and every timed emulator
  run is compared with the Lava run of the same repeat by ``compare(lava, emulator, "exact")``: all trials,
  all steps, every recorded variable.  A variable or weight step recorded by one side only, or a recorded
  value left uncompared, is a failure.
* **Whole-run times for both sides, start-up included.**  ``wall_s`` is the wall time of the whole
  ``neuro_hw.run`` call (Lava: worker process, ``import lava``, network build and compile, the run, reading
  the recordings back; emulator: kernel look-up in the process, allocation, the run).  ``cpu_s`` is CPU
  time: ``time.process_time()`` of this process for the emulator (all its threads), ``RUSAGE_CHILDREN`` for
  Lava (the worker and the Lava processes it forks and reaps).  Lava's steady-state part is its own timer
  around ``root.run`` (``run_s``, from ``result.metadata["lava"]["timings"]``); ``startup_s = wall_s - run_s``.
  No per-step cost is derived from a slope between run lengths.  Ratios are medians over the repeats:
  ``wall`` = Lava wall / emulator wall, ``cpu`` = Lava CPU / emulator CPU (work per core), ``steady`` =
  Lava ``run_s`` / emulator wall (the emulator's per-call overhead stays in, so this understates it).
* **The emulator's one-time kernel compilation** is measured in fresh processes (``cold_start``): a new
  Python process with ``NEURO_HW_CACHE`` set to an empty temporary directory imports neuro_hw, compiles the
  case and runs it twice (the first call generates and numba-compiles the step kernel of that circuit
  structure; numba's cache of the library's fixed functions is left as installed), then a second new process
  on the same cache runs it once (the kernel comes from the disk cache).  Both are reported beside Lava's
  start-up, which Lava pays on every call; the ratio ``first_call`` = Lava wall / the cold process's first call.
* **Batched trials, like for like.**  ``B`` trials in one emulator call use one thread per core; Lava runs
  as one worker process per core: ``cores`` concurrent ``neuro_hw.run(..., backend="lava")`` calls from
  as many threads, each with an equal share of the trials (each worker runs its trials one after another).
  The parts' results are joined and compared exactly with the emulator's batch.
* **An error-driven circuit** (``fa_digits``): the digits feedback-alignment network of
  :mod:`neuro_hw.circuits.feedback_alignment` (64-100-10 graded neurons, signed errors on rails, a product neuron,
  two plastic layers with overwritten pre traces) trained online on its first ``fa_samples`` digits (5 steps
  each), timed and compared like the cases above; the fraction of steps on which each population sends a nonzero
  payload and the fraction of plastic weights that changed are measured on the timed run.  ``--only-fa`` runs it
  alone (JSON: ``benchmarks/results/emulator_vs_lava_fa_digits.json``).
* **Emulator-only diagnostics** (no ratio is based on them): CPU time per trial-step of the batched case
  with STDP recording everything, with STDP recording spikes only (``run_program_emulator(record="spikes")``),
  and without learning (its own calibrated gains, same rates) -- what bounds the emulator.

The machine's load average is stored before and after the run (other processes on the machine slow both
sides); ``--wait-idle SECONDS`` first waits, up to that long, for the 1-minute load to drop below
``--idle-load``.  All randomness is seeded.

    python benchmarks/emulator_vs_lava.py [--quick] [--only-fa] [--json out.json] [--wait-idle 3600]

``--quick`` is a smoke run (n=10 only, short runs, one repeat, no cold start, no JSON unless ``--json`` is
given).  The exit status is non-zero when an exactness check fails or, in a full run, a measured rate is outside
the band.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import nir
import numpy as np

import neuro_hw
from neuro_hw.compare import compare
from neuro_hw.emulator import run_program_emulator
from neuro_hw.result import Result, package_versions

DT = 1e-3
#: Target firing probabilities per neuron and step, of the inputs and of both LIF layers.
RATES = (0.01, 0.05, 0.20)
MAIN_RATE = 0.05
#: Allowed relative deviation of a measured layer rate from its target (calibration aims at half of it).
RATE_BAND = 0.10
DEFAULT_JSON = "benchmarks/results/emulator_vs_lava.json"


@dataclasses.dataclass(frozen=True)
class Plan:
    """What to run: ``(n, stdp, steps)`` cases at every rate, the batched case, and repetitions."""

    cases: tuple[tuple[int, bool, int], ...]
    rates: tuple[float, ...]
    batched: tuple[int, int, int]  # n, trials, steps (STDP, MAIN_RATE)
    repeats: int
    cold_repeats: int
    fa_samples: int  # digits presented to the FA circuit


#: Run lengths: Lava's per-step cost is nearly constant (about 20 steps/s at n=1000 with STDP, its learning
#: engine evaluates the whole matrix every step), so n=1000 runs fewer steps; both sides run the same steps.
FULL = Plan(
    cases=(
        (10, False, 2000),
        (10, True, 2000),
        (100, False, 2000),
        (100, True, 2000),
        (1000, False, 2000),
        (1000, True, 200),
    ),  # fmt: skip
    rates=RATES,
    batched=(100, 64, 300),
    repeats=3,
    cold_repeats=2,
    fa_samples=200,
)
QUICK = Plan(cases=((10, True, 300),), rates=RATES, batched=(10, 2, 200), repeats=1, cold_repeats=0, fa_samples=10)
FA_JSON = "benchmarks/results/emulator_vs_lava_fa_digits.json"


# --------------------------------------------------------------------------------------------------
# circuit, stimulus, calibration
# --------------------------------------------------------------------------------------------------
def circuit(n: int, stdp: bool, gains: tuple[float, float], seed: int = 0) -> neuro_hw.Circuit:
    """The benchmark circuit; ``gains`` scale the (seeded) random weights of layer 1 and layer 2."""
    rng = np.random.default_rng(seed)
    ones = np.ones(n)
    g1, g2 = gains

    def lif():
        return nir.LIF(tau=0.02 * ones, r=20 * ones, v_leak=0 * ones, v_threshold=ones, v_reset=0 * ones)

    scale = 8.0 / n
    nodes = {
        "in": nir.Input(np.array([n])),
        "w1": nir.Linear(rng.uniform(0, 0.5, (n, n)) * scale * g1),
        "l1": lif(),
        "w2": nir.Linear(rng.uniform(0, 1.0, (n, n)) * scale * g2),
        "l2": lif(),
    }
    c = neuro_hw.Circuit(nodes, [("in", "w1"), ("w1", "l1"), ("l1", "w2"), ("w2", "l2")])
    if stdp:
        c.add_plasticity(
            "w2",
            "dw = 0.0005*x1*y0 - 0.0005*y1*x0",
            traces={"x1": (1.0, 0.02), "y1": (1.0, 0.02)},
            w_bounds=(0.0, 2 * scale * g2),
        )
    return c


def stimulus(n: int, steps: int, rate: float, batch: int = 1, seed: int = 1) -> np.ndarray:
    """Seeded Bernoulli input spikes ``(batch, steps, n)`` (float 0/1, as a user passes them)."""
    return (np.random.default_rng(seed).random((batch, steps, n)) < rate).astype(np.float64)


def layer_rates(n: int, stdp: bool, gains: tuple[float, float], x: np.ndarray, seeds: list[int]) -> tuple[float, float]:
    """Mean spike probability per neuron and step of l1 and l2 (emulator, spikes only)."""
    program = neuro_hw.compile(circuit(n, stdp, gains), dt=DT)
    res = run_program_emulator(program, {"in": x.astype(bool)}, x.shape[1], seed=seeds, record="spikes")
    return float(res.spikes["l1"].mean()), float(res.spikes["l2"].mean())


def bisect_gain(rate_of, target: float, guess: float, iterations: int = 40) -> tuple[float, float]:
    """Gain whose rate is closest to ``target`` (log-bisection; the rates grow with the gain): (gain, rate)."""
    seen: dict[float, float] = {}

    def rate(g: float) -> float:
        if g not in seen:
            seen[g] = rate_of(g)
        return seen[g]

    lo, hi = guess / 2, guess * 2
    while rate(lo) > target and lo > 1e-4:
        lo /= 2
    while rate(hi) < target and hi < 1e4:
        hi *= 2
    for _ in range(iterations):
        mid = (lo * hi) ** 0.5
        r = rate(mid)
        if abs(r / target - 1) <= RATE_BAND / 2:
            break
        lo, hi = (mid, hi) if r < target else (lo, mid)
    gain = min(seen, key=lambda g: abs(seen[g] / target - 1))
    return gain, seen[gain]


def calibrate(n: int, stdp: bool, rate: float, x: np.ndarray, seeds: list[int]) -> tuple[float, float]:
    """Gains (layer 1, layer 2) for which both layers fire at ``rate`` on this stimulus, steps and seeds.

    Layer 1 does not depend on the layer-2 gain, so it is calibrated first (with the layer-2 gain at its
    guess), then layer 2 with layer 1 fixed."""
    guess = 0.8 * (0.05 / rate) ** 0.3, 0.3 * (0.05 / rate) ** 0.3
    g1, _ = bisect_gain(lambda g: layer_rates(n, stdp, (g, guess[1]), x, seeds)[0], rate, guess[0])
    g2, _ = bisect_gain(lambda g: layer_rates(n, stdp, (g1, g), x, seeds)[1], rate, guess[1])
    return g1, g2


# --------------------------------------------------------------------------------------------------
# timing and checking
# --------------------------------------------------------------------------------------------------
def children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def run_lava(program, x: np.ndarray, steps: int, seeds: list[int]) -> tuple[Result, dict]:
    cpu0, t0 = children_cpu(), time.perf_counter()
    inputs = x if isinstance(x, dict) else {"in": x}
    res = neuro_hw.run(program, inputs, steps, backend="lava", seed=seeds, weights_every=steps)
    wall, cpu = time.perf_counter() - t0, children_cpu() - cpu0
    run_s = sum(t["run_s"] for t in res.metadata["lava"]["timings"])
    return res, {"wall_s": wall, "cpu_s": cpu, "run_s": run_s, "startup_s": wall - run_s}


def run_lava_parallel(program, x: np.ndarray, steps: int, seeds: list[int], workers: int) -> tuple[Result, dict]:
    """``workers`` concurrent Lava calls (one worker process each), trials split evenly; results joined."""
    bounds = np.linspace(0, len(seeds), workers + 1).round().astype(int)
    parts: list = [None] * workers
    errors: list[BaseException] = []

    def part(i: int) -> None:
        lo, hi = bounds[i], bounds[i + 1]
        try:
            parts[i] = neuro_hw.run(program, {"in": x[lo:hi]}, steps, backend="lava", seed=seeds[lo:hi],
                                    weights_every=steps)  # fmt: skip
        except BaseException as err:  # noqa: B036 - re-raised in the caller's thread
            errors.append(err)

    cpu0, t0 = children_cpu(), time.perf_counter()
    threads = [threading.Thread(target=part, args=(i,)) for i in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall, cpu = time.perf_counter() - t0, children_cpu() - cpu0
    if errors:
        raise errors[0]
    run_s = [sum(t["run_s"] for t in p.metadata["lava"]["timings"]) for p in parts]
    joined = dataclasses.replace(
        parts[0],
        spikes={k: np.concatenate([p.spikes[k] for p in parts]) for k in parts[0].spikes},
        states={k: np.concatenate([p.states[k] for p in parts]) for k in parts[0].states},
        weights={k: np.concatenate([p.weights[k] for p in parts]) for k in parts[0].weights},
        batch=len(seeds),
    )
    return joined, {"wall_s": wall, "cpu_s": cpu, "run_s": max(run_s), "startup_s": wall - max(run_s)}


def run_emulator(program, x: np.ndarray, steps: int, seeds: list[int]) -> tuple[Result, dict]:
    cpu0, t0 = time.process_time(), time.perf_counter()
    inputs = x if isinstance(x, dict) else {"in": x}
    res = neuro_hw.run(program, inputs, steps, backend="emulator", seed=seeds, weights_every=steps)
    return res, {"wall_s": time.perf_counter() - t0, "cpu_s": time.process_time() - cpu0}


def recorded(res: Result) -> dict[str, tuple[int, tuple[int, ...]]]:
    """Every recorded variable: key -> (number of values, recorded weight steps)."""
    out = {f"spikes.{k}": (v.size, ()) for k, v in res.spikes.items()}
    out |= {f"states.{k}": (v.size, ()) for k, v in res.states.items()}
    out |= {f"weights.{k}": (v.size, tuple(int(s) for s in res.weight_steps[k])) for k, v in res.weights.items()}
    return out


def exact_check(lava: Result, emu: Result) -> dict:
    """Strict equality of two results: ``compare(..., "exact")``, plus no variable, weight step or value
    recorded by one side only or left uncompared."""
    c = compare(lava, emu, "exact")
    ra, rb = recorded(lava), recorded(emu)
    total = sum(size for size, _ in ra.values())
    problems = list(c.failures)
    if c.only_in_one:
        problems.append(f"recorded by one side only: {c.only_in_one}")
    if ra != rb:
        problems.append(
            f"recorded variables, sizes or weight steps differ: {sorted(set(ra.items()) ^ set(rb.items()))}"
        )
    if c.compared_values != total:
        problems.append(f"compared {c.compared_values} of {total} recorded values")
    return {
        "passed": bool(c.passed and not problems),
        "values_compared": int(c.compared_values),
        "values_recorded": int(total),
        "mismatches": int(c.mismatches),
        "only_in_one": list(c.only_in_one),
        "first_divergence": str(c.first_divergence) if c.first_divergence else None,
        "problems": problems,
    }


def median(values: list[float]) -> float:
    return float(statistics.median(values))


def measured_rates(res: Result, x: np.ndarray) -> dict[str, float]:
    return {"input": float(x.mean()), "l1": float(res.spikes["l1"].mean()), "l2": float(res.spikes["l2"].mean())}


def in_band(rates: dict[str, float], target: float) -> bool:
    return all(abs(rates[k] / target - 1) <= RATE_BAND for k in ("l1", "l2"))


def timed_pairs(program, x, steps, seeds, repeats: int, lava_fn) -> tuple[list[dict], list[dict], list[dict], Result]:
    """``repeats`` interleaved (Lava, emulator) timings of the same run, each pair checked exactly."""
    lava_t, emu_t, checks = [], [], []
    run_emulator(program, x, steps, seeds)  # untimed: loads (or compiles) this structure's kernel in-process
    res = None
    for _ in range(repeats):
        lava_res, lt = lava_fn(program, x, steps, seeds)
        res, et = run_emulator(program, x, steps, seeds)
        checks.append(exact_check(lava_res, res))
        lava_t.append(lt)
        emu_t.append(et)
        del lava_res
    return lava_t, emu_t, checks, res


def summarise(lava_t: list[dict], emu_t: list[dict], checks: list[dict]) -> dict:
    lava = {k: [t[k] for t in lava_t] for k in lava_t[0]}
    emu = {k: [t[k] for t in emu_t] for k in emu_t[0]}
    return {
        "lava": lava,
        "emulator": emu,
        "median": {"lava": {k: median(v) for k, v in lava.items()}, "emulator": {k: median(v) for k, v in emu.items()}},
        "ratio": {
            "wall": median(lava["wall_s"]) / median(emu["wall_s"]),
            "cpu": median(lava["cpu_s"]) / median(emu["cpu_s"]),
            "steady": median(lava["run_s"]) / median(emu["wall_s"]),
        },
        "exact": {
            "passed": all(c["passed"] for c in checks),
            "runs_compared": len(checks),
            "values_compared_per_run": checks[0]["values_compared"],
            "checks": checks,
        },
    }


def bench_case(n: int, stdp: bool, rate: float, steps: int, repeats: int) -> dict:
    seeds = [0]
    x = stimulus(n, steps, rate)
    t0 = time.perf_counter()
    gains = calibrate(n, stdp, rate, x, seeds)
    calib_s = time.perf_counter() - t0
    program = neuro_hw.compile(circuit(n, stdp, gains), dt=DT)
    load = os.getloadavg()
    lava_t, emu_t, checks, res = timed_pairs(program, x, steps, seeds, repeats, run_lava)
    rates = measured_rates(res, x)
    out = {"n": n, "stdp": stdp, "trials": 1, "steps": steps, "target_rate": rate, "gains": list(gains)}
    out |= {"rates": rates, "rates_in_band": in_band(rates, rate), "calibration_s": calib_s, "load_avg": list(load)}
    s = summarise(lava_t, emu_t, checks)
    s["steps_per_s"] = {
        "lava_in_run": steps / s["median"]["lava"]["run_s"],
        "lava_whole_call": steps / s["median"]["lava"]["wall_s"],
        "emulator_whole_call": steps / s["median"]["emulator"]["wall_s"],
    }
    return out | s


def bench_batched(n: int, batch: int, steps: int, repeats: int, workers: int) -> dict:
    seeds = list(range(batch))
    x = stimulus(n, steps, MAIN_RATE, batch=batch)
    gains = calibrate(n, True, MAIN_RATE, x, seeds)
    program = neuro_hw.compile(circuit(n, True, gains), dt=DT)
    load = os.getloadavg()

    def lava_fn(p, xx, t, s):
        return run_lava_parallel(p, xx, t, s, workers)

    lava_t, emu_t, checks, res = timed_pairs(program, x, steps, seeds, repeats, lava_fn)
    rates = measured_rates(res, x)
    s = summarise(lava_t, emu_t, checks)
    trial_steps = batch * steps
    s["trial_steps_per_s"] = {
        "lava": trial_steps / s["median"]["lava"]["wall_s"],
        "emulator": trial_steps / s["median"]["emulator"]["wall_s"],
    }
    out = {"n": n, "stdp": True, "trials": batch, "steps": steps, "target_rate": MAIN_RATE, "gains": list(gains)}
    out |= {"rates": rates, "rates_in_band": in_band(rates, MAIN_RATE), "load_avg": list(load)}
    out |= {"lava_workers": workers, "emulator_threads": workers}
    return out | s


def bench_fa_digits(samples: int, repeats: int) -> dict:
    """The digits feedback-alignment circuit (64-100-10, graded activations, signed errors on rails, hidden errors
    computed on chip; :mod:`neuro_hw.circuits.feedback_alignment`) trained online on its first ``samples`` digits,
    timed on both sides like the other cases; the conditions are measured in the timed emulator run: the fraction
    of steps on which each graded population sends a nonzero payload, and the plastic weights that changed."""
    from neuro_hw.circuits.digits import epoch_order, load_digits_split, one_hot
    from neuro_hw.circuits.error_driven_numpy import ErrorDrivenParams, init_weights
    from neuro_hw.circuits.feedback_alignment import SignalRanges, error_driven_circuit, stimuli

    params, split = ErrorDrivenParams(), load_digits_split()
    w1, w2, b = init_weights(params, 0)
    circuit_fa, schedule = error_driven_circuit(params, w1, w2, b, "fa")
    order = epoch_order(len(split.y_train), 1, 0)[:samples]
    stim = stimuli(schedule, split.x_train[order], one_hot(split.y_train[order]))
    program = neuro_hw.compile(circuit_fa, dt=DT, **SignalRanges().compile_options())
    steps = schedule.steps(samples)
    load = os.getloadavg()
    lava_t, emu_t, checks, res = timed_pairs(program, stim, steps, [0], repeats, run_lava)
    graded = {k[: -len(".y")]: float((v != 0).mean()) for k, v in res.states.items() if k.endswith(".y")}
    changed = {k: float((v[:, -1] != v[:, 0]).mean()) for k, v in res.weights.items() if k in ("w1.w", "w2.w")}
    sizes = {name: int(pop.n) for name, pop in program.neurons.items()}
    out = {"case": "fa_digits", "n": "64-100-10", "stdp": False, "trials": 1, "steps": steps, "samples": samples}
    out |= {"period_steps": schedule.period, "population_sizes": sizes, "nonzero_output_fraction": graded}
    out |= {"weights_changed_fraction": changed, "load_avg": list(load)}
    s = summarise(lava_t, emu_t, checks)
    s["steps_per_s"] = {
        "lava_in_run": steps / s["median"]["lava"]["run_s"],
        "lava_whole_call": steps / s["median"]["lava"]["wall_s"],
        "emulator_whole_call": steps / s["median"]["emulator"]["wall_s"],
    }
    return out | s


def fmt_fa(c: dict) -> str:
    m, r = c["median"], c["ratio"]
    active = ", ".join(f"{k} {v:.0%}" for k, v in c["nonzero_output_fraction"].items())
    return (
        f"FA digits 64-100-10, {c['samples']} samples = {c['steps']} steps (nonzero outputs per step: {active}): "
        f"Lava {m['lava']['wall_s']:.2f} s (start-up {m['lava']['startup_s']:.2f} s), emulator "
        f"{m['emulator']['wall_s']:.4f} s; wall {r['wall']:.0f}x, cpu {r['cpu']:.0f}x, steady {r['steady']:.0f}x; "
        f"exact {c['exact']['passed']}"
    )


def emulator_diagnostics(n: int, batch: int, steps: int, repeats: int, stdp_gains: list[float]) -> dict:
    """Emulator-only CPU time per trial-step of the batched case: STDP (all / spikes only), no learning."""
    seeds = list(range(batch))
    x = stimulus(n, steps, MAIN_RATE, batch=batch)
    payload = {"in": x.astype(bool)}
    plain_gains = calibrate(n, False, MAIN_RATE, x, seeds)
    variants = {
        "stdp_record_all": (True, tuple(stdp_gains), "all"),
        "stdp_record_spikes": (True, tuple(stdp_gains), "spikes"),
        "no_learning_record_all": (False, plain_gains, "all"),
    }
    out: dict = {"n": n, "trials": batch, "steps": steps, "target_rate": MAIN_RATE}
    for name, (stdp, gains, record) in variants.items():
        program = neuro_hw.compile(circuit(n, stdp, gains), dt=DT)
        run_program_emulator(program, payload, steps, seed=seeds, record=record, weights_every=steps)  # warm-up
        cpu = []
        for _ in range(repeats):
            c0 = time.process_time()
            res = run_program_emulator(program, payload, steps, seed=seeds, record=record, weights_every=steps)
            cpu.append(time.process_time() - c0)
        out[name] = {
            "gains": list(gains),
            "rates": measured_rates(res, x),
            "cpu_s": cpu,
            "cpu_us_per_trial_step": median(cpu) / (batch * steps) * 1e6,
        }
    return out


# --------------------------------------------------------------------------------------------------
# cold start: fresh processes, fresh kernel cache
# --------------------------------------------------------------------------------------------------
def cold_child(spec: dict) -> None:
    """In a fresh process (see :func:`cold_start`): compile the case and time two emulator calls; print JSON."""
    n, stdp, steps, rate = spec["n"], spec["stdp"], spec["steps"], spec["rate"]
    x = stimulus(n, steps, rate)
    t0 = time.perf_counter()
    program = neuro_hw.compile(circuit(n, stdp, tuple(spec["gains"])), dt=DT)
    t1 = time.perf_counter()
    neuro_hw.run(program, {"in": x}, steps, backend="emulator", seed=0, weights_every=steps)
    t2 = time.perf_counter()
    neuro_hw.run(program, {"in": x}, steps, backend="emulator", seed=0, weights_every=steps)
    t3 = time.perf_counter()
    print(json.dumps({"import_s": spec["import_s"], "compile_s": t1 - t0, "first_call_s": t2 - t1,
                      "second_call_s": t3 - t2}))  # fmt: skip


_CHILD = (
    "import time; t0 = time.perf_counter(); import neuro_hw, neuro_hw.emulator; t1 = time.perf_counter(); "
    "import json, sys; sys.path.insert(0, {bench!r}); import emulator_vs_lava as b; "
    "b.cold_child(dict(json.loads({spec!r}), import_s=t1 - t0))"
)


def cold_start(n: int, stdp: bool, rate: float, steps: int, gains: list[float], repeats: int) -> dict:
    """Per repeat: a process on an empty ``NEURO_HW_CACHE`` (compiles the kernel), then one on that cache."""
    spec = json.dumps({"n": n, "stdp": stdp, "rate": rate, "steps": steps, "gains": gains})
    code = _CHILD.format(bench=str(Path(__file__).resolve().parent), spec=spec)
    fresh, cached = [], []
    for _ in range(repeats):
        with tempfile.TemporaryDirectory(prefix="neuro_hw_bench_cache_") as cache:
            env = dict(os.environ, NEURO_HW_CACHE=cache)
            for runs in (fresh, cached):
                t0 = time.perf_counter()
                done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                                      timeout=600, check=True)  # fmt: skip
                runs.append(json.loads(done.stdout.strip().splitlines()[-1]) | {"process_s": time.perf_counter() - t0})
    keys = fresh[0].keys()
    return {
        "n": n,
        "stdp": stdp,
        "steps": steps,
        "fresh_cache": {k: [r[k] for r in fresh] for k in keys},
        "disk_cache": {k: [r[k] for r in cached] for k in keys},
        "median_first_call_s": {
            "fresh_cache": median([r["first_call_s"] for r in fresh]),
            "disk_cache": median([r["first_call_s"] for r in cached]),
        },
    }


# --------------------------------------------------------------------------------------------------
# main
# --------------------------------------------------------------------------------------------------
def wait_for_idle(max_wait: float, idle_load: float) -> float:
    """Sleep until the 1-minute load average is below ``idle_load`` or ``max_wait`` seconds passed."""
    t0 = time.monotonic()
    while os.getloadavg()[0] >= idle_load and time.monotonic() - t0 < max_wait:
        print(f"load average {os.getloadavg()[0]:.2f} >= {idle_load}: waiting", flush=True)
        time.sleep(min(60.0, max(1.0, max_wait - (time.monotonic() - t0))))
    return time.monotonic() - t0


def source_state() -> dict:
    """Where neuro_hw was imported from, its git commit and the uncommitted changes to its code there."""
    repo = Path(neuro_hw.__file__).resolve().parents[1]

    def git(*cmd: str) -> str:
        try:
            done = subprocess.run(["git", "-C", str(repo), *cmd], capture_output=True, text=True, timeout=60)
        except OSError:
            return ""
        return done.stdout.strip() if done.returncode == 0 else ""

    changed = git("status", "--porcelain", "--untracked-files=no", "--", "neuro_hw", "emulator", "targets")
    return {"path": str(repo), "commit": git("rev-parse", "HEAD"), "uncommitted_code_changes": changed.splitlines()}


def fmt_case(c: dict) -> str:
    m, r = c["median"], c["ratio"]
    return (
        f"{c['n']:>5} {str(c['stdp']):>5} {c['trials']:>3} {c['steps']:>5} {c['target_rate']:>5.0%} "
        f"{c['rates']['l1']:>6.2%}/{c['rates']['l2']:<6.2%} "
        f"{m['lava']['wall_s']:>8.2f} {m['lava']['startup_s']:>6.2f} {m['emulator']['wall_s']:>9.4f} "
        f"{r['wall']:>8.0f}x {r['cpu']:>8.0f}x {r['steady']:>8.0f}x {str(c['exact']['passed']):>6}"
    )


HEADER = (
    f"{'n':>5} {'STDP':>5} {'B':>3} {'steps':>5} {'rate':>5} {'l1/l2 meas.':>13} {'Lava s':>8} {'start':>6} "
    f"{'emu s':>9} {'wall':>9} {'cpu':>9} {'steady':>9} {'exact':>6}"
)


def machine(cores: int, load_before, load_after, waited: float, started: float) -> dict:  # noqa: ANN001
    """The conditions of a run: interpreter, processor, cores, load averages before and after, wall time."""
    return {
        "python": platform.python_version(),
        "processor": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "cores_used": cores,
        "load_avg_before": list(load_before),
        "load_avg_after": list(load_after),
        "waited_for_idle_s": waited,
        "total_s": time.perf_counter() - started,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: small sizes, short runs (noisy ratios)")
    parser.add_argument("--json", default=None, help=f"where to write JSON (full run: {DEFAULT_JSON})")
    parser.add_argument("--wait-idle", type=float, default=0.0, help="wait up to this many s for a quiet machine")
    parser.add_argument("--idle-load", type=float, default=0.5, help="1-minute load average counted as quiet")
    parser.add_argument("--only-fa", action="store_true",
                        help=f"run only the FA digits case (full run: writes {FA_JSON})")  # fmt: skip
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else FULL
    if args.only_fa:
        return main_fa(plan, args)
    json_path = args.json or (None if args.quick else DEFAULT_JSON)
    cores = len(os.sched_getaffinity(0))

    waited = wait_for_idle(args.wait_idle, args.idle_load) if args.wait_idle > 0 else 0.0
    source = source_state()
    load_before = os.getloadavg()
    print(f"load average before: {load_before[0]:.2f} {load_before[1]:.2f} {load_before[2]:.2f}; {cores} cores")
    started = time.perf_counter()
    warm = neuro_hw.compile(circuit(4, False, (1.0, 1.0)), dt=DT)  # untimed: warms the OS file cache for Lava
    neuro_hw.run(warm, {"in": stimulus(4, 2, MAIN_RATE)}, 2, backend="lava")

    cases = []
    print(HEADER)
    for rate in plan.rates:
        for n, stdp, steps in plan.cases:
            c = bench_case(n, stdp, rate, steps, plan.repeats)
            cases.append(c)
            print(fmt_case(c), "" if c["rates_in_band"] else "  RATES OUT OF BAND", flush=True)

    bn, bb, bt = plan.batched
    batched = bench_batched(bn, bb, bt, plan.repeats, cores)
    print(fmt_case(batched), f" ({cores} Lava workers vs {cores} emulator threads)", flush=True)
    fa = bench_fa_digits(plan.fa_samples, plan.repeats)
    print(fmt_fa(fa), flush=True)
    diagnostics = emulator_diagnostics(bn, bb, bt, plan.repeats, batched["gains"])
    print(
        "emulator only, CPU us per trial-step (n={n}, B={trials}): STDP {a:.3f}, STDP spikes only {b:.3f}, "
        "no learning {c:.3f}".format(
            a=diagnostics["stdp_record_all"]["cpu_us_per_trial_step"],
            b=diagnostics["stdp_record_spikes"]["cpu_us_per_trial_step"],
            c=diagnostics["no_learning_record_all"]["cpu_us_per_trial_step"],
            **diagnostics,
        )
    )

    cold = []
    for n, stdp, steps in plan.cases if plan.cold_repeats else ():
        case = next(c for c in cases if c["n"] == n and c["stdp"] == stdp and c["target_rate"] == MAIN_RATE)
        cs = cold_start(n, stdp, MAIN_RATE, steps, case["gains"], plan.cold_repeats)
        cs["lava_median_wall_s"] = case["median"]["lava"]["wall_s"]
        cs["lava_median_startup_s"] = case["median"]["lava"]["startup_s"]
        cs["ratio_first_call"] = cs["lava_median_wall_s"] / cs["median_first_call_s"]["fresh_cache"]
        cold.append(cs)
        print(
            f"cold start n={n} STDP={stdp}: emulator first call {cs['median_first_call_s']['fresh_cache']:.2f} s "
            f"(fresh kernel cache), {cs['median_first_call_s']['disk_cache']:.3f} s (disk cache); Lava call "
            f"{cs['lava_median_wall_s']:.2f} s of which start-up {cs['lava_median_startup_s']:.2f} s",
            flush=True,
        )
    load_after = os.getloadavg()
    print(f"load average after: {load_after[0]:.2f} {load_after[1]:.2f} {load_after[2]:.2f}")

    everything = [*cases, batched]
    exact = all(c["exact"]["passed"] for c in [*everything, fa])
    rates_ok = all(c["rates_in_band"] for c in everything)
    out = {
        "description": __doc__.split("\n\n")[0],
        "conditions": {
            "dt": DT,
            "rates": list(plan.rates),
            "rate_band_relative": RATE_BAND,
            "repeats_per_side": plan.repeats,
            "recording": "spikes, u, v, learning traces every step; plastic w/tags at steps 0 and T",
            "ratios": "medians over repeats; wall = whole neuro_hw.run calls incl. start-up; cpu = CPU seconds; "
            "steady = Lava run_s (its timer around root.run) / emulator whole-call wall",
        },
        "machine": machine(cores, load_before, load_after, waited, started),
        "versions": package_versions(),
        "source": source,
        "quick": args.quick,
        "all_exact": exact,
        "all_rates_in_band": rates_ok,
        "cases": cases,
        "batched": batched,
        "fa_digits": fa,
        "cold_start": cold,
        "emulator_only": diagnostics,
    }
    if json_path:
        path = Path(json_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(out, indent=1))
        print(f"wrote {path}")
    print(f"all runs bit-exact: {exact}; all measured rates within {RATE_BAND:.0%} of target: {rates_ok}")
    return 0 if exact and (rates_ok or args.quick) else 1


def main_fa(plan: Plan, args: argparse.Namespace) -> int:
    """Only the FA digits case (``--only-fa``), with the same conditions recorded as a full run."""
    cores = len(os.sched_getaffinity(0))
    waited = wait_for_idle(args.wait_idle, args.idle_load) if args.wait_idle > 0 else 0.0
    load_before, started = os.getloadavg(), time.perf_counter()
    print(f"load average before: {load_before[0]:.2f} {load_before[1]:.2f} {load_before[2]:.2f}; {cores} cores")
    fa = bench_fa_digits(plan.fa_samples, plan.repeats)
    print(fmt_fa(fa), flush=True)
    load_after = os.getloadavg()
    print(f"load average after: {load_after[0]:.2f} {load_after[1]:.2f} {load_after[2]:.2f}")
    out = {
        "description": "Emulator vs Lava on the digits feedback-alignment circuit (benchmarks/emulator_vs_lava.py "
        "--only-fa): the same compiled run on both sides, timed interleaved, each timed pair compared value for value",
        "conditions": {
            "dt": DT,
            "repeats_per_side": plan.repeats,
            "recording": "the Program's default recording "
            "every step (spikes/graded payloads, u, v, traces); plastic weights at steps 0 and T",
        },  # fmt: skip
        "machine": machine(cores, load_before, load_after, waited, started),
        "versions": package_versions(),
        "source": source_state(),
        "quick": args.quick,
        "fa_digits": fa,
    }
    json_path = args.json or (None if args.quick else FA_JSON)
    if json_path:
        path = Path(json_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(out, indent=1))
        print(f"wrote {path}")
    return 0 if fa["exact"]["passed"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
