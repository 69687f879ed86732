"""Graph stage of the compiler: which source drives which neuron population through which weights.

A NIR graph routes signals through pass-through nodes (``Input`` with predecessors, ``Output`` that feeds
on, ``Flatten``, ``Scale``, ``Delay``).  The chip has none of them: what reaches a population is a weight
matrix from a source (a stimulus input or another population), with a per-synapse delay.  This module
walks the graph and folds every path into that form::

    source --[Scale s_src, Delay d_src]--> W --[Scale s_tgt, Delay d_tgt]--> population
    =>  Connection(weight = diag(s_tgt) W diag(s_src),  delay = d_tgt[:, None] + d_src[None, :])  (steps)

Several sources or targets of one weight node give one connection per (source, target) pair, named
``"W[source->target]"``; a weight node with one of each keeps its own name.  Convolution and pooling nodes are
weight nodes with their unrolled matrix; a pooling node next to another weight node is folded into it
(:mod:`.weight_maps`: one matrix, one more step of synaptic delay per folded node).  A connection that is still a
convolution -- one source scale, target scales constant per output channel, one delay -- keeps its geometry
(``Connection.conv``, kernel with the scales folded in).  An edge into a population
without a weight node becomes identity weights (with the chip's one-step synaptic latency, reported).
Affine biases are collected per target population (float, scaled like the weights).  A connection into
a ``ProductNeuron`` feeds its gate port ``b`` when the node the path enters it from is one of the
product's ``gate_inputs``, else its input port ``a``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from neuro_hw.compiler.weight_maps import WeightMap, describe_fold, is_trial_weight_origin, weight_maps
from neuro_hw.errors import UnsupportedNodeError, ValidationError
from neuro_hw.ir.circuit import POPULATION_TYPES, WEIGHT_TYPES, Circuit
from neuro_hw.ir.conv import ConvGeometry
from neuro_hw.ir.graded import ProductNeuron

#: Node types folded into the connections' weights and delays.
PASS_THROUGH = ("Flatten", "Scale", "Delay", "Input", "Output")


@dataclass(frozen=True)
class Route:
    """A source (or target) reached through pass-through nodes, with per-element scale and delay (steps)."""

    end: str
    scale: np.ndarray
    delay: np.ndarray
    #: The node the path enters ``end`` from (for a target route).
    via: str = ""


@dataclass
class Connection:
    """Weights from ``source`` (input or population) into population ``target``, scales folded in."""

    name: str
    source: str
    target: str
    weight: np.ndarray  # (n_target, n_source) float
    delay: np.ndarray  # (n_target, n_source) int64 steps
    plastic: str | None = None  # the weight node carrying plasticity
    port: str = "a"  # the target's input sum, or "b": a product neuron's gate
    #: The weight node this connection comes from and how: ``weight = origin_rows[:, None] * W *
    #: origin_cols[None, :]`` (path scales, rail signs); None for direct edges (identity weights).
    origin: str | None = None
    origin_rows: np.ndarray | None = None
    origin_cols: np.ndarray | None = None
    #: The convolution the weights unroll from (float kernel, scales folded in), when they still are one.
    conv: ConvGeometry | None = None


@dataclass
class Wiring:
    """Everything the graph stage found: connections in graph order, Affine biases and notes for the report."""

    connections: list[Connection]
    affine_bias: dict[str, np.ndarray]
    notes: list[str] = field(default_factory=list)
    #: The Affine nodes whose biases reach each population.
    affine_sources: dict[str, list[str]] = field(default_factory=dict)


def _flat(node, attr: str, n: int) -> np.ndarray:
    return np.broadcast_to(np.asarray(getattr(node, attr), dtype=np.float64).reshape(-1), (n,)).astype(np.float64)


def delay_steps(circuit: Circuit, name: str, dt: float) -> np.ndarray:
    """The delays of Delay node ``name`` in whole steps (refused unless a multiple of ``dt``)."""
    d = np.asarray(circuit.nodes[name].delay, dtype=np.float64).reshape(-1) / dt
    steps = np.rint(d)
    if np.any(np.abs(steps - d) > 1e-9):
        raise ValidationError(f"delays must be multiples of dt={dt:g}", node=name, field="delay")
    return steps.astype(np.int64)


def unsupported_nodes(circuit: Circuit, target: str) -> dict[str, str]:
    """The nodes whose kind the chip cannot express at all, with the reason (checked before any mapping)."""
    found = {name: f"Threshold nodes have no fixed-point equivalent on {target}"
             for name in circuit.names_of_type("Threshold")}  # fmt: skip
    for name in circuit.names_of_type("LI", "CubaLI", "I"):
        feeds = [s for s in circuit.successors(name) if circuit.type_of(s) != "Output"]
        if feeds:
            found[name] = (
                f"non-spiking {circuit.type_of(name)} node feeds {feeds}; on {target} neurons send spikes only"
            )
    return found


def check_supported(circuit: Circuit, target: str) -> None:
    """Refuse node kinds the chip cannot express at all (before any mapping): the first of :func:`unsupported_nodes`."""
    for name, reason in unsupported_nodes(circuit, target).items():
        raise UnsupportedNodeError(reason, node=name)


class _Walker:
    def __init__(self, circuit: Circuit, target: str, dt: float) -> None:
        self.c, self.target, self.dt = circuit, target, dt

    def through(self, name: str, n: int) -> tuple[np.ndarray, np.ndarray]:
        kind = self.c.type_of(name)
        if kind == "Scale":
            return _flat(self.c.nodes[name], "scale", n), np.zeros(n, dtype=np.int64)
        if kind == "Delay":
            return np.ones(n), np.broadcast_to(delay_steps(self.c, name, self.dt), (n,)).copy()
        return np.ones(n), np.zeros(n, dtype=np.int64)

    def sources(self, name: str, weight_node: str | None = None) -> list[Route]:
        """Walk back from ``name`` through pass-through nodes to stimulus inputs and neuron nodes.

        ``weight_node``: the weight node whose sources are sought (a weight node reached on the way is a chain
        of two matrices, refused); None when walking back from a population's direct edge, where a path that
        reaches a weight node belongs to that node's own connection and is skipped."""
        routes = []
        for p in self.c.predecessors(name):
            kind = self.c.type_of(p)
            n = self.c.size(p)
            if kind in POPULATION_TYPES or (kind == "Input" and not self.c.predecessors(p)):
                routes.append(Route(p, np.ones(n), np.zeros(n, dtype=np.int64)))
            elif kind in PASS_THROUGH:
                scale, delay = self.through(p, n)
                subs = self.sources(p, weight_node)
                routes += [Route(sub.end, sub.scale * scale, sub.delay + delay) for sub in subs]
            elif kind in WEIGHT_TYPES:
                if weight_node is None:
                    continue
                via = "" if name == weight_node else f" through {name!r}"
                raise UnsupportedNodeError(
                    f"weight node {p!r} feeds weight node {weight_node!r}{via}: a chain of two weight matrices; "
                    "fold them into one first",
                    node=weight_node,
                )
            else:
                raise UnsupportedNodeError(f"{kind} nodes are not supported on {self.target}", node=p)
        return routes

    def targets(self, name: str, weight_node: str | None = None) -> list[Route]:
        """Walk forward from ``name`` (weight node ``weight_node``, default ``name``) through pass-through nodes to
        neuron nodes (Output nodes end a walk)."""
        weight_node = weight_node or name
        routes = []
        for s in self.c.successors(name):
            kind = self.c.type_of(s)
            n = self.c.size(s)
            if kind in POPULATION_TYPES:
                routes.append(Route(s, np.ones(n), np.zeros(n, dtype=np.int64), via=name))
            elif kind == "Output" and not self.c.successors(s):
                continue
            elif kind in PASS_THROUGH:
                scale, delay = self.through(s, n)
                subs = self.targets(s, weight_node)
                routes += [Route(sub.end, sub.scale * scale, sub.delay + delay, sub.via) for sub in subs]
            elif kind in WEIGHT_TYPES:
                via = "" if name == weight_node else f" through {name!r}"
                raise UnsupportedNodeError(
                    f"weight node {weight_node!r} feeds weight node {s!r}{via}: a chain of two weight matrices; "
                    "fold them into one first",
                    node=s,
                )
            else:
                raise UnsupportedNodeError(f"{kind} nodes are not supported on {self.target}", node=s)
        return routes

    def sources_of_edge(self, p: str) -> list[Route]:
        kind = self.c.type_of(p)
        n = self.c.size(p)
        if kind in POPULATION_TYPES or (kind == "Input" and not self.c.predecessors(p)):
            return [Route(p, np.ones(n), np.zeros(n, dtype=np.int64))]
        if kind in PASS_THROUGH:
            scale, delay = self.through(p, n)
            return [Route(s.end, s.scale * scale, s.delay + delay) for s in self.sources(p)]
        raise UnsupportedNodeError(f"{kind} nodes are not supported on {self.target}", node=p)


