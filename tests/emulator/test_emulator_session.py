"""The resumable emulator (EmulatorSession / EmulatorRun): any split into chunks equals one long run."""

from __future__ import annotations

import numpy as np
import pytest
from emulator_cases import learning_cases, lif_dense_cases

from neuro_hw.emulator import EmulatorSession, run_program_emulator
from neuro_hw.errors import InputError


@pytest.mark.parametrize("builder", [lif_dense_cases, learning_cases])
def test_chunks_equal_one_run(builder):
    """Input-fed connections send a whole chunk at once, so the inputs still in flight (delays up to 5
    steps, graded payloads) must carry over chunk boundaries; plastic state and random streams too."""
    book = builder(steps=120, seed=3)
    program = book.program()
    data = {k: np.stack([v, v[::-1]]) for k, v in book.data.items()}
    whole = run_program_emulator(program, data, 120, seed=[1, 2])
    bounds = [0, 1, 2, 7, 50, 51, 120]
    with EmulatorSession(program, seed=[1, 2]) as session:
        parts = [
            session.step({k: v[:, a:b] for k, v in data.items()}, b - a)
            for a, b in zip(bounds, bounds[1:], strict=False)
        ]
        assert session.done == 120
    for key in whole.spikes:
        np.testing.assert_array_equal(np.concatenate([p.spikes[key] for p in parts], axis=1), whole.spikes[key])
    for key in whole.states:
        np.testing.assert_array_equal(np.concatenate([p.states[key] for p in parts], axis=1), whole.states[key])
    for key, w in whole.weights.items():
        if len(whole.weight_steps[key]) > 1:
            np.testing.assert_array_equal(np.concatenate([p.weights[key] for p in parts], axis=1), w[:, 1:])
            np.testing.assert_array_equal(np.concatenate([p.weight_steps[key] for p in parts]), np.arange(1, 121))
    assert parts[3].metadata["first_step"] == 8
    assert sum(int(s.sum()) for s in whole.spikes.values()) > 0
    if builder is lif_dense_cases:
        assert any(c.delays is not None and c.source in program.inputs for c in program.connections.values())


def test_session_refuses_a_different_batch_and_use_after_close():
    book = lif_dense_cases(steps=20, seed=3)
    session = EmulatorSession(book.program(), seed=0)  # the first chunk sets the batch: 2 trials
    session.step({k: np.stack([v[:5], v[:5]]) for k, v in book.data.items()}, 5)
    with pytest.raises(InputError, match="runs 2 trials"):
        session.step({k: np.stack([v[:5]] * 3) for k, v in book.data.items()}, 5)
    session.close()
    with pytest.raises(InputError, match="session is closed"):
        session.step({k: v[:5] for k, v in book.data.items()}, 5)
