"""`Circuit`: a NIR graph plus the plasticity extension.

A circuit is a flat graph of NIR nodes (nested ``NIRGraph`` nodes are flattened on import with
dotted names, ``"sub.node"``), identity edges (several edges into one node are summed) and a map
from weight-node name to :class:`~neuro_hw.ir.plasticity.Plasticity`.

Supported node types (nir 1.0.8): Input, Output, Affine, Linear, Scale, LIF, CubaLIF, IF, LI,
CubaLI, I, Threshold, Delay, Flatten, Conv1d, Conv2d, SumPool2d, AvgPool2d; and the graded neurons of this package
(:mod:`neuro_hw.ir.graded`: GradedNeuron, ProductNeuron), which files store in the extension.  Convolution and
pooling nodes are weight nodes with a geometry (:mod:`neuro_hw.ir.conv`); their shapes are inferred from their
predecessors when the file has none (:func:`~neuro_hw.ir.conv.infer_shapes`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import fields

import nir
import numpy as np

from neuro_hw import limits
from neuro_hw.errors import RuleError, UnsupportedNodeError, ValidationError
from neuro_hw.ir.conv import CONV_TYPES, SPATIAL_TYPES, geometry_of, infer_shapes, nir_output_shape
from neuro_hw.ir.graded import GRADED_TYPES, ProductNeuron, is_graded, standin
from neuro_hw.ir.plasticity import Plasticity

NEURON_TYPES = ("LI", "LIF", "CubaLI", "CubaLIF", "I", "IF")
SPIKING_TYPES = ("LIF", "CubaLIF", "IF")
#: Nodes that are neuron populations: NIR's neuron models and the graded neurons.
POPULATION_TYPES = NEURON_TYPES + GRADED_TYPES
#: Weight nodes given by a matrix ``weight (n_out, n_in)``: the only ones that can be plastic or overridden per trial.
MATRIX_TYPES = ("Linear", "Affine")
#: Every node that delivers weighted sums (one step later under the default synaptic delay): matrices, convolutions
#: and pooling (:mod:`neuro_hw.ir.conv`).
WEIGHT_TYPES = MATRIX_TYPES + SPATIAL_TYPES
STATELESS_TYPES = ("Scale", "Threshold", "Flatten", "Input", "Output")
SUPPORTED_TYPES = (
    ("Input", "Output", "Affine", "Linear", "Scale", "Threshold", "Delay", "Flatten")
    + SPATIAL_TYPES
    + NEURON_TYPES
    + GRADED_TYPES
)
NOT_YET_SUPPORTED: tuple[str, ...] = ()
#: Parameters that must be strictly positive (time constants).
POSITIVE_FIELDS = ("tau", "tau_mem", "tau_syn")
_SKIP_FIELDS = ("input_type", "output_type", "metadata")


def node_type(node: nir.NIRNode) -> str:
    return type(node).__name__


def node_parameters(node: nir.NIRNode) -> dict[str, np.ndarray]:
    """The numeric parameters of a NIR node as float arrays (``Flatten``'s dims included)."""
    params = {}
    for f in fields(node):
        if f.name in _SKIP_FIELDS:
            continue
        value = getattr(node, f.name)
        if value is None:
            continue
        params[f.name] = np.asarray(value)
    return params


def _shape(value) -> tuple[int, ...]:
    return tuple(int(s) for s in np.asarray(value).reshape(-1))


def input_shape(node: nir.NIRNode) -> tuple[int, ...]:
    return _shape(next(iter(node.input_type.values())))


def output_shape(node: nir.NIRNode) -> tuple[int, ...]:
    return _shape(next(iter(node.output_type.values())))


def flatten_graph(graph: nir.NIRGraph, prefix: str = "") -> tuple[dict[str, nir.NIRNode], list[tuple[str, str]]]:
    """Flatten nested NIR graphs into one level with dotted node names.

    An edge into a subgraph ``G`` goes to G's Input nodes, an edge out of ``G`` leaves from G's
    Output nodes (NIR's convention); dotted edge endpoints (``"G.B"``) are kept as they are.
    """
    nodes: dict[str, nir.NIRNode] = {}
    edges: list[tuple[str, str]] = []
    subgraphs: dict[str, nir.NIRGraph] = {}
    for name, node in graph.nodes.items():
        if isinstance(node, nir.NIRGraph):
            sub_nodes, sub_edges = flatten_graph(node, prefix=f"{prefix}{name}.")
            flat = sub_nodes
            edges.extend(sub_edges)
            subgraphs[name] = node
        else:
            flat = {f"{prefix}{name}": node}
        for key, value in flat.items():  # a node "sub.x" next to a subgraph "sub" with a node "x": refuse
            if key in nodes:
                raise ValidationError(
                    "two nodes flatten to this name (a dotted node name next to a subgraph of the same prefix); "
                    "rename one of them",
                    node=key,
                )
            nodes[key] = value

    def ends(name: str, kind: type) -> list[str]:
        if name in subgraphs:
            sub = subgraphs[name]
            return [f"{prefix}{name}.{k}" for k, n in sub.nodes.items() if isinstance(n, kind)]
        return [f"{prefix}{name}"]

    for src, dst in graph.edges:
        for s in ends(src, nir.Output):
            for d in ends(dst, nir.Input):
                edges.append((s, d))
    return nodes, edges


class Circuit:
    """A NIR graph with plasticity rules attached to weight nodes.

    Parameters
    ----------
    nodes:
        Node name -> ``nir`` node.
    edges:
        ``(source, destination)`` pairs.
    plasticity:
        Weight-node name -> :class:`~neuro_hw.ir.plasticity.Plasticity`.
    metadata:
        Free-form, JSON-serialisable information kept in the file (not part of the hash).

    ``source`` is the file the circuit was loaded from (set by :func:`neuro_hw.load`, else None): errors of later
    stages (compile) name it.
    """

    def __init__(
        self,
        nodes: Mapping[str, nir.NIRNode],
        edges: Iterable[tuple[str, str]],
        plasticity: Mapping[str, Plasticity] | None = None,
        metadata: Mapping | None = None,
        *,
        validate: bool = True,
    ) -> None:
        self.nodes: dict[str, nir.NIRNode] = dict(nodes)
        self.edges: list[tuple[str, str]] = [(str(a), str(b)) for a, b in edges]
        self.plasticity: dict[str, Plasticity] = dict(plasticity or {})
        self.metadata: dict = dict(metadata or {})
        self.source: str | None = None
        infer_shapes(self.nodes, self.edges)
        if validate:
            self.validate()

    # -- NIR interop -------------------------------------------------------------------------------
    @classmethod
    def from_nir(cls, graph: nir.NIRGraph, plasticity: Mapping[str, Plasticity] | None = None) -> Circuit:
        """Wrap a ``nir.NIRGraph`` (nested graphs are flattened), optionally with plasticity."""
        if not isinstance(graph, nir.NIRGraph):
            raise ValidationError(f"expected a nir.NIRGraph, got {type(graph).__name__}")
        nodes, edges = flatten_graph(graph)
        metadata = dict(graph.metadata) if isinstance(graph.metadata, dict) else {}
        return cls(nodes, edges, plasticity, metadata)

    def to_nir(self) -> nir.NIRGraph:
        """The static network as a stock ``nir.NIRGraph``: plasticity is not representable in NIR, and graded
        neurons become identity ``Scale`` stand-ins (the file's extension restores them)."""
        nodes = {name: standin(node) if is_graded(node) else node for name, node in self.nodes.items()}
        return nir.NIRGraph(nodes=nodes, edges=list(self.edges), type_check=False)

    @property
    def graded_nodes(self) -> dict[str, nir.NIRNode]:
        """The graded neurons (:mod:`neuro_hw.ir.graded`), by name."""
        return {name: node for name, node in self.nodes.items() if is_graded(node)}

    def is_graded_output(self, name: str) -> bool:
        """Whether node ``name`` emits real values (a graded neuron) rather than spikes or NIR signals."""
        return is_graded(self.nodes[name])

    # -- structure ---------------------------------------------------------------------------------
    def predecessors(self, name: str) -> list[str]:
        return [a for a, b in self.edges if b == name]

    def successors(self, name: str) -> list[str]:
        return [b for a, b in self.edges if a == name]

    def type_of(self, name: str) -> str:
        return node_type(self.nodes[name])

    def names_of_type(self, *types: str) -> list[str]:
        return [n for n, node in self.nodes.items() if node_type(node) in types]

    @property
    def input_names(self) -> list[str]:
        """Input nodes that receive external stimuli (Input nodes without incoming edges)."""
        return [n for n in self.names_of_type("Input") if not self.predecessors(n)]

    @property
    def output_names(self) -> list[str]:
        """Output nodes of the circuit (those of flattened subgraphs that feed on are pass-through)."""
        return [n for n in self.names_of_type("Output") if not self.successors(n)]

    def size(self, name: str) -> int:
        return int(np.prod(output_shape(self.nodes[name])))

    def add_plasticity(
        self,
        synapse: str,
        rules,
        *,
        pre: str | None = None,
        post: str | None = None,
        **kwargs,
    ) -> Plasticity:
        """Attach learning rules to weight node ``synapse`` and return the new spec.

        ``pre`` and ``post`` default to the unique predecessor and successor of the weight node.
        Other keyword arguments are those of :meth:`Plasticity.create` (``traces``, ``third_factor``,
        ``t_epoch``, ``w_bounds``, ``mask``: the 0/1 ``(n_post, n_pre)`` array of the synapses that exist).  The
        circuit is validated afterwards.
        """
        if synapse not in self.nodes:
            raise RuleError("no such node to attach plasticity to", node=synapse)
        if pre is None:
            preds = self.predecessors(synapse)
            if len(preds) != 1:
                raise RuleError(
                    f"cannot infer 'pre': {len(preds)} incoming edges; pass pre=", node=synapse, field="pre"
                )
            pre = preds[0]
        if post is None:
            succs = self.successors(synapse)
            if len(succs) != 1:
                raise RuleError(
                    f"cannot infer 'post': {len(succs)} outgoing edges; pass post=", node=synapse, field="post"
                )
            post = succs[0]
        try:
            spec = Plasticity.create(pre, post, rules, **kwargs)
        except RuleError as err:
            raise err.located(node=synapse, field="rules") from None
        previous = self.plasticity.get(synapse)
        self.plasticity[synapse] = spec
        try:
            self.validate()
        except Exception:
            if previous is None:
                del self.plasticity[synapse]
            else:
                self.plasticity[synapse] = previous
            raise
        return spec

    # -- validation --------------------------------------------------------------------------------
    def validate(self) -> None:
        """Raise a clear error (node, field, reason) for anything the simulator or compiler can't use."""
        if len(self.nodes) > limits.MAX_NODES or len(self.edges) > limits.MAX_EDGES:
            raise ValidationError(
                f"the circuit has {len(self.nodes):,} nodes and {len(self.edges):,} edges; the "
                f"limits are {limits.limit_name('MAX_NODES')} and {limits.limit_name('MAX_EDGES')}"
            )
        if not self.nodes:
            raise ValidationError("the circuit has no nodes")
        for name, node in self.nodes.items():
            _validate_sizes(name, node)
            _validate_node(name, node)
            if node_type(node) in SPATIAL_TYPES:
                _validate_spatial(name, node, self.predecessors(name))
        names = set(self.nodes)
        seen = set()
        for src, dst in self.edges:
            for end, role in ((src, "source"), (dst, "destination")):
                if end not in names:
                    raise ValidationError(
                        f"edge ({src!r} -> {dst!r}) names a {role} node that does not exist", node=end, field="edges"
                    )
            if (src, dst) in seen:
                raise ValidationError(f"duplicate edge ({src!r} -> {dst!r})", node=dst, field="edges")
            seen.add((src, dst))
            n_out = int(np.prod(output_shape(self.nodes[src])))
            n_in = int(np.prod(input_shape(self.nodes[dst])))
            if n_out != n_in:
                raise ValidationError(
                    f"shape mismatch on edge {src!r} -> {dst!r}: {src!r} outputs "
                    f"{output_shape(self.nodes[src])} ({n_out} values) but {dst!r} expects "
                    f"{input_shape(self.nodes[dst])} ({n_in} values)",
                    node=dst,
                    field="input",
                )
        self._validate_loops()
        for name, node in self.nodes.items():
            if isinstance(node, ProductNeuron):
                self._validate_product(name, node)
        for synapse, spec in self.plasticity.items():
            self._validate_plasticity(synapse, spec)

    def _validate_loops(self) -> None:
        """Refuse a loop through no weight node and no ``Delay`` of at least one step: its nodes would need each
        other's output of the same step (Scale <-> Scale, a neuron fed back by a Scale, ...), in every backend."""

        def delays(name: str) -> bool:
            node = self.nodes[name]
            if node_type(node) == "Delay":
                return bool(np.all(np.asarray(node.delay) > 0))
            return node_type(node) in WEIGHT_TYPES

        indeg = {n: 0 for n in self.nodes}
        succ: dict[str, list[str]] = {n: [] for n in self.nodes}
        for a, b in self.edges:
            if not delays(a):
                succ[a].append(b)
                indeg[b] += 1
        order = [n for n, d in indeg.items() if d == 0]
        for n in order:  # Kahn's algorithm; ``order`` grows while it is walked
            for b in succ[n]:
                indeg[b] -= 1
                if indeg[b] == 0:
                    order.append(b)
        if len(order) != len(self.nodes):
            stuck = sorted(n for n, d in indeg.items() if d > 0)
            raise ValidationError(
                f"the graph has a loop through {stuck} without a weight node or a Delay node of at least one step: "
                "its nodes would need each other's output of the same step",
                node=stuck[0],
                field="edges",
            )

    def _validate_product(self, name: str, node: ProductNeuron) -> None:
        preds = self.predecessors(name)
        missing = [g for g in node.gate_inputs if g not in preds]
        if missing:
            raise ValidationError(
                f"gate_inputs {missing} have no edge into this ProductNeuron (its predecessors: {preds})",
                node=name,
                field="gate_inputs",
            )
        if not [p for p in preds if p not in node.gate_inputs]:
            raise ValidationError("a ProductNeuron needs at least one input on port a (not listed in gate_inputs)",
                                  node=name, field="gate_inputs")  # fmt: skip

    def _validate_plasticity(self, synapse: str, spec: Plasticity) -> None:
        if synapse not in self.nodes:
            raise RuleError("plasticity is attached to a node that does not exist", node=synapse)
        kind = self.type_of(synapse)
        if kind in SPATIAL_TYPES:
            raise RuleError(
                f"plastic {kind} weights are not supported (a shared kernel would need one rule update for all its "
                "positions); attach plasticity to a Linear or Affine node",
                node=synapse,
            )
        if kind not in WEIGHT_TYPES:
            raise RuleError(f"plasticity must attach to a Linear or Affine node, not {kind}", node=synapse)
        weight = np.asarray(self.nodes[synapse].weight)
        if weight.ndim != 2:
            raise RuleError(
                f"plastic weights must be a 2-D matrix, got shape {weight.shape}", node=synapse, field="weight"
            )
        n_post, n_pre = weight.shape
        for role, pop in (("pre", spec.pre), ("post", spec.post)):
            if pop not in self.nodes:
                raise RuleError(f"{role} population {pop!r} does not exist", node=synapse, field=role)
        if synapse not in self.successors(spec.pre):
            raise RuleError(f"pre population {spec.pre!r} has no edge into {synapse!r}", node=synapse, field="pre")
        if spec.post not in self.successors(synapse):
            raise RuleError(f"post population {spec.post!r} is not fed by {synapse!r}", node=synapse, field="post")
        if self.type_of(spec.post) not in POPULATION_TYPES:
            raise RuleError(
                f"post population {spec.post!r} is a {self.type_of(spec.post)}, not a neuron node",
                node=synapse,
                field="post",
            )
        if self.size(spec.pre) != n_pre or self.size(spec.post) != n_post:
            raise RuleError(
                f"pre/post sizes ({self.size(spec.pre)}, {self.size(spec.post)}) do not match the weight "
                f"matrix (n_pre={n_pre}, n_post={n_post})",
                node=synapse,
                field="weight",
            )
        for trace, source in spec.third_factor.items():
            if source not in self.nodes:
                raise RuleError(
                    f"third-factor source {source!r} (for {trace}) does not exist", node=synapse, field="third_factor"
                )
            if self.size(source) != n_post:
                raise RuleError(
                    f"third-factor source {source!r} has {self.size(source)} values, the post population has {n_post}",
                    node=synapse,
                    field="third_factor",
                )
        present = weight
        if spec.mask is not None:
            if spec.mask.shape != weight.shape:
                raise RuleError(
                    f"mask has shape {spec.mask.shape}, the weight matrix {weight.shape}", node=synapse, field="mask"
                )
            stray = (weight != 0) & ~spec.mask
            if stray.any():
                i, j = (int(k) for k in np.argwhere(stray)[0])
                raise RuleError(
                    f"{int(stray.sum())} absent synapse(s) have a nonzero weight, e.g. ({i}, {j}) = {weight[i, j]:g}: "
                    "a synapse outside the mask does not exist, so its weight must be 0",
                    node=synapse,
                    field="mask",
                )
            if not spec.mask.any():
                raise RuleError("the mask has no synapse", node=synapse, field="mask")
            present = weight[spec.mask]
        lo, hi = spec.w_bounds
        if np.any(present < lo) or np.any(present > hi):
            raise RuleError(
                f"initial weights span [{present.min():g}, {present.max():g}], outside w_bounds [{lo:g}, {hi:g}]",
                node=synapse,
                field="w_bounds",
            )

    # -- identity ----------------------------------------------------------------------------------
    def hash(self) -> str:
        """SHA-256 of the circuit's content (nodes, parameters, edges, plasticity); metadata excluded."""
        h = hashlib.sha256()
        for name in sorted(self.nodes):
            node = self.nodes[name]
            h.update(f"node:{name}:{node_type(node)}\n".encode())
            for key, value in sorted(node_parameters(node).items()):
                arr = np.ascontiguousarray(value, dtype=np.float64) if value.dtype.kind in "biuf" else value
                h.update(f"{key}:{arr.shape}:".encode())
                h.update(arr.tobytes() if arr.dtype.kind in "biuf" else repr(arr.tolist()).encode())
        for src, dst in sorted(self.edges):
            h.update(f"edge:{src}->{dst}\n".encode())
        for name in sorted(self.plasticity):
            h.update(f"plasticity:{name}:".encode())
            h.update(json.dumps(self.plasticity[name].to_dict(), sort_keys=True).encode())
            mask = self.plasticity[name].mask
            if mask is not None:
                h.update(np.packbits(mask).tobytes())
        return h.hexdigest()

    def __repr__(self) -> str:
        kinds = ", ".join(f"{n}:{self.type_of(n)}" for n in self.nodes)
        return f"Circuit(nodes=[{kinds}], edges={len(self.edges)}, plastic={sorted(self.plasticity)})"

    def describe(self) -> str:
        """A multi-line human-readable description."""
        lines = [f"Circuit {self.hash()[:12]}: {len(self.nodes)} nodes, {len(self.edges)} edges"]
        for name, node in self.nodes.items():
            extra = f"  {node.describe()}" if is_graded(node) else ""
            lines.append(f"  {name:<20} {node_type(node):<13} in={input_shape(node)} out={output_shape(node)}{extra}")
        for src, dst in self.edges:
            lines.append(f"  {src} -> {dst}")
        for name, spec in self.plasticity.items():
            lines.append(f"  plastic {name}: {spec}")
        return "\n".join(lines)


def _validate_sizes(name: str, node: nir.NIRNode) -> None:
    """Declared input/output shapes: non-negative integers, at least one value, at most ``MAX_POPULATION`` values
    (counted exactly: ``np.prod`` of ``2^32 x 2^32`` wraps to 0 in int64)."""
    for field, types in (("input_type", node.input_type), ("output_type", node.output_type)):
        for port, shape in (types or {}).items():
            if shape is None:
                continue  # a spatial node whose shape is inferred later (checked by _validate_spatial)
            dims = np.asarray(shape).reshape(-1)
            if dims.dtype.kind not in "biuf":
                raise ValidationError(f"{port} shape {shape!r} is not numeric", node=name, field=field)
            try:
                count = limits.element_count(dims.tolist())
            except ValueError as err:
                reason = f"{port} shape {dims.tolist()} is invalid ({err})"
                raise ValidationError(reason, node=name, field=field) from None
            if count == 0:
                raise ValidationError(f"{port} shape {dims.tolist()} has no values (size 0)", node=name, field=field)
            if count > limits.MAX_POPULATION:
                raise ValidationError(f"{port} shape {dims.tolist()} has {count:,} values, more than "
                                      f"{limits.limit_name('MAX_POPULATION')}", node=name, field=field)  # fmt: skip


def _validate_node(name: str, node: nir.NIRNode) -> None:
    kind = node_type(node)
    if kind in NOT_YET_SUPPORTED:
        raise UnsupportedNodeError(
            f"{kind} nodes are not supported yet (supported: {', '.join(SUPPORTED_TYPES)})", node=name
        )
    if kind == "NIRGraph":
        raise UnsupportedNodeError("nested graphs must be flattened first (use Circuit.from_nir)", node=name)
    if kind not in SUPPORTED_TYPES:
        raise UnsupportedNodeError(f"unknown node type {kind!r} (supported: {', '.join(SUPPORTED_TYPES)})", node=name)
    if is_graded(node):
        try:
            node.__post_init__()  # re-check parameters changed after construction
        except ValidationError as err:
            raise err.located(node=name) from None
        return
    for key, value in node_parameters(node).items():
        if kind in CONV_TYPES and key == "padding" and value.dtype.kind == "U":
            continue  # "same" / "valid", checked with the geometry
        if value.dtype.kind not in "biuf":
            raise ValidationError(f"parameter must be numeric, got dtype {value.dtype}", node=name, field=key)
        if not np.all(np.isfinite(value)):
            bad = np.asarray(value, dtype=float).reshape(-1)
            idx = int(np.flatnonzero(~np.isfinite(bad))[0])
            raise ValidationError(
                f"parameter contains {bad[idx]} at flat index {idx}; all values must be finite", node=name, field=key
            )
        if value.size and np.max(np.abs(value)) > limits.MAX_ABS_VALUE:
            raise ValidationError(f"parameter reaches {np.max(np.abs(value)):g}, more in magnitude than "
                                  f"{limits.limit_name('MAX_ABS_VALUE')}", node=name, field=key)  # fmt: skip
        if key in POSITIVE_FIELDS and np.any(value <= 0):
            raise ValidationError(f"time constants must be > 0, got min {value.min():g}", node=name, field=key)
    if kind == "Delay" and np.any(np.asarray(node.delay) < 0):
        raise ValidationError("delays must be >= 0", node=name, field="delay")
    if kind in MATRIX_TYPES:
        weight = np.asarray(node.weight)
        if weight.ndim != 2:
            raise UnsupportedNodeError(
                f"{kind} weights with {weight.ndim} dimensions are not supported yet (need a 2-D matrix)",
                node=name,
                field="weight",
            )
        if kind == "Affine" and np.asarray(node.bias).size != weight.shape[0]:
            raise ValidationError(
                f"bias has {np.asarray(node.bias).size} values for {weight.shape[0]} outputs", node=name, field="bias"
            )
    if kind in NEURON_TYPES + ("Scale", "Threshold", "Delay"):
        sizes = {k: v.size for k, v in node_parameters(node).items()}
        n = int(np.prod(output_shape(node)))
        for key, size in sizes.items():
            if size not in (1, n):
                raise ValidationError(f"has {size} values, expected 1 or {n}", node=name, field=key)


def _validate_spatial(name: str, node: nir.NIRNode, predecessors: list[str]) -> None:
    """A convolution or pooling node: its shapes are known and its geometry is possible (:mod:`.conv`)."""
    kind = node_type(node)
    declared = (node.input_type or {}).get("input")
    if declared is None or (node.output_type or {}).get("output") is None:
        hint = f" from its predecessors {predecessors}" if predecessors else " (it has no predecessor)"
        raise ValidationError(
            f"the input shape of this {kind} is unknown and cannot be inferred{hint}: they must output a "
            f"{'(C, L)' if kind == 'Conv1d' else '(C, H, W)'} tensor",
            node=name,
            field="input_type",
        )
    geometry = geometry_of(node, name)
    expected = nir_output_shape(node, geometry)
    if output_shape(node) != expected:
        raise ValidationError(
            f"output_type {output_shape(node)} differs from the {expected} its geometry gives", node=name,
            field="output_type",
        )  # fmt: skip
    if kind in CONV_TYPES and getattr(node, "bias", None) is not None:
        size = np.asarray(node.bias).size
        if size not in (1, geometry.out_shape[0]):
            raise ValidationError(f"bias has {size} values for {geometry.out_shape[0]} output channels", node=name,
                                  field="bias")  # fmt: skip
