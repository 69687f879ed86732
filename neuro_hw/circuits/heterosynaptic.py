"""Heterosynaptic circuits (seed P2, the documented reconstruction) as IR circuits, in float and in Loihi 2 form.

The same math as :mod:`neuro_hw.circuits.heterosynaptic_numpy` (the ground truth), built from the public API:
graded neurons, product neurons, ``Delay`` nodes and plastic ``Linear`` nodes with modulators, for any
:class:`~neuro_hw.circuits.heterosynaptic_numpy.Topology` (the motif, structured, block-amorphous and neuron-level
amorphous networks: a mask that is not a whole block becomes the plastic node's plasticity mask, so absent synapses
stay 0 on every backend).  Levels ``0`` (input ``x``) .. ``L`` (output ``o``)::

    forward   x ──w{l}_{j}──> h{l} = clip(a_l, 0, c_h) ... ──w{L}_{j}──> o ──(+I)──> err = o - t <──(-I)── target
              (skips j < l-1 read a delayed relay h{j}_d{k} of h_j so that every input of level l arrives together)
    feedback  d{m} ──(I)──> gp{m}_{l} ──v{l}_{m}──> z{l};  d{l} = [z{l}(t) - z{l}(t-1)] * f'(h_l)    (d{L} = err)
    learning  w{l}_{j}: dw = -eta   * s_l * x0 * m * x1            m  = d{l} (held copy m{l}),  x1 = h_j
              v{l}_{m}: dw = -eta_v * r_l * x0 * m * (x1 - c_m)    m  = h_l (held copy xm{l}),  x1 = gp = d_m + c_m
              (both minus ``eta*lam*u0*w`` with a decay; ``form="direct"``: gp = d_m, factor x1, no offset)

**Why the offset.**  On Loihi 2 a synapse's pre trace is its source's graded payload ``x1 = payload / 2``: 7 bits,
unsigned.  ``W``'s pre (``h >= 0``) is fine and its signed modulator travels on two rails.  ``V``'s pre is the
signed feedback activity ``delta_m``; splitting it into rails with two plastic copies would break the
Kolen-Pollack-like matching of the two pathways.  So (as in :mod:`.self_assembly`) the relay ``gp`` sends
``c`` alone one step before ``delta + c``, ``V``'s rule reads ``x1 - c`` and ``d_l`` takes the difference of two
successive outputs of ``V`` -- the offset ``V c`` cancels.  A host input ``phase`` (one channel per hidden level)
supplies the ``c``.  ``form="direct"`` is the same circuit without the offset (a signed pre: the float
reference runs it, the compiler refuses it); both compute the ground truth in float (tested).

**Timing** (:class:`Schedule`): every sample is a one-step pulse at the start of its learning epoch; ``h_l`` at
offset ``1 + l``, ``err`` at ``G_L = L + 2``, ``d_l`` at ``G_l = L + 2 + 3 (L - l)``; the relays ``gp{m}_{l}``
send ``c`` at ``G_l - 3`` and ``delta_m + c`` at ``G_l - 2`` (a projection from a higher level ``m`` waits in a
``Delay``); the period ``T = t_epoch = G_1 = 4L - 1`` ends with the update.  Every plastic synapse therefore
learns from its sample's pre-update forward pass and the feedback it caused, as the ground truth (online, batch 1).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass, field

import nir
import numpy as np

from neuro_hw.circuits.heterosynaptic_numpy import Gains, HeteroParams, State, Topology
from neuro_hw.ir.circuit import Circuit
from neuro_hw.ir.graded import GradedNeuron, ProductNeuron

from .pulse_circuit import delay_node, error_head, present_pulses
from .pulse_circuit import shape as _shape

DT = 1e-3
FORMS = ("hardware", "direct")


@dataclass(frozen=True)
class Schedule:
    """Offsets (1-based, within a sample's period) of the signals of a network with output level ``L``."""

    n_levels: int

    @property
    def period(self) -> int:
        return self.g_time(1)

    def h_time(self, level: int) -> int:
        return 1 + level

    def g_time(self, level: int) -> int:
        """``d_level`` (``level = L``: the error)."""
        return self.n_levels + 2 + 3 * (self.n_levels - level)

    def gp_time(self, level: int) -> int:
        """The step on which the relays into ``z{level}`` carry ``delta + c`` (``c`` alone one step earlier)."""
        return self.g_time(level) - 2

    @property
    def target_time(self) -> int:
        return self.h_time(self.n_levels)

    def steps(self, n_samples: int) -> int:
        return n_samples * self.period

    def present(self, x: np.ndarray, t: np.ndarray, phase: bool = True) -> dict[str, np.ndarray]:
        """Stimuli for samples ``x`` (N, n_0), targets ``t`` (N, n_L), or batched ``(B, N, ...)``: ``x`` pulses at
        offset 1, ``target`` at ``L + 1``, and (``phase``) the host channels ``phase`` ``(T*N, L - 1)``: channel
        ``l - 1`` is 1 at offsets ``gp_time(l) - 2`` and ``gp_time(l) - 1`` (its weights add a step)."""
        offsets = [(self.gp_time(level) - 2, self.gp_time(level) - 1) for level in range(1, self.n_levels)]
        return present_pulses(x, t, self.period, self.target_time, offsets if phase else None)


@dataclass(frozen=True)
class SignalRanges:
    """Declared ranges (float units) of the graded signals for the compiler.

    ``delta``: the range ``c_m`` (and offset) of the feedback activity of level ``m`` -- ``delta[0]`` for the error
    ``err``, ``delta[1]`` for the hidden levels; ``output``: the range of ``o``; ``z_headroom``: ``z_l`` spans
    ``z_headroom * c`` (forward only, 12 bits); ``input``/``input_levels``: the input's range and levels."""

    delta: tuple[float, float] = (1.0, 0.5)
    output: float = 1.5
    z_headroom: float = 16.0
    input: float = 1.0
    input_levels: int | None = 16
    target: float = 1.0


@dataclass(frozen=True)
class CircuitSpec:
    """What :func:`heterosynaptic_circuit` builds."""

    topology: Topology
    params: HeteroParams = field(default_factory=HeteroParams)
    gains: Gains = field(default_factory=Gains)
    ranges: SignalRanges = field(default_factory=SignalRanges)
    form: str = "hardware"

    def __post_init__(self) -> None:
        if self.form not in FORMS:
            raise ValueError(f"form must be one of {FORMS}, got {self.form!r}")

    def c(self, level: int) -> float:
        """Range and offset of the feedback activity of ``level`` (``L``: the error)."""
        return float(self.ranges.delta[0] if level == self.topology.n_levels else self.ranges.delta[1])


def _g(level: int, L: int) -> str:
    return "err" if level == L else f"d{level}"


def _h(level: int, L: int) -> str:
    return "x" if level == 0 else ("o" if level == L else f"h{level}")


def heterosynaptic_circuit(spec: CircuitSpec, state: State, dt: float = DT) -> tuple[Circuit, Schedule]:
    """The circuit of the module doc with the initial weights ``state`` and its schedule (``t_epoch`` set)."""
    topo, p = spec.topology, spec.params
    L, sizes = topo.n_levels, topo.sizes
    sched = Schedule(L)
    T = sched.period
    hardware = spec.form == "hardware"

    delay = functools.partial(delay_node, dt=dt)
    nodes, edges = error_head(sizes[0], sizes[L], L - 1, hardware)

    def relay(j: int, k: int) -> str:
        """``h_j`` delayed by ``k`` steps (a copy through ``Delay(k - 1)`` and identity weights)."""
        name = f"{_h(j, L)}_d{k}"
        if name not in nodes:
            n = sizes[j]
            clip = p.c_h if j else spec.ranges.input
            nodes[name] = GradedNeuron(_shape(n), "clipped_relu", clip=clip)
            nodes[f"{name}_in"] = nir.Linear(np.eye(n))
            if k > 1:
                nodes[f"{name}_delay"] = delay(k - 1, n)
                edges.extend([(_h(j, L), f"{name}_delay"), (f"{name}_delay", f"{name}_in")])
            else:
                edges.append((_h(j, L), f"{name}_in"))
            edges.append((f"{name}_in", name))
        return name

    forward_pre: dict[tuple[int, int], str] = {}  # (level, j) -> the pre node of W[level, j]
    for level in range(1, L + 1):
        if level < L:
            nodes[_h(level, L)] = GradedNeuron(_shape(sizes[level]), "clipped_relu", clip=p.c_h)
        for _, j in topo.forward_keys(level):
            name = f"w{level}_{j}"
            nodes[name] = nir.Linear(np.asarray(state.W[(level, j)], dtype=np.float64))
            source = _h(j, L) if j == level - 1 else relay(j, level - 1 - j)
            forward_pre[(level, j)] = source
            edges += [(source, name), (name, _h(level, L))]
    # feedback: d_l = f'(h_l) * (z_l(t) - z_l(t-1)), z_l = sum_m V[l, m] gp_{m,l}
    for level in range(L - 1, 0, -1):
        n = sizes[level]
        z = f"z{level}"
        nodes[z] = GradedNeuron(_shape(n), "identity")
        for _, m in topo.feedback_keys(level):
            gp = f"gp{m}_{level}"
            nm = sizes[m]
            if hardware:
                nodes[gp] = GradedNeuron(_shape(nm), "clipped_relu", clip=2 * spec.c(m))
                ph = np.zeros((nm, L - 1))
                ph[:, level - 1] = spec.c(m)
                nodes[f"phase_{gp}"] = nir.Linear(ph)
                edges += [("phase", f"phase_{gp}"), (f"phase_{gp}", gp)]
            else:
                nodes[gp] = GradedNeuron(_shape(nm), "identity")
            nodes[f"{gp}_in"] = nir.Linear(np.eye(nm))
            wait = sched.gp_time(level) - sched.g_time(m) - 1
            if wait > 0:
                nodes[f"{gp}_delay"] = delay(wait, nm)
                edges += [(_g(m, L), f"{gp}_delay"), (f"{gp}_delay", f"{gp}_in")]
            else:
                edges.append((_g(m, L), f"{gp}_in"))
            nodes[f"v{level}_{m}"] = nir.Linear(np.asarray(state.V[(level, m)], dtype=np.float64))
            edges += [(f"{gp}_in", gp), (gp, f"v{level}_{m}"), (f"v{level}_{m}", z)]
        d = _g(level, L)
        nodes[f"{z}_now"] = nir.Linear(np.eye(n))
        nodes[f"{z}_delay"] = delay(1, n)
        nodes[f"{z}_before"] = nir.Linear(-np.eye(n))
        nodes[f"h{level}_delay"] = delay(sched.g_time(level) - sched.h_time(level) - 1, n)
        nodes[f"h{level}_gate"] = nir.Linear(np.eye(n))
        nodes[d] = ProductNeuron(_shape(n), gate_inputs=(f"h{level}_gate",), gate="clipped_relu_derivative",
                                 gate_clip=p.c_h)  # fmt: skip
        edges += [
            (z, f"{z}_now"), (f"{z}_now", d), (z, f"{z}_delay"), (f"{z}_delay", f"{z}_before"), (f"{z}_before", d),
            (_h(level, L), f"h{level}_delay"), (f"h{level}_delay", f"h{level}_gate"), (f"h{level}_gate", d),
        ]  # fmt: skip
        # the forward activity h_l held to the epoch's end: the factor of V[l, .]
        xm = f"xm{level}"
        nodes[f"{xm}_delay"] = delay(T - sched.h_time(level) - 1, n)
        nodes[f"{xm}_in"] = nir.Linear(np.eye(n))
        nodes[xm] = GradedNeuron(_shape(n), "clipped_relu", clip=p.c_h)
        edges += [(_h(level, L), f"{xm}_delay"), (f"{xm}_delay", f"{xm}_in"), (f"{xm}_in", xm)]
    # the feedback activity of levels >= 2 held to the epoch's end: the modulator of W[l, .]
    for level in range(2, L + 1):
        m = f"m{level}"
        n = sizes[level]
        nodes[f"{m}_delay"] = delay(T - sched.g_time(level) - 1, n)
        nodes[f"{m}_in"] = nir.Linear(np.eye(n))
        nodes[m] = GradedNeuron(_shape(n), "identity")
        edges += [(_g(level, L), f"{m}_delay"), (f"{m}_delay", f"{m}_in"), (f"{m}_in", m)]
    circuit = Circuit(nodes, edges, metadata={"name": f"heterosynaptic-{topo.name}-{spec.form}", "dt": dt})
    bounds = (-p.w_max, p.w_max)
    for (level, j), source in forward_pre.items():
        modulator = _g(1, L) if level == 1 else f"m{level}"
        coefficient = -p.eta * spec.gains.s(level, L)
        circuit.add_plasticity(
            f"w{level}_{j}",
            f"dw = {coefficient!r}*x0*m*x1" + _decay(p.eta * p.lam),
            pre=source,
            post=_h(level, L),
            traces={"x1": "activity"},
            third_factor={"m": modulator},
            w_bounds=bounds,
            t_epoch=T,
            mask=_mask(topo.forward[(level, j)]),
        )
    for level, m in topo.feedback_keys():
        factor = f"(x1-{spec.c(m)!r})" if hardware else "x1"
        coefficient = -p.eta_v * spec.gains.r(level)
        circuit.add_plasticity(
            f"v{level}_{m}",
            f"dw = {coefficient!r}*x0*m*{factor}" + _decay(p.eta_v * p.lam_v),
            traces={"x1": "activity"},
            third_factor={"m": f"xm{level}"},
            w_bounds=bounds,
            t_epoch=T,
            mask=_mask(topo.feedback[(level, m)]),
        )
    circuit.validate()
    return circuit, sched


def _mask(mask: np.ndarray) -> np.ndarray | None:
    """A topology mask as a plasticity mask: None for a whole block (every synapse exists)."""
    mask = np.asarray(mask, dtype=bool)
    return None if mask.all() else mask


def _decay(coefficient: float) -> str:
    return f" - {coefficient!r}*u0*w" if coefficient else ""


def compile_options(spec: CircuitSpec, trace_max: int = 127) -> dict:
    """``input_ranges``, ``activity_ranges`` and ``signal_levels`` for :func:`neuro_hw.compile` (hardware form).

    With ``Lg = trace_max // 2`` (63 on Loihi 2) every feedback activity ``d_m`` (and its held copy ``m_m``)
    carries ``Lg`` levels over ``+-c_m`` and each relay ``gp`` ``4 Lg`` over ``[0, 2 c_m]``, so that
    ``gp = 2 d + 2 Lg`` in integers and the pre trace ``x1 = gp / 2 = d + Lg`` exactly (the rule's ``x1 - c``)."""
    topo, r = spec.topology, spec.ranges
    L = topo.n_levels
    lg = trace_max // 2
    activity: dict[str, float] = {"o": r.output}
    levels: dict[str, int] = {"phase": 1}
    if r.input_levels is not None:
        levels["x"] = r.input_levels
    for level in range(1, L + 1):
        name = _g(level, L)
        activity[name] = spec.c(level)
        levels[name] = lg
        if level >= 2:
            activity[f"m{level}"] = spec.c(level)
            levels[f"m{level}"] = lg
    for level, m in topo.feedback_keys():
        levels[f"gp{m}_{level}"] = 4 * lg
    for level in range(1, L):
        activity[f"z{level}"] = r.z_headroom * max(spec.c(m) for _, m in topo.feedback_keys(level))
    return {
        "input_ranges": {"x": r.input, "target": r.target, "phase": 1.0},
        "activity_ranges": activity,
        "signal_levels": levels,
    }


def weight_overrides(state: State) -> dict[str, np.ndarray]:
    """``{"w1_0": ..., "v1_2": ...}``: per-trial weights for ``neuro_hw.run(..., weights=)``."""
    out = {f"w{l}_{j}": np.asarray(m) for (l, j), m in state.W.items()}
    out.update({f"v{l}_{m}": np.asarray(v) for (l, m), v in state.V.items()})
    return out


def state_from_weights(topo: Topology, weights: Mapping[str, np.ndarray], index: int = -1) -> State:
    """The :class:`State` at snapshot ``index`` of recorded weights ``{node: (K, ...)}`` (float units)."""
    W = {(l, j): np.asarray(weights[f"w{l}_{j}"][index], dtype=np.float64) for (l, j) in topo.forward}
    V = {(l, m): np.asarray(weights[f"v{l}_{m}"][index], dtype=np.float64) for (l, m) in topo.feedback}
    return State(W, V)


def recorded_weights(result, trial: int = 0) -> dict[str, np.ndarray]:  # noqa: ANN001
    """``{node: (K, n_post, n_pre)}`` of the weights ``w{l}_{j}`` / ``v{l}_{m}`` of a Result (float units on
    fixed-point backends; a fixed-point Result also records the static connections, which are left out)."""
    import re

    out = {}
    for key in result.weights:
        node, _, var = key.rpartition(".")
        if var == "w" and re.fullmatch(r"[wv]\d+_\d+", node):
            values = result.weights[key] if result.backend == "reference" else result.in_float_units(key)
            out[node] = np.asarray(values[trial])
    return out
