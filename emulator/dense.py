"""Dense, DelayDense and the spiking path of LearningDense (Lava 0.10 fixed point), batched.

Sources: ``lava/proc/dense/models.py`` (``PyDenseModelBitAcc`` l.57-114, ``PyDelayDenseModelBitAcc``
l.290-352, ``PyLearningDenseModelBitApproximate`` l.146-191), ``lava/utils/weightutils.py``; spec:
``docs/lava-semantics.md`` §3.

Weight preparation (once, at Lava's first ``run_spk``)::

    Dense / DelayDense:  W = clip_weights(int32(W), sign_mode, 8)       MIXED [-256, 255], EXC [0, 255],
                                                                       INH [-255, 0]
    both, then:          nt = 8 - num_weight_bits + (sign_mode == MIXED)
                         W = (W >> nt) << nt       (INH: -((-W >> nt) << nt)); arithmetic = floor
    LearningDense:       only the truncation, with sign_mode MIXED unless given (no clip!)

So a MIXED matrix with 8 weight bits loses its LSB: ``3 -> 2``, ``-3 -> -4``, ``67 -> 66``.

Accumulation per step (``s`` = what the source sent this step; ``a_buff`` is sent first, so an input
spike at step t reaches the target at t+1)::

    binary (num_message_bits == 0):  acc = sum_j W[:, j] * (s_j != 0)      exact (int64 sum)
                                     a_buff = int32(acc << we  if we > 0 else  acc >> -we)
                                     (the shift is done in int64, the int32 channel wraps after it)
    graded (num_message_bits > 0):   acc = int32(W . s)                    (numpy int32 dot: wraps)
                                     a_buff = acc << we | acc >> -we       (in int32)
    DelayDense (both):               acc_k = sum_j [delay_ij == k] W_ij s_j  (int64), shifted in
                                     int64, then added to the int32 delay line a_buff[:, k] (wraps);
                                     the line moves one column per step: delay d arrives at t+1+d.

The compiled kernel :func:`send_one` computes one trial's exact int64 sums over the rows of the nonzero
inputs only (the weights are stored pre-major), then the shift and the int32 wrap as above; the step
kernel (:mod:`.step_kernel`) calls it and moves the delay line.  A static matrix that is mostly zeros (a
DelayDense's delay blocks, a folded ``Delay`` node, sparse wiring; at most ``SPARSE_DENSITY`` nonzero) sends
through :func:`send_sparse` over its rows' nonzero entries instead: the same integer sums.
"""

from __future__ import annotations

import numpy as np

from .intmath import njit, shift, wrap32

SIGN_MODES = ("mixed", "excitatory", "inhibitory")
INT32_MIN = -(2**31)


def clip_weights(weights: np.ndarray, sign_mode: str, num_bits: int = 8) -> np.ndarray:
    """Lava's ``clip_weights`` (int32): MIXED ``[-2**b, 2**b-1]``, EXC ``[0, 2**b-1]``, INH ``[-(2**b-1), 0]``."""
    w = np.asarray(weights).astype(np.int32)
    if sign_mode == "inhibitory":
        w = -w
    lo = -(2**num_bits) if sign_mode == "mixed" else 0
    w = np.clip(w, lo, 2**num_bits - 1)
    if sign_mode == "inhibitory":
        w = -w
    return w.astype(np.int32)


def truncate_weights(weights: np.ndarray, sign_mode: str, num_weight_bits: int, format_bits: int = 8) -> np.ndarray:
    """Lava's ``truncate_weights``: drop ``8 - num_weight_bits + (MIXED)`` LSBs (floor; INH mirrored); an engine
    variant with ``format_bits``-bit weights drops ``format_bits - num_weight_bits + (MIXED)``."""
    w = np.asarray(weights).astype(np.int32)
    if sign_mode == "inhibitory":
        w = -w
    nt = max(0, int(format_bits) - int(num_weight_bits)) + int(sign_mode == "mixed")
    w = (w >> nt) << nt
    if sign_mode == "inhibitory":
        w = -w
    return w.astype(np.int32)


