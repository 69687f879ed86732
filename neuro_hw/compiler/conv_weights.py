"""Weight stage for convolutions: the kernel, not the unrolled matrix, is quantised.

A convolution connection (:attr:`~neuro_hw.compiler.graph.Connection.conv`, float kernel ``K`` of shape ``(C_out,
C_in/groups, k_h, k_w)`` with the path scales folded in) shares each kernel entry between all positions of its
output channel, so every post neuron of channel ``o`` needs the same row gain ``g_o`` (weight integers per unit
weight at exponent 0, :mod:`.weights`).  Then, with one exponent ``e`` and sign mode for the whole kernel::

    K_int[o, ...] = round(K[o, ...] * g_o / 2**e)           8-bit magnitude (+ sign), even when mixed sign
    W_int         = unroll(K_int)                           (n_target, n_source), bit for bit the Dense matrix

exactly :func:`~.weights.quantize_weights` applied to the kernel's rows (the report row ``<conn>.weights`` is over
the kernel's entries; the exponent fits the largest kernel entry, which every interior output neuron uses).  A
connection whose gains differ within a channel (heterogeneous ``r``, ``tau`` or thresholds over positions) cannot
share its kernel: it is quantised as a plain matrix, with a note.

**Lava lowering** (:func:`lava_conv_reason`).  Lava 0.10's ``lava.proc.conv`` ``Conv`` process (fixed_pt model
``PyConvModelFixed``) computes, one step after its input like a Dense::

    a = signed_clamp_24( conv(s, K_lava) )        float64 sums cast to int32, then wrapped into 24 bits

with no weight preparation and no weight exponent: its kernel is used as given.  A convolution connection is
lowered to it with ``K_lava = K_eff << weight_exp`` (``K_eff``: the kernel after the Dense weight preparation --
clip to the sign mode's range, LSB truncation -- elementwise, so it is the unrolled matrix's effective entries),
so ``conv(s, K_lava) = (sum_j W_eff s_j) << weight_exp``: the Dense sum.  When every output's sum is below
``2**23`` in magnitude for any input (``sum |K_eff[o]| * max payload << weight_exp < 2**23``), neither Lava's
24-bit clamp nor a Dense's 32-bit wrap acts, and the two lowerings give the same integers, which the emulator
computes.  Otherwise -- a negative weight exponent (Conv cannot shift its sum right), a synaptic delay (Conv has
none), asymmetric padding (``padding="same"`` with an even kernel: Conv pads both sides alike), a geometry
parameter above Lava's int8 fields, or a sum that could reach ``2**23`` -- the connection is lowered as a Dense
(DelayDense) with the unrolled matrix, as before; the compile report names the lowering of each convolution.
"""

from __future__ import annotations

import numpy as np

from neuro_hw.compiler.graph import Connection
from neuro_hw.compiler.program import ConnectionProgram, GradedProgram, Program
from neuro_hw.compiler.report import Report
from neuro_hw.compiler.target import Target
from neuro_hw.compiler.weights import quantize_weights
from neuro_hw.ir.conv import ConvGeometry


def channel_gains(conv: ConvGeometry, row_gain: np.ndarray) -> np.ndarray | None:
    """The row gain of each output channel ``(C_out,)``, or None when it differs within a channel."""
    per_channel = np.broadcast_to(np.asarray(row_gain, dtype=np.float64), (conv.n_out,)).reshape(conv.out_shape[0], -1)
    if not np.all(per_channel == per_channel[:, :1]):
        return None
    return per_channel[:, 0].copy()


def quantize_conv(
    conn: Connection, row_gain: np.ndarray, target: Target, report: Report, spike_source: bool
) -> tuple[np.ndarray, int, str, np.ndarray, ConvGeometry] | None:
    """``(W_int, weight_exp, sign_mode, w_scale, conv_int)`` of convolution connection ``conn`` (module doc), or None
    when its gains differ within an output channel (a note says so; quantise it as a matrix then)."""
    conv = conn.conv
    assert conv is not None
    gains = channel_gains(conv, row_gain)
    if gains is None:
        report.notes.append(
            f"{conn.name}: the post neurons' gains differ within an output channel (r, tau or thresholds vary over "
            "positions), so the convolution cannot share its kernel: stored as a dense matrix"
        )
        return None
    rows = Connection(
        conn.name, conn.source, conn.target, conv.kernel.reshape(conv.out_shape[0], -1), np.zeros((1, 1), np.int64)
    )
    k_int, exp, sign_mode, ch_scale = quantize_weights(rows, gains, None, target, report, spike_source)
    conv_int = conv.with_kernel(k_int.reshape(conv.kernel.shape).astype(np.int32))
    W_int = conv_int.dense(np.int64)
    positions = conv.out_shape[1] * conv.out_shape[2]
    return W_int, exp, sign_mode, np.repeat(ch_scale, positions, axis=0), conv_int


