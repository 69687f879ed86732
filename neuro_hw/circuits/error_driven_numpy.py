"""Ground truth for error-driven learning: a 64-100-10 network trained online in plain float64 numpy.

This is the algorithm the circuit (float reference) and the compiled program (fixed-point emulator) must
reproduce; it is written as directly as possible so that it can be read against the circuit.

Model (no biases; ``x`` in [0, 1]^64, ``t`` one-hot, sizes ``D = 64``, ``H = 100``, ``C = 10``)::

    a1    = W1 @ x                          # (H,)   W1: (H, D)
    h     = clip(a1, 0, c_h)                # clipped ReLU f
    o     = W2 @ h                          # (C,)   W2: (C, H), linear output
    e     = o - t                           # signed output error
    g     = 1 if 0 < a1 < c_h else 0        # f'(a1), elementwise (equivalently 0 < h < c_h)
    delta = (B @ e) * g                     # (H,)   B: (H, C), fixed random feedback ("fa" only)

Online update, one sample at a time, in this order:

1. forward with the current weights ``W1, W2``: ``a1, h, o, e, g, delta`` as above;
2. both increments from the **pre-update** weights and signals::

       dW2 = -eta2 * outer(e, h)                       # delta rule at the output, both variants
       dW1 = -eta1 * outer(delta, x)   if rule == "fa"  # feedback alignment
       dW1 = 0                         if rule == "delta" (W1 stays at its random initial value)

3. ``W2 = clip(W2 + dW2, -w_max2, w_max2)``; ``W1 = clip(W1 + dW1, -w_max1, w_max1)`` (the fixed-point weight
   ranges; with the default parameters they practically never bind in float, see ``Monitor.clip1/clip2``).

Test accuracy: ``argmax(W2 @ clip(W1 @ x, 0, c_h))`` over the test set, with the weights at the end of each
epoch (forward only; ties go to the lowest class, numpy's argmax).

Initialisation (:func:`init_weights`), uniform and scaled by fan-in, from a run seed ``s``:
``rng = np.random.default_rng([s, 1])`` draws ``W1 ~ U(-g1/sqrt(D), g1/sqrt(D))`` then
``W2 ~ U(-g2/sqrt(H), g2/sqrt(H))`` (``rng.uniform(-a, a, shape)``); ``B ~ U(-gB/sqrt(C), gB/sqrt(C))`` comes
from its own ``np.random.default_rng([s, 2])``, so it is fixed per run seed and independent of ``W``.  The
sample order is :func:`neuro_hw.circuits.digits.epoch_order` ``(n_train, epochs, s)``.

Several runs (seeds) can be trained in one pass: give ``W1, W2, B`` with a leading run axis ``(S, ...)`` and
``order`` of shape ``(S, T)``; the runs are independent (each sees only its own weights and order) and
every run's numbers are the same as when it is trained alone (up to the summation order of the products,
~1e-16 relative).

``python -m neuro_hw.circuits.error_driven_numpy`` trains both variants over seeds 0..4 with the default
parameters and prints the accuracies, the signal ranges, the weight-change sizes and the fixed-point estimate
(:func:`train_fixed_estimate`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

import numpy as np

from neuro_hw.circuits.digits import DigitsSplit, epoch_order, load_digits_split, one_hot

Rule = Literal["fa", "delta"]
RULES: tuple[Rule, ...] = ("fa", "delta")


@dataclass(frozen=True)
class ErrorDrivenParams:
    """Hyperparameters of the 64-100-10 error-driven network (module docstring for the formulas).

    The defaults are the chosen operating point (seeds 0..4, 10 epochs): FA 97.6 ± 0.3 % test accuracy, delta
    rule 93.2 ± 0.4 %; max|W1| 1.12 (FA), max|W2| 0.93 (delta rule), so the bounds never bind in float.
    """

    eta1: float = 0.03  # hidden learning rate (FA only; 0 freezes W1)
    eta2: float = 0.02  # output learning rate (0 freezes W2)
    c_h: float = 1.0  # hidden clip: h = clip(a1, 0, c_h)
    w_max1: float = 1.0  # W1 bounds [-w_max1, w_max1] (fixed-point weight range)
    w_max2: float = 1.0  # W2 bounds
    init_gain1: float = 1.0  # W1 ~ U(-a, a), a = init_gain1 / sqrt(n_in)
    init_gain2: float = 1.0  # W2 ~ U(-a, a), a = init_gain2 / sqrt(n_hidden)
    b_gain: float = 1.0  # B ~ U(-a, a), a = b_gain / sqrt(n_out)
    epochs: int = 10
    n_in: int = 64
    n_hidden: int = 100
    n_out: int = 10

    def __post_init__(self) -> None:
        for name in ("c_h", "w_max1", "w_max2"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a positive finite number, got {value!r}")
        for name in ("eta1", "eta2", "init_gain1", "init_gain2", "b_gain"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
        for name in ("epochs", "n_in", "n_hidden", "n_out"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)!r}")

    @property
    def init_halfwidth1(self) -> float:
        return self.init_gain1 / math.sqrt(self.n_in)

    @property
    def init_halfwidth2(self) -> float:
        return self.init_gain2 / math.sqrt(self.n_hidden)

    @property
    def b_halfwidth(self) -> float:
        return self.b_gain / math.sqrt(self.n_out)


def init_weights(params: ErrorDrivenParams, seed: int | Sequence[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(W1 (H, D), W2 (C, H), B (H, C))`` for run seed ``seed`` (module docstring); a sequence of seeds gives
    arrays stacked on a leading run axis."""
    if not isinstance(seed, (int, np.integer)):
        stacked = [init_weights(params, int(s)) for s in seed]
        return tuple(np.stack(arrays) for arrays in zip(*stacked, strict=True))  # type: ignore[return-value]
    rng = np.random.default_rng([int(seed), 1])
    a1, a2 = params.init_halfwidth1, params.init_halfwidth2
    w1 = rng.uniform(-a1, a1, (params.n_hidden, params.n_in))
    w2 = rng.uniform(-a2, a2, (params.n_out, params.n_hidden))
    b_rng = np.random.default_rng([int(seed), 2])
    b = b_rng.uniform(-params.b_halfwidth, params.b_halfwidth, (params.n_hidden, params.n_out))
    if np.abs(w1).max() > params.w_max1 or np.abs(w2).max() > params.w_max2:
        raise ValueError("the initial weights exceed w_max1/w_max2: lower the init gains or raise the bounds")
    return w1, w2, b


