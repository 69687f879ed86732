"""The measurements of seed P1 (the self-assembling circuit, a documented reconstruction): what
``docs/self-assembly.md`` reports, written to ``docs/results/self_assembly_*.json`` / ``.png``.

Stages (each a function returning a JSON-ready dict; :func:`run_stage` runs one and writes its files):

* ``assembly`` (:func:`assembly_curves`): float64 ground truth on digits, the angle between ``W_l`` and ``B_l^T``
  and ``|W_l - B_l^T|_F / |W_l|_F`` per hidden layer over training, for the reconstruction and its ablations
  (zero decay, a mismatched decay or learning rate on the descending stream);
* ``learning`` (:func:`learning_table`): test accuracy on digits (64-64-64-64-10, three hidden layers) and test
  1 - R^2 on the teacher-student regression (10-64-64-64-3), for the circuit (``kp``), backprop, feedback
  alignment and sign symmetry on identical architectures and hyperparameters, mean +- s.e. over the seeds;
* ``hardware`` (:func:`hardware_curves`): the compiled circuit on the bit-exact Loihi 2 emulator with the
  engine's stochastic rounding and with a nearest-rounding variant (``learning.rounding``), against the float
  ground truth on the same decay schedule; also how far the Kolen–Pollack cancellation is broken (``|D_k| /
  |D_0|`` with ``D = W - B^T``, measured against the float's exact ``prod (1 - eta*lam*u)``) and how many
  synapses' decay step rounds to zero under nearest rounding (the decay underflow);
* ``precision`` (:func:`precision_sweep`): a :mod:`neuro_hw.sweep` over weight and trace bits (emulator) with the
  float ground truth as the baseline, evaluated by :func:`precision_point`.

The numpy ground truth stands for the float circuit: ``tests/circuits/test_self_assembly.py`` checks that the IR
circuit in the float reference gives its weights to 1e-12 (both forms).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from neuro_hw.circuits.self_assembly import CircuitSpec, SignalRanges
from neuro_hw.circuits.self_assembly_numpy import (
    METHODS,
    SelfAssemblyParams,
    Task,
    digits_task,
    run_seeds,
    teacher_student_task,
)

RESULTS = Path("docs/results")
#: The hardware operating point: the decay every 2**4 = 16 samples with 16 times the rate (eta*lam*16 = 2^-7,
#: the engine's smallest coefficient for a product of w alone).
DECIMATION = 4
TASKS = ("digits", "teacher-student")


def mean_se(values: np.ndarray, axis: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard error (``std(ddof=1) / sqrt(n)``; 0 for one value) along ``axis``."""
    values = np.asarray(values, dtype=np.float64)
    n = values.shape[axis]
    mean = values.mean(axis=axis)
    se = values.std(axis=axis, ddof=1) / math.sqrt(n) if n > 1 else np.zeros_like(mean)
    return mean, se


def make_task(name: str) -> Task:
    """``"digits"`` or ``"teacher-student"`` (:mod:`~neuro_hw.circuits.self_assembly_numpy`)."""
    if name == "digits":
        return digits_task()
    if name == "teacher-student":
        return teacher_student_task()
    raise ValueError(f"task must be one of {TASKS}, got {name!r}")


def task_params(name: str, base: SelfAssemblyParams | None = None) -> SelfAssemblyParams:
    """The architecture for a task (three hidden layers of 64) with the hyperparameters of ``base``."""
    base = base or SelfAssemblyParams()
    sizes = (64, 64, 64, 64, 10) if name == "digits" else (10, 64, 64, 64, 3)
    return replace(base, sizes=sizes)


@dataclass(frozen=True)
class Ablation:
    """A variant of the reconstruction: ``changes`` to :class:`SelfAssemblyParams`."""

    name: str
    label: str
    changes: Mapping[str, Any]


def ablations(base: SelfAssemblyParams) -> list[Ablation]:
    """The reconstruction and its ablations (the descending stream's rate or decay changed, or no decay)."""
    return [
        Ablation("kp", "reconstruction (shared eta, lam)", {}),
        Ablation("no-decay", "zero decay (lam = 0)", {"lam": 0.0}),
        Ablation("decay-b-x2", "decay of B doubled (lam_B = 2 lam)", {"lam_b": 2 * base.lam}),
        Ablation("decay-b-half", "decay of B halved (lam_B = lam / 2)", {"lam_b": base.lam / 2}),
        Ablation("eta-b-x2", "rate of B doubled (eta_B = 2 eta: its decay too)", {"eta_b": 2 * base.eta}),
    ]


