"""Plasticity masks on the two fixed-point backends: the emulator (LearningDense's arithmetic, absent synapses
held at 0) against Lava 0.10's ``LearningSparse`` storing exactly the mask's synapses (run by our corrected model,
``targets/loihi2/recording.py``), every recorded value at every step: 2- and 3-factor rules, ``w``/``t``/``d``
factors and tag rules, excitatory and inhibitory sign modes, a graded pre activity with a signed modulator, and
present synapses that start at 0."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from emulator_cases import assert_identical, masked_cases

from neuro_hw.emulator import run_program_emulator
from neuro_hw.errors import NeuroHWError
from neuro_hw.targets.loihi2 import lava_backend

STEPS = 150


def _plastic(book):
    return {c.name: c for c in book.conns if c.learning is not None}


@pytest.mark.lava
def test_masked_learning_matches_lava_and_absent_synapses_stay_zero():
    book = masked_cases(STEPS)
    prog = book.program()
    emu = run_program_emulator(prog, book.data, STEPS, seed=3)
    lava = lava_backend.run_program_lava(prog, book.data, STEPS, seed=3)
    assert_identical(emu, lava, "masked plastic connections")
    for name, conn in _plastic(book).items():
        mask = conn.learning.mask
        for var in ("w", "t", "d"):
            key = f"{name}.{var}"
            if key in lava.weights:
                assert np.all(lava.weights[key][..., ~mask] == 0), key
        w = lava.weights[f"{name}.w"][0]  # (records, n_post, n_pre)
        changed = w[-1] != w[0]
        assert changed[mask].sum() >= mask.sum() // 4, name  # the present synapses learned
        assert w[:, 0, 0].any(), f"{name}: the present synapse that starts at 0 never learned"
    assert np.abs(lava.weights["tags.t"][..., _plastic(book)["tags"].learning.mask]).sum() > 0  # tag rules stored


def test_without_the_mask_the_absent_synapses_would_learn():
    """The control: the same Program with the masks removed -- the zero weights off the mask grow, so the masked
    run's zeros are the mask's doing (emulator only)."""
    book = masked_cases(STEPS)
    masks = {name: conn.learning.mask for name, conn in _plastic(book).items()}
    prog = book.program()
    masked = run_program_emulator(prog, book.data, STEPS, seed=3)
    for conn in prog.connections.values():
        if conn.learning is not None:
            conn.learning = dataclasses.replace(conn.learning, mask=None)
    free = run_program_emulator(prog, book.data, STEPS, seed=3)
    grown = [name for name, mask in masks.items() if np.any(free.weights[f"{name}.w"][..., ~mask] != 0)]
    assert len(grown) >= len(masks) - 1, grown
    for name, mask in masks.items():
        assert np.all(masked.weights[f"{name}.w"][..., ~mask] == 0)


def test_a_program_with_a_weight_off_its_mask_is_refused():
    book = masked_cases(20)
    conn = _plastic(book)["stdp1"]
    i, j = np.argwhere(~conn.learning.mask)[0]
    conn.weights[i, j] = 4
    with pytest.raises(NeuroHWError, match=rf"weight 4 at \({i}, {j}\) is on a synapse outside the plasticity mask"):
        run_program_emulator(book.program(), book.data, 20)
