"""Ground truth for seed circuit P3: an MLP that learns online with a plasticity rule from the pool F0..F9,
written directly in float64 numpy and vectorised over episodes.

Shervani-Tabar & Rosenbaum, "Meta-learning biologically plausible plasticity rules with random feedback
pathways", Nat. Commun. 14:1805 (2023); model, errors and pool verified against the authors' code
(``docs/meta-plasticity.md``).  Notation: layers ``l = 1..L`` (``L = 5``), sizes ``n_0 = d`` (64 for the
digits) and the paper's hidden sizes 170-130-100-70, ``n_L = ways`` (5) outputs; no biases::

    y_0 = x                                        (image in [0, 1]^d)
    z_l = W_l y_{l-1},   y_l = f(z_l) = softplus_beta(z_l) = log(1 + e^{beta z}) / beta   l < L, beta = 10
    z_L = W_L y_{L-1}                               (logits)

**Output and errors** (``NetworkConfig.output``)::

    "softmax" (paper):   e_L = softmax(z_L) - onehot,   y_L = softmax(z_L)       (y_L: used by the rules)
    "linear"  (on chip): e_L = z_L - onehot,            y_L = z_L                 (squared-error / LMS)
    "clipped" (on chip): e_L = clip(z_L, 0, 1) - onehot, y_L = clip(z_L, 0, 1)

    e_l = (F_{l+1}^T e_{l+1}) * f'(y_l),   l = L-1 .. 0   (e_0 at the input too, needed by F1, F2, F4, F6-F8)

with ``f'`` written as a function of the output, ``f'(y) = 1 - exp(-beta y)`` (= sigmoid(beta z)), and the
feedback ``F = B`` fixed random (``feedback="fa"``) or ``F = W`` (``"bp"``: exact backprop, B = W at every
step).  ``activation="hardware"`` uses the hard softplus and its derivative (0, 1/2, 1) of
:mod:`neuro_hw.ir.graded` instead (the on-chip form; the same functions the float reference runs).

**Plasticity**: ``W_l <- clip(W_l + sum_r theta_r F^r_l, -w_max, w_max)`` for every layer, all from the
pre-update weights and signals of the sample, one ``theta`` shared by all layers (seeds.md §3.3; shapes
``W_l`` (n_l, n_{l-1}), ``e``/``y`` columns)::

    F0 = -e_l y_{l-1}^T                     pseudo-gradient (FA; BP with F = W)
    F1 = -y_l e_{l-1}^T
    F2 = -e_l e_{l-1}^T                     error-based Hebb ("eHebb")
    F3 = -W_l                               weight decay
    F4 = -1 e_{l-1}^T
    F5 = -(1^T y_l) e_l y_{l-1}^T
    F6 = -(y_l^T W_l e_{l-1}) y_l e_{l-1}^T  = -(y_l y_l^T) W_l (e_{l-1} e_{l-1}^T)
    F7 = -(y_l^T W_l e_{l-1}) e_l y_{l-1}^T  = -(e_l y_l^T) W_l (e_{l-1} y_{l-1}^T)
    F8 = -(e_l^T W_l y_{l-1}) y_l e_{l-1}^T  = -(y_{l-1}^T W_l^T e_l) y_l e_{l-1}^T
    F9 = y_l y_{l-1}^T - (y_l y_l^T) W_l     Oja, subspace form (paper; ``oja="subspace"``):
                                             element (i, j) needs (W_l^T y_l)_j, a sum over all post neurons
         y_l y_{l-1}^T - diag(y_l^2) W_l     single-neuron form (``oja="local"``; element y_i^2 W_ij)

Three more terms for the hardware study (not in the paper's pool; indices 10..12 of ``theta``)::

    H  = y_l y_{l-1}^T                        plain Hebb (F9's first half alone)
    O  = -diag(y_l^2) W_l                     single-neuron Oja decay (F9 local = H + O)
    S2 = -diag(e_l^2) B_l                     F2 in expectation: E[e_l e_{l-1}^T] ~ E[e_l e_l^T] B_l (f' dropped),
                                              local if B_l is stored at the synapse

Baselines (the same network and loop): BP (theta0 only, F = W), FA (theta0), eHebb (theta0, theta2), F_bio
(theta0, theta2, theta9).

**Initialisation**: Xavier-uniform ``U(-a, a)``, ``a = sqrt(6 / (n_in + n_out))``, for every ``W_l`` and
``B_l`` (same shapes), redrawn per episode: ``rng = np.random.default_rng([seed, 3])`` draws ``W_1..W_L``
in turn, ``np.random.default_rng([seed, 4])`` draws ``B_1..B_L`` (the episode seed,
:mod:`.meta_plasticity_data`).  Computing a batch of episodes together gives each episode's numbers as when
it is computed alone (up to summation order, ~1e-16).

**Query**: after the ``ways * K`` updates, ``argmax z_L`` of every query image (accuracy) and the
cross-entropy of ``softmax(z_L)`` (the paper's meta-loss); the angle ``alpha_l`` (degrees) between the FA
error (through ``B``) and the BP error (through ``W^T``, same ``e_L``) at each hidden layer, per query image.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numba
import numpy as np

from neuro_hw.circuits.meta_plasticity_data import Episodes
from neuro_hw.ir.graded import activate, gate_value

#: The paper's pool F0..F9, then three terms for the hardware study (module doc): H, O and S2.
PAPER_TERMS = 10
N_TERMS = 13
HEBB, OJA_LOCAL, EHEBB_SURROGATE = 10, 11, 12
#: Short names of the terms (module doc).
TERM_NAMES = (
    "F0 -e y'", "F1 -y e'", "F2 -e e'", "F3 -W", "F4 -1 e'", "F5 -(1.y) e y'", "F6 -(y.We') y e'",
    "F7 -(y.We') e y'", "F8 -(e.Wy') y e'", "F9 Oja", "H y y'", "O -y^2 W", "S2 -e^2 B",
)  # fmt: skip
#: Terms that need the presynaptic error e_{l-1}.
PRE_ERROR_TERMS = (1, 2, 4, 6, 7, 8)
OUTPUTS = ("softmax", "linear", "clipped")
FEEDBACKS = ("fa", "bp")
OJA_FORMS = ("subspace", "local")
DEFAULT_SIZES = (64, 170, 130, 100, 70, 5)


@dataclass(frozen=True)
class NetworkConfig:
    """The network and the forms of its parts (module doc)."""

    sizes: tuple[int, ...] = DEFAULT_SIZES
    beta: float = 10.0
    feedback: str = "fa"
    output: str = "softmax"
    activation: str = "exact"
    oja: str = "subspace"
    #: Weight bounds: one for all layers or one per layer (the chip's weight range); inf: none.
    w_max: float | tuple[float, ...] = math.inf
    #: Upper clip of the hidden activities (the chip clips a plastic pre at its declared range); inf: none.
    y_clip: float = math.inf

    def __post_init__(self) -> None:
        object.__setattr__(self, "sizes", tuple(int(n) for n in self.sizes))
        if len(self.sizes) < 2 or min(self.sizes) < 1:
            raise ValueError(f"sizes must list >= 2 positive layer sizes, got {self.sizes}")
        for name, allowed in (("feedback", FEEDBACKS), ("output", OUTPUTS), ("oja", OJA_FORMS),
                              ("activation", ("exact", "hardware"))):  # fmt: skip
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {getattr(self, name)!r}")
        if not (self.beta > 0 and math.isfinite(self.beta)):
            raise ValueError(f"beta must be a positive number, got {self.beta}")
        if isinstance(self.w_max, (tuple, list)):
            object.__setattr__(self, "w_max", tuple(float(v) for v in self.w_max))
            if len(self.w_max) != self.n_layers:
                raise ValueError(f"w_max needs one bound per layer ({self.n_layers}), got {self.w_max}")
        else:
            object.__setattr__(self, "w_max", float(self.w_max))
        if not (min(self.layer_w_max) > 0 and self.y_clip > 0):
            raise ValueError(f"w_max and y_clip must be positive, got {self.w_max}, {self.y_clip}")

    @property
    def n_layers(self) -> int:
        return len(self.sizes) - 1

    @property
    def layer_w_max(self) -> tuple[float, ...]:
        """The weight bound of every layer."""
        return self.w_max if isinstance(self.w_max, tuple) else (self.w_max,) * self.n_layers

    def with_(self, **changes: object) -> NetworkConfig:
        return replace(self, **changes)  # type: ignore[arg-type]


def theta_vector(values: dict[int, float] | Sequence[float] | np.ndarray) -> np.ndarray:
    """A length-10 float64 theta from ``{index: value}`` or a sequence (missing entries 0)."""
    out = np.zeros(N_TERMS)
    if isinstance(values, dict):
        values = {int(k): v for k, v in values.items()}
        for k, v in values.items():
            if not 0 <= int(k) < N_TERMS:
                raise ValueError(f"theta index {k} outside 0..{N_TERMS - 1}")
            out[int(k)] = float(v)
        return out
    arr = np.asarray(values, dtype=np.float64).reshape(-1)
    if arr.size > N_TERMS:
        raise ValueError(f"theta has {arr.size} entries, the pool has {N_TERMS}")
    out[: arr.size] = arr
    if not np.all(np.isfinite(out)):
        raise ValueError(f"theta must be finite, got {out}")
    return out


def xavier_halfwidth(n_out: int, n_in: int) -> float:
    return math.sqrt(6.0 / (n_in + n_out))


def init_weights(config: NetworkConfig, seeds: Sequence[int] | np.ndarray) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """``(W, B)``: lists over layers ``1..L`` of ``(E, n_l, n_{l-1})`` arrays for the episode seeds (module doc)."""
    seeds = np.asarray(list(seeds), dtype=np.int64).reshape(-1)
    shapes = [(config.sizes[i + 1], config.sizes[i]) for i in range(config.n_layers)]
    ws = [np.zeros((len(seeds),) + s) for s in shapes]
    bs = [np.zeros((len(seeds),) + s) for s in shapes]
    for i, seed in enumerate(seeds):
        rng_w = np.random.default_rng([int(seed), 3])
        rng_b = np.random.default_rng([int(seed), 4])
        for layer, (n_out, n_in) in enumerate(shapes):
            a = xavier_halfwidth(n_out, n_in)
            ws[layer][i] = rng_w.uniform(-a, a, (n_out, n_in))
        for layer, (n_out, n_in) in enumerate(shapes):
            a = xavier_halfwidth(n_out, n_in)
            bs[layer][i] = rng_b.uniform(-a, a, (n_out, n_in))
    return ws, bs


def _matvec(w: np.ndarray, v: np.ndarray) -> np.ndarray:
    """``(E, n, m) @ (E, m) -> (E, n)``."""
    return np.matmul(w, v[..., None])[..., 0]


def _rmatvec(w: np.ndarray, v: np.ndarray) -> np.ndarray:
    """``(E, n, m)^T @ (E, n) -> (E, m)``."""
    return np.einsum("eij,ei->ej", w, v)


@numba.njit(cache=True, nogil=True)
def _fused_update(w: np.ndarray, row_scale: np.ndarray, u: np.ndarray, v: np.ndarray, w_max: float) -> None:
    """In place, in one pass: ``w = clip(w * row_scale[..., None] + sum_r u[:, r, :, None] * v[:, r, None, :],
    -w_max, w_max)`` with ``w`` (E, n, m), ``row_scale`` (E, n), ``u`` (E, k, n), ``v`` (E, k, m); the
    products are summed in the order ``r = 0..k-1`` before the scaled weight is added, as in the numpy
    expression, so the two agree to rounding (~1e-16)."""
    n_e, n, m = w.shape
    k = u.shape[1]
    buf = np.empty(m)
    for e in range(n_e):
        for i in range(n):
            u0 = u[e, 0, i]
            for j in range(m):
                buf[j] = u0 * v[e, 0, j]
            for r in range(1, k):
                ur = u[e, r, i]
                for j in range(m):
                    buf[j] += ur * v[e, r, j]
            s = row_scale[e, i]
            for j in range(m):
                x = w[e, i, j] * s + buf[j]
                w[e, i, j] = min(max(x, -w_max), w_max)


def softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=-1, keepdims=True)
    ez = np.exp(z)
    return ez / ez.sum(axis=-1, keepdims=True)


def output_error(config: NetworkConfig, z: np.ndarray, onehot: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(e_L, y_L)`` for logits ``z`` (module doc, ``config.output``)."""
    if config.output == "softmax":
        y = softmax(z)
    elif config.output == "linear":
        y = z
    else:
        y = np.clip(z, 0.0, 1.0)
    return y - onehot, y


