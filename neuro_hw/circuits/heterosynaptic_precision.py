"""Seed P2 on the emulator: a precision sweep of the compiled motif over weight bits x trace bits x seeds.

The motif 64 - 8 - 10 in hardware form (:func:`~.heterosynaptic_run.hardware_setup`; eta = eta_v = 0.02, no
decay, input in 16 levels) is trained online for ``n_samples`` digits (one 7-step period per sample) on the
emulator at each target variant ``weights.bits`` x ``learning.trace_bits`` (Loihi 2: 8 x 7, stochastic rounding),
with the graded signals' levels following the trace width (``trace_max = 2^trace_bits - 1``:
:func:`~.heterosynaptic.compile_options`; 63 levels per feedback signal at 7 bits, 15 at 5, 127 at 8), and in the
float reference (the sweep's baseline).  The weights read back every ``every`` samples go through the
numpy monitors (:func:`~.heterosynaptic_numpy.probe`, probe batch: the first 300 training digits) -- the same code
as for the float ground truth.  The seed sets the initial weights, the sample order and the emulator's stochastic
rounding.  The sweep runs through :func:`neuro_hw.sweep.run_sweep` (:func:`precision_spec`, evaluation
:func:`precision_point`); the step kernel is shared by every width pair of one rule form (``docs/emulator.md``).

Metrics per (point, seed), all on the last snapshot unless named ``*_last4`` (mean of the last 4 snapshots):
``alignment`` (cos of the hidden update direction and the true gradient, over all hidden synapses),
``dc_positive`` (fraction of hidden neurons with phi > 0; DC), ``phi`` (mean consistency score; > 0: descent),
``hs_residual`` (sum (p - phi g)^2 / sum p^2; 0 = HS exactly), ``v_drift`` (|dV| per sample over the last window,
Frobenius norm in float weight units), ``probe_accuracy``, ``test_accuracy`` (fraction, 450 test digits),
``alignment_start``, ``v_frozen`` (1 if V did not change at all over the last 4 windows: the engine's updates
all round to 0, e.g. because the hidden layer has gone silent on chip).
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from neuro_hw.circuits import heterosynaptic as hc
from neuro_hw.circuits import heterosynaptic_numpy as hn

#: Parameters of :func:`precision_point` and their defaults (one epoch of the 1347 training digits).
PRECISION_DEFAULTS: dict[str, Any] = {"n_samples": 1347, "every": 100, "n_hidden": 8, "n_probe": 300}
#: The metrics summarised by :func:`summarize` (mean +- s.e. over seeds).
METRICS = ("alignment", "alignment_last4", "dc_positive", "dc_positive_last4", "phi", "phi_last4", "hs_residual",
           "hs_residual_last4", "v_drift", "v_drift_last4", "probe_accuracy", "test_accuracy", "alignment_start",
           "v_frozen")  # fmt: skip


def _nanmean(values: Sequence[float]) -> float:
    a = np.asarray(values, dtype=np.float64)
    a = a[np.isfinite(a)]
    return float(a.mean()) if a.size else float("nan")


def trial_metrics(topo: hn.Topology, params: hn.HeteroParams, weights: Mapping[str, np.ndarray], every: int,
                  x: np.ndarray, t: np.ndarray, x_test: np.ndarray,
                  y_test: np.ndarray) -> dict[str, float]:  # fmt: skip
    """The monitors of one training run from its weight snapshots (``weights``: name -> (K, ...) in float units,
    taken every ``every`` samples; K >= 5), probe batch ``x``/``t``; see the module doc for the metrics."""
    k = len(next(iter(weights.values())))
    if k < 5:
        raise ValueError(f"trial_metrics: need >= 5 weight snapshots (last 4 windows), got {k}")
    states = [hc.state_from_weights(topo, weights, i) for i in range(k)]
    probes = [hn.probe(topo, params, s, x, t) for s in states]
    drift = hn.monitors.weight_drift([np.stack([s.V[key] for s in states]) for key in topo.feedback], every)
    series = {
        "alignment": [p.alignment_all for p in probes],
        "dc_positive": [p.dc_positive for p in probes],
        "phi": [_nanmean(p.phi_patch) for p in probes],
        "hs_residual": [p.hs_residual for p in probes],
    }
    out: dict[str, float] = {}
    for key, vals in series.items():
        out[key] = float(vals[-1])
        out[f"{key}_last4"] = _nanmean(vals[-4:])
    out["v_drift"] = float(drift[-1])
    out["v_drift_last4"] = float(np.mean(drift[-4:]))
    out["probe_accuracy"] = float(probes[-1].accuracy)
    out["test_accuracy"] = hn.accuracy(topo, params, states[-1], x_test, y_test)
    out["alignment_start"] = float(probes[0].alignment_all)
    out["v_frozen"] = float(np.all(drift[-4:] == 0.0))
    return out


def precision_point(params: Mapping[str, Any], target: Any, backend: str, seeds: list[int]) -> list[dict[str, Any]]:
    """Sweep evaluation (``neuro_hw.sweep``): train the compiled motif (``n_hidden`` hidden neurons) for
    ``n_samples`` digits, one run per seed, on ``backend`` (``reference``: the float reference of the IR circuit;
    ``emulator``: the circuit compiled for ``target``) and return :func:`trial_metrics` per seed."""
    import neuro_hw
    from neuro_hw.circuits.digits import epoch_order, load_digits_split, one_hot
    from neuro_hw.circuits.heterosynaptic_run import hardware_setup

    unknown = sorted(set(params) - set(PRECISION_DEFAULTS))
    if unknown:
        raise ValueError(f"heterosynaptic precision_point: unknown parameter(s) {unknown}; "
                         f"known: {sorted(PRECISION_DEFAULTS)}")  # fmt: skip
    if backend not in ("reference", "emulator"):
        raise ValueError(f"heterosynaptic precision_point runs on 'reference' or 'emulator', got {backend!r}")
    q = {**PRECISION_DEFAULTS, **params}
    n_samples, every, n_probe = int(q["n_samples"]), int(q["every"]), int(q["n_probe"])
    sp = load_digits_split()
    x, t = sp.x_train, one_hot(sp.y_train)
    rows = []
    for seed in seeds:
        topo, spec, _, circuit, sched = hardware_setup(n_hidden=int(q["n_hidden"]), seed=int(seed))
        order = epoch_order(len(x), -(-n_samples // len(x)), int(seed))[:n_samples]
        stim = sched.present(x[order], t[order])
        steps = sched.steps(n_samples)
        if backend == "reference":
            result = neuro_hw.simulate(circuit, stim, steps, hc.DT, weights_every=sched.period * every)
        else:
            trace_max = 2 ** int(target.learning.trace_bits) - 1  # the signals' levels follow the trace width
            program = neuro_hw.compile(circuit, target=target, dt=hc.DT, **hc.compile_options(spec, trace_max))
            result = neuro_hw.run(program, stim, steps, backend="emulator", seed=int(seed),
                                  weights_every=sched.period * every)  # fmt: skip
        rows.append(trial_metrics(topo, spec.params, hc.recorded_weights(result), every, x[:n_probe], t[:n_probe],
                                  sp.x_test, sp.y_test))  # fmt: skip
    return rows


def precision_spec(weight_bits: Sequence[int] = (4, 5, 6, 8), trace_bits: Sequence[int] = (5, 6, 7, 8),
                   seeds: Sequence[int] = (0, 1, 2), n_samples: int = 1347, every: int = 100,
                   name: str = "heterosynaptic_precision") -> Any:  # fmt: skip
    """The sweep (:class:`neuro_hw.sweep.SweepSpec`): weight bits x trace bits on the emulator, the float
    reference as the baseline, ``seeds``; plots of test accuracy, alignment, DC and |dV| against weight bits, a
    line per trace width."""
    from neuro_hw.sweep import PlotSpec, SweepSpec

    wb, tb = "target.weights.bits", "target.learning.trace_bits"
    return SweepSpec(
        name=name,
        evaluate="neuro_hw.circuits.heterosynaptic_precision:precision_point",
        params={"n_samples": int(n_samples), "every": int(every)},
        grid={wb: [int(b) for b in weight_bits], tb: [int(b) for b in trace_bits]},
        backends=["reference", "emulator"],
        baseline="reference",
        seeds=[int(s) for s in seeds],
        plots=[PlotSpec("precision", m, wb, tb, f"{name}_{m}.png")
               for m in ("test_accuracy", "alignment_last4", "dc_positive_last4", "v_drift_last4")],
    )  # fmt: skip


def summarize(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Mean and standard error over seeds of every metric in :data:`METRICS`, per cell (``reference`` and
    ``w<weight bits>_t<trace bits>``), and the failed cells with their errors."""

    def num(v: Any) -> float:
        try:
            return float(v)
        except (TypeError, ValueError):
            return float("nan")

    groups: dict[str, list[Mapping[str, Any]]] = {}
    failures: dict[str, str] = {}
    for r in rows:
        if r["backend"] == "reference":
            key = "reference"
        else:
            key = f"w{int(num(r['param.target.weights.bits']))}_t{int(num(r['param.target.learning.trace_bits']))}"
        if r.get("status") != "ok":
            failures[key] = f"{r.get('error_type', '')}: {r.get('error_message', '')}"[:600]
            continue
        groups.setdefault(key, []).append(r)
    cells: dict[str, Any] = {}
    for key, rs in groups.items():
        cell: dict[str, Any] = {"n": len(rs), "seeds": [int(num(r["seed"])) for r in rs]}
        for m in METRICS:
            vals = np.asarray([num(r.get(f"metric.{m}")) for r in rs])
            fin = vals[np.isfinite(vals)]
            cell[m] = {"mean": float(fin.mean()) if fin.size else float("nan"),
                       "se": float(fin.std(ddof=1) / math.sqrt(fin.size)) if fin.size > 1 else float("nan"),
                       "values": vals.tolist()}  # fmt: skip
        cells[key] = cell
    return {"cells": cells, "failures": failures}


