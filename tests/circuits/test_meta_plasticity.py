"""Seed circuit P3 (meta-learned plasticity): episodes, the numpy ground truth, the circuit against it.

Fast tests only; the emulator and Lava checks are in ``test_meta_plasticity_chip.py`` (slow / lava).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import neuro_hw
from neuro_hw.circuits import meta_plasticity_circuit as mc
from neuro_hw.circuits import meta_plasticity_numpy as mn
from neuro_hw.circuits.meta_plasticity_data import Protocol, episodes, load_digits_dataset, load_npz_dataset
from neuro_hw.errors import InputError, RuleError


@pytest.fixture(scope="module")
def digits():
    return load_digits_dataset()


@pytest.fixture(scope="module")
def two(digits):
    return episodes(digits, [0, 1], "meta_train")


# -- episodes ---------------------------------------------------------------------------------------------------
def test_episodes_follow_the_protocol(digits):
    ep = episodes(digits, [3, 4, 5], "eval")
    assert ep.x_train.shape == (3, 250, 64) and ep.x_query.shape == (3, 50, 64)
    for i in range(3):
        assert len(set(ep.classes[i])) == 5  # five distinct classes
        assert np.bincount(ep.y_train[i], minlength=5).tolist() == [50] * 5
        assert np.bincount(ep.y_query[i], minlength=5).tolist() == [10] * 5
        # every image shown has its episode label's class
        for x, y in ((ep.x_train[i], ep.y_train[i]), (ep.x_query[i], ep.y_query[i])):
            rows = [np.flatnonzero((digits.x == xi).all(axis=1)) for xi in x]
            assert all(ep.classes[i][lab] in set(digits.y[r]) for r, lab in zip(rows, y, strict=True))
    again = episodes(digits, [4], "eval")
    np.testing.assert_array_equal(again.x_train[0], ep.x_train[1])


def test_pools_are_disjoint(digits):
    meta = set(np.concatenate(digits.meta_train).tolist())
    held = set(np.concatenate(digits.eval).tolist())
    assert not meta & held and len(meta) == 600
    assert all(np.array_equal(p, np.flatnonzero(digits.y == c)[:60]) for c, p in enumerate(digits.meta_train))
    ep = episodes(digits, range(20), "eval")
    images = {tuple(r) for r in np.concatenate([ep.x_train.reshape(-1, 64), ep.x_query.reshape(-1, 64)])}
    meta_images = {tuple(r) for r in digits.x[sorted(meta)]}
    exclusive = meta_images - {tuple(r) for r in digits.x[sorted(held)]}  # images that occur only in the meta pool
    assert not images & exclusive


def test_npz_loader_runs_the_protocol_and_names_the_field(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (6 * 130, 16))
    y = np.repeat(np.arange(6), 130)
    good = tmp_path / "ok.npz"
    np.savez(good, x=x, y=y)
    ds = load_npz_dataset(good)
    assert ds.n_classes == 6 and ds.n_features == 16
    assert episodes(ds, [0], "eval").x_train.shape == (1, 250, 16)
    bad = tmp_path / "bad.npz"
    np.savez(bad, x=x * 2, y=y)
    with pytest.raises(InputError, match="bad.npz.*x|x.*bad.npz"):
        load_npz_dataset(bad)
    few = tmp_path / "few.npz"
    np.savez(few, x=x[:300], y=y[:300])
    with pytest.raises(InputError, match="class"):
        load_npz_dataset(few, Protocol())


# -- numpy ground truth -------------------------------------------------------------------------------------------
def test_one_update_is_the_sum_of_the_pool_terms():
    """A tiny network, one sample, every term on: the update equals the pool formulas written out."""
    rng = np.random.default_rng(1)
    cfg = mn.NetworkConfig(sizes=(4, 3, 2))
    x = rng.uniform(0, 1, (1, 1, 4))
    from neuro_hw.circuits.meta_plasticity_data import Episodes

    one = Episodes(x, np.array([[1]]), x, np.array([[1]]), np.zeros((1, 2), int), np.array([7]), "meta_train")
    ws, bs = mn.init_weights(cfg, [7])
    theta = rng.uniform(-0.05, 0.05, mn.N_TERMS)
    theta[mn.EHEBB_SURROGATE] = 0.02
    got = mn.adapt(cfg, theta, one, ws=ws, bs=bs, record_first=1, fused=False).weights_first
    # the same by the formulas (module doc), written independently
    beta = cfg.beta
    w1, w2 = ws[0][0], ws[1][0]
    b1, b2 = bs[0][0], bs[1][0]
    y0 = x[0, 0]
    z1 = w1 @ y0
    y1 = np.log1p(np.exp(beta * z1)) / beta
    z2 = w2 @ y1
    p = np.exp(z2 - z2.max()) / np.exp(z2 - z2.max()).sum()
    e2 = p - np.array([0.0, 1.0])
    e1 = (b2.T @ e2) * (1 - np.exp(-beta * y1))
    e0 = (b1.T @ e1) * (1 - np.exp(-beta * y0))
    for w, b, y, yp, e, ep_, z, layer in ((w1, b1, y1, y0, e1, e0, z1, 0), (w2, b2, p, y1, e2, e1, z2, 1)):
        th = theta
        terms = [
            -np.outer(e, yp), -np.outer(y, ep_), -np.outer(e, ep_), -w, -np.outer(np.ones_like(y), ep_),
            -y.sum() * np.outer(e, yp), -(y @ w @ ep_) * np.outer(y, ep_), -(y @ w @ ep_) * np.outer(e, yp),
            -(e @ z) * np.outer(y, ep_), np.outer(y, yp) - np.outer(y, y) @ w, np.outer(y, yp),
            -(y * y)[:, None] * w, -(e * e)[:, None] * b,
        ]  # fmt: skip
        expected = w + sum(t * c for t, c in zip(terms, th, strict=True))
        np.testing.assert_allclose(got[layer][0, 0], expected, rtol=1e-12, atol=1e-15)


def test_local_oja_is_the_diagonal_form():
    rng = np.random.default_rng(2)
    cfg = mn.NetworkConfig(sizes=(4, 3, 2), oja="local")
    from neuro_hw.circuits.meta_plasticity_data import Episodes

    x = rng.uniform(0, 1, (1, 1, 4))
    one = Episodes(x, np.array([[0]]), x, np.array([[0]]), np.zeros((1, 2), int), np.array([3]), "meta_train")
    ws, bs = mn.init_weights(cfg, [3])
    a = mn.adapt(cfg, {9: 0.1}, one, ws=ws, bs=bs, record_first=1).weights_first
    b = mn.adapt(cfg, {mn.HEBB: 0.1, mn.OJA_LOCAL: 0.1}, one, ws=ws, bs=bs, record_first=1).weights_first
    sub = mn.adapt(cfg.with_(oja="subspace"), {9: 0.1}, one, ws=ws, bs=bs, record_first=1).weights_first
    for la, lb, ls in zip(a, b, sub, strict=True):
        np.testing.assert_allclose(la, lb, rtol=1e-14)
        assert not np.allclose(la, ls)  # the subspace form differs


def test_episodes_are_independent_in_a_batch_and_fused_equals_numpy(digits):
    ep = episodes(digits, [0, 1, 2], "meta_train")
    theta = {0: 0.03, 2: -0.1, 9: 0.005}
    batch = mn.adapt(mn.NetworkConfig(), theta, ep, n_samples=40)
    alone = mn.adapt(mn.NetworkConfig(), theta, ep.subset([1]), n_samples=40)
    plain = mn.adapt(mn.NetworkConfig(), theta, ep, n_samples=40, fused=False)
    for wb, wa, wp in zip(batch.weights, alone.weights, plain.weights, strict=True):
        np.testing.assert_allclose(wb[1], wa[0], rtol=0, atol=1e-13)
        np.testing.assert_allclose(wb, wp, rtol=0, atol=1e-13)


def test_bp_uses_the_forward_weights_as_feedback(digits):
    """With feedback="bp" the hidden errors are the backprop deltas: B plays no role."""
    ep = episodes(digits, [0], "meta_train")
    ws, bs = mn.init_weights(mn.NetworkConfig(), [0])
    other = [b * -3.0 for b in bs]
    cfg = mn.NetworkConfig(feedback="bp")
    a = mn.adapt(cfg, {0: 0.03}, ep, ws=ws, bs=bs, n_samples=30)
    b = mn.adapt(cfg, {0: 0.03}, ep, ws=ws, bs=other, n_samples=30)
    fa = mn.adapt(mn.NetworkConfig(), {0: 0.03}, ep, ws=ws, bs=bs, n_samples=30)
    for la, lb in zip(a.weights, b.weights, strict=True):
        np.testing.assert_array_equal(la, lb)
    assert not np.allclose(a.weights[0], fa.weights[0])


def test_fa_learns_and_bp_learns_more(digits):
    """Digits, 6 meta-training episodes: BP (theta0 0.03) far above FA (measured 0.86 vs 0.40 on 32 episodes)."""
    ep = episodes(digits, range(6), "meta_train")
    bp = mn.adapt(mn.NetworkConfig(feedback="bp"), {0: 0.03}, ep).query_accuracy.mean()
    fa = mn.adapt(mn.NetworkConfig(), {0: 0.03}, ep).query_accuracy.mean()
    assert bp > 0.75 and 0.25 < fa < bp - 0.2


# -- the circuit ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("activations", ["exact", "hardware"])
@pytest.mark.parametrize("theta", [{0: 0.03}, {0: 0.03, 9: 0.002}, {0: 0.02, mn.HEBB: -0.001, mn.OJA_LOCAL: 0.003}])
def test_reference_circuit_equals_numpy(two, theta, activations):
    """The IR circuit in the float reference and the numpy algorithm (chip form: clipped output, local Oja,
    bounded weights; exact or hardware softplus): the same weights after each of the first 12 images
    (measured: <= 3.3e-16)."""
    cfg = mc.CHIP_CONFIG.with_(activation=activations)
    th = mn.theta_vector(theta)
    circuit, schedule, weights = mc.episode_circuit(cfg, th, two)
    n = 12
    ref = neuro_hw.simulate(circuit, mc.stimuli(schedule, two, 5, n), mc.episode_steps(schedule, n), mc.DT,
                            weights=weights, weights_every=schedule.period, activations=activations)  # fmt: skip
    ws, bs = mn.init_weights(cfg, two.seeds)
    truth = mn.adapt(cfg, th, two, ws=mc.initial_weights(th, ws), bs=bs, record_first=n, n_samples=n)
    rows = slice(mc.sample_record_index(0), mc.sample_record_index(n - 1) + 1)
    for layer in range(5):
        got = ref.weights[f"w{layer + 1}.w"][:, rows]
        assert got.shape == truth.weights_first[layer].shape
        assert np.abs(got - truth.weights_first[layer]).max() < 1e-12
    assert np.abs(truth.weights_first[0][:, -1] - ws[0]).max() > 1e-3  # it learned


def test_schedule_and_compiled_form():
    ws, bs = mn.init_weights(mc.CHIP_CONFIG, [0])
    box = mc.GainBox(0.05, 0.003, 0.003)
    circuit, schedule = mc.build_circuit(mc.CHIP_CONFIG, {0: 0.03}, [w[0] for w in ws], [b[0] for b in bs], box)
    assert (schedule.hold, schedule.gap, schedule.period) == (8, 4, 12)
    assert {k: schedule.latencies[k] for k in ("y1", "y4", "p", "err", "e4", "e1", "m1", "m5", "q3")} == {
        "y1": 1, "y4": 4, "p": 5, "err": 6, "e4": 7, "e1": 10, "m1": 11, "m5": 7, "q3": 9}  # fmt: skip
    program = neuro_hw.compile(circuit, dt=mc.DT, **mc.ChipRanges().compile_options(mc.CHIP_CONFIG, box))
    for layer in range(1, 6):
        lp = program.connections[f"w{layer}"].learning
        assert lp.pre_activity and lp.third_factor == {"y2": f"m{layer}+", "y3": f"m{layer}-", "y1": f"q{layer}"}
    assert "e1+" not in program.neurons  # errors are forward signals (no rails): only the modulators are railed


def test_chip_refuses_what_the_engine_cannot_express():
    ws, bs = mn.init_weights(mc.CHIP_CONFIG, [0])
    w0, b0 = [w[0] for w in ws], [b[0] for b in bs]
    with pytest.raises(RuleError, match="presynaptic error"):
        mc.build_circuit(mc.CHIP_CONFIG, {0: 0.03, 2: -0.1}, w0, b0)
    with pytest.raises(RuleError, match="subspace form needs"):
        mc.build_circuit(mc.CHIP_CONFIG.with_(oja="subspace"), {0: 0.03, 9: 0.01}, w0, b0)
    with pytest.raises(RuleError, match="softmax|output"):
        mc.build_circuit(mc.CHIP_CONFIG.with_(output="softmax"), {0: 0.03}, w0, b0)
    with pytest.raises(RuleError, match="gain box"):
        mc.build_circuit(mc.CHIP_CONFIG, {0: 0.2}, w0, b0, mc.GainBox(0.1, 0.0, 0.0))


def test_blank_steps_silence_the_hidden_layers(two):
    """During blank steps every hidden layer outputs exactly 0 (softplus(0) would not)."""
    circuit, schedule, weights = mc.episode_circuit(mc.CHIP_CONFIG.with_(activation="exact"), {0: 0.03}, two)
    ref = neuro_hw.simulate(circuit, mc.stimuli(schedule, two, 5, 3), mc.episode_steps(schedule, 3), mc.DT,
                            weights=weights, weights_every=10**6)  # fmt: skip
    period = schedule.period
    for layer in range(1, 5):
        y = ref.states[f"y{layer}.y"][0]
        # blank-driven steps of sample k: (k+1) * period + [hold + layer .. period + layer - 1] (1-based) -> rows
        for k in range(1, 3):
            rows = [k * period + schedule.hold + layer + j for j in range(schedule.gap)]
            assert np.all(y[rows] == 0.0), layer
            assert np.all(y[k * period + layer + 1] > 0.0)
    assert math.isclose(float(np.log1p(np.exp(-1000.0))), 0.0)
