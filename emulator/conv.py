"""Convolution connections: the kernel runs in place of the unrolled Dense matrix, with the same integers.

A Program connection with a geometry (:attr:`~neuro_hw.compiler.program.ConnectionProgram.conv`) is lowered to
Lava's ``Conv`` process with the kernel ``K_eff << weight_exp`` where that is exact, else to a Dense (or DelayDense)
with its unrolled matrix (:mod:`neuro_hw.compiler.conv_weights`, ``targets/loihi2/conv_process.py``).  Lava's Conv
sends ``signed_clamp_24(sum K_lava s)``; it is used only when no sum can reach ``2**23``, where it equals the
Dense's, so in both cases the emulator sends exactly what the Dense sends (:mod:`.dense`)::

    acc_k = sum_{j active} K_eff[tap(k, j)] * s_j          int64, over the unrolled matrix's entries (k, j)
    out_k = wrap32(acc_k << we | acc_k >> -we)              binary, and every delayed connection
    out_k = wrap32(wrap32(acc_k) << we | >> -we)            graded without delay (Lava's int32 dot)

with ``K_eff`` the kernel after Lava's weight preparation (clip to the sign mode's range, LSB truncation:
elementwise, so the kernel's effective entries are the matrix's).  The kernel reads the unrolled matrix's
structure column by column (``ptr``, ``rows``, ``taps``: for input ``j``, the outputs ``rows[ptr[j]:ptr[j+1]]`` it
reaches through kernel entries ``taps[...]``), so a step costs ``active inputs x C_out/groups x k_h x k_w`` adds
instead of ``active inputs x n_post``, and memory is two int32 per synapse instead of a dense matrix.  A delayed
convolution (a pooling folded into a weight node, :mod:`neuro_hw.compiler.weight_maps`) has one delay ``d``: its
sums go to slot ``d`` of a delay line as a DelayDense's.
"""

from __future__ import annotations

import numpy as np

from neuro_hw.ir.conv import ConvGeometry

from .dense import emit
from .intmath import njit


@njit
def send_conv(
    ptr: np.ndarray,
    rows: np.ndarray,
    taps: np.ndarray,
    kernel: np.ndarray,
    s: np.ndarray,
    row: int,
    active: np.ndarray,
    n_active: int,
    graded: bool,
    wrap_first: bool,
    weight_exp: int,
    out: np.ndarray,
    acc: np.ndarray,
) -> None:
    """What the convolution sends for one trial's input ``s[row]`` (``s`` ``(T, n_pre)``) into ``out`` ``(m,)``
    int32 (module doc); ``acc`` ``(m,)`` int64 scratch, ``active[:n_active]`` the nonzero inputs."""
    m = out.shape[0]
    for k in range(m):
        acc[k] = 0
    for q in range(n_active):
        j = active[q]
        lo, hi = ptr[j], ptr[j + 1]
        if graded:
            sj = np.int64(s[row, j])
            for e in range(lo, hi):
                acc[rows[e]] += sj * kernel[taps[e]]
        else:
            for e in range(lo, hi):
                acc[rows[e]] += kernel[taps[e]]
    emit(acc, wrap_first, weight_exp, out)


class ConvSynapse:
    """The state of a static convolution connection for ``B`` trials (module doc).

    Parameters
    ----------
    conv:
        The geometry with the integer kernel.
    effective_kernel:
        The kernel after Lava's weight preparation (:func:`~.dense.dense_effective_weights` of the kernel).
    weight_exp, num_message_bits:
        As in Lava.
    batch:
        Number of trials.
    delay:
        The one synaptic delay in steps, or None.
    """

    def __init__(
        self,
        conv: ConvGeometry,
        effective_kernel: np.ndarray,
        weight_exp: int,
        num_message_bits: int,
        batch: int,
        delay: int | None = None,
    ) -> None:
        rows, cols, taps = conv.structure()
        order = np.argsort(cols, kind="stable")
        self.rows = np.ascontiguousarray(rows[order], dtype=np.int32)
        self.taps = np.ascontiguousarray(taps[order], dtype=np.int32)
        self.ptr = np.zeros(conv.n_in + 1, dtype=np.int64)
        np.cumsum(np.bincount(cols, minlength=conv.n_in), out=self.ptr[1:])
        self.kernel = np.ascontiguousarray(np.asarray(effective_kernel).reshape(-1), dtype=np.int32)
        self.n_pre, self.n_post = conv.n_in, conv.n_out
        self.weight_exp = int(weight_exp)
        self.graded = int(num_message_bits) > 0
        self.batch = batch
        self.delayed = delay is not None
        if self.delayed:
            self.delay = int(delay)
            self.n_delay = self.delay + 1
            self.ring = np.zeros((batch, self.n_delay, self.n_post), dtype=np.int32)
            self.head = 0
        else:
            self.delay, self.n_delay = 0, 1
            self.a_buff = np.zeros((batch, self.n_post), dtype=np.int32)


def uniform_delay(delays: np.ndarray | None, weights: np.ndarray) -> int | None:
    """The one delay of a connection's synapses (None without delays); raises ValueError when they differ."""
    if delays is None:
        return None
    used = np.asarray(delays)[np.asarray(weights) != 0]
    values = np.unique(used) if used.size else np.unique(np.asarray(delays))
    if values.size != 1:
        raise ValueError(f"a convolution needs one synaptic delay, got {values.tolist()}")
    return int(values[0])