def dense_effective_weights(
    weights: np.ndarray, sign_mode: str, num_weight_bits: int, format_bits: int = 8
) -> np.ndarray:
    """Effective weights of a static Dense / DelayDense: clip to 8(+sign) bits (``format_bits`` in a variant),
    then LSB truncation."""
    return truncate_weights(clip_weights(weights, sign_mode, format_bits), sign_mode, num_weight_bits, format_bits)


def learning_effective_weights(
    weights: np.ndarray, sign_mode: str, num_weight_bits: int, format_bits: int = 8
) -> np.ndarray:
    """Effective initial weights of a LearningDense: LSB truncation only (no clip)."""
    return truncate_weights(weights, sign_mode, num_weight_bits, format_bits)


@njit
def active_indices(s: np.ndarray, row: int, out: np.ndarray) -> int:
    """The indices ``j`` with ``s[row, j] != 0`` (spiking neurons, nonzero payloads) into ``out``, in
    increasing order; returns their number.  Branch-free: every index is written, the count advances
    only on the active ones."""
    n = 0
    for j in range(s.shape[1]):
        out[n] = j
        n += s[row, j] != 0
    return n


@njit
def emit(acc: np.ndarray, wrap_first: bool, weight_exp: int, out: np.ndarray) -> None:
    """A send's exact int64 sums ``acc`` shifted by ``weight_exp`` and wrapped to int32 into ``out`` (module doc); with
    ``wrap_first`` (graded Dense, LearningDense, Conv) wrapped to int32 first and shifted in int32."""
    if wrap_first:
        for k in range(out.shape[0]):
            out[k] = wrap32(shift(wrap32(acc[k]), weight_exp))
    else:
        for k in range(out.shape[0]):
            out[k] = wrap32(shift(acc[k], weight_exp))


