"""What a demo section produces: plain dataclasses that the HTML report and the terminal summary render.

A :class:`Section` is one circuit's story -- compiled for the target, trained in the float reference and on the
fixed-point emulator, checked against Lava bit for bit on a short window, swept over precision -- told as
headline numbers, claims (a paper's or an issue's statement beside what was measured), tables and figures.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


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
