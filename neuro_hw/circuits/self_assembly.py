"""The self-assembling learning circuit (seed P1, reconstruction) as an IR circuit, in its Loihi 2 hardware form.

Same math as :mod:`neuro_hw.circuits.self_assembly_numpy` (the ground truth), built from the public API:
graded neurons, product neurons, ``Delay`` nodes and plastic ``Linear`` nodes with modulators.  Per hidden
layer ``j`` (``1 .. L-1``) the motif has four synapse types:

* **S1** ascending ``W_j``: ``h_j -> h_j+1`` (plastic; pre = forward activity ``h_j``, modulator = the
  descending activity ``g_j+1``);
* **S2** descending ``B_j``: ``g_j+1 -> g_j`` (plastic; pre = descending activity, modulator = ``h_j``);
* **S3** descending-to-ascending: ``g_j+1`` delivered to the post side of ``W_j`` (the modulator wire
  ``m_j+1``, a delayed copy so that it is read at the epoch's end);
* **S4** ascending-to-descending: ``h_j`` delivered to the descending neurons -- as the gate ``f'(a_j)`` of
  ``g_j`` (``h_j_gate``) and as the modulator of ``B_j`` (``xm_j``).

Both plastic rules carry the weight decay as a rule term, decimated so that the chip can represent it::

    W_j:  dw = -eta * x0 * m * x1          - eta*lam*2^k * u_k * w        x1 = h_j, m = g_j+1
    B_j:  dw = -eta * x0 * m * (x1 - c)    - eta*lam*2^k * u_k * w        x1 = g_j+1 + c, m = h_j  (hardware)
          dw = -eta * x0 * m * x1          - eta*lam*2^k * u_k * w        x1 = g_j+1              (direct)

**The hardware problem.**  Loihi 2's learning engine gives a synapse one pre population, whose graded payload
is both its forward input and its pre trace ``x1 = payload / 2`` -- 7 bits, **unsigned**.  ``W``'s update is
fine (``h >= 0``; the signed ``g`` is a modulator, carried on two rails ``y2``/``y3``), but ``B``'s pre factor
is the signed ``g``.  Splitting ``g`` into rails with two plastic copies of ``B`` breaks the Kolen–Pollack
cancellation (each copy sees only its rail's updates).  The **hardware form** (``form="hardware"``) sends ``g``
with an **offset** ``c`` instead: the population ``gp = clip(g + c, 0, 2c)`` is ``B``'s pre, the rule uses the
factor ``(x1 - c)``, and the forward offset ``B c`` is cancelled in time -- ``gp`` sends ``c`` alone one step
before ``g + c``, and ``g_j`` takes the difference of two successive outputs of ``B`` (``z_j``) through a
``Delay`` and ``+I`` / ``-I`` weights::

    step           G-1     G        G+1          G+2            G+3
    g_j+1          0       0        [g]           0              0         (a one-step pulse)
    phase_j+1      1       1        0             0              0         (host input: c on gp at G, G+1)
    gp_j+1         .       c        g + c         0              0         x1 := c, then g + c (held)
    z_j = B gp     .       .        B c           B (g + c)      0
    g_j                                                          [z(G+2) - z(G+1)] * f'(h_j) = f'(a_j) (B g)

Every signal of the descending stream is a one-step pulse: the gate ``f'(h_j)`` (``h_j`` delayed to step
``G+3``) is 0 at every other step, so the differences ``z(t) - z(t-1)`` around the pulse (``B c`` and
``-B(g + c)``) never leave ``g_j``.  The cost: one bit of ``g`` (``x1 - c`` spans ``±(trace_max // 2)``), a host
input, and three steps per layer.  ``form="direct"`` keeps the same timing with ``B``'s pre = ``g`` itself (a
signed pre; the float reference runs it, the compiler refuses it): in float both forms compute the
reconstruction (``tests/circuits/test_self_assembly.py`` checks both against numpy).

**Timing** (:class:`PulseSchedule`): every sample is a one-step pulse at the start of its learning epoch
(``period = t_epoch = 4L - 1``; 15 steps for 3 hidden layers), so every plastic synapse learns from the sample's
pre-update forward pass and the signals it caused, as the ground truth does (online, batch 1)::

    offset (1-based)   1     2 .. L       L+1    L+2         L+5 ... L+2+3(L-1) = 4L-1 = T
                       x     h_1..h_L-1   o      err = g_L   g_L-1 ... g_1                 <- learning at T

The forward pass uses ``W`` at offsets 1..L (after the previous sample's update), ``B_j`` is used at two
consecutive steps of the same epoch.  The modulators are read at the epoch's end: ``g_1`` arrives there;
``g_j+1`` (``j >= 1``) and ``h_j`` reach it through delayed copies ``m_j+1`` and ``xm_j``.

Ranges for the compiler (:class:`SignalRanges`): ``c_j`` per descending signal (``err``, ``g_L-1``, ...,
``g_1``), the output range; the payload levels follow from the target's trace width (:func:`compile_options`).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import nir
import numpy as np

from neuro_hw.circuits.self_assembly_numpy import SelfAssemblyParams
from neuro_hw.ir.circuit import Circuit
from neuro_hw.ir.graded import GradedNeuron, ProductNeuron

from .pulse_circuit import delay_node, error_head, present_pulses
from .pulse_circuit import shape as _shape

DT = 1e-3
FORMS = ("hardware", "direct")
#: Loihi 2's learning accumulator (8-bit weights + 7 fractional bits), the width :func:`rule_padding` restores.
REFERENCE_ACCUMULATOR_BITS = 15
MAX_RULE_PADDING = 16


@dataclass(frozen=True)
class PulseSchedule:
    """When each signal of a sample arrives (1-based offsets within the sample's period) for ``L`` weight layers.

    ``x`` at 1, ``h_l`` at ``1 + l``, ``o`` at ``L + 1``, ``err`` (= ``g_L``) at ``L + 2``, ``g_j`` at
    ``G_j = L + 2 + 3 (L - j)``; the period (``t_epoch``) is ``G_1 = 4L - 1``: learning happens at the step on
    which ``g_1`` arrives.  Sample ``k`` occupies steps ``kT + 1 .. kT + T``.
    """

    n_layers: int

    def __post_init__(self) -> None:
        if self.n_layers < 2:
            raise ValueError(f"the circuit needs at least 2 weight layers (one hidden layer), got {self.n_layers}")

    @property
    def period(self) -> int:
        return self.g_time(1)

    def g_time(self, j: int) -> int:
        """Offset of the descending pulse ``g_j`` (``j = L``: the error)."""
        L = self.n_layers
        if not 1 <= j <= L:
            raise ValueError(f"descending layer {j} outside 1..{L}")
        return L + 2 + 3 * (L - j)

    def h_time(self, layer: int) -> int:
        """Offset of the forward pulse ``h_layer`` (``0``: the input, ``L``: the output ``o``)."""
        return 1 + layer

    @property
    def target_time(self) -> int:
        """The target is presented with the output: ``err = o - target`` one step later."""
        return self.h_time(self.n_layers)

    def phase_times(self, j: int) -> tuple[int, int]:
        """The two steps on which host channel ``j - 2`` (for ``gp_j``, ``j = 2 .. L``) is 1."""
        g = self.g_time(j)
        return g - 1, g

    def steps(self, n_samples: int) -> int:
        return n_samples * self.period

    def learning_step(self, k: int) -> int:
        """The (1-based) step at whose end sample ``k``'s update is applied."""
        return (k + 1) * self.period

    def sample_step(self, k: int, offset: int) -> int:
        """The (1-based) step of sample ``k`` at ``offset``."""
        return k * self.period + offset

    def present(self, x: np.ndarray, t: np.ndarray, phase: bool = True) -> dict[str, np.ndarray]:
        """Stimuli for samples ``x`` (N, n_0) and targets ``t`` (N, n_L), or batched ``(B, N, ...)``: ``x`` pulses
        at offset 1, ``target`` at ``L + 1``, and (``phase``) the host input ``phase`` ``(T*N, L - 1)``."""
        offsets = [self.phase_times(j) for j in range(2, self.n_layers + 1)]
        return present_pulses(x, t, self.period, self.target_time, offsets if phase else None)


@dataclass(frozen=True)
class SignalRanges:
    """Declared ranges of the graded signals (float units).

    ``g``: the offset ``c_j`` = range of the descending signals ``(err, g_L-1, ..., g_1)`` (``L`` values);
    ``output``: range of ``o``; ``z_headroom``: the range of ``z_j = B_j (g + c)`` is ``z_headroom * c_j+1`` (forward
    only, 12 bits); ``input``/``input_levels``: the input's range and payload levels (None: the default, 254).
    """

    g: tuple[float, ...] = (1.0, 0.5, 0.5, 0.5)
    output: float = 1.5
    z_headroom: float = 16.0
    input: float = 1.0
    input_levels: int | None = 32
    target: float = 1.0


@dataclass(frozen=True)
class CircuitSpec:
    """What :func:`self_assembly_circuit` builds: the params, the ranges, the form and the decay decimation."""

    params: SelfAssemblyParams
    ranges: SignalRanges = field(default_factory=SignalRanges)
    form: str = "hardware"
    #: decay applied on epochs ``e`` with ``e % 2**decimation == 0`` (rule factor ``u_k``), ``2**k`` times stronger
    decimation: int = 0
    #: extra 1-bit ``x0`` factors in every gradient product (value unchanged: ``x0 = 1`` whenever the product is
    #: applied), widening it so that a wider accumulator still shifts it (:func:`rule_padding`)
    rule_padding: int = 0

    def __post_init__(self) -> None:
        if self.form not in FORMS:
            raise ValueError(f"form must be one of {FORMS}, got {self.form!r}")
        if len(self.ranges.g) != self.params.n_layers:
            raise ValueError(
                f"ranges.g needs {self.params.n_layers} values (err, g_{self.params.n_layers - 1} .. g_1), "
                f"got {len(self.ranges.g)}"
            )
        if not 0 <= self.decimation <= 9:
            raise ValueError(f"decimation must be in 0..9 (u0..u9), got {self.decimation}")
        if not 0 <= self.rule_padding <= MAX_RULE_PADDING:
            raise ValueError(f"rule_padding must be in 0..{MAX_RULE_PADDING}, got {self.rule_padding}")
        if self.params.decay_every != 2**self.decimation:
            raise ValueError(
                f"params.decay_every ({self.params.decay_every}) must be 2**decimation ({2**self.decimation}): the "
                "ground truth and the circuit must decay on the same samples"
            )

    def c(self, j: int) -> float:
        """Offset (= range) of the descending signal ``g_j`` (``j = L``: the error)."""
        return float(self.ranges.g[self.params.n_layers - j])


def rule_padding(target: object) -> int:
    """Extra 1-bit factors per gradient product that give ``target`` the product shift of a 15-bit accumulator.

    The engine shifts a product of total width ``W`` (bits, 4 of them the mantissa's) right by
    ``max(0, W - A)`` with ``A = weights.bits + 7`` the accumulator's width, and its smallest scaling factor is
    ``2^-7``; so a gradient term ``eta * x0 * m * x1`` changes a weight by at least ``2^-7`` LSB per unit of
    ``m_int * x1_int`` unless the product is shifted.  With 8 trace bits the product is
    ``W = 4 + 8 + 8 = 20`` bits wide: shifted by 5 at 8 weight bits (``A = 15``), 3 at 10, 1 at 12, 0 at 14.  The
    weight scale of ``W_1``, ``W_2`` (``h -> h``, equal payload scales) is pinned at ``2^8`` per unit by the
    weight exponent's floor ``2^-8`` whatever the weight width, so the coefficient ``eta * s_w / (s_x1 s_m)``
    the rule needs falls by ``2^(A - 15)`` below its 8-bit value (below ``2^-7``), and the compiler drops bits of
    the modulators to represent it (``m_j``: 127, 31, 7, 1 levels at 8, 10, 12, 14 weight bits).  ``A - 15``
    extra ``x0`` factors (1 bit each, value 1 whenever the ``x0``-gated product is applied) restore the 8-bit
    shift, so the coefficient and every modulator's levels are those of 8 weight bits.

    ``target``: a :class:`~neuro_hw.compiler.target.Target` or a target name."""
    from neuro_hw.compiler.target import Target, load_target

    tgt = target if isinstance(target, Target) else load_target(str(target))
    return max(0, int(tgt.learning.accumulator_bits) - REFERENCE_ACCUMULATOR_BITS)


def wide_weight_spec(spec: CircuitSpec, target: object, scales: bool = True) -> CircuitSpec:
    """``spec`` adapted to ``target``'s weight width (docs/self-assembly.md §4.4): :func:`rule_padding` extra
    ``x0`` factors, and -- when the accumulator is wider than Loihi 2's (more than 8 weight bits) and ``scales``
    -- twice the ``z`` headroom (``ranges.z_headroom``), which halves the payload scale of ``z_j = B_j gp`` and so
    ``B_j``'s weight scale: ``s_B = 2^-e * S_a(z) / S(gp)`` is 516 per unit at the exponent's floor ``e = -8``
    (8 bits: ``e = -7``, 257.6), twice ``W_j``'s 256.  With ``s_B ~ s_W`` (258 vs 256) the engine's one random
    number per learning epoch rounds the updates of ``W_j`` and ``B_j^T`` alike, as at 8 bits, and the
    Kolen-Pollack difference ``W - B^T`` is not driven by independent rounding errors.  At 8 weight bits the spec
    is returned unchanged (doubling the headroom there halves ``z``'s resolution for nothing)."""
    from dataclasses import replace

    pad = rule_padding(target)
    if pad == 0:
        return spec
    ranges = replace(spec.ranges, z_headroom=2 * spec.ranges.z_headroom) if scales else spec.ranges
    return replace(spec, rule_padding=pad, ranges=ranges)


def decay_term(params: SelfAssemblyParams, descending: bool, decimation: int, layer: int = 1) -> str:
    """The rule's decay term ``- eta*lam*2^k * u_k * w`` (empty when the decay is 0 or the ascending layer is below
    ``params.decay_from``)."""
    if not descending and layer < params.decay_from:
        return ""
    eta = params.eta_descending if descending else params.eta
    lam = params.lam_descending if descending else params.lam
    coefficient = eta * lam * 2**decimation
    if coefficient == 0:
        return ""
    return f" - {coefficient!r}*u{decimation}*w"


def self_assembly_circuit(spec: CircuitSpec, w: Sequence[np.ndarray], b: Sequence[np.ndarray | None],
                          dt: float = DT) -> tuple[Circuit, PulseSchedule]:  # fmt: skip
    """The circuit of the module doc with initial weights ``w[l]`` (n_l+1, n_l), ``b[l]`` (n_l, n_l+1) (``b[0]``
    unused) and its schedule (``t_epoch`` set to the period)."""
    p = spec.params
    L, sizes = p.n_layers, p.sizes
    sched = PulseSchedule(L)
    T = sched.period
    hardware = spec.form == "hardware"
    if len(w) != L or len(b) != L:
        raise ValueError(
            f"expected {L} matrices W_0..W_{L - 1} and B_0..B_{L - 1} (B_0 unused), got {len(w)}, {len(b)}"
        )

    def h(layer: int) -> str:
        return "x" if layer == 0 else ("o" if layer == L else f"h{layer}")

    def g(j: int) -> str:
        return "err" if j == L else f"g{j}"

    delay = functools.partial(delay_node, dt=dt)
    nodes, edges = error_head(sizes[0], sizes[L], L - 1, hardware)
    # ascending stream (S1)
    for layer in range(L):
        nodes[f"w{layer}"] = nir.Linear(np.asarray(w[layer], dtype=np.float64))
        if 0 < layer:
            nodes[h(layer)] = GradedNeuron(_shape(sizes[layer]), "clipped_relu", clip=p.c_h)
        edges += [(h(layer), f"w{layer}"), (f"w{layer}", h(layer + 1))]
    # descending stream: for j = L-1 .. 1, g_j = f'(h_j) * (B_j g_j+1)
    for j in range(L - 1, 0, -1):
        n_j, n_up = sizes[j], sizes[j + 1]
        c = spec.c(j + 1)
        gp, z = f"gp{j + 1}", f"z{j}"
        if hardware:
            nodes[gp] = GradedNeuron(_shape(n_up), "clipped_relu", clip=2 * c)
            ph = np.zeros((n_up, L - 1))
            ph[:, j + 1 - 2] = c
            nodes[f"phase_{gp}"] = nir.Linear(ph)
            edges += [("phase", f"phase_{gp}"), (f"phase_{gp}", gp)]
        else:
            nodes[gp] = GradedNeuron(_shape(n_up), "identity")
        nodes[f"{g(j + 1)}_{gp}"] = nir.Linear(np.eye(n_up))
        nodes[f"b{j}"] = nir.Linear(np.asarray(b[j], dtype=np.float64))
        nodes[z] = GradedNeuron(_shape(n_j), "identity")
        nodes[f"{z}_now"] = nir.Linear(np.eye(n_j))
        # S4: the forward activity h_j gates g_j at its pulse (delayed from 1 + j to G_j)
        nodes[f"h{j}_delay"] = delay(sched.g_time(j) - sched.h_time(j) - 1, n_j)
        nodes[f"h{j}_gate"] = nir.Linear(np.eye(n_j))
        nodes[g(j)] = ProductNeuron(
            _shape(n_j), gate_inputs=(f"h{j}_gate",), gate="clipped_relu_derivative", gate_clip=p.c_h
        )
        edges += [
            (g(j + 1), f"{g(j + 1)}_{gp}"), (f"{g(j + 1)}_{gp}", gp), (gp, f"b{j}"), (f"b{j}", z),
            (z, f"{z}_now"), (f"{z}_now", g(j)),
            (h(j), f"h{j}_delay"), (f"h{j}_delay", f"h{j}_gate"), (f"h{j}_gate", g(j)),
        ]  # fmt: skip
        if hardware:  # subtract B c, the output one step earlier
            nodes[f"{z}_delay"] = delay(1, n_j)
            nodes[f"{z}_before"] = nir.Linear(-np.eye(n_j))
            edges += [(z, f"{z}_delay"), (f"{z}_delay", f"{z}_before"), (f"{z}_before", g(j))]
        # S4: h_j held to the epoch's end, the modulator of B_j
        nodes[f"xm{j}_delay"] = delay(T - sched.h_time(j) - 1, n_j)
        nodes[f"xm{j}_in"] = nir.Linear(np.eye(n_j))
        nodes[f"xm{j}"] = GradedNeuron(_shape(n_j), "clipped_relu", clip=p.c_h)
        edges += [(h(j), f"xm{j}_delay"), (f"xm{j}_delay", f"xm{j}_in"), (f"xm{j}_in", f"xm{j}")]
        # S3: g_j+1 held to the epoch's end, the modulator of W_j
        m = f"m{j + 1}"
        nodes[f"{m}_delay"] = delay(T - sched.g_time(j + 1) - 1, n_up)
        nodes[f"{m}_in"] = nir.Linear(np.eye(n_up))
        nodes[m] = GradedNeuron(_shape(n_up), "identity")
        edges += [(g(j + 1), f"{m}_delay"), (f"{m}_delay", f"{m}_in"), (f"{m}_in", m)]
    circuit = Circuit(nodes, edges, metadata={"name": f"self-assembly-{spec.form}", "dt": dt})
    bounds = (-p.w_max, p.w_max)
    spikes = "x0*" * (1 + spec.rule_padding)  # x0 gates the product; the padding adds 1-bit factors (value 1)
    for layer in range(L):
        modulator = g(1) if layer == 0 else f"m{layer + 1}"
        circuit.add_plasticity(
            f"w{layer}",
            f"dw = {-p.eta!r}*{spikes}m*x1" + decay_term(p, False, spec.decimation, layer),
            traces={"x1": "activity"},
            third_factor={"m": modulator},
            w_bounds=bounds,
            t_epoch=T,
        )
    for j in range(1, L):
        factor = f"(x1-{spec.c(j + 1)!r})" if hardware else "x1"
        circuit.add_plasticity(
            f"b{j}",
            f"dw = {-p.eta_descending!r}*{spikes}m*{factor}" + decay_term(p, True, spec.decimation),
            traces={"x1": "activity"},
            third_factor={"m": f"xm{j}"},
            w_bounds=bounds,
            t_epoch=T,
        )
    circuit.validate()
    return circuit, sched


def compile_options(spec: CircuitSpec, trace_max: int = 127) -> dict:
    """``input_ranges``, ``activity_ranges`` and ``signal_levels`` for :func:`neuro_hw.compile` (hardware form).

    With ``Lg = trace_max // 2`` (63 on Loihi 2): every descending signal ``g_j`` and its copy ``m_j`` carries
    ``Lg`` levels over ``±c_j`` and ``gp_j`` ``4 Lg`` over ``[0, 2 c_j]``, so that ``gp = 2 g + 2 Lg`` in
    integers and ``x1 = gp / 2 = g + Lg`` exactly (``x1 - c`` becomes ``x1 - Lg``); ``z_j`` has the LSB of
    ``g_j`` (the ``±I`` weights into ``g_j`` are 1) and ``4095 = 65 Lg`` levels over ``z_headroom * c_j+1``..."""
    p, r = spec.params, spec.ranges
    L = p.n_layers
    lg = trace_max // 2
    hardware = spec.form == "hardware"
    activity: dict[str, float] = {"o": r.output}
    levels: dict[str, int] = {"phase": 1} if hardware else {}
    if r.input_levels is not None:
        levels["x"] = r.input_levels
    for j in range(1, L + 1):
        name = "err" if j == L else f"g{j}"
        activity[name] = spec.c(j)
        levels[name] = lg
        if j >= 2:
            activity[f"m{j}"] = spec.c(j)
            levels[f"m{j}"] = lg
            if hardware:
                levels[f"gp{j}"] = 4 * lg
            else:
                activity[f"gp{j}"] = spec.c(j)
    for j in range(1, L):
        activity[f"z{j}"] = r.z_headroom * spec.c(j + 1)
    inputs = {"x": r.input, "target": r.target} | ({"phase": 1.0} if hardware else {})
    return {
        "input_ranges": inputs,
        "activity_ranges": activity,
        "signal_levels": levels,
    }


def initial_weights(spec: CircuitSpec, seed: int | Sequence[int]) -> tuple[list[np.ndarray], list[np.ndarray | None]]:
    """The ground truth's initial weights (:func:`~neuro_hw.circuits.self_assembly_numpy.init_weights`)."""
    from neuro_hw.circuits.self_assembly_numpy import init_weights

    return init_weights(spec.params, seed)


def weight_overrides(w: Sequence[np.ndarray], b: Sequence[np.ndarray | None]) -> dict[str, np.ndarray]:
    """``{"w0": ..., "b1": ...}``: per-trial weights for ``neuro_hw.run(..., weights=)`` / ``simulate``."""
    out = {f"w{layer}": np.asarray(m) for layer, m in enumerate(w)}
    out.update({f"b{j}": np.asarray(m) for j, m in enumerate(b) if j and m is not None})
    return out


def recorded_weights(result, names: Mapping[str, str] | None = None, float_units: bool = True):  # noqa: ANN001, ANN201
    """``{node: (B, K, ...)}`` of the plastic weights of a Result, in float units for fixed-point results."""
    out = {}
    for key in result.weights:
        node, _, var = key.rpartition(".")
        if var != "w":
            continue
        out[node] = (
            result.in_float_units(key) if (float_units and result.backend != "reference") else result.weights[key]
        )
    return out
