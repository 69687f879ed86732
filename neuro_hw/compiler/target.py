"""Target descriptions: number formats, learning-engine limits and resources, read from TOML data.

``load_target("loihi2")`` reads ``targets/loihi2.toml`` shipped with the package; any other argument is a
path to a user's file of the same layout (e.g. a variant with fewer weight bits).  Every number the
compiler uses comes from here.  ``target.variant(**{"weights.bits": 6, "learning.rounding": "nearest"})``
makes such a variant in memory (precision studies, sweeps).

The learning engine's widths follow from two numbers: the weight format ``weights.bits`` (magnitude bits;
learned weights are ``bits + 1``-bit signed integers, so the factor width of ``w``, ``t``, ``d`` is
``bits + 1`` and the accumulator ``bits + 7`` bits: 2^-7 of a weight LSB) and ``learning.trace_bits`` (the
factor width of the traces).  Loihi 2 (Lava 0.10) is 8 and 7; a file may state ``factor_widths`` and
``accumulator_bits`` only as these derived values.  ``learning.rounding`` is how the engine rounds a weight
change to whole LSBs: ``"stochastic"`` (Loihi 2: one random number per epoch) or ``"nearest"`` (a variant).
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass, field, fields
from importlib import resources
from pathlib import Path
from typing import Any

try:  # Python 3.11+
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

from neuro_hw.errors import CircuitFileError, ValidationError


@dataclass(frozen=True)
class NeuronFormat:
    state_bits: int
    decay_bits: int
    decay_unity: int
    current_decay_offset: int
    vth_bits: int
    activation_shift: int
    bias_mant_bits: int
    bias_exp_min: int
    bias_exp_max: int
    reset_to_zero: bool
    threshold_headroom_bits: int

    @property
    def state_max(self) -> int:
        return 2 ** (self.state_bits - 1) - 1

    @property
    def vth_max(self) -> int:
        return 2**self.vth_bits - 1

    @property
    def decay_max(self) -> int:
        return 2**self.decay_bits - 1

    @property
    def bias_mant_max(self) -> int:
        return 2 ** (self.bias_mant_bits - 1) - 1


@dataclass(frozen=True)
class WeightFormat:
    bits: int
    exp_min: int
    exp_max: int
    mixed_sign_drops_lsb: bool

    @property
    def magnitude_max(self) -> int:
        return 2**self.bits - 1


@dataclass(frozen=True)
class LearningFormat:
    trace_bits: int
    impulse_fraction_bits: int
    default_impulse: int
    tau_max: int
    mantissa_min: int
    mantissa_max: int
    exponent_min: int
    exponent_max: int
    constant_bits: int
    tag_bits: int
    epoch_bits: int
    max_terms: int
    sgn_allowed: tuple[str, ...]
    decimation_max: int
    rounding: str
    #: Derived from the weight and trace widths (module doc), not read from the file.
    accumulator_bits: int = 15
    factor_widths: dict[str, int] = field(default_factory=dict)

    @property
    def trace_max(self) -> int:
        return 2**self.trace_bits - 1

    @property
    def epoch_max(self) -> int:
        return 2**self.epoch_bits - 1


@dataclass(frozen=True)
class GradedFormat:
    """Graded payloads: ``payload_bits`` is what a graded spike carries; ``forward_bits`` the resolution the
    compiler gives a graded signal that only feeds weights (signals read by the learning engine are
    limited by its 7-bit traces instead)."""

    payload_bits: int
    forward_bits: int

    @property
    def forward_max(self) -> int:
        return 2**self.forward_bits - 1

    @property
    def payload_max(self) -> int:
        return 2 ** (self.payload_bits - 1) - 1


@dataclass(frozen=True)
class Resources:
    cores_per_chip: int
    neurons_per_core: int
    synapse_memory_bits_per_core: int
    bits_per_synapse: int
    bits_per_plastic_synapse: int
    fan_in_per_neuron: int


@dataclass(frozen=True)
class Target:
    """A compilation target as data (see ``targets/loihi2.toml``)."""

    name: str
    description: str
    neuron: NeuronFormat
    weights: WeightFormat
    max_delay: int
    learning: LearningFormat
    graded: GradedFormat
    resources: Resources
    source: str
    #: The parsed file, for :meth:`variant`.
    data: dict = field(default_factory=dict, compare=False, repr=False)

    @property
    def lava_formats(self) -> bool:
        """Whether the learning engine's formats are Lava 0.10's (8-bit weights, 7-bit traces, stochastic
        rounding): only those run on the Lava backends; the emulator runs any."""
        return self.weights.bits == 8 and self.learning.trace_bits == 7 and self.learning.rounding == "stochastic"

    def variant(self, name: str | None = None, **changes: Any) -> Target:
        """A copy with ``changes`` applied, keyed ``"section.key"`` (``variant(**{"weights.bits": 6})``);
        validated as a file would be.  The name defaults to the base name plus the changes."""
        data = copy.deepcopy(self.data)
        for key, value in changes.items():
            section, _, item = key.partition(".")
            if not item or section not in data or not isinstance(data[section], dict) or item not in data[section]:
                raise ValidationError(f"unknown target setting {key!r}", field=key)
            data[section][item] = value
        label = ",".join(f"{k}={v}" for k, v in changes.items())
        data["target"]["name"] = name or (f"{self.name}[{label}]" if label else self.name)
        return _target_from_data(data, f"{self.source} ({label})" if label else self.source)


_DERIVED = ("accumulator_bits", "factor_widths")
ROUNDING_MODES = ("stochastic", "nearest")
#: The sections of a target file and the keys of the sections that are not a dataclass.
SECTIONS = ("target", "neuron", "weights", "delays", "learning", "graded", "resources")
_PLAIN_KEYS = {"target": ("name", "description"), "delays": ("max",)}
#: Settings whose value the emulator and Lava hard-wire (Lava's LIF arithmetic and weight truncation): a target
#: that changes them would compile integers that no backend runs as that chip would, so it is refused.
HARDWIRED: dict[str, Any] = {
    "neuron.state_bits": 24,
    "neuron.decay_bits": 12,
    "neuron.decay_unity": 4096,
    "neuron.current_decay_offset": 1,
    "neuron.activation_shift": 6,
    "neuron.reset_to_zero": True,
    "weights.mixed_sign_drops_lsb": True,
    "learning.impulse_fraction_bits": 8,
}


def _section(cls: type, data: dict[str, Any], section: str, file: str) -> Any:
    if section not in data:
        raise CircuitFileError(f"missing section [{section}]", file=file, field=section)
    raw = data[section]
    if not isinstance(raw, dict):
        raise ValidationError(f"must be a table [{section}], got {raw!r}", file=file, field=section)
    known = [f.name for f in fields(cls)]
    for key in raw:
        if key not in known:
            raise ValidationError(f"unknown key (known: {', '.join(known)})", file=file, field=f"{section}.{key}")
    values = {}
    for f in fields(cls):
        if f.name in _DERIVED:
            continue
        where = f"{section}.{f.name}"
        if f.name not in raw:
            raise CircuitFileError(f"missing key '{f.name}'", file=file, field=where)
        value = raw[f.name]
        if f.name == "sgn_allowed":
            if not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
                raise ValidationError(f"must be a list of names, got {value!r}", file=file, field=where)
            value = tuple(value)
        elif f.type == "int" and (isinstance(value, bool) or not isinstance(value, int)):
            raise ValidationError(f"must be an integer, got {value!r}", file=file, field=where)
        elif f.type == "bool" and not isinstance(value, bool):
            raise ValidationError(f"must be true or false, got {value!r}", file=file, field=where)
        elif f.type == "str" and not isinstance(value, str):
            raise ValidationError(f"must be a string, got {value!r}", file=file, field=where)
        if where in HARDWIRED and value != HARDWIRED[where]:
            raise ValidationError(
                f"{value!r} is not supported: the emulator and Lava implement only {HARDWIRED[where]!r} (Lava's "
                "fixed-point arithmetic, hard-wired), so a Program compiled with it would not run as such a chip; "
                "docs/targets.md lists what a target may change",
                file=file,
                field=where,
            )
        values[f.name] = value
    return cls(**values)


def load_target(target: str | os.PathLike = "loihi2") -> Target:
    """Load a target by name (shipped with neuro-hw) or from a TOML file path."""
    if not isinstance(target, (str, os.PathLike)):
        raise ValidationError(f"target must be a name or a .toml path, got {target!r}", field="target")
    text_path = str(target)
    if isinstance(target, str) and not text_path.endswith(".toml") and os.sep not in text_path:
        try:
            ref = resources.files("neuro_hw.targets").joinpath(f"{text_path}.toml")
        except ModuleNotFoundError:  # pragma: no cover
            ref = None
        if ref is None or not ref.is_file():
            raise ValidationError(
                f"unknown target {text_path!r} (shipped: loihi2); or pass a .toml path", field="target"
            )
        data_text, file = ref.read_text(), f"{text_path}.toml"
    else:
        path = Path(target)
        if not path.is_file():
            raise CircuitFileError("no such target file", file=str(path))
        try:
            data_text, file = path.read_text(encoding="utf-8"), str(path)
        except (OSError, UnicodeDecodeError) as err:
            raise CircuitFileError(f"cannot read the target file as TOML text ({err})", file=str(path)) from None
    try:
        data = tomllib.loads(data_text)
    except tomllib.TOMLDecodeError as err:
        raise CircuitFileError(f"invalid TOML ({err})", file=file) from None
    return _target_from_data(data, file)


def _target_from_data(data: dict[str, Any], file: str) -> Target:
    for section in data:
        if section not in SECTIONS:
            raise ValidationError(f"unknown section [{section}] (known: {', '.join(SECTIONS)})", file=file,
                                  field=section)  # fmt: skip
    for section, keys in _PLAIN_KEYS.items():
        for key in data.get(section, {}):
            if key not in keys:
                raise ValidationError(f"unknown key (known: {', '.join(keys)})", file=file, field=f"{section}.{key}")
    head = data.get("target", {})
    if "name" not in head:
        raise CircuitFileError("missing key 'name'", file=file, field="target.name")
    if "max" not in data.get("delays", {}):
        raise CircuitFileError("missing key 'max'", file=file, field="delays.max")
    weights = _section(WeightFormat, data, "weights", file)
    learning = _section(LearningFormat, data, "learning", file)
    for key, low, high in (("weights.bits", 1, 14), ("learning.trace_bits", 1, 15)):
        value = weights.bits if key == "weights.bits" else learning.trace_bits
        if not low <= value <= high:
            raise ValidationError(f"must lie in {low}..{high}, got {value}", file=file, field=key)
    if learning.rounding not in ROUNDING_MODES:
        raise ValidationError(
            f"unknown rounding {learning.rounding!r}; choose one of {ROUNDING_MODES}", file=file,
            field="learning.rounding",
        )  # fmt: skip
    t, w = learning.trace_bits, weights.bits + 1
    widths = {"x0": 1, "y0": 1, "x1": t, "x2": t, "y1": t, "y2": t, "y3": t, "w": w, "t": w, "d": w}
    widths["c"] = learning.constant_bits
    derived = {"accumulator_bits": weights.bits + 7, "factor_widths": widths}
    raw = data["learning"]
    for key, value in derived.items():
        if key in raw and raw[key] != value:
            raise ValidationError(
                f"is derived from weights.bits and learning.trace_bits: it must be {value!r} (or be left out), "
                f"got {raw[key]!r}",
                file=file,
                field=f"learning.{key}",
            )
    learning = LearningFormat(**{**{f.name: getattr(learning, f.name) for f in fields(learning)}, **derived})
    return Target(
        name=str(head["name"]),
        description=str(head.get("description", "")),
        neuron=_section(NeuronFormat, data, "neuron", file),
        weights=weights,
        max_delay=int(data["delays"]["max"]),
        learning=learning,
        graded=_section(GradedFormat, data, "graded", file),
        resources=_section(Resources, data, "resources", file),
        source=file,
        data=data,
    )
