"""Demo section: the four-synapse self-assembling learning circuit (seed P1), in float and on Loihi 2 fixed point.

The reconstruction of docs/self-assembly.md: an ascending stream ``W`` and a descending stream ``B`` (64-50-50-50-10
on digits), Kolen-Pollack-type local updates with a shared learning rate and weight decay, so that ``W - B^T``
decays and the circuit aligns itself from random, independent wiring (the angle between ``W_l`` and ``B_l^T``
falls from ~90 degrees).  Run on identical seeds:

* **float**: the numpy ground truth (equal to the IR circuit in the float64 reference, tests/circuits), and
  backprop on the same architecture as the accuracy baseline;
* **fixed point**: the circuit compiled for Loihi 2 (8-bit weights, 7-bit traces, stochastic rounding) trained on
  the bit-exact emulator; angle curves float vs fixed on one plot;
* **exact check**: the first ``lava_steps`` steps of the compiled circuit on the emulator and on Lava;
* **precision sweep** (:mod:`neuro_hw.sweep`): test accuracy and the largest final angle against weight and
  trace bits (one emulator kernel serves every width), float as the baseline.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from neuro_hw.demo.model import Claim, ExactCheck, Figure, Section, Table, compile_table, exact_check, section_runner


@dataclass(frozen=True)
class SelfAssemblySize:
    seeds: tuple[int, ...]
    epochs: int
    sweep_weight_bits: tuple[int, ...]
    sweep_trace_bits: tuple[int, ...]
    sweep_seeds: tuple[int, ...]
    lava_steps: int


QUICK = SelfAssemblySize((0, 1), 3, (8,), (7, 8), (0,), 32)
FULL = SelfAssemblySize((0, 1), 10, (6, 8, 10, 12), (6, 7, 8), (0, 1), 200)


def _exact_check(seed: int, steps: int) -> ExactCheck:
    import neuro_hw
    from neuro_hw.circuits.digits import epoch_order
    from neuro_hw.circuits.self_assembly import compile_options, initial_weights, self_assembly_circuit
    from neuro_hw.circuits.self_assembly_experiments import hardware_spec
    from neuro_hw.circuits.self_assembly_numpy import digits_task

    task, spec = digits_task(), hardware_spec()
    w, b = initial_weights(spec, seed)
    circuit, sched = self_assembly_circuit(spec, w, b)
    program = neuro_hw.compile(circuit, dt=1e-3, **compile_options(spec))
    order = epoch_order(task.n_train, 1, seed)[: -(-steps // sched.period)]
    return exact_check(program, sched.present(task.x_train[order], task.t_train[order]), steps, seed)


@section_runner
def run_section(out_dir: Path, full: bool, engine_options: dict | None, progress: bool) -> Section:
    """Run the section and write its files under ``out_dir``."""
    from neuro_hw.circuits.self_assembly_experiments import hardware_curves, hardware_spec, plot_hardware
    from neuro_hw.circuits.self_assembly_numpy import digits_task, run_seeds
    from neuro_hw.demo.precision import precision_sweep

    size = FULL if full else QUICK
    spec = hardware_spec()
    p = replace(spec.params, epochs=size.epochs)
    section = Section(
        "self-assembly",
        "Seed P1: a self-assembling learning circuit (Liao et al. 2024, reconstruction)",
        f"Ascending W and descending B streams with two cross-stream synapses, {p.n_layers} layers on sklearn's "
        "digits, online; Kolen-Pollack-type local updates with a shared learning rate and weight decay (decay every "
        f"{p.decay_every} samples on chip, docs/self-assembly.md). Random, independent initial W and B: the angle "
        "between W_l and B_l^T measures how far the circuit has assembled. Float: the numpy ground truth; fixed "
        "point: the circuit compiled for Loihi 2 on the bit-exact emulator.",
        seeds=list(size.seeds),
    )
    from tqdm.auto import tqdm

    stages = tqdm(total=3, desc="self-assembly: training float and fixed, BP, Lava check", disable=not progress,
                  leave=False)  # fmt: skip
    data = hardware_curves(seeds=size.seeds, epochs=size.epochs, record_every=337, roundings=("stochastic",))
    stages.update()
    fl, fx = data["runs"]["float"], data["runs"]["stochastic"]
    task = digits_task()
    bp = run_seeds(p, task, size.seeds, "bp").test_accuracy[:, -1]
    stages.update()
    start_angle = np.asarray(fl["angle_mean"])[:, 0]
    end_f, end_x = np.asarray(fl["angle_mean"])[:, -1], np.asarray(fx["angle_mean"])[:, -1]
    acc_f, acc_x = 100 * fl["test_accuracy_mean"], 100 * fx["test_accuracy_mean"]
    section.headline += [
        f"angle W_l vs B_l^T (layers 1..{len(end_f)}), start {', '.join(f'{a:.0f}' for a in start_angle)} deg; after "
        f"{size.epochs} epochs float {', '.join(f'{a:.1f}' for a in end_f)} deg, Loihi 2 fixed point "
        f"{', '.join(f'{a:.1f}' for a in end_x)} deg",
        f"test accuracy after {size.epochs} epochs: float {acc_f:.1f} %, fixed point {acc_x:.1f} %, backprop (float, "
        f"same architecture) {100 * bp.mean():.1f} % (mean over {len(size.seeds)} seeds)",
    ]
    section.figures.append(Figure("Self-assembly, float vs fixed point", plot_hardware(data, out_dir / "angles.png"),
                                  "angle and |W - B^T| / |W| per layer over training"))  # fmt: skip
    section.exact = _exact_check(size.seeds[0], size.lava_steps)
    stages.update()
    stages.close()

    import neuro_hw
    from neuro_hw.circuits.self_assembly import compile_options, initial_weights, self_assembly_circuit

    w0, b0 = initial_weights(spec, size.seeds[0])
    program = neuro_hw.compile(self_assembly_circuit(spec, w0, b0)[0], dt=1e-3, **compile_options(spec))
    section.tables.append(compile_table(program))

    grid = {"target.weights.bits": size.sweep_weight_bits, "target.learning.trace_bits": size.sweep_trace_bits}
    sweep = precision_sweep("self_assembly_precision", "neuro_hw.circuits.self_assembly_experiments:precision_point",
                            "test_accuracy", {"epochs": size.epochs}, grid, size.sweep_seeds, out_dir / "sweep",
                            progress, engine_options)  # fmt: skip
    base = float(np.mean([r["metric.test_accuracy"] for r in sweep.rows if r["backend"] == "reference"]))
    cells: dict[tuple[int, int], list[dict[str, Any]]] = {}
    for r in sweep.rows:
        if r["backend"] == "emulator" and r["status"] == "ok":
            key = (int(r["param.target.weights.bits"]), int(r["param.target.learning.trace_bits"]))
            cells.setdefault(key, []).append(r)
    rows, good = [], []
    for (wb, tb), rs in sorted(cells.items()):
        acc = float(np.mean([r["metric.test_accuracy"] for r in rs]))
        angle = float(np.mean([r["metric.angle_max"] for r in rs]))
        rows.append([str(wb), str(tb), f"{acc:.1f}", f"{acc - base:+.1f}", f"{angle:.1f}"])
        if acc >= base - 2.0 and angle < 10.0:
            good.append((wb + tb, wb, tb))
    section.tables.append(Table(
        f"Precision sweep ({size.epochs} epochs, seeds {list(size.sweep_seeds)}; float {base:.1f} %)",
        ["weight bits", "trace bits", "accuracy (%)", "vs float (points)", "largest final angle (deg)"], rows,
    ))  # fmt: skip
    section.figures += [Figure("Precision sweep", path) for path in sweep.plots]
    section.headline.append(
        f"fewest bits that assemble (< 10 deg) within 2 points of float: {min(good)[1]} weight / {min(good)[2]} trace"
        if good else "no swept width assembles (< 10 deg in every layer) within 2 points of float in this run"
    )  # fmt: skip
    drop = start_angle - end_f
    section.claims += [
        Claim("the circuit self-assembles from random wiring (float)", "angle falls from ~90 deg to < 5 deg",
              f"{', '.join(f'{a:.1f}' for a in end_f)} deg after {size.epochs} epochs",
              bool(np.all(end_f < 5.0)) if size.epochs >= 10 else (None if np.all(drop > 20) else False)),
        Claim("it works as well as backprop (float)", "within 1 point of BP",
              f"{acc_f - 100 * bp.mean():+.1f} points after {size.epochs} epochs",
              bool(acc_f >= 100 * bp.mean() - 1.0)),
        Claim("it still learns at Loihi 2's formats (8-bit weights, 7-bit traces)", "within 2 points of float",
              f"{acc_x - acc_f:+.1f} points after {size.epochs} epochs", bool(acc_x >= acc_f - 2.0)),
        Claim("the emulator is Lava, bit for bit", "identical values", section.exact.verdict(), section.exact.passed),
    ]  # fmt: skip
    return section
