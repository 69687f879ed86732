"""Neuron stage of the compiler: NIR neuron nodes -> Lava's fixed-point LIF, with scales and biases.

Lava's LIF (``PyLifModelBitAcc``; widths in ``targets/loihi2.toml``)::

    u[t] = u[t-1] * (4096 - du - 1)/4096 + (a[t] << 6)        a = sum of weighted inputs (<< weight_exp)
    v[t] = v[t-1] * (4096 - dv)/4096 + u[t] + bias            spike if v > vth << 6, then v = 0

Node by node (``a_m = exp(-dt/tau_mem)``, ``a_s = exp(-dt/tau_syn)``, primes = the represented decays):

* LIF / LI: ``du = 4095`` (u holds only this step's input), ``dv ~ 4096 (1 - a_m)``; an input ``x`` adds
  ``g x`` to ``v`` per step with gain ``g = r (1 - a_m')`` (exactly the reference's exponential
  integrator for zero-order-hold input).
* CubaLIF / CubaLI: ``du ~ 4096 (1 - a_s) - 1``, ``dv`` as above; ``g = r w_in (1 - a_s')(1 - a_m')`` gives
  the reference's steady state; the impulse response is the discrete double exponential of the
  decays, with the input reaching ``v`` in its own step (the reference integrates the current within
  the step exactly): both responses are in the report (``<pop>.impulse_response``), and a deviation of
  more than 10 % of the reference's peak is a note (:func:`cuba_impulse_responses`).
* IF / I: ``du = 4095``, ``dv = 0``, ``g = r dt``.
* ``v_reset`` != 0 is handled exactly by shifting the voltage origin: ``v' = v - v_reset`` (threshold
  ``v_thr - v_reset``, leak ``v_leak - v_reset``, initial ``v' = -v_reset``).
* The leak toward ``v_leak`` becomes the bias ``(v_leak - v_reset)(1 - a_m')`` per step; an Affine bias
  ``b`` adds ``g b`` (CubaLIF: ``g b / (1 - a_s')``, the steady-state equivalent).

Scales: each neuron ``i`` gets ``S_i`` integers per voltage unit with ``S_i = 64 vth / (v_thr,i - v_reset,i)``
so that one integer threshold ``vth`` (Lava has one per population) serves heterogeneous thresholds.
``vth`` starts at ``vth_max / 2**headroom`` and is lowered only if a weight cannot be represented with the
largest weight exponent (:func:`threshold_integer`).  Non-spiking nodes use a nominal threshold of 1
voltage unit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from neuro_hw.compiler.program import NeuronProgram
from neuro_hw.compiler.quantize import bias_mant_exp, decay_to_int, round_half_away
from neuro_hw.compiler.report import ParameterReport, Report
from neuro_hw.compiler.target import Target
from neuro_hw.errors import UnsupportedNodeError, ValidationError
from neuro_hw.ir.circuit import SPIKING_TYPES, Circuit


@dataclass
class NeuronModel:
    """A population's float parameters in the chip's LIF form (per neuron unless scalar).

    ``dv``/``du`` are the 12-bit decays and ``a_m_q``/``a_s_q`` the decay factors they represent;
    ``gain`` is the voltage added per step by a unit input; ``theta`` the threshold above the (shifted)
    reset level; ``leak_bias`` the per-step leak toward ``v_leak``, all in the node's voltage units.
    """

    name: str
    kind: str
    n: int
    dv: int
    du: int
    a_m: np.ndarray
    a_s: np.ndarray
    a_m_q: float
    a_s_q: float
    gain: np.ndarray
    theta: np.ndarray
    v_reset: np.ndarray
    leak_bias: np.ndarray

    @property
    def cuba(self) -> bool:
        return self.kind.startswith("Cuba")


def _flat(node, attr: str, n: int) -> np.ndarray:
    return np.broadcast_to(np.asarray(getattr(node, attr), dtype=np.float64).reshape(-1), (n,)).astype(np.float64)


def neuron_model(circuit: Circuit, name: str, target: Target, dt: float, report: Report) -> NeuronModel:
    """Map neuron node ``name`` onto the chip's LIF form (refusing per-neuron decays the chip cannot hold)."""
    node = circuit.nodes[name]
    kind = circuit.type_of(name)
    n = circuit.size(name)
    nf = target.neuron
    if kind in ("LIF", "LI"):
        a_m = np.exp(-dt / _flat(node, "tau", n))
        a_s = np.zeros(n)
    elif kind in ("CubaLIF", "CubaLI"):
        a_m = np.exp(-dt / _flat(node, "tau_mem", n))
        a_s = np.exp(-dt / _flat(node, "tau_syn", n))
    else:  # IF, I
        a_m = np.ones(n)
        a_s = np.zeros(n)
    for label, a, offset in (("dv", a_m, 0), ("du", a_s, nf.current_decay_offset)):
        ints = {decay_to_int(float(x), nf.decay_unity, offset, nf.decay_max)[0] for x in a}
        if len(ints) > 1:
            raise UnsupportedNodeError(
                f"{target.name} has one {label} per population but the time constants of this node map to "
                f"{sorted(ints)}; split the node into populations with equal time constants",
                node=name,
                field="tau_syn" if label == "du" else ("tau_mem" if kind.startswith("Cuba") else "tau"),
            )
    dv, a_m_q = decay_to_int(float(a_m[0]), nf.decay_unity, 0, nf.decay_max)
    du, a_s_q = decay_to_int(float(a_s[0]), nf.decay_unity, nf.current_decay_offset, nf.decay_max)
    if kind in ("LIF", "LI", "IF", "I"):
        du, a_s_q = nf.decay_max, 0.0  # u carries only the current step's input
    r = _flat(node, "r", n)
    if kind in ("LIF", "LI"):
        gain = r * (1 - a_m_q)
    elif kind in ("CubaLIF", "CubaLI"):
        gain = r * _flat(node, "w_in", n) * (1 - a_s_q) * (1 - a_m_q)
    else:
        gain = r * dt
    v_reset = _flat(node, "v_reset", n) if kind in SPIKING_TYPES else np.zeros(n)
    if kind in SPIKING_TYPES:
        theta = _flat(node, "v_threshold", n) - v_reset
        if np.any(theta <= 0):
            raise ValidationError(
                "v_threshold must exceed v_reset on this target (the neuron would fire every step)",
                node=name,
                field="v_threshold",
            )
    else:
        theta = np.ones(n)
    leak = (_flat(node, "v_leak", n) - v_reset) * (1 - a_m_q) if kind not in ("IF", "I") else np.zeros(n)
    if np.any(gain == 0):
        report.notes.append(f"{name}: some neurons have zero input gain (r = 0 or w_in = 0)")
    return NeuronModel(name, kind, n, dv, du, a_m, a_s, a_m_q, a_s_q, gain, theta, v_reset, leak)


