"""Batch semantics: B trials in one emulator run equal B separate single-trial runs, value for value.

A batch is split into trial ranges run on one thread per core (``step_kernel.trial_ranges``); B = 3, 8
and 9 check uneven and even splits, and the split itself is checked with other thread counts.  The
circuits include recurrent plastic connections, several plastic inputs per population, long epochs and
long delays (``feature_cases``).  Batches against Lava: ``test_emulator_features_vs_lava.py``.
"""

from __future__ import annotations

import numpy as np
import pytest
from emulator_cases import assert_identical, feature_cases, learning_cases, lif_dense_cases

from neuro_hw.emulator import run_program_emulator, step_kernel
from neuro_hw.result import Result


def _trial(res: Result, b: int) -> Result:
    """Trial ``b`` of a batched Result as a single-trial Result."""
    return Result(
        spikes={k: v[b : b + 1] for k, v in res.spikes.items()},
        states={k: v[b : b + 1] for k, v in res.states.items()},
        weights={k: v[b : b + 1] for k, v in res.weights.items()},
        weight_steps=res.weight_steps,
        dt=res.dt,
        steps=res.steps,
        batch=1,
        backend=res.backend,
        circuit_hash=res.circuit_hash,
    )


@pytest.mark.parametrize(
    "builder, batch",
    [
        (lif_dense_cases, 3),
        (lif_dense_cases, 8),
        (learning_cases, 3),
        (learning_cases, 8),
        pytest.param(feature_cases, 9, marks=pytest.mark.slow),
    ],
)
def test_batch_equals_separate_runs(builder, batch):
    book = builder(steps=120, seed=11)
    prog = book.program()
    rng = np.random.default_rng(5)
    seeds = [0, 3, 17, 4, 5, 6, 7, 8, 9][:batch]
    # different inputs per trial: trial 0 as given, trial 1 reversed in time, the others permuted
    data = {}
    for name, x in book.data.items():
        data[name] = np.stack([x, x[::-1]] + [x[rng.permutation(len(x))] for _ in range(batch - 2)])
    batched = run_program_emulator(prog, data, 120, seed=seeds)
    assert batched.batch == batch
    for b, s in enumerate(seeds):
        single = run_program_emulator(prog, {k: v[b] for k, v in data.items()}, 120, seed=s)
        assert_identical(_trial(batched, b), single, f"trial {b} (seed {s})")
    # the trials really differ (inputs and seeds matter)
    differ = [pop for pop in prog.neurons if not np.array_equal(batched.spikes[pop][0], batched.spikes[pop][1])]
    assert len(differ) >= len(prog.neurons) // 2, differ


def test_same_seed_same_input_gives_identical_trials():
    book = learning_cases(steps=80, seed=4)
    res = run_program_emulator(book.program(), book.data, 80, seed=[9, 9])  # (T, n) inputs broadcast
    assert_identical(_trial(res, 0), _trial(res, 1), "two identical trials")
    again = run_program_emulator(book.program(), book.data, 80, seed=9)
    assert_identical(_trial(res, 0), again, "re-run")


def test_seed_changes_learning_only_through_the_rng_streams():
    book = lif_dense_cases(steps=100, seed=4)
    static = run_program_emulator(book.program(), book.data, 100, seed=[1, 2])
    assert_identical(_trial(static, 0), _trial(static, 1), "static circuit, two seeds")  # LIF/Dense: no RNG
    book = learning_cases(steps=150, seed=4)
    res = run_program_emulator(book.program(), book.data, 150, seed=[1, 2])
    assert not np.array_equal(res.weights["stdp1.w"][0], res.weights["stdp1.w"][1])
    assert res.metadata["emulator"]["seeds"] == [1, 2]


def test_trial_ranges_cover_the_batch_once_and_more_threads_give_the_same_values(monkeypatch):
    assert step_kernel.trial_ranges(8, 2) == [(0, 4), (4, 8)]
    assert step_kernel.trial_ranges(3, 2) == [(0, 2), (2, 3)]
    assert step_kernel.trial_ranges(2, 5) == [(0, 1), (1, 2)]
    assert step_kernel.trial_ranges(1, 1) == [(0, 1)]
    book = learning_cases(steps=60, seed=2)
    prog = book.program()
    data = {k: np.stack([v, v[::-1], v, v[::-1], v]) for k, v in book.data.items()}
    base = run_program_emulator(prog, data, 60, seed=[1, 2, 3, 4, 5])
    for workers, tasks in [(1, 1), (3, 1), (2, 4)]:  # one range; ranges of 1 and 2 trials; one trial per task
        monkeypatch.setattr(step_kernel, "worker_count", lambda w=workers: w)
        monkeypatch.setattr(step_kernel, "TASKS_PER_WORKER", tasks)
        again = run_program_emulator(prog, data, 60, seed=[1, 2, 3, 4, 5])
        assert_identical(again, base, f"{workers} threads x {tasks} ranges")
