"""``neuro-hw heterosynaptic``: the seed-P2 experiments on the reconstruction, their JSON and plots.

Stages (``--stages``; each writes ``<out>/heterosynaptic_<stage>.json`` and a plot):

* ``curves``: the monitors over online training on the digits -- amorphous networks with independent and with
  matched projections (seeds ``0..--seeds-1``), the structured Kolen-Pollack-like net and the block-amorphous net
  -- ``--samples`` updates each, probed every ``--samples / 20``;
* ``meta``: dW against post activity in the motif, at init and after two activity histories;
* ``flex``: swap the input branches at epoch RT in ``--rts``, ``--after`` epochs after the swap;
* ``evolution``: a ``neuro_hw.sweep`` population (``--population`` circuits x ``--generations``, (mu, lambda)) over
  the signs and gains of the heterosynaptic updates, selection on the test loss after a 1000-sample lifetime;
* ``hardware``: the motif compiled for Loihi 2 and trained on the emulator (``--hw-samples``), monitors from the
  weights read back, against the float reference; a precision sweep over ``--weight-bits`` (target variants);
* ``precision``: a ``neuro_hw.sweep`` of the compiled motif over ``--precision-weight-bits`` x
  ``--precision-trace-bits`` x ``--precision-seeds`` seeds on the emulator, the float reference as the baseline
  (:mod:`.heterosynaptic_precision`; monitors and test accuracy, mean +- s.e. over seeds);
* ``lava``: the first 200 steps of the compiled motif, emulator vs Lava 0.10, every recorded value.

The defaults (``curves,meta`` with 6000 updates and one seed) finish in a few minutes on a quiet 2-core machine.
The results in ``docs/heterosynaptic.md`` come from ``--stages curves,meta,flex,evolution,hardware,lava
--samples 20000 --seeds 3 --weight-bits 8,6,4``; ``hardware`` compiles one numba kernel per weight width
(7-10 minutes each on the loaded machine of the measurements; cached on disk afterwards).
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from neuro_hw.circuits import heterosynaptic as hc
from neuro_hw.circuits import heterosynaptic_numpy as hn
from neuro_hw.circuits import heterosynaptic_sims as hs

STAGES = ("curves", "meta", "flex", "evolution", "hardware", "precision", "lava")
DEFAULT_STAGES = ("curves", "meta")


# ------------------------------------------------------------------------------------------------ hardware

HW_PARAMS = hn.HeteroParams(eta=0.02, eta_v=0.02, lam=0.0, lam_v=0.0)


def hardware_setup(n_hidden: int = 8, seed: int = 0, params: hn.HeteroParams = HW_PARAMS, kind: str = "motif"):
    """The motif (64 - n_hidden - 10), or the block-amorphous (``kind="amorphous_blocks"``) or neuron-level
    amorphous (``kind="amorphous"``: sparse matrices with plasticity masks) network 64 - n_hidden - n_hidden - 10
    of topology seed 2, in hardware form: ``(topology, spec, state, circuit, schedule)``."""
    if kind == "motif":
        topo = hn.motif(64, n_hidden, 10)
    elif kind == "amorphous_blocks":
        topo = hn.amorphous_blocks((64, n_hidden, n_hidden, 10), seed=2)
    elif kind == "amorphous":
        topo = hn.amorphous((64, n_hidden, n_hidden, 10), seed=2)
    else:
        raise ValueError(f"kind must be 'motif', 'amorphous_blocks' or 'amorphous', got {kind!r}")
    state = hn.init_state(topo, params, seed)
    spec = hc.CircuitSpec(topo, params)
    circuit, sched = hc.heterosynaptic_circuit(spec, state)
    return topo, spec, state, circuit, sched


def _monitor_row(topo, params, state, x, t) -> dict[str, float]:  # noqa: ANN001
    pr = hn.probe(topo, params, state, x, t)
    return {"alignment": pr.alignment_all, "phi": float(np.nanmean(pr.phi_patch)), "dc": pr.dc,
            "dc_positive": pr.dc_positive, "hs_residual": pr.hs_residual, "hebbian": float(np.mean(pr.hebbian)),
            "accuracy": pr.accuracy, "loss": pr.loss}  # fmt: skip


def hardware(n_samples: int = 1347, weight_bits: Sequence[int] = (8, 6, 5, 4), seed: int = 0,
             every: int = 100, kind: str = "motif") -> dict[str, Any]:  # fmt: skip
    """Train the compiled motif on the emulator for ``n_samples`` digits (one pulse per sample) at each weight
    width (target variant ``weights.bits``; 8 = Loihi 2), the same run in the float reference, and the monitors of
    the weights read back every ``every`` samples (probe: the first 300 training samples).  Also: |dV| per sample
    between snapshots (HS) and the test accuracy at the end."""
    import neuro_hw
    from neuro_hw.circuits.digits import epoch_order, load_digits_split, one_hot
    from neuro_hw.compiler.target import load_target

    sp = load_digits_split()
    x, t = sp.x_train, one_hot(sp.y_train)
    topo, spec, state, circuit, sched = hardware_setup(seed=seed, kind=kind)
    params = spec.params
    order = epoch_order(len(x), 1, seed)[:n_samples]
    stim = sched.present(x[order], t[order])
    steps = sched.steps(n_samples)
    px, pt = x[:300], t[:300]
    out: dict[str, Any] = {"kind": kind, "n_samples": n_samples, "every": every, "seed": seed, "params": asdict(params),
                           "sizes": list(topo.sizes), "period": sched.period, "runs": {}}  # fmt: skip

    def summarise(weights: dict, name: str, seconds: float, extra: dict | None = None) -> None:
        k = len(next(iter(weights.values())))
        states = [hc.state_from_weights(topo, weights, i) for i in range(k)]
        rows = [_monitor_row(topo, params, s, px, pt) for s in states]
        drift = hn.monitors.weight_drift([np.stack([s.V[key] for s in states]) for key in topo.feedback], every)
        out["runs"][name] = {
            "samples": [min(i * every, n_samples) for i in range(k)],
            "monitors": {key: [r[key] for r in rows] for key in rows[0]},
            "v_drift": drift.tolist(),
            "test_accuracy": hn.accuracy(topo, params, states[-1], sp.x_test, sp.y_test),
            "seconds": seconds,
            **(extra or {}),
        }
        r = out["runs"][name]
        print(f"  {name}: alignment {r['monitors']['alignment'][0]:.2f} -> {r['monitors']['alignment'][-1]:.2f}, "
              f"dc {r['monitors']['dc_positive'][-1]:.2f}, test {r['test_accuracy']:.3f} ({seconds:.0f} s)",
              flush=True)  # fmt: skip

    start = time.perf_counter()
    ref = neuro_hw.simulate(circuit, stim, steps, hc.DT, weights_every=sched.period * every)
    summarise(hc.recorded_weights(ref), "reference", time.perf_counter() - start)
    truth = hn.train(topo, params, state.copy(), x, t, order)
    del truth
    base = load_target("loihi2")
    for bits in weight_bits:
        target = base if bits == 8 else base.variant(**{"weights.bits": int(bits)})
        start = time.perf_counter()
        program = neuro_hw.compile(circuit, target=target, dt=hc.DT, **hc.compile_options(spec))
        emu = neuro_hw.run(program, stim, steps, backend="emulator", seed=seed,
                           weights_every=sched.period * every)  # fmt: skip
        rules = [f"{r.synapse}.{r.target}: {r.microcode}" for r in program.report.rules]
        summarise(hc.recorded_weights(emu), f"emulator_w{bits}", time.perf_counter() - start, {"rules": rules})
    return out


def lava_check(steps: int = 200, seed: int = 0, kind: str = "motif", n_hidden: int = 8) -> dict[str, Any]:
    """The first ``steps`` steps of the compiled network (:func:`hardware_setup`) on the emulator and on Lava 0.10
    fixed_pt, compared value for value (``neuro_hw.compare``, profile ``exact``)."""
    import neuro_hw
    from neuro_hw.circuits.digits import epoch_order, load_digits_split, one_hot
    from neuro_hw.compare import compare

    sp = load_digits_split()
    topo, spec, state, circuit, sched = hardware_setup(n_hidden, seed=seed, kind=kind)
    program = neuro_hw.compile(circuit, dt=hc.DT, **hc.compile_options(spec))
    n = -(-steps // sched.period)
    order = epoch_order(sp.n_train, 1, seed)[:n]
    stim = sched.present(sp.x_train[order], one_hot(sp.y_train[order]))
    emu = neuro_hw.run(program, stim, steps, backend="emulator", seed=seed)
    lava = neuro_hw.run(program, stim, steps, backend="lava", seed=seed)
    c = compare(lava, emu, "exact")
    return {"steps": steps, "kind": kind, "passed": bool(c.passed and not c.only_in_one),
            "compared_values": int(c.compared_values), "report": c.report()}  # fmt: skip


# ------------------------------------------------------------------------------------------------ evolution


def evolution(population: int = 32, generations: int = 6, seed: int = 0, out: Path | None = None,
              serial: bool = False, workers: int | None = 1, n_levels: int = 4) -> dict[str, Any]:  # fmt: skip
    """(mu, lambda) evolution of the genome ``s1..s{L-1}, r1..r{L-1}`` in [-1, 1] (start 0, sigma 0.7: random
    signs and gains) through :func:`neuro_hw.sweep.run_population` (Dask LocalCluster with ``workers``, or
    ``serial``), fitness = test loss of :func:`~.heterosynaptic_sims.evolve_evaluate`; per generation the
    alignment and DC fraction of its best ``parents`` circuits (read from the population's table)."""
    from neuro_hw.sweep import PopulationSpec, SweepSpec, Variable, run_population
    from neuro_hw.sweep.table import read_csv

    names = [f"s{lv}" for lv in range(1, n_levels)] + [f"r{lv}" for lv in range(1, n_levels)]
    sweep = SweepSpec(name="heterosynaptic_evolution", evaluate="neuro_hw.circuits.heterosynaptic_sims:evolve_evaluate",
                      backends=["reference"], seeds=[seed])  # fmt: skip
    parents = max(2, population // 8)
    spec = PopulationSpec(sweep, [Variable(n, 0.0, lower=-1.0, upper=1.0) for n in names], metric="loss",
                          method="evolution", generations=generations, size=population, parents=parents, sigma=0.7,
                          sigma_decay=0.85, seed=seed)  # fmt: skip
    out_dir = Path(out or "out/heterosynaptic") / "heterosynaptic_evolution"
    start = time.perf_counter()
    result = run_population(spec, out_dir, serial=serial, workers=workers, progress=False, resume=False)
    rows = [r for r in read_csv(result.csv) if r.get("status") == "ok"]
    per_gen = []
    for g in range(generations):
        gen = sorted((r for r in rows if int(r["generation"]) == g), key=lambda r: float(r["metric.loss"]))
        best = gen[:parents]

        def mean(key: str, group: list) -> float:
            vals = [float(r[key]) for r in group if r.get(key) not in ("", None)]
            vals = [v for v in vals if np.isfinite(v)]
            return float(np.mean(vals)) if vals else float("nan")

        per_gen.append({"generation": g, "n": len(gen), "best_loss": mean("metric.loss", best),
                        "mean_loss": mean("metric.loss", gen), "best_alignment": mean("metric.alignment", best),
                        "mean_alignment": mean("metric.alignment", gen),
                        "best_dc_positive": mean("metric.dc_positive", best),
                        "mean_dc_positive": mean("metric.dc_positive", gen),
                        "best_accuracy": mean("metric.accuracy", best),
                        "best_genome": {n: float(best[0][f"param.{n}"]) for n in names} if best else {}})  # fmt: skip
    return {"population": population, "generations": generations, "parents": parents, "seed": seed,
            "defaults": hs.EVOLVE_DEFAULTS, "per_generation": per_gen, "best_params": result.best_params,
            "best_loss": result.best_value, "seconds": time.perf_counter() - start,
            "engine": "serial" if serial else f"LocalCluster({workers} worker(s))"}  # fmt: skip


# ------------------------------------------------------------------------------------------------ plots


def plot_curves(data: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = data["runs"]
    fig, axes = plt.subplots(1, 5, figsize=(20, 3.6))
    for name, run in runs.items():
        s = np.asarray(run["samples"])
        style = "-" if name.startswith("amorphous_seed") else (":" if "matched" in name else "--")
        axes[0].plot(s[1:], run["v_drift_relative"], style, label=name)
        axes[1].plot(s, run["alignment_all"], style, label=name)
        axes[2].plot(s, np.nanmean(np.asarray(list(run["phi_patch"].values())), axis=0), style, label=name)
        axes[3].plot(s, run["dc_positive"], style, label=name)
        axes[4].plot(s, np.mean(np.asarray(list(run["hebbian"].values())), axis=0), style, label=name)
    for ax, title in zip(axes, ["|dV| / start (HS)", "gradient alignment", "phi (mean over levels)",
                                "DC: fraction of neurons with phi > 0", "Hebbian overlap"], strict=True):  # fmt: skip
        ax.set_title(title)
        ax.set_xlabel("updates (samples)")
    axes[0].axhline(0.05, color="k", lw=0.5)
    axes[4].axhline(0.5, color="k", lw=0.5)
    axes[1].legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_flex(data: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.6))
    rts = data["rts"]
    finals = [100 * np.asarray(data["final"][str(r)]) for r in rts]
    a.boxplot(finals)
    a.set_xticks(range(1, len(rts) + 1), [str(r) for r in rts])
    a.axhline(100 * np.mean(data["final"]["original"]), ls="--", color="k", label="never swapped")
    a.set_xlabel("rewire time RT (epochs)")
    a.set_ylabel("final test accuracy (%)")
    a.legend()
    for key, curves in data["curves"].items():
        b.plot(100 * np.mean(np.asarray(curves), axis=0), label=f"RT={key}" if key != "original" else key)
    b.set_xlabel("epoch")
    b.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_meta(data: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    h = np.asarray(data["activities"])
    fig, ax = plt.subplots(figsize=(5, 3.6))
    for i, c in enumerate(data["init"]):
        ax.plot(h, c, color="purple", label="init" if i == 0 else None)
    for key, color in (("history_0.5", "tab:green"), ("history_1.5", "tab:olive")):
        for i, c in enumerate(data[key]["curves"]):
            ax.plot(h, c, color=color, label=key if i == 0 else None)
    ax.axhline(0, color="k", lw=0.5)
    ax.set_xlabel("post activity h")
    ax.set_ylabel("dW (mean over inputs)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_hardware(data: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = ("alignment", "dc_positive", "phi", "accuracy")
    fig, axes = plt.subplots(1, len(keys) + 1, figsize=(18, 3.6))
    for name, run in data["runs"].items():
        s = run["samples"]
        for ax, key in zip(axes, keys, strict=False):
            ax.plot(s, run["monitors"][key], label=name)
            ax.set_title(key)
        axes[-1].plot(s[1:], run["v_drift"], label=name)
    axes[-1].set_title("|dV| per sample (HS)")
    for ax in axes:
        ax.set_xlabel("training samples")
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ------------------------------------------------------------------------------------------------ CLI


def run_stages(args: argparse.Namespace) -> dict[str, Any]:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stages = args.stages.split(",") if args.stages else list(DEFAULT_STAGES)
    unknown = sorted(set(stages) - set(STAGES))
    if unknown:
        raise SystemExit(f"heterosynaptic: unknown stage(s) {unknown}; choose from {', '.join(STAGES)}")
    results: dict[str, Any] = {}

    def save(name: str, data: dict[str, Any]) -> None:
        path = out / f"heterosynaptic_{name}.json"
        path.write_text(json.dumps(data, indent=1, default=float))
        print(f"wrote {path}", flush=True)
        results[name] = data

    if "curves" in stages:
        runs: dict[str, Any] = {}
        every = max(1, args.samples // 20)
        for seed in range(args.seeds):
            runs[f"amorphous_seed{seed}"] = hs.curves("amorphous", args.samples, every, seed)
        for seed in range(args.seeds):
            runs[f"amorphous_matched_seed{seed}"] = hs.curves("amorphous_matched", args.samples, every, seed)
        runs["structured"] = hs.curves("structured", args.samples, every, 0)
        runs["amorphous_blocks"] = hs.curves("amorphous_blocks", args.samples, every, 2)
        for name, r in runs.items():
            print(f"  {name}: alignment {r['alignment_all'][0]:.2f} -> {r['alignment_all'][-1]:.2f}, dc "
                  f"{r['dc_positive'][-1]:.2f}, |dV| {r['v_drift_relative'][-1]:.2f} of start, test "
                  f"{r['test_accuracy']:.3f}", flush=True)  # fmt: skip
        data = {"samples": args.samples, "probe_every": every, "runs": runs}
        save("curves", data)
        plot_curves(data, out / "heterosynaptic_curves.png")
    if "meta" in stages:
        data = hs.metaplasticity()
        save("meta", data)
        plot_meta(data, out / "heterosynaptic_meta.png")
    if "flex" in stages:
        rts = [int(r) for r in args.rts.split(",")]
        data = hs.flexibility(rts, args.after, args.n_train, list(range(args.flex_seeds)))
        save("flex", data)
        plot_flex(data, out / "heterosynaptic_flex.png")
    if "evolution" in stages:
        save("evolution", evolution(args.population, args.generations, out=out, serial=args.serial,
                                    workers=args.workers))  # fmt: skip
    if "hardware" in stages:
        bits = [int(b) for b in args.weight_bits.split(",")]
        data = hardware(args.hw_samples, bits, kind=args.hw_kind)
        name = {"motif": "hardware", "amorphous_blocks": "hardware_amorphous",
                "amorphous": "hardware_amorphous_neurons"}[args.hw_kind]  # fmt: skip
        save(name, data)
        plot_hardware(data, out / f"heterosynaptic_{name}.png")
    if "precision" in stages:
        from neuro_hw.circuits import heterosynaptic_precision as hp

        data = hp.run(out, [int(b) for b in args.precision_weight_bits.split(",")],
                      [int(b) for b in args.precision_trace_bits.split(",")], list(range(args.precision_seeds)),
                      args.hw_samples, serial=args.serial or args.workers is None, workers=args.workers,
                      name=args.precision_name)  # fmt: skip
        print(f"wrote {out / (args.precision_name + '.json')}", flush=True)
        results["precision"] = data
    if "lava" in stages:
        data = lava_check(kind=args.hw_kind)
        names = {"motif": "lava", "amorphous_blocks": "lava_amorphous", "amorphous": "lava_amorphous_neurons"}
        save(names[args.hw_kind], data)
    return results


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--stages", default=None, help=f"comma-separated from {', '.join(STAGES)} "
                        f"(default: {','.join(DEFAULT_STAGES)})")  # fmt: skip
    parser.add_argument("--out", default="out/heterosynaptic", help="folder for the JSON and plots")
    parser.add_argument("--samples", type=int, default=6000, help="curves: online updates per network")
    parser.add_argument("--seeds", type=int, default=1, help="curves: amorphous topologies/seeds 0..N-1")
    parser.add_argument("--rts", default="0,1,5,10,30,50", help="flex: rewire epochs")
    parser.add_argument("--after", type=int, default=30, help="flex: epochs after the swap")
    parser.add_argument("--n-train", type=int, default=300, help="flex: training samples per epoch")
    parser.add_argument("--flex-seeds", type=int, default=3, help="flex: seeds per RT")
    parser.add_argument("--population", type=int, default=32, help="evolution: circuits per generation")
    parser.add_argument("--generations", type=int, default=6, help="evolution: generations")
    parser.add_argument("--workers", type=int, default=1, help="evolution: Dask LocalCluster workers")
    parser.add_argument("--serial", action="store_true", help="evolution: run the population in this process")
    parser.add_argument("--hw-samples", type=int, default=1347, help="hardware: training samples on the emulator")
    parser.add_argument("--weight-bits", default="8,6,5,4", help="hardware: weight widths of the precision sweep")
    parser.add_argument("--precision-weight-bits", default="4,5,6,8", help="precision: weight widths")
    parser.add_argument("--precision-trace-bits", default="5,6,7,8", help="precision: trace widths")
    parser.add_argument("--precision-seeds", type=int, default=3, help="precision: seeds 0..N-1 per width pair")
    parser.add_argument("--precision-name", default="heterosynaptic_precision", help="precision: output file stem")
    parser.add_argument(
        "--hw-kind",
        default="motif",
        choices=("motif", "amorphous_blocks", "amorphous"),
        help="hardware and lava: the motif 64-8-10, the block-amorphous 64-8-8-10 or the neuron-level amorphous "
        "64-8-8-10 (sparse matrices as plasticity masks; topology seed 2)",
    )


def register(sub) -> None:  # noqa: ANN001 - argparse's _SubParsersAction
    """Add the ``heterosynaptic`` subcommand to an argparse subparsers object."""
    parser = sub.add_parser(
        "heterosynaptic",
        help="seed P2: heterosynaptic circuits as gradient machines (reconstruction; curves, metaplasticity, "
        "flexibility, evolution, Loihi 2 emulator with monitors and precision sweep)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arguments(parser)
    parser.set_defaults(func=_command)


def _command(args: argparse.Namespace) -> int:
    run_stages(args)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m neuro_hw.circuits.heterosynaptic_run", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    add_arguments(parser)
    run_stages(parser.parse_args(argv))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
