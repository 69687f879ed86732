"""The acceptance run of error-driven learning on Loihi 2: the digits task in numpy, the float reference and
the fixed-point emulator side by side, and the emulator checked against Lava bit for bit.

``python -m neuro_hw.circuits.digits_acceptance [--seeds 5] [--epochs 10] [--reference-seeds 1] [--json F]``

1. **numpy vs reference**: both rules, the weights after each of the first 20 samples, max |difference|
   (target: 1e-9).
2. **float accuracy**: the numpy algorithm (equal to the reference, item 1; ``--reference-seeds`` full runs
   of the reference itself are compared too), test accuracy after the last epoch, mean ± s.e. over seeds.
3. **fixed point**: the compiled circuit trained on the emulator with the same seeds, test accuracy of the
   learned weights and the online accuracy measured on chip, the signal formats' saturation, the rule
   coefficients as compiled.
4. **emulator vs Lava**: the first ``--lava-steps`` (200) steps of the FA circuit, every recorded value.

Prints a table and writes the JSON the docs quote (``docs/error-driven.md``).
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from neuro_hw.circuits.digits import DigitsSplit, epoch_order, load_digits_split, one_hot
from neuro_hw.circuits.error_driven_numpy import ErrorDrivenParams, init_weights, train
from neuro_hw.circuits.feedback_alignment import SignalRanges, error_driven_circuit, stimuli, train_circuit

RULES = ("fa", "delta")


@dataclass
class RuleResult:
    rule: str
    numpy_vs_reference_max_diff: float
    float_accuracy: list[float]
    fixed_accuracy: list[float]
    fixed_online_accuracy: list[float]
    reference_accuracy: list[float] = field(default_factory=list)
    reference_matches_numpy: bool | None = None
    fixed_seconds: list[float] = field(default_factory=list)
    saturation: dict[str, float] = field(default_factory=dict)
    coefficients: list[str] = field(default_factory=list)
    signals: list[str] = field(default_factory=list)

    @staticmethod
    def stats(values: list[float]) -> tuple[float, float]:
        a = np.asarray(values, dtype=np.float64)
        return float(a.mean()), float(a.std(ddof=1) / np.sqrt(a.size)) if a.size > 1 else 0.0


@dataclass
class Acceptance:
    seeds: list[int]
    epochs: int
    params: dict
    ranges: dict
    rules: dict[str, RuleResult]
    lava_steps: int = 0
    lava_exact: bool | None = None
    lava_values_compared: int = 0
    lava_first_divergence: str = ""
    versions: dict = field(default_factory=dict)


def numpy_vs_reference(params: ErrorDrivenParams, split: DigitsSplit, rule: str, seed: int = 0, n: int = 20) -> float:
    """Max |W_numpy - W_reference| over both matrices after each of the first ``n`` samples."""
    import neuro_hw

    w1, w2, b = init_weights(params, seed)
    circuit, schedule = error_driven_circuit(params, w1, w2, b, rule)
    order = epoch_order(len(split.y_train), 1, seed)[:n]
    stim = stimuli(schedule, split.x_train[order], one_hot(split.y_train[order], params.n_out))
    ref = neuro_hw.simulate(circuit, stim, schedule.steps(n), 1e-3, weights_every=schedule.period)
    truth = train(params, split, order, w1, w2, b, rule, record_first=n)
    diff = float(np.abs(ref.weights["w2.w"][0, 1 : n + 1] - truth.w2_first).max())
    if rule == "fa":
        diff = max(diff, float(np.abs(ref.weights["w1.w"][0, 1 : n + 1] - truth.w1_first).max()))
    return diff


def run(seeds: list[int], epochs: int, reference_seeds: int, lava_steps: int, params: ErrorDrivenParams,
        ranges: SignalRanges) -> Acceptance:  # fmt: skip
    from neuro_hw.compare.saturation import signal_usage
    from neuro_hw.result import package_versions

    split = load_digits_split()
    params = ErrorDrivenParams(**{**asdict(params), "epochs": epochs})
    out = Acceptance(list(seeds), epochs, asdict(params), asdict(ranges), {}, versions=package_versions())
    for rule in RULES:
        res = RuleResult(rule, numpy_vs_reference(params, split, rule), [], [], [])
        for seed in seeds:
            w1, w2, b = init_weights(params, seed)
            order = epoch_order(len(split.y_train), epochs, seed)
            res.float_accuracy.append(float(train(params, split, order, w1, w2, b, rule).test_accuracy[-1]))
            fixed = train_circuit(params, split, seed, rule, "emulator", ranges=ranges)
            res.fixed_accuracy.append(float(fixed.test_accuracy[-1]))
            res.fixed_online_accuracy.append(float(fixed.online_accuracy[-1]))
            res.fixed_seconds.append(fixed.seconds)
            print(f"  {rule} seed {seed}: float {res.float_accuracy[-1]:.4f} fixed {res.fixed_accuracy[-1]:.4f} "
                  f"({fixed.seconds:.1f} s)", flush=True)  # fmt: skip
            if seed == seeds[0]:
                program = fixed.program
                report = program.report
                res.coefficients = [f"{r.synapse}.{r.target}: {r.microcode}" for r in report.rules]
                res.coefficients += [
                    f"  {c.term}: {c.coefficient:g} -> {c.mantissa}*2^{c.exponent} (rel. error {c.rel_error:.3f})"
                    for r in report.rules for c in r.coefficients
                ]  # fmt: skip
                res.signals = [
                    f"{s.signal}: range {s.range:g}, {s.payload_max} levels ({s.bits:.2f} bits), {', '.join(s.roles)}"
                    + (f", {s.dropped_bits} bit(s) dropped" if s.dropped_bits else "")
                    for s in report.signals
                ]
                usage = _usage(program, params, split, seed, ranges, signal_usage)
                res.saturation = {u.signal: u.saturated for u in usage}
        for seed in seeds[:reference_seeds]:
            ref = train_circuit(params, split, seed, rule, "reference")
            res.reference_accuracy.append(float(ref.test_accuracy[-1]))
        if res.reference_accuracy:
            res.reference_matches_numpy = res.reference_accuracy == res.float_accuracy[: len(res.reference_accuracy)]
        out.rules[rule] = res
    if lava_steps:
        out.lava_steps = lava_steps
        out.lava_exact, out.lava_values_compared, out.lava_first_divergence = _lava_check(
            params, split, seeds[0], ranges, lava_steps
        )
    return out


def _usage(program, params, split, seed, ranges, signal_usage):  # type: ignore[no-untyped-def]
    """Signal saturation over the first epoch of a seed's training (emulator)."""
    import neuro_hw
    from neuro_hw.runner import stimulus_to_payloads

    w1, w2, b = init_weights(params, seed)
    circuit, schedule = error_driven_circuit(params, w1, w2, b, "fa" if "w1" in program.connections else "delta")
    order = epoch_order(len(split.y_train), 1, seed)
    stim = stimuli(schedule, split.x_train[order], one_hot(split.y_train[order], params.n_out))
    result = neuro_hw.run(program, stim, schedule.steps(len(order)), backend="emulator", seed=seed, weights_every=10**9)
    return signal_usage(program, result, stimulus_to_payloads(program, stim))


