"""Graded stage of the compiler: graded signals get integer scales, graded neurons become
:class:`~neuro_hw.compiler.program.GradedProgram` populations.

**Signals.** Every graded signal -- a graded neuron's output or a graded input -- is carried as an integer
payload ``p = round(value * S)`` with one scale ``S = M / R`` (payload levels ``M`` over its declared range
``R``).  ``R`` is the clip of a clipped activation, else the user's ``activity_ranges`` / ``input_ranges``
entry (required: the compiler cannot guess how large a rate gets).  ``M`` follows what reads the signal:

=====================================  ====================  =================================================
role                                   ``M``                 why
=====================================  ====================  =================================================
pre activity of a plastic connection   ``2 * trace_max``     ``x1 = round(p / 2)`` must fit the 7-bit trace
third factor / modulator source        ``trace_max``         the y registers take ``p`` itself (7 bits)
forward only (feeds weights)           ``2**forward_bits-1`` resolution only (payloads add in int32)
=====================================  ====================  =================================================

A signal with several roles takes the smallest ``M``; ``signal_levels={"x": 16}`` gives a signal fewer levels
(an input with 17 natural values, or a precision study).  A learning rate too small for the engine's smallest
scaling factor at these scales makes the compiler drop bits of the modulator (halve its ``M``) until the
coefficient is representable; the report says how many bits every signal kept.

**Rails.** The engine's traces are unsigned, so a signed population read as a modulator (an error
``e = y - target``) is built as two populations ``e+ = max(e, 0)`` and ``e- = max(-e, 0)`` (its port-``a``
inputs negated for ``e-``); everything that reads ``e`` reads ``e+`` and ``-e-`` instead, and the rule
carries ``e`` as ``y2 - y3`` (:mod:`.learning`).

**Neurons** (scale ``S`` of the output, ``S_a`` of the input sum, ``S_b`` of a gate sum):

* ``identity`` -> ``identity`` (``GradedVec``), ``relu`` -> ``relu`` (``GradedReluVec``) -- but a ReLU whose
  output is a plastic pre is clipped at its range (``x1`` must not wrap), and said so;
* ``clipped_relu`` -> ``clip`` at ``round(c S)``; ``softplus`` -> ``hard_softplus`` (knee ``round(d S)``):
  the chip computes the stated hardware form, the reference measures what that costs;
* products: ``v = (a * g(b)) >> shift`` with ``g`` = the gate as integer comparisons on ``b``
  (``relu_derivative``: ``b > 0``; ``clipped_relu_derivative``: ``0 < b < round(c S_b)``;
  ``softplus_derivative`` (hardware form): 0, 1/2, 1 as ``(b > 0) + (b >= round(d S_b))`` with ``shift 1``;
  ``identity``: ``b`` itself with ``shift = round(log2 S_b)``), so ``S_a = S * 2**shift / S_g``.

The input sum ``a`` of a graded population is in units of ``S_a``: a connection from a source of scale
``S_src`` needs ``W_int 2**weight_exp = W S_a / S_src`` (:mod:`.weights`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from neuro_hw.compiler.graph import Connection, Wiring
from neuro_hw.compiler.program import GradedProgram
from neuro_hw.compiler.report import Report, SignalReport
from neuro_hw.compiler.target import Target
from neuro_hw.errors import InputError, UnsupportedNodeError, ValidationError
from neuro_hw.ir.circuit import Circuit
from neuro_hw.ir.graded import GradedNeuron, ProductNeuron, hard_softplus_knee, is_graded

ROLE_PRE = "pre activity"
ROLE_FACTOR = "third factor"
ROLE_FORWARD = "forward"


@dataclass
class Signal:
    """A graded signal: its range ``R`` (float units), payload levels ``M`` and what reads it."""

    name: str
    range: float
    payload_max: int
    roles: list[str] = field(default_factory=list)
    signed: bool = False
    rails: bool = False
    #: Bits dropped from the payload levels so that a learning rate is representable.
    dropped_bits: int = 0
    #: Extra resolution (1..2) of a forward-only signal, so that its input weights fill their format.
    aligned: float = 1.0

    @property
    def scale(self) -> float:
        """Integers per float unit."""
        return self.payload_max * self.aligned / self.range

    @property
    def bits(self) -> float:
        return math.log2(self.payload_max + 1)


@dataclass
class GradedPlan:
    """What the graded stage decided: signal scales, the populations (rails expanded) and port scales."""

    signals: dict[str, Signal]
    #: IR node -> its Program populations with the sign each stands for (``[("e+", 1), ("e-", -1)]``).
    rails: dict[str, list[tuple[str, int]]]
    programs: dict[str, GradedProgram]
    #: (population, port) -> integers of that port's sum per float unit.
    port_scales: dict[tuple[str, str], float]


def signal_roles(circuit: Circuit, wiring: Wiring) -> dict[str, list[str]]:
    """For every graded population and input: what reads it (module doc)."""
    roles: dict[str, list[str]] = {}

    def add(name: str, role: str) -> None:
        roles.setdefault(name, [])
        if role not in roles[name]:
            roles[name].append(role)

    for spec in circuit.plasticity.values():
        if spec.pre_activity:
            add(spec.pre, ROLE_PRE)
        for source in spec.third_factor.values():
            add(source, ROLE_FACTOR)
    for conn in wiring.connections:
        if is_graded(circuit.nodes[conn.source]) or conn.source in circuit.input_names:
            add(conn.source, ROLE_FORWARD)
    return roles


def _levels(roles: list[str], target: Target) -> int:
    """Payload levels ``M`` of a signal with these readers: the smallest any of them allows (module doc)."""
    m = target.graded.forward_max
    if ROLE_PRE in roles:
        m = min(m, 2 * target.learning.trace_max)
    if ROLE_FACTOR in roles:
        m = min(m, target.learning.trace_max)
    return m


def _declared_range(circuit: Circuit, name: str, ranges: Mapping[str, float], what: str) -> float:
    node = circuit.nodes[name]
    clip = None
    if isinstance(node, GradedNeuron) and math.isfinite(node.clip):
        clip = node.clip
    value = ranges.get(name, clip)
    if value is None:
        raise ValidationError(
            f"graded {what} {name!r} has no declared range: pass {what}_ranges={{'{name}': largest |value|}} "
            "(the compiler maps that range onto the payload bits)",
            node=name,
            field=f"{what}_ranges",
        )
    return float(value)


def plan_signals(
    circuit: Circuit,
    wiring: Wiring,
    target: Target,
    graded_inputs: Mapping[str, float],
    activity_ranges: Mapping[str, float],
    signal_levels: Mapping[str, int] | None = None,
) -> dict[str, Signal]:
    """The graded signals with their ranges and payload levels (module doc); ``graded_inputs`` holds the
    declared range of every graded input, ``signal_levels`` caps the payload levels of named signals."""
    roles = signal_roles(circuit, wiring)
    signals: dict[str, Signal] = {}
    for name, node in circuit.graded_nodes.items():
        r = roles.get(name, [ROLE_FORWARD])
        signed = bool(node.signed)
        rails = signed and ROLE_FACTOR in r
        value = _declared_range(circuit, name, activity_ranges, "activity")
        signals[name] = Signal(name, value, _levels(r, target), r, signed, rails)
        if ROLE_PRE in r and signed:
            raise UnsupportedNodeError(
                "a signed graded population cannot be the pre activity of a plastic connection (x1 is unsigned); "
                "feed it through a relu or clipped_relu population",
                node=name,
            )
    for name, value in graded_inputs.items():
        r = roles.get(name, [ROLE_FORWARD])
        signals[name] = Signal(name, float(value), _levels(r, target), r)
    for name, levels in (signal_levels or {}).items():
        if name not in signals:
            raise InputError("signal_levels names no graded signal of the circuit", node=name, field="signal_levels")
        if isinstance(levels, bool) or not isinstance(levels, (int, np.integer)) or not 1 <= levels:
            raise InputError(f"signal levels must be a positive integer, got {levels!r}", node=name,
                             field="signal_levels")  # fmt: skip
        if levels > signals[name].payload_max:
            raise InputError(
                f"{levels} levels exceed the {signals[name].payload_max} this signal can carry "
                f"({', '.join(signals[name].roles)})",
                node=name,
                field="signal_levels",
            )
        signals[name].payload_max = int(levels)
    return signals


def _check_ranges(activity_ranges: Mapping[str, float], circuit: Circuit) -> None:
    for name, value in activity_ranges.items():
        if name not in circuit.nodes or not is_graded(circuit.nodes[name]):
            raise InputError("activity_ranges names a node that is not a graded neuron", node=name,
                             field="activity_ranges")  # fmt: skip
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
            raise InputError(f"activity range must be a positive number, got {value!r}", node=name,
                             field="activity_ranges")  # fmt: skip


def _population(name: str, node: GradedNeuron | ProductNeuron, signal: Signal, gate_scale: float | None,
                rectify: bool, report: Report) -> tuple[GradedProgram, float]:  # fmt: skip
    """The GradedProgram of one rail of ``node`` and the scale of its port ``a``."""
    S = signal.scale
    n = int(np.prod(node.shape))
    shape = tuple(int(s) for s in node.shape)
    y_scale = np.full(n, S)
    payload_cap = signal.payload_max if ROLE_PRE in signal.roles else 0
    if isinstance(node, GradedNeuron):
        if node.activation == "identity":
            act, clip = ("relu", 0) if rectify else ("identity", 0)
        elif node.activation == "relu":
            act, clip = ("clip", payload_cap) if payload_cap else ("relu", 0)
            if payload_cap:
                report.notes.append(
                    f"{name}: relu output is clipped at its declared range {signal.range:g} (payload {payload_cap}) "
                    "because it is the pre activity of a plastic connection (x1 = payload/2 must fit 7 bits)"
                )
        elif node.activation == "clipped_relu":
            act, clip = "clip", int(round(node.clip * S))
            if payload_cap:
                clip = min(clip, payload_cap)
        else:  # softplus: the hardware form
            act = "hard_softplus"
            clip = int(round(node.clip * S)) if math.isfinite(node.clip) else payload_cap
            if payload_cap and clip:
                clip = min(clip, payload_cap)
            report.notes.append(
                f"{name}: softplus(beta={node.beta:g}) runs as the hard softplus (0 / (x+d)/2 / x, "
                f"d = {hard_softplus_knee(node.beta):.4g}); simulate(..., activations='hardware') measures the cost"
            )
        knee = int(round(hard_softplus_knee(node.beta) * S)) if act == "hard_softplus" else 0
        return GradedProgram(name, n, act, clip, knee, shape=shape, y_scale=y_scale), S
    assert gate_scale is not None
    act = "relu" if rectify else "identity"
    if payload_cap:
        act, clip = "clip", payload_cap
    else:
        clip = 0
    shift, g_scale = 0, 1.0
    lo = hi = 0
    if node.gate == "identity":
        shift = max(0, int(round(math.log2(gate_scale))))
        g_scale, gate = gate_scale, "identity"
    elif node.gate == "relu_derivative":
        gate = "step"
    elif node.gate == "clipped_relu_derivative":
        gate, hi = "window", int(round(node.gate_clip * gate_scale))
    else:  # softplus_derivative: the hard softplus' derivative (0, 1/2, 1)
        gate, hi, shift, g_scale = "half_step", int(round(hard_softplus_knee(node.gate_beta) * gate_scale)), 1, 2.0
        report.notes.append(
            f"{name}: softplus_derivative runs as the hard softplus' derivative (0, 1/2, 1); "
            "simulate(..., activations='hardware') measures the cost"
        )
    program = GradedProgram(
        name, n, act, clip, 0, gate=gate, gate_lo=lo, gate_hi=hi, shift=shift, shape=shape, y_scale=y_scale
    )
    return program, S * 2.0**shift / g_scale


def plan_graded(
    circuit: Circuit,
    wiring: Wiring,
    target: Target,
    graded_inputs: Mapping[str, float],
    activity_ranges: Mapping[str, float],
    report: Report,
    signal_levels: Mapping[str, int] | None = None,
) -> GradedPlan:
    """Signals, rails and GradedPrograms of ``circuit`` (module doc)."""
    _check_ranges(activity_ranges, circuit)
    signals = plan_signals(circuit, wiring, target, graded_inputs, activity_ranges, signal_levels)
    rails: dict[str, list[tuple[str, int]]] = {}
    programs: dict[str, GradedProgram] = {}
    port_scales: dict[tuple[str, str], float] = {}
    for name, node in circuit.graded_nodes.items():
        signal = signals[name]
        gate_scale = None
        if isinstance(node, ProductNeuron):
            gate_sources = {c.source for c in wiring.connections if c.target == name and c.port == "b"}
            scales = {_source_scale(circuit, s, signals) for s in gate_sources}
            if len(scales) != 1:
                raise ValidationError(
                    f"the gate inputs of a ProductNeuron must come from sources of one scale, got {sorted(scales)} "
                    f"from {sorted(gate_sources)}",
                    node=name,
                    field="gate_inputs",
                )
            gate_scale = scales.pop()
        names = [(f"{name}+", 1), (f"{name}-", -1)] if signal.rails else [(name, 1)]
        rails[name] = names
        for rail, _sign in names:
            program, s_a = _population(rail, node, signal, gate_scale, signal.rails, report)
            programs[rail] = program
            port_scales[(rail, "a")] = s_a
            if gate_scale is not None:
                port_scales[(rail, "b")] = gate_scale
        if signal.rails:
            report.notes.append(
                f"{name}: signed and read as a modulator, so it is built as two rails {name}+ = max({name}, 0) and "
                f"{name}- = max(-{name}, 0) (the engine's traces are unsigned)"
            )
    return GradedPlan(signals, rails, programs, port_scales)


def _source_scale(circuit: Circuit, source: str, signals: Mapping[str, Signal]) -> float:
    """Payload integers per float unit of what ``source`` sends (spikes: 1); a rail ``e+``/``e-`` sends on
    the scale of its signal ``e``."""
    if source in signals:
        return signals[source].scale
    if source not in circuit.nodes and source[-1:] in "+-" and source[:-1] in signals:
        return signals[source[:-1]].scale
    return 1.0


def source_scale(circuit: Circuit, source: str, plan: GradedPlan) -> float:
    return _source_scale(circuit, source, plan.signals)


def expand_rails(connections: list[Connection], plan: GradedPlan) -> list[Connection]:
    """Connections with railed sources and targets expanded: a source rail ``e-`` sends ``-e``, so its
    weights are negated; a target rail ``e-`` computes ``max(-a, 0)``, so its port-``a`` weights are negated."""
    out: list[Connection] = []
    for conn in connections:
        sources = plan.rails.get(conn.source, [(conn.source, 1)])
        targets = plan.rails.get(conn.target, [(conn.target, 1)])
        if conn.plastic and (len(sources) > 1 or len(targets) > 1):
            node = conn.source if len(sources) > 1 else conn.target
            raise UnsupportedNodeError(
                f"plastic connection {conn.plastic!r} touches {node!r}, which is built as two rails (a signed "
                "population read as a modulator); route the plastic weights through an identity population",
                node=conn.plastic,
            )
        for src, s_sign in sources:
            for tgt, t_sign in targets:
                sign = s_sign * (t_sign if conn.port == "a" else 1)
                name = conn.name if (len(sources), len(targets)) == (1, 1) else f"{conn.name}[{src}->{tgt}]"
                rows = None if conn.origin_rows is None else conn.origin_rows * sign
                out.append(
                    Connection(
                        name,
                        src,
                        tgt,
                        conn.weight * sign,
                        conn.delay,
                        conn.plastic,
                        conn.port,
                        origin=conn.origin,
                        origin_rows=rows,
                        origin_cols=conn.origin_cols,
                        conv=None if conn.conv is None else conn.conv.with_kernel(conn.conv.kernel * sign),
                    )
                )
    return out


def align_forward_scales(
    circuit: Circuit, plan: GradedPlan, connections: list[Connection], weight_ranges: Mapping[str, np.ndarray],
    target: Target,
) -> None:  # fmt: skip
    """Give each forward-only graded population (an output read by weights only, no clip, no gate) up to twice
    its payload levels, so that its largest input weight maps to the top of the weight format instead of up
    to half of it (the weight exponent is a power of two): ``S <- S * min_c 255 * 2**e_c / wr_c`` over its
    input connections ``c`` (``wr_c`` their largest weight in integers at exponent 0, ``e_c`` the exponent
    that fits it).  ``weight_ranges[c.name]``: the per-row largest weight of connection ``c`` (float)."""
    magnitude = target.weights.magnitude_max
    for name, sig in plan.signals.items():
        node = circuit.nodes.get(name)
        if sig.roles != [ROLE_FORWARD] or not isinstance(node, GradedNeuron) or math.isfinite(node.clip):
            continue
        if node.activation == "softplus":
            continue
        slack = math.inf
        for rail, _ in plan.rails[name]:
            for conn in connections:
                if conn.target != rail:
                    continue
                wr = (
                    float(np.max(weight_ranges[conn.name], initial=0.0))
                    * sig.scale
                    / _source_scale(circuit, conn.source, plan.signals)
                )
                if wr <= 0:
                    continue
                e = max(math.ceil(math.log2(wr / magnitude)), target.weights.exp_min)
                slack = min(slack, magnitude * 2.0**e / wr)
        if not math.isfinite(slack) or slack < 1.0 + 1e-9:
            continue
        factor = min(slack, 2.0)
        sig.aligned *= factor
        for rail, _ in plan.rails[name]:
            prog = plan.programs[rail]
            if prog.y_scale is not None:
                prog.y_scale = prog.y_scale * factor
            plan.port_scales[(rail, "a")] *= factor


def signal_reports(plan: GradedPlan) -> list[SignalReport]:
    """One report row per graded signal: range, scale, bits, roles."""
    rows = []
    for name, sig in plan.signals.items():
        rows.append(
            SignalReport(
                signal=name,
                roles=list(sig.roles),
                range=sig.range,
                scale=sig.scale,
                payload_max=int(round(sig.payload_max * sig.aligned)),
                bits=math.log2(sig.payload_max * sig.aligned + 1),
                dropped_bits=sig.dropped_bits,
                signed=sig.signed,
                rails=[r for r, _ in plan.rails.get(name, [])] if sig.rails else [],
            )
        )
    return rows


def int32_headroom(connections: Mapping[str, Any], payload_max: Mapping[str, int]) -> dict[tuple[str, str], float]:
    """For every (population, port): ``2**31`` over the largest sum its connections can deliver when every
    source sends its largest payload (``payload_max``; spikes 1) -- plastic weights at the extreme of their format,
    ``2**num_weight_bits`` (256 on Loihi 2; a target variant with wider weights lets them grow further).

    The Dense sums and the port sum are int32 and wrap silently, so a headroom below 1 is refused by the
    pipeline; a small headroom means that activities well above their declared ranges would wrap."""
    bounds: dict[tuple[str, str], float] = {}
    for conn in connections.values():
        w = np.abs(conn.weights.astype(np.float64))
        if conn.learning is not None:
            w = np.full(w.shape, 2.0 ** int(conn.num_weight_bits))
        acc = w.sum(axis=1) * float(payload_max.get(conn.source, 1))
        worst = float(acc.max(initial=0.0)) * 2.0 ** max(int(conn.weight_exp), 0)
        if float(acc.max(initial=0.0)) >= 2.0**31:
            bounds[(conn.target, conn.port)] = float("inf")
        key = (conn.target, conn.port)
        bounds[key] = bounds.get(key, 0.0) + worst * (1.0 if conn.weight_exp >= 0 else 2.0 ** int(conn.weight_exp))
    return {k: (2.0**31 / v if v else float("inf")) for k, v in bounds.items()}
