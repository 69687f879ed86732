"""The P3 results table and plots, from the JSON files of :mod:`.meta_plasticity_acceptance`.

``report(out)`` returns the table as text and writes ``meta_plasticity_training.png`` (meta-training curves),
``meta_plasticity_theta.png`` (theta over meta-training), ``meta_plasticity_alpha.png`` (the alignment angles
alpha_l) into ``out``; the precision plot is written by the sweep (``meta_plasticity_precision.png``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from neuro_hw.circuits.meta_plasticity_numpy import TERM_NAMES


def _load(out: Path, stage: str) -> dict[str, Any] | None:
    path = out / f"meta_plasticity_{stage}.json"
    return json.loads(path.read_text()) if path.exists() else None


def _cell(row: dict[str, Any], key: str) -> str:
    r = row.get(key)
    if r is None:
        return "n/a"
    return f"{100 * r['accuracy']:.1f} ± {100 * r['se']:.1f}"


def _theta(theta: list[float]) -> str:
    return ", ".join(f"{TERM_NAMES[r].split()[0]} {v:+.3g}" for r, v in enumerate(theta) if v)


def table(out: Path) -> str:
    lines: list[str] = []
    ev = _load(out, "evaluate")
    if ev is not None:
        n = ev["episodes"]
        lines += [f"Query accuracy (%) over {n} held-out episodes, mean ± s.e.", ""]
        head = f"{'rule':<11} {'float, paper form':>18} {'float, chip form':>17} {'fixed point (emu)':>18}  theta"
        lines += [head, "-" * len(head)]
        for name, row in ev["rules"].items():
            theta = _theta(row.get("chip_theta", row["theta"])) if "float_paper" not in row else _theta(row["theta"])
            lines.append(
                f"{name:<11} {_cell(row, 'float_paper'):>18} {_cell(row, 'float_chip'):>17} "
                f"{_cell(row, 'fixed_emulator'):>18}  {theta}"
            )
            if "chip_theta" in row and "float_paper" in row:
                lines.append(f"{'':<11} {'':>18} chip theta: {_theta(row['chip_theta'])}")
        lines += ["", "alpha_l (degrees, FA vs BP error at hidden layers 1..4, query images):"]
        for name, row in ev["rules"].items():
            for key in ("float_paper", "float_chip", "fixed_emulator"):
                if key in row and name != "BP":
                    lines.append(f"  {name:<11} {key:<15} " + " ".join(f"{a:5.1f}" for a in row[key]["alpha"]))
        lines += ["", "Cost of each hardware approximation (float, F_bio's theta, same episodes):"]
        for c in ev.get("approximations", []):
            lines.append(f"  {100 * c['accuracy']:5.1f} ± {100 * c['se']:.1f}  {c['change']}"
                         + (f"  ({c['diverged']} diverged)" if c["diverged"] else ""))  # fmt: skip
    for stage, label in (("agreement", "numpy vs reference"), ("lava", "emulator vs Lava"), ("speed", "speed")):
        data = _load(out, stage)
        if data is None:
            continue
        if stage == "agreement":
            worst = max(r["max_abs_weight_difference"] for r in data["rows"])
            lines.append(f"\n{label}: max |W difference| over {len(data['rows'])} rules/forms = {worst:.1e}")
        elif stage == "lava":
            verdict = "bit-exact" if data["exact"] else f"DIFFERS: {data['first_divergence']}"
            lines.append(f"\n{label}: first {data['steps']} steps {verdict} ({data['values']} values)")
        else:
            per, est = data["reference_seconds_per_episode"], data["reference_seconds_for_100_estimated"]
            lines.append(
                f"\n{label}: {data['episodes']} episodes on the emulator {data['emulator_seconds']:.0f} s; reference "
                f"{per:.1f} s per episode (~{est:.0f} s for 100; x{data['ratio_reference_over_emulator']:.0f}); "
                f"numpy {data['numpy_seconds']:.0f} s"
            )
    prec = _load(out, "precision")
    if prec is not None:
        lines.append(f"\nprecision (on-chip F_bio form, float {100 * prec['float_accuracy']:.1f} %):")
        for p in prec["points"]:
            acc = f"{100 * p['accuracy']:.1f} ± {100 * p['se']:.1f}"
            lines.append(f"  weights {p['weight_bits']} bits, traces {p['trace_bits']} bits: {acc} "
                         f"({100 * p['fraction_of_float']:.0f} % of float)")  # fmt: skip
        f = prec.get("fewest_bits_90")
        fewest = f"{f['weight_bits']} weight + {f['trace_bits']} trace bits" if f else "none"
        lines.append(f"  fewest bits keeping >= 90 %: {fewest}")
    return "\n".join(lines)


def plots(out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    meta = _load(out, "meta")
    emu = _load(out, "meta_emulator")
    arms = dict(meta["arms"]) if meta else {}
    if emu:
        arms["chip_pool_emulator"] = emu["arm"]
    if arms:
        fig, ax = plt.subplots(figsize=(8, 5))
        for name, arm in arms.items():
            best = min(arm["restarts"], key=lambda r: r["validation_loss"])
            h = best["history"]
            ax.plot([g["generation"] for g in h], [g["best_so_far"] for g in h], label=name)
        ax.set_xlabel("CMA-ES generation")
        ax.set_ylabel("meta-loss (query CE + L1), best so far")
        ax.set_title("P3 meta-training (digits, 5-way, K=50 online)")
        ax.legend(fontsize=8)
        path = out / "meta_plasticity_training.png"
        fig.tight_layout()
        fig.savefig(path, dpi=120)
        plt.close(fig)
        written.append(path)
        pools = {
            k: v for k, v in arms.items() if k in ("pool", "pool_narrow", "chip_pool", "chip_pool_emulator", "F_bio")
        }
        if pools:
            fig, axes = plt.subplots(1, len(pools), figsize=(5 * len(pools), 4), squeeze=False)
            for ax, (name, arm) in zip(axes[0], pools.items(), strict=True):
                best = min(arm["restarts"], key=lambda r: r["validation_loss"])
                thetas = np.array([g["theta"] for g in best["history"]])
                gens = [g["generation"] for g in best["history"]]
                for r in arm["terms"]:
                    ax.plot(gens, thetas[:, r], label=TERM_NAMES[r])
                ax.axhline(0, color="k", lw=0.5)
                ax.set_yscale("symlog", linthresh=1e-4)
                ax.set_title(f"{name}: theta of the best candidate")
                ax.set_xlabel("generation")
                ax.legend(fontsize=7)
            path = out / "meta_plasticity_theta.png"
            fig.tight_layout()
            fig.savefig(path, dpi=120)
            plt.close(fig)
            written.append(path)
    ev = _load(out, "evaluate")
    if ev:
        fig, ax = plt.subplots(figsize=(7, 4.5))
        for name, row in ev["rules"].items():
            for key, style in (("float_paper", "-o"), ("float_chip", "--s"), ("fixed_emulator", ":^")):
                if key in row and name != "BP":
                    alpha = row[key]["alpha"]
                    ax.plot(range(1, len(alpha) + 1), alpha, style, label=f"{name} ({key})")
        ax.axhline(90, color="k", lw=0.5)
        ax.set_xlabel("hidden layer l")
        ax.set_ylabel("alpha_l (degrees)")
        ax.set_title("Angle between FA and BP errors (query images, after adaptation)")
        ax.legend(fontsize=7)
        path = out / "meta_plasticity_alpha.png"
        fig.tight_layout()
        fig.savefig(path, dpi=120)
        plt.close(fig)
        written.append(path)
    return written


def report(out: str | Path) -> str:
    out = Path(out)
    paths = plots(out)
    return table(out) + "\n\nplots: " + ", ".join(str(p) for p in paths)
