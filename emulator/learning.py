"""The Loihi learning engine as Lava 0.10 simulates it in fixed point, batched and sparse.

Source: ``lava/magma/core/model/py/connection.py`` (``LearningConnectionModelBitApproximate``,
l.536-1172, and ``PyLearningConnection``), ``lava/magma/core/learning/{learning_rule_applier,random,
utils,constants}.py``; spec: ``docs/lava-semantics.md`` §4.  One :class:`LearningEngine`
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
repeated size-1 draws, so the streams are generated up front, once per distinct seed (trials with the
same seed share them).  All values are scalars per trial.

Spiking phase (every step t; ``k = t mod t_epoch`` or ``t_epoch``)
------------------------------------------------------------------
::

    sp = s_pre != 0 ;  multi = (tx > 0) & sp              # 2nd+ spike within the epoch
    x1[multi] = clip(x1 + imp_int + (0 < imp_frac), 0, 127)  (same for x2; "random" is 0 here)
      graded pre activity (GradedSpikeCfg.OVERWRITE) instead: x1[sp] = uint8(round_half_even(s_pre / 2))
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

Where the rules are evaluated (speed only; every choice keeps Lava's integers)
--------------------------------------------------------------------------------
The compiled kernel of :mod:`.rule_kernel` evaluates, per visited synapse, Lava's literal arithmetic
above (every product in order, every factor and accumulator clip).  A product is 0 wherever its
dependency is 0, and an untouched synapse whose values are fixed points of the saturation/rounding
pipeline does not change (w in its sign-mode range, d in [0, 255], t in [-256, 255]; -257 is not
one).  So once every value is a fixed point (always after the first epoch, which visits every
synapse), an epoch visits only the **post rows** (post neurons with ``y0``) and the **pre columns**
(pre neurons with ``x0``); ``u``-products with ``u = 1`` and tag_1 values below -256 make it visit every
synapse.  (How the rows and columns are walked: :mod:`.rule_kernel`.)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from neuro_hw.compiler.program import LEARNING_TRACES, EngineFormat, LearningProgram, learning_rng_seed
from neuro_hw.errors import RuleError, ValidationError
from neuro_hw.ir.plasticity import first_absent_nonzero

from .intmath import njit
from .microcode import TARGET_ORDER, TARGET_VARIABLE, decimation_exponent, parse_microcode
from .rule_kernel import rule_function_source, rule_parameters

#: Impulse fractional bits (W_TRACE_FRACTIONAL_PART).
IMPULSE_FRAC_BITS = 8
#: ``acc = var << 7`` (W_ACCUMULATOR_S - W_SYN_VAR_S = 16 - 9).
ACC_SHIFT = 7
#: Lava's 3-factor rule sets all y taus to uint16 max (and y impulses to 0).
TAU_3F = 65535

X_TRACES = ("x1", "x2")
Y_TRACES = ("y1", "y2", "y3")

#: Sign-mode saturation of the accumulator: 0 none, 1 ``max(0, acc)``, 2 ``min(0, acc)``.
_SATURATION = {("w", "mixed"): 0, ("w", "excitatory"): 1, ("w", "inhibitory"): 2, ("d", None): 1, ("t", None): 0}


def decompose_impulse(impulse: float) -> tuple[int, int]:
    """``(floor(imp), round((imp - floor(imp)) * 256))`` as Lava's ``_decompose_impulses`` (numpy round)."""
    imp = np.float64(impulse)
    whole = np.floor(imp)
    frac = np.round((imp - whole) * 2**IMPULSE_FRAC_BITS)
    return int(whole), int(frac)


