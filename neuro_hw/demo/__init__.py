"""``neuro-hw demo``: the learning circuits on emulated Loihi 2 fixed point, in one HTML report.

For each section (a circuit): compile it for Loihi 2, train it in float and on the bit-exact fixed-point emulator,
check the emulator against Lava bit for bit on a short window, run a small precision sweep through
:mod:`neuro_hw.sweep`, and collect headline numbers beside the claims they test.  Writes
``<out>/report.html`` (self-contained: figures embedded), ``<out>/summary.json`` and each section's files under
``<out>/<section>/``, and prints a short summary.  ``full=True`` runs more seeds, epochs and a wider sweep.

A section that fails is reported (its error in the report and the summary) and the others still run.
"""

from __future__ import annotations

import json
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path

from neuro_hw.demo.model import Claim, DemoResult, ExactCheck, Figure, Section, Table

#: Section key -> module with ``run_section(out_dir, full, engine_options, progress) -> Section``, in report order.
SECTIONS: dict[str, str] = {
    "stdp": "neuro_hw.demo.stdp",
    "fa-digits": "neuro_hw.demo.fa_digits",
    "self-assembly": "neuro_hw.demo.self_assembly",
    "heterosynaptic": "neuro_hw.demo.heterosynaptic",
    "meta-plasticity": "neuro_hw.demo.meta_plasticity",
}


def _runner(key: str) -> Callable[..., Section]:
    import importlib

    return importlib.import_module(SECTIONS[key]).run_section


def run_demo(
    out_dir: str | Path = "out/demo",
    *,
    full: bool = False,
    only: Sequence[str] | None = None,
    serial: bool = False,
    workers: int | None = None,
    progress: bool = True,
) -> DemoResult:
    """Run the demo sections (all, or ``only``) and write the report; see the module docstring."""
    from neuro_hw.demo import html
    from neuro_hw.errors import InputError
    from neuro_hw.result import package_versions

    keys = list(only) if only else list(SECTIONS)
    unknown = [k for k in keys if k not in SECTIONS]
    if unknown:
        raise InputError(f"unknown demo section(s) {unknown}; choose from {list(SECTIONS)}", field="--only")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    started, t0 = time.strftime("%Y-%m-%d %H:%M:%S"), time.perf_counter()
    engine_options = {"serial": True} if serial else ({"workers": workers} if workers else {})
    sections = []
    for key in keys:
        if progress:
            print(f"[demo] {key} ...", flush=True)
        t = time.perf_counter()
        try:
            section = _runner(key)(out / key, full=full, engine_options=engine_options, progress=progress)
        except Exception as err:  # noqa: BLE001 - one section's failure is reported, the rest still runs
            section = Section(key, key, "", error=f"{type(err).__name__}: {err}")
            section.notes.append(traceback.format_exc(limit=6))
        section.seconds = time.perf_counter() - t
        sections.append(section)
        print(summary_lines(section, indent="  "), flush=True)  # the headline numbers, also without progress bars
    result = DemoResult(sections, package_versions(), "full" if full else "quick", time.perf_counter() - t0, started)
    result.report = html.write(result, out / "report.html")
    (out / "summary.json").write_text(json.dumps(asdict(result), indent=1, default=str))
    return result


def summary_lines(section: Section, indent: str = "") -> str:
    """A few terminal lines for one section: headline numbers, the exact check and the claims' verdicts."""
    lines = [f"{indent}{section.title} ({section.seconds:.0f} s)"]
    if section.error:
        lines.append(f"{indent}  FAILED: {section.error}")
    lines += [f"{indent}  {h}" for h in section.headline]
    if section.exact is not None:
        lines.append(f"{indent}  emulator vs Lava: {section.exact.verdict()}")
    for c in section.claims:
        verdict = {True: "holds", False: "DOES NOT HOLD", None: "not decided"}[c.holds]
        lines.append(f"{indent}  [{verdict}] {c.statement}: expected {c.expected}; measured {c.measured}")
    return "\n".join(lines)


__all__ = ["SECTIONS", "Claim", "DemoResult", "ExactCheck", "Figure", "Section", "Table", "run_demo", "summary_lines"]
