"""Stand-in demo sections for the report tests (importable by module name)."""

from __future__ import annotations

from pathlib import Path

from neuro_hw.demo.model import Claim, ExactCheck, Figure, Section, Table


def run_section(
    out_dir: Path, full: bool = False, engine_options: dict | None = None, progress: bool = True
) -> Section:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots()
    ax.plot([0, 1], [0, 1])
    png = out_dir / "line.png"
    fig.savefig(png)
    plt.close(fig)
    return Section(
        "fake", "A <fake> section", "description & more", headline=[f"full={full}", f"engine={engine_options}"],
        claims=[Claim("it holds", "x", "y", True), Claim("it fails", "a", "b", False), Claim("open", "?", "?", None)],
        tables=[Table("numbers", ["a", "b"], [["1", "<2>"]])], figures=[Figure("a line", png, "caption")],
        exact=ExactCheck(200, 1234, True), seeds=[0, 1],
    )  # fmt: skip


def broken_section(out_dir: Path, full: bool = False, engine_options: dict | None = None, progress: bool = True):
    raise RuntimeError("this section broke")
