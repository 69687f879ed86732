"""The Loihi learning engine as Lava 0.10 simulates it in fixed point, batched and sparse.

Source: ``lava/magma/core/model/py/connection.py`` (``LearningConnectionModelBitApproximate``,
l.536-1172, and ``PyLearningConnection``), ``lava/magma/core/learning/{learning_rule_applier,random,
utils,constants}.py``; spec: ``../shared/docs/lava-semantics.md`` §4.  One :class:`LearningEngine`
holds one plastic connection for ``B`` trials: weights ``w``, tags ``t`` (tag_1) and ``d`` (tag_2),
each logically ``(B, n_post, n_pre)`` (Lava: int32 weights, int64 tags), pre traces ``x`` ``(B, 2,
n_pre)`` and post traces ``y`` ``(B, 3, n_post)`` (7 bit), last within-epoch spike times ``tx``/``ty``
(0 = none).  (How they are stored is an implementation detail, see :class:`LearningEngine`.)

Random numbers (§4.6, ``random.py``)
------------------------------------
Per trial, with ``s = rng_seed``: ``x``: ``default_rng(s).random(1)[0]`` (decay rounding) and
``default_rng(s+1).integers(0, 128, size=1, dtype=int)[0]`` (impulse rounding); ``y`` likewise with
``s+2``, ``s+3``; ``conn``: ``default_rng(2).random(1)[0]``.  One draw of each at construction
(index 0), the x and y streams advance twice per step (in the spiking phase, draws ``2t-1`` and ``2t``
at step t), conn once per learning epoch (draw ``k`` in epoch k).  Bulk draws give the same numbers as
repeated size-1 draws, so the streams are generated up front.  All values are scalars per trial.

Spiking phase (every step t; ``k = t mod t_epoch`` or ``t_epoch``)
------------------------------------------------------------------
::

    sp = s_pre != 0 ;  multi = (tx > 0) & sp              # 2nd+ spike within the epoch
    x1[multi] = clip(x1 + imp_int + (0 < imp_frac), 0, 127)  (same for x2; "random" is 0 here)
    tx[sp] = k
    -- x, y streams advance (draw 2t-1) --
    multi = (ty > 0) & bap
    y[multi] = clip(y + imp_int + (y_imp_rand[2t-1] < imp_frac), 0, 127)   (y1, y2, y3)
    ty[bap] = k
    3-factor: y1, y2, y3 := value received this step (0 if unbound)          (overwrite)
    -- x, y streams advance (draw 2t) --

``imp_int = floor(impulse)``, ``imp_frac = round((impulse - imp_int) * 256)`` (0..256).  The **first**
spike of an epoch only records its time; its impulse is added in the history below.

Learning phase (``t mod t_epoch == 0``)
---------------------------------------
::

    conn advances (draw e);  x0 = tx > 0;  y0 = ty > 0
    H[0] = traces; for s in 1..t_epoch:                     (x and y groups separately, float64)
        f = exp(-1/tau) * H[s-1];  H[s] = floor(f) + (r_decay < f mod 1)   (tau != 0; tau == 0 -> 0)
        where t_spike == s: H[s] = clip(H[s] + imp_int + (r_imp < imp_frac), 0, 127)
    x := H_x[-1];  2-factor: y := H_y[-1]    (3-factor: y keeps the received values)

Trace factors are read at the dependency's time: ``y0`` -> x traces ``H_x[ty]`` (n_post, n_pre) and y
traces ``H_y[ty]`` (own); ``x0`` -> ``H_y[tx]`` and ``H_x[tx]``; ``u`` -> ``H[-1]``.  For every target
(dw, dd, dt; all reading the pre-update w, d, t)::

    acc = var << 7                                          (units of 2**-7)
    for each product (dep, m, s_exp = e + 7, factors):
        c = int32(dep)                                      (x0, y0 in {0,1}; u = [int(t/te) % 2**k == 0])
        for f: c *= int32(clip(f_val [+ const] [sgn], -2**width, 2**width - 1))   (int32: wraps)
        c *= m;  c >>= max(0, sum(widths) + 4 - 15);  c <<= s_exp     (int32, arithmetic shift)
        c = clip(c, -32769, 32767);  acc = clip(acc + c, -32769, 32767)
    w: EXC acc = max(0, acc), INH min(0, acc);  d: max(0, acc);  t: as is
    acc = (acc >> 7) + ((acc & 127) > 128 * r_conn)         (= floor(q) + (r < q mod 1), q = acc/128)
    w: clip to MIXED [-256, 255] | EXC [0, 255] | INH [-255, 0];  d: [0, 255];  t: [-257, 255]
    tx = ty = 0

Exact shortcuts (speed only; every one keeps Lava's integers)
-------------------------------------------------------------
* A product is 0 wherever its dependency is 0, and an untouched synapse whose value is a fixed
  point of the saturation/rounding pipeline does not change (w in its sign-mode range, d in
  [0, 255], t in [-256, 255]; -257 is not one).  So, once every value is a fixed point (always after
  the first, literal, epoch), only the **post block** (post neurons with y0: all products) and the
  **pre block** (pre neurons with x0: the x0-products) are evaluated, the post block written last;
  ``u``-products with ``u = 1`` force the whole matrix.  With ``t_epoch = 1`` every trace read is
  the end-of-epoch value (where the dependency is 0 the value does not matter).
* The int32 product is modular: factors are multiplied smallest-first (outer products), and
  ``(c * m) << s`` is ``c * (m << s)`` when there is no width shift.  Factor clips that cannot bite
  (7-bit traces, 9-bit w/t/d within range) are skipped, and so is the clip of a product whose
  bound is below 2**15.
* The accumulator clip after the last product and the sign-mode saturation are absorbed by the
  final clip for w and d (not for t); the stochastic rounding is ``(acc + 127 - floor(128 r)) >> 7``.

"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from neuro_hw.compile.program import LEARNING_TRACES, LearningProgram, learning_rng_seed
from neuro_hw.errors import RuleError, ValidationError

from .dense import shift_sum
from .microcode import TARGET_ORDER, TARGET_VARIABLE, Product, decimation_exponent, parse_microcode

#: 7-bit traces.
TRACE_MAX = 2**7 - 1
#: Impulse fractional bits (W_TRACE_FRACTIONAL_PART).
IMPULSE_FRAC_BITS = 8
#: Accumulator bounds: W_ACCUMULATOR_U = 15 with Lava's asymmetric lower bound.
ACC_MIN = -(2**15) - 1
ACC_MAX = 2**15 - 1
#: ``acc = var << 7`` (W_ACCUMULATOR_S - W_SYN_VAR_S = 16 - 9).
ACC_SHIFT = 7
#: Lava's 3-factor rule sets all y taus to uint16 max (and y impulses to 0).
TAU_3F = 65535
#: Final clip ranges of tag_2 ("d") and tag_1 ("t").
VAR_RANGE = {"d": (0, 255), "t": (-257, 255)}
WEIGHT_RANGE = {"mixed": (-256, 255), "excitatory": (0, 255), "inhibitory": (-255, 0)}
#: Smallest tag_1 that is a fixed point of the pipeline for an untouched synapse (-257 << 7 < ACC_MIN).
TAG1_FIXED_MIN = -256

X_TRACES = ("x1", "x2")
Y_TRACES = ("y1", "y2", "y3")

_clip = getattr(np.core.umath, "clip", np.clip)  # np.clip's ufunc, without its Python-level overhead
_I32_ACC_MIN = np.int32(ACC_MIN)
_I32_ACC_MAX = np.int32(ACC_MAX)


def decompose_impulse(impulse: float) -> tuple[int, int]:
    """``(floor(imp), round((imp - floor(imp)) * 256))`` as Lava's ``_decompose_impulses`` (numpy round)."""
    imp = np.float64(impulse)
    whole = np.floor(imp)
    frac = np.round((imp - whole) * 2**IMPULSE_FRAC_BITS)
    return int(whole), int(frac)


