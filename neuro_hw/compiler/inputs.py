"""Input stage of the compiler: how each stimulus input is sent to the chip.

An input is **graded** (integer payloads ``round(value * scale)`` in ``0..max_payload``, sent as graded
spikes) when it drives a third factor or when the user declares its range (``input_ranges={"name": max}``:
``scale = max_payload / max``); otherwise it sends 0/1 spikes.  The host converts float stimuli with these
scales (:func:`neuro_hw.runner.stimulus_to_payloads`) and refuses values outside the payload range.
"""

from __future__ import annotations

from collections.abc import Mapping

from neuro_hw.compiler.program import InputProgram
from neuro_hw.compiler.report import Report
from neuro_hw.compiler.target import Target
from neuro_hw.ir.circuit import Circuit


def input_programs(
    circuit: Circuit, input_ranges: Mapping[str, float], target: Target, report: Report
) -> dict[str, InputProgram]:
    """One :class:`InputProgram` per stimulus input of ``circuit`` (see module doc)."""
    inputs = {}
    third_sources = {src for spec in circuit.plasticity.values() for src in spec.third_factor.values()}
    for name in circuit.input_names:
        n = circuit.size(name)
        if name in third_sources or name in input_ranges:
            value_range = input_ranges.get(name)
            max_payload = target.learning.trace_max
            scale = max_payload / value_range if value_range else 1.0
            inputs[name] = InputProgram(name, n, graded=True, scale=scale, max_payload=max_payload)
            if value_range is None:
                report.notes.append(
                    f"input {name!r} carries graded values without a declared range: values are sent as integer "
                    f"payloads unchanged (0..{max_payload}); pass input_ranges={{'{name}': max}} to scale them"
                )
        else:
            inputs[name] = InputProgram(name, n, graded=False, scale=1.0, max_payload=1)
    return inputs
