"""The demo and the command line, as a user runs them."""

import json

import nir
import numpy as np

import neuro_hw
from neuro_hw.circuits.demo import run_demo
from neuro_hw.cli import main


def test_demo_learns_and_writes_files(tmp_path, capsys):
    summary = run_demo(tmp_path / "demo", steps=5000, trials=2, seed=1)
    out = capsys.readouterr().out
    assert "correlated inputs end with larger weights in 2/2 trials" in out
    assert summary["selective"] == 2
    for row in summary["rows"]:
        assert row["w_corr_end"] > row["w_corr_start"] + 0.05  # potentiated toward w_max = 0.25
        assert 5 < row["rate_hz"] < 300
    png = summary["plot"].read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20_000
    graph = nir.read(summary["circuit"])  # stock reader sees the static network
    assert set(graph.nodes) == {"input", "synapses", "neurons", "output"}
    result = neuro_hw.Result.load(summary["result"])
    assert result.batch == 2 and result.steps == 5000 and result.backend == "reference"
    assert result.weights["synapses.w"].shape[:2] == (2, 5001)


def test_cli_info_simulate_compile(tmp_path, capsys):
    from neuro_hw.circuits.stdp import correlated_inputs, stdp_circuit

    path = neuro_hw.save(stdp_circuit(n_in=10), tmp_path / "c.nir")
    assert main(["info", str(path)]) == 0
    assert "plastic synapses" in capsys.readouterr().out
    np.save(tmp_path / "spikes.npy", correlated_inputs(300, 10, seed=0)[0])
    code = main(
        [
            "simulate",
            str(path),
            "--steps",
            "300",
            "--dt",
            "1e-3",
            "--input",
            f"input={tmp_path / 'spikes.npy'}",
            "--record",
            "neurons.v",
            "--out",
            str(tmp_path / "r.h5"),
        ]
    )
    assert code == 0
    result = neuro_hw.Result.load(tmp_path / "r.h5")
    assert result.states["neurons.v"].shape == (1, 300, 2)
    assert main(["compile", str(path), "--report", str(tmp_path / "rep.json")]) == 0
    text = capsys.readouterr().out
    assert "microcode" in text and "synapses.weights" in text
    report = json.loads((tmp_path / "rep.json").read_text())
    assert report["target"] == "loihi2" and report["rules"][0]["microcode"].startswith("5*2^-5")


def test_cli_errors_are_one_line_with_exit_code_2(tmp_path, capsys):
    bad = tmp_path / "bad.nir"
    bad.write_text("not hdf5")
    assert main(["info", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("neuro-hw info: error: file '") and "not a readable HDF5" in err
    assert "Traceback" not in err
    path = neuro_hw.save(neuro_hw.circuits.stdp.stdp_circuit(n_in=4), tmp_path / "c.nir")
    assert main(["simulate", str(path), "--steps", "10", "--dt", "1e-3"]) == 2
    assert "node 'input', field 'inputs': no stimulus given" in capsys.readouterr().err
