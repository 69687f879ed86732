"""Compare two Results of the same circuit: exact (first divergence) or statistical (tolerance profile).

* **exact** (emulator vs Lava fixed_pt, or a run vs its golden trace): every spike, state and synaptic
  variable must be equal; the report gives the first divergence ``(step, node, variable, index, a, b)``
  and the number of mismatching values.
* **statistical** (fixed point vs the float reference): per population the spike-count error, van Rossum
  distance, Jaccard index and cosine similarity of time-averaged activity; per plastic synapse the RMSE
  (relative to the largest reference weight) and the angle of the final weights, and the weight *change*
  ``dw = w_final - w_initial`` of each side: its cosine similarity and the relative error of its size
  ``| ||dw_b|| - ||dw_a|| | / ||dw_a||``; optionally a task metric.  A **profile** holds the thresholds and
  gives the verdict.

Why the weight change: final weights are dominated by the initial ones, so they cannot tell a run that
learned from one that did not.  In the STDP circuit (``stdp_circuit(n_in=10, n_out=3)``, 800 steps) the
unlearned initial weights are only 3.3 deg and 7.9 % RMSE away from the reference's learned ones, inside
the final-weight limits; their change has cosine 0 and size error 100 %.  The change is judged only when
the reference changed its weights by at least ``min_weight_change_rel`` (RMS, relative to its largest
weight): smaller changes are a few 8-bit LSBs, where direction and size are quantisation noise (the
final-weight checks still apply).

Profiles (``PROFILES``), all user-overridable (``compare(a, b, "fixed-vs-float", min_activity_cosine=0.9)``):

==================  =====================================================================================
``exact``           bit-for-bit equality of everything both results recorded
``fixed-vs-float``  spike-count error <= 10 %, activity cosine >= 0.95, weight angle <= 15 deg,
                    weight RMSE <= 10 % of the largest weight, weight-change cosine >= 0.75 and size
                    error <= 35 % (judged if the reference changed >= 1 %), task metric within 0.05
``strict``          spike-count error <= 2 %, cosine >= 0.99, angle <= 5 deg, RMSE <= 2 %, weight-change
                    cosine >= 0.95 and size error <= 10 %, task <= 0.01
==================  =====================================================================================

Where the ``fixed-vs-float`` weight-change limits come from: genuine fixed-point runs (emulator, bit-exact
with Lava fixed_pt) of the STDP circuits the tests use -- ``stdp_circuit`` with 10x3 (600 steps x 2 trials
and 800 steps), 20x4 and 40x2 (2000 steps), 20 input seeds x 3 run seeds each, 237 of 240 runs above the
1 % gate -- gave weight-change cosines 0.83-1.00 (1st percentile 0.90) and size errors 0.0-22 %; an
unlearned run gives 0 and 100 %.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np

from neuro_hw.compare import metrics
from neuro_hw.errors import InputError
from neuro_hw.result import Result


@dataclass(frozen=True)
class Profile:
    name: str
    mode: str  # "exact" or "statistical"
    max_spike_count_error: float = 0.10
    min_activity_cosine: float = 0.95
    max_weight_angle_deg: float = 15.0
    max_weight_rmse_rel: float = 0.10
    min_weight_change_cosine: float = 0.75
    max_weight_change_error: float = 0.35
    min_weight_change_rel: float = 0.01  # judge the change only if the reference's RMS change is this large
    max_task_difference: float = 0.05
    van_rossum_tau_steps: float = 10.0
    jaccard_window: int = 1


PROFILES: dict[str, Profile] = {
    "exact": Profile("exact", "exact"),
    "fixed-vs-float": Profile("fixed-vs-float", "statistical"),
    "strict": Profile(
        "strict",
        "statistical",
        max_spike_count_error=0.02,
        min_activity_cosine=0.99,
        max_weight_angle_deg=5.0,
        max_weight_rmse_rel=0.02,
        min_weight_change_cosine=0.95,
        max_weight_change_error=0.10,
        max_task_difference=0.01,
    ),
}


@dataclass
class Divergence:
    """The first place two exact runs differ (``step`` is 1-based; 0 = initial weights)."""

    step: int
    node: str
    variable: str
    index: tuple[int, ...]
    a: float
    b: float

    def __str__(self) -> str:
        where = f"step {self.step}, node '{self.node}', variable '{self.variable}', index {self.index}"
        return f"{where}: {self.a} != {self.b}"


@dataclass
class Comparison:
    profile: Profile
    a_backend: str
    b_backend: str
    passed: bool
    failures: list[str] = field(default_factory=list)
    first_divergence: Divergence | None = None
    mismatches: int = 0
    compared_values: int = 0
    population_metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    weight_metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    task: dict[str, float] = field(default_factory=dict)
    only_in_one: list[str] = field(default_factory=list)

    def report(self) -> str:
        lines = [
            f"comparison {self.a_backend} vs {self.b_backend} (profile '{self.profile.name}'): "
            + ("PASS" if self.passed else "FAIL")
        ]
        if self.profile.mode == "exact":
            lines.append(f"  {self.mismatches} of {self.compared_values} values differ")
            if self.first_divergence:
                lines.append(f"  first divergence: {self.first_divergence}")
            if self.only_in_one:
                lines.append(f"  recorded by one side only (not compared): {', '.join(self.only_in_one)}")
        for pop, m in self.population_metrics.items():
            lines.append(
                f"  {pop:<20} spikes {int(m['spikes_a'])} vs {int(m['spikes_b'])}  "
                f"count err {m['spike_count_error']:.3f} (per neuron {m['per_neuron_count_error']:.3f})  "
                f"cosine {m['activity_cosine']:.4f}  jaccard {m['jaccard']:.3f}  van Rossum {m['van_rossum']:.3f}"
            )
        for key, m in self.weight_metrics.items():
            lines.append(
                f"  {key:<20} final weights: RMSE {m['rmse']:.4g} ({m['rmse_rel']:.3%})  angle {m['angle_deg']:.2f} deg"
            )
            if "dw_cosine" not in m:
                lines.append(f"  {'':<20} weight change: not compared (the results share no two weight samples)")
                continue
            judged = m["dw_rms_rel"] >= self.profile.min_weight_change_rel
            lines.append(
                f"  {'':<20} weight change: cosine {m['dw_cosine']:.4f}  size error {m['dw_norm_error']:.3%}  "
                f"(reference RMS change {m['dw_rms_rel']:.3%} of its largest weight"
                + ("" if judged else f"; not judged, < {self.profile.min_weight_change_rel:.0%}")
                + ")"
            )
        for name, value in self.task.items():
            lines.append(f"  task {name}: {value:.4g}")
        lines += [f"  FAIL: {f}" for f in self.failures]
        return "\n".join(lines)


def _time_keys(r: Result) -> dict[tuple[str, str], tuple[np.ndarray, np.ndarray]]:
    """(node, variable) -> (values with time on axis 1, step of each time index)."""
    out = {}
    steps = np.arange(1, r.steps + 1)
    for node, s in r.spikes.items():
        out[(node, "spikes")] = (s, steps)
    for key, s in r.states.items():
        node, _, var = key.rpartition(".")
        out[(node, var)] = (s, steps)
    for key, w in r.weights.items():
        node, _, var = key.rpartition(".")
        out[(node, var)] = (w, np.asarray(r.weight_steps[key]))
    return out


def _exact(a: Result, b: Result, comparison: Comparison) -> None:
    ka, kb = _time_keys(a), _time_keys(b)
    first: Divergence | None = None
    for key in sorted(set(ka) & set(kb)):
        (va, sa), (vb, sb) = ka[key], kb[key]
        common = np.intersect1d(sa, sb)
        ia, ib = np.searchsorted(sa, common), np.searchsorted(sb, common)
        xa, xb = np.take(va, ia, axis=1), np.take(vb, ib, axis=1)
        if xa.shape != xb.shape:
            comparison.failures.append(f"{key[0]}.{key[1]}: shapes differ {xa.shape} vs {xb.shape}")
            continue
        differ = xa != xb
        comparison.compared_values += differ.size
        n = int(differ.sum())
        if not n:
            continue
        comparison.mismatches += n
        where = np.argwhere(differ)
        # earliest time index, then lowest trial/element
        order = np.lexsort(tuple(where[:, i] for i in reversed(range(where.shape[1]))) + (where[:, 1],))
        trial, t, *idx = where[order[0]]
        step = int(common[t])
        if first is None or step < first.step:
            first = Divergence(
                step,
                key[0],
                key[1],
                (int(trial), *map(int, idx)),
                xa[(trial, t, *idx)].item(),
                xb[(trial, t, *idx)].item(),
            )
    comparison.first_divergence = first
    missing = sorted(set(ka) ^ set(kb))
    if comparison.mismatches:
        comparison.failures.append(f"{comparison.mismatches} values differ; first at {first}")
    if not comparison.compared_values:
        comparison.failures.append("the two results have no recorded quantity in common")
    comparison.only_in_one = [f"{n}.{v}" for n, v in missing]


def _statistical(a: Result, b: Result, comparison: Comparison, p: Profile) -> None:
    for pop in sorted(set(a.spikes) & set(b.spikes)):
        sa, sb = a.spikes[pop], b.spikes[pop]
        m = {
            "spikes_a": float((sa != 0).sum()),
            "spikes_b": float((sb != 0).sum()),
            "spike_count_error": metrics.spike_count_error(sa, sb),
            "per_neuron_count_error": metrics.per_neuron_count_error(sa, sb),
            "activity_cosine": metrics.activity_cosine(sa, sb),
            "jaccard": metrics.jaccard(sa, sb, window=p.jaccard_window),
            "van_rossum": metrics.van_rossum_distance(sa, sb, p.van_rossum_tau_steps),
        }
        comparison.population_metrics[pop] = m
        if m["spike_count_error"] > p.max_spike_count_error:
            comparison.failures.append(
                f"{pop}: spike-count error {m['spike_count_error']:.3f} > {p.max_spike_count_error}"
            )
        if m["activity_cosine"] < p.min_activity_cosine:
            comparison.failures.append(f"{pop}: activity cosine {m['activity_cosine']:.4f} < {p.min_activity_cosine}")
    for key in sorted(set(a.weights) & set(b.weights)):
        if not key.endswith(".w") or a.weights[key].shape[1] < 2 and b.weights[key].shape[1] < 2:
            continue  # static weights are compared by the compile report, not here
        fa, fb = a.in_float_units(key), b.in_float_units(key)
        wa, wb = fa[:, -1], fb[:, -1]
        scale = float(np.abs(wa).max()) or 1.0
        m = {
            "rmse": metrics.weight_rmse(wa, wb),
            "rmse_rel": metrics.weight_rmse(wa, wb) / scale,
            "angle_deg": metrics.weight_angle_deg(wa, wb),
        }
        comparison.weight_metrics[key] = m
        if m["angle_deg"] > p.max_weight_angle_deg:
            comparison.failures.append(f"{key}: final-weight angle {m['angle_deg']:.2f} deg > {p.max_weight_angle_deg}")
        if m["rmse_rel"] > p.max_weight_rmse_rel:
            comparison.failures.append(f"{key}: final-weight RMSE {m['rmse_rel']:.3%} > {p.max_weight_rmse_rel:.0%}")
        # the weight change over the samples both sides have (normally step 0, the initial weights, to the end)
        sa, sb = np.asarray(a.weight_steps[key]), np.asarray(b.weight_steps[key])
        common = np.intersect1d(sa, sb)
        if common.size < 2:
            continue
        (ia0, ia1), (ib0, ib1) = np.searchsorted(sa, common[[0, -1]]), np.searchsorted(sb, common[[0, -1]])
        dwa, dwb = fa[:, ia1] - fa[:, ia0], fb[:, ib1] - fb[:, ib0]
        m["dw_rms_rel"] = float(np.sqrt(np.mean(dwa**2))) / scale
        m["dw_cosine"] = metrics.weight_change_cosine(dwa, dwb)
        m["dw_norm_error"] = metrics.weight_change_norm_error(dwa, dwb)
        if m["dw_rms_rel"] < p.min_weight_change_rel:
            continue  # within a few LSBs: direction and size of the change are quantisation noise
        if m["dw_cosine"] < p.min_weight_change_cosine:
            comparison.failures.append(
                f"{key}: weight-change cosine {m['dw_cosine']:.4f} < {p.min_weight_change_cosine} "
                f"(steps {int(common[0])}..{int(common[-1])})"
            )
        if m["dw_norm_error"] > p.max_weight_change_error:
            comparison.failures.append(
                f"{key}: weight-change size error {m['dw_norm_error']:.3%} > {p.max_weight_change_error:.0%} "
                f"(steps {int(common[0])}..{int(common[-1])})"
            )


def compare(
    a: Result,
    b: Result,
    profile: str | Profile = "exact",
    *,
    task: Callable[[Result], float] | None = None,
    **overrides,
) -> Comparison:
    """Compare ``b`` against ``a`` (the reference side) under a tolerance profile; see module docstring."""
    if isinstance(profile, str):
        if profile not in PROFILES:
            raise InputError(f"unknown profile {profile!r}; choose one of {sorted(PROFILES)}", field="profile")
        profile = PROFILES[profile]
    if overrides:
        unknown = set(overrides) - set(Profile.__dataclass_fields__)
        if unknown:
            raise InputError(f"unknown profile setting(s) {sorted(unknown)}", field="profile")
        profile = replace(profile, **overrides)
    if a.circuit_hash != b.circuit_hash:
        raise InputError(
            f"results are of different circuits ({a.circuit_hash[:12]} vs {b.circuit_hash[:12]})", field="circuit_hash"
        )
    if a.steps != b.steps or a.batch != b.batch:
        raise InputError(f"results differ in steps/batch ({a.steps}x{a.batch} vs {b.steps}x{b.batch})", field="steps")
    comparison = Comparison(profile, a.backend, b.backend, passed=False)
    if profile.mode == "exact":
        _exact(a, b, comparison)
    else:
        _statistical(a, b, comparison, profile)
    if task is not None:
        ta, tb = float(task(a)), float(task(b))
        comparison.task.update({"a": ta, "b": tb, "difference": abs(ta - tb)})
        if abs(ta - tb) > profile.max_task_difference:
            comparison.failures.append(
                f"task metric {tb:.4g} vs {ta:.4g} differs by more than {profile.max_task_difference}"
            )
    comparison.passed = not comparison.failures
    return comparison


def assert_equivalent(a: Result, b: Result, profile: str | Profile = "exact", **kwargs) -> Comparison:
    """:func:`compare` and raise ``AssertionError`` with the readable report unless it passes."""
    comparison = compare(a, b, profile, **kwargs)
    if not comparison.passed:
        raise AssertionError(comparison.report())
    return comparison