def plot_summary(summary: Mapping[str, Any], path: Path, weight_bits: Sequence[int], trace_bits: Sequence[int]) -> None:
    """Mean +- s.e. over seeds of test accuracy, alignment, DC, phi, HS residual and |dV| (last 4 snapshots)
    against weight bits, a line per trace width; the float reference as a horizontal band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = ("test_accuracy", "alignment_last4", "dc_positive_last4", "phi_last4", "hs_residual_last4",
            "v_drift_last4")  # fmt: skip
    fig, axes = plt.subplots(2, 3, figsize=(13, 7))
    axes = axes.ravel()
    cells = summary["cells"]
    for ax, key in zip(axes, keys, strict=True):
        for tb in trace_bits:
            xs, ms, ses = [], [], []
            for wb in weight_bits:
                c = cells.get(f"w{wb}_t{tb}")
                if c is not None:
                    xs.append(wb)
                    ms.append(c[key]["mean"])
                    ses.append(c[key]["se"] if np.isfinite(c[key]["se"]) else 0.0)
            ax.errorbar(xs, ms, yerr=ses, marker="o", capsize=3, label=f"trace {tb} bits")
        ref = cells.get("reference")
        if ref is not None:
            m, se = ref[key]["mean"], ref[key]["se"] if np.isfinite(ref[key]["se"]) else 0.0
            ax.axhspan(m - se, m + se, color="grey", alpha=0.3)
            ax.axhline(m, color="k", lw=0.8, label="float reference")
        ax.set_title(key.replace("_last4", " (last 4)"))
        ax.set_xlabel("weight bits")
        ax.set_xticks(list(weight_bits))
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def run(out: Path, weight_bits: Sequence[int] = (4, 5, 6, 8), trace_bits: Sequence[int] = (5, 6, 7, 8),
        seeds: Sequence[int] = (0, 1, 2), n_samples: int = 1347, serial: bool = True, workers: int | None = 1,
        progress: bool = True, name: str = "heterosynaptic_precision", every: int = 100) -> dict[str, Any]:  # fmt: skip
    """Run the sweep into ``out/<name>/`` (table + sweep plots) and write ``out/<name>.json`` (the summary) and
    ``out/<name>.png``."""
    from neuro_hw.sweep import run_sweep

    out = Path(out)
    spec = precision_spec(weight_bits, trace_bits, seeds, n_samples, every, name=name)
    result = run_sweep(spec, out / name, serial=serial, workers=workers, resume=False,
                       progress=progress)  # fmt: skip
    summary = summarize(result.rows)
    data = {"weight_bits": list(weight_bits), "trace_bits": list(trace_bits), "seeds": list(seeds),
            "n_samples": n_samples, "every": every, "defaults": PRECISION_DEFAULTS, "csv": str(result.csv),
            "seconds": result.seconds, "engine": result.engine, **summary}  # fmt: skip
    (out / f"{name}.json").write_text(json.dumps(data, indent=1, default=float))
    plot_summary(summary, out / f"{name}.png", weight_bits, trace_bits)
    return data


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m neuro_hw.circuits.heterosynaptic_precision", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--out", default="out/heterosynaptic")
    parser.add_argument("--weight-bits", default="4,5,6,8")
    parser.add_argument("--trace-bits", default="5,6,7,8")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--samples", type=int, default=1347)
    parser.add_argument("--name", default="heterosynaptic_precision", help="file stem of the outputs")
    a = parser.parse_args(argv)
    data = run(Path(a.out), [int(b) for b in a.weight_bits.split(",")], [int(b) for b in a.trace_bits.split(",")],
               list(range(a.seeds)), a.samples, name=a.name)  # fmt: skip
    for key, cell in sorted(data["cells"].items()):
        print(f"{key}: " + ", ".join(f"{m} {cell[m]['mean']:.3g}+-{cell[m]['se']:.2g}" for m in METRICS), flush=True)
    for key, err in data["failures"].items():
        print(f"FAILED {key}: {err}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