def step_bias(model: NeuronModel, affine_bias: np.ndarray | None) -> np.ndarray:
    """The per-step bias added to ``v`` (voltage units, per neuron): the leak toward ``v_leak`` plus the Affine
    bias ``b`` times the input gain (CubaLIF: ``g b / (1 - a_s')``, its steady-state equivalent)."""
    affine = np.asarray(0.0 if affine_bias is None else affine_bias, dtype=np.float64)
    return model.leak_bias + model.gain * affine / (1 - model.a_s_q if model.cuba else 1.0)


#: Relative deviation (of the reference's peak) of a current-based neuron's impulse response that gets a note.
IMPULSE_NOTE_THRESHOLD = 0.10


def cuba_impulse_responses(a_s: float, a_m: float, a_s_q: float, a_m_q: float, steps: int) -> tuple[np.ndarray, ...]:
    """``(reference, chip)``: ``v`` after one unit input step (``r w_in = 1``) of a current-based neuron, steps
    ``1..steps``.  Reference (exact integration, :mod:`neuro_hw.reference.neurons`): ``v_1 = 1 - a_m - k``,
    then ``v_n = a_m v_{n-1} + k (1 - a_s) a_s^(n-2)``, ``k = tau_s (a_s - a_m) / (tau_s - tau_m)``.  Chip
    (Lava's LIF, gain ``g = (1 - a_s')(1 - a_m')`` for the same steady state): ``u_n = g a_s'^(n-1)``,
    ``v_n = a_m' v_{n-1} + u_n`` -- the input reaches ``v`` within its own step, the reference's only gradually.
    """
    ref, chip = np.zeros(steps), np.zeros(steps)
    if abs(a_s - a_m) <= 1e-6 * max(a_s, a_m):
        lam = -1.0 / math.log(a_m) if 0 < a_m < 1 else 0.0  # tau / dt
        k = a_m / lam if lam else 0.0
    else:
        ts, tm = -1.0 / math.log(a_s) if 0 < a_s < 1 else 0.0, -1.0 / math.log(a_m) if 0 < a_m < 1 else 0.0
        k = ts * (a_s - a_m) / (ts - tm) if ts != tm else 0.0
    g = (1 - a_s_q) * (1 - a_m_q)
    v_ref, v_chip, u = 1 - a_m - k, 0.0, 0.0
    for n in range(steps):
        if n:
            v_ref = a_m * v_ref + k * (1 - a_s) * a_s ** (n - 1)
        u = a_s_q * u + (g if n == 0 else 0.0)
        v_chip = a_m_q * v_chip + u
        ref[n], chip[n] = v_ref, v_chip
    return ref, chip


