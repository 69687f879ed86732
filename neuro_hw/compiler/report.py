"""The compile **Report**: every approximation the compiler made, and the resources used.

* ``parameters``: per parameter group (e.g. ``"lif.dv"``, ``"syn.weights"``): float value(s), integer
  value(s), max/mean relative error, saturation count.
* ``rules``: per plastic synapse and target: the original expression, the compiled microcode and the
  error of every coefficient.
* ``signals``: per graded signal (activity, error, graded input): its range, scale, payload levels and
  bits, what reads it; a run's saturation rates come from :func:`neuro_hw.compiler.signals.signal_usage`.
* ``weight_steps``: per plastic connection, the smallest weight change the engine can make relative to the
  typical weight (what stochastic rounding has to carry).
* ``resources``: neurons, synapses, cores used vs budget and the placement of populations on cores; per
  convolution connection the kernel it stores instead of a matrix (``resources.kernels``).
* ``notes``: approximations that are not a number (e.g. "Affine bias bypasses the synaptic filter").
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np


def _summary(values: np.ndarray) -> str:
    values = np.asarray(values).reshape(-1)
    if values.size == 0:
        return "-"
    if np.all(values == values[0]):
        return f"{values[0]:.6g}" if values.dtype.kind == "f" else str(values[0])
    if values.dtype.kind == "f":
        return f"{values.min():.4g}..{values.max():.4g} ({values.size})"
    return f"{values.min()}..{values.max()} ({values.size})"


@dataclass
class ParameterReport:
    group: str
    float_values: str
    int_values: str
    rel_error_max: float
    rel_error_mean: float
    saturated: int = 0
    unit: str = ""

    @classmethod
    def of(
        cls,
        group: str,
        original: np.ndarray,
        ints: np.ndarray,
        represented: np.ndarray,
        saturated: int = 0,
        unit: str = "",
    ) -> ParameterReport:
        from neuro_hw.compiler.quantize import relative_error

        err = relative_error(original, represented)
        return cls(
            group=group,
            float_values=_summary(np.asarray(original, dtype=np.float64)),
            int_values=_summary(np.asarray(ints)),
            rel_error_max=float(err.max()) if err.size else 0.0,
            rel_error_mean=float(err.mean()) if err.size else 0.0,
            saturated=int(saturated),
            unit=unit,
        )


@dataclass
class CoefficientReport:
    term: str
    coefficient: float
    target_value: float
    mantissa: int
    exponent: int
    represented: float
    rel_error: float


@dataclass
class RuleReport:
    synapse: str
    target: str
    original: str
    microcode: str
    coefficients: list[CoefficientReport] = field(default_factory=list)


@dataclass
class SignalReport:
    """A graded signal as compiled: ``payload = round(value * scale)`` in ``0..payload_max`` (or +-)."""

    signal: str
    roles: list[str]
    range: float
    scale: float
    payload_max: int
    bits: float
    dropped_bits: int = 0
    signed: bool = False
    rails: list[str] = field(default_factory=list)


@dataclass
class WeightStepReport:
    """The learning engine's resolution on one plastic connection: every applied change is a multiple of
    one weight LSB (``lsb`` float units, ``lsb_relative`` of the typical = median nonzero |initial| weight);
    stochastic rounding of the 2^-7-LSB accumulator makes the *expected* change as fine as ``lsb / 128``."""

    synapse: str
    lsb: float
    typical_weight: float
    lsb_relative: float
    finest_expected: float


@dataclass
class Placement:
    population: str
    core: int
    neurons: int
    synapses: int
    synapse_bits: int


@dataclass
class KernelReport:
    """A convolution (or pooling) connection: the kernel every core holding its post neurons stores, against the
    unrolled matrix it stands for.  ``synapses``: input-output pairs it connects (the unrolled matrix's structural
    entries, fewer at padded borders); ``kernel_bits`` per copy; ``copies``: cores holding post neurons;
    ``dense_bits``: what a Dense matrix of the same map would need (``n_target * n_source * bits``);
    ``lava``: how the Lava backend runs it (``"Conv"``, or ``"Dense: <reason>"``,
    :func:`~neuro_hw.compiler.conv_weights.lava_conv_reason`)."""

    connection: str
    target: str
    geometry: str
    kernel_shape: list[int]
    kernel_entries: int
    kernel_bits: int
    copies: int
    synapses: int
    fan_in: int
    dense_bits: int
    lava: str = "Conv"


@dataclass
class ResourceReport:
    cores_used: int
    cores_budget: int
    neurons: int
    neurons_budget: int
    synapses: int
    synapse_bits: int
    synapse_bits_budget: int
    placement: list[Placement] = field(default_factory=list)
    kernels: list[KernelReport] = field(default_factory=list)


@dataclass
class Report:
    target: str
    dt: float
    circuit_hash: str
    parameters: list[ParameterReport] = field(default_factory=list)
    rules: list[RuleReport] = field(default_factory=list)
    signals: list[SignalReport] = field(default_factory=list)
    weight_steps: list[WeightStepReport] = field(default_factory=list)
    resources: ResourceReport | None = None
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self, indent: int = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, allow_nan=True)

    def parameter(self, group: str) -> ParameterReport:
        for p in self.parameters:
            if p.group == group:
                return p
        raise KeyError(group)

    def format_table(self) -> str:
        """The report as readable text tables."""
        lines = [f"Compile report: target={self.target} dt={self.dt:g} circuit={self.circuit_hash[:12]}", ""]
        head = f"{'parameter group':<28} {'float':<26} {'integer':<24} {'rel.err max':>11} {'mean':>9} {'sat':>5}"
        lines += [head, "-" * len(head)]
        for p in self.parameters:
            lines.append(
                f"{p.group:<28} {p.float_values:<26} {p.int_values:<24} {p.rel_error_max:>11.2e} "
                f"{p.rel_error_mean:>9.2e} {p.saturated:>5}"
            )
        for r in self.rules:
            lines += ["", f"rule {r.synapse}.{r.target}:", f"  original : {r.original}", f"  microcode: {r.microcode}"]
            for c in r.coefficients:
                lines.append(
                    f"    {c.term:<26} c={c.coefficient:<12.6g} needs {c.target_value:<12.6g} "
                    f"-> {c.mantissa}*2^{c.exponent} = {c.represented:<12.6g} rel.err {c.rel_error:.2e}"
                )
        if self.signals:
            head = f"{'graded signal':<16} {'range':>9} {'scale':>10} {'levels':>7} {'bits':>5}  read as"
            lines += ["", head, "-" * (len(head) + 20)]
            for sig in self.signals:
                rails = f" (rails {', '.join(sig.rails)})" if sig.rails else ""
                dropped = f", {sig.dropped_bits} bit(s) dropped for the learning rate" if sig.dropped_bits else ""
                lines.append(
                    f"{sig.signal:<16} {sig.range:>9.4g} {sig.scale:>10.4g} {sig.payload_max:>7} {sig.bits:>5.2f}  "
                    f"{'signed ' if sig.signed else ''}{', '.join(sig.roles)}{rails}{dropped}"
                )
        if self.weight_steps:
            lines += ["", "learning resolution (changes are whole weight LSBs; stochastic rounding of the 2^-7 LSB "
                          "accumulator carries smaller ones on average):"]  # fmt: skip
            for ws in self.weight_steps:
                lines.append(
                    f"  {ws.synapse:<16} LSB {ws.lsb:.4g} = {ws.lsb_relative:.3g} x the typical weight "
                    f"{ws.typical_weight:.4g}; finest expected change {ws.finest_expected:.3g}"
                )
        if self.resources is not None:
            res = self.resources
            lines += [
                "",
                f"resources: cores {res.cores_used}/{res.cores_budget}, neurons {res.neurons}/{res.neurons_budget}, "
                f"synapses {res.synapses} ({res.synapse_bits} bits of {res.synapse_bits_budget} on the used cores)",
            ]
            for pl in res.placement:
                lines.append(
                    f"  core {pl.core:>3}: {pl.population:<20} neurons {pl.neurons:>6}  synapses {pl.synapses:>8} "
                    f"({pl.synapse_bits} bits)"
                )
            for k in res.kernels:
                lines.append(
                    f"  kernel {k.connection} -> {k.target}: {k.geometry}; stores {k.kernel_entries} weights "
                    f"({k.kernel_bits} bits) on each of {k.copies} core(s) for {k.synapses} synapses (fan-in "
                    f"{k.fan_in}); a dense matrix would need {k.dense_bits} bits; Lava: {k.lava}"
                )
        if self.notes:
            lines += ["", "approximations and notes:"] + [f"  - {n}" for n in self.notes]
        return "\n".join(lines)