def _curve_summary(steps: np.ndarray, angle: np.ndarray, rel: np.ndarray, n_train: int) -> dict[str, Any]:
    """Per layer mean +- s.e. over seeds of the angle and the relative difference at every recorded step."""
    a_m, a_s = mean_se(angle)
    r_m, r_s = mean_se(rel)
    return {
        "samples": steps.tolist(),
        "epochs": (steps / n_train).round(4).tolist(),
        "angle_mean": a_m.T.round(4).tolist(),  # (L-1, K)
        "angle_se": a_s.T.round(4).tolist(),
        "rel_diff_mean": r_m.T.round(5).tolist(),
        "rel_diff_se": r_s.T.round(5).tolist(),
        "final_angle_per_seed": angle[:, -1].round(4).tolist(),
        "final_rel_diff_per_seed": rel[:, -1].round(5).tolist(),
    }


def _first_below(steps: np.ndarray, angle_mean: np.ndarray, threshold: float) -> list[int | None]:
    """Per layer, the first recorded sample count at which the mean angle is below ``threshold`` and stays so."""
    out: list[int | None] = []
    for row in angle_mean:
        above = np.flatnonzero(np.asarray(row) >= threshold)
        k = 0 if above.size == 0 else above[-1] + 1
        out.append(int(steps[k]) if k < len(steps) else None)
    return out


def assembly_curves(
    seeds: Sequence[int] = (0, 1, 2, 3, 4),
    epochs: int = 10,
    record_every: int = 337,
    base: SelfAssemblyParams | None = None,
    names: Sequence[str] | None = None,
    n_train: int | None = None,
) -> dict[str, Any]:
    """The ``assembly`` stage: digits, float64, every :func:`ablations` variant (or those in ``names``);
    ``n_train``: only the first ``n_train`` training images (tests)."""
    task = digits_task()
    if n_train is not None:
        task = task.subset(int(n_train))
    base = replace(base or SelfAssemblyParams(), epochs=epochs)
    out: dict[str, Any] = {
        "stage": "assembly",
        "task": "digits",
        "seeds": [int(s) for s in seeds],
        "params": asdict(base),
        "variants": {},
    }
    for ab in ablations(base):
        if names is not None and ab.name not in names:
            continue
        p = replace(base, **ab.changes)
        t0 = time.perf_counter()
        r = run_seeds(p, task, seeds, "kp", record_every=record_every)
        summary = _curve_summary(r.record_steps, r.angle, r.rel_diff, task.n_train)
        acc_m, acc_s = mean_se(r.test_accuracy[:, -1])
        summary.update({
            "label": ab.label,
            "changes": dict(ab.changes),
            "test_accuracy_mean": float(acc_m),
            "test_accuracy_se": float(acc_s),
            "test_accuracy_per_seed": r.test_accuracy[:, -1].round(4).tolist(),
            "samples_below_10deg": _first_below(r.record_steps, np.asarray(summary["angle_mean"]), 10.0),
            "samples_below_5deg": _first_below(r.record_steps, np.asarray(summary["angle_mean"]), 5.0),
            "seconds": round(time.perf_counter() - t0, 1),
        })  # fmt: skip
        out["variants"][ab.name] = summary
    return out


def learning_table(
    seeds: Sequence[int] = (0, 1, 2, 3, 4),
    epochs: int = 10,
    tasks: Sequence[str] = TASKS,
    base: SelfAssemblyParams | None = None,
    methods: Sequence[str] = METHODS,
    n_train: int | None = None,
    no_decay: Sequence[str] = ("bp", "fa", "ss"),
) -> dict[str, Any]:
    """The ``learning`` stage: final test accuracy (digits) / test 1 - R^2 (regression) of every method, all with
    the same hyperparameters (the circuit's decay included), and of the methods in ``no_decay`` once more with
    ``lam = 0`` (rows ``<method>-no-decay``: what the decay the circuit needs costs them); ``n_train``: only the
    first ``n_train`` training samples (tests)."""
    out: dict[str, Any] = {"stage": "learning", "seeds": [int(s) for s in seeds], "tasks": {}}
    runs = [(m, m, {}) for m in methods] + [(f"{m}-no-decay", m, {"lam": 0.0}) for m in no_decay]
    for name in tasks:
        task = make_task(name)
        if n_train is not None:
            task = task.subset(int(n_train))
        p0 = replace(task_params(name, base), epochs=epochs)
        rows: dict[str, Any] = {}
        for key, method, changes in runs:
            p = replace(p0, **changes)
            t0 = time.perf_counter()
            r = run_seeds(p, task, seeds, method, record_every=task.n_train)  # type: ignore[arg-type]
            acc_m, acc_s = mean_se(r.test_accuracy[:, -1])
            mse_m, mse_s = mean_se(r.test_mse[:, -1])
            rows[key] = {
                "lam": p.lam,
                "test_accuracy_mean": None if not task.classification else float(acc_m),
                "test_accuracy_se": None if not task.classification else float(acc_s),
                "test_accuracy_per_seed": None if not task.classification else r.test_accuracy[:, -1].tolist(),
                "test_accuracy_per_epoch": None if not task.classification else
                r.test_accuracy.mean(axis=0).round(4).tolist(),
                "test_nmse_mean": float(mse_m),
                "test_nmse_se": float(mse_s),
                "test_nmse_per_seed": r.test_mse[:, -1].round(5).tolist(),
                "final_angle_mean": r.angle[:, -1].mean(axis=0).round(3).tolist(),
                "seconds": round(time.perf_counter() - t0, 1),
            }  # fmt: skip
        out["tasks"][name] = {"params": asdict(p0), "n_train": task.n_train, "methods": rows}
    return out


