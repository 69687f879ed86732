"""Ground truth of the self-assembling learning circuit (seed P1, a documented reconstruction) in float64 numpy.

Liao, Ziyin, Gan, Cheung, Harnett, Poggio, "Self-Assembly of a Biologically Plausible Learning Circuit"
(arXiv 2412.20018).  The paper's equations were not available to us; this is the Kolen–Pollack-type
reconstruction written out in ``docs/self-assembly.md``, as directly as possible so that it can be read
against the circuit (:mod:`neuro_hw.circuits.self_assembly`) and the baselines on identical architectures.

Network (no biases), sizes ``n_0 .. n_L`` (``L`` weight layers, hidden layers ``1 .. L-1``)::

    x_0   = input (in [0, 1])
    a_l+1 = W_l x_l                       W_l: (n_l+1, n_l),  l = 0 .. L-1      (ascending stream, synapse S1)
    x_l   = clip(a_l, 0, c_h)             hidden layers 1 .. L-1 (clipped ReLU f)
    o     = a_L                           linear output
    g_L   = o - t                         signed output error (gradient of 1/2 |o - t|^2 with respect to a_L)
    g_l   = f'(a_l) * (B_l g_l+1)         B_l: (n_l, n_l+1),  l = L-1 .. 1      (descending stream, synapse S2;
                                          f'(a) = [0 < a < c_h], the forward activity delivered by S4)

Updates after every sample (online, batch 1), from the pre-update weights and signals of that sample::

    dW_l = -eta   * g_l+1 x_l^T   - eta   * lam   * W_l * u     pre x_l, modulator g_l+1 (delivered by S3)
    dB_l = -eta_B * x_l g_l+1^T   - eta_B * lam_B * B_l * u     pre g_l+1, modulator x_l (delivered by S4)
    W_l, B_l <- clip(W_l + dW_l, -w_max, w_max), clip(B_l + dB_l, ...)

with ``eta_B = eta`` and ``lam_B = lam`` unless an ablation mismatches them.  Weight decay is applied every
``decay_every`` samples with ``decay_every`` times the rate (``u = decay_every`` on samples ``k`` (0-based) with
``(k + 1) % decay_every == 0``, else ``u = 0``): ``decay_every = 1`` is the reconstruction itself; the chip applies
the decay through a decimated rule term (``u_k``) because its smallest learning rate cannot hold ``eta*lam``.
Kolen–Pollack: ``D_l = W_l - B_l^T`` obeys ``D_l <- (1 - eta*lam*u) D_l`` (while no clip binds), so the
descending weights become the transpose of the ascending ones from any initial wiring: the circuit
**self-assembles** on a time scale of ``1 / (eta*lam)`` samples.

Methods on the same architecture (``method``):

* ``"kp"``: the circuit (``B`` learned as above);
* ``"bp"``: backpropagation, ``B_l = W_l^T`` at every sample;
* ``"fa"``: feedback alignment, ``B_l`` fixed at its random initial value;
* ``"ss"``: sign symmetry, ``B_l = sign(W_l^T) * s_l`` with a fixed magnitude ``s_l`` = the mean ``|W_l|`` at
  initialisation.

Every method decays ``W`` with the same ``lam`` (identical hyperparameters); only ``"kp"`` learns ``B``.

Initialisation from a run seed ``s``: ``W_l ~ U(-a_l, a_l)`` with ``a_l = init_gain / sqrt(n_l)`` from
``default_rng([s, 1])`` (in layer order), ``B_l ~ U(-a_l, a_l)`` (the distribution of ``W_l^T``) from
``default_rng([s, 2])``, independent of ``W``.  Sample order: :func:`neuro_hw.circuits.digits.epoch_order`.

Self-assembly metrics per layer ``l = 1 .. L-1``: the angle between ``vec(W_l)`` and ``vec(B_l^T)`` in degrees
and ``|W_l - B_l^T|_F / |W_l|_F`` (:func:`alignment`).  Several runs (seeds) train in one pass with a leading
run axis; every run's numbers are those of a lone run up to the summation order (~1e-16).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np

from neuro_hw.circuits.digits import epoch_order, load_digits_split, one_hot

Method = Literal["kp", "bp", "fa", "ss"]
METHODS: tuple[Method, ...] = ("kp", "bp", "fa", "ss")


@dataclass(frozen=True)
class SelfAssemblyParams:
    """Hyperparameters (module doc for the formulas).

    Defaults: the operating point chosen on digits (``docs/self-assembly.md``): ``eta = 2^-4``, ``lam = 2^-7``, so
    that ``eta*lam*(number of updates)`` is about 6.6 over 10 epochs of 1347 samples (alignment needs >~ 4); no
    decay on ``W_0`` (it has no descending partner; decaying it costs ~3 points of accuracy for every method);
    He-uniform initialisation (``init_gain = sqrt(6)``).
    """

    sizes: tuple[int, ...] = (64, 64, 64, 64, 10)
    eta: float = 2.0**-4
    lam: float = 2.0**-7
    #: learning rate and decay of the descending weights (None: the same as the ascending ones)
    eta_b: float | None = None
    lam_b: float | None = None
    #: the decay is applied every this many samples, with this many times the rate (1: every sample)
    decay_every: int = 1
    #: W_l is decayed for l >= decay_from (0: every layer; 1: not W_0, which has no descending partner)
    decay_from: int = 1
    c_h: float = 1.0
    w_max: float = 0.99
    init_gain: float = math.sqrt(6.0)
    epochs: int = 10

    def __post_init__(self) -> None:
        object.__setattr__(self, "sizes", tuple(int(n) for n in self.sizes))
        if len(self.sizes) < 3 or any(n < 1 for n in self.sizes):
            raise ValueError(f"sizes must list >= 3 positive layer widths (input, hidden..., output), got {self.sizes}")
        for name in ("c_h", "w_max", "init_gain"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a positive finite number, got {value!r}")
        for name in ("eta", "lam", "eta_b", "lam_b"):
            value = getattr(self, name)
            if value is not None and not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
        if self.decay_every < 1 or self.epochs < 1:
            raise ValueError(f"decay_every and epochs must be >= 1, got {self.decay_every}, {self.epochs}")

    @property
    def n_layers(self) -> int:
        """``L``: the number of weight layers."""
        return len(self.sizes) - 1

    @property
    def eta_descending(self) -> float:
        return self.eta if self.eta_b is None else self.eta_b

    @property
    def lam_descending(self) -> float:
        return self.lam if self.lam_b is None else self.lam_b

    def halfwidth(self, layer: int) -> float:
        """``a_l = init_gain / sqrt(n_l)``: the initial weights of ``W_l`` (and ``B_l^T``) are ``U(-a_l, a_l)``."""
        return self.init_gain / math.sqrt(self.sizes[layer])


@dataclass(frozen=True)
class Task:
    """A data set: inputs in [0, 1], targets ``t`` (N, n_out); ``labels`` for classification (else None)."""

    name: str
    x_train: np.ndarray
    t_train: np.ndarray
    x_test: np.ndarray
    t_test: np.ndarray
    labels_train: np.ndarray | None = None
    labels_test: np.ndarray | None = None

    @property
    def n_train(self) -> int:
        return int(self.x_train.shape[0])

    @property
    def classification(self) -> bool:
        return self.labels_test is not None

    def subset(self, n_train: int) -> Task:
        lab = None if self.labels_train is None else self.labels_train[:n_train]
        return replace(self, x_train=self.x_train[:n_train], t_train=self.t_train[:n_train], labels_train=lab)


def digits_task() -> Task:
    """sklearn digits (:func:`~neuro_hw.circuits.digits.load_digits_split`): 1347 training / 450 test images,
    one-hot targets."""
    split = load_digits_split()
    return Task(
        "digits",
        split.x_train,
        one_hot(split.y_train),
        split.x_test,
        one_hot(split.y_test),
        split.y_train,
        split.y_test,
    )


def teacher_student_task(
    n_in: int = 10, n_out: int = 3, hidden: int = 20, n_train: int = 2000, n_test: int = 500, seed: int = 0
) -> Task:
    """A regression task: a random teacher ``n_in - hidden - n_out`` (one ReLU layer, Gaussian weights with
    variance ``2 / fan_in``) labels inputs ``x ~ U[0, 1]^n_in`` (it sees ``2x - 1``); each output is mapped
    affinely so that the training targets' 1st..99th percentiles span [0.1, 0.9], then clipped to [0, 1] (the
    chip's graded inputs are unsigned).  A linear fit leaves 1 - R^2 = 0.31 of the variance on the test set."""
    rng = np.random.default_rng([seed, 7])
    w1 = rng.normal(0.0, math.sqrt(2.0 / n_in), (hidden, n_in))
    w2 = rng.normal(0.0, math.sqrt(2.0 / hidden), (n_out, hidden))
    x = rng.uniform(0.0, 1.0, (n_train + n_test, n_in))
    y = np.maximum((2.0 * x - 1.0) @ w1.T, 0.0) @ w2.T
    lo, hi = np.percentile(y[:n_train], [1, 99], axis=0)
    t = np.clip(0.1 + 0.8 * (y - lo) / (hi - lo), 0.0, 1.0)
    return Task("teacher-student", x[:n_train], t[:n_train], x[n_train:], t[n_train:])