def _port(circuit: Circuit, population: str, via: str) -> str:
    node = circuit.nodes[population]
    return "b" if isinstance(node, ProductNeuron) and via in node.gate_inputs else "a"


def _conv_of(m: WeightMap, rows: np.ndarray, cols: np.ndarray, delay: np.ndarray) -> ConvGeometry | None:
    """The map's convolution with path scales folded into its kernel, if the connection still is one: one scale on
    every source element, one per output channel on the targets, one delay."""
    g = m.geometry
    if g is None or not (np.all(cols == cols[0]) and np.all(delay == delay.flat[0])):
        return None
    per_channel = rows.reshape(g.out_shape[0], -1)
    if not np.all(per_channel == per_channel[:, :1]):
        return None
    return g.with_kernel(g.kernel * per_channel[:, 0].reshape(-1, 1, 1, 1) * cols[0])


def resolve_wiring(circuit: Circuit, target: str, dt: float) -> Wiring:
    """All source -> population connections of ``circuit`` and the Affine biases per target population."""
    walk = _Walker(circuit, target, dt)
    wiring = Wiring([], {})
    for w, m in weight_maps(circuit).items():
        W = m.matrix
        sources, targets = walk.sources(m.first, weight_node=m.first), walk.targets(m.last)
        if not targets:
            raise UnsupportedNodeError(
                f"weight node {w!r} feeds no neuron population (only Output or nothing); "
                f"{target} can only deliver weighted inputs to neurons",
                node=w,
            )
        if m.folded:
            wiring.notes.append(describe_fold(m, dt))
        plastic = w if w in circuit.plasticity else None
        if plastic and (len(sources) != 1 or len(targets) != 1):
            raise UnsupportedNodeError(
                "a plastic weight node must connect exactly one source to one neuron population", node=w
            )
        origin = w if is_trial_weight_origin(circuit, m) else None
        for tp in targets:
            Wt = W * tp.scale[:, None]
            if m.bias is not None:
                b = m.bias * tp.scale
                wiring.affine_bias[tp.end] = wiring.affine_bias.get(tp.end, 0.0) + b
                wiring.affine_sources.setdefault(tp.end, []).extend(m.bias_parts)
            for sp in sources:
                name = w if len(sources) * len(targets) == 1 else f"{w}[{sp.end}->{tp.end}]"
                delay = tp.delay[:, None] + sp.delay[None, :] + m.delay
                port = _port(circuit, tp.end, tp.via)
                rows, cols = np.asarray(tp.scale, dtype=np.float64), np.asarray(sp.scale, dtype=np.float64)
                wiring.connections.append(
                    Connection(
                        name,
                        sp.end,
                        tp.end,
                        Wt * sp.scale[None, :],
                        delay,
                        plastic,
                        port,
                        origin=origin,
                        origin_rows=rows if origin else None,
                        origin_cols=cols if origin else None,
                        conv=_conv_of(m, rows, cols, delay),
                    )
                )
    # Direct edges into neurons (through pass-through nodes, no weight node): identity weights.
    for pop in circuit.names_of_type(*POPULATION_TYPES):
        for p in circuit.predecessors(pop):
            if circuit.type_of(p) in WEIGHT_TYPES:
                continue
            for sp in walk.sources_of_edge(p):
                if sp.scale.size != circuit.size(pop):
                    raise ValidationError(f"direct edge from {sp.end!r} has the wrong size", node=pop)
                wiring.connections.append(
                    Connection(
                        f"{sp.end}->{pop}",
                        sp.end,
                        pop,
                        np.diag(sp.scale),
                        np.diag(sp.delay).astype(np.int64),
                        port=_port(circuit, pop, p),
                    )  # fmt: skip
                )
                wiring.notes.append(
                    f"direct edge {sp.end} -> {pop} has no weight node: mapped to identity weights, which adds "
                    "the one-step synaptic latency of the chip (the reference passes it within the step)"
                )
    return wiring