# ---------------------------------------------------------------------------------------------------------- hardware


def hardware_spec(base: SelfAssemblyParams | None = None, decimation: int = DECIMATION) -> CircuitSpec:
    """The circuit as compiled: hardware form, default ranges, the decay decimated by ``2**decimation``."""
    p = replace(base or SelfAssemblyParams(), decay_every=2**decimation)
    return CircuitSpec(p, SignalRanges(), form="hardware", decimation=decimation)


def _target(variant: Mapping[str, Any] | None) -> Any:
    from neuro_hw.compiler.target import load_target

    tgt = load_target("loihi2")
    return tgt.variant(**dict(variant)) if variant else tgt


def cancellation(run_w: Sequence[np.ndarray], run_b: Sequence[np.ndarray | None], record: np.ndarray,
                 p: SelfAssemblyParams) -> dict[str, Any]:  # fmt: skip
    """``|D_k|_F / |D_0|_F`` per layer (mean over seeds) with ``D = W - B^T`` at the recorded samples ``k``, and
    what exact cancellation gives: ``prod (1 - eta*lam*u)`` over the decay steps (no clip binding)."""
    L = p.n_layers
    measured = []
    for j in range(1, L):
        d = run_w[j] - np.swapaxes(run_b[j], -1, -2)  # (S, K, ...)
        norm = np.sqrt(np.sum(d * d, axis=(-1, -2)))
        measured.append((norm / norm[:, :1]).mean(axis=0))
    n_decays = np.asarray(record) // p.decay_every
    exact = (1.0 - p.eta * p.lam * p.decay_every) ** n_decays
    return {"measured": np.round(measured, 5).tolist(), "exact": np.round(exact, 5).tolist()}


def decay_underflow(w: Sequence[np.ndarray], b: Sequence[np.ndarray | None], p: SelfAssemblyParams,
                    program: Any) -> dict[str, Any]:  # fmt: skip
    """Per plastic connection with a decay term: the fraction of synapses (over seeds) whose decay step
    ``eta*lam*2^k*|w|`` is below half a weight LSB (nearest rounding drops it), from weights ``(S, ...)`` in float
    units, and the LSB."""
    out = {}
    coefficient = p.eta * p.lam * p.decay_every
    for name, m in [(f"w{j}", w[j]) for j in range(p.decay_from, p.n_layers)] + [
        (f"b{j}", b[j]) for j in range(1, p.n_layers)
    ]:
        lsb = 1.0 / float(np.max(program.connections[name].w_scale))
        step = coefficient * np.abs(m) / lsb  # decay per decay epoch, in LSB
        out[name] = {"lsb": lsb, "fraction_below_half_lsb": float(np.mean(step < 0.5)),
                     "median_step_lsb": float(np.median(step))}  # fmt: skip
    return out


def hardware_curves(
    seeds: Sequence[int] = (0, 1),
    epochs: int = 10,
    record_every: int = 337,
    roundings: Sequence[str] = ("stochastic", "nearest"),
    base: SelfAssemblyParams | None = None,
) -> dict[str, Any]:
    """The ``hardware`` stage: digits on the emulator (Loihi 2 formats) with each rounding, and the float ground
    truth on the same decay schedule."""
    from neuro_hw.circuits.self_assembly_run import train_circuit

    task = digits_task()
    spec = hardware_spec(base)
    p = replace(spec.params, epochs=epochs)
    spec = replace(spec, params=p)
    out: dict[str, Any] = {
        "stage": "hardware",
        "task": "digits",
        "seeds": [int(s) for s in seeds],
        "params": asdict(p),
        "decimation": spec.decimation,
        "ranges": asdict(spec.ranges),
        "runs": {},
    }
    t0 = time.perf_counter()
    fl = run_seeds(p, task, seeds, "kp", record_every=record_every)
    entry = _curve_summary(fl.record_steps, fl.angle, fl.rel_diff, task.n_train)
    acc_m, acc_s = mean_se(fl.test_accuracy[:, -1])
    entry.update({"backend": "numpy float64", "test_accuracy_mean": float(acc_m), "test_accuracy_se": float(acc_s),
                  "test_accuracy_per_epoch": fl.test_accuracy.mean(axis=0).round(4).tolist(),
                  "seconds": round(time.perf_counter() - t0, 1)})  # fmt: skip
    out["runs"]["float"] = entry
    for rounding in roundings:
        tgt = _target(None if rounding == "stochastic" else {"learning.rounding": rounding})
        t0 = time.perf_counter()
        run = train_circuit(spec, task, seeds, "emulator", target=tgt, record_every=record_every)
        entry = _curve_summary(run.record_samples, run.angle, run.rel_diff, task.n_train)
        acc_m, acc_s = mean_se(run.test_accuracy[:, -1])
        entry.update({
            "backend": f"emulator loihi2 ({rounding} rounding)",
            "test_accuracy_mean": float(acc_m),
            "test_accuracy_se": float(acc_s),
            "test_accuracy_per_epoch": run.test_accuracy.mean(axis=0).round(4).tolist(),
            "online_accuracy_per_epoch": run.online_accuracy.mean(axis=0).round(4).tolist(),
            "cancellation": cancellation(run.w, run.b, run.record_samples, p),
            "decay_underflow_initial": decay_underflow([m[:, 0] for m in run.w],
                                                       [None] + [m[:, 0] for m in run.b[1:]], p, run.program),
            "decay_underflow_final": decay_underflow([m[:, -1] for m in run.w],
                                                     [None] + [m[:, -1] for m in run.b[1:]], p, run.program),
            "weight_absmax_final": {f"w{l}": float(np.abs(run.w[l][:, -1]).max()) for l in range(p.n_layers)}
            | {f"b{j}": float(np.abs(run.b[j][:, -1]).max()) for j in range(1, p.n_layers)},
            "seconds": round(time.perf_counter() - t0, 1),
        })  # fmt: skip
        out["runs"][rounding] = entry
    return out