def init_weights(params: SelfAssemblyParams, seed: int | Sequence[int]) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """``(W, B)``: ``W[l]`` (n_l+1, n_l) for ``l = 0 .. L-1`` and ``B[l]`` (n_l, n_l+1) for ``l = 1 .. L-1``
    (``B[0]`` is ``None``: the input layer needs no descending signal); a sequence of seeds stacks the runs on a
    leading axis."""
    if not isinstance(seed, (int, np.integer)):
        runs = [init_weights(params, int(s)) for s in seed]
        w = [np.stack([r[0][layer] for r in runs]) for layer in range(params.n_layers)]
        b = [None] + [np.stack([r[1][layer] for r in runs]) for layer in range(1, params.n_layers)]
        return w, b  # type: ignore[return-value]
    sizes = params.sizes
    rng_w = np.random.default_rng([int(seed), 1])
    rng_b = np.random.default_rng([int(seed), 2])
    w = [
        rng_w.uniform(-params.halfwidth(l), params.halfwidth(l), (sizes[l + 1], sizes[l]))
        for l in range(len(sizes) - 1)
    ]
    b = [None] + [
        rng_b.uniform(-params.halfwidth(l), params.halfwidth(l), (sizes[l], sizes[l + 1]))
        for l in range(1, len(sizes) - 1)
    ]
    if max(np.abs(m).max() for m in w) > params.w_max:
        raise ValueError("the initial weights exceed w_max: lower init_gain or raise w_max")
    return w, b  # type: ignore[return-value]


