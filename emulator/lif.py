"""Fixed-point LIF of Lava 0.10 (``PyLifModelBitAcc``) over (batch, neuron), as one compiled kernel.

Source: ``lava/proc/lif/models.py:72-278``; spec: ``docs/lava-semantics.md`` §2.

Storage and widths (Lava's own): ``u``, ``v`` int32 arrays (nominally 24 bit); ``du``, ``dv`` 12-bit
unsigned Python ints; ``bias_mant`` an **int16** Var (a wider value wraps silently when the Var is
initialised, §1.3), ``bias_exp`` int16; ``vth`` a Python int; the input ``a_in`` arrives as int32 (the
sum of all connected Dense outputs, each an int32 channel; the sum wraps at 32 bits).

One step, int32 arithmetic unless noted (the kernel computes in int64 and wraps to int32 exactly as
Lava's numpy int32 does, :func:`~.intmath.wrap32`)::

    bias  = bias_mant << bias_exp   if bias_exp >= 0 else bias_mant >> -bias_exp     (int32; constant)
    vth_e = vth << 6                                             (read once, at the first step)
    p     = int64(u) * (4096 - (du + 1))                         (ds_offset = 1: du=0 still decays)
    u     = int32(sign(p) * (|p| >> 12)) + int32(a_in << 6)      (rounds toward zero; int32 wrap)
    u     = u - 2**24  if u >  2**23                             (ONE conditional 24-bit wrap;
    u     = u + 2**24  if u <= -2**23                             u == 2**23 is left alone)
    p     = int64(v) * (4096 - dv)
    v     = clip(int32(sign(p) * (|p| >> 12)) + u + bias, -(2**23 - 1), 2**23 - 1)
    s     = v > vth_e ;  v[s] = 0                                 (no refractory period; u not reset)
"""

from __future__ import annotations

import numpy as np

from .intmath import clip, njit, wrap32

#: 2**23: the 24-bit bound of u and v (``max_uv_val``).
MAX_UV = 2**23
#: Decay arithmetic: ``x * (DECAY_UNITY - d) >> DECAY_SHIFT``.
DECAY_SHIFT = 12
DECAY_UNITY = 2**DECAY_SHIFT
#: Input and threshold are MSB-aligned by 6 bits (``act_shift``, ``vth_shift``).
ACT_SHIFT = 6
VTH_SHIFT = 6


def effective_bias(bias_mant: np.ndarray, bias_exp: np.ndarray) -> np.ndarray:
    """``bias_mant << bias_exp`` (``>> -bias_exp`` for negative exponents) as Lava's ``scale_bias``.

    Both inputs are first stored into int16 (Lava's Var dtype: values wrap), the shift is done in int32.
    """
    mant = np.asarray(bias_mant).astype(np.int16).astype(np.int32)
    exp = np.asarray(bias_exp).astype(np.int16)
    with np.errstate(all="ignore"):
        return np.where(exp >= 0, np.left_shift(mant, exp), np.right_shift(mant, -exp)).astype(np.int32)


@njit
def decay_scalar(x: int, factor: int) -> int:
    """``sign(p) * (|p| >> 12)`` with ``p = x * factor`` (int64): Lava's decay, rounding toward zero."""
    p = np.int64(x) * factor
    # -((-p) >> 12) == (p + 4095) >> 12 for p < 0 (both round toward zero); branch-free, so it vectorises
    return (p + ((p >> 63) & (DECAY_UNITY - 1))) >> DECAY_SHIFT


@njit
def _decay_array(x: np.ndarray, factor: int) -> np.ndarray:
    out = np.empty(x.shape, dtype=np.int32)
    flat, res = x.ravel(), out.ravel()
    for i in range(flat.size):
        res[i] = decay_scalar(flat[i], factor)
    return out


def decay_toward_zero(x: np.ndarray, factor: int) -> np.ndarray:
    """``int32(sign(p) * (|p| >> 12))`` with ``p = int64(x) * factor`` (int32 ``x``, ``0 <= factor <= 4096``)."""
    return _decay_array(np.ascontiguousarray(x, dtype=np.int32), int(factor))