def threshold_integer(
    model: NeuronModel,
    weight_ranges: list[np.ndarray],
    target: Target,
    report: Report,
    bias: np.ndarray | None = None,
    bias_sources: tuple[str, ...] = (),
) -> int:
    """The population's integer threshold: the target's cap, lowered only as far as needed for every
    incoming weight (``weight_ranges``: per connection, the largest |w| per post neuron) to fit the
    weight format at the largest weight exponent, ``|W_int| = |w| g vth / (theta 2^e) <= magnitude_max`` at
    ``e = exp_max``, and for the per-step ``bias`` (:func:`step_bias`) to fit the bias format,
    ``|bias| 2^shift vth / theta <= bias_mant_max << bias_exp_max``.  ``bias_sources``: the Affine nodes that
    contribute to the bias (named when it cannot fit)."""
    nf, wf = target.neuron, target.weights
    vth_cap = nf.vth_max >> nf.threshold_headroom_bits
    limit = float(vth_cap)
    reason = ""
    for ref in weight_ranges:
        worst = float((ref * np.abs(model.gain) / model.theta).max(initial=0.0))
        if worst > 0 and wf.magnitude_max * 2.0**wf.exp_max / worst < limit:
            limit, reason = wf.magnitude_max * 2.0**wf.exp_max / worst, "weights"
    if limit < 1:
        raise ValidationError(
            f"weights into {model.name!r} are too large relative to its threshold to fit "
            f"{wf.bits}-bit weights with exponent <= {wf.exp_max}",
            node=model.name,
        )
    bias_max = nf.bias_mant_max * 2.0**nf.bias_exp_max  # the largest bias integer
    if bias is not None and np.any(bias != 0):
        need = np.abs(bias) * 2.0**nf.activation_shift / model.theta  # bias integers per unit of vth
        i = int(np.argmax(need))
        if bias_max / need[i] < 1:
            source = (
                f"the Affine bias of {', '.join(repr(s) for s in bias_sources)}"
                if bias_sources and np.any(np.abs(model.leak_bias) < np.abs(bias))
                else "the leak toward v_leak"
            )
            raise ValidationError(
                f"the per-step bias of neuron {i} ({bias[i]:.6g} voltage units, {need[i]:.4g} times the "
                f"threshold integer) cannot fit the {nf.bias_mant_bits}-bit bias mantissa << {nf.bias_exp_max} "
                f"({bias_max:.6g}) even at the smallest threshold integer 1; it comes from {source}",
                node=bias_sources[0] if bias_sources and "Affine" in source else model.name,
                field="bias" if "Affine" in source else "v_leak",
            )
        if bias_max / need[i] < limit:
            limit, reason = bias_max / need[i], "biases"
    vth = int(math.floor(limit))
    if vth < vth_cap:
        note = f"{model.name}: threshold integer lowered to {vth} (cap {vth_cap}) so that its {reason} fit"
        report.notes.append(note)
    return vth