def forward(params: SelfAssemblyParams, w: Sequence[np.ndarray], x: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
    """``(activities x_0 .. x_L-1, output o)`` for inputs ``x`` (..., N, n_0) and weights ``w[l]`` (..., n_l+1, n_l)."""
    acts = [x]
    h = x
    for layer, wl in enumerate(w):
        a = h @ np.swapaxes(wl, -1, -2)
        if layer == len(w) - 1:
            return acts, a
        h = np.clip(a, 0.0, params.c_h)
        acts.append(h)
    raise AssertionError("unreachable")


def evaluate(params: SelfAssemblyParams, w: Sequence[np.ndarray], task: Task) -> tuple[np.ndarray, np.ndarray]:
    """``(accuracy, mse)`` on the test set, one value per run: accuracy = argmax(o) == label (NaN for a
    regression), mse = mean over samples of ``|o - t|^2 / n_out`` divided by the targets' variance (1 - R^2)."""
    _, o = forward(params, w, task.x_test)
    err = np.mean((o - task.t_test) ** 2, axis=(-1, -2))
    mse = err / np.mean(np.var(task.t_test, axis=0))
    if task.labels_test is None:
        return np.full(np.shape(mse), np.nan), mse
    acc = np.mean(np.argmax(o, axis=-1) == task.labels_test, axis=-1)
    return acc, mse


def alignment(w: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(angle in degrees, |W - B^T|_F / |W|_F)`` between ``W`` (..., m, n) and ``B^T`` (``B``: (..., n, m))."""
    bt = np.swapaxes(b, -1, -2)
    dot = np.sum(w * bt, axis=(-1, -2))
    nw = np.sqrt(np.sum(w * w, axis=(-1, -2)))
    nb = np.sqrt(np.sum(bt * bt, axis=(-1, -2)))
    cos = np.clip(dot / np.maximum(nw * nb, 1e-300), -1.0, 1.0)
    rel = np.sqrt(np.sum((w - bt) ** 2, axis=(-1, -2))) / np.maximum(nw, 1e-300)
    return np.degrees(np.arccos(cos)), rel


@dataclass
class TrainResult:
    """Result of :func:`train` (shapes with a leading run axis ``S``).

    ``w``/``b``: final weights (``b[0]`` None).  ``w_first``/``b_first``: per layer, the weights after each of the
    first ``record_first`` samples, ``(S, R, ...)``.  ``test_accuracy``/``test_mse``: after each epoch ``(S, E)``.
    ``record_steps``: the samples (1-based counts) after which the alignment was recorded; ``angle``/``rel_diff``
    ``(S, K, L-1)`` for layers 1 .. L-1 (the angle between W_l and the B_l the method uses; K = len(record_steps)).
    ``g_saturation``: per descending layer (err, g_L-1 .. g_1), the fraction of values with ``|g| > g_ranges``
    (when given).
    """

    method: str
    w: list[np.ndarray]
    b: list[np.ndarray | None]
    w_first: list[np.ndarray]
    b_first: list[np.ndarray | None]
    test_accuracy: np.ndarray
    test_mse: np.ndarray
    record_steps: np.ndarray
    angle: np.ndarray
    rel_diff: np.ndarray
    g_absmax: np.ndarray = field(default_factory=lambda: np.zeros(0))
    g_saturation: np.ndarray = field(default_factory=lambda: np.zeros(0))


def _feedback(method: Method, w: np.ndarray, b: np.ndarray, sign_scale: float) -> np.ndarray:
    if method == "kp" or method == "fa":
        return b
    if method == "bp":
        return np.swapaxes(w, -1, -2)
    return np.sign(np.swapaxes(w, -1, -2)) * sign_scale


def train(
    params: SelfAssemblyParams,
    task: Task,
    order: np.ndarray,
    w: Sequence[np.ndarray],
    b: Sequence[np.ndarray | None],
    method: Method = "kp",
    record_first: int = 0,
    record_every: int = 100,
    g_ranges: Sequence[float] | None = None,
) -> TrainResult:
    """Train online on ``task.x_train[order]`` from ``W, B`` (copied) with ``method`` (module doc).

    ``order``: ``(S, T)`` sample indices for ``S`` stacked runs (weights ``(S, ...)``), or ``(T,)`` for one run.
    An epoch is ``task.n_train`` samples; test metrics after every full epoch (and a final partial one).
    ``g_ranges`` (L values: err, g_L-1, ..., g_1): count how often the descending signals exceed them.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    L = params.n_layers
    single = np.ndim(order) == 1
    order = np.atleast_2d(np.asarray(order, dtype=np.int64))
    runs, steps = order.shape
    w = [np.array(m, dtype=np.float64, ndmin=3, copy=True) for m in w]
    b = [None] + [np.array(m, dtype=np.float64, ndmin=3, copy=True) for m in b[1:]]
    for layer in range(L):
        shape = (runs, params.sizes[layer + 1], params.sizes[layer])
        if w[layer].shape != shape:
            raise ValueError(f"W[{layer}] has shape {w[layer].shape}, expected {shape}")
        b_shape = (runs, params.sizes[layer], params.sizes[layer + 1])
        if layer and b[layer].shape != b_shape:  # type: ignore[union-attr]
            raise ValueError(f"B[{layer}] has shape {b[layer].shape}, expected {b_shape}")
    if order.size and (order.min() < 0 or order.max() >= task.n_train):
        raise ValueError(f"order indexes 0..{task.n_train - 1}, got {order.min()}..{order.max()}")
    eta, lam = params.eta, params.lam
    eta_b, lam_b = params.eta_descending, params.lam_descending
    sign_scale = [0.0] + [float(np.mean(np.abs(w[layer]))) for layer in range(1, L)]
    ends = list(range(task.n_train, steps + 1, task.n_train))
    if not ends or ends[-1] != steps:
        ends.append(steps)
    acc = np.zeros((runs, len(ends)))
    mse = np.zeros((runs, len(ends)))
    rec_steps = [k for k in range(0, steps + 1, record_every)] if record_every else [0, steps]
    if rec_steps[-1] != steps:
        rec_steps.append(steps)
    angle = np.zeros((runs, len(rec_steps), L - 1))
    rel = np.zeros((runs, len(rec_steps), L - 1))
    record_first = min(record_first, steps)
    w_first = [np.zeros((runs, record_first) + m.shape[1:]) for m in w]
    b_first = [None] + [np.zeros((runs, record_first) + m.shape[1:]) for m in b[1:]]  # type: ignore[union-attr]
    g_max = np.zeros((runs, L))
    g_sat = np.zeros((runs, L))
    g_count = np.zeros(L)
    rec = 0

    def record(k: int) -> None:
        nonlocal rec
        while rec < len(rec_steps) and rec_steps[rec] == k:
            for layer in range(1, L):
                fb = _feedback(method, w[layer], b[layer], sign_scale[layer])
                angle[:, rec, layer - 1], rel[:, rec, layer - 1] = alignment(w[layer], fb)
            rec += 1

    record(0)
    epoch = 0
    for k in range(steps):
        x = task.x_train[order[:, k]]  # (S, n_0)
        t = task.t_train[order[:, k]]
        # forward: x_0 .. x_L-1 and the pre-activations a_1 .. a_L-1
        xs, pre = [x], [None]
        h = x
        for layer in range(L - 1):
            a = np.einsum("sij,sj->si", w[layer], h)
            pre.append(a)
            h = np.clip(a, 0.0, params.c_h)
            xs.append(h)
        o = np.einsum("sij,sj->si", w[L - 1], h)
        # descending: g_L = o - t, g_l = f'(a_l) * (B_l g_l+1)
        g: list[np.ndarray] = [None] * (L + 1)  # type: ignore[list-item]
        g[L] = o - t
        for layer in range(L - 1, 0, -1):
            fb = _feedback(method, w[layer], b[layer], sign_scale[layer])
            gate = (pre[layer] > 0.0) & (pre[layer] < params.c_h)
            g[layer] = np.einsum("sij,sj->si", fb, g[layer + 1]) * gate
        if g_ranges is not None:
            for i, layer in enumerate(range(L, 0, -1)):
                v = np.abs(g[layer])
                g_max[:, i] = np.maximum(g_max[:, i], v.max(axis=1))
                g_sat[:, i] += np.sum(v > g_ranges[i], axis=1)
                g_count[i] += v.shape[1]
        # updates from the pre-update weights
        u = params.decay_every if (k + 1) % params.decay_every == 0 else 0
        for layer in range(L):
            dw = -eta * g[layer + 1][:, :, None] * xs[layer][:, None, :]
            if u and layer >= params.decay_from:
                dw -= eta * lam * u * w[layer]
            if method == "kp" and layer > 0:
                db = -eta_b * xs[layer][:, :, None] * g[layer + 1][:, None, :]
                if u:
                    db -= eta_b * lam_b * u * b[layer]
                b[layer] = np.clip(b[layer] + db, -params.w_max, params.w_max)
            w[layer] = np.clip(w[layer] + dw, -params.w_max, params.w_max)
        if k < record_first:
            for layer in range(L):
                w_first[layer][:, k] = w[layer]
                if layer and b[layer] is not None:
                    b_first[layer][:, k] = b[layer]  # type: ignore[index]
        record(k + 1)
        if k + 1 == ends[epoch]:
            acc[:, epoch], mse[:, epoch] = evaluate(params, w, task)
            epoch += 1
    if g_ranges is not None:
        g_sat = g_sat / np.maximum(g_count, 1)

    def out(a):  # noqa: ANN001, ANN202
        if a is None:
            return None
        return a[0] if single else a

    return TrainResult(
        method=method,
        w=[out(m) for m in w],
        b=[out(m) for m in b],
        w_first=[out(m) for m in w_first],
        b_first=[out(m) for m in b_first],
        test_accuracy=out(acc),
        test_mse=out(mse),
        record_steps=np.asarray(rec_steps),
        angle=out(angle),
        rel_diff=out(rel),
        g_absmax=out(g_max),
        g_saturation=out(g_sat),
    )


def run_seeds(
    params: SelfAssemblyParams,
    task: Task,
    seeds: Sequence[int],
    method: Method = "kp",
    **kwargs,  # noqa: ANN003
) -> TrainResult:
    """:func:`train` for ``seeds`` in one vectorised pass (each seed: initial W, B and sample order)."""
    seeds = [int(s) for s in seeds]
    w, b = init_weights(params, seeds)
    order = np.stack([epoch_order(task.n_train, params.epochs, s) for s in seeds])
    return train(params, task, order, w, b, method, **kwargs)
