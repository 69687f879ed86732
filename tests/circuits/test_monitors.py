"""The gradient-learning monitors (neuro_hw.circuits.monitors) on cases whose answer is known."""

from __future__ import annotations

import numpy as np
import pytest

from neuro_hw.circuits import monitors


def test_cosine_of_known_vectors():
    g = [np.array([[1.0, 0.0], [0.0, 2.0]]), np.array([3.0])]
    assert monitors.cosine(g, g) == pytest.approx(1.0)
    assert monitors.cosine([-a for a in g], g) == pytest.approx(-1.0)
    assert monitors.cosine(np.array([1.0, 0.0]), np.array([0.0, 5.0])) == pytest.approx(0.0)
    assert monitors.cosine(np.array([1.0, 1.0]), np.array([1.0, 0.0])) == pytest.approx(1 / np.sqrt(2))
    assert np.isnan(monitors.cosine(np.zeros(3), np.ones(3)))
    with pytest.raises(ValueError, match="update has 2 entries, gradient 3"):
        monitors.cosine(np.ones(2), np.ones(3))


def test_consistency_scores_recover_a_planted_phi():
    """p = phi_i * g_i exactly: phi comes back per neuron, DC counts the signs, the HS residual is 0."""
    rng = np.random.default_rng(0)
    g = rng.normal(size=(50, 4))
    phi = np.array([2.0, 0.5, -1.0, 3.0])
    p = g * phi
    np.testing.assert_allclose(monitors.consistency_scores(p, g), phi)
    assert monitors.dc_fraction(phi) == (0.75, 0.75)
    assert monitors.hs_residual(p, g) == pytest.approx(0.0, abs=1e-12)
    # patches pool the sums: (0, 1) -> (sum 2 g0^2 + 0.5 g1^2) / (g0^2 + g1^2)
    patch = monitors.consistency_scores(p, g, groups=[[0, 1], [2, 3]])
    s0, s1 = (g[:, 0] ** 2).sum(), (g[:, 1] ** 2).sum()
    assert patch[0] == pytest.approx((2 * s0 + 0.5 * s1) / (s0 + s1))
    # noise orthogonal to g: the residual is its share of |p|^2
    noise = rng.normal(size=g.shape)
    noise -= g * (noise * g).sum(0) / (g * g).sum(0)
    r = monitors.hs_residual(p + noise, g)
    assert r == pytest.approx((noise**2).sum() / ((p + noise) ** 2).sum(), rel=1e-9)


def test_consistency_scores_use_only_active_samples():
    g = np.array([[1.0], [1.0], [1.0]])
    p = np.array([[2.0], [-50.0], [2.0]])
    active = np.array([[True], [False], [True]])
    assert monitors.consistency_scores(p, g, active)[0] == pytest.approx(2.0)
    assert np.isnan(monitors.consistency_scores(p, g, np.zeros_like(active))[0])
    assert monitors.dc_fraction(np.array([np.nan, 0.0, 1.0, 2.0, -1.0])) == (pytest.approx(2 / 3), pytest.approx(2 / 3))
    assert np.isnan(monitors.dc_fraction(np.array([np.nan]))[0])


def test_hebbian_overlap_counts_sign_agreement():
    """Updates dW = -a b^T: agreement with (post - mean)(pre - mean)^T, counted over nonzero pairs."""
    post = np.array([[1.0], [0.0]])  # centred: +0.5, -0.5
    pre = np.array([[1.0, 2.0], [0.0, 0.0]])  # centred: (+0.5, +1), (-0.5, -1)
    hebbian = -(post - post.mean(0))  # a = -(post - mean): every update is Hebbian
    assert monitors.hebbian_overlap(hebbian, pre, post, pre) == 1.0
    assert monitors.hebbian_overlap(-hebbian, pre, post, pre) == 0.0
    # a mask keeps only synapse (0, 1); a brute-force count agrees on random data
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(30, 3)), rng.normal(size=(30, 4))
    hp, hq = rng.random((30, 3)), rng.random((30, 4))
    mask = rng.random((3, 4)) < 0.6
    dw = -a[:, :, None] * b[:, None, :]
    hebb = (hp - hp.mean(0))[:, :, None] * (hq - hq.mean(0))[:, None, :]
    sel = (dw != 0) & (hebb != 0) & mask[None]
    expected = np.mean(np.sign(dw[sel]) == np.sign(hebb[sel]))
    assert monitors.hebbian_overlap(a, b, hp, hq, mask) == pytest.approx(expected)
    with pytest.raises(ValueError, match="mask"):
        monitors.hebbian_overlap(a, b, hp, hq, mask.T)


def test_weight_drift_is_the_change_per_sample():
    snaps = np.stack([np.zeros((2, 2)), np.full((2, 2), 1.0), np.full((2, 2), 1.5)])
    np.testing.assert_allclose(monitors.weight_drift(snaps, 10), [2.0 / 10, 1.0 / 10])
    two = monitors.weight_drift([snaps, snaps], 1)  # two matrices: the norm over both
    np.testing.assert_allclose(two, np.sqrt(2) * np.array([2.0, 1.0]))
    with pytest.raises(ValueError, match=">= 2 snapshots"):
        monitors.weight_drift(snaps[:1], 1)
