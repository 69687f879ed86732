"""Weight stage of the compiler: a float connection -> integer weights in the target's weight format.

For a connection into a LIF population ``p`` (gain ``g_i``, voltage scale ``S_i`` per post neuron ``i``),
one unit of weight moves ``v`` by ``g_i S_i`` integers, i.e. ``g_i S_i / 2**activation_shift`` weight LSBs
at exponent 0 (Lava adds ``a << 6`` to ``u``); into a graded population's port, ``S_port`` integers of its
input sum (:mod:`.graded`).  A graded source sends ``S_src`` integers per float unit, so the **row gain**
(weight integers per unit weight at exponent 0) is ``g_i S_i / (2**activation_shift S_src)`` or
``S_port / S_src``.  The weight exponent is the smallest that fits the largest weight the connection must
represent (its initial weights, and ``w_bounds`` when plastic) into the magnitude bits; then::

    W_int = round(W * w_scale),   w_scale_i = row_gain_i / 2**weight_exp

clipped to the sign mode's range (saturations are counted in the report).  Mixed-sign weights use even
integers when the target drops the weight LSB for them (Lava's truncation is then exact).  A plastic
connection needs one coefficient for all its post neurons, so their gains must be equal.
"""

from __future__ import annotations

import math

import numpy as np

from neuro_hw.compiler.graph import Connection
from neuro_hw.compiler.program import SIGN_MODES
from neuro_hw.compiler.quantize import quantize_to_range, weight_exponent
from neuro_hw.compiler.report import ParameterReport, Report
from neuro_hw.compiler.target import Target
from neuro_hw.errors import RuleError, ValidationError
from neuro_hw.ir.plasticity import Plasticity


def weight_range(conn: Connection, spec: Plasticity | None, notes: list[str] | None = None) -> np.ndarray:
    """Per target row, the largest weight magnitude the connection must represent (initial weights, and
    ``w_bounds`` for a plastic connection; infinite bounds cover twice the largest initial weight, with a
    note appended to ``notes``)."""
    ref = np.abs(conn.weight).max(axis=1) if conn.weight.size else np.zeros(conn.weight.shape[0])
    if spec is None:
        return ref
    lo, hi = spec.w_bounds
    bound = max(abs(lo) if math.isfinite(lo) else 0.0, abs(hi) if math.isfinite(hi) else 0.0)
    if not (math.isfinite(lo) and math.isfinite(hi)):
        bound = max(bound, 2.0 * float(np.abs(conn.weight).max(initial=0.0)))
        if notes is not None:
            note = f"{conn.plastic}: infinite w_bounds; the weight format covers twice the initial largest weight"
            if note not in notes:
                notes.append(note)
    return np.maximum(ref, bound)


def sign_mode_of(conn: Connection, spec: Plasticity | None) -> str:
    """``excitatory``, ``inhibitory`` or ``mixed``: from ``w_bounds`` for plastic weights, else from the weights."""
    if spec is not None:
        lo, hi = spec.w_bounds
        return "excitatory" if lo >= 0 else ("inhibitory" if hi <= 0 else "mixed")
    W = conn.weight
    return "excitatory" if W.min(initial=0) >= 0 else ("inhibitory" if W.max(initial=0) <= 0 else "mixed")


def quantize_weights(
    conn: Connection,
    row_gain: np.ndarray,
    spec: Plasticity | None,
    target: Target,
    report: Report,
    spike_source: bool = False,
) -> tuple[np.ndarray, int, str, np.ndarray]:
    """``(W_int, weight_exp, sign_mode, w_scale)`` of ``conn`` for ``row_gain`` (weight integers per unit
    weight at exponent 0, per target row; see module doc); adds the report rows.

    With a negative exponent the chip shifts the *summed* input right (arithmetic shift, i.e. floor), so a
    lone spike of a binary source (``spike_source``) delivers ``floor(W_int / 2**-exp)`` integers, not
    ``W_int / 2**-exp``: the report gives that effective weight, and a note when weights deliver nothing."""
    wf = target.weights
    row_gain = np.broadcast_to(np.asarray(row_gain, dtype=np.float64), (conn.weight.shape[0],))
    if spec is not None and not np.allclose(row_gain, row_gain[0], rtol=1e-12, atol=0):
        raise RuleError(
            "the learning engine applies one coefficient per connection, but the post neurons have different "
            "gains or thresholds (r, tau, v_threshold); make them uniform",
            node=conn.plastic,
        )
    sign_mode = sign_mode_of(conn, spec)
    assert sign_mode in SIGN_MODES
    worst = float((weight_range(conn, spec, report.notes) * np.abs(row_gain)).max(initial=0.0))
    exp = weight_exponent(worst, 1.0, wf.magnitude_max, wf.exp_min, wf.exp_max)
    w_scale = (row_gain / 2.0**exp)[:, None]
    step = 2 if (sign_mode == "mixed" and wf.mixed_sign_drops_lsb) else 1
    mag = wf.magnitude_max
    lo_i, hi_i = {"mixed": (-mag - 1, mag), "excitatory": (0, mag), "inhibitory": (-mag, 0)}[sign_mode]
    q = quantize_to_range(conn.weight * w_scale / step, 1.0, -(-lo_i // step), hi_i // step)
    W_int = q.ints * step
    effective = W_int.astype(np.float64)
    if exp < 0 and spike_source:
        effective = np.floor(W_int / 2.0**-exp) * 2.0**-exp  # what one spike delivers after the shift
    represented = effective / np.where(w_scale == 0, 1.0, w_scale)
    report.parameters.append(
        ParameterReport.of(f"{conn.name}.weights", conn.weight, W_int, represented, q.saturated, unit="weight")
    )
    if q.saturated:
        report.notes.append(
            f"{conn.name}: {q.saturated} weights saturated at the {sign_mode} {target.weights.bits}-bit range"
        )
    vanish = int(np.count_nonzero((conn.weight != 0) & (W_int != 0) & (effective == 0)))
    if vanish:
        report.notes.append(
            f"{conn.name}: {vanish} of {int(np.count_nonzero(conn.weight))} nonzero weights deliver nothing for a "
            f"lone spike: the weight exponent {exp} shifts the summed input right by {-exp} bits and floors it "
            "(they count only when several inputs spike together); raise the target neuron's threshold scale "
            "or the weights"
        )
    lost = int(np.count_nonzero((conn.weight != 0) & (W_int == 0)))
    if lost and exp == wf.exp_min:
        report.notes.append(
            f"{conn.name}: {lost} of {int(np.count_nonzero(conn.weight))} nonzero weights round to 0 even at the "
            f"smallest weight exponent 2^{wf.exp_min} (the source's scale is too fine for the target's: fewer "
            "payload levels for the source, e.g. signal_levels=, or a larger range for the target)"
        )
    return W_int, exp, sign_mode, w_scale


def synaptic_delays(conn: Connection, target: Target) -> np.ndarray | None:
    """Per-synapse delays in steps (None when all are 0); refused beyond the target's longest delay."""
    if not np.any(conn.delay != 0):
        return None
    if conn.delay.max() > target.max_delay:
        raise ValidationError(
            f"synaptic delay of {int(conn.delay.max())} steps exceeds the target's {target.max_delay}",
            node=conn.name,
            field="delay",
        )
    return conn.delay
