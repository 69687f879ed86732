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
from dataclasses import dataclass, field

import numpy as np

from neuro_hw.compiler.conv_weights import quantize_conv
from neuro_hw.compiler.graded import (
    GradedPlan,
    align_forward_scales,
    expand_rails,
    int32_headroom,
    plan_graded,
    signal_reports,
    source_scale,
)
from neuro_hw.compiler.graph import check_supported, resolve_wiring
from neuro_hw.compiler.inputs import graded_input_ranges, input_programs
from neuro_hw.compiler.learning import ModulatorUnderflow, compile_learning
from neuro_hw.compiler.neurons import neuron_model, neuron_program, step_bias, threshold_integer, voltage_scale
from neuro_hw.compiler.placement import place
from neuro_hw.compiler.program import ConnectionProgram, EngineFormat, GradedProgram, Program
from neuro_hw.compiler.report import Report, WeightStepReport
from neuro_hw.compiler.target import Target, load_target
from neuro_hw.compiler.weights import quantize_weights, synaptic_delays, weight_range
from neuro_hw.errors import InputError, NeuroHWError, RuleError, ValidationError
from neuro_hw.ir.circuit import NEURON_TYPES, Circuit


@dataclass(frozen=True)
class CompileOptions:
    """What the user tells the compiler beyond the circuit and the target (see :func:`compile_circuit`)."""

    input_ranges: Mapping[str, float] = field(default_factory=dict)
    activity_ranges: Mapping[str, float] = field(default_factory=dict)
    signal_levels: Mapping[str, int] = field(default_factory=dict)
    trace_impulse: int | None = None


def _compile_once(
    circuit: Circuit, target: Target, dt: float, options: CompileOptions, dropped_bits: dict[str, int]
) -> Program:
    report = Report(target=target.name, dt=dt, circuit_hash=circuit.hash())
    check_supported(circuit, target.name)
    wiring = resolve_wiring(circuit, target.name, dt)
    report.notes += wiring.notes
    graded_ranges = graded_input_ranges(circuit, options.input_ranges, target, report)
    plan = plan_graded(circuit, wiring, target, graded_ranges, options.activity_ranges, report, options.signal_levels)
    for name, k in dropped_bits.items():
        sig = plan.signals[name]
        old = sig.scale
        sig.payload_max, sig.dropped_bits = (sig.payload_max + 1) // 2**k - 1, k
        for rail, _ in plan.rails.get(name, []):
            _rescale(plan, rail, sig.scale / old)
    connections = expand_rails(wiring.connections, plan)
    ranges_of = {c.name: weight_range(c, circuit.plasticity.get(c.plastic) if c.plastic else None) for c in connections}
    align_forward_scales(circuit, plan, connections, ranges_of, target)
    inputs = input_programs(circuit, plan.signals)

    def scale_of(source: str) -> float:
        return source_scale(circuit, source, plan)

    models = {name: neuron_model(circuit, name, target, dt, report) for name in circuit.names_of_type(*NEURON_TYPES)}
    vth = {}
    for name, model in models.items():
        ranges = [
            weight_range(conn, circuit.plasticity.get(conn.plastic) if conn.plastic else None, report.notes)
            / scale_of(conn.source)
            for conn in connections
            if conn.target == name
        ]
        vth[name] = threshold_integer(
            model,
            ranges,
            target,
            report,
            bias=step_bias(model, wiring.affine_bias.get(name)),
            bias_sources=tuple(wiring.affine_sources.get(name, ())),
        )
    neurons: dict = {}
    for name, model in models.items():
        shape = tuple(int(s) for s in np.atleast_1d(circuit.nodes[name].output_type["output"]))
        neurons[name] = neuron_program(model, vth[name], wiring.affine_bias.get(name), shape, target, report)
    for name in plan.programs:
        ir_node = name.rstrip("+-") if name not in circuit.nodes else name
        if ir_node in wiring.affine_bias:
            raise RuleError("graded neurons have no bias on this target; drop the Affine bias", node=ir_node)
    neurons.update(plan.programs)
    program_conns: dict[str, ConnectionProgram] = {}
    for conn in connections:
        spec = circuit.plasticity.get(conn.plastic) if conn.plastic else None
        if conn.target in models:
            model = models[conn.target]
            S = voltage_scale(model, vth[conn.target], target)
            row_gain = model.gain * S / 2.0**target.neuron.activation_shift / scale_of(conn.source)
        else:
            row_gain = np.full(conn.weight.shape[0], plan.port_scales[(conn.target, conn.port)] / scale_of(conn.source))
        graded_input = conn.source in inputs and inputs[conn.source].graded
        spike_source = not (graded_input or isinstance(neurons.get(conn.source), GradedProgram))
        conv = None
        quantized = None if conn.conv is None else quantize_conv(conn, row_gain, target, report, spike_source)
        if quantized is not None:
            W_int, exp, sign_mode, w_scale, conv = quantized
        else:
            W_int, exp, sign_mode, w_scale = quantize_weights(conn, row_gain, spec, target, report, spike_source)
        delays = synaptic_delays(conn, target)
        num_message_bits = 0
        if conn.source in inputs and inputs[conn.source].graded:
            num_message_bits = int(math.ceil(math.log2(inputs[conn.source].max_payload + 1)))
        elif isinstance(neurons.get(conn.source), GradedProgram):
            num_message_bits = target.graded.payload_bits
        learning = None
        if spec is not None:
            learning = compile_learning(
                conn, spec, float(w_scale[0, 0]), scale_of, plan.rails, target, dt, options.trace_impulse, report
            )
            report.weight_steps.append(_weight_steps(conn.plastic, conn.weight, float(w_scale[0, 0])))
        program_conns[conn.name] = ConnectionProgram(
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
            port=conn.port,
            origin=conn.origin,
            origin_rows=conn.origin_rows,
            origin_cols=conn.origin_cols,
            conv=conv,
        )
    report.signals = signal_reports(plan)
    payloads = {name: sig.payload_max for name, sig in plan.signals.items()}
    for name, rails in plan.rails.items():
        payloads.update({rail: plan.signals[name].payload_max for rail, _ in rails})
    for (population, port), headroom in int32_headroom(program_conns, payloads).items():
        if headroom < 1:
            raise ValidationError(
                f"the int32 sum into port {port!r} can overflow: at the declared ranges its connections can "
                f"deliver {1 / headroom:.3g} x 2^31; lower the ranges or the payload bits (forward_bits)",
                node=population,
            )
        if headroom < 4 and population in plan.programs:
            report.notes.append(
                f"{population}: int32 headroom of port {port} is only {headroom:.2g}x the largest sum at the declared "
                "ranges; activities far beyond their ranges would wrap"
            )
    program = Program(
        target=target.name,
        dt=dt,
        inputs=inputs,
        neurons=neurons,
        connections=program_conns,
        circuit_hash=circuit.hash(),
        report=report,
        metadata={
            "outputs": {o: circuit.predecessors(o) for o in circuit.output_names},
            "rails": {k: [list(r) for r in v] for k, v in plan.rails.items()},
        },
        engine=EngineFormat(target.weights.bits, target.learning.trace_bits, target.learning.rounding),
    )
    report.resources = place(program, target)
    return program


