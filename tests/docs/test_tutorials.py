"""The per-seed-circuit tutorials of docs/tutorials/, executed as scripts (their own ``main``), with checks on what
they print and return: a tutorial that no longer runs, or whose numbers stop making its point, fails here.

Each compiles its seed circuit's emulator kernel on a fresh machine (~45 s on a quiet core, cached afterwards), so
they run under ``-m slow``.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

TUTORIALS = Path(__file__).resolve().parents[2] / "docs" / "tutorials"


def _tutorial(name: str):  # noqa: ANN202
    spec = importlib.util.spec_from_file_location(f"tutorial_{name}", TUTORIALS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_self_assembly_tutorial(tmp_path, capsys):
    numbers = _tutorial("self_assembly").main(["--samples", "2694", "--out", str(tmp_path)])
    text = capsys.readouterr().out
    assert [line[:2] for line in text.splitlines() if line[:1].isdigit()] == ["1.", "2.", "3.", "4.", "5."]
    assert (tmp_path / "self_assembly.nir").exists()
    assert numbers["max_signal_error"] < 0.1  # one sample: fixed point follows float to its quantisation
    # two epochs: layer 1 aligns from ~90 deg in float and on both fixed-point variants (measured 52-56 deg)
    assert all(v < 65 for k, v in numbers.items() if k.startswith("angle_l1")), numbers


@pytest.mark.slow
def test_heterosynaptic_tutorial(tmp_path, capsys):
    r = _tutorial("heterosynaptic").main(["--samples", "1347", "--out", str(tmp_path)])
    text = capsys.readouterr().out
    assert "4.-5." in text and (tmp_path / "heterosynaptic.nir").exists()
    assert r["float_vs_numpy"]["wide ranges"] < 1e-9  # the same computation when nothing clips
    # one epoch (measured: alignment -0.07 -> float 0.86, Loihi 2 0.52, 5-bit 0.34; DC 0.43 -> 1.00, 0.80, 0.33)
    assert r["start"]["alignment"] < 0.1 < 0.7 < r["float"]["alignment"]
    assert r["Loihi 2 (8-bit)"]["alignment"] > 0.4 and r["Loihi 2 (8-bit)"]["dc_positive"] >= 0.7
    assert r["5-bit weights"]["dc_positive"] < 0.5 and r["5-bit weights"]["test_accuracy"] < 0.2  # DC breaks at 5 bits


@pytest.mark.slow
def test_meta_plasticity_tutorial(tmp_path, capsys):
    r = _tutorial("meta_plasticity").main(["--episodes", "4", "--out", str(tmp_path)])
    assert "3. compiled" in capsys.readouterr().out and (tmp_path / "meta_plasticity.nir").exists()
    assert r["reference vs numpy"] < 1e-9  # the chip form's circuit is its numpy twin in float
    # held-out episode 0 (measured: BP 98, FA 52, eHebb 80, F_bio 84 %): FA well below BP, F_bio and eHebb between
    assert r["numpy FA"] + 0.2 < r["numpy BP"] and r["numpy FA"] < r["numpy eHebb"] <= r["numpy F_bio"] + 0.05
    # the emulator learns like its float twin (measured 46.5 vs 51.0 % on 4 episodes; chance 20 %)
    assert r["emulator"] > 0.35 and abs(r["emulator"] - r["numpy chip form"]) < 0.15
