"""Emulator vs Lava (Loihi2SimCfg fixed_pt) on the same compiled circuits, measured side by side in one run.

Circuit: Input(n) -> Linear(n x n) -> LIF(n) -> Linear(n x n) [-> STDP] -> LIF(n), inputs spiking with
probability 0.05 per step and both layers firing at about 5 % per step (``GAINS``; the measured rates are
printed), compiled once by neuro_hw.compile and run by both backends on identical payloads.  STDP is pair STDP
with t_epoch = 1: every pre spike updates its column and every post spike its row of the weight matrix.
Lava's learning engine evaluates the whole matrix every step; the emulator only the synapses the rule can
change (same integers, see emulator/learning.py), so its speed depends on the firing rates and Lava's does not.

Per-step cost is the slope between two run lengths (``t(T2) - t(T1)) / (T2 - T1)``), each the best of
several runs, so Lava's start-up (worker process, ``import lava``, compile, fork: about 0.5-1 s per call)
is reported separately and does not inflate its per-step time -- nor deflate it: the first Lava call of a
process pays one-time costs, which would make ``t(T1)`` too long and the slope too small, so every
length is timed at least twice.  The batched case runs B=64 trials at n=100 in one emulator call; Lava runs trials
one after another, so its trial-steps/s is its single-trial steps/s at n=100 measured in the same run.
Both backends record spikes, u, v and traces every step and plastic weights at the first and last step (the
full n x n matrix every step would dominate both at n=1000); their results are compared for exact equality on
every case.

    python benchmarks/emulator_vs_lava.py [--quick] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import nir
import numpy as np

import neuro_hw
from neuro_hw.compare import compare
from neuro_hw.result import package_versions

DT = 1e-3
RATE = 0.05


#: Weight gains (layer 1, layer 2) per size, chosen so that both layers fire at about 5 % per step (50 Hz at
#: dt = 1 ms) -- a plausible spiking regime; the measured rates are printed and stored with the results.
GAINS = {10: (0.8, 0.3), 100: (0.8, 0.3), 1000: (0.7, 0.25)}


def circuit(n: int, stdp: bool, seed: int = 0) -> neuro_hw.Circuit:
    rng = np.random.default_rng(seed)
    ones = np.ones(n)
    g1, g2 = GAINS.get(n, (0.8, 0.3))

    def lif():
        return nir.LIF(tau=0.02 * ones, r=20 * ones, v_leak=0 * ones, v_threshold=ones, v_reset=0 * ones)

    scale = 8.0 / n  # keeps layer-2 drive comparable across n
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


def stimulus(n: int, steps: int, batch: int = 1, seed: int = 1) -> np.ndarray:
    return (np.random.default_rng(seed).random((batch, steps, n)) < RATE).astype(np.float64)


def timed(fn) -> tuple[float, object]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def per_step(run, t1: int, t2: int, repeats: int = 1) -> tuple[float, float, object]:
    """(seconds per step, start-up seconds, result of the longer run); best of ``repeats``."""
    best1 = best2 = float("inf")
    result = None
    for _ in range(repeats):
        d1, _ = timed(lambda: run(t1))
        d2, result = timed(lambda: run(t2))
        best1, best2 = min(best1, d1), min(best2, d2)
    slope = max((best2 - best1) / (t2 - t1), 1e-12)
    return slope, max(best1 - slope * t1, 0.0), result


#: Repetitions per timed run length (the best is kept): Lava runs take seconds, emulator runs milliseconds.
LAVA_REPEATS = 2
EMULATOR_REPEATS = 3
BATCHED_REPEATS = 5


def bench_case(n: int, stdp: bool, lava_steps: tuple[int, int], emu_steps: tuple[int, int]) -> dict:
    program = neuro_hw.compile(circuit(n, stdp), dt=DT)
    x = stimulus(n, max(lava_steps[1], emu_steps[1]))

    def lava(t):
        return neuro_hw.run(program, {"in": x[:, :t]}, t, backend="lava", seed=0, weights_every=t)

    def emu(t):
        return neuro_hw.run(program, {"in": x[:, :t]}, t, backend="emulator", seed=0, weights_every=t)

    lava_step, lava_start, lava_res = per_step(lava, *lava_steps, repeats=LAVA_REPEATS)
    emu_step, emu_start, _ = per_step(emu, *emu_steps, repeats=EMULATOR_REPEATS)
    emu_res = emu(lava_steps[1])  # same steps and recording as lava_res: compared value by value
    check = compare(lava_res, emu_res, "exact")
    return {
        "n": n,
        "stdp": stdp,
        "lava_steps_per_s": 1 / lava_step,
        "lava_startup_s": lava_start,
        "emulator_steps_per_s": 1 / emu_step,
        "emulator_startup_s": emu_start,
        "ratio": lava_step / emu_step,
        "bit_exact": check.passed,
        "values_compared": check.compared_values,
        "spikes_l2": int(lava_res.spikes["l2"].sum()),
        "rate_l1": float(lava_res.spikes["l1"].mean()),
        "rate_l2": float(lava_res.spikes["l2"].mean()),
    }


def bench_batched(n: int, batch: int, steps: tuple[int, int], lava_single: dict) -> dict:
    program = neuro_hw.compile(circuit(n, True), dt=DT)
    x = stimulus(n, steps[1], batch=batch)

    def emu(t):
        return neuro_hw.run(program, {"in": x[:, :t]}, t, backend="emulator", seed=0, weights_every=t)

    emu_step, _, res = per_step(emu, *steps, repeats=BATCHED_REPEATS)
    # spot-check: trial 5 of the batch equals a single-trial Lava run on the same stimulus
    lava_trial = neuro_hw.run(program, {"in": x[5:6, : steps[0]]}, steps[0], backend="lava", seed=0)
    emu_trial = neuro_hw.run(program, {"in": x[5:6, : steps[0]]}, steps[0], backend="emulator", seed=0)
    batched_trial = res.spikes["l2"][5, : steps[0]]
    exact = compare(lava_trial, emu_trial, "exact").passed and np.array_equal(batched_trial, emu_trial.spikes["l2"][0])
    emu_trial_steps = batch / emu_step
    return {
        "n": n,
        "batch": batch,
        "stdp": True,
        "emulator_trial_steps_per_s": emu_trial_steps,
        "lava_trial_steps_per_s": lava_single["lava_steps_per_s"],
        "ratio": emu_trial_steps / lava_single["lava_steps_per_s"],
        "bit_exact_trial_5": bool(exact),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer steps (a smoke run, noisier ratios)")
    parser.add_argument("--json", default="benchmarks/results/emulator_vs_lava.json", help="where to write JSON")
    args = parser.parse_args(argv)
    q = args.quick
    plan = [
        (10, False, (100, 1100), (500, 5000)),
        (10, True, (100, 1100), (500, 5000)),
        (100, False, (100, 1100), (500, 5000)),
        (100, True, (100, 1100), (500, 5000)),
        (1000, False, (50, 250), (200, 1000)),
        (1000, True, (20, 60) if q else (30, 130), (50, 250)),
    ]
    if q:
        plan = [(n, s, (a // 2, b // 3), (c // 5, d // 5)) for n, s, (a, b), (c, d) in plan]
    cases = []
    print(
        f"{'n':>5} {'STDP':>5} {'Lava steps/s':>13} {'emulator steps/s':>17} {'ratio':>8} {'exact':>6} "
        f"{'rates l1/l2':>12}"
    )
    for n, stdp, lava_steps, emu_steps in plan:
        r = bench_case(n, stdp, lava_steps, emu_steps)
        cases.append(r)
        print(
            f"{n:>5} {str(stdp):>5} {r['lava_steps_per_s']:>13.1f} {r['emulator_steps_per_s']:>17.1f} "
            f"{r['ratio']:>7.1f}x {str(r['bit_exact']):>6} {r['rate_l1']:>6.3f}/{r['rate_l2']:.3f}"
        )
    single_100 = next(c for c in cases if c["n"] == 100 and c["stdp"])
    batched = bench_batched(100, 64, (50, 250) if q else (200, 1000), single_100)
    print(
        f"batched B=64, n=100, STDP: emulator {batched['emulator_trial_steps_per_s']:.0f} trial-steps/s, "
        f"Lava {batched['lava_trial_steps_per_s']:.0f} (trials run one after another): "
        f"ratio {batched['ratio']:.0f}x, trial 5 bit-exact: {batched['bit_exact_trial_5']}"
    )
    lava_start = np.mean([c["lava_startup_s"] for c in cases])
    print(f"Lava start-up per call (excluded above): {lava_start:.2f} s on average")
    out = {
        "machine": {"python": platform.python_version(), "processor": platform.processor(), "cpus": os.cpu_count()},
        "versions": package_versions(),
        "cases": cases,
        "batched": batched,
        "quick": q,
    }
    path = Path(args.json)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2))
    print(f"wrote {path}")
    return 0 if all(c["bit_exact"] for c in cases) and batched["bit_exact_trial_5"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