def wrap_i32(value: int) -> np.int32:
    """A Python int reduced modulo 2**32 into an int32 scalar (int32 multiplication is modular)."""
    return np.int32(((int(value) + 2**31) % 2**32) - 2**31)


@dataclass(frozen=True)
class _Plan:
    """A product prepared for fast evaluation (same result as Lava's literal evaluation).

    ``scale`` is the int32 multiplier ``m`` (``m << s_exp`` when there is no width shift: the
    product is modular, so ``(c*m) << s == c * (m << s)`` in int32); ``clip_c`` is False when the
    product provably lies in ``[-32767, 32767]`` (then Lava's clip of it is a no-op).
    """

    dependency: str
    factors: tuple
    scale: np.int32
    shift: int
    s_exp: int
    clip_c: bool


def _plan(p: Product) -> _Plan:
    bound = abs(p.mantissa) * 2 ** sum(f.width for f in p.factors)  # |clipped factor| <= 2**width, |dep| <= 1
    if p.shift == 0:
        scale, post = wrap_i32(p.mantissa << p.s_exp), 0
        final = bound << p.s_exp
    else:
        scale, post = wrap_i32(p.mantissa), p.s_exp
        final = (-(-bound >> p.shift)) << p.s_exp
    clip_c = bound >= 2**31 or final > ACC_MAX
    return _Plan(p.dependency, p.factors, scale, p.shift, post, clip_c)