@njit
def send_one(
    w: np.ndarray,
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
    """What a Dense sends for one trial's input ``s[row]`` (``s`` ``(T, n_pre)``): ``out`` ``(m,)`` int32
    (see module doc).

    ``w`` is ``(n_pre, m)`` pre-major; only the rows of the nonzero inputs, ``active[:n_active]``
    (:func:`active_indices`), are read.  ``graded``: payloads multiply the rows (else any nonzero input
    counts 1).  The exact int64 sum (in the scratch ``acc`` ``(m,)`` int64) is then shifted by
    ``weight_exp`` and wrapped to int32, or, with ``wrap_first`` (graded Dense / LearningDense), wrapped
    to int32 first and shifted in int32.  (Whole arrays and indices are passed and indexed, never row
    views: see :func:`~.lif.lif_step`.)
    """
    m = out.shape[0]
    for k in range(m):
        acc[k] = 0
    for q in range(n_active):
        j = active[q]
        if graded:
            sj = np.int64(s[row, j])
            for k in range(m):
                acc[k] += sj * w[j, k]
        else:
            for k in range(m):
                acc[k] += w[j, k]
    emit(acc, wrap_first, weight_exp, out)


@njit
def send_sparse(
    ptr: np.ndarray,
    cols: np.ndarray,
    vals: np.ndarray,
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
    """:func:`send_one` for a mostly-zero weight matrix stored by rows (CSR): pre neuron ``j``'s nonzero weights are
    ``vals[ptr[j]:ptr[j+1]]`` in columns ``cols[...]``.  The int64 sums are the same integers (only the zero terms
    are skipped), so the output is identical; the work per active input is its nonzero weights, not ``m``."""
    m = out.shape[0]
    for k in range(m):
        acc[k] = 0
    for q in range(n_active):
        j = active[q]
        sj = np.int64(s[row, j]) if graded else np.int64(1)
        for e in range(ptr[j], ptr[j + 1]):
            acc[cols[e]] += sj * vals[e]
    emit(acc, wrap_first, weight_exp, out)


#: A static (Delay)Dense whose weight matrix (all delay blocks) has at most this fraction of nonzero entries sends
#: through :func:`send_sparse` (DelayDense: each synapse sits in one of the D blocks, so its density is <= 1/D).
SPARSE_DENSITY = 0.25


class DenseSynapse:
    """The state of a static Dense (or DelayDense when ``delays`` is given) for ``B`` trials.

    ``mat`` ``(Bw, n_pre, D * n_post)`` int16 (int32 if a weight does not fit) holds the weights pre-major
    (column block k: the weights with delay k), one matrix for all trials (``Bw = 1``) or one per trial; a
    Dense keeps its next output in ``a_buff`` ``(B, n_post)``, a DelayDense its delay line in ``ring`` ``(B,
    D, n_post)`` with the slot of the current step at ``head``.  The step kernel (:mod:`.step_kernel`) advances them.

    Parameters
    ----------
    weights:
        Effective integer weights ``(n_post, n_pre)``, or ``(B, n_post, n_pre)`` for weights that differ
        between trials (see :func:`dense_effective_weights`).
    weight_exp, num_message_bits:
        As in Lava.
    batch:
        Number of trials.
    delays:
        Optional per-synapse delays ``(n_post, n_pre)`` (DelayDense).
    """

    def __init__(
        self,
        weights: np.ndarray,
        weight_exp: int,
        num_message_bits: int,
        batch: int,
        delays: np.ndarray | None = None,
    ) -> None:
        self.w = np.ascontiguousarray(weights, dtype=np.int32)
        w3 = self.w if self.w.ndim == 3 else self.w[None]  # (Bw, n_post, n_pre)
        self.n_post, self.n_pre = w3.shape[1:]
        self.weight_exp = int(weight_exp)
        self.graded = int(num_message_bits) > 0
        self.batch = batch
        self.delayed = delays is not None
        if self.delayed:
            d = np.asarray(delays, dtype=np.int64)
            self.n_delay = int(d.max()) + 1 if d.size else 1
            # (Bw, n_pre, D * n_post): column block k holds the weights with delay k
            stack = np.stack([np.where(d == k, w3, 0) for k in range(self.n_delay)], axis=1)  # (Bw, D, post, pre)
            mat = np.swapaxes(stack.reshape(len(w3), self.n_delay * self.n_post, self.n_pre), 1, 2)
            self.ring = np.zeros((batch, self.n_delay, self.n_post), dtype=np.int32)
            self.head = 0
        else:
            self.n_delay = 1
            mat = np.swapaxes(w3, 1, 2)
            self.a_buff = np.zeros((batch, self.n_post), dtype=np.int32)
        # the effective weights are 9-bit (clip_weights), so int16 holds them and halves the memory the
        # spiking path reads per step (it is bandwidth-bound for large layers)
        fits = mat.size == 0 or (mat.min() >= np.iinfo(np.int16).min and mat.max() <= np.iinfo(np.int16).max)
        self.mat = np.ascontiguousarray(mat, dtype=np.int16 if fits else np.int32)
        # mostly zeros (delay blocks, folded Delay nodes, sparse wiring): the rows' nonzero entries (CSR, per
        # weight set), sent by send_sparse; the same integers as the dense send
        nonzero = self.mat != 0
        self.sparse = bool(self.mat.size) and float(nonzero.mean()) <= SPARSE_DENSITY
        if self.sparse:
            counts = nonzero.sum(axis=2)  # (Bw, n_pre)
            width = max(int(counts.sum(axis=1).max()), 1)
            self.ptr = np.zeros((len(self.mat), self.n_pre + 1), dtype=np.int64)
            self.ptr[:, 1:] = np.cumsum(counts, axis=1)
            self.cols = np.zeros((len(self.mat), width), dtype=np.int64)
            self.vals = np.zeros((len(self.mat), width), dtype=self.mat.dtype)
            for i, m in enumerate(self.mat):
                rows, cols = np.nonzero(m)  # row-major order: pre neuron by pre neuron
                self.cols[i, : len(cols)] = cols
                self.vals[i, : len(cols)] = m[rows, cols]