def integer_cancellation(
    seed: int = 0, n_samples: int = 64, roundings: Sequence[str] = ("stochastic", "nearest")
) -> dict[str, Any]:
    """On which samples the chip's integer ``D_j = W_j,int - B_j,int^T`` changes (weights read after every sample on
    the emulator, seed ``seed``'s initial weights and sample order, the circuit of :func:`hardware_spec`).  Exact
    cancellation of the gradient terms would change it only on the decay epochs (every ``2**DECIMATION``-th
    sample); also the weight scales of ``W_j`` and ``B_j`` (integers per float unit)."""
    import neuro_hw
    from neuro_hw.circuits.digits import epoch_order
    from neuro_hw.circuits.self_assembly import compile_options, initial_weights, self_assembly_circuit

    task = digits_task()
    spec = hardware_spec()
    w, b = initial_weights(spec, seed)
    circuit, sched = self_assembly_circuit(spec, w, b)
    order = epoch_order(task.n_train, 1, seed)[:n_samples]
    stim = sched.present(task.x_train[order], task.t_train[order])
    out: dict[str, Any] = {"seed": seed, "n_samples": n_samples, "decay_every": spec.params.decay_every, "runs": {}}
    for rounding in roundings:
        program = neuro_hw.compile(circuit, target=_target(None if rounding == "stochastic" else
                                                           {"learning.rounding": rounding}),
                                   dt=1e-3, **compile_options(spec))  # fmt: skip
        result = neuro_hw.run(program, stim, sched.steps(n_samples), backend="emulator", seed=seed,
                              weights_every=sched.period)  # fmt: skip
        layers = {}
        for j in range(1, spec.params.n_layers):
            wi = result.weights[f"w{j}.w"][0].astype(np.int64)  # (K, post, pre): K = n_samples + 1
            bi = result.weights[f"b{j}.w"][0].astype(np.int64)
            d = wi - np.swapaxes(bi, -1, -2)
            changed = [k for k in range(1, d.shape[0]) if np.any(d[k] != d[k - 1])]
            layers[f"l{j}"] = {
                "samples_where_D_changed": changed,
                "n_changed": len(changed),
                "W_scale": float(np.max(program.connections[f"w{j}"].w_scale)),
                "B_scale": float(np.max(program.connections[f"b{j}"].w_scale)),
            }
        out["runs"][rounding] = layers
    return out


# --------------------------------------------------------------------------------------- weight bits diagnosis


def compiled_learning(program: Any) -> dict[str, Any]:
    """What the compiler made of the learning rules (one program): per plastic connection its weight scale
    (integers per float unit), weight exponent and format range, the microcode and every coefficient's needed /
    represented value; per graded signal read by the learning engine its payload levels and dropped bits."""
    conns = {}
    for rule in program.report.rules:
        c = program.connections[rule.synapse]
        conns[rule.synapse] = {
            "w_scale": float(np.max(c.w_scale)),
            "weight_exp": int(c.weight_exp),
            "microcode": rule.microcode,
            "coefficients": [{"term": k.term, "needed": float(k.target_value), "represented": float(k.represented),
                              "rel_error": round(float(k.rel_error), 5)} for k in rule.coefficients],
        }  # fmt: skip
    signals = program.report.signals
    signals = signals.values() if isinstance(signals, Mapping) else signals
    levels = {s.signal: {"payload_max": int(s.payload_max), "dropped_bits": int(s.dropped_bits)} for s in signals
              if s.dropped_bits or any(r in ("third factor", "pre activity") for r in s.roles)}  # fmt: skip
    return {"connections": conns, "learning_signals": levels}


