"""Seed circuit P3 end to end: meta-learning, evaluation on held-out episodes, hardware forms, emulator vs Lava,
precision and speed; every number into ``docs/results/meta_plasticity_<stage>.json``.

``python -m neuro_hw.circuits.meta_plasticity_acceptance <stage> [options]`` (or ``neuro-hw p3 <stage>`` once
wired: :func:`add_parser`, :func:`main`).  Stages, each reading the JSON of the stages before it:

* ``agreement``  -- numpy == the circuit in the float reference, weights after each of the first 20 images;
* ``meta``       -- CMA-ES in float (numpy): BP, FA, eHebb, F_bio and the pool with L1 on the paper's form; FA,
  F_bio's on-chip form and the chip pool on the chip form (:mod:`.meta_plasticity_meta`);
* ``meta-emulator`` -- CMA-ES of the chip pool directly on the fixed-point emulator;
* ``evaluate``   -- every rule on >= 100 evaluation episodes: numpy (paper form, chip form), emulator; the
  alignment angles; the cost of each hardware approximation;
* ``lava``       -- the first 200 steps of an episode, emulator vs Lava 0.10 fixed_pt, every value;
* ``precision``  -- the on-chip F_bio form on emulator variants (weight bits x trace bits), through
  :func:`neuro_hw.sweep.run_sweep`; ``precision-pool`` the same for the chip pool meta-learned on the emulator
  (``meta_plasticity_precision_pool.json``);
* ``speed``      -- 100 evaluation episodes on the emulator (batched) vs the float reference (timed on fewer);
* ``report``     -- the results table and the plots (PNG) from the JSON files.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from neuro_hw.circuits.meta_plasticity_circuit import CHIP_CONFIG, GainBox
from neuro_hw.circuits.meta_plasticity_meta import config_named, meta_episodes, run_meta
from neuro_hw.circuits.meta_plasticity_numpy import (
    EHEBB_SURROGATE,
    HEBB,
    OJA_LOCAL,
    TERM_NAMES,
    NetworkConfig,
    adapt,
    mean_se,
    theta_vector,
)

RESULTS = Path("docs/results")
#: The gain box of every fixed-point run (one compiled Program, one emulator kernel).
STANDARD_BOX = GainBox(0.05, 0.003, 0.003)
BOX_TEXT = "0.05,0.003,0.003"


def _path(stage: str, out: Path = RESULTS) -> Path:
    return out / f"meta_plasticity_{stage}.json"


def _write(stage: str, data: dict[str, Any], out: Path = RESULTS) -> Path:
    from neuro_hw.result import package_versions

    out.mkdir(parents=True, exist_ok=True)
    data = {"stage": stage, "versions": package_versions(), **data}
    path = _path(stage, out)
    path.write_text(json.dumps(data, indent=1, default=_json_default))
    return path


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, (np.floating, np.integer)):
        return obj.item()
    raise TypeError(type(obj).__name__)


def _read(stage: str, out: Path = RESULTS) -> dict[str, Any]:
    path = _path(stage, out)
    if not path.exists():
        raise SystemExit(f"{path} is missing: run the stage '{stage}' first")
    return json.loads(path.read_text())


# -- agreement --------------------------------------------------------------------------------------------------
def stage_agreement(args: argparse.Namespace) -> dict[str, Any]:
    import neuro_hw
    from neuro_hw.circuits import meta_plasticity_circuit as mc
    from neuro_hw.circuits.meta_plasticity_numpy import init_weights

    ep = meta_episodes(range(args.episodes))
    n = 20
    rows = []
    for theta in ({0: 0.03}, {0: 0.03, 9: 0.002}, {0: 0.02, HEBB: -0.001, OJA_LOCAL: 0.003}):
        th = theta_vector(theta)
        for activations in ("exact", "hardware"):
            cfg = CHIP_CONFIG.with_(activation=activations)
            circuit, schedule, weights = mc.episode_circuit(cfg, th, ep)
            stim = mc.stimuli(schedule, ep, 5, n)
            ref = neuro_hw.simulate(
                circuit,
                stim,
                mc.episode_steps(schedule, n),
                mc.DT,
                weights=weights,
                weights_every=schedule.period,
                activations=activations,
            )
            ws, bs = init_weights(cfg, ep.seeds)
            truth = adapt(cfg, th, ep, ws=mc.initial_weights(th, ws), bs=bs, record_first=n, n_samples=n)
            sl = slice(mc.sample_record_index(0), mc.sample_record_index(n - 1) + 1)
            diff = max(
                float(np.abs(ref.weights[f"w{k + 1}.w"][:, sl] - truth.weights_first[k]).max()) for k in range(5)
            )
            rows.append({"theta": {str(k): v for k, v in theta.items()}, "activations": activations,
                         "max_abs_weight_difference": diff, "episodes": args.episodes, "images": n})  # fmt: skip
            print(f"  theta {theta} {activations}: max |W_numpy - W_reference| = {diff:.2e}", flush=True)
    return {"rows": rows}


# -- meta-learning in float -------------------------------------------------------------------------------------
#: name -> (form, terms, start theta, L1 weight, generations)
FLOAT_ARMS: dict[str, tuple[str, str, dict[int, float], float, int]] = {
    "BP": ("paper+feedback=bp", "0", {0: 0.03}, 0.0, 4),
    "FA": ("paper", "0", {0: 0.03}, 0.0, 4),
    "eHebb": ("paper", "0,2", {0: 0.03}, 0.0, 6),
    "F_bio": ("paper", "0,2,9", {0: 0.03}, 0.0, 8),
    "pool": ("paper", "0,1,2,3,4,5,6,7,8,9", {0: 0.03}, 0.005, 12),
    "FA_chip": ("chip", "0", {0: 0.03}, 0.0, 4),
    "F_bio_chip": ("chip", "0,9", {0: 0.03}, 0.0, 6),
    "chip_pool": ("chip", f"0,{HEBB},{OJA_LOCAL}", {0: 0.03}, 0.005, 8),
    "pool_narrow": ("paper", "0,1,2,3,4,5,6,7,8,9", {0: 0.03}, 0.005, 12),
}
#: CMA-ES initial step of an arm (in the sinh coordinates x; default 1.5): ``pool_narrow`` is the pool from the
#: same start with a narrower search (the wide one stayed at the loss of FA).
ARM_SIGMA = {"pool_narrow": 0.5}
#: The chip arms search inside the fixed-point Program's gain box (:data:`STANDARD_BOX`), so that the float and
#: the emulator columns run the same rule (F9 local = H + O with thetaH = thetaO = theta9).
CHIP_LIMITS = {0: STANDARD_BOX.theta0, 9: min(STANDARD_BOX.hebb, STANDARD_BOX.oja), HEBB: STANDARD_BOX.hebb,
               OJA_LOCAL: STANDARD_BOX.oja}  # fmt: skip


def stage_meta(args: argparse.Namespace) -> dict[str, Any]:
    arms = args.arms.split(",") if args.arms else list(FLOAT_ARMS)
    previous = _read("meta", args.out).get("arms", {}) if _path("meta", args.out).exists() else {}
    out = dict(previous)
    for name in arms:
        form, terms, start, lam, gens = FLOAT_ARMS[name]
        t0 = time.perf_counter()
        limits = CHIP_LIMITS if form.startswith("chip") else None
        run = run_meta(f"p3_{name}", form, terms, start=start, lam=lam, backend="reference", episodes=args.episodes,
                       validation=args.validation, generations=max(1, int(gens * args.budget)), size=args.size,
                       sigma=ARM_SIGMA.get(name, 1.5), restarts=args.restarts, out_dir=str(args.work / "meta"),
                       serial=args.serial, workers=args.workers, limits=limits)  # fmt: skip
        out[name] = run.to_dict()
        best = min(run.restarts, key=lambda r: r["validation_loss"])
        print(f"  {name}: theta {_theta_text(run.theta)}; validation loss {best['validation_loss']:.3f}, accuracy "
              f"{best['validation_accuracy']:.3f} ({time.perf_counter() - t0:.0f} s)", flush=True)  # fmt: skip
        _write("meta", {"arms": out, "episodes": args.episodes, "validation": args.validation}, args.out)
    return {"arms": out, "episodes": args.episodes, "validation": args.validation}


def stage_meta_emulator(args: argparse.Namespace) -> dict[str, Any]:
    floats = _read("meta", args.out)["arms"]
    start_theta = floats["chip_pool"]["theta"] if "chip_pool" in floats else floats["FA_chip"]["theta"]
    start = {0: min(start_theta[0], STANDARD_BOX.theta0 * 0.95)}
    for r, limit in ((HEBB, STANDARD_BOX.hebb), (OJA_LOCAL, STANDARD_BOX.oja)):
        start[r] = float(np.clip(start_theta[r], 0.0, 0.95 * limit))  # the Program's thetaH, thetaO are >= 0
    run = run_meta("p3_chip_pool_emulator", "chip", f"0,{HEBB},{OJA_LOCAL}", start=start, lam=0.005,
                   backend="emulator", box=BOX_TEXT, episodes=args.episodes, validation=args.validation,
                   generations=args.generations, size=args.size, restarts=1, out_dir=str(args.work / "meta"),
                   serial=args.serial, workers=args.workers, limits=CHIP_LIMITS)  # fmt: skip
    print(f"  chip pool on the emulator: theta {_theta_text(run.theta)}", flush=True)
    return {"arm": run.to_dict(), "box": BOX_TEXT, "start": {str(k): v for k, v in start.items()}}


def _theta_text(theta: Sequence[float]) -> str:
    return ", ".join(f"{TERM_NAMES[r].split()[0]}={v:+.3g}" for r, v in enumerate(theta) if v)


# -- evaluation -------------------------------------------------------------------------------------------------
def _numpy_eval(config: NetworkConfig, theta: Sequence[float], seeds: Sequence[int]) -> dict[str, Any]:
    ep = meta_episodes(seeds, "eval")
    t0 = time.perf_counter()
    with np.errstate(all="ignore"):
        res = adapt(config, theta_vector(theta), ep)
    acc = np.where(np.isfinite(res.query_loss), res.query_accuracy, 0.2)
    m, se = mean_se(acc)
    alpha = res.query_alpha
    return {"accuracy": m, "se": se, "per_episode": acc.tolist(), "alpha": np.nanmean(alpha, axis=0).tolist(),
            "alpha_se": (np.nanstd(alpha, axis=0, ddof=1) / math.sqrt(len(acc))).tolist(),
            "diverged": int(np.sum(~np.isfinite(res.query_loss))), "seconds": time.perf_counter() - t0}  # fmt: skip


def _emulator_eval(theta: Sequence[float], seeds: Sequence[int], target: object = None) -> dict[str, Any]:
    from neuro_hw.circuits.meta_plasticity_run import run_emulator

    ep = meta_episodes(seeds, "eval")
    run = run_emulator(CHIP_CONFIG, theta_vector(theta), ep, STANDARD_BOX, target=target)
    m, se = mean_se(run.query_accuracy)
    alpha = np.nanmean(run.query_alpha, axis=0).tolist()
    return {"accuracy": m, "se": se, "per_episode": run.query_accuracy.tolist(), "alpha": alpha,
            "seconds": run.seconds, "steps": run.steps}  # fmt: skip


def clip_to_box(theta: Sequence[float], box: GainBox = STANDARD_BOX) -> tuple[np.ndarray, bool]:
    """``theta`` with its chip gains clipped into ``box`` (and whether anything was clipped); theta0, thetaH and
    thetaO are clipped to >= 0 (the Program's formats: its ``me`` gain connection is excitatory-only)."""
    th = theta_vector(theta).copy()
    clipped = False
    h, o = th[9] + th[HEBB], th[9] + th[OJA_LOCAL]
    if th[9]:
        th[HEBB], th[OJA_LOCAL], th[9] = h, o, 0.0
    for r, limit in ((0, box.theta0), (HEBB, box.hebb), (OJA_LOCAL, box.oja)):
        # the box's Program is compiled from its corner rule, where me = theta0 * I and mh = -hebb * I are
        # excitatory- and inhibitory-only connections, so theta0 < 0 or thetaH < 0 (anti-Hebbian) does not fit
        # their weight formats (refused by the per-trial weights)
        if not 0.0 <= th[r] <= limit:
            th[r], clipped = float(np.clip(th[r], 0.0, limit)), True
    if th[3] != box.theta3:
        th[3], clipped = box.theta3, True
    return th, clipped


EVALUATE_RULES = ("BP", "FA", "eHebb", "F_bio", "pool_float", "pool_narrow", "pool_fixed", "costs")


def stage_evaluate(args: argparse.Namespace) -> dict[str, Any]:
    """The results table: each rule of ``--rules`` (default all) on evaluation episodes ``0..episodes-1`` in float
    (paper form; chip form with the chip arm's theta) and, with the emulator, the chip form on the fixed-point
    emulator (episodes ``0..emulator_episodes-1``); ``costs``: each hardware approximation at F_bio's theta.
    Rows of other rules already in the JSON (same episode count) are kept."""
    meta = _read("meta", args.out)["arms"]
    emu_meta = _read("meta_emulator", args.out)["arm"] if _path("meta_emulator", args.out).exists() else None
    seeds = list(range(args.episodes))
    emu_seeds = seeds[: args.emulator_episodes] if args.emulator_episodes else seeds
    wanted = [r.strip() for r in args.rules.split(",") if r.strip()] if args.rules else list(EVALUATE_RULES)
    unknown = sorted(set(wanted) - set(EVALUATE_RULES))
    if unknown:
        raise SystemExit(f"unknown rules {unknown}; choose from {EVALUATE_RULES}")
    previous = _read("evaluate", args.out) if _path("evaluate", args.out).exists() else {}
    keep = previous.get("episodes") == len(seeds)
    rules: dict[str, dict[str, Any]] = dict(previous.get("rules", {})) if keep else {}
    costs: list[dict[str, Any]] = list(previous.get("approximations", [])) if keep else []
    paper, chip = config_named("paper"), CHIP_CONFIG

    def save() -> None:
        _write("evaluate", {"episodes": len(seeds), "rules": rules, "approximations": costs}, args.out)

    def run(name: str, theta: Sequence[float] | None, paper_form: NetworkConfig | None,
            chip_theta: Sequence[float] | None, note: str = "") -> None:  # fmt: skip
        if name not in wanted:
            return
        if theta is None and chip_theta is None:
            print(f"  {name}: no meta-learned theta yet (skipped)", flush=True)
            return
        row: dict[str, Any] = {"theta": list(map(float, theta if theta is not None else chip_theta)), "note": note}
        if paper_form is not None and theta is not None:
            row["float_paper"] = _numpy_eval(paper_form, theta, seeds)
        if chip_theta is not None:
            row["chip_theta"] = list(map(float, chip_theta))
            row["float_chip"] = _numpy_eval(chip, chip_theta, seeds)
            if args.emulator:
                boxed, clipped = clip_to_box(chip_theta)
                row["emulator_theta"] = boxed.tolist()
                row["emulator_clipped_to_box"] = clipped
                row["fixed_emulator"] = _emulator_eval(boxed, emu_seeds)
                if len(emu_seeds) < len(seeds):
                    row["float_chip_same_episodes"] = _numpy_eval(chip, chip_theta, emu_seeds)
        rules[name] = row
        parts = [f"{k} {row[k]['accuracy']:.3f}" for k in ("float_paper", "float_chip", "fixed_emulator") if k in row]
        print(f"  {name}: " + ", ".join(parts), flush=True)
        save()

    th = {name: np.array(meta[name]["theta"]) for name in meta}
    run("BP", th.get("BP"), paper.with_(feedback="bp"), None, "weight transport: not on chip")
    run("FA", th.get("FA"), paper, th.get("FA_chip"))
    run("eHebb", th.get("eHebb"), paper, None, "F2 needs e_{l-1} at the synapse: not on chip")
    run("F_bio", th.get("F_bio"), paper, th.get("F_bio_chip"),
        "chip form: F0 + F9 local (F2 dropped), theta re-learned on the chip form")  # fmt: skip
    run("pool_float", th.get("pool"), paper, th.get("chip_pool"),
        "chip column: the chip pool (F0, H, O) meta-learned in float on the chip form")  # fmt: skip
    run("pool_narrow", th.get("pool_narrow"), paper, None, "the pool searched with a narrower CMA-ES step (0.5)")
    if emu_meta is not None:
        run("pool_fixed", None, None, emu_meta["theta"], "the chip pool (F0, H, O) meta-learned on the emulator")
    if "costs" not in wanted or "F_bio" not in th:
        return {"episodes": len(seeds), "rules": rules, "approximations": costs}
    # the cost of each hardware approximation, at F_bio's float theta (numpy, the same episodes)
    f_bio = theta_vector(th["F_bio"])
    no_f2 = f_bio.copy()
    no_f2[2] = 0.0
    s2 = no_f2.copy()
    s2[EHEBB_SURROGATE] = f_bio[2]
    steps = [
        ("F_bio, paper form", paper, f_bio),
        ("output softmax -> clipped (e = clip(z,0,1) - onehot)", paper.with_(output="clipped"), f_bio),
        ("output softmax -> linear (e = z - onehot)", paper.with_(output="linear"), f_bio),
        ("softplus -> hard softplus and its derivative", paper.with_(activation="hardware"), f_bio),
        ("weight bounds (0.5 hidden, 1 output) and y clip 2", paper.with_(w_max=CHIP_CONFIG.w_max, y_clip=2.0), f_bio),
        ("Oja subspace -> single-neuron (local) form", paper.with_(oja="local"), f_bio),
        ("F2 dropped (no presynaptic error on chip)", paper, no_f2),
        ("F2 -> S2 = -theta2 e_l^2 B_l (needs B at the synapse)", paper, s2),
        ("all chip forms, F2 dropped", chip, no_f2),
        ("all chip forms, F2 -> S2", chip, s2),
    ]
    costs = []
    for label, cfg, theta in steps:
        r = _numpy_eval(cfg, theta, seeds)
        costs.append({"change": label, "accuracy": r["accuracy"], "se": r["se"], "diverged": r["diverged"],
                      "alpha": r["alpha"]})  # fmt: skip
        print(f"  cost: {label}: {r['accuracy']:.3f} +- {r['se']:.3f} (diverged {r['diverged']})", flush=True)
        save()
    return {"episodes": len(seeds), "rules": rules, "approximations": costs}


# -- Lava -------------------------------------------------------------------------------------------------------
def stage_lava(args: argparse.Namespace) -> dict[str, Any]:
    from neuro_hw.circuits.meta_plasticity_run import lava_check

    out = lava_check(theta_vector({0: 0.03, HEBB: 0.001, OJA_LOCAL: 0.002}), STANDARD_BOX, args.steps)
    print(f"  emulator vs Lava, {out['steps']} steps: {'bit-exact' if out['exact'] else 'DIFFERS'} "
          f"({out['values']} values)", flush=True)  # fmt: skip
    return out


# -- precision sweep --------------------------------------------------------------------------------------------
def evaluate_precision(params: dict[str, Any], target: Any, backend: str, seeds: list[int]) -> list[dict[str, Any]]:
    """Sweep evaluation: the query accuracy of rule ``params["theta"]`` (comma-separated 13 values) on evaluation
    episodes ``seeds`` (numpy chip form on ``reference``, the emulator variant ``target`` otherwise)."""
    theta = theta_vector([float(v) for v in str(params["theta"]).split(",")])
    ep = meta_episodes(seeds, "eval")
    if backend == "reference":
        with np.errstate(all="ignore"):
            acc = adapt(CHIP_CONFIG, theta, ep).query_accuracy
    else:
        from neuro_hw.circuits.meta_plasticity_run import run_emulator

        acc = run_emulator(CHIP_CONFIG, theta, ep, STANDARD_BOX, target=target).query_accuracy
    return [{"accuracy": float(a)} for a in acc]


def stage_precision(args: argparse.Namespace, rule: str = "F_bio_chip") -> dict[str, Any]:
    """The precision sweep of ``rule``: ``F_bio_chip`` (F_bio's chip form, clipped into the box; stage
    ``precision``) or ``pool_fixed`` (the chip pool meta-learned on the emulator; stage ``precision-pool``)."""
    from neuro_hw.sweep import PlotSpec, SweepSpec, run_sweep

    if rule == "F_bio_chip":
        theta, _ = clip_to_box(_read("meta", args.out)["arms"]["F_bio_chip"]["theta"])
        name = "meta_plasticity_precision"
    elif rule == "pool_fixed":
        theta, _ = clip_to_box(_read("meta_emulator", args.out)["arm"]["theta"])
        name = "meta_plasticity_precision_pool"
    else:
        raise ValueError(f"unknown precision rule {rule!r} (F_bio_chip or pool_fixed)")
    spec = SweepSpec(
        name=name,
        evaluate="neuro_hw.circuits.meta_plasticity_acceptance:evaluate_precision",
        params={"theta": ",".join(repr(float(v)) for v in theta)},
        grid={
            "target.weights.bits": [int(b) for b in args.weight_bits.split(",")],
            "target.learning.trace_bits": [int(b) for b in args.trace_bits.split(",")],
        },  # fmt: skip
        backends=["reference", "emulator"],
        baseline="reference",
        seeds=list(range(args.episodes)),
        plots=[PlotSpec("precision", "accuracy", file=f"{name}.png")],
    )
    result = run_sweep(spec, str(args.out), serial=args.serial, workers=args.workers, progress=False)
    from neuro_hw.sweep import read_csv

    # one row per (backend, widths, episode): a table resumed across emulator versions holds a point's episodes
    # once per version (identical accuracies were measured for 64 such pairs); the last row counts
    latest: dict[tuple[str, str, str, str], dict[str, Any]] = {}
    for r in read_csv(result.csv):
        if r.get("status") == "ok":
            widths = (r.get("param.target.weights.bits", ""), r.get("param.target.learning.trace_bits", ""))
            latest[(r["backend"], *widths, str(r["seed"]))] = r
    rows = list(latest.values())
    ref = [float(r["metric.accuracy"]) for r in rows if r["backend"] == "reference"]
    table: dict[tuple[int, int], list[float]] = {}
    for r in rows:
        if r["backend"] == "emulator":
            key = (int(float(r["param.target.weights.bits"])), int(float(r["param.target.learning.trace_bits"])))
            table.setdefault(key, []).append(float(r["metric.accuracy"]))
    float_acc = float(np.mean(ref)) if ref else float("nan")
    points = [{"weight_bits": w, "trace_bits": t, "accuracy": float(np.mean(v)), "se": mean_se(np.array(v))[1],
               "fraction_of_float": float(np.mean(v)) / float_acc} for (w, t), v in sorted(table.items())]  # fmt: skip
    keep = [p for p in points if p["fraction_of_float"] >= 0.9]
    fewest = min(keep, key=lambda p: (p["weight_bits"] + p["trace_bits"], p["weight_bits"])) if keep else None
    return {"rule": rule, "theta": theta.tolist(), "float_accuracy": float_acc, "points": points,
            "fewest_bits_90": fewest, "episodes": args.episodes, "csv": str(result.csv),
            "failures": len(result.failures)}  # fmt: skip


# -- speed ------------------------------------------------------------------------------------------------------
def stage_speed(args: argparse.Namespace) -> dict[str, Any]:
    from neuro_hw.circuits.meta_plasticity_run import compiled_program, run_emulator, run_reference

    theta = theta_vector({0: 0.03})
    compiled_program(CHIP_CONFIG, STANDARD_BOX)
    ep = meta_episodes(range(args.episodes), "eval")
    t0 = time.perf_counter()
    emu = run_emulator(CHIP_CONFIG, theta, ep, STANDARD_BOX)
    emu_s = time.perf_counter() - t0
    small = ep.subset(slice(0, args.reference_episodes))
    t0 = time.perf_counter()
    run_reference(CHIP_CONFIG.with_(activation="exact"), theta, small, GainBox.of(theta))
    ref_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    with np.errstate(all="ignore"):
        adapt(CHIP_CONFIG, theta, ep)
    numpy_s = time.perf_counter() - t0
    per_ref = ref_s / len(small)
    out = {
        "episodes": len(ep), "steps_per_episode": emu.steps, "emulator_seconds": emu_s,
        "reference_seconds_per_episode": per_ref, "reference_episodes_timed": len(small),
        "reference_seconds_for_100_estimated": per_ref * 100, "numpy_seconds": numpy_s,
        "ratio_reference_over_emulator": per_ref * len(ep) / emu_s, "threads": os.environ.get("NEURO_HW_THREADS", ""),
        "cpus": len(os.sched_getaffinity(0)), "load_average": os.getloadavg(),
    }  # fmt: skip
    print(f"  {len(ep)} episodes: emulator {emu_s:.1f} s, reference {per_ref:.1f} s/episode "
          f"(~{per_ref * 100:.0f} s for 100), numpy {numpy_s:.1f} s", flush=True)  # fmt: skip
    return out


# -- quick ------------------------------------------------------------------------------------------------------
def stage_quick(args: argparse.Namespace) -> int:
    """The four baselines with the meta-learned theta of ``<out>/meta_plasticity_meta.json`` on evaluation
    episodes ``0..episodes-1`` in float64 (numpy ground truth, paper form); prints a table, writes nothing."""
    path = _path("meta", args.out)
    if not path.exists():
        print(f"{path} is missing: run 'meta' first (or pass --out to the folder holding it)")
        return 1
    meta = _read("meta", args.out)["arms"]
    seeds = list(range(args.episodes))
    paper = config_named("paper")
    forms = {"BP": paper.with_(feedback="bp"), "FA": paper, "eHebb": paper, "F_bio": paper}
    print(f"query accuracy over {len(seeds)} held-out digits episodes (5-way, K=50 online), float64, paper form:")
    for name, cfg in forms.items():
        if name not in meta:
            print(f"  {name:<6} not in {path}")
            continue
        r = _numpy_eval(cfg, meta[name]["theta"], seeds)
        print(f"  {name:<6} {100 * r['accuracy']:5.1f} ± {100 * r['se']:.1f} %   alpha_1..4 "
              + " ".join(f"{a:4.0f}" for a in r["alpha"]) + f"   theta {_theta_text(meta[name]['theta'])}"
              + f"  ({r['seconds']:.1f} s)", flush=True)  # fmt: skip
    return 0


# -- CLI --------------------------------------------------------------------------------------------------------
STAGES = {
    "agreement": stage_agreement,
    "meta": stage_meta,
    "meta-emulator": stage_meta_emulator,
    "evaluate": stage_evaluate,
    "lava": stage_lava,
    "precision": stage_precision,
    "precision-pool": lambda args: stage_precision(args, rule="pool_fixed"),
    "speed": stage_speed,
}


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``p3`` command to a subparsers object (``neuro-hw meta-plasticity`` is
    :func:`.meta_plasticity_cli.register`)."""
    parser = subparsers.add_parser("p3", help="seed circuit P3: meta-learned plasticity (issue 13)",
                                   description=__doc__.split("\n\n")[0])  # fmt: skip
    arguments(parser)
    parser.set_defaults(func=run)
    return parser


def arguments(parser: argparse.ArgumentParser, default_stage: str | None = None) -> None:
    """The options of every stage (``default_stage``: the stage is optional and defaults to it)."""
    stage_help = (
        "quick: the four baselines with the meta-learned theta on 20 held-out episodes in float (seconds); "
        "agreement: numpy vs the IR circuit in the float reference; meta: CMA-ES in float; meta-emulator: CMA-ES "
        "on the fixed-point emulator; evaluate: the results table on held-out episodes; lava: emulator vs Lava; "
        "precision: weight x trace bits (F_bio's chip form); precision-pool: the same for the pool meta-learned on "
        "the emulator; speed: emulator vs reference; report: table and plots from the JSON"
    )
    choices = ["quick", *STAGES, "report"]
    if default_stage is None:
        parser.add_argument("stage", choices=choices, help=stage_help)
    else:
        parser.add_argument("stage", nargs="?", default=default_stage, choices=choices,
                            help=stage_help + f" (default: {default_stage})")  # fmt: skip
    parser.add_argument("--out", type=Path, default=RESULTS,
                        help="folder of the results JSON and plots (default: docs/results)")  # fmt: skip
    parser.add_argument("--work", type=Path, default=Path("out/meta_plasticity"),
                        help="folder of the resumable sweep tables (default: out/meta_plasticity)")  # fmt: skip
    parser.add_argument("--episodes", type=int, default=None,
                        help="episodes: held-out episodes to evaluate, or meta-training episodes per candidate "
                        f"(default per stage: {DEFAULT_EPISODES})")  # fmt: skip
    parser.add_argument("--validation", type=int, default=16,
                        help="meta: episodes re-evaluating each restart's best (default 16)")  # fmt: skip
    parser.add_argument("--size", type=int, default=8, help="meta, meta-emulator: CMA-ES population size (default 8)")
    parser.add_argument("--restarts", type=int, default=1, help="meta: CMA-ES restarts per arm (default 1)")
    parser.add_argument("--budget", type=float, default=1.0,
                        help="meta: factor on each arm's CMA-ES generations (default 1.0; see FLOAT_ARMS)")  # fmt: skip
    parser.add_argument("--generations", type=int, default=10, help="meta-emulator: CMA-ES generations (default 10)")
    parser.add_argument("--arms", default="",
                        help=f"meta: comma-separated arms to run (default all: {','.join(FLOAT_ARMS)})")  # fmt: skip
    parser.add_argument("--rules", default="",
                        help=f"evaluate: comma-separated rules (default all: {','.join(EVALUATE_RULES)})")  # fmt: skip
    parser.add_argument("--emulator-episodes", type=int, default=None,
                        help="evaluate: episodes of the emulator column (default: --episodes)")  # fmt: skip
    parser.add_argument("--no-emulator", dest="emulator", action="store_false",
                        help="evaluate: float columns only (no fixed-point emulator runs)")  # fmt: skip
    parser.add_argument("--steps", type=int, default=200, help="lava: steps compared value by value (default 200)")
    parser.add_argument("--weight-bits", default="5,6,7,8",
                        help="precision: comma-separated weight widths (default 5,6,7,8)")  # fmt: skip
    parser.add_argument("--trace-bits", default="7",
                        help="precision: comma-separated trace widths (default 7, Loihi 2's)")  # fmt: skip
    parser.add_argument("--reference-episodes", type=int, default=2,
                        help="speed: episodes timed in the float reference (default 2)")  # fmt: skip
    parser.add_argument("--serial", action="store_true",
                        help="meta, precision: run the sweep tasks in this process (no Dask LocalCluster)")  # fmt: skip
    parser.add_argument("--workers", type=int, default=None,
                        help="meta, precision: Dask LocalCluster workers (default: the cores)")  # fmt: skip


_arguments = arguments


DEFAULT_EPISODES = {
    "quick": 20,
    "agreement": 3,
    "meta": 16,
    "meta-emulator": 8,
    "evaluate": 100,
    "precision": 100,
    "precision-pool": 32,
    "speed": 100,
}


def run(args: argparse.Namespace) -> int:
    """Run ``args.stage`` and write its JSON (``report``: print the table and draw the plots)."""
    if args.episodes is None:
        args.episodes = DEFAULT_EPISODES.get(args.stage, 32)
    args.work.mkdir(parents=True, exist_ok=True)
    if args.stage == "report":
        from neuro_hw.circuits.meta_plasticity_report import report

        print(report(args.out))
        return 0
    if args.stage == "quick":
        return stage_quick(args)
    start = time.perf_counter()
    data = STAGES[args.stage](args)
    data["seconds"] = time.perf_counter() - start
    data["command"] = f"python -m neuro_hw.circuits.meta_plasticity_acceptance {args.stage} --episodes {args.episodes}"
    name = args.stage.replace("-", "_")
    path = _write(name, data, args.out)
    print(f"written to {path} ({data['seconds']:.0f} s)")
    return 0


main = run


def cli(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m neuro_hw.circuits.meta_plasticity_acceptance",
                                     description=__doc__.split("\n\n")[0])  # fmt: skip
    _arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(cli())
