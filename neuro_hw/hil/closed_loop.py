"""Closed-loop host I/O: step a compiled circuit in chunks with a host callback in the loop.

Each chunk of ``chunk`` steps the host callback receives the previous chunk's Result (``None`` before the
first) and returns the next chunk's stimuli in float units, ``(chunk, n)`` per input, e.g. an environment
that reads motor spikes and writes sensor spikes.  The circuit's state (voltages, traces, weights) carries
over between chunks: a chunked run with fixed stimuli equals one long run (tests/hil/test_closed_loop.py).
The loop runs on the emulator (:class:`~neuro_hw.emulator.EmulatorSession`) or on Lava
(:class:`~neuro_hw.targets.loihi2.lava_session.LavaSession`: one persistent Lava run, built once, stepped
chunk by chunk); both give identical trajectories (tests/hil/test_closed_loop.py).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from neuro_hw.backends import lava_missing
from neuro_hw.compiler.program import Program
from neuro_hw.errors import BackendUnavailableError, InputError
from neuro_hw.result import Result
from neuro_hw.runner import stimulus_to_payloads


class Session(Protocol):
    def step(self, payloads: dict[str, np.ndarray], steps: int) -> Result: ...

    def close(self) -> None: ...


def open_session(program: Program, backend: str, seed: int = 0) -> Session:
    """A persistent run of ``program`` on ``backend`` (``"emulator"`` or ``"lava"``), stepped chunk by chunk."""
    if backend == "emulator":
        from neuro_hw.emulator import EmulatorSession

        return EmulatorSession(program, seed=seed)
    if backend == "lava":
        why = lava_missing()
        if why is not None:
            raise BackendUnavailableError(f"{why}; or use 'emulator', which is bit-exact with Lava", field="backend")
        from neuro_hw.targets.loihi2.lava_session import LavaSession

        return LavaSession(program, seed=seed).__enter__()
    raise InputError(f"closed loop runs on 'emulator' or 'lava', not {backend!r}", field="backend")


Controller = Callable[[int, Result | None], Mapping[str, np.ndarray]]


@dataclass
class ClosedLoopRun:
    """The chunks of a closed-loop run and what the controller recorded."""

    backend: str
    chunks: list[Result] = field(default_factory=list)

    def spikes(self, node: str) -> np.ndarray:
        """Spikes of ``node`` over the whole run, ``(T, *shape)`` (single trial)."""
        return np.concatenate([c.spikes[node][0] for c in self.chunks], axis=0)


def run_closed_loop(
    program: Program,
    controller: Controller,
    steps: int,
    chunk: int,
    *,
    backend: str = "emulator",
    seed: int = 0,
) -> ClosedLoopRun:
    """Run ``steps`` steps in chunks of ``chunk`` with ``controller(start_step, previous_chunk) -> inputs``."""
    if not (isinstance(chunk, int) and chunk >= 1):
        raise InputError(f"chunk must be a positive integer, got {chunk!r}", field="chunk")
    if not (isinstance(steps, int) and steps >= 1):
        raise InputError(f"steps must be a positive integer, got {steps!r}", field="steps")
    run = ClosedLoopRun(backend)
    session = open_session(program, backend, seed)
    try:
        previous: Result | None = None
        done = 0
        while done < steps:
            n = min(chunk, steps - done)
            stimuli = controller(done, previous)
            payloads = stimulus_to_payloads(program, {k: np.asarray(v)[:n] for k, v in stimuli.items()})
            for name, arr in payloads.items():
                if arr.shape[0] != n:
                    raise InputError(f"controller gave {arr.shape[0]} steps, the chunk has {n}", node=name)
            previous = session.step(payloads, n)
            run.chunks.append(previous)
            done += n
    finally:
        session.close()
    return run
