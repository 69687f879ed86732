"""Side-by-side timing of the emulator and Lava on the network of ``lava-semantics.md`` §6.

``python -m neuro_hw.emulator.benchmark [--lava] [--sizes 10 100 1000] [--batch 64]``

Network: a spike input (5 % rate) -> Dense or LearningDense (pair STDP ``2^-2*x1*y0 - 2^-2*y1*x0``,
impulses 16, taus 10, t_epoch 1) -> LIF(n), with the threshold calibrated (on the emulator) for an
output rate of about 5 %.  Reported: wall time per step of the step loop (emulator: whole call, set-up
included; Lava: ``run()`` only, from the backend's timings, i.e. without its ~1 s start-up).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from neuro_hw.compile.program import ConnectionProgram, InputProgram, LearningProgram, NeuronProgram, Program

from .engine import run_program_emulator

STDP = {"dw": "2^-2*x1*y0 - 2^-2*y1*x0"}


def network(n: int, stdp: bool, vth: int, seed: int = 0) -> Program:
    """The benchmark Program: input(n) -> Dense/LearningDense(n x n) -> LIF(n)."""
    rng = np.random.default_rng(seed)
    learning = None
    if stdp:
        traces = ("x1", "x2", "y1", "y2", "y3")
        learning = LearningProgram(
            STDP,
            impulses={k: (16.0 if k in ("x1", "y1") else 0.0) for k in traces},
            taus={k: (10 if k in ("x1", "y1") else 0) for k in traces},
            t_epoch=1,
        )
    weight_exp = -3 if n >= 1000 else 0
    return Program(
        "loihi2",
        1.0,
        {"in": InputProgram("in", n)},
        {"p": NeuronProgram("p", n, du=400, dv=300, vth=vth, bias_mant=0, bias_exp=0, u_init=0, v_init=0)},
        {"c": ConnectionProgram("c", "in", "p", rng.integers(0, 64, (n, n)), weight_exp=weight_exp, learning=learning)},
    )


def spikes(n: int, steps: int, batch: int = 1, rate: float = 0.05, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).random((batch, steps, n)) < rate


def calibrate(n: int, target: float = 0.05, steps: int = 300) -> int:
    """Threshold giving about ``target`` output rate without learning (bisection on the emulator)."""
    x = spikes(n, steps)
    lo, hi = 1, 2**17
    while hi - lo > 1:
        mid = (lo + hi) // 2
        rate = run_program_emulator(network(n, False, mid), {"in": x}, steps, record="spikes").spikes["p"].mean()
        lo, hi = (mid, hi) if rate > target else (lo, mid)
    return hi


def time_emulator(n: int, stdp: bool, steps: int, batch: int = 1, record: str = "spikes", repeat: int = 3) -> float:
    """Best wall time per step (seconds) of ``run_program_emulator`` over ``repeat`` runs."""
    prog = network(n, stdp, calibrate(n))
    x = spikes(n, steps, batch)
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        run_program_emulator(prog, {"in": x}, steps, seed=list(range(batch)), record=record)
        best = min(best, time.perf_counter() - t0)
    return best / steps


def time_lava(n: int, stdp: bool, steps: int) -> float:
    """Lava ``run()`` time per step (seconds), through the Lava backend (one trial)."""
    from neuro_hw.targets.loihi2.lava_backend import run_program_lava

    prog = network(n, stdp, calibrate(n))
    res = run_program_lava(prog, {"in": spikes(n, steps)}, steps)
    return sum(t["run_s"] for t in res.metadata["lava"]["timings"]) / steps


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 100, 1000])
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--lava", action="store_true", help="also time Lava (slow at n=1000 with STDP)")
    args = parser.parse_args(argv)
    print(f"{'n':>6} {'STDP':>5} {'emulator ms/step':>17} {'Lava ms/step':>13} {'speed-up':>9}")
    for n in args.sizes:
        for stdp in (False, True):
            steps = args.steps if n < 1000 or not stdp else max(50, args.steps // 10)
            emu = time_emulator(n, stdp, steps)
            lava = time_lava(n, stdp, min(steps, 100) if (n >= 1000 and stdp) else steps) if args.lava else None
            ratio = f"{lava / emu:8.0f}x" if lava else ""
            lava_s = f"{lava * 1e3:13.3f}" if lava else f"{'-':>13}"
            print(f"{n:>6} {stdp!s:>5} {emu * 1e3:17.3f} {lava_s} {ratio}")
    for stdp in (False, True):
        emu = time_emulator(100, stdp, args.steps, batch=args.batch)
        print(f"batch {args.batch} x n=100 STDP={stdp}: {args.batch / emu:,.0f} trial-steps/s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
