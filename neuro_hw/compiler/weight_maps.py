"""Weight maps: what each connection-owning weight node computes, with pooling nodes folded into it.

Every weight node is a linear map ``y = M x + b`` (:mod:`neuro_hw.ir.conv` for convolutions and pooling: ``M`` is
the unrolled geometry).  The chip has no neurons between two maps, so a pooling node that meets another weight
node without a population in between (through ``Flatten``, ``Scale`` or nested ``Input``/``Output`` nodes only) is
folded into it, as exporters write a spiking CNN (``IF -> SumPool2d -> Flatten -> Affine``)::

    y = M_2 diag(s) (M_1 x + b_1) + b_2  =>  M = M_2 diag(s) M_1,  b = M_2 (s * b_1) + b_2,  delay + 1 step

(``s``: the Scale nodes between).  Under the reference's synaptic delay every weight node delivers one step later,
so a folded map delivers ``1 + (number of folded nodes)`` steps after its input; the compiler keeps that as a
synaptic delay of the connection (:func:`neuro_hw.compiler.graph.resolve_wiring`).  The fold must be one to one:
the pooling node's only successor (through those nodes) is the other map, which has no other input.  A chain of
two non-pooling weight nodes is not folded (the graph stage refuses it, naming both).

When both maps are convolutions and the composite is one (checked by comparing the unrolled matrices exactly,
:func:`compose_geometries`), the folded map keeps a convolution geometry, so it is stored as a kernel.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from neuro_hw.errors import UnsupportedNodeError
from neuro_hw.ir.circuit import MATRIX_TYPES, WEIGHT_TYPES, Circuit
from neuro_hw.ir.conv import POOL_TYPES, SPATIAL_TYPES, ConvGeometry, bias_of, geometry_of

#: Nodes a fold passes through: reshapes, nested-graph ends and elementwise scales.
FOLD_THROUGH = ("Flatten", "Scale", "Input", "Output")


@dataclass
class WeightMap:
    """``y = matrix @ x + bias`` from the input of node ``first`` to the output of node ``last``.

    ``geometry``: the convolution ``matrix`` unrolls from (float kernel), or None; ``delay``: steps beyond the one
    synaptic step (one per folded node); ``parts``: the weight nodes folded into it, in signal order;
    ``bias_parts``: those with a bias (an Affine, a Conv with a nonzero bias).
    """

    name: str
    first: str
    last: str
    matrix: np.ndarray
    bias: np.ndarray | None
    geometry: ConvGeometry | None
    delay: int
    parts: tuple[str, ...]
    bias_parts: tuple[str, ...] = ()

    @property
    def folded(self) -> bool:
        return len(self.parts) > 1


def own_map(circuit: Circuit, name: str) -> WeightMap:
    """The map of one weight node (no folding)."""
    node = circuit.nodes[name]
    kind = circuit.type_of(name)
    if kind in SPATIAL_TYPES:
        geometry = geometry_of(node, name)
        bias = bias_of(node, geometry)
        matrix = geometry.dense(np.float64)
    else:
        geometry = None
        matrix = np.asarray(node.weight, dtype=np.float64)
        bias = np.asarray(node.bias, dtype=np.float64).reshape(-1) if kind == "Affine" else None
    has_bias = kind == "Affine" or bias is not None
    return WeightMap(name, name, name, matrix, bias, geometry, 0, (name,), (name,) if has_bias else ())


def _scale_of(circuit: Circuit, name: str, n: int) -> np.ndarray:
    if circuit.type_of(name) == "Scale":
        return np.broadcast_to(np.asarray(circuit.nodes[name].scale, dtype=np.float64).reshape(-1), (n,)).copy()
    return np.ones(n)


def _through(circuit: Circuit, name: str) -> bool:
    kind = circuit.type_of(name)
    if kind == "Input":
        return bool(circuit.predecessors(name))
    if kind == "Output":
        return bool(circuit.successors(name))
    return kind in FOLD_THROUGH


def _next_ends(circuit: Circuit, name: str) -> list[tuple[str, np.ndarray]]:
    """The first nodes after ``name`` that are not fold-through nodes, with the scale on the way."""
    ends = []
    for s in circuit.successors(name):
        if _through(circuit, s):
            scale = _scale_of(circuit, s, circuit.size(s))
            ends += [(e, scale * v) for e, v in _next_ends(circuit, s)]
        else:
            ends.append((s, np.ones(circuit.size(name))))
    return ends


def _prev_ends(circuit: Circuit, name: str) -> list[str]:
    ends = []
    for p in circuit.predecessors(name):
        ends += _prev_ends(circuit, p) if _through(circuit, p) else [p]
    return ends


def compose_geometries(up: ConvGeometry, scale: float, down: ConvGeometry) -> ConvGeometry | None:
    """The convolution equal to ``down`` after ``scale * up``, when there is one (else None).

    Candidate: stride ``s_u s_d``, padding ``p_d s_u + p_u``, dilation 1, kernel
    ``K[q, c, r] = sum_{o, v, u: v d_d s_u + u d_u = r} K_d[q, o, v] K_u[o, c, u]`` per axis, groups 1 (``C``
    when both are depthwise); it is returned only if its unrolled matrix equals the product of the two (the rows
    and columns a pooling with a remainder drops, or overlapping windows at a padded border, make them differ).
    """
    if up.out_shape != down.in_shape:
        return None
    cu_out, cgu, khu, kwu = up.kernel.shape
    cd_out, cgd, khd, kwd = down.kernel.shape
    c_in = up.in_shape[0]
    ku = np.zeros((cu_out, c_in, khu, kwu))
    per = cu_out // up.groups
    for o in range(cu_out):
        g = o // per
        ku[o, g * cgu : (g + 1) * cgu] = up.kernel[o]
    kd = np.zeros((cd_out, cu_out, khd, kwd))
    per = cd_out // down.groups
    for q in range(cd_out):
        g = q // per
        kd[q, g * cgd : (g + 1) * cgd] = down.kernel[q]
    steps = [down.dilation[a] * up.stride[a] for a in (0, 1)]
    size = [(k_d - 1) * steps[a] + (k_u - 1) * up.dilation[a] + 1 for a, k_d, k_u in ((0, khd, khu), (1, kwd, kwu))]
    kernel = np.zeros((cd_out, c_in, size[0], size[1]))
    for v in range(khd):
        for w in range(kwd):
            for u in range(khu):
                for x in range(kwu):
                    r0, r1 = v * steps[0] + u * up.dilation[0], w * steps[1] + x * up.dilation[1]
                    kernel[:, :, r0, r1] += scale * kd[:, :, v, w] @ ku[:, :, u, x]
    stride = (up.stride[0] * down.stride[0], up.stride[1] * down.stride[1])
    padding = (down.padding[0] * up.stride[0] + up.padding[0], down.padding[1] * up.stride[1] + up.padding[1])
    depthwise = up.groups == c_in == cu_out and down.groups == cu_out == cd_out
    groups = c_in if depthwise else 1
    if depthwise:
        kernel = np.stack([kernel[q, q : q + 1] for q in range(cd_out)])
    candidate = ConvGeometry(up.in_shape, down.out_shape, kernel, stride, padding, (1, 1), groups)
    exact = (down.unroll(np.float64) @ up.unroll(np.float64)) * scale
    diff = abs(candidate.unroll(np.float64) - exact)
    return candidate if diff.nnz == 0 or diff.max() <= 1e-12 * max(1.0, abs(exact).max()) else None


def _compose(up: WeightMap, scale: np.ndarray, down: WeightMap, name: str) -> WeightMap:
    matrix = down.matrix @ (scale[:, None] * up.matrix)
    bias = down.bias
    if up.bias is not None:
        carried = down.matrix @ (scale * up.bias)
        bias = carried if bias is None else bias + carried
    geometry = None
    if up.geometry is not None and down.geometry is not None and np.all(scale == scale[0]):
        geometry = compose_geometries(up.geometry, float(scale[0]), down.geometry)
    delay = up.delay + down.delay + 1
    return WeightMap(
        name, up.first, down.last, matrix, bias, geometry, delay, up.parts + down.parts, up.bias_parts + down.bias_parts
    )


def _pool_into(circuit: Circuit, maps: dict[str, WeightMap], pool: str) -> str | None:
    """The map that pooling map ``pool`` folds into (its one successor map, or else its one predecessor map)."""
    m = maps[pool]
    after = _next_ends(circuit, m.last)
    targets = {e for e, _ in after}
    weights = [e for e in targets if circuit.type_of(e) in WEIGHT_TYPES]
    if weights:
        others = sorted(targets - set(weights))
        if len(targets) > 1:
            raise UnsupportedNodeError(
                f"this pooling node feeds {sorted(targets)}; a pooling node folds into the one weight node after it "
                f"and must feed nothing else{f' ({others} also read it)' if others else ''}",
                node=pool,
            )
        owner = _owner_of(maps, weights[0])
        if owner is None or _prev_ends(circuit, maps[owner].first) != [m.last]:
            raise UnsupportedNodeError(
                f"this pooling node folds into weight node {weights[0]!r}, which has other inputs "
                f"({_prev_ends(circuit, weights[0])}); a folded pooling must be its only input",
                node=pool,
            )
        return owner
    before = _prev_ends(circuit, m.first)
    if len(before) == 1 and circuit.type_of(before[0]) in WEIGHT_TYPES:
        owner = _owner_of(maps, before[0])
        if owner is not None and [e for e, _ in _next_ends(circuit, maps[owner].last)] == [m.first]:
            return owner
    return None


def _owner_of(maps: dict[str, WeightMap], node: str) -> str | None:
    return next((name for name, m in maps.items() if node in m.parts), None)


def weight_maps(circuit: Circuit) -> dict[str, WeightMap]:
    """Every weight node's map, pooling nodes folded into their neighbouring weight node (module doc); keyed and
    named by the owning node (the non-pooling node of a fold, or the last pooling node of a chain of poolings).
    Plastic weight nodes fold nothing (refused)."""
    maps = {name: own_map(circuit, name) for name in circuit.names_of_type(*WEIGHT_TYPES)}
    changed = True
    while changed:
        changed = False
        for pool in [n for n in maps if circuit.type_of(n) in POOL_TYPES]:
            owner = _pool_into(circuit, maps, pool)
            if owner is None or owner == pool:
                continue
            if owner in circuit.plasticity:
                raise UnsupportedNodeError(
                    f"pooling node {pool!r} would fold into the plastic weight node {owner!r}; plastic weights "
                    "must connect a population directly",
                    node=owner,
                )
            p, o = maps.pop(pool), maps.pop(owner)
            downstream = pool in [e for e, _ in _next_ends(circuit, o.last)]
            if downstream:  # owner -> pool
                scale = dict(_next_ends(circuit, o.last))[p.first]
                maps[owner] = _compose(o, scale, p, owner)
            else:  # pool -> owner
                scale = dict(_next_ends(circuit, p.last))[o.first]
                maps[owner] = _compose(p, scale, o, owner)
            changed = True
            break
    return maps


def is_trial_weight_origin(circuit: Circuit, m: WeightMap) -> bool:
    """Whether connections of map ``m`` can take per-trial weights of its node (a matrix node, nothing folded)."""
    return not m.folded and circuit.type_of(m.name) in MATRIX_TYPES


def describe_fold(m: WeightMap, dt: float) -> str:
    """The report note for a folded map."""
    kind = "a convolution kernel" if m.geometry is not None else "one weight matrix"
    return (
        f"{m.name}: {' -> '.join(m.parts)} folded into {kind} (no neurons between them); it delivers "
        f"{m.delay + 1} steps after its input ({m.delay} step(s) of synaptic delay, {m.delay * dt:g} time units, "
        "keep the reference's one step per weight node)"
    )
