"""Compile a :class:`~neuro_hw.ir.Circuit` into an integer :class:`~neuro_hw.compiler.program.Program`.

Mapping onto Lava's fixed-point LIF (``u`` current, ``v`` voltage, see ``targets/loihi2.toml``)::

    u[t] = u[t-1] * (4096 - du - 1)/4096 + (a[t] << 6)        a = sum of weighted inputs (<< weight_exp)
    v[t] = v[t-1] * (4096 - dv)/4096 + u[t] + bias            spike if v > vth << 6, then v = 0

Node by node (``a_m = exp(-dt/tau_mem)``, ``a_s = exp(-dt/tau_syn)``, primes = the represented decays):

* LIF / LI: ``du = 4095`` (u holds only this step's input), ``dv ~ 4096 (1 - a_m)``; an input ``x`` adds
  ``g x`` to ``v`` per step with gain ``g = r (1 - a_m')`` (exactly the reference's exponential
  integrator for zero-order-hold input).
* CubaLIF / CubaLI: ``du ~ 4096 (1 - a_s) - 1``, ``dv`` as above; ``g = r w_in (1 - a_s')(1 - a_m')`` gives
  the reference's steady state; the impulse response is the discrete double exponential of the
  decays (the reference integrates within the step exactly: reported as a note).
* IF / I: ``du = 4095``, ``dv = 0``, ``g = r dt``.
* ``v_reset`` != 0 is handled exactly by shifting the voltage origin: ``v' = v - v_reset`` (threshold
  ``v_thr - v_reset``, leak ``v_leak - v_reset``, initial ``v' = -v_reset``).
* The leak toward ``v_leak`` becomes the bias ``(v_leak - v_reset)(1 - a_m')`` per step; an Affine bias
  ``b`` adds ``g b`` (CubaLIF: ``g b / (1 - a_s')``, the steady-state equivalent).

Scales: each neuron ``i`` gets ``S_i`` integers per voltage unit with ``S_i = 64 vth / (v_thr,i - v_reset,i)``
so that one integer threshold ``vth`` (Lava has one per population) serves heterogeneous thresholds.
``vth`` starts at ``vth_max / 2**headroom`` and is lowered only if a weight cannot be represented with the
largest weight exponent.  Weights become ``W_int = round(W g_i S_i / (64 * 2**weight_exp))`` with the
smallest ``weight_exp`` that fits 8 bits (mixed-sign weights use even integers, so Lava's LSB truncation
is exact).  Non-spiking nodes use a nominal threshold of 1 voltage unit.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np

from neuro_hw.compiler.learning import compile_expression, trace_tau_steps
from neuro_hw.compiler.program import ConnectionProgram, InputProgram, LearningProgram, NeuronProgram, Program
from neuro_hw.compiler.quantize import (
    bias_mant_exp,
    decay_to_int,
    quantize_to_range,
    round_half_away,
    weight_exponent,
)
from neuro_hw.compiler.report import ParameterReport, Placement, Report, ResourceReport
from neuro_hw.compiler.target import Target, load_target
from neuro_hw.errors import InputError, RuleError, UnsupportedNodeError, ValidationError
from neuro_hw.ir.circuit import NEURON_TYPES, SPIKING_TYPES, WEIGHT_TYPES, Circuit
from neuro_hw.ir.rules import POST_TRACES, PRE_TRACES

PASS_THROUGH = ("Flatten", "Scale", "Delay", "Input", "Output")


@dataclass
class _Path:
    """A source (or target) reached through pass-through nodes, with per-element scale and delay (steps)."""

    end: str
    scale: np.ndarray
    delay: np.ndarray


@dataclass
class _Conn:
    name: str
    source: str
    target: str
    weight: np.ndarray  # (n_target, n_source) float, scales folded in
    delay: np.ndarray  # (n_target, n_source) steps
    plastic: str | None = None  # weight node carrying plasticity
    notes: list[str] = field(default_factory=list)


def _flat(node, attr: str, n: int) -> np.ndarray:
    return np.broadcast_to(np.asarray(getattr(node, attr), dtype=np.float64).reshape(-1), (n,)).astype(np.float64)


class _Compiler:
    def __init__(
        self,
        circuit: Circuit,
        target: Target,
        dt: float,
        input_ranges: Mapping[str, float],
        trace_impulse: int | None = None,
    ) -> None:
        self.trace_impulse = trace_impulse
        self.c = circuit
        self.t = target
        self.dt = dt
        self.input_ranges = dict(input_ranges)
        self.report = Report(target=target.name, dt=dt, circuit_hash=circuit.hash())

    # -- graph walking ----------------------------------------------------------------------------
    def _delay_steps(self, name: str) -> np.ndarray:
        node = self.c.nodes[name]
        d = np.asarray(node.delay, dtype=np.float64).reshape(-1) / self.dt
        steps = np.rint(d)
        if np.any(np.abs(steps - d) > 1e-9):
            raise ValidationError(f"delays must be multiples of dt={self.dt:g}", node=name, field="delay")
        return steps.astype(np.int64)

    def _through(self, name: str, n: int) -> tuple[np.ndarray, np.ndarray]:
        kind = self.c.type_of(name)
        if kind == "Scale":
            return _flat(self.c.nodes[name], "scale", n), np.zeros(n, dtype=np.int64)
        if kind == "Delay":
            return np.ones(n), np.broadcast_to(self._delay_steps(name), (n,)).copy()
        return np.ones(n), np.zeros(n, dtype=np.int64)

    def _sources(self, name: str) -> list[_Path]:
        """Walk back from ``name`` through pass-through nodes to stimulus inputs and neuron nodes."""
        paths = []
        for p in self.c.predecessors(name):
            kind = self.c.type_of(p)
            n = self.c.size(p)
            if kind in NEURON_TYPES or (kind == "Input" and not self.c.predecessors(p)):
                paths.append(_Path(p, np.ones(n), np.zeros(n, dtype=np.int64)))
            elif kind in PASS_THROUGH:
                scale, delay = self._through(p, n)
                for sub in self._sources(p):
                    paths.append(_Path(sub.end, sub.scale * scale, sub.delay + delay))
            elif kind in WEIGHT_TYPES:
                raise UnsupportedNodeError(
                    f"weight node {p!r} feeds weight node {name!r} directly; fold the two matrices first",
                    node=name,
                )
            else:
                raise UnsupportedNodeError(f"{kind} nodes are not supported on {self.t.name}", node=p)
        return paths

    def _targets(self, name: str) -> list[_Path]:
        """Walk forward from ``name`` through pass-through nodes to neuron nodes (Output nodes end a walk)."""
        paths = []
        for s in self.c.successors(name):
            kind = self.c.type_of(s)
            n = self.c.size(s)
            if kind in NEURON_TYPES:
                paths.append(_Path(s, np.ones(n), np.zeros(n, dtype=np.int64)))
            elif kind == "Output" and not self.c.successors(s):
                continue
            elif kind in PASS_THROUGH:
                scale, delay = self._through(s, n)
                for sub in self._targets(s):
                    paths.append(_Path(sub.end, sub.scale * scale, sub.delay + delay))
            elif kind in WEIGHT_TYPES:
                raise UnsupportedNodeError(
                    f"weight node {name!r} feeds weight node {s!r} directly; fold the two matrices first", node=s
                )
            else:
                raise UnsupportedNodeError(f"{kind} nodes are not supported on {self.t.name}", node=s)
        return paths

    def connections(self) -> tuple[list[_Conn], dict[str, np.ndarray]]:
        """All source->population connections, and the Affine biases (per target population, float)."""
        conns: list[_Conn] = []
        affine_bias: dict[str, np.ndarray] = {}
        for w in self.c.names_of_type(*WEIGHT_TYPES):
            node = self.c.nodes[w]
            W = np.asarray(node.weight, dtype=np.float64)
            sources, targets = self._sources(w), self._targets(w)
            if not targets:
                raise UnsupportedNodeError(
                    f"weight node {w!r} feeds no neuron population (only Output or nothing); "
                    f"{self.t.name} can only deliver weighted inputs to neurons",
                    node=w,
                )
            if w in self.c.plasticity and (len(sources) != 1 or len(targets) != 1):
                raise UnsupportedNodeError(
                    "a plastic weight node must connect exactly one source to one neuron population", node=w
                )
            for tp in targets:
                Wt = W * tp.scale[:, None]
                if self.c.type_of(w) == "Affine":
                    b = np.asarray(node.bias, dtype=np.float64).reshape(-1) * tp.scale
                    affine_bias[tp.end] = affine_bias.get(tp.end, 0.0) + b
                for sp in sources:
                    name = w if len(sources) * len(targets) == 1 else f"{w}[{sp.end}->{tp.end}]"
                    delay = tp.delay[:, None] + sp.delay[None, :]
                    conns.append(
                        _Conn(
                            name, sp.end, tp.end, Wt * sp.scale[None, :], delay, w if w in self.c.plasticity else None
                        )
                    )
        # Direct edges into neurons (through pass-through nodes, no weight node): identity weights.
        for pop in self.c.names_of_type(*NEURON_TYPES):
            for p in self.c.predecessors(pop):
                if self.c.type_of(p) in WEIGHT_TYPES:
                    continue
                for sp in self._sources_of_edge(p):
                    n = self.c.size(pop)
                    W = np.diag(sp.scale) if sp.scale.size == n else None
                    if W is None:
                        raise ValidationError(f"direct edge from {sp.end!r} has the wrong size", node=pop)
                    name = f"{sp.end}->{pop}"
                    conn = _Conn(name, sp.end, pop, W, np.diag(sp.delay).astype(np.int64))
                    self.report.notes.append(
                        f"direct edge {sp.end} -> {pop} has no weight node: mapped to identity weights, which adds "
                        "the one-step synaptic latency of the chip (the reference passes it within the step)"
                    )
                    conns.append(conn)
        return conns, affine_bias

    def _sources_of_edge(self, p: str) -> list[_Path]:
        kind = self.c.type_of(p)
        n = self.c.size(p)
        if kind in NEURON_TYPES or (kind == "Input" and not self.c.predecessors(p)):
            return [_Path(p, np.ones(n), np.zeros(n, dtype=np.int64))]
        if kind in PASS_THROUGH:
            scale, delay = self._through(p, n)
            return [_Path(s.end, s.scale * scale, s.delay + delay) for s in self._sources(p)]
        raise UnsupportedNodeError(f"{kind} nodes are not supported on {self.t.name}", node=p)

    # -- populations ------------------------------------------------------------------------------
    def population_params(self, name: str) -> dict[str, np.ndarray | float | int]:
        node = self.c.nodes[name]
        kind = self.c.type_of(name)
        n = self.c.size(name)
        nf = self.t.neuron
        out: dict = {"kind": kind, "n": n}
        if kind in ("LIF", "LI"):
            a_m = np.exp(-self.dt / _flat(node, "tau", n))
            a_s = np.zeros(n)
        elif kind in ("CubaLIF", "CubaLI"):
            a_m = np.exp(-self.dt / _flat(node, "tau_mem", n))
            a_s = np.exp(-self.dt / _flat(node, "tau_syn", n))
        else:  # IF, I
            a_m = np.ones(n)
            a_s = np.zeros(n)
        for label, a, offset in (("dv", a_m, 0), ("du", a_s, nf.current_decay_offset)):
            ints = {decay_to_int(float(x), nf.decay_unity, offset, nf.decay_max)[0] for x in a}
            if len(ints) > 1:
                raise UnsupportedNodeError(
                    f"{self.t.name} has one {label} per population but the time constants of this node map to "
                    f"{sorted(ints)}; split the node into populations with equal time constants",
                    node=name,
                    field="tau_syn" if label == "du" else ("tau_mem" if kind.startswith("Cuba") else "tau"),
                )
        dv, a_m_q = decay_to_int(float(a_m[0]), nf.decay_unity, 0, nf.decay_max)
        du, a_s_q = decay_to_int(float(a_s[0]), nf.decay_unity, nf.current_decay_offset, nf.decay_max)
        if kind in ("LIF", "LI", "IF", "I"):
            du, a_s_q = nf.decay_max, 0.0  # u carries only the current step's input
        out.update(dv=dv, du=du, a_m=a_m, a_s=a_s, a_m_q=a_m_q, a_s_q=a_s_q)
        r = _flat(node, "r", n)
        if kind in ("LIF", "LI"):
            gain = r * (1 - a_m_q)
        elif kind in ("CubaLIF", "CubaLI"):
            gain = r * _flat(node, "w_in", n) * (1 - a_s_q) * (1 - a_m_q)
        else:
            gain = r * self.dt
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
        out.update(gain=gain, theta=theta, v_reset=v_reset, leak_bias=leak)
        if np.any(gain == 0):
            self.report.notes.append(f"{name}: some neurons have zero input gain (r = 0 or w_in = 0)")
        return out

    # -- the whole thing --------------------------------------------------------------------------
    def run(self) -> Program:
        c, t, nf = self.c, self.t, self.t.neuron
        for name in c.names_of_type("Threshold"):
            raise UnsupportedNodeError(f"Threshold nodes have no fixed-point equivalent on {t.name}", node=name)
        for name in c.names_of_type("LI", "CubaLI", "I"):
            feeds = [s for s in c.successors(name) if c.type_of(s) != "Output"]
            if feeds:
                raise UnsupportedNodeError(
                    f"non-spiking {c.type_of(name)} node feeds {feeds}; on {t.name} neurons send spikes only",
                    node=name,
                )
        conns, affine_bias = self.connections()
        pops = {name: self.population_params(name) for name in c.names_of_type(*NEURON_TYPES)}
        incoming: dict[str, list[_Conn]] = {name: [] for name in pops}
        for conn in conns:
            incoming[conn.target].append(conn)

        # Threshold integer per population, then per-neuron scales.
        vth_cap = nf.vth_max >> nf.threshold_headroom_bits
        vth: dict[str, int] = {}
        for name, p in pops.items():
            limit = float(vth_cap)
            for conn in incoming[name]:
                ref = self._weight_range(conn)  # (n_target,) largest |w| per row that must be representable
                # |W_int| = ref * g * vth / (theta * 2^e) <= magnitude_max at e = exp_max
                per_row = ref * np.abs(p["gain"]) / p["theta"]
                worst = float(per_row.max(initial=0.0))
                if worst > 0:
                    limit = min(limit, t.weights.magnitude_max * 2.0**t.weights.exp_max / worst)
            if limit < 1:
                raise ValidationError(
                    f"weights into {name!r} are too large relative to its threshold to fit "
                    f"{t.weights.bits}-bit weights with exponent <= {t.weights.exp_max}",
                    node=name,
                )
            vth[name] = int(math.floor(limit))
            if vth[name] < vth_cap:
                self.report.notes.append(
                    f"{name}: threshold integer lowered to {vth[name]} (cap {vth_cap}) so that its weights fit"
                )

        program_neurons: dict[str, NeuronProgram] = {}
        scales: dict[str, np.ndarray] = {}
        for name, p in pops.items():
            S = 2.0**nf.activation_shift * vth[name] / p["theta"]
            scales[name] = S
            bias_float = p["leak_bias"] + p["gain"] * np.asarray(affine_bias.get(name, 0.0)) / np.where(
                p["kind"].startswith("Cuba"), 1 - p["a_s_q"], 1.0
            )
            if name in affine_bias and p["kind"].startswith("Cuba"):
                self.report.notes.append(
                    f"{name}: the Affine bias enters v directly (Lava bias), equivalent in steady state only"
                )
            mants, exps, represented = [], [], []
            for value in bias_float * S:
                try:
                    m, e = bias_mant_exp(float(value), nf.bias_mant_max, nf.bias_exp_min, nf.bias_exp_max)
                except OverflowError as err:
                    raise ValidationError(
                        f"bias (leak or Affine bias) overflows the {nf.bias_mant_bits}-bit mantissa: {err}",
                        node=name,
                        field="v_leak",
                    ) from None
                mants.append(m)
                exps.append(e)
                represented.append(m * 2.0**e)
            represented = np.asarray(represented) / S
            v_init = round_half_away(-p["v_reset"] * S).astype(np.int64)
            if np.any(np.abs(v_init) > nf.state_max):
                raise ValidationError("v_reset is too large for the 24-bit voltage", node=name, field="v_reset")
            program_neurons[name] = NeuronProgram(
                name=name,
                n=p["n"],
                du=p["du"],
                dv=p["dv"],
                vth=vth[name],
                bias_mant=np.asarray(mants),
                bias_exp=np.asarray(exps),
                u_init=np.zeros(p["n"]),
                v_init=v_init,
                shape=tuple(int(s) for s in np.atleast_1d(c.nodes[name].output_type["output"])),
                v_scale=S,
                v_offset=p["v_reset"],
            )
            rep = self.report.parameters
            rep.append(
                ParameterReport.of(
                    f"{name}.dv", p["a_m"], np.full(1, p["dv"]), np.full(1, p["a_m_q"]), unit="decay/step"
                )
            )
            if p["kind"].startswith("Cuba"):
                rep.append(
                    ParameterReport.of(
                        f"{name}.du", p["a_s"], np.full(1, p["du"]), np.full(1, p["a_s_q"]), unit="decay/step"
                    )
                )
            theta_q = vth[name] * 2.0**nf.activation_shift / S
            rep.append(ParameterReport.of(f"{name}.vth", p["theta"], np.full(1, vth[name]), theta_q, unit="v"))
            if np.any(bias_float != 0):
                rep.append(
                    ParameterReport.of(f"{name}.bias", bias_float, np.asarray(mants), represented, unit="v/step")
                )

        inputs = self._inputs(conns)
        program_conns: dict[str, ConnectionProgram] = {}
        plastic_index = 0
        for conn in conns:
            p = pops[conn.target]
            program_conns[conn.name] = self._connection(conn, p, scales[conn.target], inputs)
            if conn.plastic:
                plastic_index += 1
        program = Program(
            target=t.name,
            dt=self.dt,
            inputs=inputs,
            neurons=program_neurons,
            connections=program_conns,
            circuit_hash=c.hash(),
            report=self.report,
            metadata={"outputs": {o: c.predecessors(o) for o in c.output_names}},
        )
        self.report.resources = place(program, t)
        return program

    def _weight_range(self, conn: _Conn) -> np.ndarray:
        """Per target row, the largest weight magnitude the connection must represent."""
        ref = np.abs(conn.weight).max(axis=1) if conn.weight.size else np.zeros(conn.weight.shape[0])
        if conn.plastic:
            lo, hi = self.c.plasticity[conn.plastic].w_bounds
            bound = max(abs(lo) if math.isfinite(lo) else 0.0, abs(hi) if math.isfinite(hi) else 0.0)
            if not (math.isfinite(lo) and math.isfinite(hi)):
                bound = max(bound, 2.0 * float(np.abs(conn.weight).max(initial=0.0)))
                self.report.notes.append(
                    f"{conn.plastic}: infinite w_bounds; the weight format covers twice the initial largest weight"
                )
            ref = np.maximum(ref, bound)
        return ref

    def _inputs(self, conns: list[_Conn]) -> dict[str, InputProgram]:
        inputs = {}
        third_sources = {src for spec in self.c.plasticity.values() for src in spec.third_factor.values()}
        for name in self.c.input_names:
            n = self.c.size(name)
            if name in third_sources or name in self.input_ranges:
                value_range = self.input_ranges.get(name)
                max_payload = self.t.learning.trace_max
                scale = max_payload / value_range if value_range else 1.0
                inputs[name] = InputProgram(name, n, graded=True, scale=scale, max_payload=max_payload)
                if value_range is None:
                    self.report.notes.append(
                        f"input {name!r} carries graded values without a declared range: values are sent as integer "
                        f"payloads unchanged (0..{max_payload}); pass input_ranges={{'{name}': max}} to scale them"
                    )
            else:
                inputs[name] = InputProgram(name, n, graded=False, scale=1.0, max_payload=1)
        return inputs

    def _connection(self, conn: _Conn, p: dict, S: np.ndarray, inputs: dict[str, InputProgram]) -> ConnectionProgram:
        t = self.t
        W = conn.weight
        row_gain = p["gain"] * S / 2.0**t.neuron.activation_shift  # integers per unit weight at exponent 0
        spec = self.c.plasticity.get(conn.plastic) if conn.plastic else None
        if spec is not None:
            lo, hi = spec.w_bounds
            sign_mode = "excitatory" if lo >= 0 else ("inhibitory" if hi <= 0 else "mixed")
            if not np.allclose(row_gain, row_gain[0], rtol=1e-12, atol=0):
                raise RuleError(
                    "the learning engine applies one coefficient per connection, but the post neurons have different "
                    "gains or thresholds (r, tau, v_threshold); make them uniform",
                    node=conn.plastic,
                )
        else:
            sign_mode = "excitatory" if W.min(initial=0) >= 0 else ("inhibitory" if W.max(initial=0) <= 0 else "mixed")
        ref = self._weight_range(conn)
        worst = float((ref * np.abs(row_gain)).max(initial=0.0))
        mixed = sign_mode == "mixed"
        magnitude = t.weights.magnitude_max
        exp = weight_exponent(worst, 1.0, magnitude, t.weights.exp_min, t.weights.exp_max)
        w_scale = (row_gain / 2.0**exp)[:, None]
        step = 2 if (mixed and t.weights.mixed_sign_drops_lsb) else 1
        lo_i, hi_i = {
            "mixed": (-magnitude - 1, magnitude),
            "excitatory": (0, magnitude),
            "inhibitory": (-magnitude, 0),
        }[sign_mode]
        q = quantize_to_range(W * w_scale / step, 1.0, -(-lo_i // step), hi_i // step)
        W_int = q.ints * step
        represented = W_int / np.where(w_scale == 0, 1.0, w_scale)
        self.report.parameters.append(
            ParameterReport.of(f"{conn.name}.weights", W, W_int, represented, q.saturated, unit="weight")
        )
        if q.saturated:
            self.report.notes.append(f"{conn.name}: {q.saturated} weights saturated at the {sign_mode} 8-bit range")
        delays = None
        if np.any(conn.delay != 0):
            if conn.delay.max() > t.max_delay:
                raise ValidationError(
                    f"synaptic delay of {int(conn.delay.max())} steps exceeds the target's {t.max_delay}",
                    node=conn.name,
                    field="delay",
                )
            delays = conn.delay
        source = conn.source
        num_message_bits = 0
        if source in inputs and inputs[source].graded:
            num_message_bits = int(math.ceil(math.log2(inputs[source].max_payload + 1)))
            # The graded payload is value*scale: divide the weights back.
            if inputs[source].scale != 1.0:
                self.report.notes.append(
                    f"{conn.name}: graded input {source!r} is scaled by {inputs[source].scale:g}; weights are not "
                    "compensated, so compile graded inputs only as third factors"
                )
        learning = None
        if spec is not None:
            learning = self._learning(conn, spec, float(w_scale[0, 0]), inputs)
        return ConnectionProgram(
            name=conn.name,
            source=source,
            target=conn.target,
            weights=W_int.astype(np.int32),
            weight_exp=exp,
            num_weight_bits=t.weights.bits,
            sign_mode=sign_mode,
            num_message_bits=num_message_bits,
            delays=delays,
            learning=learning,
            w_scale=w_scale,
        )

    def _refine_impulses(
        self, name: str, spec, spike_traces: list[str], trace_scales: dict, s_w: float, start: int, compiled: dict
    ) -> tuple[dict[str, int], dict]:
        fmt = self.t.learning

        def compile_with(imps: dict[str, int]) -> dict | None:
            scales = dict(trace_scales)
            for trace, imp in imps.items():
                scales[trace] = imp / spec.traces[trace].impulse
            try:
                return {t: compile_expression(name, e, scales, s_w, fmt) for t, e in spec.rules.items()}
            except RuleError:
                return None

        if not spike_traces:
            return {}, compiled
        return _refine(compile_with, spike_traces, start, compiled)

    def _learning(self, conn: _Conn, spec, s_w: float, inputs: dict[str, InputProgram]) -> LearningProgram:
        fmt = self.t.learning
        name = conn.plastic
        if spec.t_epoch > fmt.epoch_max:
            raise RuleError(f"t_epoch {spec.t_epoch} exceeds the engine's {fmt.epoch_max}", node=name, field="t_epoch")
        symbols = spec.symbols
        if spec.third_factor:
            spike_traces = sorted(t for t in POST_TRACES if t in symbols and t not in spec.third_factor)
            if spike_traces:
                raise RuleError(
                    f"with a third factor the engine overwrites every post trace (y1..y3) with received values each "
                    f"step, so post-spike traces {spike_traces} cannot be used in the same rule; bind them to third "
                    "factors or drop them",
                    node=name,
                    field="rules",
                )
        if np.any(conn.delay != 0):
            raise UnsupportedNodeError(
                "plastic connections cannot have synaptic delays on this target (no learning DelayDense)",
                node=name,
                field="delay",
            )
        trace_scales, impulses, taus = {}, {}, {}
        spike_traces: list[str] = []
        for trace in PRE_TRACES + POST_TRACES:
            tr = spec.traces[trace]
            if trace in spec.third_factor:
                source = spec.third_factor[trace]
                if source not in inputs:
                    raise UnsupportedNodeError(
                        f"third factor {trace} comes from {source!r}; on {self.t.name} a third factor must come from "
                        "an input (host-computed graded signal)",
                        node=name,
                        field="third_factor",
                    )
                trace_scales[trace] = inputs[source].scale
                impulses[trace], taus[trace] = 0.0, 0
                continue
            if tr.impulse == 0 or trace not in symbols:
                trace_scales[trace] = 1.0
                impulses[trace], taus[trace] = 0.0, 0
                continue
            if tr.impulse < 0:
                raise RuleError(f"trace {trace} has a negative impulse; engine traces are unsigned", node=name)
            spike_traces.append(trace)
            taus[trace] = trace_tau_steps(tr.tau, self.dt, fmt)
            exact = math.exp(-self.dt / tr.tau) if tr.tau > 0 and math.isfinite(tr.tau) else (1.0 if tr.tau else 0.0)
            repr_decay = math.exp(-1.0 / taus[trace]) if taus[trace] else 0.0
            self.report.parameters.append(
                ParameterReport.of(
                    f"{name}.{trace}.tau",
                    np.array([exact]),
                    np.array([taus[trace]]),
                    np.array([repr_decay]),
                    unit="decay/step",
                )
            )
        # Trace impulse (integer): the default, or smaller when a coefficient would underflow the engine's
        # smallest scaling factor (smaller traces leave room for larger mantissas).
        start = self.trace_impulse if self.trace_impulse is not None else fmt.default_impulse
        candidates, imp = [], min(start, fmt.trace_max)
        while imp >= 1:
            candidates.append(imp)
            imp //= 2
        best = None
        for imp_int in candidates:
            scales = dict(trace_scales)
            for trace in spike_traces:
                scales[trace] = imp_int / spec.traces[trace].impulse
            try:
                compiled = {t: compile_expression(name, e, scales, s_w, fmt) for t, e in spec.rules.items()}
            except RuleError:
                if best is None:
                    raise
                break  # smaller traces push coefficients out of range: keep the best so far
            coeffs = [c for _, rep in compiled.values() for c in rep.coefficients]
            underflows = sum(c.mantissa == 0 for c in coeffs)
            worst = max((c.rel_error for c in coeffs), default=0.0)
            key = (underflows, worst)
            if best is None or key < best[0]:
                best = (key, imp_int, compiled)
            if underflows == 0 and worst <= 0.25:
                break
        (underflows, _), imp_int, compiled = best
        if underflows:
            bad = [c.term for _, rep in compiled.values() for c in rep.coefficients if c.mantissa == 0]
            raise RuleError(
                f"coefficient(s) of {bad} underflow the learning engine's smallest scaling factor 2^{fmt.exponent_min} "
                "at every trace scale; use a larger learning rate, a longer t_epoch, or a coarser weight scale",
                node=name,
                field="rules",
            )
        per_trace, compiled = self._refine_impulses(name, spec, spike_traces, trace_scales, s_w, imp_int, compiled)
        for trace in spike_traces:
            impulses[trace] = float(per_trace[trace])
            # steady-state mean of a trace driven at p spikes/step: imp * p / (1 - exp(-1/tau))
            tau_steps = taus[trace]
            gain = per_trace[trace] / (1 - math.exp(-1.0 / tau_steps)) if tau_steps else float(per_trace[trace])
            p_sat = fmt.trace_max / gain
            who = "pre" if trace in PRE_TRACES else "post"
            self.report.notes.append(
                f"{name}.{trace}: impulse {per_trace[trace]}, tau {tau_steps} steps: the 7-bit trace saturates when "
                f"the {who} neurons fire more than {p_sat:.3g} spikes/step on average "
                f"({p_sat / self.dt:.3g} per time unit); lower it with trace_impulse= if they do"
            )
        if imp_int != min(fmt.default_impulse, fmt.trace_max) and spike_traces:
            self.report.notes.append(
                f"{name}: trace impulse lowered to {imp_int} (from {fmt.default_impulse}) so that every rule "
                "coefficient is representable"
            )
        rules = {}
        for target, (code, rep) in compiled.items():
            rules[target] = code
            self.report.rules.append(rep)
        lo, hi = spec.w_bounds
        mag = self.t.weights.magnitude_max
        enforced = {"lo": (-mag - 1) / s_w if lo < 0 else 0.0, "hi": mag / s_w if hi > 0 else 0.0}
        self.report.notes.append(
            f"{name}: the engine clips weights to [{enforced['lo']:.6g}, {enforced['hi']:.6g}] (8-bit range); "
            f"requested w_bounds [{lo:g}, {hi:g}]"
        )
        return LearningProgram(
            rules=rules,
            impulses=impulses,
            taus=taus,
            t_epoch=spec.t_epoch,
            third_factor=dict(spec.third_factor),
        )


def _rule_error(compiled: dict) -> tuple[int, float]:
    coeffs = [c for _, rep in compiled.values() for c in rep.coefficients]
    return sum(c.mantissa == 0 for c in coeffs), max((c.rel_error for c in coeffs), default=0.0)


def _refine(
    compile_with: Callable[[dict[str, int]], dict | None], traces: list[str], start: int, compiled: dict
) -> tuple[dict[str, int], dict]:
    """Coordinate descent over per-trace impulses in ``[start//2, start]``, minimising the worst coefficient error.

    The 4-bit mantissa cannot hold most ratios between coefficients (e.g. A-/A+ = 1.05); different trace
    scales can.  Only strict improvements are taken and larger impulses are tried first, so precision is
    kept where it costs nothing.
    """
    current = {t: start for t in traces}
    best_key = _rule_error(compiled)
    for _ in range(2):
        improved = False
        for trace in traces:
            for candidate in range(start, max(1, start // 2) - 1, -1):
                trial = dict(current, **{trace: candidate})
                result = compile_with(trial)
                if result is None:
                    continue
                key = _rule_error(result)
                if key[0] < best_key[0] or (key[0] == best_key[0] and key[1] < best_key[1] - 1e-12):
                    current, best_key, compiled, improved = trial, key, result, True
        if not improved:
            break
    return current, compiled


def place(program: Program, target: Target) -> ResourceReport:
    """First-fit placement of populations onto cores (synapses live with their post neurons).

    A population larger than a core's neuron or synapse budget is split across cores.  Raises
    :class:`~neuro_hw.errors.ValidationError` when the chip is exceeded or a neuron's fan-in is too large.
    """
    res = target.resources
    fan_in: dict[str, int] = {name: 0 for name in program.neurons}
    syn_bits_per_neuron: dict[str, float] = {name: 0.0 for name in program.neurons}
    synapses_total = 0
    for conn in program.connections.values():
        n_t, n_s = conn.weights.shape
        fan_in[conn.target] += n_s
        bits = res.bits_per_plastic_synapse if conn.learning else res.bits_per_synapse
        syn_bits_per_neuron[conn.target] += n_s * bits
        synapses_total += n_t * n_s
    placement: list[Placement] = []
    core, used_neurons, used_bits = 0, 0, 0
    for name, pop in program.neurons.items():
        if fan_in[name] > res.fan_in_per_neuron:
            raise ValidationError(
                f"fan-in of {fan_in[name]} inputs per neuron exceeds the target's {res.fan_in_per_neuron}", node=name
            )
        per_neuron_bits = int(math.ceil(syn_bits_per_neuron[name]))
        if per_neuron_bits > res.synapse_memory_bits_per_core:
            raise ValidationError(
                f"one neuron's {per_neuron_bits} bits of synapses exceed a core's synapse memory", node=name
            )
        remaining = pop.n
        while remaining:
            room = res.neurons_per_core - used_neurons
            if per_neuron_bits:
                room = min(room, (res.synapse_memory_bits_per_core - used_bits) // per_neuron_bits)
            if room <= 0:
                core, used_neurons, used_bits = core + 1, 0, 0
                continue
            take = min(room, remaining)
            placement.append(Placement(name, core, take, int(take * fan_in[name]), take * per_neuron_bits))
            used_neurons += take
            used_bits += take * per_neuron_bits
            remaining -= take
    cores_used = (max(p.core for p in placement) + 1) if placement else 0
    if cores_used > res.cores_per_chip:
        raise ValidationError(
            f"the circuit needs {cores_used} cores; the chip has {res.cores_per_chip}", field="resources"
        )
    neurons = sum(p.n for p in program.neurons.values())
    return ResourceReport(
        cores_used=cores_used,
        cores_budget=res.cores_per_chip,
        neurons=neurons,
        neurons_budget=res.cores_per_chip * res.neurons_per_core,
        synapses=synapses_total,
        synapse_bits=sum(p.synapse_bits for p in placement),
        synapse_bits_budget=cores_used * res.synapse_memory_bits_per_core,
        placement=placement,
    )


def compile_circuit(
    circuit: Circuit,
    target: str | Target = "loihi2",
    dt: float = 1e-3,
    *,
    input_ranges: Mapping[str, float] | None = None,
    trace_impulse: int | None = None,
) -> Program:
    """Quantise ``circuit`` for ``target`` with step ``dt``; the returned Program carries its Report.

    ``input_ranges`` gives, per graded input (e.g. a third factor), the largest magnitude its float values
    take; the compiler scales it onto the target's graded payload range.  ``trace_impulse`` sets the integer
    impulse of spike-driven traces (default: the target's ``default_impulse``; lower it when traces
    saturate at the circuit's firing rates, see the report notes).
    """
    if not isinstance(circuit, Circuit):
        raise TypeError(f"compile() expects a Circuit, got {type(circuit).__name__}")
    if not (isinstance(dt, (int, float)) and math.isfinite(dt) and dt > 0):
        raise InputError(f"dt must be a positive finite number, got {dt!r}", field="dt")
    circuit.validate()
    tgt = target if isinstance(target, Target) else load_target(target)
    for name, value in (input_ranges or {}).items():
        if name not in circuit.input_names:
            raise InputError("input_ranges names a node that is not a circuit input", node=name, field="input_ranges")
        if not (math.isfinite(value) and value > 0):
            raise InputError(f"input range must be positive, got {value!r}", node=name, field="input_ranges")
    if trace_impulse is not None and not (
        isinstance(trace_impulse, int) and 1 <= trace_impulse <= tgt.learning.trace_max
    ):
        raise InputError(
            f"trace_impulse must be an integer in 1..{tgt.learning.trace_max}, got {trace_impulse!r}",
            field="trace_impulse",
        )
    return _Compiler(circuit, tgt, float(dt), input_ranges or {}, trace_impulse).run()
