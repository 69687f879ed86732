"""Compile a :class:`~neuro_hw.ir.Circuit` into an integer :class:`~neuro_hw.compiler.program.Program`.

The stages, each a module of plain functions over typed data:

1. :mod:`.graph` -- walk the NIR graph: every source -> population path becomes a
   :class:`~.graph.Connection` (float weights with scales folded in, delays in steps), plus Affine biases;
2. :mod:`.neurons` -- each neuron node becomes a :class:`~.neurons.NeuronModel` in the chip's LIF form;
   its integer threshold is chosen so that every incoming weight fits, then its voltage scale, biases and
   :class:`~.program.NeuronProgram` follow;
3. :mod:`.inputs` -- spike or graded inputs, with the host-side payload scales;
4. :mod:`.weights` -- integer weights, exponents and sign modes; :mod:`.learning` (with :mod:`.rules`)
   -- plastic connections' traces, impulses and rule microcode;
5. :mod:`.placement` -- populations onto cores, resources against the target.

Every approximation goes into the :class:`~.report.Report` the Program carries.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from neuro_hw.compiler.graph import check_supported, resolve_wiring
from neuro_hw.compiler.inputs import input_programs
from neuro_hw.compiler.learning import compile_learning
from neuro_hw.compiler.neurons import neuron_model, neuron_program, threshold_integer, voltage_scale
from neuro_hw.compiler.placement import place
from neuro_hw.compiler.program import ConnectionProgram, Program
from neuro_hw.compiler.report import Report
from neuro_hw.compiler.target import Target, load_target
from neuro_hw.compiler.weights import quantize_weights, synaptic_delays, weight_range
from neuro_hw.errors import InputError
from neuro_hw.ir.circuit import NEURON_TYPES, Circuit


def _compile(
    circuit: Circuit, target: Target, dt: float, input_ranges: dict[str, float], trace_impulse: int | None
) -> Program:
    report = Report(target=target.name, dt=dt, circuit_hash=circuit.hash())
    check_supported(circuit, target.name)
    wiring = resolve_wiring(circuit, target.name, dt)
    report.notes += wiring.notes
    models = {name: neuron_model(circuit, name, target, dt, report) for name in circuit.names_of_type(*NEURON_TYPES)}
    vth = {}
    for name, model in models.items():
        ranges = [
            weight_range(conn, circuit.plasticity.get(conn.plastic) if conn.plastic else None, report.notes)
            for conn in wiring.connections
            if conn.target == name
        ]
        vth[name] = threshold_integer(model, ranges, target, report)
    neurons = {}
    for name, model in models.items():
        shape = tuple(int(s) for s in np.atleast_1d(circuit.nodes[name].output_type["output"]))
        neurons[name] = neuron_program(model, vth[name], wiring.affine_bias.get(name), shape, target, report)
    inputs = input_programs(circuit, input_ranges, target, report)
    connections: dict[str, ConnectionProgram] = {}
    for conn in wiring.connections:
        model = models[conn.target]
        spec = circuit.plasticity.get(conn.plastic) if conn.plastic else None
        S = voltage_scale(model, neurons[conn.target].vth, target)
        W_int, exp, sign_mode, w_scale = quantize_weights(conn, model, S, spec, target, report)
        delays = synaptic_delays(conn, target)
        num_message_bits = 0
        source = inputs.get(conn.source)
        if source is not None and source.graded:
            num_message_bits = int(math.ceil(math.log2(source.max_payload + 1)))
            # The graded payload is value*scale: divide the weights back.
            if source.scale != 1.0:
                report.notes.append(
                    f"{conn.name}: graded input {conn.source!r} is scaled by {source.scale:g}; weights are not "
                    "compensated, so compile graded inputs only as third factors"
                )
        learning = None
        if spec is not None:
            learning = compile_learning(conn, spec, float(w_scale[0, 0]), inputs, target, dt, trace_impulse, report)
        connections[conn.name] = ConnectionProgram(
            name=conn.name,
            source=conn.source,
            target=conn.target,
            weights=W_int.astype(np.int32),
            weight_exp=exp,
            num_weight_bits=target.weights.bits,
            sign_mode=sign_mode,
            num_message_bits=num_message_bits,
            delays=delays,
            learning=learning,
            w_scale=w_scale,
        )
    program = Program(
        target=target.name,
        dt=dt,
        inputs=inputs,
        neurons=neurons,
        connections=connections,
        circuit_hash=circuit.hash(),
        report=report,
        metadata={"outputs": {o: circuit.predecessors(o) for o in circuit.output_names}},
    )
    report.resources = place(program, target)
    return program


def compile_circuit(
    circuit: Circuit,
    target: str | Target = "loihi2",
    dt: float = 1e-3,
    *,
    input_ranges: Mapping[str, float] | None = None,
    trace_impulse: int | None = None,
) -> Program:
    """Quantise ``circuit`` for ``target`` with step ``dt``; the returned Program carries its Report.

    ``input_ranges`` gives, per graded input (e.g. a third factor), the largest magnitude its float values
    take; the compiler scales it onto the target's graded payload range.  ``trace_impulse`` sets the integer
    impulse of spike-driven traces (default: the target's ``default_impulse``; lower it when traces
    saturate at the circuit's firing rates, see the report notes).
    """
    if not isinstance(circuit, Circuit):
        raise TypeError(f"compile() expects a Circuit, got {type(circuit).__name__}")
    if not (isinstance(dt, (int, float)) and math.isfinite(dt) and dt > 0):
        raise InputError(f"dt must be a positive finite number, got {dt!r}", field="dt")
    circuit.validate()
    tgt = target if isinstance(target, Target) else load_target(target)
    for name, value in (input_ranges or {}).items():
        if name not in circuit.input_names:
            raise InputError("input_ranges names a node that is not a circuit input", node=name, field="input_ranges")
        if not (math.isfinite(value) and value > 0):
            raise InputError(f"input range must be positive, got {value!r}", node=name, field="input_ranges")
    if trace_impulse is not None and not (
        isinstance(trace_impulse, int) and 1 <= trace_impulse <= tgt.learning.trace_max
    ):
        raise InputError(
            f"trace_impulse must be an integer in 1..{tgt.learning.trace_max}, got {trace_impulse!r}",
            field="trace_impulse",
        )
    return _compile(circuit, tgt, float(dt), dict(input_ranges or {}), trace_impulse)
