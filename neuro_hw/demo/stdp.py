"""Demo section: pair-based STDP selects correlated inputs, in float and on Loihi 2 fixed point.

The circuit of ``examples/sweeps/stdp_precision.toml`` (:func:`neuro_hw.sweep.examples.stdp_selectivity`):
40 Poisson inputs, the first half correlated, into 2 LIF neurons through ``dw = A+ x1 y0 - A- y1 x0``
(Song et al. 2000).  Selectivity = mean final weight of the correlated inputs minus that of the independent ones,
in the reference (float64) and on the emulator (the circuit compiled for Loihi 2), per seed; the emulator
against Lava on the first steps; selectivity against weight bits (and trace bits with ``--full``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from neuro_hw.demo.model import Claim, ExactCheck, Figure, Section, exact_check, section_runner
from neuro_hw.demo.precision import by_weight_bits, precision_sweep


@dataclass(frozen=True)
class StdpSize:
    seeds: tuple[int, ...]
    steps: int
    sweep_grid: dict[str, tuple[int, ...]]
    sweep_seeds: tuple[int, ...]
    sweep_steps: int
    lava_steps: int


QUICK = StdpSize((0, 1, 2), 20000, {"target.weights.bits": (4, 5, 6, 8)}, (0, 1), 10000, 200)
FULL = StdpSize(
    (0, 1, 2, 3, 4),
    20000,
    {"target.weights.bits": (2, 3, 4, 5, 6, 7, 8), "target.learning.trace_bits": (3, 4, 5, 6, 7)},
    (0, 1, 2, 3, 4),
    20000,
    200,
)


def _exact_check(steps: int, seed: int) -> ExactCheck:
    import neuro_hw
    from neuro_hw.circuits.stdp import correlated_inputs, stdp_circuit

    program = neuro_hw.compile(stdp_circuit(40, 2, w_max=0.25), dt=1e-3)
    return exact_check(program, {"input": correlated_inputs(steps, 40, seed=seed)}, steps, seed)


@section_runner
def run_section(out_dir: Path, full: bool, engine_options: dict | None, progress: bool) -> Section:
    from neuro_hw.compiler.target import load_target
    from neuro_hw.sweep.examples import stdp_selectivity

    size = FULL if full else QUICK
    section = Section(
        "stdp",
        "STDP selects correlated inputs",
        "40 Poisson inputs at 20 Hz (the first 20 correlated, correlation 0.4) into 2 LIF neurons, pair-based STDP "
        "dw = A+ x1 y0 - A- y1 x0 (A-/A+ = 1.05, tau 20 ms), w in [0, 0.25], "
        f"{size.steps} steps of 1 ms. Selectivity = mean final weight of the correlated inputs minus that of the "
        "independent ones (float units).",
        seeds=list(size.seeds),
    )
    params = {"steps": size.steps}
    ref = stdp_selectivity(params, None, "reference", list(size.seeds))
    emu = stdp_selectivity(params, load_target("loihi2"), "emulator", list(size.seeds))
    sel_r = np.array([m["selectivity"] for m in ref])
    sel_e = np.array([m["selectivity"] for m in emu])
    section.headline += [
        f"selectivity: float {sel_r.mean():.3f} ± {sel_r.std(ddof=1):.3f}, Loihi 2 fixed point {sel_e.mean():.3f} ± "
        f"{sel_e.std(ddof=1):.3f} (mean ± std over {len(size.seeds)} seeds; ratio {sel_e.mean() / sel_r.mean():.2f})",
        f"output rate: float {np.mean([m['rate_hz'] for m in ref]):.0f} Hz, fixed "
        f"{np.mean([m['rate_hz'] for m in emu]):.0f} Hz",
    ]
    section.exact = _exact_check(size.lava_steps, size.seeds[0])
    sweep = precision_sweep("stdp_precision", "neuro_hw.sweep.examples:stdp_selectivity", "selectivity",
                            {"steps": size.sweep_steps}, size.sweep_grid, size.sweep_seeds, out_dir / "sweep",
                            progress, engine_options)  # fmt: skip
    ratio = by_weight_bits(sweep.rows, "ratio.selectivity")
    keeps = [k for k, v in ratio.items() if np.mean(v) >= 0.9]
    section.headline.append(
        "fraction of float selectivity kept at 7 trace bits: "
        + ", ".join(f"{k} weight bits {np.mean(v):.2f}" for k, v in sorted(ratio.items()))
        + (f"; fewest weight bits keeping >= 90 %: {keeps[0]}" if keeps else "; no width keeps 90 %")
    )
    section.figures += [Figure("Precision sweep", p, "selectivity against weight bits") for p in sweep.plots]
    ratio_8 = float(sel_e.mean() / sel_r.mean())
    section.claims += [
        Claim("STDP potentiates the correlated inputs (Song et al. 2000)", "selectivity > 0 in every seed (float)",
              ", ".join(f"{v:.3f}" for v in sel_r), bool((sel_r > 0).all())),
        Claim("Loihi 2's 8-bit weights and 7-bit traces keep the selectivity", ">= 90 % of float",
              f"{100 * ratio_8:.0f} %", bool(ratio_8 >= 0.9)),
        Claim("the emulator is Lava, bit for bit", "identical values", section.exact.verdict(), section.exact.passed),
    ]  # fmt: skip
    return section