# ----------------------------------------------------------------------------------------------------
# compiled kernels (the arithmetic of the module doc, written once)
# ----------------------------------------------------------------------------------------------------
@njit
def spike_times(
    tx: np.ndarray,
    ty: np.ndarray,
    pre_active: np.ndarray,
    n_pre_active: int,
    post_active: np.ndarray,
    n_post_active: int,
    k: int,
    z: np.ndarray,
    n_pre: int,
    n_post: int,
    lx: int,
    x_multi_add: np.ndarray,
    y_int: np.ndarray,
    y_frac: np.ndarray,
    r_y: int,
    y_multi: bool,
    epoch_pre: np.ndarray,
    epoch_post: np.ndarray,
    n_epoch: np.ndarray,
    x_multi_from: int,
    trace_max: float,
) -> None:
    """Spiking-phase bookkeeping of one trial: multi-spike impulses (x: random 0; y: ``r_y``), then ``t = k``.

    ``tx`` ``(n_pre,)``, ``ty`` ``(n_post,)`` spike times; ``z`` the trial's trace bank;
    ``pre_active[:n_pre_active]`` the pre neurons that spiked (nonzero payloads), ``post_active[:n_post_active]``
    the post neurons that spiked (:func:`~.dense.active_indices`).  A neuron's first spike in the epoch
    also appends it to ``epoch_pre`` / ``epoch_post`` (counts in ``n_epoch[0]``, ``n_epoch[1]``): the
    pre columns and post rows the learning phase visits, i.e. exactly the neurons with ``tx``/``ty > 0``.
    Multi-spike impulses skip the x traces before ``x_multi_from`` (1: x1 is overwritten by graded
    payloads instead, :func:`overwrite_x1`)."""
    for q in range(n_pre_active):
        j = pre_active[q]
        if tx[j] > 0:
            for f in range(x_multi_from, x_multi_add.size):
                pos = f * n_pre + j
                z[pos] = min(z[pos] + x_multi_add[f], trace_max)
        else:
            epoch_pre[n_epoch[0]] = j
            n_epoch[0] += 1
        tx[j] = k
    for q in range(n_post_active):
        i = post_active[q]
        if ty[i] > 0:
            if y_multi:
                for f in range(y_int.size):
                    pos = lx + f * n_post + i
                    add = y_int[f] + (1.0 if r_y < y_frac[f] else 0.0)
                    z[pos] = min(z[pos] + add, trace_max)
        else:
            epoch_post[n_epoch[1]] = i
            n_epoch[1] += 1
        ty[i] = k


@njit
def overwrite_x1(z: np.ndarray, s: np.ndarray, row: int, pre_active: np.ndarray, n_pre_active: int) -> None:
    """Graded pre activity (``GradedSpikeCfg.OVERWRITE``): ``x1 = uint8(round_half_even(payload / 2))`` for
    the pre neurons with a nonzero payload this step (x1 is the first trace of the bank)."""
    for q in range(n_pre_active):
        j = pre_active[q]
        z[j] = np.float64(np.int64(np.rint(np.float64(s[row, j]) / 2.0)) & 255)