def weightbits_study(
    weight_bits: Sequence[int] = (8, 10, 12, 14),
    trace_bits: int = 8,
    seeds: Sequence[int] = (0, 1),
    epochs: int = 10,
    fixes: Sequence[str] = ("none", "padding", "padding+scales"),
) -> dict[str, Any]:
    """Why more weight bits learn worse at 8 trace bits (docs/self-assembly.md §4.4): for every weight width and
    rule padding (``"none"``: the circuit of :func:`hardware_spec`; ``"auto"``:
    :func:`~neuro_hw.circuits.self_assembly.rule_padding` extra ``x0`` factors for the target), the compiled
    learning rules (:func:`compiled_learning`) and ``epochs`` of digits on the emulator (stochastic rounding).
    ``fixes``: ``"none"`` (the circuit of :func:`hardware_spec`), ``"padding"`` (its rules padded,
    :func:`~neuro_hw.circuits.self_assembly.rule_padding`), ``"padding+scales"``
    (:func:`~neuro_hw.circuits.self_assembly.wide_weight_spec`: padding and ``B``'s weight scale matched to ``W``'s).
    Measured:
    test accuracy per epoch (mean over ``seeds``), the final angle per layer (per seed), and the largest final
    ``|w|`` per connection in float units and in weight integers; the float ground truth as the reference."""
    from neuro_hw.circuits.self_assembly import wide_weight_spec
    from neuro_hw.circuits.self_assembly_run import train_circuit

    task = digits_task()
    base = hardware_spec()
    p = replace(base.params, epochs=int(epochs))
    out: dict[str, Any] = {"stage": "weightbits", "task": "digits", "seeds": [int(s) for s in seeds],
                           "epochs": int(epochs), "trace_bits": int(trace_bits), "rounding": "stochastic",
                           "runs": []}  # fmt: skip
    t0 = time.perf_counter()
    fl = run_seeds(p, task, seeds, "kp", record_every=task.n_train)
    out["float"] = {"test_accuracy_per_epoch": (100 * fl.test_accuracy.mean(axis=0)).round(2).tolist(),
                    "angle_final": fl.angle[:, -1].round(2).tolist(),
                    "seconds": round(time.perf_counter() - t0, 1)}  # fmt: skip
    for wb in weight_bits:
        tgt = _target({"weights.bits": int(wb), "learning.trace_bits": int(trace_bits)})
        for fix in fixes:
            if fix not in ("none", "padding", "padding+scales"):
                raise ValueError(f"fix must be 'none', 'padding' or 'padding+scales', got {fix!r}")
            spec = replace(base, params=p)
            if fix != "none":
                spec = wide_weight_spec(spec, tgt, scales=fix == "padding+scales")
            t0 = time.perf_counter()
            run = train_circuit(spec, task, seeds, "emulator", target=tgt, record_every=task.n_train)
            names = [f"w{j}" for j in range(p.n_layers)] + [f"b{j}" for j in range(1, p.n_layers)]
            mats = {n: (run.w[int(n[1:])] if n[0] == "w" else run.b[int(n[1:])]) for n in names}
            scales = {n: float(np.max(run.program.connections[n].w_scale)) for n in names}
            out["runs"].append({
                "weight_bits": int(wb),
                "fix": fix,
                "rule_padding": spec.rule_padding,
                "z_headroom": spec.ranges.z_headroom,
                "compiled": compiled_learning(run.program),
                "test_accuracy_per_epoch": (100 * run.test_accuracy.mean(axis=0)).round(2).tolist(),
                "test_accuracy_final": (100 * run.test_accuracy[:, -1]).round(2).tolist(),
                "angle_per_epoch": run.angle.mean(axis=0).round(2).tolist(),
                "angle_final": run.angle[:, -1].round(2).tolist(),
                "absmax_final": {n: round(float(np.abs(m[:, -1]).max()), 4) for n, m in mats.items()},
                "absmax_final_int": {n: int(round(float(np.abs(m[:, -1]).max()) * scales[n])) for n, m in mats.items()},
                "seconds": round(time.perf_counter() - t0, 1),
            })  # fmt: skip
    return out