class LearningEngine:
    """Learning state and arithmetic of one plastic connection for ``B`` trials (see module doc).

    Storage: the synaptic variables are kept **pre-major**, ``(B, n_pre, n_post)`` (the rows of the
    pre neurons that spiked are contiguous: that is what the spiking path and the x0-products read);
    the weights as int16 (int32 if needed) for one trial, as exact floats (``float32`` when every
    partial sum of the accumulation fits 24 bits) for a batch, which the batched BLAS product needs.
    The trace registers of both groups live in one float64 bank ``(B, 2*n_pre + 3*n_post)`` (only the
    traces that can be nonzero), so one pass of numpy operations updates them all.

    Parameters
    ----------
    name:
        Connection name (for error messages).
    learning:
        The connection's :class:`LearningProgram`.
    weights:
        Effective initial weights ``(n_post, n_pre)`` (after the first-step LSB truncation).
    sign_mode:
        ``"mixed"``, ``"excitatory"`` or ``"inhibitory"``.
    seeds:
        The run seed of each trial; the rng seed is ``learning_rng_seed(seed_b, index)``.
    index:
        Position of this connection among the plastic connections (Program order).
    steps:
        Number of steps that will be run (to pre-draw the random streams).
    keep_traces:
        Keep every trace that may be nonzero (for recording) rather than only those the rules read.
    max_payload:
        Largest value the source sends (1 for spikes), for the exactness bound of the accumulation.
    max_third:
        Largest value a third-factor source can send (payloads above 127 need the factor clip).
    """

    def __init__(
        self,
        name: str,
        learning: LearningProgram,
        weights: np.ndarray,
        sign_mode: str,
        seeds: Sequence[int],
        index: int,
        steps: int,
        keep_traces: bool = True,
        max_payload: int = 1,
        max_third: int = 1,
    ) -> None:
        self.name = name
        self.sign_mode = sign_mode
        batch = len(seeds)
        self.batch = batch
        self.n_post, self.n_pre = weights.shape
        self.t_epoch = int(learning.t_epoch)
        if self.t_epoch < 1:
            raise ValidationError("t_epoch must be >= 1", node=name, field="learning.t_epoch")
        self.three_factor = dict(learning.third_factor)
        for trace in self.three_factor:
            if trace not in Y_TRACES:
                raise ValidationError(
                    f"third factor must drive y1, y2 or y3, not {trace!r}", node=name, field="learning.third_factor"
                )

        # ---- rules --------------------------------------------------------------------------------
        rules = {k: v for k, v in learning.rules.items() if v is not None and str(v).strip() != ""}
        unknown = set(rules) - set(TARGET_ORDER)
        if unknown or not rules:
            raise ValidationError(
                f"rules must be a non-empty mapping with keys dw, dt, dd (got {sorted(learning.rules)})",
                node=name,
                field="learning.rules",
            )
        try:
            self.decimation = decimation_exponent(rules)
            parsed = {tgt: parse_microcode(rules[tgt]) for tgt in TARGET_ORDER if tgt in rules}
        except RuleError as err:
            raise ValidationError(f"learning rule: {err.reason}", node=name, field="learning.rules") from None
        self.rules: dict[str, tuple[_Plan, ...]] = {tgt: tuple(_plan(p) for p in ps) for tgt, ps in parsed.items()}
        products = [p for ps in parsed.values() for p in ps]
        self.deps = {p.dependency for p in products}
        used = {f.var for p in products for f in p.factors}

        # ---- traces -------------------------------------------------------------------------------
        for key in list(learning.impulses) + list(learning.taus):
            if key not in LEARNING_TRACES:
                raise ValidationError(f"unknown trace {key!r}", node=name, field="learning")
        imp = {k: float(learning.impulses.get(k, 0.0)) for k in LEARNING_TRACES}
        tau = {k: int(learning.taus.get(k, 0)) for k in LEARNING_TRACES}
        for k in LEARNING_TRACES:
            if imp[k] < 0 or tau[k] < 0:
                raise ValidationError(f"{k}: impulse and tau must be >= 0", node=name, field="learning")
        if self.three_factor:
            for k in Y_TRACES:
                imp[k], tau[k] = 0.0, TAU_3F
        # a trace can only become nonzero through an impulse (or a third-factor value)
        nonzero = {k for k in X_TRACES if imp[k] != 0.0}
        nonzero |= set(self.three_factor) if self.three_factor else {k for k in Y_TRACES if imp[k] != 0.0}
        live = nonzero if keep_traces else nonzero & used
        self.x_names = [k for k in X_TRACES if k in live]
        self.y_names = [k for k in Y_TRACES if k in live]
        self.xpos = {k: i for i, k in enumerate(self.x_names)}
        self.ypos = {k: i for i, k in enumerate(self.y_names)}
        self.kx, self.ky = len(self.x_names), len(self.y_names)
        self.lx = self.kx * self.n_pre
        specs = [(imp[k], tau[k], self.n_pre) for k in self.x_names]
        specs += [(imp[k], tau[k], self.n_post) for k in self.y_names]
        self.bank = _TraceBank(specs, self.lx)
        x_parts = [decompose_impulse(imp[k]) for k in self.x_names]
        self.y_parts = [decompose_impulse(imp[k]) for k in self.y_names]
        # pre-spike multi-spike rounding uses the random number 0: any fraction rounds up
        self.x_multi_add = [float(a + (0 < b)) for a, b in x_parts]
        self._set_bank(np.zeros((batch, self.bank.size)))
        self.tx = np.zeros((batch, self.n_pre), dtype=np.int64)
        self.ty = np.zeros((batch, self.n_post), dtype=np.int64)
        self.sp_x = np.zeros((batch, self.n_pre), dtype=bool)  # t_epoch == 1: spikes of the epoch
        self.sp_y = np.zeros((batch, self.n_post), dtype=bool)
        # 3-factor y traces may exceed 7 bits: then their factor clip is not a no-op
        self.clip_y = bool(self.three_factor) and int(max_third) > TRACE_MAX

        # ---- synaptic variables (pre-major) -------------------------------------------------------
        w0 = np.asarray(weights, dtype=np.int32)
        max_w = max(256, int(np.abs(w0.astype(np.int64)).max()) if w0.size else 0)
        if batch == 1:
            # one trial: integer storage (the spiking path sums the rows of the spiking pre neurons);
            # int16 halves the memory traffic of the strided post-neuron columns
            wdtype = np.int16 if max_w < 2**15 else np.int32
        else:
            # several trials: exact floats for the batched BLAS product of the spiking path
            bound = max_w * self.n_pre * max(1, int(max_payload))
            wdtype = np.float32 if bound <= 2**24 else (np.float64 if bound <= 2**53 else np.int64)
        self.wt = np.broadcast_to(w0.T.astype(wdtype), (batch, self.n_pre, self.n_post)).copy()
        need_t = "dt" in parsed or "t" in used
        need_d = "dd" in parsed or "d" in used
        shape = (batch, self.n_pre, self.n_post)
        self.tt = np.zeros(shape, dtype=np.int64) if need_t else None
        self.dt = np.zeros(shape, dtype=np.int64) if need_d else None
        self.vars_changed = {TARGET_VARIABLE[tgt] for tgt in parsed}
        lo, hi = WEIGHT_RANGE[sign_mode]
        # all values fixed points of the update pipeline (and all factor clips no-ops)?
        self.normalized = not (w0.size and (w0.min() < max(lo, -256) or w0.max() > hi))
        # weights that are read as a factor but never learned, and exceed the 9-bit factor range, keep
        # needing the factor clip: evaluate every epoch literally
        self.always_literal = "dw" not in parsed and bool(w0.size) and (w0.min() < -512 or w0.max() > 511)
        self.tag1_at_min = False

        # ---- random streams -----------------------------------------------------------------------
        n_draws = 2 * int(steps) + 1
        self.rng_seeds = [learning_rng_seed(int(s), index) for s in seeds]
        x_decay = np.empty((batch, n_draws))
        x_imp = np.empty((batch, n_draws), dtype=np.int64)
        y_decay = np.empty((batch, n_draws))
        y_imp = np.empty((batch, n_draws), dtype=np.int64)
        for b, seed in enumerate(self.rng_seeds):
            x_decay[b] = np.random.default_rng(seed).random(n_draws)
            x_imp[b] = np.random.default_rng(seed + 1).integers(0, 2**7, size=n_draws, dtype=int)
            y_decay[b] = np.random.default_rng(seed + 2).random(n_draws)
            y_imp[b] = np.random.default_rng(seed + 3).integers(0, 2**7, size=n_draws, dtype=int)
        # (n_draws, B, 2): [x, y] per draw, for the bank
        self.r_decay = np.ascontiguousarray(np.stack([x_decay, y_decay], axis=-1).transpose(1, 0, 2))
        self.r_imp = np.ascontiguousarray(np.stack([x_imp, y_imp], axis=-1).transpose(1, 0, 2))
        self.y_imp_draws = y_imp
        self.conn_random = np.random.default_rng(2).random(int(steps) // self.t_epoch + 1)
        # stochastic rounding of the accumulator: (acc + 127 - floor(128 r)) >> 7  (see _evaluate)
        self.round_add = (2**ACC_SHIFT - 1 - np.floor(self.conn_random * 2**ACC_SHIFT)).astype(np.int64)

    # ------------------------------------------------------------------------------------------------
    def _set_bank(self, z: np.ndarray) -> None:
        self.z = z
        batch = z.shape[0]
        self.x = z[:, : self.lx].reshape(batch, self.kx, self.n_pre)
        self.y = z[:, self.lx :].reshape(batch, self.ky, self.n_post)

    def _stored(self, var: str) -> np.ndarray | None:
        return {"w": self.wt, "t": self.tt, "d": self.dt}[var]

    def variable(self, var: str) -> np.ndarray:
        """``w``, ``t`` or ``d`` as ``(B, n_post, n_pre)`` (a transposed view; never-used tags are zeros)."""
        arr = self._stored(var)
        if arr is None:
            return np.zeros((self.batch, self.n_post, self.n_pre), dtype=np.int64)
        return arr.transpose(0, 2, 1)

    def trace(self, name: str) -> np.ndarray | None:
        """Register value of trace ``name`` ``(B, n)`` (float64 holding integers); None if always 0."""
        if name in self.xpos:
            return self.x[:, self.xpos[name]]
        if name in self.ypos:
            return self.y[:, self.ypos[name]]
        return None

    # ------------------------------------------------------------------------------------------------
    def accumulate(self, s_in: np.ndarray, weight_exp: int, graded: bool) -> np.ndarray:
        """Next ``a_buff`` ``(B, n_post)`` int32 of the LearningDense for input ``s_in`` (current weights).

        Same integers as :class:`~.dense.DenseSynapse`: binary -- exact sum, shift, int32 wrap;
        graded -- int32 wrap of the exact dot product, then the shift.
        """
        s = s_in if graded else (s_in if s_in.dtype == bool else s_in != 0)
        wt = self.wt
        if self.batch == 1:
            idx = np.flatnonzero(s[0])
            rows = wt[0].take(idx, axis=0)
            if graded:
                acc = s[0][idx].astype(np.int64) @ rows.astype(np.int64)
            else:
                acc = rows.sum(axis=0, dtype=np.int64)
            acc = acc[None, :]
        elif wt.dtype.kind == "f":
            acc = np.matmul(s[:, None, :].astype(wt.dtype), wt)[:, 0].astype(np.int64)
        else:
            acc = np.einsum("bj,bjk->bk", s.astype(np.int64), wt)
        if graded:
            return shift_sum(acc.astype(np.int32), weight_exp).astype(np.int32)
        return shift_sum(acc, weight_exp).astype(np.int32)

    # ------------------------------------------------------------------------------------------------
    def spike_phase(
        self, t: int, s_pre: np.ndarray, s_post: np.ndarray, third: dict[str, np.ndarray] | None = None
    ) -> None:
        """``recv_traces`` of step ``t``: pre spikes ``(B, n_pre)``, post spikes ``(B, n_post)`` (bool),
        third-factor values ``{trace: (B, n_post)}`` (3-factor rules)."""
        sp = s_pre if s_pre.dtype == bool else s_pre != 0
        bap = s_post if s_post.dtype == bool else s_post != 0
        if self.t_epoch == 1:
            # tx, ty are 0 at every spiking phase (reset each step): no multi-spikes, k = 1
            self.sp_x = sp
            self.sp_y = bap
        else:
            k = t % self.t_epoch or self.t_epoch
            if self.kx:
                multi = sp & (self.tx > 0)
                if multi.any():
                    for i in range(self.kx):
                        xi = self.x[:, i]
                        xi[multi] = np.minimum(xi[multi] + self.x_multi_add[i], TRACE_MAX)
            self.tx[sp] = k
            if self.ky and not self.three_factor:
                multi = bap & (self.ty > 0)
                if multi.any():
                    r = self.y_imp_draws[:, 2 * t - 1][:, None]  # (B, 1): draw 2t-1
                    for i, (a, f) in enumerate(self.y_parts):
                        yi = self.y[:, i]
                        np.copyto(yi, np.minimum(yi + (a + (r < f)), TRACE_MAX), where=multi)
            self.ty[bap] = k
        if self.three_factor:
            for name, pos in self.ypos.items():
                value = third.get(name) if third else None
                self.y[:, pos] = 0 if value is None else value

    # ------------------------------------------------------------------------------------------------
    def learn(self, t: int) -> None:
        """Learning phase of step ``t`` (call only when ``t % t_epoch == 0``)."""
        te = self.t_epoch
        epoch = t // te
        i = 2 * t
        u = 0
        if self.decimation is not None:
            u = 1 if int(t / te) % 2**self.decimation == 0 else 0
        rd, ri = self.r_decay[i], self.r_imp[i]
        if te == 1:
            x0, y0 = self.sp_x, self.sp_y
            spiked = self._bank_mask(x0, y0)
            new = self.bank.step(self.z, spiked, rd, ri)
            hist = None
        else:
            x0, y0 = self.tx > 0, self.ty > 0
            t_spike = self._bank_mask(self.tx, self.ty)
            hist = self.bank.history(self.z, t_spike, te, rd, ri)
            new = hist[-1]
        xe, ye = self._split(new)
        if self.three_factor:
            self.z[:, : self.lx] = new[:, : self.lx]  # y keeps the received values
        else:
            self._set_bank(new)
        hx = hy = None
        if hist is not None:
            hx, hy = self._split(hist)
        ctx = _Context(self, x0, y0, u, xe, ye, hx, hy)
        self._apply(ctx, int(self.round_add[epoch]))
        if te > 1:
            self.tx[:] = 0
            self.ty[:] = 0

    def _bank_mask(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Per-neuron values ``(B, n_pre)`` / ``(B, n_post)`` laid out like the bank ``(B, L)``."""
        parts = [a] * self.kx + [b] * self.ky
        if len(parts) == 1:
            return parts[0]
        return np.concatenate(parts, axis=1) if parts else np.zeros((self.batch, 0), dtype=a.dtype)

    def _split(self, arr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(..., L)`` bank values -> x ``(..., Kx, n_pre)`` and y ``(..., Ky, n_post)`` views."""
        lead = arr.shape[:-1]
        return (
            arr[..., : self.lx].reshape(lead + (self.kx, self.n_pre)),
            arr[..., self.lx :].reshape(lead + (self.ky, self.n_post)),
        )

    # ------------------------------------------------------------------------------------------------
    def _apply(self, ctx: _Context, round_add: int) -> None:
        dense = not self.normalized or self.always_literal or self.tag1_at_min or ("u" in self.deps and ctx.u == 1)
        pre = post = None
        total = self.batch * self.n_post * self.n_pre
        if not dense:
            empty = np.empty(0, dtype=np.intp)
            post = _where(ctx.y0) if "y0" in self.deps else (None, empty)
            pre = _where(ctx.x0) if "x0" in self.deps else (None, empty)
            work = post[1].size * self.n_pre + pre[1].size * self.n_post
            if work == 0:
                return  # every product is 0 and every value a fixed point: nothing changes
            if 3 * work > total or total <= DENSE_BELOW:
                dense = True
        if dense:
            literal = not self.normalized or self.always_literal
            blk = _DenseBlock(ctx)
            keep = None if literal else ("x0", "y0", "u")
            new = {tgt: self._evaluate(blk, tgt, plans, round_add, keep) for tgt, plans in self.rules.items()}
            for tgt, val in new.items():
                self._stored(TARGET_VARIABLE[tgt])[...] = val  # type: ignore[index]
            self.normalized = True
            if self.tt is not None and "dt" in self.rules:
                self.tag1_at_min = bool((self.tt < TAG1_FIXED_MIN).any())
            return
        assert pre is not None and post is not None
        results = []
        if pre[1].size:
            blk = _PreBlock(ctx, pre[0], pre[1])
            results.append((blk, {t: self._evaluate(blk, t, ps, round_add, ("x0",)) for t, ps in self.rules.items()}))
        if post[1].size:
            blk = _PostBlock(ctx, post[0], post[1])
            keep = ("x0", "y0")
            results.append((blk, {t: self._evaluate(blk, t, ps, round_add, keep) for t, ps in self.rules.items()}))
        for blk, new in results:  # pre rows first: the post block (all products) wins where both apply
            for tgt, val in new.items():
                var = TARGET_VARIABLE[tgt]
                blk.store(self._stored(var), val)
                if var == "t" and (val < TAG1_FIXED_MIN).any():
                    self.tag1_at_min = True

    def _evaluate(
        self, blk: _Block, target: str, plans: tuple[_Plan, ...], round_add: int, keep: tuple[str, ...] | None
    ) -> np.ndarray:
        """New values of ``target``'s variable on block ``blk`` (module doc gives Lava's arithmetic).

        ``keep``: dependencies whose products are evaluated (the others are 0 on this block); None =
        all products, in the literal order (needed while values may not be fixed points).
        """
        var = TARGET_VARIABLE[target]
        acc = np.left_shift(blk.var(var), ACC_SHIFT, dtype=np.int32 if var == "w" else np.int64, casting="unsafe")
        literal = keep is None
        ndim = len(blk.shape)
        todo = []
        for p in plans:
            if not literal and p.dependency not in keep:
                continue
            dep = blk.dep(p.dependency)
            if isinstance(dep, np.ndarray) or dep != 0:
                todo.append((p, dep))
            elif literal:  # a zero product: Lava still clips the accumulator
                todo.append((p, None))
        for n, (p, dep) in enumerate(todo):
            if dep is None:
                _clip(acc, ACC_MIN, ACC_MAX, out=acc)
                continue
            arrays = [dep] if isinstance(dep, np.ndarray) else []
            for f in p.factors:
                val = blk.factor(f, p.dependency)
                if f.const is not None:
                    val = val + f.const
                if f.sgn:
                    val = np.sign(val)
                if literal or f.const is not None or f.sgn or (self.clip_y and f.var in Y_TRACES):
                    val = _clip(val, -(2**f.width), 2**f.width - 1)
                if isinstance(val, np.ndarray):
                    arrays.append(val)
                else:
                    arrays.append(np.asarray(val).reshape((1,) * ndim))
            # the int32 product is modular: multiply in any order, smallest arrays first
            if len(arrays) > 1:
                arrays.sort(key=lambda a: a.size)
            c = arrays[0].astype(np.int32) if arrays else np.ones((1,) * ndim, dtype=np.int32)
            c *= p.scale
            for a in arrays[1:]:
                c = np.multiply(c, a, dtype=np.int32, casting="unsafe")
            if p.shift:
                c = c >> p.shift
                c <<= p.s_exp
            if p.clip_c or literal:
                c = _clip(c, _I32_ACC_MIN, _I32_ACC_MAX)
            if acc.shape != blk.shape:
                acc = acc + c
            else:
                acc += c
            # The accumulator clip after the LAST product is absorbed by the final clip for w and d
            # (saturating high -> 255; low -> the lower bound), not for tag_1 (-32769 can round to -256).
            if literal or n < len(todo) - 1 or var == "t":
                _clip(acc, ACC_MIN, ACC_MAX, out=acc)
        if acc.shape != blk.shape:
            acc = np.broadcast_to(acc, blk.shape)
        if literal:
            # sign-mode saturation; elsewhere it is absorbed by the final clip (a negative accumulator
            # rounds to <= 0, which the EXC / tag_2 clip maps to 0 as max(0, acc) would; INH alike)
            if var == "w" and self.sign_mode == "excitatory":
                acc = np.maximum(acc, 0)
            elif var == "w" and self.sign_mode == "inhibitory":
                acc = np.minimum(acc, 0)
            elif var == "d":
                acc = np.maximum(acc, 0)
        # stochastic rounding at 2**-7 with one random r per epoch: floor(q) + (r < q mod 1), q = acc/128,
        # equals (acc + 127 - floor(128 r)) >> 7 exactly (acc is an integer)
        new = acc + round_add
        new >>= ACC_SHIFT
        lo, hi = WEIGHT_RANGE[self.sign_mode] if var == "w" else VAR_RANGE[var]
        return _clip(new, lo, hi, out=new)


def _where(mask: np.ndarray) -> tuple[np.ndarray | None, np.ndarray]:
    """``(b, i)`` of the True entries of ``mask`` ``(B, n)``; ``b`` is None for a single trial."""
    if mask.shape[0] == 1:
        return None, np.flatnonzero(mask[0])
    flat = np.flatnonzero(mask)
    return np.divmod(flat, mask.shape[1])


#: Below this many synapses (B * n_post * n_pre) the rules are evaluated on the whole matrix (fewer
#: numpy calls); above it only on the rows/columns of the neurons that spiked.
DENSE_BELOW = 20000


# ----------------------------------------------------------------------------------------------------
# trace bank
# ----------------------------------------------------------------------------------------------------
class _TraceBank:
    """Decay and impulse parameters of the live traces, laid out as one bank ``(B, L)``.

    ``specs`` lists ``(impulse, tau, n)`` per trace, x traces first (the first ``lx`` entries).
    """

    def __init__(self, specs: list[tuple[float, int, int]], lx: int) -> None:
        self.size = sum(n for _, _, n in specs)
        self.lx = lx
        decay, imp_int, imp_frac = [], [], []
        for impulse, tau, n in specs:
            a, f = decompose_impulse(impulse)
            # exp(-1/tau) in float64 as Lava (np.exp of -1/tau); tau == 0: the trace resets (factor 0)
            d = float(np.exp(-1 / np.int64(tau))) if tau != 0 else 0.0
            decay.append(np.full(n, d))
            imp_int.append(np.full(n, float(a)))
            imp_frac.append(np.full(n, f, dtype=np.int64))
        self.decay = np.concatenate(decay) if decay else np.zeros(0)
        self.imp_int = np.concatenate(imp_int) if imp_int else np.zeros(0)
        self.imp_frac = np.concatenate(imp_frac) if imp_frac else np.zeros(0, dtype=np.int64)

    def _decay(self, h: np.ndarray, r_decay: np.ndarray) -> np.ndarray:
        """``floor(f) + (r < f mod 1)`` with ``f = exp(-1/tau) * h`` (tau == 0: 0); ``h >= 0``.

        ``r_decay`` ``(B, 2)``: the x and y group's random number of each trial.
        """
        f = h * self.decay
        out = np.floor(f)
        frac = f - out  # == f % 1 exactly for f >= 0
        lx = self.lx
        if lx == self.size:
            out += frac > r_decay[:, :1]
        elif lx == 0:
            out += frac > r_decay[:, 1:]
        else:
            out[:, :lx] += frac[:, :lx] > r_decay[:, :1]
            out[:, lx:] += frac[:, lx:] > r_decay[:, 1:]
        return out

    def _impulse(self, r_imp: np.ndarray) -> np.ndarray:
        """``imp_int + (r_imp < imp_frac)`` per bank entry, ``(B, L)``."""
        lx = self.lx
        add = np.empty((r_imp.shape[0], self.size))
        if lx:
            np.add(self.imp_int[:lx], r_imp[:, :1] < self.imp_frac[:lx], out=add[:, :lx])
        if lx < self.size:
            np.add(self.imp_int[lx:], r_imp[:, 1:] < self.imp_frac[lx:], out=add[:, lx:])
        return add

    def step(self, h: np.ndarray, spiked: np.ndarray, r_decay: np.ndarray, r_imp: np.ndarray) -> np.ndarray:
        """One history step (t_epoch == 1): decay, then the impulse where ``spiked``."""
        if not self.size:
            return h
        out = self._decay(h, r_decay)
        if spiked.any():
            np.copyto(out, np.minimum(out + self._impulse(r_imp), TRACE_MAX), where=spiked)
        return out

    def history(
        self, h: np.ndarray, t_spike: np.ndarray, te: int, r_decay: np.ndarray, r_imp: np.ndarray
    ) -> np.ndarray:
        """``(te+1, B, L)``: ``H[0] = h``; ``H[s]`` decayed, plus the impulse where ``t_spike == s``."""
        hist = np.empty((te + 1,) + h.shape)
        hist[0] = h
        if not self.size:
            return hist
        bumped_add = self._impulse(r_imp)
        for s in range(1, te + 1):
            out = self._decay(hist[s - 1], r_decay)
            spiked = t_spike == s
            if spiked.any():
                np.copyto(out, np.minimum(out + bumped_add, TRACE_MAX), where=spiked)
            hist[s] = out
        return hist


# ----------------------------------------------------------------------------------------------------
# blocks of synapses: where the rules are evaluated (all in the pre-major layout)
# ----------------------------------------------------------------------------------------------------
class _Context:
    """Per-epoch values shared by the blocks.

    ``x0``/``y0`` ``(B, n)`` bool; ``xe``/``ye`` the traces at the end of the epoch ``(B, K, n)``;
    ``hx``/``hy`` the full histories ``(te+1, B, K, n)`` (None when ``t_epoch == 1``: then every trace
    read, at whatever dependency time, is the end-of-epoch value -- where the dependency is 0 the
    value does not matter).
    """

    def __init__(self, eng: LearningEngine, x0, y0, u: int, xe, ye, hx, hy) -> None:
        self.eng, self.x0, self.y0, self.u = eng, x0, y0, u
        self.xe, self.ye, self.hx, self.hy = xe, ye, hx, hy
        self.x0i = x0.astype(np.int32)
        self.y0i = y0.astype(np.int32)
        if hx is not None:
            b = np.arange(eng.batch)[:, None, None]
            self.x_own = hx[eng.tx[:, None, :], b, np.arange(eng.kx)[None, :, None], np.arange(eng.n_pre)]
            self.y_own = hy[eng.ty[:, None, :], b, np.arange(eng.ky)[None, :, None], np.arange(eng.n_post)]
        else:
            self.x_own, self.y_own = xe, ye


class _Block:
    """A set of synapses as a 2-D or 3-D broadcast shape."""

    shape: tuple[int, ...]

    def dep(self, name: str) -> np.ndarray | int:
        raise NotImplementedError

    def trace(self, name: str, dep: str) -> np.ndarray | int:
        raise NotImplementedError

    def var(self, name: str) -> np.ndarray:
        raise NotImplementedError

    def factor(self, f, dep: str):
        if f.var in ("x0", "y0"):
            d = self.dep(f.var)
            return d.astype(np.int64) if isinstance(d, np.ndarray) else d
        if f.var in ("w", "t", "d"):
            return self.var(f.var)
        return self.trace(f.var, dep)


class _DenseBlock(_Block):
    """All synapses, ``(B, n_pre, n_post)``."""

    def __init__(self, ctx: _Context) -> None:
        self.c = ctx
        eng = ctx.eng
        self.shape = (eng.batch, eng.n_pre, eng.n_post)

    def dep(self, name: str) -> np.ndarray | int:
        if name == "x0":
            return self.c.x0i[:, :, None]
        if name == "y0":
            return self.c.y0i[:, None, :]
        return self.c.u

    def trace(self, name: str, dep: str) -> np.ndarray | int:
        c, eng = self.c, self.c.eng
        if name in eng.xpos:
            k = eng.xpos[name]
            if dep == "x0":
                return c.x_own[:, k][:, :, None]
            if dep == "y0" and c.hx is not None:
                b = np.arange(eng.batch)[:, None, None]
                return c.hx[eng.ty[:, None, :], b, k, np.arange(eng.n_pre)[None, :, None]]
            return c.xe[:, k][:, :, None]
        if name in eng.ypos:
            k = eng.ypos[name]
            if dep == "y0":
                return c.y_own[:, k][:, None, :]
            if dep == "x0" and c.hy is not None:
                b = np.arange(eng.batch)[:, None, None]
                return c.hy[eng.tx[:, :, None], b, k, np.arange(eng.n_post)[None, None, :]]
            return c.ye[:, k][:, None, :]
        return 0

    def var(self, name: str) -> np.ndarray:
        arr = self.c.eng._stored(name)
        return np.zeros(self.shape, dtype=np.int64) if arr is None else arr


class _PreBlock(_Block):
    """Pre neurons that spiked in the epoch, all their synapses: ``(C, n_post)`` (contiguous rows).

    ``b`` is None for a single trial (then ``j`` indexes trial 0).
    """

    def __init__(self, ctx: _Context, b: np.ndarray | None, j: np.ndarray) -> None:
        self.c, self.b, self.j = ctx, b, j
        self.shape = (j.size, ctx.eng.n_post)

    def _post(self, arr: np.ndarray) -> np.ndarray:  # (B, n_post) -> rows
        return arr[0][None, :] if self.b is None else arr[self.b]

    def _pre(self, arr: np.ndarray) -> np.ndarray:  # (B, n_pre) -> (C, 1)
        return (arr[0][self.j] if self.b is None else arr[self.b, self.j])[:, None]

    def dep(self, name: str) -> np.ndarray | int:
        if name == "x0":
            return 1
        if name == "y0":
            return self._post(self.c.y0i)
        return self.c.u

    def trace(self, name: str, dep: str) -> np.ndarray | int:
        c, eng = self.c, self.c.eng
        if name in eng.xpos:
            k = eng.xpos[name]
            if dep == "x0":
                return self._pre(c.x_own[:, k])
            if dep == "y0" and c.hx is not None:
                b = np.zeros_like(self.j) if self.b is None else self.b
                return c.hx[eng.ty[b], b[:, None], k, self.j[:, None]]
            return self._pre(c.xe[:, k])
        if name in eng.ypos:
            k = eng.ypos[name]
            if dep == "x0" and c.hy is not None:
                b = np.zeros_like(self.j) if self.b is None else self.b
                return c.hy[eng.tx[b, self.j], b, k]
            if dep == "y0":
                return self._post(c.y_own[:, k])
            return self._post(c.ye[:, k])
        return 0

    def var(self, name: str) -> np.ndarray:
        arr = self.c.eng._stored(name)
        if arr is None:
            return np.zeros(self.shape, dtype=np.int64)
        return arr[0].take(self.j, axis=0) if self.b is None else arr[self.b, self.j]

    def store(self, arr: np.ndarray, val: np.ndarray) -> None:
        if self.b is None:
            arr[0][self.j] = val
        else:
            arr[self.b, self.j] = val


class _PostBlock(_Block):
    """Post neurons that spiked in the epoch, all their synapses: ``(R, n_pre)``.

    ``b`` is None for a single trial (then ``i`` indexes trial 0).
    """

    def __init__(self, ctx: _Context, b: np.ndarray | None, i: np.ndarray) -> None:
        self.c, self.b, self.i = ctx, b, i
        self.shape = (i.size, ctx.eng.n_pre)

    def _pre(self, arr: np.ndarray) -> np.ndarray:  # (B, n_pre) -> rows
        return arr[0][None, :] if self.b is None else arr[self.b]

    def _post(self, arr: np.ndarray) -> np.ndarray:  # (B, n_post) -> (R, 1)
        return (arr[0][self.i] if self.b is None else arr[self.b, self.i])[:, None]

    def dep(self, name: str) -> np.ndarray | int:
        if name == "x0":
            return self._pre(self.c.x0i)
        if name == "y0":
            return 1
        return self.c.u

    def trace(self, name: str, dep: str) -> np.ndarray | int:
        c, eng = self.c, self.c.eng
        if name in eng.xpos:
            k = eng.xpos[name]
            if dep == "x0":
                return self._pre(c.x_own[:, k])
            if dep == "y0" and c.hx is not None:
                b = np.zeros_like(self.i) if self.b is None else self.b
                return c.hx[eng.ty[b, self.i], b, k]
            return self._pre(c.xe[:, k])
        if name in eng.ypos:
            k = eng.ypos[name]
            if dep == "y0":
                return self._post(c.y_own[:, k])
            if dep == "x0" and c.hy is not None:
                b = np.zeros_like(self.i) if self.b is None else self.b
                return c.hy[eng.tx[b], b[:, None], k, self.i[:, None]]
            return self._post(c.ye[:, k])
        return 0

    def var(self, name: str) -> np.ndarray:
        arr = self.c.eng._stored(name)
        if arr is None:
            return np.zeros(self.shape, dtype=np.int64)
        return arr[0][:, self.i].T if self.b is None else arr[self.b, :, self.i]

    def store(self, arr: np.ndarray, val: np.ndarray) -> None:
        if self.b is None:
            arr[0][:, self.i] = val.T
        else:
            arr[self.b, :, self.i] = val
