"""Graded neurons: nodes whose output is a real value every step (NIR has none; stored in our extension).

Rate networks that learn from signed errors (the seed circuits) need neurons that pass a real value on each
step instead of a spike.  Two node types, both **memoryless** (no state; the one-step latency of every
weight node, as for spiking neurons, is the only delay)::

    GradedNeuron:   y[t] = f(x[t])                    x = sum of the node's inputs at step t
    ProductNeuron:  y[t] = x[t] * g(b[t])              x = sum of the inputs on port "a",
                                                       b = sum of the inputs on port "b" (gate_inputs)

Activations ``f`` (``GradedNeuron.activation``; ``c`` = ``clip``, ``beta`` = ``beta``):

=================  =============================================  ==============================================
activation         exact form (float reference)                   hardware form (``activations="hardware"``)
=================  =============================================  ==============================================
``identity``       ``x`` (signed: error neurons ``y - target``)   same
``relu``           ``max(0, x)``                                  same
``clipped_relu``   ``min(max(0, x), c)``                          same
``softplus``       ``log(1 + exp(beta x)) / beta``                hard softplus: ``0`` for ``x < -d``,
                                                                  ``(x + d)/2`` for ``|x| <= d``, ``x`` for
                                                                  ``x > d``; ``d = 2 ln 2 / beta`` (same value
                                                                  ``ln 2 / beta`` at 0, slopes 0, 1/2, 1)
=================  =============================================  ==============================================

``softplus`` may also carry ``clip`` (``min(f(x), c)``).  Gate functions ``g`` (``ProductNeuron.gate``) are
the derivative ``f'`` of an activation **written as a function of that activation's output** ``b = f(a)``,
so a product node fed with a hidden layer's activity computes ``f'(a) * x`` -- the gating of feedback
alignment, ``e_l = f'(a_l) * (B e_{l+1})``:

===========================  ============================================  ======================================
gate                         exact form                                    hardware form
===========================  ============================================  ======================================
``identity``                 ``b`` (a plain product ``x * b``)             same
``relu_derivative``          ``1 if b > 0 else 0``                         same
``clipped_relu_derivative``  ``1 if 0 < b < c else 0``                     same
``softplus_derivative``      ``1 - exp(-beta b)`` (= sigmoid(beta a))      derivative of the hard softplus as a
                                                                           function of its output: ``0`` for
                                                                           ``b <= 0``, ``1/2`` for ``0 < b < d``,
                                                                           ``1`` for ``b >= d``
===========================  ============================================  ======================================

The float reference runs the exact forms by default and the hardware forms with
``simulate(..., activations="hardware")``, so what an approximation costs is measured, not assumed.

In a ``.nir`` file each graded node is written as a stock ``nir.Scale`` of ones (identity) with
``metadata["neuro_hw"]`` naming the real type, so any NIR reader loads the file; the node itself is stored
in the ``/neuro_hw`` extension and :func:`neuro_hw.load` restores it (:mod:`neuro_hw.ir.io`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import nir
import numpy as np

from neuro_hw.errors import ValidationError

ACTIVATIONS = ("identity", "relu", "clipped_relu", "softplus")
GATES = ("identity", "relu_derivative", "clipped_relu_derivative", "softplus_derivative")
FORMS = ("exact", "hardware")
#: Node type names of graded nodes (``Circuit.type_of``).
GRADED_TYPES = ("GradedNeuron", "ProductNeuron")


def _shape(shape: Any) -> np.ndarray:
    arr = np.atleast_1d(np.asarray(shape))
    if arr.dtype.kind not in "iu" and not (arr.dtype.kind == "f" and np.all(arr == np.round(arr))):
        raise ValidationError(f"shape must be integers, got {shape!r}", field="shape")
    arr = arr.astype(np.int64)
    if arr.ndim != 1 or arr.size == 0 or np.any(arr < 1):
        raise ValidationError(f"shape must be positive integers, got {shape!r}", field="shape")
    return arr


def _positive(value: Any, name: str, allow_inf: bool = False) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValidationError(f"must be a number, got {value!r}", field=name) from None
    if math.isnan(v) or v <= 0 or (math.isinf(v) and not allow_inf):
        raise ValidationError(f"must be a positive {'number' if allow_inf else 'finite number'}, got {v!r}", field=name)
    return v


def hard_softplus_knee(beta: float) -> float:
    """``d = 2 ln 2 / beta``: where the hard softplus joins 0 and ``x`` (see module doc)."""
    return 2.0 * math.log(2.0) / beta


def activate(x: np.ndarray, activation: str, clip: float, beta: float, form: str = "exact") -> np.ndarray:
    """``f(x)`` of the module doc (float64, elementwise)."""
    x = np.asarray(x, dtype=np.float64)
    if activation == "identity":
        y = x.copy()
    elif activation in ("relu", "clipped_relu"):
        y = np.maximum(x, 0.0)
    elif activation == "softplus":
        if form == "exact":
            y = np.logaddexp(0.0, beta * x) / beta
        else:
            d = hard_softplus_knee(beta)
            y = np.where(x < -d, 0.0, np.where(x > d, x, 0.5 * (x + d)))
    else:  # pragma: no cover - validated on construction
        raise ValidationError(f"unknown activation {activation!r}", field="activation")
    if math.isfinite(clip):
        y = np.minimum(y, clip)
    return y


def gate_value(b: np.ndarray, gate: str, clip: float, beta: float, form: str = "exact") -> np.ndarray:
    """``g(b)`` of the module doc (float64, elementwise)."""
    b = np.asarray(b, dtype=np.float64)
    if gate == "identity":
        return b.copy()
    if gate == "relu_derivative":
        return (b > 0).astype(np.float64)
    if gate == "clipped_relu_derivative":
        return ((b > 0) & (b < clip)).astype(np.float64)
    if gate == "softplus_derivative":
        if form == "exact":
            return np.where(b > 0, -np.expm1(-beta * np.maximum(b, 0.0)), 0.0)
        d = hard_softplus_knee(beta)
        return np.where(b <= 0, 0.0, np.where(b < d, 0.5, 1.0))
    raise ValidationError(f"unknown gate {gate!r}", field="gate")  # pragma: no cover


@dataclass(eq=False)
class GradedNeuron(nir.NIRNode):
    """A memoryless graded neuron ``y[t] = f(x[t])`` (see module doc for ``activation``, ``clip``, ``beta``).

    ``shape`` is the output (= input) shape.  ``clip`` is the upper bound of ``clipped_relu`` (required
    there) and an optional upper bound of ``softplus``; ``beta`` the softplus sharpness.
    """

    shape: np.ndarray
    activation: str = "relu"
    clip: float = math.inf
    beta: float = 1.0

    def __post_init__(self) -> None:
        self.shape = _shape(self.shape)
        if self.activation not in ACTIVATIONS:
            raise ValidationError(
                f"unknown activation {self.activation!r}; choose one of {', '.join(ACTIVATIONS)}", field="activation"
            )
        self.clip = _positive(self.clip, "clip", allow_inf=True)
        self.beta = _positive(self.beta, "beta")
        if self.activation == "clipped_relu" and not math.isfinite(self.clip):
            raise ValidationError("clipped_relu needs a finite clip", field="clip")
        if self.activation in ("identity", "relu") and math.isfinite(self.clip):
            raise ValidationError(f"{self.activation} takes no clip (use clipped_relu)", field="clip")
        self.input_type = {"input": self.shape.copy()}
        self.output_type = {"output": self.shape.copy()}

    @property
    def signed(self) -> bool:
        """Whether the output can be negative (identity activation)."""
        return self.activation == "identity"

    def __call__(self, x: np.ndarray, form: str = "exact") -> np.ndarray:
        return activate(x, self.activation, self.clip, self.beta, form)

    def describe(self) -> str:
        extra = f", clip={self.clip:g}" if math.isfinite(self.clip) else ""
        extra += f", beta={self.beta:g}" if self.activation == "softplus" else ""
        return f"{self.activation}{extra}"

    def to_extension(self) -> dict[str, Any]:
        return {
            "type": "GradedNeuron",
            "shape": self.shape.tolist(),
            "activation": self.activation,
            "clip": self.clip,
            "beta": self.beta,
        }


@dataclass(eq=False)
class ProductNeuron(nir.NIRNode):
    """A memoryless product neuron ``y[t] = x[t] * g(b[t])`` (see module doc).

    ``gate_inputs`` names the predecessor nodes whose edges feed port ``b`` (the gate); every other
    incoming edge feeds port ``a``.  ``gate`` is the function applied to ``b``; ``gate_clip`` and
    ``gate_beta`` its parameters (the ``clip`` of a clipped ReLU, the ``beta`` of a softplus).  The output
    is signed.
    """

    shape: np.ndarray
    gate_inputs: tuple[str, ...] = ()
    gate: str = "identity"
    gate_clip: float = math.inf
    gate_beta: float = 1.0

    def __post_init__(self) -> None:
        self.shape = _shape(self.shape)
        if isinstance(self.gate_inputs, str):
            self.gate_inputs = (self.gate_inputs,)
        self.gate_inputs = tuple(str(s) for s in self.gate_inputs)
        if not self.gate_inputs:
            raise ValidationError(
                "a ProductNeuron needs gate_inputs (the predecessors feeding port b)", field="gate_inputs"
            )
        twice = sorted({s for s in self.gate_inputs if self.gate_inputs.count(s) > 1})
        if twice:
            raise ValidationError(f"gate_inputs lists {twice} more than once", field="gate_inputs")
        if self.gate not in GATES:
            raise ValidationError(f"unknown gate {self.gate!r}; choose one of {', '.join(GATES)}", field="gate")
        self.gate_clip = _positive(self.gate_clip, "gate_clip", allow_inf=True)
        self.gate_beta = _positive(self.gate_beta, "gate_beta")
        if self.gate == "clipped_relu_derivative" and not math.isfinite(self.gate_clip):
            raise ValidationError("clipped_relu_derivative needs a finite gate_clip", field="gate_clip")
        self.input_type = {"input": self.shape.copy()}
        self.output_type = {"output": self.shape.copy()}

    signed = True

    def __call__(self, x: np.ndarray, b: np.ndarray, form: str = "exact") -> np.ndarray:
        return np.asarray(x, dtype=np.float64) * gate_value(b, self.gate, self.gate_clip, self.gate_beta, form)

    def describe(self) -> str:
        extra = f", clip={self.gate_clip:g}" if math.isfinite(self.gate_clip) else ""
        extra += f", beta={self.gate_beta:g}" if self.gate == "softplus_derivative" else ""
        return f"a * {self.gate}(b{extra}), b from {', '.join(self.gate_inputs)}"

    def to_extension(self) -> dict[str, Any]:
        return {
            "type": "ProductNeuron",
            "shape": self.shape.tolist(),
            "gate_inputs": list(self.gate_inputs),
            "gate": self.gate,
            "gate_clip": self.gate_clip,
            "gate_beta": self.gate_beta,
        }


GradedNode = GradedNeuron | ProductNeuron


def is_graded(node: nir.NIRNode) -> bool:
    return isinstance(node, (GradedNeuron, ProductNeuron))


def standin(node: GradedNode) -> nir.Scale:
    """The stock NIR node written in place of ``node``: an identity ``Scale`` naming the real type."""
    return nir.Scale(np.ones(tuple(int(s) for s in node.shape)), metadata={"neuro_hw": node.to_extension()["type"]})


def from_extension(data: Mapping[str, Any]) -> GradedNode:
    """Rebuild a graded node from its extension entry (raises ValidationError/KeyError/TypeError on bad data)."""
    if not isinstance(data, Mapping):
        raise ValidationError(f"graded node entry must be an object, got {type(data).__name__}")
    kind = data.get("type")
    fields = {k: v for k, v in data.items() if k != "type"}
    if kind == "GradedNeuron":
        allowed = {"shape", "activation", "clip", "beta"}
        cls: type = GradedNeuron
    elif kind == "ProductNeuron":
        allowed = {"shape", "gate_inputs", "gate", "gate_clip", "gate_beta"}
        cls = ProductNeuron
    else:
        raise ValidationError(f"unknown graded node type {kind!r}", field="type")
    unknown = set(fields) - allowed
    if unknown:
        raise ValidationError(f"unknown field(s) {sorted(unknown)} for {kind}", field=sorted(unknown)[0])
    if "shape" not in fields:
        raise ValidationError(f"{kind} entry has no shape", field="shape")
    if "gate_inputs" in fields:
        gi = fields["gate_inputs"]
        if not isinstance(gi, list) or not all(isinstance(s, str) for s in gi):
            raise ValidationError("gate_inputs must be a list of node names", field="gate_inputs")
    for key in ("activation", "gate"):
        if key in fields and not isinstance(fields[key], str):
            raise ValidationError(f"{key} must be a string", field=key)
    for key in ("clip", "beta", "gate_clip", "gate_beta"):  # JSON numbers only: "1" and true are not coerced
        if key in fields and (isinstance(fields[key], bool) or not isinstance(fields[key], (int, float))):
            raise ValidationError(f"{key} must be a number, got {fields[key]!r}", field=key)
    return cls(**fields)
