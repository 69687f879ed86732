"""The seed-P2 precision sweep (:mod:`neuro_hw.circuits.heterosynaptic_precision`): its metrics on known weight
snapshots, its summary (mean +- s.e. over seeds, failed cells), the float-reference point against the numpy ground
truth, and (slow) one emulator point and a tiny sweep through ``neuro_hw.sweep``."""

from __future__ import annotations

import math

import numpy as np
import pytest

from neuro_hw.circuits import heterosynaptic as hc
from neuro_hw.circuits import heterosynaptic_numpy as hn
from neuro_hw.circuits import heterosynaptic_precision as hp
from neuro_hw.circuits.digits import load_digits_split, one_hot
from neuro_hw.circuits.heterosynaptic_run import hardware_setup


@pytest.fixture(scope="module")
def split():
    return load_digits_split()


def _snapshots(topo: hn.Topology, states: list[hn.State]) -> dict[str, np.ndarray]:
    """Weight snapshots in the layout of ``hc.recorded_weights`` (name -> (K, ...))."""
    out = {f"w{l}_{j}": np.stack([s.W[(l, j)] for s in states]) for (l, j) in topo.forward}
    out.update({f"v{l}_{m}": np.stack([s.V[(l, m)] for s in states]) for (l, m) in topo.feedback})
    return out


def test_metrics_of_an_exact_kolen_pollack_state(split):
    """V = W2^T in every snapshot: alignment 1, phi 1, DC 1, HS residual 0; a V that does not move has |dV| 0 and
    is reported frozen; one that moves by a known step has |dV| = |step|_F / every."""
    topo = hn.motif(64, 8, 10)
    params = hn.HeteroParams()
    state = hn.init_state(topo, params, 1)
    state.V[(1, 2)] = state.W[(2, 1)].T.copy()
    x, t = split.x_train[:100], one_hot(split.y_train[:100])
    m = hp.trial_metrics(topo, params, _snapshots(topo, [state] * 5), 10, x, t, split.x_test, split.y_test)
    assert m["alignment"] == pytest.approx(1.0, abs=1e-12) and m["alignment_last4"] == pytest.approx(1.0, abs=1e-12)
    assert m["phi"] == pytest.approx(1.0, abs=1e-12) and m["dc_positive"] == 1.0
    assert m["hs_residual"] < 1e-20 and m["v_drift"] == 0.0 and m["v_frozen"] == 1.0
    assert m["test_accuracy"] == pytest.approx(hn.accuracy(topo, params, state, split.x_test, split.y_test))
    # V moving by a fixed step per snapshot: drift = |step| / every, not frozen
    step = np.full_like(state.V[(1, 2)], 0.01)
    states = []
    for k in range(5):
        s = state.copy()
        s.V[(1, 2)] = state.V[(1, 2)] + k * step
        states.append(s)
    m2 = hp.trial_metrics(topo, params, _snapshots(topo, states), 10, x, t, split.x_test, split.y_test)
    assert m2["v_drift"] == pytest.approx(np.linalg.norm(step) / 10, rel=1e-12) and m2["v_frozen"] == 0.0
    # flipping V's sign flips the learning potential: phi -1, alignment -1
    state.V[(1, 2)] = -state.V[(1, 2)]
    m3 = hp.trial_metrics(topo, params, _snapshots(topo, [state] * 5), 10, x, t, split.x_test, split.y_test)
    assert m3["alignment"] == pytest.approx(-1.0, abs=1e-12) and m3["phi"] == pytest.approx(-1.0, abs=1e-12)
    assert m3["dc_positive"] == 0.0
    with pytest.raises(ValueError, match=">= 5 weight snapshots"):
        hp.trial_metrics(topo, params, _snapshots(topo, [state] * 4), 10, x, t, split.x_test, split.y_test)


