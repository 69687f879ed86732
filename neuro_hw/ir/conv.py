"""Convolution and pooling nodes (NIR ``Conv1d``, ``Conv2d``, ``SumPool2d``, ``AvgPool2d``) as one geometry.

NIR tensors are channels first and carry no batch axis: a ``Conv2d`` maps ``x`` of shape ``(C_in, H, W)`` to ``y``
of shape ``(C_out, H_out, W_out)``, as ``torch.nn.Conv2d`` does (cross-correlation, no kernel flip)::

    y[o, i, j] = sum_{c, a, b} K[o, c, a, b] * x[g*Cg + c, i*s_h + a*d_h - p_h, j*s_w + b*d_w - p_w]  (+ bias[o])

with ``Cg = C_in / groups`` input channels per group, ``g = o // (C_out / groups)`` the group of output channel
``o``, ``K`` of shape ``(C_out, Cg, k_h, k_w)``, stride ``s``, dilation ``d``, and zeros outside the input (``p`` rows
and columns of zero padding before the first, and as many after the last as the output needs)::

    H_out = floor((H + 2 p_h - d_h (k_h - 1) - 1) / s_h) + 1          (likewise W_out)

``padding="same"`` (stride 1 only, as in torch) pads ``d (k - 1)`` in total, ``floor`` of half of it before, so
``H_out = H``; ``"valid"`` is 0.  ``Conv1d`` is the case ``H = 1``: ``(C_in, L) -> (C_out, L_out)``, kernel ``(C_out,
Cg, k)``.  Pooling is a depthwise convolution (``groups = C``, dilation 1): ``SumPool2d`` with a kernel of ones,
``AvgPool2d`` with ``1 / (k_h k_w)`` (zero padding counts in the average, torch's ``count_include_pad=True``).

Flattened vectors are C-ordered ``(C, H, W)``: element ``(c, i, j)`` is index ``(c H + i) W + j``, the order of
``nir.Flatten`` and of torch.  :meth:`ConvGeometry.unroll` gives the equivalent ``(n_out, n_in)`` sparse matrix.

**Shapes.** ``nir`` 1.0.8 leaves the types of pooling nodes undefined (they are inferred on a typed graph) and
writes no types to files; a ``Conv2d`` knows its input only through ``input_shape`` (and nir sets its input
channels to ``weight.shape[1]``, wrong for ``groups > 1``).  :func:`infer_shapes` fills the types of these nodes
(and of ``Flatten`` nodes without one) from their predecessors' output shapes, as ``NIRGraph.infer_types`` would.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import nir
import numpy as np
import scipy.sparse as sp

from neuro_hw.errors import ValidationError

CONV_TYPES = ("Conv1d", "Conv2d")
POOL_TYPES = ("SumPool2d", "AvgPool2d")
#: Node types with a convolution geometry.
SPATIAL_TYPES = CONV_TYPES + POOL_TYPES


@dataclass(frozen=True)
class ConvGeometry:
    """A 2-D convolution over channels-first tensors (module doc); 1-D convolutions have ``H = 1``.

    ``kernel`` ``(C_out, C_in / groups, k_h, k_w)`` (float weights, or integers in a compiled Program);
    ``padding`` the zero rows / columns before the first input row / column (those after follow from
    ``out_shape``).
    """

    in_shape: tuple[int, int, int]
    out_shape: tuple[int, int, int]
    kernel: np.ndarray
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)
    dilation: tuple[int, int] = (1, 1)
    groups: int = 1

    @property
    def n_in(self) -> int:
        return int(np.prod(self.in_shape))

    @property
    def n_out(self) -> int:
        return int(np.prod(self.out_shape))

    @property
    def taps(self) -> int:
        """Kernel entries per output neuron: its fan-in (fewer at padded borders)."""
        return int(np.prod(self.kernel.shape[1:]))

    def with_kernel(self, kernel: np.ndarray) -> ConvGeometry:
        """The same geometry with another kernel of the same shape."""
        kernel = np.asarray(kernel)
        if kernel.shape != self.kernel.shape:
            raise ValueError(f"kernel shape {kernel.shape} differs from {self.kernel.shape}")
        return replace(self, kernel=kernel)

    def structure(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(rows, cols, taps)``: for every kernel entry that meets the input, the output index, input index and
        flat kernel index (``kernel.reshape(-1)[taps]`` is the matrix entry ``(rows, cols)``); int64 arrays."""
        c_out, cg, kh, kw = self.kernel.shape
        c_in, h, w = self.in_shape
        _, ho, wo = self.out_shape
        per_group = c_out // self.groups
        o = np.arange(c_out).reshape(-1, 1, 1, 1, 1, 1)
        c = (o // per_group) * cg + np.arange(cg).reshape(1, -1, 1, 1, 1, 1)
        y = (
            np.arange(ho).reshape(1, 1, 1, 1, -1, 1) * self.stride[0]
            + np.arange(kh).reshape(1, 1, -1, 1, 1, 1) * self.dilation[0]
            - self.padding[0]
        )
        x = (
            np.arange(wo).reshape(1, 1, 1, 1, 1, -1) * self.stride[1]
            + np.arange(kw).reshape(1, 1, 1, -1, 1, 1) * self.dilation[1]
            - self.padding[1]
        )
        full = (c_out, cg, kh, kw, ho, wo)
        valid = np.broadcast_to((y >= 0) & (y < h), full) & np.broadcast_to((x >= 0) & (x < w), full)
        rows = np.broadcast_to(
            (o * ho + np.arange(ho).reshape(1, 1, 1, 1, -1, 1)) * wo + np.arange(wo).reshape(1, 1, 1, 1, 1, -1), full
        )
        cols = np.broadcast_to((c * h + y) * w + x, full)
        taps = np.broadcast_to(np.arange(self.kernel.size).reshape(c_out, cg, kh, kw, 1, 1), full)
        return rows[valid].astype(np.int64), cols[valid].astype(np.int64), taps[valid].astype(np.int64)

    def unroll(self, dtype: type | np.dtype | None = None) -> sp.csr_matrix:
        """The convolution as a sparse ``(n_out, n_in)`` matrix (entries: the kernel values, zeros kept out)."""
        rows, cols, taps = self.structure()
        values = np.asarray(self.kernel).reshape(-1)[taps]
        if dtype is not None:
            values = values.astype(dtype)
        keep = values != 0
        return sp.csr_matrix((values[keep], (rows[keep], cols[keep])), shape=(self.n_out, self.n_in))

    def dense(self, dtype: type | np.dtype | None = None) -> np.ndarray:
        """:meth:`unroll` as a dense array."""
        return self.unroll(dtype).toarray()


# --------------------------------------------------------------------------------------------------
# NIR nodes -> geometry
# --------------------------------------------------------------------------------------------------
def _pair(value, name: str, node: str, *, minimum: int) -> tuple[int, int]:
    arr = np.asarray(value).reshape(-1)
    if arr.size not in (1, 2) or arr.dtype.kind not in "biuf" or np.any(arr != np.round(arr)):
        raise ValidationError(f"must be one or two integers, got {value!r}", node=node, field=name)
    arr = np.broadcast_to(arr.astype(np.int64), (2,))
    if np.any(arr < minimum):
        raise ValidationError(f"must be >= {minimum}, got {value!r}", node=node, field=name)
    return int(arr[0]), int(arr[1])


def _out_size(size: int, pad_total: int, dilation: int, k: int, stride: int) -> int:
    return (size + pad_total - dilation * (k - 1) - 1) // stride + 1


def _geometry(
    node: str,
    in_shape: tuple[int, int, int],
    kernel: np.ndarray,
    stride: tuple[int, int],
    padding,
    dilation: tuple[int, int],
    groups: int,
    spatial_dims: int,
) -> ConvGeometry:
    c_in, h, w = in_shape
    c_out, cg, kh, kw = kernel.shape
    if groups < 1 or c_in % groups or c_out % groups or cg * groups != c_in:
        raise ValidationError(
            f"groups={groups} does not fit {c_in} input and {c_out} output channels (kernel {tuple(kernel.shape)})",
            node=node,
            field="groups",
        )
    pads = None
    if isinstance(padding, str):
        if padding == "valid":
            pads, totals = (0, 0), (0, 0)
        elif padding == "same":
            if stride != (1, 1):
                raise ValidationError(
                    f"padding='same' needs stride 1 (as in torch), got stride {stride}", node=node, field="padding"
                )
            totals = (dilation[0] * (kh - 1), dilation[1] * (kw - 1))
            pads = (totals[0] // 2, totals[1] // 2)
        else:
            raise ValidationError(f"padding must be 'same', 'valid' or integers, got {padding!r}", node=node,
                                  field="padding")  # fmt: skip
    else:
        p = _pair(padding, "padding", node, minimum=0)
        pads = (0, p[0]) if spatial_dims == 1 else p
        totals = (2 * pads[0], 2 * pads[1])
    ho = _out_size(h, totals[0], dilation[0], kh, stride[0])
    wo = _out_size(w, totals[1], dilation[1], kw, stride[1])
    if ho < 1 or wo < 1:
        raise ValidationError(
            f"the kernel ({kh} x {kw}, dilation {dilation}) does not fit the padded input ({h} x {w}, padding "
            f"{padding!r}): the output would be {ho} x {wo}",
            node=node,
            field="weight" if kernel.dtype.kind == "f" else "kernel_size",
        )
    return ConvGeometry((c_in, h, w), (c_out, ho, wo), kernel, stride, pads, dilation, groups)


def _spatial_input(node: str, in_shape: Sequence[int] | None, dims: int) -> tuple[int, ...]:
    if in_shape is None:
        raise ValidationError(
            "the input shape is unknown (no input_shape / input_type, and no predecessor with a known output "
            "shape to infer it from)",
            node=node,
            field="input_type",
        )
    shape = tuple(int(s) for s in in_shape)
    if len(shape) != dims + 1 or min(shape) < 1:
        raise ValidationError(
            f"expects a ({'C, L' if dims == 1 else 'C, H, W'}) input, got shape {shape}", node=node, field="input_type"
        )
    return shape


def geometry_of(node: nir.NIRNode, name: str, in_shape: Sequence[int] | None = None) -> ConvGeometry:
    """The :class:`ConvGeometry` of a ``Conv1d``/``Conv2d``/``SumPool2d``/``AvgPool2d`` node with float kernel.

    ``in_shape``: the node's input shape ``(C, H, W)`` (``(C, L)`` for Conv1d); default: its ``input_type``.
    Raises :class:`~neuro_hw.errors.ValidationError` naming ``name`` and the field for an impossible geometry.
    """
    kind = type(node).__name__
    if in_shape is None:
        declared = (node.input_type or {}).get("input")
        in_shape = None if declared is None else np.asarray(declared).reshape(-1)
    if kind in CONV_TYPES:
        dims = 1 if kind == "Conv1d" else 2
        weight = np.asarray(node.weight, dtype=np.float64)
        if weight.ndim != dims + 2:
            raise ValidationError(
                f"{kind} weight must have {dims + 2} dimensions (C_out, C_in/groups, {'k' if dims == 1 else 'kh, kw'}),"
                f" got shape {weight.shape}",
                node=name,
                field="weight",
            )
        groups = np.asarray(node.groups).reshape(-1)
        if groups.size != 1 or groups[0] != np.round(groups[0]):
            raise ValidationError(f"groups must be one integer, got {node.groups!r}", node=name, field="groups")
        shape = _spatial_input(name, in_shape, dims)
        if dims == 1:
            weight, shape = weight[:, :, None, :], (shape[0], 1, shape[1])
            stride = (1, _pair(node.stride, "stride", name, minimum=1)[0])
            dilation = (1, _pair(node.dilation, "dilation", name, minimum=1)[0])
        else:
            stride = _pair(node.stride, "stride", name, minimum=1)
            dilation = _pair(node.dilation, "dilation", name, minimum=1)
        padding = node.padding if isinstance(node.padding, str) else np.asarray(node.padding)
        return _geometry(name, shape, weight, stride, padding, dilation, int(groups[0]), dims)
    if kind in POOL_TYPES:
        shape = _spatial_input(name, in_shape, 2)
        k = _pair(node.kernel_size, "kernel_size", name, minimum=1)
        stride = _pair(node.stride, "stride", name, minimum=1)
        c = shape[0]
        value = 1.0 if kind == "SumPool2d" else 1.0 / (k[0] * k[1])
        kernel = np.full((c, 1, k[0], k[1]), value)
        return _geometry(name, shape, kernel, stride, np.asarray(node.padding), (1, 1), c, 2)
    raise TypeError(f"{kind} has no convolution geometry")


def nir_output_shape(node: nir.NIRNode, geometry: ConvGeometry) -> tuple[int, ...]:
    """The node's output shape as NIR writes it: ``(C, L)`` for Conv1d, ``(C, H, W)`` otherwise."""
    c, h, w = geometry.out_shape
    return (c, w) if type(node).__name__ == "Conv1d" else (c, h, w)


def bias_of(node: nir.NIRNode, geometry: ConvGeometry) -> np.ndarray | None:
    """A Conv node's bias per output element ``(n_out,)`` (``bias[o]`` on every position of channel ``o``), or
    None for pooling nodes and zero biases."""
    bias = getattr(node, "bias", None)
    if bias is None:
        return None
    b = np.asarray(bias, dtype=np.float64).reshape(-1)
    c_out, h, w = geometry.out_shape
    if b.size == 1:
        b = np.full(c_out, b[0])
    if b.size != c_out:
        raise ValidationError(f"bias has {b.size} values for {c_out} output channels", field="bias")
    return None if not np.any(b) else np.repeat(b, h * w)


# --------------------------------------------------------------------------------------------------
# shape inference
# --------------------------------------------------------------------------------------------------
def _known(types: Mapping | None, key: str) -> np.ndarray | None:
    value = (types or {}).get(key)
    if value is None:
        return None
    arr = np.asarray(value).reshape(-1)
    return arr if arr.size else None


def _set_types(node: nir.NIRNode, name: str, in_shape: Sequence[int]) -> bool:
    """Set the types of a spatial or Flatten node for input ``in_shape``; False when the input does not fit."""
    kind = type(node).__name__
    in_shape = tuple(int(s) for s in in_shape)
    if kind == "Flatten":
        start, end = int(node.start_dim), int(node.end_dim)
        dims = len(in_shape)
        s, e = (start + dims if start < 0 else start), (end + dims if end < 0 else end)
        if not 0 <= s <= e < dims:
            return False
        out = in_shape[:s] + (int(np.prod(in_shape[s : e + 1])),) + in_shape[e + 1 :]
        node.input_type, node.output_type = {"input": np.array(in_shape)}, {"output": np.array(out)}
        return True
    dims = 1 if kind == "Conv1d" else 2
    if len(in_shape) != dims + 1:
        return False
    try:
        geom = geometry_of(node, name, in_shape)
    except ValidationError:
        return False
    if kind in CONV_TYPES:
        node.input_shape = in_shape[1] if dims == 1 else in_shape[1:]
    node.input_type = {"input": np.array(in_shape)}
    node.output_type = {"output": np.array(nir_output_shape(node, geom))}
    return True


def infer_shapes(nodes: Mapping[str, nir.NIRNode], edges: Sequence[tuple[str, str]]) -> None:
    """Fill in the input and output types of spatial nodes (and Flatten nodes without types), in place.

    A Conv node with ``input_shape`` gets ``(C_in, *input_shape)`` with ``C_in = weight.shape[1] * groups``; a node
    without one takes the output shape of its predecessors (when they agree).  Nodes whose shape cannot be
    inferred keep ``None``; :meth:`~neuro_hw.ir.circuit.Circuit.validate` then says so.
    """
    pending = []
    for name, node in nodes.items():
        kind = type(node).__name__
        if kind in CONV_TYPES and getattr(node, "input_shape", None) is not None:
            weight = np.asarray(node.weight)
            groups = int(np.asarray(node.groups).reshape(-1)[0]) if np.size(node.groups) == 1 else 1
            spatial = np.asarray(node.input_shape).reshape(-1)
            if weight.ndim >= 2 and _set_types(node, name, (weight.shape[1] * groups, *spatial.tolist())):
                continue
        declared = _known(node.input_type, "input") if kind in SPATIAL_TYPES else None
        if declared is not None and _set_types(node, name, declared.tolist()):
            continue
        if kind in SPATIAL_TYPES or (kind == "Flatten" and _known(node.input_type, "input") is None):
            pending.append(name)
    preds: dict[str, list[str]] = {}
    for a, b in edges:
        preds.setdefault(b, []).append(a)
    progress = True
    while pending and progress:
        progress = False
        for name in list(pending):
            shapes = []
            for p in preds.get(name, []):
                shape = _known(getattr(nodes.get(p), "output_type", None), "output") if p in nodes else None
                if shape is None:
                    break
                shapes.append(tuple(int(s) for s in shape))
            else:
                if shapes and len(set(shapes)) == 1 and _set_types(nodes[name], name, shapes[0]):
                    pending.remove(name)
                    progress = True