def forward(
    config: NetworkConfig, ws: Sequence[np.ndarray], x: np.ndarray
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """``(ys, zs)``: activities ``y_0..y_{L-1}`` and pre-activations ``z_1..z_L`` (``zs[l-1] = z_l``) for
    inputs ``x`` ``(E, d)`` (or ``(E, N, d)``: several samples per episode)."""
    many = x.ndim == 3
    ys, zs = [x], []
    for layer, w in enumerate(ws):
        y = ys[-1]
        z = np.matmul(y, np.swapaxes(w, -1, -2)) if many else _matvec(w, y)
        zs.append(z)
        if layer < len(ws) - 1:
            ys.append(activate(z, "softplus", config.y_clip, config.beta, config.activation))
    return ys, zs


def backward(
    config: NetworkConfig, fbs: Sequence[np.ndarray], ys: Sequence[np.ndarray], e_out: np.ndarray, down_to: int = 1
) -> list[np.ndarray | None]:
    """Errors ``[e_0, ..., e_L]`` (``None`` below ``down_to``) from ``e_L`` through feedback matrices ``fbs``
    (``B_l`` or ``W_l``, shape (E, n_l, n_{l-1})); ``ys`` are ``y_0..y_{L-1}``; several samples per episode
    (``(E, N, n)``) allowed."""
    n = config.n_layers
    es: list[np.ndarray | None] = [None] * (n + 1)
    es[n] = e_out
    for layer in range(n - 1, down_to - 1, -1):
        e = es[layer + 1]
        back = np.matmul(e, fbs[layer]) if e.ndim == 3 else _rmatvec(fbs[layer], e)
        es[layer] = back * gate_value(ys[layer], "softplus_derivative", math.inf, config.beta, config.activation)
    return es


def angles(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Angle in degrees between the last-axis vectors of ``a`` and ``b`` (90 where either is zero)."""
    na, nb = np.linalg.norm(a, axis=-1), np.linalg.norm(b, axis=-1)
    dot = (a * b).sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        cos = np.where((na > 0) & (nb > 0), dot / (na * nb), 0.0)
    return np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))


@dataclass
class Adaptation:
    """What :func:`adapt` returns (``E`` episodes, ``L`` layers).

    ``weights``: the final ``W_1..W_L``; ``query_accuracy``/``query_loss`` (E,); ``query_alpha`` (E, L-1): mean
    over the query images of the angle between the FA and BP errors at layers 1..L-1 (degrees);
    ``online_accuracy`` (E,): fraction of training samples classified right before their update;
    ``weights_first``: per layer ``(E, R, n_l, n_{l-1})`` the weights after each of the first R samples;
    ``alpha_steps`` (N, E, L-1) the angle at every training sample (``monitor=True``), ``signal_max``: the
    largest |value| and its 99.9th percentile (``<name>_p999``) of ``z_l``, ``e_l``, ``y_l`` over the training
    samples (``monitor=True``).
    """

    weights: list[np.ndarray]
    query_accuracy: np.ndarray
    query_loss: np.ndarray
    query_alpha: np.ndarray
    online_accuracy: np.ndarray
    weights_first: list[np.ndarray] = field(default_factory=list)
    alpha_steps: np.ndarray | None = None
    signal_max: dict[str, float] = field(default_factory=dict)


def query_metrics(
    config: NetworkConfig, ws: Sequence[np.ndarray], bs: Sequence[np.ndarray], x: np.ndarray, labels: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(accuracy (E,), cross-entropy (E,), alpha (E, L-1))`` of weights ``ws`` on ``x`` (E, Q, d)."""
    ys, zs = forward(config, ws, x)
    z = zs[-1]
    acc = np.mean(np.argmax(z, axis=-1) == labels, axis=-1)
    zmax = z.max(axis=-1, keepdims=True)
    lse = np.log(np.exp(z - zmax).sum(axis=-1)) + zmax[..., 0]
    ce = np.mean(lse - np.take_along_axis(z, labels[..., None], axis=-1)[..., 0], axis=-1)
    onehot = np.eye(config.sizes[-1])[labels]
    e_out, _ = output_error(config, z, onehot)
    e_fa = backward(config, bs, ys, e_out)
    e_bp = backward(config, ws, ys, e_out)
    alpha = np.stack([angles(e_fa[k], e_bp[k]).mean(axis=-1) for k in range(1, config.n_layers)], axis=-1)
    return acc, ce, alpha


def adapt(
    config: NetworkConfig,
    theta: Sequence[float] | np.ndarray,
    episodes: Episodes,
    ws: Sequence[np.ndarray] | None = None,
    bs: Sequence[np.ndarray] | None = None,
    record_first: int = 0,
    monitor: bool = False,
    n_samples: int | None = None,
    fused: bool = True,
) -> Adaptation:
    """Train every episode's network online on its training images with rule ``theta`` (module doc) and
    evaluate it on its queries.  ``ws``/``bs`` default to :func:`init_weights` of the episode seeds (copied,
    never modified); ``n_samples`` stops after that many training images (for agreement tests).  ``fused``
    applies each layer's update in one compiled pass (:func:`_fused_update`, ~3x faster); ``False`` runs the
    plain numpy expression (the two agree to ~1e-16, tested)."""
    theta = theta_vector(theta)
    if ws is None or bs is None:
        w_init, b_init = init_weights(config, episodes.seeds)
        ws = ws if ws is not None else w_init
        bs = bs if bs is not None else b_init
    ws = [np.array(w, dtype=np.float64, copy=True, order="C") for w in ws]  # copies: updated in place
    bs = [np.asarray(b, dtype=np.float64) for b in bs]
    n = config.n_layers
    for layer in range(n):
        shape = (len(episodes), config.sizes[layer + 1], config.sizes[layer])
        for name, arr in (("W", ws[layer]), ("B", bs[layer])):
            if arr.shape != shape:
                raise ValueError(f"{name}_{layer + 1} has shape {arr.shape}, expected {shape}")
    n_classes = config.sizes[-1]
    if episodes.x_train.shape[-1] != config.sizes[0]:
        raise ValueError(f"episodes have {episodes.x_train.shape[-1]} inputs, the network {config.sizes[0]}")
    steps = episodes.x_train.shape[1] if n_samples is None else min(n_samples, episodes.x_train.shape[1])
    need_pre_error = bool(np.any(theta[list(PRE_ERROR_TERMS)] != 0))
    down_to = 0 if need_pre_error else 1
    eye = np.eye(n_classes)
    first = [np.zeros((len(episodes), min(record_first, steps)) + w.shape[1:]) for w in ws] if record_first else []
    correct = np.zeros(len(episodes))
    alpha_steps = np.zeros((steps, len(episodes), n - 1), dtype=np.float32) if monitor else None
    samples: dict[str, list[np.ndarray]] = {}
    th = theta
    w_bounds = config.layer_w_max
    for k in range(steps):
        x = episodes.x_train[:, k]
        onehot = eye[episodes.y_train[:, k]]
        ys, zs = forward(config, ws, x)
        e_out, y_out = output_error(config, zs[-1], onehot)
        fbs = ws if config.feedback == "bp" else bs
        es = backward(config, fbs, ys, e_out, down_to)
        correct += np.argmax(zs[-1], axis=-1) == episodes.y_train[:, k]
        if monitor:
            e_bp = es if config.feedback == "bp" else backward(config, ws, ys, e_out)
            e_fa = backward(config, bs, ys, e_out) if config.feedback == "bp" else es
            for j in range(1, n):
                alpha_steps[k, :, j - 1] = angles(e_fa[j], e_bp[j])
            for j in range(1, n + 1):
                for key, v in ((f"z{j}", zs[j - 1]), (f"e{j}", es[j]), (f"y{j}", ys[j] if j < n else y_out)):
                    samples.setdefault(key, []).append(np.abs(v).astype(np.float32).reshape(-1))
        all_ys = list(ys) + [y_out]
        new_ws = []
        for layer in range(1, n + 1):
            w = ws[layer - 1]
            y, yp, e = all_ys[layer], all_ys[layer - 1], es[layer]
            ep = es[layer - 1]
            us, vs = [], []
            # terms with the presynaptic activity y_{l-1}
            a = -th[0] * e + (th[9] + th[HEBB]) * y
            if th[5]:
                a = a - th[5] * y.sum(axis=-1, keepdims=True) * e
            s67 = None
            if th[6] or th[7]:
                s67 = (y * _matvec(w, ep)).sum(axis=-1, keepdims=True)
            if th[7]:
                a = a - th[7] * s67 * e
            us.append(a)
            vs.append(yp)
            # terms with the presynaptic error e_{l-1}
            if need_pre_error:
                b = -th[1] * y - th[2] * e - th[4]
                if th[6]:
                    b = b - th[6] * s67 * y
                if th[8]:
                    b = b - th[8] * (e * zs[layer - 1]).sum(axis=-1, keepdims=True) * y
                us.append(np.broadcast_to(b, e.shape))
                vs.append(ep)
            # terms proportional to W_l (row scales) and to B_l
            decay = th[3] + th[OJA_LOCAL] * (y * y)
            if th[9] and config.oja == "subspace":
                us.append(y)
                vs.append(-th[9] * _rmatvec(w, y))
            elif th[9]:
                decay = decay + th[9] * (y * y)
            scale = np.ascontiguousarray(np.broadcast_to(1.0 - decay, y.shape))
            surrogate = th[EHEBB_SURROGATE] * e * e if th[EHEBB_SURROGATE] else None
            if fused and surrogate is None:
                new = w  # our own copy (made above): updated in place
                _fused_update(new, scale, np.stack(us, axis=1), np.stack(vs, axis=1), w_bounds[layer - 1])
            else:
                new = w * scale[..., None] + np.matmul(np.stack(us, axis=-1), np.stack(vs, axis=-2))
                if surrogate is not None:
                    new -= surrogate[..., None] * bs[layer - 1]
                if math.isfinite(w_bounds[layer - 1]):
                    np.clip(new, -w_bounds[layer - 1], w_bounds[layer - 1], out=new)
            new_ws.append(new)
        ws = new_ws
        if k < record_first:
            for layer in range(n):
                first[layer][:, k] = ws[layer]
    acc, ce, alpha = query_metrics(config, ws, bs, episodes.x_query, episodes.y_query)
    peaks = {}
    for key, chunks in samples.items():
        values = np.concatenate(chunks)
        peaks[key] = float(values.max())
        peaks[key + "_p999"] = float(np.percentile(values, 99.9))
    return Adaptation(ws, acc, ce, alpha, correct / max(steps, 1), first, alpha_steps, peaks)


#: The baselines of the paper on this network: name -> (active terms, feedback).
BASELINES = {"BP": ((0,), "bp"), "FA": ((0,), "fa"), "eHebb": ((0, 2), "fa"), "F_bio": ((0, 2, 9), "fa")}


def mean_se(values: np.ndarray) -> tuple[float, float]:
    """Mean and standard error of the mean."""
    v = np.asarray(values, dtype=np.float64).reshape(-1)
    se = float(v.std(ddof=1) / math.sqrt(v.size)) if v.size > 1 else 0.0
    return float(v.mean()), se
