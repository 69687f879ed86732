"""Evidence for the per-synapse plasticity mask design (docs/heterosynaptic.md §7): what Lava 0.10's
``LearningSparse`` (fixed_pt) does with absent synapses, against ``LearningDense`` with the same rule, spikes and
seed.  These tests pin Lava's behaviour that the design relies on; they run no neuro_hw code.

* absent synapses (not stored in the csr matrix) never learn and stay 0, and every present synapse equals
  LearningDense's, value for value, at every epoch (the learning randomness is one scalar stream per connection,
  consumed identically);
* a present synapse whose weight crosses 0 during learning stays present (explicit zero);
* a present synapse whose *initial* weight is 0 after Lava's truncation is removed for good
  (``truncate_weights`` calls ``eliminate_zeros`` on the first step, ``lava/utils/weightutils.py``).
"""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = [pytest.mark.lava, pytest.mark.slow]


def _run(kind: str, w0: np.ndarray, mask: np.ndarray, pre: np.ndarray, post: np.ndarray, rule: str) -> np.ndarray:
    """Weights after every 2-step epoch ``(epochs, n_post, n_pre)``: pre spikes ``pre`` (n_pre, T) into a plastic
    connection whose output goes to a sink; post spikes come from a LIF driven by ``post`` (n_post, T) through a
    fixed Dense, so both kinds see identical traces."""
    from lava.magma.core.learning.learning_rule import Loihi2FLearningRule
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc.dense.process import Dense, LearningDense
    from lava.proc.io.source import RingBuffer
    from lava.proc.lif.process import LIF
    from lava.proc.sparse.process import LearningSparse
    from scipy.sparse import csr_matrix

    n_post, n_pre = w0.shape
    lr = Loihi2FLearningRule(dw=rule, x1_impulse=16, x1_tau=8, y1_impulse=16, y1_tau=8, t_epoch=2, rng_seed=7)
    src, drv = RingBuffer(data=pre), RingBuffer(data=post)
    post_lif = LIF(shape=(n_post,), du=4095, dv=4095, vth=1)
    drive = Dense(weights=np.eye(n_post) * 100)
    drv.s_out.connect(drive.s_in)
    drive.a_out.connect(post_lif.a_in)
    sink = LIF(shape=(n_post,), du=0, dv=0, vth=10**6)
    if kind == "dense":
        conn = LearningDense(weights=w0.astype(float), learning_rule=lr)
    else:
        rows, cols = np.nonzero(mask)  # stored entries = the mask, zeros included (explicit)
        conn = LearningSparse(weights=csr_matrix((w0[rows, cols].astype(float), (rows, cols)), shape=w0.shape),
                              learning_rule=lr)  # fmt: skip
    src.s_out.connect(conn.s_in)
    conn.a_out.connect(sink.a_in)
    post_lif.s_out.connect(conn.s_in_bap)
    out = []
    try:
        for _ in range(pre.shape[1] // 2):
            src.run(condition=RunSteps(num_steps=2), run_cfg=Loihi2SimCfg(select_tag="fixed_pt"))
            w = conn.weights.get()
            out.append(w.toarray() if hasattr(w, "toarray") else np.asarray(w))
    finally:
        src.stop()
    return np.stack(out)


def test_learning_sparse_keeps_absent_synapses_and_equals_learning_dense_on_present_ones():
    rng = np.random.default_rng(0)
    n_pre, n_post, steps = 6, 4, 60
    pre = (rng.random((n_pre, steps)) < 0.3).astype(float)
    post = (rng.random((n_post, steps)) < 0.3).astype(float)
    mask = rng.random((n_post, n_pre)) < 0.5
    w0 = rng.integers(-60, 60, (n_post, n_pre))
    w0[np.abs(w0) < 2] = 4  # |w| >= 2: survives the MIXED truncation of the LSB
    w0 = w0 * mask
    rule = "2^-2*x1*y0 - 2^-2*y1*x0 + 2^-4*x1*y1*y0"
    dense = _run("dense", w0, mask, pre, post, rule)
    sparse = _run("sparse", w0, mask, pre, post, rule)
    assert np.abs(dense[:, ~mask]).max() > 0  # without a mask the absent synapses learn
    assert np.all(sparse[:, ~mask] == 0)
    np.testing.assert_array_equal(sparse[:, mask], dense[:, mask])
    assert np.sum(sparse[-1][mask] != dense[0][mask]) >= mask.sum() // 2  # and they did learn


def test_learning_sparse_present_synapse_through_zero_stays_but_an_initial_zero_is_dropped():
    mask = np.array([[1, 1, 0], [0, 1, 1]], bool)
    w0 = np.array([[6, 0, 0], [0, 2, 4]])  # (0, 1) is present with weight 0
    ones = np.ones((3, 40)), np.ones((2, 40))
    dense = _run("dense", w0, mask, ones[0], ones[1], "-2^0*y0*x0")
    sparse = _run("sparse", w0, mask, ones[0], ones[1], "-2^0*y0*x0")
    # (0, 0) and (1, 1) cross 0 and keep learning, as in LearningDense
    np.testing.assert_array_equal(sparse[:, [0, 1, 1], [0, 1, 2]], dense[:, [0, 1, 1], [0, 1, 2]])
    assert dense[-1, 0, 0] < 0 and dense[-1, 1, 1] < 0
    # the present synapse stored with weight 0 is gone: it never learns
    assert np.all(sparse[:, 0, 1] == 0) and dense[-1, 0, 1] < 0