def test_summary_means_standard_errors_and_failures():
    def row(backend, wb, tb, seed, acc, status="ok"):
        r = {"backend": backend, "seed": seed, "status": status, "param.target.weights.bits": wb,
             "param.target.learning.trace_bits": tb, "metric.test_accuracy": acc}  # fmt: skip
        if status != "ok":
            r.update({"error_type": "InputError", "error_message": "node 'd1', field 'signal_levels': too many"})
        return r

    rows = [row("reference", "", "", s, a) for s, a in enumerate((0.5, 0.6, 0.7))]
    rows += [row("emulator", 8, 7, s, a) for s, a in enumerate((0.4, 0.4, 0.7))]
    rows += [row("emulator", 4, 5, 0, "", status="error")]
    out = hp.summarize(rows)
    ref, w8 = out["cells"]["reference"], out["cells"]["w8_t7"]
    assert ref["n"] == 3 and ref["test_accuracy"]["mean"] == pytest.approx(0.6)
    assert ref["test_accuracy"]["se"] == pytest.approx(0.1 / math.sqrt(3))
    assert w8["test_accuracy"]["mean"] == pytest.approx(0.5) and w8["seeds"] == [0, 1, 2]
    assert w8["test_accuracy"]["se"] == pytest.approx(np.std([0.4, 0.4, 0.7], ddof=1) / math.sqrt(3))
    assert math.isnan(w8["alignment"]["mean"])  # a metric no row has
    assert "w4_t5" not in out["cells"] and "signal_levels" in out["failures"]["w4_t5"]


def test_reference_point_is_seeded_and_starts_from_the_numpy_state(split):
    """``precision_point`` on the float reference: the first snapshot is the numpy initial state of that seed (same
    monitors to 1e-12 on the same probe batch), the run is deterministic per seed, and V learns.  (The hardware form
    clips the error to +-1 and delta to +-0.5, so its trajectory is not numpy's: measured |dV| 0.01 after one
    sample; with wide ranges it equals numpy to < 1e-9, test_heterosynaptic.)"""
    n, seed = 40, 1
    (m,) = hp.precision_point({"n_samples": n, "every": 10, "n_probe": 100}, None, "reference", [seed])
    topo, spec, state, _, _ = hardware_setup(seed=seed)
    start = hn.probe(topo, spec.params, state, split.x_train[:100], one_hot(split.y_train[:100]))
    assert m["alignment_start"] == pytest.approx(start.alignment_all, abs=1e-12)
    assert m["v_drift"] > 0 and m["v_frozen"] == 0.0 and m["alignment"] != pytest.approx(m["alignment_start"])
    again = hp.precision_point({"n_samples": n, "every": 10, "n_probe": 100}, None, "reference", [seed, 2])
    assert again[0] == m and again[1]["alignment_start"] != m["alignment_start"]
    with pytest.raises(ValueError, match="unknown parameter"):
        hp.precision_point({"epochs": 1}, None, "reference", [0])
    with pytest.raises(ValueError, match="'reference' or 'emulator'"):
        hp.precision_point({}, None, "lava", [0])


@pytest.mark.slow  # the motif's step kernel: ~1 min to compile on a quiet machine when the cache is cold
def test_emulator_point_learns_and_low_widths_break(split, tmp_path):
    """A tiny sweep through neuro_hw.sweep (200 samples, seed 0): at Loihi 2's 8 x 7 bits V learns (nonzero
    drift) and the alignment rises from its start; at 4 weight bits the initial weights round to 0 and V is
    frozen (measured over 1347 samples and 3 seeds: docs/heterosynaptic.md)."""
    data = hp.run(tmp_path, (4, 8), (7,), (0,), 200, progress=False, every=40)
    assert not data["failures"]
    w8, w4 = data["cells"]["w8_t7"], data["cells"]["w4_t7"]
    assert w8["v_frozen"]["mean"] == 0.0 and w8["v_drift"]["mean"] > 0
    assert w8["alignment"]["mean"] > w8["alignment_start"]["mean"] + 0.1
    assert w4["v_frozen"]["mean"] == 1.0 and w4["test_accuracy"]["mean"] == pytest.approx(0.1, abs=0.02)
    assert (tmp_path / "heterosynaptic_precision.png").exists()
    assert (tmp_path / "heterosynaptic_precision" / "heterosynaptic_precision.csv").exists()
    # hc's compile options follow the trace width: 15 levels per feedback signal at 5 trace bits
    topo = hn.motif(64, 8, 10)
    assert hc.compile_options(hc.CircuitSpec(topo), 2**5 - 1)["signal_levels"]["d1"] == 15
