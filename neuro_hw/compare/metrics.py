"""Spike-train and weight metrics used to compare two runs of the same circuit (pure numpy).

All spike arrays are ``(B, T, n)`` (any trailing shape is flattened); rates are per step.
"""

from __future__ import annotations

import numpy as np


def _flat(spikes: np.ndarray) -> np.ndarray:
    s = np.asarray(spikes)
    return (s.reshape(s.shape[0], s.shape[1], -1) != 0).astype(np.float64)


def spike_count_error(a: np.ndarray, b: np.ndarray) -> float:
    """Relative difference of total spike counts ``|N_b - N_a| / max(N_a, 1)``."""
    na, nb = _flat(a).sum(), _flat(b).sum()
    return float(abs(nb - na) / max(na, 1.0))


def per_neuron_count_error(a: np.ndarray, b: np.ndarray) -> float:
    """Mean over neurons of ``|n_b - n_a|`` divided by the mean count per neuron of ``a`` (at least 1)."""
    ca, cb = _flat(a).sum(axis=1), _flat(b).sum(axis=1)
    return float(np.abs(cb - ca).mean() / max(ca.mean(), 1.0))


def van_rossum_distance(a: np.ndarray, b: np.ndarray, tau_steps: float = 10.0) -> float:
    """Van Rossum distance (van Rossum 2001) per neuron, averaged, in units of one isolated spike.

    Both trains are filtered with ``exp(-t/tau)`` (causal); ``D^2 = (1/tau) sum_t (f_a - f_b)^2``, so that
    two trains differing by one spike have distance ~ ``1/sqrt(2)``.
    """
    fa, fb = _flat(a), _flat(b)
    decay = np.exp(-1.0 / tau_steps)
    diff = fa - fb
    filtered = np.zeros(diff.shape[::2])  # (B, n)
    total = np.zeros_like(filtered)
    for t in range(diff.shape[1]):
        filtered = filtered * decay + diff[:, t]
        total += filtered**2
    return float(np.sqrt(total / tau_steps).mean())


def jaccard(a: np.ndarray, b: np.ndarray, window: int = 0) -> float:
    """Jaccard index of the (trial, step, neuron) spike sets; with ``window`` a spike matches within +/- steps."""
    fa, fb = _flat(a) > 0, _flat(b) > 0
    if window:
        fa_w, fb_w = fa.copy(), fb.copy()
        for k in range(1, window + 1):
            fa_w[:, k:] |= fa[:, :-k]
            fa_w[:, :-k] |= fa[:, k:]
            fb_w[:, k:] |= fb[:, :-k]
            fb_w[:, :-k] |= fb[:, k:]
        inter = (fa & fb_w).sum() + (fb & fa_w).sum()
        union = fa.sum() + fb.sum()
        return float(inter / union) if union else 1.0
    union = (fa | fb).sum()
    return float((fa & fb).sum() / union) if union else 1.0


def activity_cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine similarity of time-averaged activity per neuron (the NIR paper's cross-platform metric)."""
    ra, rb = _flat(a).mean(axis=1).reshape(-1), _flat(b).mean(axis=1).reshape(-1)
    na, nb = np.linalg.norm(ra), np.linalg.norm(rb)
    if na == 0 and nb == 0:
        return 1.0
    if na == 0 or nb == 0:
        return 0.0
    return float(ra @ rb / (na * nb))


def weight_rmse(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.sqrt(np.mean((np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)) ** 2)))


def weight_angle_deg(a: np.ndarray, b: np.ndarray) -> float:
    """Angle in degrees between the flattened weight vectors (0 = same direction)."""
    va, vb = np.asarray(a, dtype=np.float64).reshape(-1), np.asarray(b, dtype=np.float64).reshape(-1)
    na, nb = np.linalg.norm(va), np.linalg.norm(vb)
    if na == 0 or nb == 0:
        return 0.0 if na == nb else 90.0
    return float(np.degrees(np.arccos(np.clip(va @ vb / (na * nb), -1.0, 1.0))))


def weight_change_cosine(dw_a: np.ndarray, dw_b: np.ndarray) -> float:
    """Cosine similarity of two weight *changes* ``w_final - w_initial`` (flattened).

    1 = the same direction of learning; 0 = orthogonal, or only one side changed its weights (an
    unlearned run against a learned one); 1 when neither changed.
    """
    va, vb = np.asarray(dw_a, dtype=np.float64).reshape(-1), np.asarray(dw_b, dtype=np.float64).reshape(-1)
    na, nb = np.linalg.norm(va), np.linalg.norm(vb)
    if na == 0 or nb == 0:
        return 1.0 if na == nb else 0.0
    return float(np.clip(va @ vb / (na * nb), -1.0, 1.0))


def weight_change_norm_error(dw_a: np.ndarray, dw_b: np.ndarray) -> float:
    """Relative error of the size of the weight change, ``| ||dw_b|| - ||dw_a|| | / ||dw_a||``.

    1 when ``b`` did not change its weights at all (or changed them twice as much); 0 when neither
    changed; ``inf`` when only ``b`` changed.
    """
    na = float(np.linalg.norm(np.asarray(dw_a, dtype=np.float64)))
    nb = float(np.linalg.norm(np.asarray(dw_b, dtype=np.float64)))
    if na == 0:
        return 0.0 if nb == 0 else float("inf")
    return abs(nb - na) / na