#: Magnitude an output's sum must stay below for Lava's Conv (24-bit clamp) to equal a Dense (32-bit wrap).
LAVA_CONV_LIMIT = 2**23
#: Largest kernel size, stride, padding, dilation and groups Lava's Conv stores (int8 Vars).
LAVA_CONV_FIELD_MAX = 127


def _source_payload(program: Program, source: str) -> int:
    """The largest payload ``source`` sends: 1 for spikes, the graded input's ``max_payload``, a graded
    population's clip (``2**31 - 1`` when unclipped)."""
    if source in program.inputs:
        spec = program.inputs[source]
        return int(spec.max_payload) if spec.graded else 1
    pop = program.neurons.get(source)
    if isinstance(pop, GradedProgram):
        return pop.clip if pop.clip > 0 else 2**31 - 1
    return 1


def kernel_magnitude_bound(conn: ConnectionProgram, format_bits: int = 8) -> np.ndarray:
    """Per output channel, an upper bound of ``sum |K_eff[o]|`` (``(C_out,)`` int64): each nonzero entry after the
    clip to ``format_bits`` (+ sign) and the LSB truncation (which moves it by less than ``2**nt``)."""
    assert conn.conv is not None
    k = np.abs(np.asarray(conn.conv.kernel, dtype=np.int64)).reshape(conn.conv.kernel.shape[0], -1)
    nt = max(0, int(format_bits) - int(conn.num_weight_bits)) + int(conn.sign_mode == "mixed")
    entry = np.where(k > 0, np.minimum(k + 2**nt - 1, 2**format_bits), 0)
    return entry.sum(axis=1)


def lava_conv_reason(program: Program, name: str) -> str | None:
    """None when convolution connection ``name`` is lowered to Lava's ``Conv`` process, else why it is lowered as
    a Dense / DelayDense with the unrolled matrix (module doc)."""
    conn = program.connections[name]
    g = conn.conv
    if g is None:
        return "not a convolution"
    if conn.learning is not None:
        return "plastic"
    if conn.delays is not None:
        return "it has a synaptic delay (Lava's Conv has none): DelayDense"
    if int(conn.weight_exp) < 0:
        return f"weight_exp {int(conn.weight_exp)} < 0 (Lava's Conv applies no exponent; a Dense shifts its sum)"
    c_in, h, w = g.in_shape
    kh, kw = g.kernel.shape[2:]
    for axis, size, k in ((0, h, kh), (1, w, kw)):
        lava = (size + 2 * g.padding[axis] - g.dilation[axis] * (k - 1) - 1) // g.stride[axis] + 1
        if lava != g.out_shape[1 + axis]:
            return "asymmetric padding (Lava's Conv pads both sides alike)"
    fields = (kh, kw, *g.stride, *g.padding, *g.dilation, g.groups)
    if max(fields) > LAVA_CONV_FIELD_MAX:
        return f"a geometry field above {LAVA_CONV_FIELD_MAX} (Lava's Conv stores them in int8)"
    bound = int(kernel_magnitude_bound(conn, program.engine.weight_bits).max(initial=0))
    bound *= _source_payload(program, conn.source)
    if bound << int(conn.weight_exp) >= LAVA_CONV_LIMIT:
        return f"a sum could reach 2**23 (bound {bound << int(conn.weight_exp)}), where Lava's Conv clamps to 24 bits"
    return None


def lava_kernel(kernel: np.ndarray) -> np.ndarray:
    """Our kernel ``(C_out, C_in/groups, k_h, k_w)`` (torch's cross-correlation over ``(C, H, W)``) in Lava's Conv
    layout ``(C_out, k_w, k_h, C_in/groups)`` over ``(W, H, C)`` tensors: Lava convolves (``scipy.signal.
    convolve2d``), which flips the kernel, so the spatial axes are reversed."""
    return np.ascontiguousarray(np.asarray(kernel).transpose(0, 3, 2, 1)[:, ::-1, ::-1, :])


def kernel_from_lava(weight: np.ndarray) -> np.ndarray:
    """The inverse of :func:`lava_kernel`."""
    return np.ascontiguousarray(np.asarray(weight)[:, ::-1, ::-1, :].transpose(0, 3, 2, 1))
