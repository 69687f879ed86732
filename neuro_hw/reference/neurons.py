r"""Float64 neuron models of the reference simulator: NIR's ODEs discretised over a step ``dt``.

Conventions (shared with :mod:`neuro_hw.reference.engine`):

* the input ``x`` of a node is **held constant over the step** (zero-order hold); a spike is the value 1
  held for one step (amplitude 1, not ``1/dt``).  With ``r = tau/dt``, as NIR exporters of snnTorch and
  Norse write, one spike through weight ``W`` then raises ``v`` by ``W`` under Euler and by
  ``W tau/dt (1 - exp(-dt/tau))`` (about ``W``) under exact integration;
* all states start at 0 (NIR stores no initial state; Lava, snnTorch and Norse start at 0 too);
* spiking models emit ``z = [v > v_threshold]`` (strict, NIR's Heaviside) *after* the update and reset
  ``v <- v_reset`` where ``z``; the output is ``z`` (0.0/1.0), otherwise the output is ``v``.

Models (``a = exp(-dt/tau)``, ``a_m = exp(-dt/tau_mem)``, ``a_s = exp(-dt/tau_syn)``), method ``"exact"``:

.. math::

    \text{LI, LIF:}\quad & \tau \dot v = (v_{leak} - v) + R I
        &&\Rightarrow v \leftarrow v_{leak} + (v - v_{leak}) a + R x (1 - a) \\
    \text{CubaLI, CubaLIF:}\quad & \tau_{syn} \dot i = -i + w_{in} x,\ \tau_{mem} \dot v = (v_{leak} - v) + R i
        &&\Rightarrow i \leftarrow i_\infty + (i - i_\infty) a_s,\ i_\infty = w_{in} x \\
    & && \phantom{\Rightarrow} v \leftarrow v_{leak} + (v - v_{leak}) a_m
        + R [i_\infty (1 - a_m) + (i - i_\infty) k] \\
    \text{I, IF:}\quad & \dot v = R I &&\Rightarrow v \leftarrow v + R x\, dt

with ``k = tau_syn (a_s - a_m) / (tau_syn - tau_mem)`` (the exact convolution of the decaying current with
the membrane kernel; ``k = (dt/tau) exp(-dt/tau)`` in the limit ``tau_syn = tau_mem``, used when the two
differ by less than 1e-6 relative, where the difference formula loses precision).  Method ``"euler"``:
``v <- v + dt/tau (v_leak - v + R x)``; CubaLIF updates ``i`` and ``v`` from the *old* ``i``:
``i' = i + dt/tau_syn (-i + w_in x)``, ``v' = v + dt/tau_mem (v_leak - v + R i)``.  Units are NIR's: time
constants and ``dt`` in the same time unit, ``v`` in voltage units, ``R I`` in voltage units.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import nir
import numpy as np

from neuro_hw.errors import UnsupportedNodeError, ValidationError

NEURON_TYPES: tuple[str, ...] = ("LI", "LIF", "CubaLI", "CubaLIF", "I", "IF")
SPIKING = ("LIF", "CubaLIF", "IF")
METHODS = ("exact", "euler")
#: Relative |tau_syn - tau_mem| below which the equal-tau limit of the CubaLIF kernel is used.
EQUAL_TAU_RTOL = 1e-6


def _param(node: nir.NIRNode, name: str, shape: tuple[int, ...], positive: bool = False) -> np.ndarray:
    value = getattr(node, name, None)
    if value is None:
        raise ValidationError("missing parameter", field=name)
    arr = np.asarray(value, dtype=np.float64)
    try:
        arr = np.broadcast_to(arr, shape).copy()
    except ValueError:
        raise ValidationError(f"shape {arr.shape} does not match the population shape {shape}", field=name) from None
    if not np.all(np.isfinite(arr)):
        raise ValidationError("all values must be finite", field=name)
    if positive and np.any(arr <= 0):
        raise ValidationError(f"must be > 0, got min {arr.min():g}", field=name)
    return arr


@dataclass
class NeuronStepper:
    """Discretised dynamics of one NIR neuron node, with coefficients precomputed for ``dt`` and ``method``."""

    kind: str
    shape: tuple[int, ...]
    state_vars: tuple[str, ...]
    spiking: bool
    coeffs: dict[str, np.ndarray] = field(default_factory=dict)
    method: str = "exact"

    def init_state(self, batch: int) -> dict[str, np.ndarray]:
        """All state variables at 0, shape ``(batch, *shape)``."""
        return {var: np.zeros((batch,) + self.shape) for var in self.state_vars}

    def step(self, state: dict[str, np.ndarray], x: np.ndarray) -> np.ndarray:
        """Advance ``state`` in place by one step with input ``x`` ``(batch, *shape)``; return the output."""
        c = self.coeffs
        v = state["v"]
        if self.kind in ("LI", "LIF"):
            # exact: v = v_leak + (v - v_leak) a + r x (1 - a); euler: a = 1 - dt/tau, same form
            v *= c["a"]
            v += c["leak_term"] + c["in_gain"] * x
        elif self.kind in ("CubaLI", "CubaLIF"):
            i = state["i"]
            i_inf = c["w_in"] * x
            if self.method == "exact":
                v *= c["a_m"]
                v += c["leak_term"] + c["r"] * (i_inf * c["one_minus_a_m"] + (i - i_inf) * c["k"])
                i *= c["a_s"]
                i += i_inf * c["one_minus_a_s"]
            else:
                v += c["dt_m"] * (c["v_leak"] - v + c["r"] * i)
                i += c["dt_s"] * (i_inf - i)
        else:  # I, IF
            v += c["in_gain"] * x
        if not self.spiking:
            return v.copy()
        z = v > c["v_threshold"]
        np.copyto(v, np.broadcast_to(c["v_reset"], v.shape), where=z)
        return z.astype(np.float64)


def build_neuron(node: nir.NIRNode, dt: float, method: str = "exact") -> NeuronStepper:
    """Precompute the step of ``node`` (a NIR LI, LIF, CubaLI, CubaLIF, I or IF) for ``dt`` and ``method``."""
    kind = type(node).__name__
    if kind not in NEURON_TYPES:
        raise UnsupportedNodeError(f"{kind} is not a neuron model (supported: {', '.join(NEURON_TYPES)})")
    if not (isinstance(dt, (int, float, np.floating)) and math.isfinite(dt) and dt > 0):
        raise ValidationError(f"dt must be a positive finite number, got {dt!r}", field="dt")
    if method not in METHODS:
        raise ValidationError(f"method must be one of {METHODS}, got {method!r}", field="method")
    shape = tuple(int(s) for s in np.atleast_1d(np.asarray(node.output_type["output"])))
    r = _param(node, "r", shape)
    coeffs: dict[str, np.ndarray] = {}
    if kind in ("LI", "LIF"):
        tau = _param(node, "tau", shape, positive=True)
        v_leak = _param(node, "v_leak", shape)
        # 1 - a via expm1: exact to the last bit even when dt << tau
        one_minus_a = -np.expm1(-dt / tau) if method == "exact" else dt / tau
        a = 1.0 - one_minus_a
        coeffs.update(a=a, leak_term=v_leak * one_minus_a, in_gain=r * one_minus_a)
        state_vars = ("v",)
    elif kind in ("CubaLI", "CubaLIF"):
        tau_s = _param(node, "tau_syn", shape, positive=True)
        tau_m = _param(node, "tau_mem", shape, positive=True)
        v_leak = _param(node, "v_leak", shape)
        w_in = _param(node, "w_in", shape)
        # 1 - a and differences of decays via expm1, exact even when dt << tau
        one_minus_a_s, one_minus_a_m = -np.expm1(-dt / tau_s), -np.expm1(-dt / tau_m)
        a_s, a_m = 1.0 - one_minus_a_s, 1.0 - one_minus_a_m
        close = np.abs(tau_s - tau_m) <= EQUAL_TAU_RTOL * np.maximum(tau_s, tau_m)
        safe = np.where(close, 1.0, tau_s - tau_m)
        tau = 0.5 * (tau_s + tau_m)
        k = np.where(close, (dt / tau) * np.exp(-dt / tau), tau_s * (one_minus_a_m - one_minus_a_s) / safe)
        coeffs.update(
            a_s=a_s,
            a_m=a_m,
            k=k,
            r=r,
            w_in=w_in,
            v_leak=v_leak,
            leak_term=v_leak * one_minus_a_m,
            one_minus_a_m=one_minus_a_m,
            one_minus_a_s=one_minus_a_s,
            dt_s=dt / tau_s,
            dt_m=dt / tau_m,
        )
        state_vars = ("i", "v")
    else:  # I, IF
        coeffs.update(in_gain=r * dt)
        state_vars = ("v",)
    spiking = kind in SPIKING
    if spiking:
        coeffs["v_threshold"] = _param(node, "v_threshold", shape)
        coeffs["v_reset"] = _param(node, "v_reset", shape)
    return NeuronStepper(kind, shape, state_vars, spiking, coeffs, method)
