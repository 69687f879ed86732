"""Input stage of the compiler: how each stimulus input is sent to the chip.

An input is **graded** (integer payloads ``round(value * scale)``, sent as graded spikes) when

* it is the pre activity of a plastic connection (``traces={"x1": "activity"}``), or
* it drives a third factor, or
* the user declares its range (``input_ranges={"name": max}``);

otherwise it sends 0/1 spikes.  A graded input's scale and payload range follow from its range and its
readers like every graded signal (:mod:`.graded`): ``scale = payload_max / range``.  A third-factor input
without a declared range is sent unscaled (``scale = 1``, payloads ``0..trace_max``), as before graded
neurons existed.  The host converts float stimuli with these scales
(:func:`neuro_hw.runner.stimulus_to_payloads`) and refuses values outside the payload range.
"""

from __future__ import annotations

from collections.abc import Mapping

from neuro_hw.compiler.graded import Signal
from neuro_hw.compiler.program import InputProgram
from neuro_hw.compiler.report import Report
from neuro_hw.compiler.target import Target
from neuro_hw.errors import ValidationError
from neuro_hw.ir.circuit import Circuit, output_shape


def graded_input_ranges(
    circuit: Circuit, input_ranges: Mapping[str, float], target: Target, report: Report
) -> dict[str, float]:
    """The declared range of every graded input (module doc)."""
    third_sources = {src for spec in circuit.plasticity.values() for src in spec.third_factor.values()}
    activity_pres = {spec.pre for spec in circuit.plasticity.values() if spec.pre_activity}
    ranges = {}
    for name in circuit.input_names:
        if name in input_ranges:
            ranges[name] = float(input_ranges[name])
        elif name in activity_pres:
            raise ValidationError(
                f"input {name!r} is the graded pre activity of a plastic connection: declare its range with "
                f"input_ranges={{'{name}': largest value}}",
                node=name,
                field="input_ranges",
            )
        elif name in third_sources:
            ranges[name] = float(target.learning.trace_max)  # payloads sent unchanged
            report.notes.append(
                f"input {name!r} carries graded values without a declared range: values are sent as integer "
                f"payloads unchanged (0..{target.learning.trace_max}); pass input_ranges={{'{name}': max}} to "
                "scale them"
            )
    return ranges


def input_programs(circuit: Circuit, signals: Mapping[str, Signal]) -> dict[str, InputProgram]:
    """One :class:`InputProgram` per stimulus input of ``circuit``: graded ones from their planned signal."""
    inputs = {}
    for name in circuit.input_names:
        n = circuit.size(name)
        shape = output_shape(circuit.nodes[name])
        sig = signals.get(name)
        if sig is not None:
            inputs[name] = InputProgram(name, n, True, sig.scale, sig.payload_max, shape)
        else:
            inputs[name] = InputProgram(name, n, graded=False, scale=1.0, max_payload=1, shape=shape)
    return inputs