def _lava_check(params, split, seed, ranges, steps):  # type: ignore[no-untyped-def]
    import neuro_hw
    from neuro_hw.compare import compare

    w1, w2, b = init_weights(params, seed)
    circuit, schedule = error_driven_circuit(params, w1, w2, b, "fa")
    program = neuro_hw.compile(circuit, dt=1e-3, **ranges.compile_options())
    n = -(-steps // schedule.period)
    order = epoch_order(len(split.y_train), 1, seed)[:n]
    stim = stimuli(schedule, split.x_train[order], one_hot(split.y_train[order], params.n_out))
    emu = neuro_hw.run(program, stim, steps, backend="emulator", seed=seed)
    lava = neuro_hw.run(program, stim, steps, backend="lava", seed=seed)
    c = compare(lava, emu, "exact")
    exact = c.passed and not c.only_in_one
    return exact, c.compared_values, "" if exact else str(c.first_divergence or c.only_in_one)


def format_table(acc: Acceptance) -> str:
    lines = [f"digits 64-100-10, online, {acc.epochs} epochs, seeds {acc.seeds}", ""]
    head = f"{'rule':<7} {'numpy~ref':>10} {'float':>16} {'fixed (emulator)':>18} {'gap':>7} {'on-chip online':>16}"
    lines += [head, "-" * len(head)]
    for rule, r in acc.rules.items():
        fm, fs = r.stats(r.float_accuracy)
        xm, xs = r.stats(r.fixed_accuracy)
        om, _ = r.stats(r.fixed_online_accuracy)
        lines.append(
            f"{rule:<7} {r.numpy_vs_reference_max_diff:>10.1e} {fm:>9.2%} ± {fs:.2%} {xm:>11.2%} ± {xs:.2%} "
            f"{fm - xm:>7.2%} {om:>16.2%}"
        )
        if r.reference_accuracy:
            lines.append(f"        reference (full runs, {len(r.reference_accuracy)} seed(s)) equals numpy: "
                         f"{r.reference_matches_numpy}")  # fmt: skip
    if acc.lava_steps:
        verdict = "bit-exact" if acc.lava_exact else f"DIFFERS: {acc.lava_first_divergence}"
        lines.append(f"\nemulator vs Lava, first {acc.lava_steps} steps of FA: {verdict} "
                     f"({acc.lava_values_compared} values)")  # fmt: skip
    for rule, r in acc.rules.items():
        lines += ["", f"[{rule}] signals:"] + [f"  {s}" for s in r.signals]
        lines += [f"[{rule}] rule coefficients:"] + [f"  {c}" for c in r.coefficients]
        lines += [f"[{rule}] saturation (first epoch): "
                  + ", ".join(f"{k} {v:.3%}" for k, v in r.saturation.items())]  # fmt: skip
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=5, help="seeds 0..N-1 (default 5)")
    parser.add_argument("--epochs", type=int, default=10, help="epochs (default 10)")
    parser.add_argument("--reference-seeds", type=int, default=1, help="full float-reference runs (slow; default 1)")
    parser.add_argument("--lava-steps", type=int, default=200, help="steps compared with Lava (0: skip)")
    parser.add_argument("--json", default="out/digits/acceptance.json", help="where to write the results")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    acc = run(list(range(args.seeds)), args.epochs, args.reference_seeds, args.lava_steps, ErrorDrivenParams(),
              SignalRanges())  # fmt: skip
    print(format_table(acc))
    path = Path(args.json)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = asdict(acc)
    data["seconds"] = time.perf_counter() - start
    path.write_text(json.dumps(data, indent=2))
    print(f"\nwritten to {path} ({data['seconds']:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