def voltage_scale(model: NeuronModel, vth: int, target: Target) -> np.ndarray:
    """Integers per voltage unit, per neuron: ``S_i = 2**activation_shift * vth / theta_i``."""
    return 2.0**target.neuron.activation_shift * vth / model.theta


def neuron_program(
    model: NeuronModel,
    vth: int,
    affine_bias: np.ndarray | None,
    shape: tuple[int, ...],
    target: Target,
    report: Report,
) -> NeuronProgram:
    """The integer population (biases as mantissa/exponent, shifted initial voltage) and its report rows."""
    nf = target.neuron
    S = voltage_scale(model, vth, target)
    bias_float = step_bias(model, affine_bias)
    if affine_bias is not None and model.cuba:
        report.notes.append(
            f"{model.name}: the Affine bias enters v directly (Lava bias), equivalent in steady state only"
        )
    mants, exps, represented = [], [], []
    for value in bias_float * S:
        try:
            m, e = bias_mant_exp(float(value), nf.bias_mant_max, nf.bias_exp_min, nf.bias_exp_max)
        except OverflowError as err:
            raise ValidationError(
                f"bias (leak or Affine bias) overflows the {nf.bias_mant_bits}-bit mantissa: {err}",
                node=model.name,
                field="v_leak",
            ) from None
        mants.append(m)
        exps.append(e)
        represented.append(m * 2.0**e)
    represented = np.asarray(represented) / S
    v_init = round_half_away(-model.v_reset * S).astype(np.int64)
    if np.any(np.abs(v_init) > nf.state_max):
        raise ValidationError("v_reset is too large for the 24-bit voltage", node=model.name, field="v_reset")
    rep = report.parameters
    rep.append(
        ParameterReport.of(
            f"{model.name}.dv", model.a_m, np.full(1, model.dv), np.full(1, model.a_m_q), unit="decay/step"
        )
    )
    if model.cuba:
        rep.append(
            ParameterReport.of(
                f"{model.name}.du", model.a_s, np.full(1, model.du), np.full(1, model.a_s_q), unit="decay/step"
            )
        )
        a_s, a_m = float(model.a_s[0]), float(model.a_m[0])
        horizon = int(min(10_000, max(20, 8 / max(1e-12, 1 - max(a_s, a_m)))))
        ref, chip = cuba_impulse_responses(a_s, a_m, model.a_s_q, model.a_m_q, horizon)
        rep.append(ParameterReport.of(f"{model.name}.impulse_response", ref, np.arange(horizon), chip, unit="v/input"))
        worst = int(np.argmax(np.abs(chip - ref)))
        deviation = abs(chip[worst] - ref[worst]) / max(float(ref.max()), 1e-300)
        if deviation > IMPULSE_NOTE_THRESHOLD:
            report.notes.append(
                f"{model.name}: after one input step the chip's v deviates from the reference's by up to "
                f"{deviation:.0%} of the reference's peak (step {worst + 1}: {chip[worst]:.3g} vs {ref[worst]:.3g} "
                f"per unit input; peaks {chip.max():.3g} at step {int(np.argmax(chip)) + 1} vs {ref.max():.3g} at "
                f"step {int(np.argmax(ref)) + 1}; the steady state matches): Lava adds an input to v within its "
                "step, the exact reference integrates the synaptic current first, so spike times and counts "
                "differ on bursts when tau_syn is a few steps"
            )
    theta_q = vth * 2.0**nf.activation_shift / S
    rep.append(ParameterReport.of(f"{model.name}.vth", model.theta, np.full(1, vth), theta_q, unit="v"))
    if np.any(bias_float != 0):
        rep.append(ParameterReport.of(f"{model.name}.bias", bias_float, np.asarray(mants), represented, unit="v/step"))
    return NeuronProgram(
        name=model.name,
        n=model.n,
        du=model.du,
        dv=model.dv,
        vth=vth,
        bias_mant=np.asarray(mants),
        bias_exp=np.asarray(exps),
        u_init=np.zeros(model.n),
        v_init=v_init,
        shape=shape,
        v_scale=S,
        v_offset=model.v_reset,
    )
