"""The seed-P2 demo section (:mod:`neuro_hw.demo.heterosynaptic`) in quick mode: its tables, figures, claims and
the exact check against Lava (about 30 s with the motif's kernel cached; it starts Lava)."""

from __future__ import annotations

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.lava]


def test_quick_section_measures_the_claims(tmp_path):
    from neuro_hw.demo.heterosynaptic import run_section

    s = run_section(tmp_path, full=False, engine_options={"serial": True}, progress=False)
    assert s.exact is not None and s.exact.passed and s.exact.values_compared > 50_000
    claims = {c.statement: c for c in s.claims}
    assert claims["the emulator is Lava, bit for bit"].holds is True
    # measured in docs/heterosynaptic.md (seed 0, one epoch): DC 0.75 at 8 bits, 0.29 at 5 bits
    assert claims["DC needs more than 5 weight bits (docs/heterosynaptic.md: breaks at 5)"].holds is True
    monitors, compiled, sweep = s.tables
    assert [r[0] for r in monitors.rows] == ["float reference", "Loihi 2 fixed point (emulator)"]
    assert monitors.rows[0][-1] == "53.3" and monitors.rows[1][-1] == "43.1"  # test accuracy (%), seed 0
    assert compiled.rows[0][1] == "10 / 16 (3)"
    assert [r[:3] for r in sweep.rows] == [["5", "7", "11.8"], ["8", "7", "43.1"]]
    assert all(f.path.exists() for f in s.figures) and len(s.figures) == 2
