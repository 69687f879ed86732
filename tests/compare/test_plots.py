"""Plots are written as real PNG files; the overlay marks the first spike divergence."""

import numpy as np

import neuro_hw
from neuro_hw.circuits.stdp import correlated_inputs, stdp_circuit
from neuro_hw.compare import compare, plots

DT = 1e-3


def _png(path):
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
    return data


def test_all_plots(tmp_path):
    circuit = stdp_circuit(n_in=10, n_out=3)
    x = {"input": correlated_inputs(400, 10, seed=3)}
    ref = neuro_hw.simulate(circuit, x, 400, DT, record="all")
    euler = neuro_hw.simulate(circuit, x, 400, DT, record="all", method="euler")
    _png(plots.plot_raster(ref, "neurons", tmp_path / "raster.png"))
    _png(plots.plot_states(ref, ["neurons.v", "synapses.x1"], tmp_path / "states.png", neurons=(0, 1)))
    _png(plots.plot_weight_evolution(ref, "synapses.w", tmp_path / "w.png"))
    _png(plots.plot_comparison(compare(ref, euler, "fixed-vs-float"), tmp_path / "cmp.png"))
    diff = np.flatnonzero((ref.spikes["neurons"][0] != euler.spikes["neurons"][0]).any(axis=1))
    assert diff.size  # exact and Euler integration differ somewhere
    _png(plots.plot_overlay(ref, euler, tmp_path / "overlay.png", state="neurons.v", spikes="neurons"))
