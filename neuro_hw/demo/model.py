"""What a demo section produces: plain dataclasses that the HTML report and the terminal summary render.

A :class:`Section` is one circuit's story -- compiled for the target, trained in the float reference and on the
fixed-point emulator, checked against Lava bit for bit on a short window, swept over precision -- told as
headline numbers, claims (a paper's or an issue's statement beside what was measured), tables and figures.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np


@dataclass
class Claim:
    """A statement to check: ``expected`` (what a paper or an acceptance target says), ``measured`` (what this run
    measured) and whether it ``holds`` (None: not decidable from this run)."""

    statement: str
    expected: str
    measured: str
    holds: bool | None


@dataclass
class Table:
    title: str
    header: list[str]
    rows: list[list[str]]


@dataclass
class Figure:
    title: str
    path: Path
    caption: str = ""


@dataclass
class ExactCheck:
    """The emulator against Lava on the first ``steps`` steps: every recorded value compared (``compare(...,
    "exact")``).  ``skipped`` says why it did not run (e.g. Lava not installed)."""

    steps: int
    values_compared: int = 0
    passed: bool | None = None
    first_divergence: str = ""
    skipped: str = ""

    def verdict(self) -> str:
        if self.skipped:
            return f"not run ({self.skipped})"
        if self.passed:
            return f"bit-exact: {self.values_compared:,} values over {self.steps} steps"
        return f"DIFFERS after {self.values_compared:,} values: {self.first_divergence}"


def exact_check(program, inputs: dict, steps: int, seed: int) -> ExactCheck:  # noqa: ANN001 - a Program
    """Run ``program`` for ``steps`` steps on the emulator and on Lava and compare every recorded value."""
    import neuro_hw
    from neuro_hw.backends import lava_missing
    from neuro_hw.compare import compare

    if lava_missing():
        return ExactCheck(steps, skipped=lava_missing())
    emu = neuro_hw.run(program, inputs, steps, backend="emulator", seed=seed)
    lava = neuro_hw.run(program, inputs, steps, backend="lava", seed=seed)
    c = compare(lava, emu, "exact")
    passed = bool(c.passed and not c.only_in_one)
    return ExactCheck(steps, int(c.compared_values), passed, "" if passed else str(c.first_divergence or c.only_in_one))


def compile_table(program: Any) -> Table:  # noqa: ANN401 - a Program
    """What a compiled circuit is made of and what compiling it approximated, from its Program's report: sizes,
    resources, the narrowest graded signal, the worst-represented rule coefficient and the plastic weights' mean
    quantisation error (a table every section shows)."""
    report = program.report
    plastic = [name for name, c in program.connections.items() if c.learning is not None]
    rows = [
        [
            "populations / connections (plastic)",
            f"{len(program.neurons)} / {len(program.connections)} ({len(plastic)})",
        ],
    ]
    if report.resources is not None:
        r = report.resources
        rows.append(
            ["neurons, synapses, cores (budget)", f"{r.neurons}, {r.synapses}, {r.cores_used} ({r.cores_budget})"]
        )
    graded = [sig for sig in report.signals if sig.payload_max > 1]  # not the 0/1 phase markers
    if graded:
        narrow = min(graded, key=lambda sig: sig.bits)
        text = f"{len(graded)}; {narrow.signal}: {narrow.payload_max} levels ({narrow.bits:.2f} bits)"
        rows.append(["graded signals; the narrowest", f"{text}, range {narrow.range:g}"])
    coefficients = [c for rule in report.rules for c in rule.coefficients]
    if coefficients:
        worst = max(coefficients, key=lambda c: abs(c.rel_error))
        text = f"{len(coefficients)}; {worst.term}: {worst.target_value:.4g} (integer units) -> "
        text += f"{worst.mantissa}*2^{worst.exponent} = {worst.represented:.4g} ({worst.rel_error:+.3f})"
        rows.append(["rule coefficients; largest relative error", text])
    weights = [pr for pr in report.parameters if pr.group.split(".")[0] in plastic and pr.group.endswith(".weights")]
    if weights:
        mean = float(np.mean([pr.rel_error_mean for pr in weights]))
        rows.append([f"initial plastic weights ({len(weights)} matrices): mean relative error", f"{mean:.3f}"])
    return Table("Compiled for Loihi 2 (compile report)", ["", ""], rows)


@dataclass
class Section:
    """One circuit of the demo."""

    key: str
    title: str
    description: str
    headline: list[str] = field(default_factory=list)
    claims: list[Claim] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    figures: list[Figure] = field(default_factory=list)
    exact: ExactCheck | None = None
    seeds: list[int] = field(default_factory=list)
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)
    error: str = ""  # the section failed: the error, and the rest of the demo went on


@dataclass
class DemoResult:
    sections: list[Section]
    versions: dict[str, str]
    mode: str  # "quick" (the default) or "full"
    seconds: float
    started: str
    report: Path | None = None


#: A demo section's entry point: ``run_section(out_dir, full, engine_options, progress) -> Section``.
SectionRunner = Callable[[Path, bool, "dict | None", bool], Section]


def section_runner(run: SectionRunner) -> SectionRunner:
    """Give a section's ``run_section`` the interface every section shares: keyword defaults, its output folder
    created, and its wall time in ``Section.seconds``."""

    @functools.wraps(run)
    def wrapped(out_dir: Path, full: bool = False, engine_options: dict | None = None, progress: bool = True
                ) -> Section:  # fmt: skip
        start = time.perf_counter()
        out_dir.mkdir(parents=True, exist_ok=True)
        section = run(out_dir, full, engine_options, progress)
        section.seconds = time.perf_counter() - start
        return section

    return wrapped