def forward(
    params: ErrorDrivenParams, w1: np.ndarray, w2: np.ndarray, x: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(a1, h, o)`` for inputs ``x`` (..., N, D) and weights ``w1`` (..., H, D), ``w2`` (..., C, H)."""
    a1 = x @ np.swapaxes(w1, -1, -2)
    h = np.clip(a1, 0.0, params.c_h)
    o = h @ np.swapaxes(w2, -1, -2)
    return a1, h, o


def accuracy(params: ErrorDrivenParams, w1: np.ndarray, w2: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Fraction of ``x`` classified as ``y`` by ``argmax(o)``; one value per run for stacked weights."""
    _, _, o = forward(params, w1, w2, x)
    return np.mean(np.argmax(o, axis=-1) == y, axis=-1)


@dataclass
class Monitor:
    """What the signals did during training (``train(..., monitor=True)``), per step ``k`` and run ``s``.

    Traces are float32 (ranges, not bit-exact values): ``a1`` (T, S, H), ``o``, ``e`` (T, S, C), ``delta``
    (T, S, H; zeros for the delta rule).  Per update: ``dw1_med``/``dw2_med`` the median over the *nonzero*
    entries of ``|dW|`` (NaN when all are zero), ``dw1_nonzero``/``dw2_nonzero`` the fraction of nonzero
    entries, ``w1_absmax``/``w2_absmax`` ``max|W|`` before the update, ``clip1``/``clip2`` the number of entries
    the bounds clipped.
    """

    a1: np.ndarray
    o: np.ndarray
    e: np.ndarray
    delta: np.ndarray
    dw1_med: np.ndarray
    dw2_med: np.ndarray
    dw1_nonzero: np.ndarray
    dw2_nonzero: np.ndarray
    w1_absmax: np.ndarray
    w2_absmax: np.ndarray
    clip1: np.ndarray
    clip2: np.ndarray

    @classmethod
    def empty(cls, steps: int, runs: int, n_hidden: int, n_out: int) -> Monitor:
        def f32(*shape: int) -> np.ndarray:
            return np.zeros(shape, dtype=np.float32)

        return cls(
            a1=f32(steps, runs, n_hidden),
            o=f32(steps, runs, n_out),
            e=f32(steps, runs, n_out),
            delta=f32(steps, runs, n_hidden),
            dw1_med=np.full((steps, runs), np.nan),
            dw2_med=np.full((steps, runs), np.nan),
            dw1_nonzero=np.zeros((steps, runs)),
            dw2_nonzero=np.zeros((steps, runs)),
            w1_absmax=np.zeros((steps, runs)),
            w2_absmax=np.zeros((steps, runs)),
            clip1=np.zeros((steps, runs), dtype=np.int64),
            clip2=np.zeros((steps, runs), dtype=np.int64),
        )


@dataclass
class TrainResult:
    """Result of :func:`train`.  Shapes are those of a single run; stacked runs add a leading ``S`` axis.

    ``w1_first``/``w2_first``: the weights after each of the first ``record_first`` samples, ``(R, H, D)`` and
    ``(R, C, H)``, row ``k`` after sample ``k`` (0-based) has been applied.  ``test_accuracy``: after each
    epoch, ``(E,)``.  ``train_accuracy``: per epoch, the online accuracy (prediction before each update).
    """

    w1: np.ndarray
    w2: np.ndarray
    w1_first: np.ndarray
    w2_first: np.ndarray
    test_accuracy: np.ndarray
    train_accuracy: np.ndarray
    rule: Rule
    monitor: Monitor | None = None


def _as_runs(
    w1: np.ndarray, w2: np.ndarray, b: np.ndarray, order: np.ndarray, params: ErrorDrivenParams
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, bool]:
    """Copies of the weights as float64 with a leading run axis, ``order`` as (S, T) int64, and whether the
    inputs were a single run."""
    single = np.ndim(w1) == 2
    w1, w2, b = (np.array(a, dtype=np.float64, ndmin=3, copy=True) for a in (w1, w2, b))
    order = np.asarray(order)
    if not np.issubdtype(order.dtype, np.integer):
        raise ValueError(f"order must hold integer sample indices, got dtype {order.dtype}")
    order = order.astype(np.int64)[None] if single else order.astype(np.int64)
    runs = w1.shape[0]
    expected = {
        "W1": (w1, (runs, params.n_hidden, params.n_in)),
        "W2": (w2, (runs, params.n_out, params.n_hidden)),
        "B": (b, (runs, params.n_hidden, params.n_out)),
    }
    for name, (arr, shape) in expected.items():
        if arr.shape != shape:
            raise ValueError(f"{name} has shape {arr.shape}, expected {shape[1:]} or {shape} (runs first)")
    if order.ndim != 2 or order.shape[0] != runs:
        raise ValueError(f"order has shape {order.shape}, expected (T,) or ({runs}, T) for {runs} run(s)")
    return w1, w2, b, order, single


def train(
    params: ErrorDrivenParams,
    split: DigitsSplit,
    order: np.ndarray,
    w1: np.ndarray,
    w2: np.ndarray,
    b: np.ndarray,
    rule: Rule = "fa",
    record_first: int = 20,
    monitor: bool = False,
) -> TrainResult:
    """Train online (batch 1) on ``split.x_train[order]`` from ``W1, W2`` (copied, not modified), with feedback
    ``B``; the exact formulas and update order are in the module docstring.

    ``order``: ``(T,)`` sample indices (or ``(S, T)`` with stacked weights), usually
    ``epoch_order(split.n_train, params.epochs, seed)``.  An epoch is ``split.n_train`` samples; the test
    accuracy is measured after every full epoch (and after a final partial one).
    """
    if rule not in RULES:
        raise ValueError(f"rule must be one of {RULES}, got {rule!r}")
    w1, w2, b, order, single = _as_runs(w1, w2, b, order, params)
    runs, steps = order.shape
    if order.size and (order.min() < 0 or order.max() >= split.n_train):
        raise ValueError(f"order indexes 0..{split.n_train - 1}, got {order.min()}..{order.max()}")
    x_all, t_all = split.x_train, one_hot(split.y_train, params.n_out)
    record_first = min(record_first, steps)
    w1_first = np.zeros((runs, record_first) + w1.shape[1:])
    w2_first = np.zeros((runs, record_first) + w2.shape[1:])
    ends = list(range(split.n_train, steps + 1, split.n_train))
    if not ends or ends[-1] != steps:
        ends.append(steps)
    test_acc = np.zeros((runs, len(ends)))
    correct = np.zeros((runs, len(ends)))
    mon = Monitor.empty(steps, runs, params.n_hidden, params.n_out) if monitor else None
    epoch = 0
    start = 0
    for k in range(steps):
        x = x_all[order[:, k]]  # (S, D)
        t = t_all[order[:, k]]  # (S, C)
        # 1. forward with the current weights
        a1 = np.einsum("shd,sd->sh", w1, x)
        h = np.clip(a1, 0.0, params.c_h)
        o = np.einsum("sch,sh->sc", w2, h)
        e = o - t
        # 2. increments from the pre-update weights and signals
        dw2 = -params.eta2 * e[:, :, None] * h[:, None, :]
        if rule == "fa":
            g = (a1 > 0.0) & (a1 < params.c_h)
            delta = np.einsum("shc,sc->sh", b, e) * g
            dw1 = -params.eta1 * delta[:, :, None] * x[:, None, :]
        # 3. apply and clip to the weight bounds
        new_w2 = w2 + dw2
        new_w1 = w1 + dw1 if rule == "fa" else w1
        if mon is not None:
            mon.a1[k], mon.o[k], mon.e[k] = a1, o, e
            mon.w1_absmax[k] = np.abs(w1).max(axis=(1, 2))
            mon.w2_absmax[k] = np.abs(w2).max(axis=(1, 2))
            mon.clip2[k] = np.count_nonzero(np.abs(new_w2) > params.w_max2, axis=(1, 2))
            _median_nonzero(dw2, mon.dw2_med[k], mon.dw2_nonzero[k])
            if rule == "fa":
                mon.delta[k] = delta
                mon.clip1[k] = np.count_nonzero(np.abs(new_w1) > params.w_max1, axis=(1, 2))
                _median_nonzero(dw1, mon.dw1_med[k], mon.dw1_nonzero[k])
        w2 = np.clip(new_w2, -params.w_max2, params.w_max2)
        w1 = np.clip(new_w1, -params.w_max1, params.w_max1)
        correct[:, epoch] += np.argmax(o, axis=1) == np.argmax(t, axis=1)
        if k < record_first:
            w1_first[:, k], w2_first[:, k] = w1, w2
        if k + 1 == ends[epoch]:
            test_acc[:, epoch] = accuracy(params, w1, w2, split.x_test, split.y_test)
            correct[:, epoch] /= k + 1 - start
            start = k + 1
            epoch += 1

    def out(a: np.ndarray) -> np.ndarray:
        return a[0] if single else a

    return TrainResult(
        w1=out(w1),
        w2=out(w2),
        w1_first=out(w1_first),
        w2_first=out(w2_first),
        test_accuracy=out(test_acc),
        train_accuracy=out(correct),
        rule=rule,
        monitor=mon,
    )


def _median_nonzero(dw: np.ndarray, med: np.ndarray, frac: np.ndarray) -> None:
    """Per run: median of the nonzero ``|dw|`` into ``med`` (NaN if none), fraction nonzero into ``frac``."""
    flat = np.abs(dw.reshape(dw.shape[0], -1))
    for s in range(flat.shape[0]):
        nz = flat[s][flat[s] > 0]
        frac[s] = nz.size / flat.shape[1]
        med[s] = np.median(nz) if nz.size else np.nan


def run_seeds(
    params: ErrorDrivenParams,
    split: DigitsSplit,
    seeds: Sequence[int],
    rule: Rule = "fa",
    record_first: int = 20,
    monitor: bool = False,
) -> TrainResult:
    """Init (:func:`init_weights`), order (:func:`epoch_order`) and :func:`train` for each seed, stacked."""
    w1, w2, b = init_weights(params, list(seeds))
    order = np.stack([epoch_order(split.n_train, params.epochs, s) for s in seeds])
    return train(params, split, order, w1, w2, b, rule=rule, record_first=record_first, monitor=monitor)


# --------------------------------------------------------------------------------------------------------------
# Rough fixed-point estimate (NOT bit-exact): what 7-bit signals and 8-bit weights cost in accuracy.
# --------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FixedPointEstimate:
    """Quantisation of :func:`train_fixed_estimate`; ranges are in float units.

    * ``x`` on ``[0, 1]`` and ``h`` on ``[0, c_h]``: integers ``0..x_levels`` and ``0..h_levels`` (round to
      nearest; 127 for 7-bit unsigned payloads; ``x_levels = 16`` is lossless for the digits' 17 grey levels).
    * ``e`` on ``[-e_range, e_range]`` and ``delta`` on ``[-delta_range, delta_range]``: clipped, then integers
      ``-e_levels..e_levels`` and ``-delta_levels..delta_levels`` (127: a 7-bit magnitude, as the compiler
      scales graded inputs by 127/range; 63 for 7 bits including the sign).
    * Weights: integers in ``[-w_levels, w_levels]``, one integer = ``w_max / w_levels`` (127: 8-bit signed);
      the initial weights and ``B`` are rounded to nearest (``B`` on its own max|B|).  The forward pass uses
      them as they are, or (``forward_drop_lsb``) rounded down to even integers, as Lava's mixed-sign Dense does
      with the learning engine's 9-bit weights (use it with ``w_levels=255``).
    * Updates, in weight integers (LSB), are rounded stochastically, ``floor(q) + (r < q - floor(q))``, with
      one uniform ``r`` per synapse (``shared_random=False``) or one ``r`` for all synapses of the update
      (``True``: what Lava's learning engine does, one draw per learning epoch).  ``q`` is

      - ``engine_products=False``: ``-eta * e_q * x_q / lsb`` from the quantised float signals (ideal
        coefficient);
      - ``engine_products=True``: the learning engine's product ``floor(p * m / 2^shift) * 2^s`` with the
        integer product ``p = e_int * x_int``, ``shift = 3`` (two 7-bit factors + 4-bit mantissa = 18 bits >
        15) and the coefficient ``m * 2^s / 2^shift`` (``-8 <= m <= -1``, ``-7 <= s <= 8``) closest to
        ``-eta * e_step * x_step / lsb`` (weight LSB per unit integer product; :func:`engine_coefficient`).
        This includes the coefficient's 4-bit error, its underflow and the floor's bias toward -inf; it is
        still not bit-exact (traces, epochs, random streams and payload rounding of the real program differ).
    """

    e_range: float = 1.0
    delta_range: float = 0.5
    x_levels: int = 127
    h_levels: int = 127
    e_levels: int = 127
    delta_levels: int = 127
    w_levels: int = 127
    shared_random: bool = True
    engine_products: bool = False
    forward_drop_lsb: bool = False
    shift: int = 3


def engine_coefficient(ideal: float, shift: int = 3) -> tuple[int, int, float]:
    """``(m, s, relative error)``: the learning-engine coefficient ``m * 2^s / 2^shift`` (``-8 <= m <= -1``,
    ``-7 <= s <= 8``) closest to ``-ideal`` (``ideal > 0`` weight LSB per unit integer product).  ``m = 0`` and
    relative error 1 when even the smallest coefficient, ``2^-7 / 2^shift``, rounds to zero."""
    best = (0, -7, 1.0)
    for s in range(-7, 9):
        for m in range(1, 9):
            err = abs(m * 2.0**s / 2**shift - ideal) / ideal
            if err < best[2]:
                best = (-m, s, err)
    return best


def _quantise(v: np.ndarray, lo: float, hi: float, step: float) -> np.ndarray:
    """``v`` clipped to ``[lo, hi]`` and rounded to a multiple of ``step`` (returned in units of ``step``)."""
    return np.round(np.clip(v, lo, hi) / step)


def train_fixed_estimate(
    params: ErrorDrivenParams,
    fx: FixedPointEstimate,
    split: DigitsSplit,
    order: np.ndarray,
    w1: np.ndarray,
    w2: np.ndarray,
    b: np.ndarray,
    rule: Rule = "fa",
    seed: int = 0,
) -> tuple[np.ndarray, dict[str, Any]]:
    """The model of :func:`train` with quantised signals and weights (:class:`FixedPointEstimate`): a rough
    estimate of the fixed-point accuracy, not the compiled program.  Stacked runs as in :func:`train`; ``seed``
    seeds the stochastic rounding.

    Returns ``(test_accuracy (S, E), info)``: ``info`` holds, per run, the fraction of values the declared ranges
    clipped (``e``, ``delta``) and of ``a1`` at or above ``c_h`` (``h_clip``, the clipped ReLU itself), the
    fraction of weights at the bounds at the end (``w1_at_bound``, ``w2_at_bound``), each layer's ideal
    coefficient in weight LSB per unit integer product (``ideal1``, ``ideal2``) and the engine's closest
    ``(m, s, rel_error)`` (``coef1``, ``coef2``; used only with ``engine_products``, ``m = 0`` is an underflow).
    """
    if rule not in RULES:
        raise ValueError(f"rule must be one of {RULES}, got {rule!r}")
    w1, w2, b, order, _ = _as_runs(w1, w2, b, order, params)
    runs, steps = order.shape
    rng = np.random.default_rng(seed)
    L = fx.w_levels
    lsb1, lsb2 = params.w_max1 / L, params.w_max2 / L
    q1 = np.clip(np.round(w1 / lsb1), -L, L)  # weight integers (as float64)
    q2 = np.clip(np.round(w2 / lsb2), -L, L)
    b_lsb = np.abs(b).max() / 127
    bq = np.round(b / b_lsb) * b_lsb
    x_step, h_step = 1.0 / fx.x_levels, params.c_h / fx.h_levels
    e_step, d_step = fx.e_range / fx.e_levels, fx.delta_range / fx.delta_levels
    x_int = _quantise(split.x_train, 0.0, 1.0, x_step)
    x_test = _quantise(split.x_test, 0.0, 1.0, x_step) * x_step
    t_all = one_hot(split.y_train, params.n_out)
    # LSB per unit integer product e_int * x_int (ideal), and the engine's version
    ideal1 = params.eta1 * d_step * x_step / lsb1
    ideal2 = params.eta2 * e_step * h_step / lsb2
    info: dict[str, Any] = {k: np.zeros(runs) for k in ("h_clip", "e", "delta")}
    coef1, coef2 = engine_coefficient(ideal1, fx.shift), engine_coefficient(ideal2, fx.shift)
    info.update(ideal1=ideal1, ideal2=ideal2, coef1=coef1, coef2=coef2)  # type: ignore[arg-type]
    use1, use2 = (coef1, coef2) if fx.engine_products else (None, None)
    epochs = max(1, steps // split.n_train)
    test_acc = np.zeros((runs, epochs))

    def update(err_int: np.ndarray, act_int: np.ndarray, ideal: float, coef: tuple[int, int, float] | None):
        p = err_int[:, :, None] * act_int[:, None, :]  # integer products
        if coef is not None:
            m, s, _ = coef
            q = np.floor(p * m / 2**fx.shift) * 2.0**s
        else:
            q = -ideal * p
        fl = np.floor(q)
        r = rng.random((q.shape[0], 1, 1)) if fx.shared_random else rng.random(q.shape)
        return fl + (r < q - fl)

    def fwd(xs: np.ndarray, q1_: np.ndarray, q2_: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if fx.forward_drop_lsb:
            q1_, q2_ = 2 * np.floor(q1_ / 2), 2 * np.floor(q2_ / 2)
        a1 = np.einsum("shd,s...d->s...h", q1_ * lsb1, xs)
        h_int = _quantise(a1, 0.0, params.c_h, h_step)
        o = np.einsum("sch,s...h->s...c", q2_ * lsb2, h_int * h_step)
        return a1, h_int, o

    for k in range(steps):
        xi = x_int[order[:, k]]
        t = t_all[order[:, k]]
        a1, h_int, o = fwd(xi * x_step, q1, q2)
        e_raw = o - t
        e_int = _quantise(e_raw, -fx.e_range, fx.e_range, e_step)
        info["h_clip"] += np.mean(a1 >= params.c_h, axis=1)
        info["e"] += np.mean(np.abs(e_raw) > fx.e_range, axis=1)
        dq2 = update(e_int, h_int, ideal2, use2)
        if rule == "fa":
            g = (h_int > 0) & (h_int < fx.h_levels)
            d_raw = np.einsum("shc,sc->sh", bq, e_int * e_step) * g
            d_int = _quantise(d_raw, -fx.delta_range, fx.delta_range, d_step)
            info["delta"] += np.mean(np.abs(d_raw) > fx.delta_range, axis=1)
            dq1 = update(d_int, xi, ideal1, use1)
            q1 = np.clip(q1 + dq1, -L, L)
        q2 = np.clip(q2 + dq2, -L, L)
        if (k + 1) % split.n_train == 0 and (k + 1) // split.n_train <= epochs:
            _, _, o_test = fwd(np.broadcast_to(x_test, (runs,) + x_test.shape), q1, q2)
            test_acc[:, (k + 1) // split.n_train - 1] = np.mean(np.argmax(o_test, axis=-1) == split.y_test, axis=-1)
    for key in ("h_clip", "e", "delta"):
        info[key] = info[key] / steps
    info["w1_at_bound"] = np.mean(np.abs(q1) >= L, axis=(1, 2))
    info["w2_at_bound"] = np.mean(np.abs(q2) >= L, axis=(1, 2))
    return test_acc, info


# --------------------------------------------------------------------------------------------------------------
# Report: python -m neuro_hw.circuits.error_driven_numpy
# --------------------------------------------------------------------------------------------------------------


def _mean_se(v: np.ndarray) -> str:
    v = np.asarray(v, dtype=float)
    se = v.std(ddof=1) / math.sqrt(v.size) if v.size > 1 else float("nan")
    return f"{100 * v.mean():.2f} ± {100 * se:.2f} %"


def report(params: ErrorDrivenParams | None = None, seeds: Sequence[int] = range(5), fixed: bool = True) -> None:
    """Print accuracies (mean ± s.e. over ``seeds``), signal ranges, weight-change sizes and (``fixed``) the
    fixed-point estimate for both rules."""
    params = params or ErrorDrivenParams()
    split = load_digits_split()
    seeds = list(seeds)
    print(params)
    results = {}
    for rule in RULES:
        t0 = time.perf_counter()
        res = run_seeds(params, split, seeds, rule=rule, monitor=True)
        results[rule] = res
        acc = res.test_accuracy
        print(
            f"[{rule}] test accuracy after epoch 1..{acc.shape[1]} (mean over {len(seeds)} seeds): "
            + " ".join(f"{100 * a:.1f}" for a in acc.mean(axis=0))
            + f"\n[{rule}] final: {_mean_se(acc[:, -1])}  best epoch: {_mean_se(acc.max(axis=1))}  "
            f"online train acc last epoch: {_mean_se(res.train_accuracy[:, -1])}  ({time.perf_counter() - t0:.1f} s)"
        )
    for rule, res in results.items():
        m = res.monitor
        assert m is not None
        a1, o, e, d = (np.abs(v) for v in (m.a1, m.o, m.e, m.delta))
        print(f"[{rule}] signal ranges over all steps and seeds (max | 99th | 99.9th percentile of |.|):")
        for name, v in (("a1", a1), ("o", o), ("e", e), ("delta", d)):
            if name == "delta" and rule == "delta":
                continue
            print(f"    {name:6s} {v.max():8.3f} | {np.percentile(v, 99):7.3f} | {np.percentile(v, 99.9):7.3f}")
        h_clip = np.mean(m.a1 >= params.c_h)
        h_active = np.mean(m.a1 > 0)
        print(f"    h: fraction at the clip c_h={params.c_h}: {h_clip:.4f}, fraction > 0: {h_active:.3f}")
        print(
            f"    max|W1| {m.w1_absmax.max():.3f} (final {np.abs(res.w1).max():.3f}), "
            f"max|W2| {m.w2_absmax.max():.3f} (final {np.abs(res.w2).max():.3f})"
        )
        print(
            f"    clip binding: W1 {m.clip1.sum()} entry-updates in {np.count_nonzero(m.clip1)} updates, "
            f"W2 {m.clip2.sum()} in {np.count_nonzero(m.clip2)} (of {m.clip2.size} updates)"
        )
        for layer, med, nz, wmax, bound in (
            ("W1", m.dw1_med, m.dw1_nonzero, m.w1_absmax, params.w_max1),
            ("W2", m.dw2_med, m.dw2_nonzero, m.w2_absmax, params.w_max2),
        ):
            if np.all(np.isnan(med)):
                continue
            rel = med / wmax
            print(
                f"    {layer}: median over updates of median nonzero |dW| / max|W|: {np.nanmedian(rel):.2e}; "
                f"in 8-bit LSBs (w_max/127): {np.nanmedian(med / bound * 127):.3f}; "
                f"nonzero fraction {np.median(nz):.3f}"
            )
        for name, v in (("e", e), ("delta", d)):
            if name == "delta" and rule == "delta":
                continue
            for r in (0.5, 0.75, 1.0, 1.5):
                print(f"    {name} range ±{r}: saturates {100 * np.mean(v > r):.3f} %")
    if not fixed:
        return
    w1, w2, b = init_weights(params, seeds)
    order = np.stack([epoch_order(split.n_train, params.epochs, s) for s in seeds])
    plain = FixedPointEstimate()
    engine = FixedPointEstimate(x_levels=16, w_levels=255, forward_drop_lsb=True, engine_products=True)
    variants = {
        "7-bit signals, 8-bit weights, shared rounding random (as specified)": plain,
        "  same, one random per synapse": replace(plain, shared_random=False),
        "  same, x as its 17 grey levels (x_levels=16)": replace(plain, x_levels=16),
        "engine products, 9-bit learning weights, x_levels=16, e_levels=42": replace(engine, e_levels=42),
        "engine products, 9-bit learning weights, x_levels=16, e_levels=h_levels=63": replace(
            engine, e_levels=63, h_levels=63
        ),
    }
    for label, variant in variants.items():
        for rule in RULES:
            t0 = time.perf_counter()
            acc, info = train_fixed_estimate(params, variant, split, order, w1, w2, b, rule=rule)
            coefs = f"coef W1 {info['coef1']} (ideal {info['ideal1']:.2e}), W2 {info['coef2']} ({info['ideal2']:.2e})"
            print(
                f"[fixed estimate, {rule}] {label}: final {_mean_se(acc[:, -1])} (float "
                f"{_mean_se(results[rule].test_accuracy[:, -1])}); per epoch "
                + " ".join(f"{100 * a:.1f}" for a in acc.mean(axis=0))
                + f"\n    saturated: e {100 * info['e'].mean():.3f} %, delta {100 * info['delta'].mean():.3f} %, "
                f"a1 >= c_h {100 * info['h_clip'].mean():.1f} %; weights at bound W1 "
                f"{100 * info['w1_at_bound'].mean():.2f} %, W2 {100 * info['w2_at_bound'].mean():.2f} %; {coefs} "
                f"({time.perf_counter() - t0:.1f} s)"
            )


if __name__ == "__main__":
    report()