def update_mismatch(weight_bits: int, fix: str = "none", seed: int = 0, n_samples: int = 64,
                    trace_bits: int = 8) -> dict[str, Any]:  # fmt: skip
    """How far the chip's updates of ``W_j`` and ``B_j^T`` differ, per sample: the circuit (``fix`` as in
    :func:`weightbits_study`) on the emulator for the first ``n_samples`` of seed ``seed``'s order, weights read
    after every sample in float units; per hidden layer the RMS over synapses and non-decay samples of the change
    of ``D = W - B^T`` (exact Kolen-Pollack: 0) and of ``W`` (for scale), and their ratio; the mean change of
    ``D``, ``W``, ``B`` per synapse and non-decay sample (a systematic drift) and the mean net change of ``D``
    over all samples; both weight scales (integers per unit)."""
    import neuro_hw
    from neuro_hw.circuits.digits import epoch_order
    from neuro_hw.circuits.self_assembly import (
        compile_options,
        initial_weights,
        self_assembly_circuit,
        wide_weight_spec,
    )

    task = digits_task()
    tgt = _target({"weights.bits": int(weight_bits), "learning.trace_bits": int(trace_bits)})
    spec = hardware_spec()
    if fix != "none":
        spec = wide_weight_spec(spec, tgt, scales=fix == "padding+scales")
    w, b = initial_weights(spec, seed)
    circuit, sched = self_assembly_circuit(spec, w, b)
    order = epoch_order(task.n_train, 1, seed)[:n_samples]
    stim = sched.present(task.x_train[order], task.t_train[order])
    program = neuro_hw.compile(circuit, target=tgt, dt=1e-3, **compile_options(spec, tgt.learning.trace_max))
    result = neuro_hw.run(program, stim, sched.steps(n_samples), backend="emulator", seed=seed,
                          weights_every=sched.period)  # fmt: skip
    decay = np.asarray([k % spec.params.decay_every == 0 for k in range(1, n_samples + 1)])
    layers = {}
    for j in range(1, spec.params.n_layers):
        sw = float(np.max(program.connections[f"w{j}"].w_scale))
        sb = float(np.max(program.connections[f"b{j}"].w_scale))
        wf = result.weights[f"w{j}.w"][0].astype(np.float64) / sw  # (K, post, pre), K = n_samples + 1
        bf = result.weights[f"b{j}.w"][0].astype(np.float64) / sb
        dd = np.diff(wf - np.swapaxes(bf, -1, -2), axis=0)[~decay]
        dw = np.diff(wf, axis=0)[~decay]
        db = np.diff(bf, axis=0)[~decay]
        rms_d, rms_w = float(np.sqrt(np.mean(dd**2))), float(np.sqrt(np.mean(dw**2)))
        net = float(np.mean(wf[-1] - wf[0] - np.swapaxes(bf[-1] - bf[0], -1, -2)))
        layers[f"l{j}"] = {"W_scale": sw, "B_scale": sb, "rms_dD": rms_d, "rms_dW": rms_w,
                           "ratio": rms_d / rms_w if rms_w else float("nan"),
                           # the systematic part: mean change per synapse and non-decay sample (float units)
                           "mean_dD": float(dd.mean()), "mean_dW": float(dw.mean()), "mean_dB": float(db.mean()),
                           "net_D_change": net}  # fmt: skip
    return {"weight_bits": int(weight_bits), "trace_bits": int(trace_bits), "fix": fix, "seed": int(seed),
            "n_samples": int(n_samples), "layers": layers}  # fmt: skip


# ----------------------------------------------------------------------------------------------- precision sweep

PRECISION_DEFAULTS: dict[str, Any] = {"epochs": 10, "record_every": 1347, "n_train": 0, "pad_rules": 0}


def precision_point(params: Mapping[str, Any], target: Any, backend: str, seeds: list[int]) -> list[dict[str, Any]]:
    """Sweep evaluation (``neuro_hw.sweep``): the circuit of :func:`hardware_spec` on digits for ``epochs``
    epochs, one trial per seed; ``backend="reference"`` runs the float64 ground truth (equal to the IR circuit in
    the float reference, see the module doc), a fixed-point backend the circuit compiled for ``target``.

    ``n_train`` > 0 trains on the first ``n_train`` images only (tests); ``pad_rules`` 1 gives the rules
    :func:`~neuro_hw.circuits.self_assembly.rule_padding` extra ``x0`` factors for ``target`` (the fix of
    docs/self-assembly.md §4.4 for weight widths above 8 bits; 0, the default, is the circuit as swept there).
    Metrics per seed: ``test_accuracy``
    (%), ``angle_l1`` .. ``angle_l3`` and ``angle_max`` (final, degrees),
    ``rel_diff_max`` (final ``|W - B^T| / |W|``, largest layer) and ``assembled`` (``angle_max < 10``)."""
    unknown = sorted(set(params) - set(PRECISION_DEFAULTS))
    if unknown:
        raise ValueError(f"precision_point: unknown parameter(s) {unknown}; known: {sorted(PRECISION_DEFAULTS)}")
    q = {**PRECISION_DEFAULTS, **params}
    task = digits_task()
    if int(q["n_train"]) > 0:
        task = task.subset(int(q["n_train"]))
    spec = hardware_spec()
    p = replace(spec.params, epochs=int(q["epochs"]))
    spec = replace(spec, params=p)
    if backend == "reference":
        r = run_seeds(p, task, seeds, "kp", record_every=int(q["record_every"]))
        angle, rel, acc = r.angle[:, -1], r.rel_diff[:, -1], r.test_accuracy[:, -1]
    else:
        from neuro_hw.circuits.self_assembly_run import train_circuit

        if backend != "emulator":
            raise ValueError(f"precision_point runs on 'reference' or 'emulator', got {backend!r}")
        if int(q["pad_rules"]):
            from neuro_hw.circuits.self_assembly import rule_padding

            spec = replace(spec, rule_padding=rule_padding(_target(None) if target is None else target))
        run = train_circuit(spec, task, seeds, "emulator", target=target, record_every=int(q["record_every"]))
        angle, rel, acc = run.angle[:, -1], run.rel_diff[:, -1], run.test_accuracy[:, -1]
    rows = []
    for s in range(len(seeds)):
        row = {f"angle_l{j + 1}": float(angle[s, j]) for j in range(angle.shape[1])}
        row.update({
            "test_accuracy": 100.0 * float(acc[s]),
            "angle_max": float(angle[s].max()),
            "rel_diff_max": float(rel[s].max()),
            "assembled": bool(angle[s].max() < 10.0),
        })  # fmt: skip
        rows.append(row)
    return rows


