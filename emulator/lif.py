"""Fixed-point LIF of Lava 0.10 (``PyLifModelBitAcc``), vectorised over (batch, neuron).

Source: ``lava/proc/lif/models.py:72-278``; spec: ``../shared/docs/lava-semantics.md`` §2.

Storage and widths (Lava's own): ``u``, ``v`` int32 arrays (nominally 24 bit); ``du``, ``dv`` 12-bit
unsigned Python ints; ``bias_mant`` an **int16** Var (a wider value wraps silently when the Var is
initialised, §1), ``bias_exp`` int16; ``vth`` a Python int; the input ``a_in`` arrives as int32 (the
sum of all connected Dense outputs, each an int32 channel; the sum wraps at 32 bits).

One step, all arithmetic in numpy int32 unless noted (so it wraps exactly like Lava)::

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

_clip = getattr(np.core.umath, "clip", np.clip)  # np.clip's ufunc, without its Python-level overhead

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


def decay_toward_zero(x: np.ndarray, factor: int) -> np.ndarray:
    """``int32(sign(p) * (|p| >> 12))`` with ``p = int64(x) * factor`` (int32 ``x``, ``0 <= factor <= 4096``).

    Computed as ``trunc(x * (factor / 4096))`` in float64, which is exact: ``factor / 4096`` is a
    binary fraction and ``|x * factor| < 2**43`` fits the 53-bit mantissa.
    """
    if factor == DECAY_UNITY:
        return x.copy()
    if factor == 0:
        return np.zeros_like(x)
    return np.trunc(x * (factor / DECAY_UNITY)).astype(np.int32)


class LifPopulation:
    """State and parameters of one LIF population for ``B`` trials (``u``, ``v`` are ``(B, n)``).

    Two arithmetic modes give identical integers:

    * **int32** (general): the formulas above with int32 arrays, including every wrap-around;
    * **safe float64** (used when the input bound proves that no wrap-around and no v clip can
      happen, see :meth:`use_input_bound`): ``u``, ``v`` held as float64 integers, the decays as
      ``trunc(x * f/4096)`` (exact, |x * f| < 2**43), inputs pre-multiplied by 64.  Fewer numpy
      calls per step.

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
        self.du, self.dv = int(du), int(dv)
        self.u_factor = DECAY_UNITY - (self.du + 1)
        self.v_factor = DECAY_UNITY - self.dv
        self.vth_eff = int(vth) << VTH_SHIFT
        self.bias = effective_bias(bias_mant, bias_exp)[None, :]
        self.has_bias = bool(np.any(self.bias))
        self.u = np.broadcast_to(np.asarray(u_init, dtype=np.int32), (batch, self.n)).copy()
        self.v = np.broadcast_to(np.asarray(v_init, dtype=np.int32), (batch, self.n)).copy()
        self.safe = False

    def use_input_bound(self, a_lo: int | None, a_hi: int | None) -> bool:
        """Switch to the safe float64 mode if ``a_lo <= a_in <= a_hi`` rules out every wrap and clip.

        With ``A = max(|a_lo|, |a_hi|)`` and ``U* = 64 A 4096 / (du+1)`` (fixed point of
        ``|u| <= |u| (4095-du)/4096 + 64 A``), ``U = max(|u0|, U*)`` must stay below ``2**23`` (no
        wrap; no int32 overflow then).  ``v`` needs no clip if, for ``dv > 0``,
        ``V = max(|v0|, (U + |bias|) 4096 / dv) < 2**23 - 1`` (the reset only lowers ``|v|``); for
        ``dv = 0`` if ``u``, ``v``, ``bias`` cannot become negative (``a_lo >= 0``, ``u0, v0, bias >= 0``)
        and ``max(v0, vth << 6) + U + bias < 2**23 - 1`` (``v <= vth << 6`` after every step).
        Returns whether the safe mode is used.
        """
        if a_lo is None or a_hi is None or not (0 <= self.du < DECAY_UNITY and 0 <= self.dv < DECAY_UNITY):
            return False
        big = max(abs(int(a_lo)), abs(int(a_hi)))
        u_star = 64 * big * DECAY_UNITY / (self.du + 1)
        u0 = self.u.astype(np.int64)
        v0 = self.v.astype(np.int64)
        bias = self.bias.astype(np.int64)
        u_bound = max(float(np.abs(u0).max(initial=0)), u_star)
        if u_bound >= MAX_UV - 1:
            return False
        b_max = float(np.abs(bias).max(initial=0))
        if self.dv > 0:
            v_bound = max(float(np.abs(v0).max(initial=0)), (u_bound + b_max) * DECAY_UNITY / self.dv)
        elif a_lo >= 0 and u0.min(initial=0) >= 0 and v0.min(initial=0) >= 0 and bias.min(initial=0) >= 0:
            v_bound = max(float(v0.max(initial=0)), float(self.vth_eff)) + u_bound + b_max
        else:
            return False
        if v_bound >= MAX_UV - 2:
            return False
        self.safe = True
        self.uf = self.u.astype(np.float64)
        self.vf = self.v.astype(np.float64)
        self.bias_f = self.bias.astype(np.float64)
        self.u_mul = self.u_factor / DECAY_UNITY
        self.v_mul = self.v_factor / DECAY_UNITY
        return True

    @property
    def state(self) -> tuple[np.ndarray, np.ndarray]:
        """``(u, v)`` at the end of the last step (float64 integers in safe mode, else int32)."""
        if self.safe:
            return self.uf, self.vf
        return self.u, self.v

    def step(self, a_in: np.ndarray | None, drive64: np.ndarray | None = None) -> np.ndarray:
        """Advance one step; return the spikes ``(B, n)`` bool, exactly as ``PyLifModelBitAcc.run_spk``.

        ``a_in``: int32 input ``(B, n)`` of this step (None = none); ``drive64``: an additional
        precomputed input, already multiplied by 64 (float64) in safe mode, plain int32 otherwise.
        """
        if self.safe:
            u = np.trunc(self.uf * self.u_mul)
            if a_in is not None:
                u += a_in * 64
            if drive64 is not None:
                u += drive64
            self.uf = u
            v = np.trunc(self.vf * self.v_mul) if self.dv else self.vf
            v += u
            if self.has_bias:
                v += self.bias_f
            s = v > self.vth_eff
            v[s] = 0
            self.vf = v
            return s
        if drive64 is not None:
            a_in = drive64 if a_in is None else a_in + drive64  # int32 wrap-around
        u = decay_toward_zero(self.u, self.u_factor)
        if a_in is not None:
            u += np.left_shift(a_in, ACT_SHIFT)  # int32 wrap-around, as Lava
        # single conditional 24-bit wrap (the second test uses the already-wrapped value, the
        # correction the original one -- identical results, since a wrapped value is > -2**23).
        # Fast test: u in (-2**23, 2**23]  <=>  uint32(u + 2**23 - 1) < 2**24  (int32 wrap included)
        if (np.add(u, MAX_UV - 1).view(np.uint32) >= 2 * MAX_UV).any():
            hi = u > MAX_UV
            lo = u <= -MAX_UV
            u[hi] -= 2 * MAX_UV
            u[lo] += 2 * MAX_UV  # may wrap at int32, as Lava's int32 ``decayed_curr + 2**24``
        self.u = u
        v = decay_toward_zero(self.v, self.v_factor)
        v += u
        if self.has_bias:
            v += self.bias
        _clip(v, -(MAX_UV - 1), MAX_UV - 1, out=v)
        s = v > self.vth_eff
        v[s] = 0
        self.v = v
        return s
