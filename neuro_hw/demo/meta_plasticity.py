"""Demo section: meta-learned plasticity rules with random feedback (seed P3), in float and on Loihi 2 fixed point.

Shervani-Tabar & Rosenbaum (Nat. Commun. 2023), as reconstructed in docs/meta-plasticity.md: a 64-170-130-100-70-5
network learns a 5-way digits task online (50 images per class, seen once) with ``dW = sum_r theta_r F^r`` from a
pool of local terms, errors sent back through fixed random matrices ``B``.  The rules' ``theta`` are the ones
meta-learned (CMA-ES) and committed in ``docs/results/meta_plasticity_meta.json`` and
``meta_plasticity_meta_emulator.json``; nothing is meta-learned here.  On identical held-out episodes:

* **float, paper form** (numpy ground truth; softmax output, exact softplus, subspace Oja): BP, FA and F_bio;
* **float, chip form** (clipped output, hard softplus, local Oja, bounded weights; the IR circuit in the float64
  reference equals it to 1e-16, docs/meta-plasticity.md §2) and **fixed point** (the circuit compiled for Loihi 2
  on the bit-exact emulator, every rule of the gain box as per-trial weights of one Program) for the rules the
  learning engine can express: FA, F_bio's chip form and the chip pool meta-learned on the emulator;
* **expressibility**: F_bio's eHebb term F2 offered to the circuit builder (refused, with the reason);
* **exact check**: the first ``lava_steps`` steps of the compiled Program on the emulator and on Lava;
* **precision sweep** (:mod:`neuro_hw.sweep`): query accuracy of F_bio's chip form against weight and trace bits,
  the float chip form as the baseline (one emulator kernel serves every width).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from neuro_hw.demo.model import Claim, ExactCheck, Figure, Section, Table, compile_table, exact_check, section_runner

#: The committed meta-learning results (the repository's docs/results).
RESULTS = Path(__file__).resolve().parents[2] / "docs" / "results"


@dataclass(frozen=True)
class MetaPlasticitySize:
    """``episodes``: held-out episodes per rule and form; the sweep runs ``sweep_episodes`` episodes per width."""

    episodes: int
    sweep_weight_bits: tuple[int, ...]
    sweep_trace_bits: tuple[int, ...]
    sweep_episodes: int
    lava_steps: int


QUICK = MetaPlasticitySize(16, (6, 8), (7,), 4, 30)
FULL = MetaPlasticitySize(32, (5, 6, 7, 8), (5, 6, 7, 8), 16, 200)
#: Fewest held-out episodes at which a claim on an accuracy difference is decided (the s.e. of one rule's accuracy
#: over 4 episodes is 5-8 points here).
DECIDE_EPISODES = 16


def committed_rules(results: Path = RESULTS) -> dict[str, np.ndarray]:
    """The meta-learned ``theta`` (13-vectors) of the committed runs: ``BP``, ``FA``, ``F_bio`` (paper form, float),
    ``FA_chip``, ``F_bio_chip`` (chip form, float) and ``pool_fixed`` (the chip pool meta-learned on the emulator).
    """
    from neuro_hw.circuits.meta_plasticity_numpy import theta_vector
    from neuro_hw.errors import InputError

    rules: dict[str, np.ndarray] = {}
    for stage, key in (("meta", "arms"), ("meta_emulator", "arm")):
        path = results / f"meta_plasticity_{stage}.json"
        if not path.exists():
            raise InputError(f"{path} is missing: the demo reads the committed meta-learned rules", field="theta")
        data = json.loads(path.read_text())[key]
        if stage == "meta_emulator":
            rules["pool_fixed"] = theta_vector(data["theta"])
            continue
        for name in ("BP", "FA", "F_bio", "FA_chip", "F_bio_chip"):
            if name not in data:
                raise InputError(f"{path}: arm {name!r} missing (arms: {sorted(data)})", field=name)
            rules[name] = theta_vector(data[name]["theta"])
    return rules


def _cell(acc: np.ndarray) -> str:
    from neuro_hw.circuits.meta_plasticity_numpy import mean_se

    m, se = mean_se(acc)
    return f"{100 * m:.1f} ± {100 * se:.1f}"


def _theta_text(theta: np.ndarray) -> str:
    from neuro_hw.circuits.meta_plasticity_numpy import TERM_NAMES

    return ", ".join(f"{TERM_NAMES[r].split()[0]} {v:+.3g}" for r, v in enumerate(theta) if v)


def _f2_refusal(f_bio: np.ndarray) -> str:
    """The circuit builder's answer to F_bio's theta (with F2): its refusal, or '' if it built."""
    from neuro_hw.circuits.meta_plasticity_circuit import CHIP_CONFIG, build_circuit
    from neuro_hw.circuits.meta_plasticity_numpy import init_weights
    from neuro_hw.errors import RuleError

    ws, bs = init_weights(CHIP_CONFIG, [0])
    try:
        build_circuit(CHIP_CONFIG, f_bio, [w[0] for w in ws], [b[0] for b in bs])
    except RuleError as err:
        return str(err)
    return ""


def _exact_check(steps: int) -> ExactCheck:
    """The box's Program as compiled (meta-training episode 0's weights, the box's corner rule) on held-out episode
    0's images, emulator vs Lava."""
    from neuro_hw.circuits.meta_plasticity_acceptance import STANDARD_BOX
    from neuro_hw.circuits.meta_plasticity_circuit import CHIP_CONFIG, stimuli
    from neuro_hw.circuits.meta_plasticity_meta import meta_episodes
    from neuro_hw.circuits.meta_plasticity_run import compiled_program

    program, schedule = compiled_program(CHIP_CONFIG, STANDARD_BOX)
    stim = stimuli(schedule, meta_episodes([0], "eval"), CHIP_CONFIG.sizes[-1], -(-steps // schedule.period))
    return exact_check(program, stim, steps, 0)


@section_runner
def run_section(out_dir: Path, full: bool, engine_options: dict | None, progress: bool) -> Section:
    """Run the section and write its files under ``out_dir``."""
    from tqdm.auto import tqdm

    from neuro_hw.circuits.meta_plasticity_acceptance import STANDARD_BOX, clip_to_box
    from neuro_hw.circuits.meta_plasticity_circuit import CHIP_CONFIG
    from neuro_hw.circuits.meta_plasticity_meta import config_named, meta_episodes
    from neuro_hw.circuits.meta_plasticity_numpy import adapt
    from neuro_hw.circuits.meta_plasticity_run import compiled_program, run_emulator
    from neuro_hw.demo.precision import precision_sweep

    size = FULL if full else QUICK
    rules = committed_rules()
    section = Section(
        "meta-plasticity",
        "Seed P3: meta-learned plasticity rules with random feedback (Shervani-Tabar & Rosenbaum 2023)",
        "A 64-170-130-100-70-5 network learns 5-way digits episodes online (K=50, one pass) with dW = sum_r "
        "theta_r F^r and errors sent back through fixed random B (feedback alignment); theta meta-learned by CMA-ES "
        "(docs/meta-plasticity.md, the committed runs). Float: the numpy ground truth in the paper's form and in the "
        "chip form; fixed point: the chip form compiled for Loihi 2 on the bit-exact emulator, one Program for every "
        "rule of its gain box.",
        seeds=list(range(size.episodes)),
    )
    stages = tqdm(total=4, desc="meta-plasticity: float, emulator, Lava check, sweep", disable=not progress,
                  leave=False)  # fmt: skip
    ep = meta_episodes(range(size.episodes), "eval")
    paper = config_named("paper")
    float_paper: dict[str, np.ndarray] = {}
    with np.errstate(all="ignore"):
        for name, cfg in (("BP", paper.with_(feedback="bp")), ("FA", paper), ("F_bio", paper)):
            float_paper[name] = adapt(cfg, rules[name], ep).query_accuracy
    chip_rules = {
        "FA": clip_to_box(rules["FA_chip"])[0],
        "F_bio": clip_to_box(rules["F_bio_chip"])[0],
        "chip pool (meta-learned on the emulator)": clip_to_box(rules["pool_fixed"])[0],
    }
    float_chip = {name: adapt(CHIP_CONFIG, th, ep).query_accuracy for name, th in chip_rules.items()}
    stages.update()
    n, names = size.episodes, list(chip_rules)
    batch = ep.subset(np.tile(np.arange(n), len(names)))  # every rule on the same episodes, one emulator batch
    emu = run_emulator(CHIP_CONFIG, np.repeat(np.stack(list(chip_rules.values())), n, axis=0), batch, STANDARD_BOX,
                       group=min(len(batch), 32))  # fmt: skip
    fixed = {name: emu.query_accuracy[i * n : (i + 1) * n] for i, name in enumerate(names)}
    stages.update()

    rows = [[name, _cell(acc), "n/a", "n/a", _theta_text(rules[name])] for name, acc in float_paper.items()
            if name not in chip_rules]  # fmt: skip
    for name in names:
        paper_cell = _cell(float_paper[name]) if name in float_paper else "n/a"
        rows.append([name, paper_cell, _cell(float_chip[name]), _cell(fixed[name]), _theta_text(chip_rules[name])])
    section.tables.append(Table(
        f"Query accuracy (%) on {n} held-out episodes (mean ± s.e.)",
        ["rule", "float, paper form", "float, chip form", "Loihi 2 fixed point (emulator)", "theta (chip form)"],
        rows,
    ))  # fmt: skip
    program, _ = compiled_program(CHIP_CONFIG, STANDARD_BOX)
    section.tables.append(compile_table(program))
    gap = {name: 100 * (float_chip[name].mean() - fixed[name].mean()) for name in names}
    section.headline += [
        f"paper form, float, {n} held-out episodes: BP {_cell(float_paper['BP'])} %, FA {_cell(float_paper['FA'])} "
        f"%, F_bio {_cell(float_paper['F_bio'])} %",
        "chip form, float vs Loihi 2 fixed point (same rule, same episodes): "
        + "; ".join(f"{k} {_cell(float_chip[k])} vs {_cell(fixed[k])} %" for k in names)
        + f" ({emu.seconds:.1f} s for {len(batch)} episodes of {emu.steps} steps on the emulator)",
    ]

    section.exact = _exact_check(size.lava_steps)
    stages.update()

    f_bio_chip = chip_rules["F_bio"]
    grid = {"target.weights.bits": size.sweep_weight_bits, "target.learning.trace_bits": size.sweep_trace_bits}
    sweep = precision_sweep("meta_plasticity_precision", "neuro_hw.circuits.meta_plasticity_acceptance:"
                            "evaluate_precision", "accuracy", {"theta": ",".join(repr(float(v)) for v in f_bio_chip)},
                            grid, tuple(range(size.sweep_episodes)), out_dir / "sweep", progress,
                            engine_options)  # fmt: skip
    stages.update()
    stages.close()
    base = float(np.mean([r["metric.accuracy"] for r in sweep.rows if r["backend"] == "reference"]))
    cells: dict[tuple[int, int], list[float]] = {}
    for r in sweep.rows:
        if r["backend"] == "emulator" and r["status"] == "ok":
            key = (int(r["param.target.weights.bits"]), int(r["param.target.learning.trace_bits"]))
            cells.setdefault(key, []).append(float(r["metric.accuracy"]))
    sweep_rows, keep = [], []
    for (wb, tb), accs in sorted(cells.items()):
        frac = float(np.mean(accs)) / base if base > 0 else float("nan")
        sweep_rows.append([str(wb), str(tb), f"{100 * np.mean(accs):.1f}", f"{frac:.2f}"])
        if frac >= 0.9:
            keep.append((wb + tb, wb, tb))
    failed = sum(r["status"] != "ok" for r in sweep.rows)
    section.tables.append(Table(
        f"Precision sweep: F_bio's chip form ({_theta_text(f_bio_chip)}), held-out episodes "
        f"0..{size.sweep_episodes - 1}; float chip form {100 * base:.1f} %" + (f"; {failed} failed" if failed else ""),
        ["weight bits", "trace bits", "accuracy (%)", "fraction of float"], sweep_rows,
    ))  # fmt: skip
    section.figures += [Figure("Precision sweep", p) for p in sweep.plots]
    section.headline.append(
        f"fewest bits keeping >= 90 % of the float chip form's accuracy: {min(keep)[1]} weight / {min(keep)[2]} "
        f"trace bits (of {len(cells)} swept, {size.sweep_episodes} episodes each)"
        if keep else "no swept width keeps 90 % of the float chip form's accuracy in this run"
    )  # fmt: skip

    decided = n >= DECIDE_EPISODES
    bp, fa, fb = (100 * float_paper[k].mean() for k in ("BP", "FA", "F_bio"))
    refusal = _f2_refusal(rules["F_bio"])
    worst = max(gap, key=lambda k: gap[k])
    section.claims += [
        Claim("FA falls well below backprop at this depth, online (paper Fig. 2)", "FA far below BP",
              f"FA {fa:.1f} % vs BP {bp:.1f} % ({n} episodes)", bool(bp - fa > 10.0) if decided else None),
        Claim("F_bio (FA + eHebb F2 + Oja F9) comes close to backprop (paper Fig. 2)", "within 5 points of BP",
              f"F_bio {fb:.1f} % vs BP {bp:.1f} % ({n} episodes)", bool(fb >= bp - 5.0) if decided else None),
        Claim("F_bio's rule runs on the learning engine", "F0, F2 and F9 expressible",
              f"F2 refused by the circuit builder: {refusal}" if refusal else "built", not refusal),
        Claim("fixed point keeps the float chip form's accuracy (same rule, same episodes)", "within 5 points",
              f"largest loss {gap[worst]:+.1f} points ({worst}; {n} episodes)",
              bool(max(gap.values()) <= 5.0) if decided else None),
        Claim("the emulator is Lava, bit for bit", "identical values", section.exact.verdict(), section.exact.passed),
    ]  # fmt: skip
    section.notes.append(
        "The chip rules are clipped into the Program's gain box (theta0, thetaH, thetaO >= 0): F_bio's chip form "
        f"found an anti-Hebbian thetaH < 0 in float, so its fixed-point rule is {_theta_text(f_bio_chip)} "
        "(docs/meta-plasticity.md §4)."
    )
    return section