@njit
def trace_history(
    z: np.ndarray,
    tx: np.ndarray,
    ty: np.ndarray,
    lx: int,
    n_pre: int,
    n_post: int,
    decay: np.ndarray,
    imp_int: np.ndarray,
    imp_frac: np.ndarray,
    r_decay_x: float,
    r_decay_y: float,
    r_imp_x: int,
    r_imp_y: int,
    hist: np.ndarray,
    keep_y: bool,
    trace_max: float,
) -> None:
    """The epoch's trace history of one trial, ``hist`` ``(t_epoch + 1, len(z))``: ``hist[0] = z``;
    ``hist[s] = floor(f) + (r < f mod 1)``, ``f = decay * hist[s-1]``, plus the impulse ``imp_int + (r_imp
    < imp_frac)`` (clipped at 127) where the neuron's spike time is ``s``.  Then ``z = hist[-1]``
    (``keep_y``, 3-factor rules: the y registers keep the received values).  ``r_decay_*``, ``r_imp_*``:
    this step's draws of the trial's x and y decay and impulse streams.

    The inner loops run over the neurons of one trace at one history step (no dependency between
    neurons, no array views), which the compiler vectorises; the float64 operations are those of the
    formula, in its order."""
    te = hist.shape[0] - 1
    n_x, n_y = lx // n_pre if n_pre else 0, (z.shape[0] - lx) // n_post if n_post else 0
    for pos in range(z.shape[0]):
        hist[0, pos] = z[pos]
    for q in range(n_x + n_y):  # trace q of the bank: x traces first (x random streams), then y traces
        if q < n_x:
            n, base, times, rd, ri = n_pre, q * n_pre, tx, r_decay_x, r_imp_x
        else:
            n, base, times, rd, ri = n_post, lx + (q - n_x) * n_post, ty, r_decay_y, r_imp_y
        for s in range(1, te + 1):
            prev, cur = np.uint64(s - 1), np.uint64(s)
            for idx in range(n):
                pos = np.uint64(base + idx)  # unsigned: no negative-index wrap-around test, so it vectorises
                f = hist[prev, pos] * decay[pos]
                h = np.floor(f)
                h += 1.0 if f - h > rd else 0.0
                kicked = min(h + (imp_int[pos] + (1.0 if ri < imp_frac[pos] else 0.0)), trace_max)
                hist[cur, pos] = kicked if times[idx] == s else h  # the impulse where the spike time is s
        if q < n_x or not keep_y:
            last = np.uint64(te)
            for idx in range(n):
                pos = np.uint64(base + idx)
                z[pos] = hist[last, pos]