def precision_spec(
    weight_bits: Sequence[int] = (8, 12),
    trace_bits: Sequence[int] = (7,),
    seeds: Sequence[int] = (0, 1),
    epochs: int = 10,
    cells: Sequence[tuple[int, int]] | None = None,
) -> Any:
    """The precision sweep (:class:`neuro_hw.sweep.SweepSpec`): weight x trace bits on the emulator, stochastic
    rounding, float ground truth as the baseline; ``cells``: explicit ``(weight bits, trace bits)`` points, in
    this order, instead of the grid.  ``epochs`` must be long enough for the float to assemble (10: < 1 degree;
    3: ~40 degrees)."""
    from neuro_hw.sweep import SweepSpec
    from neuro_hw.sweep.spec import PlotSpec

    grid = {"target.weights.bits": [int(b) for b in weight_bits],
            "target.learning.trace_bits": [int(b) for b in trace_bits]}  # fmt: skip
    points = []
    if cells is not None:
        grid = {}
        points = [{"target.weights.bits": int(wb), "target.learning.trace_bits": int(tb)} for wb, tb in cells]
    return SweepSpec(
        name="self_assembly_precision",
        evaluate="neuro_hw.circuits.self_assembly_experiments:precision_point",
        params={"epochs": int(epochs)},
        grid=grid,
        points=points,
        backends=["reference", "emulator"],
        baseline="reference",
        seeds=[int(s) for s in seeds],
        plots=[
            PlotSpec("precision", "test_accuracy", "target.weights.bits", "target.learning.trace_bits",
                     "self_assembly_precision_accuracy.png"),
            PlotSpec("precision", "angle_max", "target.weights.bits", "target.learning.trace_bits",
                     "self_assembly_precision_angle.png"),
        ],
    )  # fmt: skip


# ------------------------------------------------------------------------------------------------------- plots


def _axes_grid(n_layers: int, title: str) -> tuple[Any, Any]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, n_layers, figsize=(4.2 * n_layers, 6.4), sharex=True, squeeze=False)
    fig.suptitle(title, fontsize=10)
    for j in range(n_layers):
        axes[0, j].set_title(f"hidden layer {j + 1}: W_{j + 1} vs B_{j + 1}^T", fontsize=9)
        axes[0, j].set_ylabel("angle (degrees)")
        axes[1, j].set_ylabel("|W - B^T| / |W|")
        axes[1, j].set_yscale("log")
        axes[1, j].set_xlabel("epochs (1347 samples each)")
        for row in (0, 1):
            axes[row, j].grid(alpha=0.3)
        axes[0, j].axhline(5.0, color="grey", lw=0.6, ls=":")
    return fig, axes


def _draw(axes: Any, entry: Mapping[str, Any], label: str, color: Any, ls: str = "-") -> None:
    x = np.asarray(entry["epochs"])
    for j, (a, a_se, r, r_se) in enumerate(
        zip(entry["angle_mean"], entry["angle_se"], entry["rel_diff_mean"], entry["rel_diff_se"], strict=True)
    ):
        a, a_se, r, r_se = map(np.asarray, (a, a_se, r, r_se))
        axes[0, j].plot(x, a, ls, color=color, label=label, lw=1.3)
        axes[0, j].fill_between(x, a - a_se, a + a_se, color=color, alpha=0.2, lw=0)
        axes[1, j].plot(x, np.maximum(r, 1e-6), ls, color=color, label=label, lw=1.3)
        axes[1, j].fill_between(x, np.maximum(r - r_se, 1e-6), r + r_se, color=color, alpha=0.2, lw=0)


def plot_assembly(data: Mapping[str, Any], path: str | Path) -> Path:
    """Angle and relative difference per layer over training, a line per variant (mean +- s.e. over seeds)."""
    variants = data["variants"]
    n_layers = len(next(iter(variants.values()))["angle_mean"])
    fig, axes = _axes_grid(n_layers, f"Self-assembly in float64 on digits (seeds {data['seeds']}, mean +- s.e.)")
    colors = ["C0", "C3", "C1", "C2", "C4", "C5"]
    for (name, entry), color in zip(variants.items(), colors, strict=False):
        _draw(axes, entry, entry.get("label", name), color)
    axes[0, 0].legend(fontsize=7)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return path


