"""Demo section: feedback alignment on digits -- graded activations and signed errors computed on chip.

The 64-100-10 network of :mod:`neuro_hw.circuits.feedback_alignment` (docs/error-driven.md) learns
``sklearn``'s digits online (batch 1): hidden ``h = clip(W1 x, 0, 1)``, output ``o = W2 h``, error
``e = o - onehot`` computed by a graded neuron on chip and carried on two rails, hidden error
``delta = (B e) * f'(a1)`` through a fixed random feedback matrix ``B`` and a product neuron, updates
``dW2 = -eta2 e h^T`` and ``dW1 = -eta1 delta x^T`` by the learning engine.

* **Float**: the algorithm written in numpy (:mod:`neuro_hw.circuits.error_driven_numpy`), which the IR circuit in
  the float64 reference equals to 1e-9 on the weights (checked here on the first 20 samples);
* **fixed point**: the circuit compiled for the target, trained on the bit-exact emulator, same seeds;
* **exact check**: the first ``lava_steps`` steps of the compiled circuit on the emulator and on Lava;
* **precision sweep** (:mod:`neuro_hw.sweep`): test accuracy against weight bits (and trace bits with
  ``--full``), float as the baseline.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from neuro_hw.demo.model import Claim, ExactCheck, Figure, Section, Table, exact_check, section_runner
from neuro_hw.demo.precision import LOIHI2_TRACE_BITS, by_weight_bits, precision_sweep


@dataclass(frozen=True)
class FaSize:
    seeds: tuple[int, ...]
    epochs: int
    sweep_grid: dict[str, tuple[int, ...]]
    sweep_seeds: tuple[int, ...]
    sweep_epochs: int
    lava_steps: int


QUICK = FaSize((0, 1, 2), 3, {"target.weights.bits": (4, 5, 6, 7, 8)}, (0,), 2, 200)
FULL = FaSize(
    (0, 1, 2, 3, 4),
    10,
    {"target.weights.bits": (2, 3, 4, 5, 6, 7, 8), "target.learning.trace_bits": (5, 6, 7)},
    (0, 1, 2),
    5,
    200,
)


def precision_point(params: dict[str, Any], target: Any, backend: str, seeds: list[int]) -> list[dict[str, Any]]:
    """Sweep evaluation: FA test accuracy after ``epochs`` epochs per seed -- ``reference``: the numpy algorithm
    (equal to the float64 reference simulator to 1e-9); otherwise the circuit compiled for ``target`` on
    ``backend``."""
    from neuro_hw.circuits.digits import epoch_order, load_digits_split
    from neuro_hw.circuits.error_driven_numpy import ErrorDrivenParams, init_weights, train
    from neuro_hw.circuits.feedback_alignment import train_circuit

    p = ErrorDrivenParams(epochs=int(params.get("epochs", 3)))
    split = load_digits_split()
    out = []
    for s in seeds:
        if backend == "reference":
            w1, w2, b = init_weights(p, s)
            order = epoch_order(len(split.y_train), p.epochs, s)
            acc = float(train(p, split, order, w1, w2, b, "fa").test_accuracy[-1])
        else:
            acc = float(train_circuit(p, split, s, "fa", backend, target=target).test_accuracy[-1])
        out.append({"accuracy": acc})
    return out


def _exact_check(params, split, seed: int, steps: int) -> ExactCheck:  # noqa: ANN001
    import neuro_hw
    from neuro_hw.circuits.digits import epoch_order, one_hot
    from neuro_hw.circuits.error_driven_numpy import init_weights
    from neuro_hw.circuits.feedback_alignment import SignalRanges, error_driven_circuit, stimuli

    w1, w2, b = init_weights(params, seed)
    circuit, schedule = error_driven_circuit(params, w1, w2, b, "fa")
    program = neuro_hw.compile(circuit, dt=1e-3, **SignalRanges().compile_options())
    order = epoch_order(len(split.y_train), 1, seed)[: -(-steps // schedule.period)]
    stim = stimuli(schedule, split.x_train[order], one_hot(split.y_train[order], params.n_out))
    return exact_check(program, stim, steps, seed)


def _curves_plot(path: Path, epochs: int, float_acc: np.ndarray, fixed_acc: np.ndarray) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.6))
    x = np.arange(1, epochs + 1)
    for acc, label in ((float_acc, "float (numpy = reference)"), (fixed_acc, "fixed point (emulator, Loihi 2)")):
        m = acc.mean(axis=0)
        se = acc.std(axis=0, ddof=1) / np.sqrt(len(acc)) if len(acc) > 1 else np.zeros_like(m)
        ax.errorbar(x, 100 * m, yerr=100 * se, marker="o", capsize=3, label=label)
    ax.set_xlabel("epoch (1347 digits each, online)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(f"FA digits 64-100-10: mean ± s.e. over {len(float_acc)} seeds")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


@section_runner
def run_section(out_dir: Path, full: bool, engine_options: dict | None, progress: bool) -> Section:
    """Run the section and write its files under ``out_dir``."""
    from tqdm.auto import tqdm

    from neuro_hw.circuits.digits import epoch_order, load_digits_split
    from neuro_hw.circuits.digits_acceptance import numpy_vs_reference
    from neuro_hw.circuits.error_driven_numpy import ErrorDrivenParams, init_weights, train
    from neuro_hw.circuits.feedback_alignment import train_circuit

    size = FULL if full else QUICK
    params = ErrorDrivenParams(epochs=size.epochs)
    split = load_digits_split()
    section = Section(
        "fa-digits",
        "Feedback alignment on digits: signed errors computed on chip",
        "64-100-10 rate network, online (batch 1) on sklearn's digits (1347 train / 450 test images); errors "
        "e = o - onehot and hidden errors (B e) * f'(a) computed by graded and product neurons on chip, updates "
        "by the learning engine (docs/error-driven.md). Float: the numpy algorithm, equal to the float64 reference "
        "simulator to the weights; fixed point: the circuit compiled for Loihi 2 on the bit-exact emulator.",
        seeds=list(size.seeds),
    )
    diff = numpy_vs_reference(params, split, "fa", seed=0, n=20)
    float_acc, fixed_acc, program = [], [], None
    for s in tqdm(size.seeds, desc="FA digits: float and fixed training", disable=not progress, leave=False):
        w1, w2, b = init_weights(params, s)
        order = epoch_order(len(split.y_train), size.epochs, s)
        float_acc.append(train(params, split, order, w1, w2, b, "fa").test_accuracy)
        run = train_circuit(params, split, s, "fa", "emulator")
        fixed_acc.append(run.test_accuracy)
        program = program or run.program
    fa, fx = np.asarray(float_acc), np.asarray(fixed_acc)
    last_f, last_x = fa[:, -1], fx[:, -1]
    se = lambda a: a.std(ddof=1) / np.sqrt(a.size) if a.size > 1 else 0.0  # noqa: E731
    gap = 100 * (last_f.mean() - last_x.mean())
    section.headline += [
        f"test accuracy after {size.epochs} epochs: float {100 * last_f.mean():.2f} ± {100 * se(last_f):.2f} %, "
        f"fixed point {100 * last_x.mean():.2f} ± {100 * se(last_x):.2f} % (mean ± s.e., {len(size.seeds)} seeds)",
        f"numpy vs float64 reference simulator: max |dW| {diff:.1e} over the first 20 samples",
    ]
    section.figures.append(Figure("Learning curves", _curves_plot(out_dir / "fa_curves.png", size.epochs, fa, fx)))
    section.exact = _exact_check(params, split, size.seeds[0], size.lava_steps)
    report = program.report
    section.tables.append(Table(
        "Signals on chip (compile report)", ["signal", "roles", "range", "levels", "bits"],
        [[s.signal, ", ".join(s.roles), f"{s.range:g}", str(s.payload_max), f"{s.bits:.2f}"] for s in report.signals],
    ))  # fmt: skip
    section.tables.append(Table(
        "Rule coefficients as compiled", ["rule", "term", "float", "mantissa*2^exp", "rel. error"],
        [[f"{r.synapse}.{r.target}", c.term, f"{c.coefficient:g}", f"{c.mantissa}*2^{c.exponent}", f"{c.rel_error:.3f}"]
         for r in report.rules for c in r.coefficients],
    ))  # fmt: skip

    sweep = precision_sweep("fa_digits_precision", "neuro_hw.demo.fa_digits:precision_point", "accuracy",
                            {"epochs": size.sweep_epochs}, size.sweep_grid, size.sweep_seeds, out_dir / "sweep",
                            progress, engine_options)  # fmt: skip
    base = np.mean([r["metric.accuracy"] for r in sweep.rows if r["backend"] == "reference"])
    by_bits = by_weight_bits(sweep.rows, "metric.accuracy")
    table_rows = [[str(k), f"{100 * np.mean(v):.1f}", f"{np.mean(v) / base:.2f}"] for k, v in by_bits.items()]
    section.tables.append(Table(
        f"Precision sweep at {LOIHI2_TRACE_BITS} trace bits ({size.sweep_epochs} epochs, seeds "
        f"{list(size.sweep_seeds)}; float {100 * base:.1f} %)",
        ["weight bits", "accuracy (%)", "fraction of float"], table_rows,
    ))  # fmt: skip
    keeps = [k for k, v in by_bits.items() if np.mean(v) >= 0.9 * base]
    fewest = keeps[0] if keeps else None
    section.headline.append(
        f"fewest weight bits keeping >= 90 % of float accuracy: {fewest}" if fewest else
        "no swept weight width keeps 90 % of float accuracy"
    )  # fmt: skip
    section.figures += [Figure("Precision sweep", p) for p in sweep.plots]
    section.claims += [
        Claim("FA learns digits online in float", ">= 92 % test accuracy (issue 11, 10 epochs)",
              f"{100 * last_f.mean():.2f} % after {size.epochs} epochs", bool(last_f.mean() >= 0.92)),
        Claim("fixed point stays close to float", "within 3 points (issue 11)", f"{gap:+.2f} points",
              bool(gap <= 3.0)),
        Claim("the emulator is Lava, bit for bit", "identical values", section.exact.verdict(),
              section.exact.passed),
    ]  # fmt: skip
    return section
