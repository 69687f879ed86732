"""A closed-loop control task: spiking bang-bang tracking of a moving target.

Environment (host side): a point at position ``p`` follows a target ``g(t) = A sin(2 pi t / period)``.
Every chunk the host encodes the error ``e = g - p`` as spikes of two sensor populations (``err_pos``
fires for ``e > 0``, ``err_neg`` for ``e < 0``; each of ``n_sensor`` channels spikes with probability
``min(1, |e| / e_max)`` per step, from a seeded generator), the circuit drives two motor populations
``right`` and ``left`` through excitatory weights, and the host moves the point by ``gain * (spikes(right)
- spikes(left))`` after the chunk.  The error shrinks only if the loop works.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import nir
import numpy as np

from neuro_hw.ir.circuit import Circuit
from neuro_hw.result import Result

DT = 1e-3


def tracking_circuit(n_sensor: int = 8, n_motor: int = 4, weight: float = 0.6) -> Circuit:
    ones = np.ones(n_motor)

    def lif():
        return nir.LIF(tau=0.01 * ones, r=(0.01 / DT) * ones, v_leak=0 * ones, v_threshold=ones, v_reset=0 * ones)

    w = np.full((n_motor, n_sensor), weight)
    nodes = {
        "err_pos": nir.Input(np.array([n_sensor])),
        "err_neg": nir.Input(np.array([n_sensor])),
        "w_right": nir.Linear(w),
        "w_left": nir.Linear(w.copy()),
        "right": lif(),
        "left": lif(),
    }
    edges = [("err_pos", "w_right"), ("w_right", "right"), ("err_neg", "w_left"), ("w_left", "left")]
    return Circuit(nodes, edges, metadata={"name": "spiking-tracking"})


@dataclass
class TrackingEnv:
    """Host-side environment and controller (see module docstring); call it as the closed-loop callback."""

    chunk: int
    n_sensor: int = 8
    amplitude: float = 1.0
    period_steps: int = 2000
    e_max: float = 1.0
    gain: float = 0.01
    seed: int = 0
    position: float = 0.0
    positions: list[float] = field(default_factory=list)
    errors: list[float] = field(default_factory=list)

    def target(self, step: int) -> float:
        return self.amplitude * np.sin(2 * np.pi * step / self.period_steps)

    def __call__(self, start: int, previous: Result | None) -> dict[str, np.ndarray]:
        if previous is not None:
            push = int(previous.spikes["right"].sum()) - int(previous.spikes["left"].sum())
            self.position += self.gain * push
        error = self.target(start) - self.position
        self.positions.append(self.position)
        self.errors.append(error)
        rng = np.random.default_rng([self.seed, start])  # depends only on the step: same on every backend
        p = min(1.0, abs(error) / self.e_max)
        spikes = (rng.random((self.chunk, self.n_sensor)) < p).astype(np.float64)
        silent = np.zeros_like(spikes)
        return {"err_pos": spikes if error > 0 else silent, "err_neg": spikes if error < 0 else silent}