# ----------------------------------------------------------------------------------------------------
# the engine of one plastic connection
# ----------------------------------------------------------------------------------------------------
class LearningEngine:
    """Learning state and arithmetic of one plastic connection for ``B`` trials (see module doc).

    Storage: the synaptic variables ``wt``, ``tt`` (tag_1), ``dt`` (tag_2) are int16 (``wt`` int32 for
    initial weights beyond int16) and **pre-major**, ``(B, n_pre, n_post)`` (the rows of the pre neurons
    that spiked are contiguous: that is what the spiking path reads); tags that no rule uses are not
    stored.  The trace registers of both groups live in one float64 bank ``z`` ``(B, Kx*n_pre +
    Ky*n_post)`` holding integers (only the traces that can be nonzero), ``tx``/``ty`` hold the
    within-epoch spike times (0 = none).

    The Program has passed :func:`neuro_hw.compiler.checks.check_program` (rule keys, t_epoch, trace names,
    third factors); rule strings that Lava's parser refuses raise :class:`ValidationError` here.

    Parameters
    ----------
    name:
        Connection name (for error messages).
    learning:
        The connection's :class:`LearningProgram`.
    weights:
        Effective initial weights ``(n_post, n_pre)``, or ``(B, n_post, n_pre)`` when they differ between trials
        (after the first-step LSB truncation).
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
    engine:
        The engine's number formats (Loihi 2's by default; a variant changes the trace and weight widths and
        the rounding of weight changes, see :class:`~neuro_hw.compiler.program.EngineFormat`).
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
        engine: EngineFormat | None = None,
    ) -> None:
        self.name = name
        self.engine = engine = engine or EngineFormat()
        self.trace_max = float(engine.trace_max)
        self.sign_mode = sign_mode
        batch = len(seeds)
        self.batch = batch
        self.n_post, self.n_pre = weights.shape[-2:]
        self.t_epoch = int(learning.t_epoch)
        self.three_factor = dict(learning.third_factor)
        self.pre_activity = bool(learning.pre_activity)

        # ---- rules --------------------------------------------------------------------------------
        rules = {k: v for k, v in learning.rules.items() if v is not None and str(v).strip() != ""}
        try:
            self.decimation = decimation_exponent(rules)
            parsed = {
                tgt: parse_microcode(rules[tgt], engine.trace_bits, engine.weight_bits)
                for tgt in TARGET_ORDER
                if tgt in rules
            }
        except RuleError as err:
            raise ValidationError(f"learning rule: {err.reason}", node=name, field="learning.rules") from None
        products = [p for ps in parsed.values() for p in ps]
        self.deps = {p.dependency for p in products}
        self.has_x0, self.has_y0, self.has_u = "x0" in self.deps, "y0" in self.deps, "u" in self.deps
        used = {f.var for p in products for f in p.factors}
        self.vars_changed = {TARGET_VARIABLE[tgt] for tgt in parsed}
        # ---- traces -------------------------------------------------------------------------------
        imp = {k: float(learning.impulses.get(k, 0.0)) for k in LEARNING_TRACES}
        tau = {k: int(learning.taus.get(k, 0)) for k in LEARNING_TRACES}
        if self.three_factor:
            for k in Y_TRACES:
                imp[k], tau[k] = 0.0, TAU_3F
        # a trace can only become nonzero through an impulse (or a third-factor value)
        nonzero = {k for k in X_TRACES if imp[k] != 0.0} | ({"x1"} if self.pre_activity else set())
        nonzero |= set(self.three_factor) if self.three_factor else {k for k in Y_TRACES if imp[k] != 0.0}
        live = nonzero if keep_traces else nonzero & used
        if self.pre_activity:
            live.add("x1")  # overwritten by the payloads: always stored, at the start of the bank
        self.x_names = [k for k in X_TRACES if k in live]
        self.y_names = [k for k in Y_TRACES if k in live]
        self.xpos = {k: i for i, k in enumerate(self.x_names)}
        self.ypos = {k: i for i, k in enumerate(self.y_names)}
        self.kx, self.ky = len(self.x_names), len(self.y_names)
        self.lx = self.kx * self.n_pre
        # bank offset of each live trace (the others are always 0)
        # (as expressions of the sizes, so that the rule code does not depend on them)
        trace_offset = {k: f"{self.xpos[k]} * n_pre" for k in self.x_names}
        trace_offset.update({k: f"{self.kx} * n_pre + {self.ypos[k]} * n_post" for k in self.y_names})
        decay, imp_int, imp_frac = [], [], []
        for k, n in [(k, self.n_pre) for k in self.x_names] + [(k, self.n_post) for k in self.y_names]:
            whole, frac = decompose_impulse(imp[k])
            # exp(-1/tau) in float64 as Lava (np.exp of -1/tau); tau == 0: the trace resets (factor 0)
            decay.append(np.full(n, float(np.exp(-1 / np.int64(tau[k]))) if tau[k] != 0 else 0.0))
            imp_int.append(np.full(n, float(whole)))
            imp_frac.append(np.full(n, frac, dtype=np.int64))
        self.decay = np.concatenate(decay) if decay else np.zeros(0)
        self.imp_int = np.concatenate(imp_int) if imp_int else np.zeros(0)
        self.imp_frac = np.concatenate(imp_frac) if imp_frac else np.zeros(0, dtype=np.int64)
        y_parts = [decompose_impulse(imp[k]) for k in self.y_names]
        self.y_int = np.array([float(a) for a, _ in y_parts])
        self.y_frac = np.array([f for _, f in y_parts], dtype=np.int64)
        # pre-spike multi-spike rounding uses the random number 0: any fraction rounds up; an overwritten x1
        # (graded pre activity) takes no multi-spike impulse
        self.x_multi_from = 1 if self.pre_activity else 0
        self.x_multi_add = np.array([float(a + (0 < b)) for a, b in (decompose_impulse(imp[k]) for k in self.x_names)])
        self.z = np.zeros((batch, self.lx + self.ky * self.n_post))
        self.tx = np.zeros((batch, self.n_pre), dtype=np.int64)
        self.a_buff = np.zeros((batch, self.n_post), dtype=np.int32)  # what the spiking path sends next
        self.ty = np.zeros((batch, self.n_post), dtype=np.int64)
        # the neurons with a spike time in the current epoch, in spike order (see spike_times)
        self.epoch_pre = np.zeros((batch, self.n_pre), dtype=np.int64)
        self.epoch_post = np.zeros((batch, self.n_post), dtype=np.int64)
        self.n_epoch = np.zeros((batch, 2), dtype=np.int64)

        # ---- synaptic variables (pre-major) -------------------------------------------------------
        # Lava holds them in int32/int64, but every value the rules write is clipped to 9 bits (w in its
        # sign-mode range, tags in [-257, 255]), so int16 holds them exactly -- and halves the memory the
        # per-synapse loops touch; only initial weights outside int16 (LearningDense does not clip them)
        # keep int32.  :meth:`variable` returns int32.
        w0 = np.asarray(weights, dtype=np.int32)
        fits = w0.size == 0 or (w0.min() >= np.iinfo(np.int16).min and w0.max() <= np.iinfo(np.int16).max)
        # order="C": astype of the broadcast transposed view would keep its Fortran order, i.e. post-major
        self.wt = np.broadcast_to(np.swapaxes(w0, -1, -2), (batch, self.n_pre, self.n_post)).astype(
            np.int16 if fits else np.int32, order="C"
        )
        shape = (batch, self.n_pre, self.n_post)
        none = np.zeros((batch, 0, 0), dtype=np.int16)
        self.tt = np.zeros(shape, dtype=np.int16) if ("dt" in parsed or "t" in used) else none
        self.dt = np.zeros(shape, dtype=np.int16) if ("dd" in parsed or "d" in used) else none
        #: name and numba source of the function of this connection's rules' form (part of the run's step kernel,
        #: :mod:`.step_kernel`), and its runtime parameters: the rules' numbers and the engine's widths
        #: the plasticity mask, pre-major ``(n_pre, n_post)`` uint8 (absent synapses stay 0), or a (1, 1) dummy
        self.masked = learning.mask is not None
        if self.masked:
            mask = np.asarray(learning.mask, dtype=bool)
            if mask.shape != (self.n_post, self.n_pre):
                raise ValidationError(f"plasticity mask has shape {mask.shape}, the weights "
                                      f"{(self.n_post, self.n_pre)}", node=name, field="learning.mask")  # fmt: skip
            if first_absent_nonzero(mask, w0) is not None:
                raise ValidationError("a synapse outside the plasticity mask has a nonzero initial weight", node=name,
                                      field="learning.mask")  # fmt: skip
        self.present = np.ascontiguousarray(mask.T, dtype=np.uint8) if self.masked else np.ones((1, 1), np.uint8)
        self.rule_name, self.rule_source = rule_function_source(
            parsed,
            trace_offset,
            saturation={"w": _SATURATION[("w", sign_mode)], "d": _SATURATION[("d", None)], "t": 0},
            stored={"t": self.tt.size > 0, "d": self.dt.size > 0},
            masked=self.masked,
        )
        self.rule_params, self.rule_consts = rule_parameters(
            parsed, {"w": engine.weight_range(sign_mode), **engine.tag_ranges}, engine.accumulator_bits
        )
        lo, hi = engine.weight_range(sign_mode)
        # per trial: all values fixed points of the update pipeline? (else the next epoch visits every
        # synapse); a tag_1 below -256 was written (every epoch visits every synapse)
        normalized = not (w0.size and (w0.min() < max(lo, -(2**engine.weight_bits)) or w0.max() > hi))
        self.normalized = np.full(batch, normalized)
        self.tag1_at_min = np.zeros(batch, dtype=bool)
        self.decimation_exp = -1 if self.decimation is None else int(self.decimation)

        # ---- random streams (drawn ahead in blocks; bulk draws equal repeated size-1 draws) --------
        self.rng_seeds = [learning_rng_seed(int(s), index) for s in seeds]
        # one set of streams per distinct seed (trials with the same seed draw the same numbers)
        distinct, stream_of_trial = np.unique(np.asarray(self.rng_seeds, dtype=np.int64), return_inverse=True)
        self._streams = [[np.random.default_rng(int(seed) + k) for k in range(4)] for seed in distinct]
        self._conn_stream = np.random.default_rng(2)
        #: the stream set of each trial (an index into the second axis of r_decay, r_imp)
        self.stream_of_trial = stream_of_trial.astype(np.int64)
        self.r_decay = np.zeros((0, len(distinct), 2))  # (draws, distinct seeds, [x, y])
        self.r_imp = np.zeros((0, len(distinct), 2), dtype=np.int64)
        self.round_add = np.zeros(0, dtype=np.int64)  # per epoch
        self.ensure_steps(int(steps))

    def ensure_steps(self, steps: int) -> None:
        """Draw the random streams far enough for ``steps`` steps in total.

        That is draws ``0 .. 2*steps`` of the x/y streams and epochs ``0 .. steps // t_epoch`` of the
        connection stream."""
        have = self.r_decay.shape[0]
        if 2 * steps + 1 > have:
            extra = max(2 * steps + 1 - have, have)  # at least double: amortised O(1) per step
            # (extra, distinct seeds, [x, y])
            r_decay = np.stack([np.stack([s[0].random(extra), s[2].random(extra)], -1) for s in self._streams], 1)
            r_imp = np.stack(
                [
                    np.stack([s[k].integers(0, 2**7, size=extra, dtype=np.int64) for k in (1, 3)], -1)
                    for s in self._streams
                ],
                1,
            )
            self.r_decay = np.concatenate([self.r_decay, r_decay])
            self.r_imp = np.concatenate([self.r_imp, r_imp])
        epochs = steps // self.t_epoch + 1
        if epochs > self.round_add.size:
            extra = max(epochs - self.round_add.size, self.round_add.size)
            conn_random = self._conn_stream.random(extra)
            # stochastic rounding of the accumulator: (acc + 127 - floor(128 r)) >> 7  (see .rule_kernel);
            # a "nearest" variant adds 64 (round half up); the stream is drawn either way (same positions)
            add = (2**ACC_SHIFT - 1 - np.floor(conn_random * 2**ACC_SHIFT)).astype(np.int64)
            if self.engine.rounding == "nearest":
                add[:] = 2 ** (ACC_SHIFT - 1)
            self.round_add = np.concatenate([self.round_add, add])

    # ------------------------------------------------------------------------------------------------
    @property
    def x(self) -> np.ndarray:
        """Pre trace registers ``(B, Kx, n_pre)`` (a view of the bank)."""
        return self.z[:, : self.lx].reshape(self.batch, self.kx, self.n_pre)

    @property
    def y(self) -> np.ndarray:
        """Post trace registers ``(B, Ky, n_post)`` (a view of the bank)."""
        return self.z[:, self.lx :].reshape(self.batch, self.ky, self.n_post)

    def never_written(self, var: str) -> bool:
        """``t`` or ``d`` that no rule targets: it stays 0 for the whole run."""
        return var != "w" and var not in self.vars_changed

    def variable(self, var: str) -> np.ndarray:
        """``w``, ``t`` or ``d`` as ``(B, n_post, n_pre)`` int32 (a copy; never-used tags are zeros)."""
        arr = {"w": self.wt, "t": self.tt, "d": self.dt}[var]
        if arr.size == 0 and self.wt.size:
            return np.zeros((self.batch, self.n_post, self.n_pre), dtype=np.int32)
        return arr.transpose(0, 2, 1).astype(np.int32)

    def trace_columns(self, name: str) -> slice | None:
        """Columns of trace ``name`` in the bank ``z`` (None: the trace is always 0 and not stored)."""
        if name in self.xpos:
            return slice(self.xpos[name] * self.n_pre, (self.xpos[name] + 1) * self.n_pre)
        if name in self.ypos:
            lo = self.lx + self.ypos[name] * self.n_post
            return slice(lo, lo + self.n_post)
        return None
