"""Monitors of gradient learning in two-pathway circuits, reusable by any circuit (numpy, float64).

These are the quantities of the heterosynaptic-circuit theory (seed P2, ``docs/heterosynaptic.md``), written as
plain functions of arrays so that any circuit -- numpy ground truth, float reference, weights read back from a
fixed-point backend -- can be measured the same way.  Conventions (ours; the paper's signs are not verified):

* **Update direction** ``U``: the circuit's weight change is ``dW = -eta * U``; gradient *descent* is ``U = grad``.
* :func:`weight_drift` -- heterosynaptic stability (HS): ``|dV|`` per sample over windows of snapshots.
* :func:`consistency_scores` -- phi: the least-squares factor of the learning potential ``p(t')`` on the true
  gradient ``g = dL/dh`` per neuron or per patch, ``phi = sum p g / sum g^2`` (phi > 0: the potential points down
  the loss), and :func:`dc_fraction`: the share of neurons/patches whose phi has the majority sign (DC).
* :func:`cosine` -- gradient alignment: ``cos(U, grad)`` over any set of arrays (1: the update is the gradient).
* :func:`hebbian_overlap` -- the share of nonzero rank-one updates ``-post_factor x pre_factor`` whose sign is that
  of the covariance Hebbian term ``(post - mean post) x (pre - mean pre)`` (0.5 = chance).

Every function refuses arrays of mismatched shapes with a message naming the argument.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def _flat(arrays: np.ndarray | Sequence[np.ndarray]) -> np.ndarray:
    if isinstance(arrays, np.ndarray):
        return arrays.ravel().astype(np.float64)
    if len(arrays) == 0:
        raise ValueError("cosine: an empty list of arrays")
    return np.concatenate([np.asarray(a, dtype=np.float64).ravel() for a in arrays])


def cosine(update: np.ndarray | Sequence[np.ndarray], gradient: np.ndarray | Sequence[np.ndarray]) -> float:
    """Gradient alignment: ``<U, G> / (|U| |G|)`` over all entries of ``update`` and ``gradient`` (arrays or lists of
    arrays of equal shapes, e.g. every plastic matrix of a layer).  NaN when either is all zero."""
    u, g = _flat(update), _flat(gradient)
    if u.shape != g.shape:
        raise ValueError(f"cosine: update has {u.size} entries, gradient {g.size}")
    nu, ng = np.linalg.norm(u), np.linalg.norm(g)
    if nu == 0.0 or ng == 0.0:
        return float("nan")
    return float(np.dot(u, g) / (nu * ng))


def consistency_scores(
    potential: np.ndarray,
    gradient: np.ndarray,
    active: np.ndarray | None = None,
    groups: Sequence[Sequence[int]] | None = None,
) -> np.ndarray:
    """phi per neuron, or per patch of neurons: the least-squares coefficient of ``potential`` on ``gradient``.

    ``potential`` (N, n): the learning potential ``p_i(t')`` each neuron receives from the second pathway, for N
    samples; ``gradient`` (N, n): the true ``dL/dh_i(t)`` of the same samples (computed for the monitor only);
    ``active`` (N, n) bool: the samples where the neuron can learn (its gate ``f'(a_i) > 0``; default all).
    ``phi_i = sum_n p g / sum_n g^2`` over the active samples; with ``groups`` (lists of neuron indices) the sums
    run over the neurons of each patch too.  HS holds when ``p = phi * g`` (see :func:`hs_residual`).  A neuron
    or patch without an active sample with ``g != 0`` gets NaN."""
    p = np.asarray(potential, dtype=np.float64)
    g = np.asarray(gradient, dtype=np.float64)
    if p.ndim != 2 or p.shape != g.shape:
        raise ValueError(f"consistency_scores: potential {p.shape} and gradient {g.shape} must be the same (N, n)")
    m = np.ones_like(p, dtype=bool) if active is None else np.asarray(active, dtype=bool)
    if m.shape != p.shape:
        raise ValueError(f"consistency_scores: active {m.shape} must be {p.shape}")
    num = np.where(m, p * g, 0.0).sum(axis=0)
    den = np.where(m, g * g, 0.0).sum(axis=0)
    if groups is not None:
        for k, grp in enumerate(groups):
            idx = np.asarray(grp, dtype=np.int64)
            if idx.size == 0 or idx.min() < 0 or idx.max() >= p.shape[1]:
                raise ValueError(f"consistency_scores: group {k} {list(grp)} is empty or outside 0..{p.shape[1] - 1}")
        num = np.asarray([num[np.asarray(grp)].sum() for grp in groups])
        den = np.asarray([den[np.asarray(grp)].sum() for grp in groups])
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


def hs_residual(potential: np.ndarray, gradient: np.ndarray, active: np.ndarray | None = None) -> float:
    """How far the potential is from ``phi_i * g_i`` (HS): ``sum (p - phi g)^2 / sum p^2`` over active entries
    (0: HS exactly, 1: ``p`` is orthogonal to the gradient).  NaN when ``p`` is zero on every active entry."""
    phi = consistency_scores(potential, gradient, active)
    p = np.asarray(potential, dtype=np.float64)
    m = np.ones_like(p, dtype=bool) if active is None else np.asarray(active, dtype=bool)
    fit = np.nan_to_num(phi)[None, :] * np.asarray(gradient, dtype=np.float64)
    den = np.where(m, p * p, 0.0).sum()
    if den == 0:
        return float("nan")
    return float(np.where(m, (p - fit) ** 2, 0.0).sum() / den)


def dc_fraction(phi: np.ndarray) -> tuple[float, float]:
    """Dynamical consistency: ``(majority, positive)`` -- the fraction of the finite, nonzero scores that share
    the majority sign, and the fraction that are positive (descent in our convention).  ``(nan, nan)`` when no
    score is finite and nonzero."""
    phi = np.asarray(phi, dtype=np.float64).ravel()
    phi = phi[np.isfinite(phi) & (phi != 0)]
    if phi.size == 0:
        return float("nan"), float("nan")
    pos = float(np.mean(phi > 0))
    return max(pos, 1.0 - pos), pos


def hebbian_overlap(
    post_factor: np.ndarray,
    pre_factor: np.ndarray,
    post_activity: np.ndarray,
    pre_activity: np.ndarray,
    mask: np.ndarray | None = None,
) -> float:
    """The share of a circuit's updates that are Hebbian-signed.

    The per-sample update of synapse ``(i, j)`` is ``dW_nij = -post_factor_ni * pre_factor_nj`` (e.g.
    ``-delta_i h_j``); the Hebbian term is ``(post_ni - mean_n post_i) (pre_nj - mean_n pre_j)`` (the covariance
    rule).  Over all samples ``n`` and synapses in ``mask`` (n_post, n_pre) where both are nonzero, the fraction
    whose signs agree (0.5 for unrelated signs, 1 when every update is Hebbian).  Shapes: (N, n_post) and
    (N, n_pre).  NaN when no pair is nonzero."""
    a = np.asarray(post_factor, dtype=np.float64)
    b = np.asarray(pre_factor, dtype=np.float64)
    hp = np.asarray(post_activity, dtype=np.float64)
    hq = np.asarray(pre_activity, dtype=np.float64)
    if a.shape != hp.shape or b.shape != hq.shape or a.ndim != 2 or a.shape[0] != b.shape[0]:
        raise ValueError(
            f"hebbian_overlap: post_factor {a.shape} / post_activity {hp.shape} and pre_factor {b.shape} / "
            f"pre_activity {hq.shape} must be (N, n_post) and (N, n_pre)"
        )
    m = np.ones((a.shape[1], b.shape[1])) if mask is None else np.asarray(mask, dtype=np.float64)
    if m.shape != (a.shape[1], b.shape[1]):
        raise ValueError(f"hebbian_overlap: mask {m.shape} must be {(a.shape[1], b.shape[1])}")
    # sign(update) * sign(hebb) factorises: (-sign a * sign(hp - mean)) outer (sign b * sign(hq - mean))
    s_post = -np.sign(a) * np.sign(hp - hp.mean(axis=0))
    s_pre = np.sign(b) * np.sign(hq - hq.mean(axis=0))
    signed = float(np.einsum("ni,ij,nj->", s_post, m, s_pre))
    nonzero = float(np.einsum("ni,ij,nj->", np.abs(s_post), m, np.abs(s_pre)))
    if nonzero == 0:
        return float("nan")
    return (nonzero + signed) / (2.0 * nonzero)


def weight_drift(snapshots: np.ndarray | Sequence[np.ndarray], samples_between: int) -> np.ndarray:
    """HS monitor |dV|: for consecutive snapshots ``V_k`` (K, ...) taken every ``samples_between`` samples, the
    Frobenius norm of the net change per sample ``|V_k+1 - V_k| / samples_between`` (K - 1 values).  A list of
    snapshot arrays (one per matrix of the pathway) sums the squared changes of all of them."""
    if samples_between < 1:
        raise ValueError(f"weight_drift: samples_between must be >= 1, got {samples_between}")
    stacks = [np.asarray(snapshots, dtype=np.float64)] if isinstance(snapshots, np.ndarray) else [
        np.asarray(s, dtype=np.float64) for s in snapshots
    ]  # fmt: skip
    k = {s.shape[0] for s in stacks}
    if len(k) != 1 or next(iter(k)) < 2:
        raise ValueError(f"weight_drift: need >= 2 snapshots, the same number for every matrix, got {sorted(k)}")
    sq = sum(np.sum(np.diff(s, axis=0).reshape(s.shape[0] - 1, -1) ** 2, axis=1) for s in stacks)
    return np.sqrt(sq) / samples_between
