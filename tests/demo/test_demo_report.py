"""The demo's report: sections rendered into one self-contained HTML file, failures reported, CLI exit codes."""

from __future__ import annotations

import base64
import json
import sys
from pathlib import Path

import pytest

import neuro_hw.demo as demo
from neuro_hw.cli import main
from neuro_hw.errors import InputError

sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture
def fake_sections(monkeypatch):
    import fake_sections

    monkeypatch.setattr(demo, "SECTIONS", {"fake": "fake_sections", "broken": "fake_sections_broken"})
    sys.modules["fake_sections_broken"] = type(sys)("fake_sections_broken")
    sys.modules["fake_sections_broken"].run_section = fake_sections.broken_section
    yield
    del sys.modules["fake_sections_broken"]


def test_report_is_one_self_contained_file(tmp_path, fake_sections, capsys):
    result = demo.run_demo(tmp_path, only=["fake"], serial=True, progress=True)
    html = result.report.read_text()
    assert result.report == tmp_path / "report.html"
    assert "A &lt;fake&gt; section" in html and "&lt;2&gt;" in html and "<fake>" not in html  # escaped
    png = (tmp_path / "fake" / "line.png").read_bytes()
    assert f"data:image/png;base64,{base64.b64encode(png).decode()}" in html  # the figure is embedded
    assert 'src="line.png"' not in html and "<script" not in html
    assert html.count('class="ok"') == 2 and html.count('class="bad"') == 1 and html.count('class="na"') == 1
    assert "bit-exact: 1,234 values over 200 steps" in html
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["mode"] == "quick" and summary["sections"][0]["claims"][1]["holds"] is False
    assert "engine={'serial': True}" in summary["sections"][0]["headline"]
    out = capsys.readouterr().out
    assert "[DOES NOT HOLD] it fails: expected a; measured b" in out and "[holds] it holds" in out


def test_a_failing_section_is_reported_and_the_rest_runs(tmp_path, fake_sections, capsys):
    assert main(["demo", "--out", str(tmp_path), "--only", "broken", "fake", "--full", "--workers", "2"]) == 1
    captured = capsys.readouterr()
    assert "section(s) failed: ['broken']" in captured.err
    html = (tmp_path / "report.html").read_text()
    assert "This section failed: RuntimeError: this section broke" in html and "A &lt;fake&gt; section" in html
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["mode"] == "full" and summary["sections"][1]["headline"] == ["full=True", "engine={'workers': 2}"]


def test_unknown_sections_are_refused(tmp_path):
    with pytest.raises(InputError, match=r"unknown demo section\(s\) \['nope'\]"):
        demo.run_demo(tmp_path, only=["nope"])
    assert main(["demo", "--out", str(tmp_path), "--only", "nope"]) == 2


@pytest.mark.slow
def test_the_quick_demo_runs_every_section(tmp_path):
    result = demo.run_demo(tmp_path, progress=False)
    assert [s.key for s in result.sections] == list(demo.SECTIONS)
    for s in result.sections:
        assert not s.error, s.error
        # a paper's claim may be measured not to hold (the report says so); the emulator must be Lava, bit for bit
        assert s.exact is not None and s.exact.passed, (s.key, s.exact)
        assert all(c.measured for c in s.claims)
        assert s.figures and all(Path(f.path).exists() for f in s.figures)


def test_every_section_is_listed_in_the_cli_help(capsys):
    with pytest.raises(SystemExit):
        main(["demo", "--help"])
    text = "".join(capsys.readouterr().out.split())  # argparse wraps lines at hyphens
    assert all(key in text for key in demo.SECTIONS), text


def test_compile_table_reads_the_report():
    import neuro_hw
    from neuro_hw.circuits.stdp import stdp_circuit
    from neuro_hw.demo.model import compile_table

    program = neuro_hw.compile(stdp_circuit(40, 2), dt=1e-3)
    table = dict((row[0], row[1]) for row in compile_table(program).rows)
    assert table["populations / connections (plastic)"] == "1 / 1 (1)"
    coefficient = max((c for r in program.report.rules for c in r.coefficients), key=lambda c: abs(c.rel_error))
    assert f"{coefficient.mantissa}*2^{coefficient.exponent}" in table["rule coefficients; largest relative error"]
