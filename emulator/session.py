"""Chunk-by-chunk stepping of a Program on the emulator (closed-loop host I/O).

``EmulatorSession(program, seed).step(payloads, steps)`` advances the run by ``steps`` steps with the
given integer payloads and returns a Result for just those steps.  State carries over exactly: the
session keeps every payload given so far and evaluates the run up to the current step with
:func:`~neuro_hw.emulator.engine.run_program_emulator`, whose values at step ``k`` depend only on inputs
up to ``k`` (the random streams are drawn in step order).  A chunked run is therefore identical to one
long run.  Cost: each chunk re-evaluates the run from step 1, ``O(T^2 / chunk)`` steps in total, which is
cheap at test and control-loop sizes (1000 steps in chunks of 20 at n = 100: about 1.5 s) but not for long
runs; a resumable engine state is the planned replacement.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from neuro_hw.compile.payloads import normalize_payloads
from neuro_hw.compile.program import Program
from neuro_hw.errors import InputError
from neuro_hw.result import Result

from .engine import run_program_emulator


class EmulatorSession:
    """A single-trial emulator run driven chunk by chunk (see module docstring)."""

    def __init__(self, program: Program, *, seed: int | Sequence[int] = 0) -> None:
        self.program = program
        self.seed = seed
        self.done = 0
        self._payloads: dict[str, list[np.ndarray]] = {name: [] for name in program.inputs}
        self._closed = False

    def step(self, payloads: dict[str, np.ndarray], steps: int) -> Result:
        """Run ``steps`` more steps with payloads ``(steps, n)`` (or ``(B, steps, n)``) per input."""
        if self._closed:
            raise InputError("the emulator session is closed", field="session")
        arrays, _, steps = normalize_payloads(self.program, payloads, steps, self.seed)
        for name, arr in arrays.items():
            self._payloads[name].append(np.asarray(arr))
        total = self.done + steps
        whole = {name: np.concatenate(chunks, axis=1) for name, chunks in self._payloads.items()}
        result = run_program_emulator(self.program, whole, total, seed=self.seed)
        self.done = total
        return _slice(result, total - steps, total)

    def close(self) -> None:
        self._closed = True

    def __enter__(self) -> EmulatorSession:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _slice(result: Result, start: int, stop: int) -> Result:
    """The part of ``result`` for steps ``start+1 .. stop`` (weights sampled inside that range)."""
    weights, wsteps = {}, {}
    for key, w in result.weights.items():
        s = result.weight_steps[key]
        keep = (s > start) & (s <= stop) if len(s) > 1 else np.ones(len(s), dtype=bool)
        weights[key], wsteps[key] = w[:, keep], s[keep]
    return Result(
        spikes={k: v[:, start:stop] for k, v in result.spikes.items()},
        states={k: v[:, start:stop] for k, v in result.states.items()},
        weights=weights,
        weight_steps=wsteps,
        dt=result.dt,
        steps=stop - start,
        batch=result.batch,
        backend=result.backend,
        circuit_hash=result.circuit_hash,
        seed=result.seed,
        target=result.target,
        versions=result.versions,
        metadata={**result.metadata, "first_step": start + 1},
    )
