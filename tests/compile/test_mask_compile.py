"""Plasticity masks through the reference simulator and the compiler: absent synapses stay 0 (also under a
``w_bounds`` clip that excludes 0), only present synapses learn, the Program carries the mask and the resource
report counts present synapses, and per-run weights on absent synapses are refused on every backend."""

from __future__ import annotations

import nir
import numpy as np
import pytest

import neuro_hw
from neuro_hw.errors import InputError
from neuro_hw.reference.engine import simulate
from neuro_hw.runner import run

N_PRE, N_POST, STEPS = 12, 6, 300


def _circuit(masked: bool = True, w_bounds=(0.05, 1.0)) -> tuple[neuro_hw.Circuit, np.ndarray]:
    rng = np.random.default_rng(4)
    mask = rng.random((N_POST, N_PRE)) < 0.5
    weight = rng.uniform(0.2, 0.6, (N_POST, N_PRE)) * mask
    nodes = {
        "in": nir.Input(np.array([N_PRE])),
        "w": nir.Linear(weight),
        "pop": nir.LIF(
            tau=np.full(N_POST, 0.01), r=np.ones(N_POST), v_leak=np.zeros(N_POST), v_threshold=np.full(N_POST, 0.5)
        ),  # fmt: skip
        "out": nir.Output(np.array([N_POST])),
    }
    circuit = neuro_hw.Circuit(nodes, [("in", "w"), ("w", "pop"), ("pop", "out")])
    circuit.add_plasticity(
        "w", "dw = 0.02*x1*y0 - 0.021*y1*x0", traces={"x1": (1.0, 0.02), "y1": (1.0, 0.02)}, w_bounds=w_bounds,
        mask=mask if masked else None,
    )  # fmt: skip
    return circuit, mask


def _spikes() -> dict[str, np.ndarray]:
    return {"in": (np.random.default_rng(5).random((1, STEPS, N_PRE)) < 0.15).astype(float)}


def test_reference_keeps_absent_synapses_at_zero_and_learns_the_present_ones():
    circuit, mask = _circuit()
    w = simulate(circuit, _spikes(), STEPS, 1e-3).weights["w.w"][0]  # (records, n_post, n_pre)
    assert np.all(w[:, ~mask] == 0)  # the clip to [0.05, 1] does not lift them
    assert np.sum(w[-1][mask] != w[0][mask]) >= mask.sum() // 2
    free, _ = _circuit(masked=False, w_bounds=(0.0, 1.0))  # the control: without the mask they grow
    w_free = simulate(free, _spikes(), STEPS, 1e-3).weights["w.w"][0]
    assert np.any(w_free[-1][~mask] > 0)


def test_the_program_carries_the_mask_and_counts_present_synapses():
    circuit, mask = _circuit()
    program = neuro_hw.compile(circuit)
    conn = program.connections["w"]
    assert np.array_equal(conn.learning.mask, mask) and np.all(conn.weights[~mask] == 0)
    assert program.report.resources.synapses == int(mask.sum())
    assert any(f"plasticity mask, {int(mask.sum())} of {mask.size} synapses" in n for n in program.report.notes)
    unmasked = neuro_hw.compile(_circuit(masked=False, w_bounds=(0.0, 1.0))[0])
    assert unmasked.report.resources.synapses == N_POST * N_PRE
    result = run(program, _spikes(), STEPS, backend="emulator")
    w = result.weights["w.w"][0]
    assert np.all(w[:, ~mask] == 0) and np.sum(w[-1][mask] != w[0][mask]) >= mask.sum() // 2


def test_per_run_weights_on_absent_synapses_are_refused():
    circuit, mask = _circuit()
    bad = np.asarray(circuit.nodes["w"].weight).copy()
    i, j = np.argwhere(~mask)[0]
    bad[i, j] = 0.3
    with pytest.raises(InputError, match=r"outside the plasticity mask") as info:
        simulate(circuit, _spikes(), 10, 1e-3, weights={"w": bad})
    assert info.value.node == "w" and info.value.field == "weights"
    program = neuro_hw.compile(circuit)
    with pytest.raises(InputError, match=r"outside the plasticity mask of connection 'w'"):
        run(program, _spikes(), 10, backend="emulator", weights={"w": bad})
