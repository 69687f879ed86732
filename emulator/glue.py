"""The small loops of the generated step loop (:mod:`.step_kernel`), written once as compiled functions.

The step loop generated per circuit structure only *calls* kernels; every loop it needs is one of these (or
a kernel of :mod:`.lif`, :mod:`.dense`, :mod:`.conv`, :mod:`.graded`, :mod:`.learning`).  A loop written into
the generated function is compiled again for every structure, and LLVM's time grows faster than the function's
size: a ~60-connection circuit took 85 s to compile with its loops in line and
~25 s with these calls (the run's speed is the same; see docs/emulator.md, "Kernel compilation").

The arithmetic is that of the module each loop came from: int32 wrap-around sums (:func:`~.intmath.wrap32`).
"""

from __future__ import annotations

import numpy as np

from .intmath import njit, wrap32


@njit
def zero(a: np.ndarray) -> None:
    """``a[:] = 0`` (a 1-d buffer)."""
    for k in range(a.shape[0]):
        a[k] = 0


@njit
def accumulate(dst: np.ndarray, src: np.ndarray) -> None:
    """``dst = wrap32(dst + src)``, elementwise (what a connection sends, added to its target's input)."""
    for k in range(dst.shape[0]):
        dst[k] = wrap32(dst[k] + src[k])


@njit
def accumulate_row(dst: np.ndarray, line: np.ndarray, head: int) -> None:
    """``dst = wrap32(dst + line[head])``: what a delay line delivers this step."""
    for k in range(dst.shape[0]):
        dst[k] = wrap32(dst[k] + line[head, k])


@njit
def advance_delay_line(line: np.ndarray, head: int, sent: np.ndarray) -> int:
    """A DelayDense ring ``line`` ``(depth, m)`` after this step's send; returns the new head.

    The row just delivered is cleared, the head advances, and the part of ``sent`` ``(depth * m,)`` with
    delay ``k`` is added to the row ``k`` steps after the next (int32 wrap-around)."""
    depth, m = line.shape[0], line.shape[1]
    for q in range(m):
        line[head, q] = 0
    head = (head + 1) % depth
    for k in range(depth):
        r = (head + k) % depth
        for q in range(m):
            line[r, q] = wrap32(line[r, q] + sent[np.uint64(k * m + q)])
    return head


@njit
def advance_uniform_delay_line(line: np.ndarray, head: int, sent: np.ndarray, delay: int) -> int:
    """As :func:`advance_delay_line` for a connection whose synapses all have delay ``delay`` (``sent`` ``(m,)``)."""
    depth, m = line.shape[0], line.shape[1]
    for q in range(m):
        line[head, q] = 0
    head = (head + 1) % depth
    r = (head + delay) % depth
    for q in range(m):
        line[r, q] = wrap32(line[r, q] + sent[q])
    return head


@njit
def set_registers(z: np.ndarray, base: int, n: int, values: np.ndarray, row: int) -> None:
    """Third factor: ``z[base : base + n] = values[row, :n]`` (the y registers take this step's received values)."""
    for q in range(n):
        z[np.uint64(base + q)] = values[row, q]


@njit
def clear_registers(z: np.ndarray, base: int, n: int) -> None:
    """``z[base : base + n] = 0`` (a y register no third factor is bound to)."""
    for q in range(n):
        z[np.uint64(base + q)] = 0.0


@njit
def record_bank(rec: np.ndarray, row: int, z: np.ndarray) -> None:
    """``rec[row] = int32(z)``: the trace registers of one trial at this step."""
    for q in range(z.shape[0]):
        rec[row, q] = np.int32(z[q])


@njit
def record_synapses(rec: np.ndarray, b: int, r: int, var: np.ndarray) -> None:
    """``rec[b, r] = var.T``: one synaptic variable (stored pre-major ``(n_pre, n_post)``) as ``(n_post, n_pre)``."""
    for j in range(var.shape[0]):
        for i in range(var.shape[1]):
            rec[b, r, i, j] = var[j, i]
