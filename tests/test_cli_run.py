"""``neuro-hw run``: a compiled run from the command line equals the same run through the API."""

from __future__ import annotations

import numpy as np
import pytest

import neuro_hw
from neuro_hw.circuits.stdp import correlated_inputs, stdp_circuit
from neuro_hw.cli import main


@pytest.fixture
def stdp_file(tmp_path):
    path = neuro_hw.save(stdp_circuit(n_in=10), tmp_path / "c.nir")
    spikes = correlated_inputs(400, 10, seed=0)[0]
    np.save(tmp_path / "spikes.npy", spikes)
    return path, spikes


def test_run_on_the_emulator_equals_the_api_run(tmp_path, stdp_file, capsys):
    path, spikes = stdp_file
    out = tmp_path / "run.h5"
    args = ["run", str(path), "--steps", "400", "--input", f"input={tmp_path / 'spikes.npy'}", "--seed", "3"]
    assert main([*args, "--weights-every", "100", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "compiled for loihi2 (dt=0.001): 1 populations, 1 connections" in text
    assert "backend=emulator" in text and f"result written to {out}" in text
    saved = neuro_hw.Result.load(out)
    program = neuro_hw.compile(neuro_hw.load(path), dt=1e-3)
    direct = neuro_hw.run(program, {"input": spikes}, 400, backend="emulator", seed=3, weights_every=100)
    assert saved.backend == "emulator" and saved.steps == 400 and saved.seed == direct.seed
    assert saved.spikes["neurons"].sum() > 0
    for pop, s in direct.spikes.items():
        np.testing.assert_array_equal(saved.spikes[pop], s)
    for key, w in direct.weights.items():
        np.testing.assert_array_equal(saved.weights[key], w)
        np.testing.assert_array_equal(saved.weight_steps[key], direct.weight_steps[key])
    assert list(saved.weight_steps["synapses.w"]) == [0, 100, 200, 300, 400]
    assert (saved.weights["synapses.w"][0, -1] != saved.weights["synapses.w"][0, 0]).any()  # it learned


def test_run_generates_poisson_inputs_without_input_files(stdp_file, capsys):
    path, _ = stdp_file
    assert main(["run", str(path), "--steps", "200", "--rate", "0.2"]) == 0
    assert "steps=200" in capsys.readouterr().out


def test_run_refuses_bad_arguments_before_running(tmp_path, stdp_file, capsys):
    path, _ = stdp_file
    assert main(["run", str(path), "--steps", "10", "--weights-every", "0"]) == 2
    assert "--weights-every" in capsys.readouterr().err
    assert main(["run", str(path), "--steps", "10", "--out", str(tmp_path)]) == 2  # a directory
    assert "is a directory" in capsys.readouterr().err
    assert main(["run", str(path), "--steps", "10", "--input", "input=missing.npy"]) == 2
    assert "missing.npy" in capsys.readouterr().err
    assert main(["run", str(path), "--steps", "10", "--rate", "2"]) == 2  # a probability (as check refuses it)
    assert "--rate is a spike probability per step in 0..1, got 2.0" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # argparse: unknown backend
        main(["run", str(path), "--steps", "10", "--backend", "gpu"])


@pytest.mark.lava
def test_run_on_lava_equals_the_emulator(tmp_path, stdp_file):
    path, _ = stdp_file
    for backend in ("lava", "emulator"):
        args = ["run", str(path), "--steps", "100", "--backend", backend, "--out", str(tmp_path / f"{backend}.h5")]
        assert main(args) == 0
    lava, emu = (neuro_hw.Result.load(tmp_path / f"{b}.h5") for b in ("lava", "emulator"))
    from neuro_hw.compare import compare

    assert compare(lava, emu, "exact").passed