def plot_hardware(data: Mapping[str, Any], path: str | Path) -> Path:
    """Float vs fixed point (each rounding) on one plot: angle and relative difference per layer."""
    runs = data["runs"]
    n_layers = len(runs["float"]["angle_mean"])
    fig, axes = _axes_grid(
        n_layers, f"Float64 vs Loihi 2 fixed point (emulator), digits, seeds {data['seeds']}, decay every "
        f"{2 ** data['decimation']} samples"
    )  # fmt: skip
    styles = {"float": ("k", "-"), "stochastic": ("C0", "-"), "nearest": ("C3", "--")}
    for name, entry in runs.items():
        color, ls = styles.get(name, ("C2", "-."))
        label = "float64" if name == "float" else f"fixed point, {name} rounding"
        _draw(axes, entry, f"{label} ({100 * entry['test_accuracy_mean']:.1f} %)", color, ls)
    axes[0, 0].legend(fontsize=7)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return path


# ----------------------------------------------------------------------------------------------------- stages

STAGES = ("assembly", "learning", "hardware", "precision", "cancellation")


def write_json(data: Mapping[str, Any], path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1, default=float) + "\n")
    tmp.replace(path)
    return path


def run_stage(stage: str, out_dir: str | Path = RESULTS, **kwargs: Any) -> dict[str, Any]:
    """Run ``stage`` (one of :data:`STAGES`) with ``kwargs`` for its function and write
    ``<out_dir>/self_assembly_<stage>.json`` (and its plot); returns the data."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    if stage == "assembly":
        data = assembly_curves(**kwargs)
        plot_assembly(data, out / "self_assembly_assembly.png")
    elif stage == "learning":
        data = learning_table(**kwargs)
    elif stage == "hardware":
        data = hardware_curves(**kwargs)
        plot_hardware(data, out / "self_assembly_float_vs_fixed.png")
    elif stage == "cancellation":
        data = integer_cancellation(**kwargs)
    elif stage == "precision":
        from neuro_hw.sweep import run_sweep

        serial = kwargs.pop("serial", True)
        workers = kwargs.pop("workers", None)
        spec = precision_spec(**kwargs)
        result = run_sweep(spec, out, serial=serial, workers=workers, progress=False)
        data = {"stage": "precision", "csv": str(result.csv), "failures": len(result.failures),
                "summary": summarize_precision(result.csv)}  # fmt: skip
    else:
        raise ValueError(f"stage must be one of {STAGES}, got {stage!r}")
    data["wall_seconds"] = round(time.perf_counter() - t0, 1)
    write_json(data, out / f"self_assembly_{stage}.json")
    return data


def summarize_precision(csv: str | Path, assembled_deg: float = 10.0, within_points: float = 2.0) -> dict[str, Any]:
    """Per (weight bits, trace bits): mean final accuracy and largest angle over seeds; the float baseline; and
    the fewest bits (weight + trace) at which the mean largest angle is below ``assembled_deg`` and the mean
    accuracy within ``within_points`` of the float's."""
    from neuro_hw.sweep import read_csv

    rows = [r for r in read_csv(csv) if r.get("status") == "ok"]
    ref = [r for r in rows if r["backend"] == "reference"]
    if not ref:
        raise ValueError(f"{csv}: no reference rows")
    float_acc = float(np.mean([float(r["metric.test_accuracy"]) for r in ref]))
    float_angle = float(np.mean([float(r["metric.angle_max"]) for r in ref]))
    cells: dict[tuple[int, int], list[Mapping[str, Any]]] = {}
    for r in rows:
        if r["backend"] != "emulator":
            continue
        key = (int(float(r["param.target.weights.bits"])), int(float(r["param.target.learning.trace_bits"])))
        cells.setdefault(key, []).append(r)
    table = []
    for (wb, tb), rs in sorted(cells.items()):
        acc = float(np.mean([float(r["metric.test_accuracy"]) for r in rs]))
        angle = float(np.mean([float(r["metric.angle_max"]) for r in rs]))
        table.append({"weight_bits": wb, "trace_bits": tb, "seeds": len(rs), "test_accuracy": round(acc, 2),
                      "angle_max": round(angle, 2), "assembled": angle < assembled_deg,
                      "within": acc >= float_acc - within_points})  # fmt: skip
    ok = [c for c in table if c["assembled"] and c["within"]]
    fewest = min(ok, key=lambda c: (c["weight_bits"] + c["trace_bits"], c["weight_bits"])) if ok else None
    return {"float_test_accuracy": round(float_acc, 2), "float_angle_max": round(float_angle, 2), "cells": table,
            "fewest_bits": fewest}  # fmt: skip