def _rescale(plan: GradedPlan, population: str, factor: float) -> None:
    """Scale a population's output and port-a scales (fewer payload levels for the same range)."""
    prog = plan.programs[population]
    if prog.y_scale is not None:
        prog.y_scale = prog.y_scale * factor
    plan.port_scales[(population, "a")] *= factor
    if prog.clip:
        prog.clip = max(1, int(round(prog.clip * factor)))
    if prog.knee:
        prog.knee = int(round(prog.knee * factor))


def _weight_steps(synapse: str, weight: np.ndarray, s_w: float) -> WeightStepReport:
    nonzero = np.abs(weight[weight != 0])
    typical = float(np.median(nonzero)) if nonzero.size else 0.0
    lsb = 1.0 / s_w
    return WeightStepReport(synapse, lsb, typical, lsb / typical if typical else float("inf"), lsb / 128.0)


def _compile(circuit: Circuit, target: Target, dt: float, options: CompileOptions) -> Program:
    """Compile, dropping payload bits of a modulator while its learning-rate coefficients underflow."""
    dropped: dict[str, int] = {}
    while True:
        try:
            program = _compile_once(circuit, target, dt, options, dropped)
        except ModulatorUnderflow as err:
            k = dropped.get(err.signal, 0) + 1
            if k >= target.learning.trace_bits:
                raise RuleError(
                    f"{err.reason}, even with the modulator {err.signal!r} at 1 bit; use a larger learning rate or "
                    "a coarser weight range (w_bounds)",
                    node=err.node,
                    field=err.field,
                ) from None
            dropped[err.signal] = k
            continue
        for name, k in dropped.items():
            program.report.notes.append(
                f"{name}: {k} payload bit(s) dropped so that the learning rates it modulates are representable "
                "(a coarser error carries a larger coefficient)"
            )
        return program


def compile_circuit(
    circuit: Circuit,
    target: str | Target = "loihi2",
    dt: float = 1e-3,
    *,
    input_ranges: Mapping[str, float] | None = None,
    activity_ranges: Mapping[str, float] | None = None,
    signal_levels: Mapping[str, int] | None = None,
    trace_impulse: int | None = None,
) -> Program:
    """Quantise ``circuit`` for ``target`` with step ``dt``; the returned Program carries its Report.

    ``input_ranges`` gives, per graded input (e.g. a third factor or a graded pre activity), the largest
    magnitude its float values take; ``activity_ranges`` the same for graded neurons without a clip; the
    compiler maps each range onto the payload bits it gives the signal (:mod:`.graded`); ``signal_levels``
    caps the payload levels of named graded signals (e.g. ``{"x": 16}``).  ``trace_impulse``
    sets the integer impulse of spike-driven traces (default: the target's ``default_impulse``; lower it when traces
    saturate at the circuit's firing rates, see the report notes).
    """
    if not isinstance(circuit, Circuit):
        raise TypeError(f"compile() expects a Circuit, got {type(circuit).__name__}")
    if isinstance(dt, bool) or not (isinstance(dt, (int, float)) and math.isfinite(dt) and dt > 0):
        raise InputError(f"dt must be a positive finite number, got {dt!r}", field="dt")
    try:
        circuit.validate()
    except NeuroHWError as err:
        raise err.located(file=circuit.source) from None
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
    options = CompileOptions(
        dict(input_ranges or {}), dict(activity_ranges or {}), dict(signal_levels or {}), trace_impulse
    )
    try:
        return _compile(circuit, tgt, float(dt), options)
    except NeuroHWError as err:  # about the circuit: name the file it came from
        raise err.located(file=circuit.source) from None
