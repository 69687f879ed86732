"""Chunk-by-chunk stepping of a Program on the emulator (closed-loop host I/O).

``EmulatorSession(program, seed).step(payloads, steps)`` advances the run by ``steps`` steps with the
given integer payloads and returns a Result for just those steps.  The session holds one resumable
:class:`~neuro_hw.emulator.engine.EmulatorRun`, so the state (voltages, synaptic outputs in flight,
traces, weights, random streams) carries over exactly: a chunked run is identical to one long run,
and each chunk costs only its own steps.

The chunk's Result has ``spikes``/``states`` ``(B, steps, ...)``, the plastic variables after every
step of the chunk (``weight_steps`` = the absolute step numbers ``start+1 .. start+steps``), the static
weights once (``weight_steps = [0]``), and ``metadata["first_step"] = start + 1``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from neuro_hw.compiler.program import Program
from neuro_hw.errors import InputError
from neuro_hw.result import Result

from .engine import EmulatorRun, normalize_inputs


class EmulatorSession:
    """A persistent emulator run driven chunk by chunk (see module docstring)."""

    def __init__(self, program: Program, *, seed: int | Sequence[int] = 0) -> None:
        self.program = program
        self.seed = seed
        self._run: EmulatorRun | None = None
        self._closed = False

    @property
    def done(self) -> int:
        """Steps run so far."""
        return 0 if self._run is None else self._run.steps_done

    def step(self, payloads: dict[str, np.ndarray], steps: int) -> Result:
        """Run ``steps`` more steps with payloads ``(steps, n)`` (or ``(B, steps, n)``) per input."""
        if self._closed:
            raise InputError("the emulator session is closed", field="session")
        data, seeds, steps = normalize_inputs(self.program, payloads, steps, self.seed)
        if self._run is None:
            self._run = EmulatorRun(self.program, seeds)
        elif len(seeds) != self._run.batch:
            raise InputError(f"this session runs {self._run.batch} trials, the payloads have {len(seeds)}")
        run = self._run
        start = run.steps_done
        sampled = np.arange(start + 1, start + steps + 1, dtype=np.int64)
        chunk = run.advance(data, steps, sampled)
        return Result(
            spikes=chunk.spikes,
            states=chunk.states,
            weights=chunk.weights,
            weight_steps=chunk.weight_steps,
            dt=float(self.program.dt),
            steps=steps,
            batch=run.batch,
            backend="emulator",
            circuit_hash=self.program.circuit_hash,
            seed=run.seeds[0],
            target=self.program.target,
            metadata={"first_step": start + 1, "emulator": {"seeds": run.seeds}},
        )

    def close(self) -> None:
        self._closed = True
        self._run = None

    def __enter__(self) -> EmulatorSession:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