@njit
def lif_step(
    u: np.ndarray,
    v: np.ndarray,
    a_in: np.ndarray,
    bias: np.ndarray,
    u_factor: int,
    v_factor: int,
    vth_eff: int,
    s_rec: np.ndarray,
    s_row: int,
    u_rec: np.ndarray,
    v_rec: np.ndarray,
    uv_row: int,
) -> None:
    """One ``PyLifModelBitAcc.run_spk`` of one trial: ``(n,)`` int32 ``u``, ``v`` in place (module doc formulas).

    The spikes go to row ``s_row`` of ``s_rec``; rows ``uv_row`` of ``u_rec``, ``v_rec`` receive copies
    of the new ``u``, ``v`` (recording; ``(T, n)`` arrays, or views of ``u``, ``v`` as ``(1, n)``).  The
    caller passes whole arrays and row indices, not row views: a view costs two atomic reference-count
    updates, which would dominate a step of a small population.
    """
    for i in range(u.shape[0]):
        uu = wrap32(decay_scalar(u[i], u_factor) + wrap32(np.int64(a_in[i]) << ACT_SHIFT))
        if uu > MAX_UV:
            uu -= 2 * MAX_UV
        elif uu <= -MAX_UV:
            uu = wrap32(uu + 2 * MAX_UV)
        vv = clip(wrap32(wrap32(decay_scalar(v[i], v_factor) + uu) + bias[i]), -(MAX_UV - 1), MAX_UV - 1)
        spiked = vv > vth_eff
        vv = 0 if spiked else vv
        s_rec[s_row, i] = spiked
        u[i] = uu
        v[i] = vv
        u_rec[uv_row, i] = uu
        v_rec[uv_row, i] = vv


class LifPopulation:
    """State and parameters of one LIF population for ``B`` trials (``u``, ``v`` are ``(B, n)`` int32).

    Parameters
    ----------
    n, batch:
        Population size and number of trials.
    du, dv:
        12-bit decay constants (Python ints, as Lava uses them).
    vth:
        Threshold mantissa; spikes when ``v > vth << 6``.
    bias_mant, bias_exp, u_init, v_init:
        Per-neuron arrays ``(n,)``.
    """

    def __init__(
        self,
        n: int,
        batch: int,
        du: int,
        dv: int,
        vth: int,
        bias_mant: np.ndarray,
        bias_exp: np.ndarray,
        u_init: np.ndarray,
        v_init: np.ndarray,
    ) -> None:
        self.n = int(n)
        self.batch = int(batch)
        self.du, self.dv = int(du), int(dv)
        self.u_factor = DECAY_UNITY - (self.du + 1)
        self.v_factor = DECAY_UNITY - self.dv
        self.vth_eff = int(vth) << VTH_SHIFT
        self.bias = np.ascontiguousarray(np.broadcast_to(effective_bias(bias_mant, bias_exp), (self.n,)))
        self.u = np.broadcast_to(np.asarray(u_init, dtype=np.int32), (batch, self.n)).copy()
        self.v = np.broadcast_to(np.asarray(v_init, dtype=np.int32), (batch, self.n)).copy()
        self._zero_input = np.zeros((batch, self.n), dtype=np.int32)

    def step(
        self,
        a_in: np.ndarray | None,
        out: np.ndarray | None = None,
        u_out: np.ndarray | None = None,
        v_out: np.ndarray | None = None,
    ) -> np.ndarray:
        """Advance one step with int32 input ``a_in`` ``(B, n)`` (None = none); return the spikes ``(B, n)`` bool.

        ``a_in`` must be an int32 array (it is read as such).

        ``out``: optional bool array ``(B, n)`` to write the spikes into (returned); ``u_out``, ``v_out``:
        optional int32 arrays ``(B, n)`` that receive the new ``u``, ``v`` (e.g. a step of a recording).
        """
        s = np.empty((self.batch, self.n), dtype=bool) if out is None else out
        a = self._zero_input if a_in is None else a_in
        uo = self.u if u_out is None else u_out
        vo = self.v if v_out is None else v_out
        for b in range(self.batch):
            lif_step(
                self.u[b], self.v[b], a[b], self.bias, self.u_factor, self.v_factor, self.vth_eff,
                s[b : b + 1], 0, uo[b : b + 1], vo[b : b + 1], 0,
            )  # fmt: skip
        return s
