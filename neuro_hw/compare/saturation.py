"""How a fixed-point run used its graded signal formats: saturation rates and headroom.

The compile report (:class:`~neuro_hw.compiler.report.SignalReport`) says how many payload levels each graded
signal got over its declared range; only a run says how often a signal hit the top of that format.  For every
graded population of a Program (both rails of a signed modulator) and every graded input, over the steps where
it sent something (a nonzero payload):

* ``saturated``: the fraction at or above the top of the format -- a clipped activation at its clip, a value
  read as a trace at the trace maximum (``x1 = payload / 2 >= 127``, ``y = payload >= 127``: the engine clips
  the factor), an input at its ``max_payload``;
* ``peak``: the largest |payload| over the payload levels of the declared range (above 1: the range was
  exceeded -- for a forward-only signal, which has no cap, that costs int32 headroom only).

:func:`signal_usage` works on the emulator's and Lava's Results alike (they are identical).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from neuro_hw.compiler.program import Program
from neuro_hw.result import Result


@dataclass(frozen=True)
class SignalUsage:
    """One graded signal's use of its format in a run (module doc)."""

    signal: str
    top: int
    active_fraction: float
    saturated: float
    peak: float

    def __str__(self) -> str:
        return (
            f"{self.signal:<14} top {self.top:>6}  active {self.active_fraction:7.2%}  "
            f"saturated {self.saturated:7.3%}  peak/range {self.peak:6.3f}"
        )


def _formats(program: Program) -> dict[str, tuple[int, int]]:
    """``(cap, levels)`` of each graded population: ``cap`` where its values saturate (a clip, the trace top of
    a signal read as x1 or y; 0 = none), ``levels`` its payload levels over the declared range."""
    trace_top = 127
    read_as_x1 = {c.source for c in program.connections.values() if c.learning is not None and c.learning.pre_activity}
    read_as_y = {
        s for c in program.connections.values() if c.learning is not None for s in c.learning.third_factor.values()
    }
    rails = program.metadata.get("rails", {})
    node_of = {rail: node for node, pairs in rails.items() for rail, _ in pairs}
    declared = {}
    if program.report is not None:
        declared = {sig.signal: sig.payload_max for sig in getattr(program.report, "signals", [])}
    formats = {}
    for name, pop in program.graded.items():
        cap = pop.clip if pop.activation in ("clip", "hard_softplus") and pop.clip else 0
        if name in read_as_x1:
            cap = min(cap, 2 * trace_top) if cap else 2 * trace_top
        if name in read_as_y:
            cap = min(cap, trace_top) if cap else trace_top
        formats[name] = (int(cap), int(declared.get(node_of.get(name, name), cap)))
    return formats


def signal_usage(
    program: Program, result: Result, payloads: Mapping[str, np.ndarray] | None = None
) -> list[SignalUsage]:
    """Saturation and peak of every graded population (and of the graded inputs in ``payloads``, the run's
    integer stimuli) in ``result`` (module doc)."""
    rows = []
    for name, (cap, levels) in _formats(program).items():
        y = np.asarray(result.states[f"{name}.y"])
        active = y != 0
        mag = np.abs(y[active]).astype(np.float64)
        rows.append(
            SignalUsage(
                name,
                int(cap or levels),
                float(active.mean()) if y.size else 0.0,
                float((mag >= cap).mean()) if (cap and mag.size) else 0.0,
                float(mag.max(initial=0.0)) / max(levels or cap, 1),
            )
        )
    for name, data in (payloads or {}).items():
        spec = program.inputs.get(name)
        if spec is None or not spec.graded:
            continue
        arr = np.asarray(data)
        active = arr != 0
        mag = np.abs(arr[active]).astype(np.float64)
        rows.append(
            SignalUsage(
                name,
                int(spec.max_payload),
                float(active.mean()) if arr.size else 0.0,
                float((mag >= spec.max_payload).mean()) if mag.size else 0.0,
                float(mag.max(initial=0.0)) / spec.max_payload,
            )
        )
    return rows
