"""The plasticity extension: learning rules attached to weight nodes of a NIR graph.

A :class:`Plasticity` attaches to one weight node (``Linear`` or ``Affine``) with weight matrix
``W`` of shape ``(n_post, n_pre)`` and names its presynaptic node ``pre`` (whose output feeds the
weight node) and its postsynaptic neuron node ``post`` (which the weight node feeds).

Traces (float reference semantics; ``dt`` is the simulation step, ``tau`` in the graph's time unit)::

    x_k[t] = x_k[t-1] * exp(-dt / tau_k) + impulse_k * s_pre[t]        k = 1, 2
    y_k[t] = y_k[t-1] * exp(-dt / tau_k) + impulse_k * s_post[t]       k = 1, 2, 3

``s[t]`` is 1 when the node's output at step ``t`` is nonzero (graded payloads count as one event).
``tau = 0`` keeps only the current step's impulse; ``tau = inf`` never decays.

**Graded presynaptic activity.** ``traces={"x1": "activity"}`` makes ``x1`` the pre node's graded
output itself (a graded neuron or a graded input), held while it is zero::

    x1[t] = pre[t]  if pre[t] != 0  else  x1[t-1]                (Loihi 2: the graded spike overwrites x1)

so ``dw = c*x0*x1*...`` uses the pre activity of its last nonzero step in the epoch.

**Third factors.** ``third_factor`` binds a name to a node of size ``n_post`` (an ``Input`` or a neuron
population) whose output is read, not accumulated:

* a post trace (``{"y2": "reward"}``): ``y2`` is *set* every step to the node's output (unsigned, as the
  engine's y registers); the rule uses ``y2`` or the node's name;
* any other name (``{"e": "err"}``): a signed **modulator** ``e`` usable by that name in the rules
  (``dw = -0.01*e*x1``), typically an error computed on chip by a graded neuron; compilers carry it in
  the post traces (Loihi 2: its positive and negative parts in ``y2`` and ``y3``).

Third factors are read **at the last step of the epoch** (the engine overwrites its y registers every
step and reads the last value), whatever the product's dependency.

Every ``t_epoch`` steps (at steps ``t`` with ``t % t_epoch == 0``) each rule ``dz = sum_k c_k prod_j
f_kj`` (``z`` in ``w``, ``t``, ``d``) is evaluated for every synapse and added to ``z``; ``w`` is then
clipped to ``w_bounds``.  Factors are read as the learning engine reads them: in a product whose
dependency is ``y0`` the spike traces are taken at the post neuron's last spike in the epoch, for
``x0`` at the pre neuron's last spike, otherwise at the end of the epoch (see :mod:`neuro_hw.ir.rules`).

**Plasticity mask** (per-synapse connectivity).  ``mask`` (bool, ``(n_post, n_pre)``, optional) lists the
synapses that exist: an *absent* synapse (``mask[i, j] == False``) has weight 0 in the graph, never learns and
stays 0 (its ``w``, ``t``, ``d`` are 0 throughout), whatever its pre, post and modulators do; the rules, the
epoch and the ``w_bounds`` clip apply to the *present* synapses only.  Without a mask every entry of the matrix
is a synapse (a zero weight grows as soon as its factors are active).  Compilers map a mask to sparse synapse
storage (Loihi 2: only the present synapses take synapse memory and learn).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from neuro_hw import limits
from neuro_hw.errors import RuleError
from neuro_hw.ir.rules import (
    POST_TRACES,
    TARGET_VARIABLE,
    TARGETS,
    TRACES,
    Expression,
    _entry,
    _number,
    as_expression,
    is_modulator_name,
)

#: A trace spec meaning "the pre node's graded output" (x1 only).
ACTIVITY = "activity"

#: Default trace parameters (impulse 1, tau 20 ms in seconds) used for traces a rule does not configure.
DEFAULT_IMPULSE = 1.0
DEFAULT_TAU = 0.02


@dataclass(frozen=True)
class Trace:
    """A synaptic trace: ``impulse`` added per spike, decay time constant ``tau`` (graph time unit); or, with
    ``activity=True`` (x1 only), the pre node's graded output, held while zero (module doc)."""

    impulse: float = DEFAULT_IMPULSE
    tau: float = DEFAULT_TAU
    activity: bool = False

    def __post_init__(self) -> None:
        for name in ("impulse", "tau"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
                raise RuleError(f"trace {name} must be a number, got {value!r}", field=name)
        if not isinstance(self.activity, bool):
            raise RuleError(f"trace 'activity' must be true or false, got {self.activity!r}", field="activity")
        if not math.isfinite(self.impulse):
            raise RuleError(f"trace impulse must be finite, got {self.impulse!r}", field="impulse")
        if abs(self.impulse) > limits.MAX_ABS_VALUE:
            raise RuleError(f"trace impulse {self.impulse!r} is larger in magnitude than "
                            f"{limits.limit_name('MAX_ABS_VALUE')}", field="impulse")  # fmt: skip
        if math.isnan(self.tau) or self.tau < 0:
            raise RuleError(f"trace tau must be >= 0 (or inf), got {self.tau!r}", field="tau")

    def to_dict(self) -> dict:
        if self.activity:
            return {"impulse": self.impulse, "tau": self.tau, "activity": True}
        return {"impulse": self.impulse, "tau": self.tau}

    @classmethod
    def from_dict(cls, data: Mapping) -> Trace:
        data = _entry(data, "trace", ("impulse", "tau"), ("activity",))
        activity = data.get("activity", False)
        if not isinstance(activity, bool):
            raise RuleError(f"trace 'activity' must be true or false, got {activity!r}", field="traces")
        return cls(_number(data["impulse"], "impulse"), _number(data["tau"], "tau"), activity)


@dataclass
class Plasticity:
    """Learning rules of one weight node (see module docstring for the semantics).

    Parameters
    ----------
    pre, post:
        Names of the presynaptic node (feeds the weight node) and postsynaptic neuron node.
    rules:
        Target (``"dw"``, ``"dt"``, ``"dd"``) -> :class:`~neuro_hw.ir.rules.Expression`.
    traces:
        Trace name (``x1 x2 y1 y2 y3``) -> :class:`Trace`; missing traces get the defaults.
    third_factor:
        Post trace or modulator name -> node whose output sets that trace every step (``{"y2": "reward"}``)
        or is the signed modulator of that name (``{"e": "err"}``); see the module doc.
    t_epoch:
        Learning epoch in steps (rules applied at steps ``t % t_epoch == 0``).
    w_bounds:
        ``(w_min, w_max)`` clip applied to ``w`` after every update.
    mask:
        Optional bool ``(n_post, n_pre)`` array of the synapses that exist (module doc); ``None``: all of them.
    """

    pre: str
    post: str
    rules: dict[str, Expression]
    traces: dict[str, Trace] = field(default_factory=dict)
    third_factor: dict[str, str] = field(default_factory=dict)
    t_epoch: int = 1
    w_bounds: tuple[float, float] = (-math.inf, math.inf)
    mask: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.mask = as_mask(self.mask)
        for name, kind in (("rules", Mapping), ("traces", Mapping), ("third_factor", Mapping)):
            if not isinstance(getattr(self, name), kind):
                raise RuleError(f"{name} must be a mapping, got {type(getattr(self, name)).__name__}", field=name)
        self.rules = dict(self.rules)
        unknown = sorted(str(k) for k in self.traces if k not in TRACES)
        if unknown:
            raise RuleError(f"unknown trace(s) {unknown}; expected {', '.join(TRACES)}", field="traces")
        for name, trace in self.traces.items():
            if not isinstance(trace, Trace):
                raise RuleError(f"trace {name} must be a Trace, got {type(trace).__name__}", field="traces")
        self.traces = {name: self.traces.get(name, Trace()) for name in TRACES}
        self.third_factor = dict(self.third_factor)
        bounds = self.w_bounds
        if not isinstance(bounds, (tuple, list)) or len(bounds) != 2:
            raise RuleError(f"w_bounds must be a pair (w_min, w_max), got {bounds!r}", field="w_bounds")
        self.w_bounds = (_number(bounds[0], "w_bounds"), _number(bounds[1], "w_bounds"))
        for value in self.w_bounds:
            if math.isfinite(value) and abs(value) > limits.MAX_ABS_VALUE:
                raise RuleError(f"w_bounds {self.w_bounds} exceed {limits.limit_name('MAX_ABS_VALUE')} (use +-inf "
                                "for no bound)", field="w_bounds")  # fmt: skip
        for name, expr in self.rules.items():
            if not isinstance(expr, Expression):
                raise RuleError(f"rule {name!r} must be an Expression, got {type(expr).__name__}", field="rules")
        self.check()

    # -- construction ------------------------------------------------------------------------------
    @classmethod
    def create(
        cls,
        pre: str,
        post: str,
        rules: str | Expression | Mapping | list,
        *,
        traces: Mapping[str, Trace | Mapping | tuple] | None = None,
        third_factor: Mapping[str, str] | None = None,
        t_epoch: int = 1,
        w_bounds: tuple[float, float] = (-math.inf, math.inf),
        mask: np.ndarray | None = None,
    ) -> Plasticity:
        """Build from user-friendly forms.

        ``rules`` may be one rule string (``"dw = ..."``), a list of rule strings / Expressions, or a
        mapping ``{"dw": "0.01*x1*y0", ...}``.  Trace specs may be :class:`Trace`, ``{"impulse": ..,
        "tau": ..}``, ``(impulse, tau)`` or ``"activity"`` (x1: the pre node's graded output).  Third-factor
        node names may be used as symbols in the rule strings (``"dw = 0.1*x1*reward"`` with
        ``third_factor={"y2": "reward"}``), and modulator names as well (``"dw = -0.01*e*x1"`` with
        ``third_factor={"e": "err"}``).  ``mask``: a 0/1 or bool ``(n_post, n_pre)`` array of the synapses that
        exist (module doc).
        """
        third_factor = dict(third_factor or {})
        aliases = {source: key for key, source in third_factor.items()}
        modulators = [key for key in third_factor if key not in POST_TRACES]
        parsed: dict[str, Expression] = {}
        if isinstance(rules, (str, Expression)):
            rules = [rules]
        items = rules.items() if isinstance(rules, Mapping) else [(None, r) for r in rules]
        for target, rule in items:
            expr = as_expression(rule, target=target, aliases=aliases, modulators=modulators)
            if expr.target in parsed:
                raise RuleError(f"two rules for target {expr.target!r}", field="rules")
            parsed[expr.target] = expr
        trace_objs = {}
        for name, spec in (traces or {}).items():
            if isinstance(spec, Trace):
                trace_objs[name] = spec
            elif isinstance(spec, str):
                if spec != ACTIVITY:
                    raise RuleError(f"trace {name}: unknown spec {spec!r} (use {ACTIVITY!r} or (impulse, tau))",
                                    field="traces")  # fmt: skip
                trace_objs[name] = Trace(activity=True)
            elif isinstance(spec, Mapping):
                activity = spec.get("activity", False)
                if not isinstance(activity, bool):
                    raise RuleError(f"trace {name}: 'activity' must be true or false, got {activity!r}",
                                    field="traces")  # fmt: skip
                try:
                    impulse, tau = float(spec.get("impulse", DEFAULT_IMPULSE)), float(spec.get("tau", DEFAULT_TAU))
                except (TypeError, ValueError, OverflowError):
                    raise RuleError(f"trace {name}: impulse and tau must be numbers, got {dict(spec)!r}",
                                    field="traces") from None  # fmt: skip
                trace_objs[name] = Trace(impulse, tau, activity)
            else:
                try:
                    impulse, tau = spec
                    trace_objs[name] = Trace(float(impulse), float(tau))
                except (TypeError, ValueError, OverflowError):
                    raise RuleError(f"trace {name}: expected (impulse, tau), a mapping, a Trace or {ACTIVITY!r}, got "
                                    f"{spec!r}", field="traces") from None  # fmt: skip
        unknown = set(trace_objs) - set(TRACES)
        if unknown:
            raise RuleError(f"unknown trace(s) {sorted(unknown)}; expected {', '.join(TRACES)}", field="traces")
        if isinstance(t_epoch, np.integer):
            t_epoch = int(t_epoch)
        if isinstance(t_epoch, float) and t_epoch.is_integer() and abs(t_epoch) <= limits.MAX_T_EPOCH:
            t_epoch = int(t_epoch)  # 10.0 -> 10; 1.5, inf, True and "2" are refused by check()
        if not isinstance(w_bounds, (tuple, list)):
            raise RuleError(f"w_bounds must be a pair (w_min, w_max), got {w_bounds!r}", field="w_bounds")
        return cls(pre, post, parsed, trace_objs, third_factor, t_epoch, tuple(w_bounds), mask)

    # -- checks ------------------------------------------------------------------------------------
    def check(self) -> None:
        """Self-consistency (graph-independent); graph checks live in :mod:`neuro_hw.ir.validate`."""
        if not self.rules:
            raise RuleError("a plasticity spec needs at least one rule", field="rules")
        for target, expr in self.rules.items():
            if target not in TARGETS or expr.target != target:
                raise RuleError(f"rule stored under {target!r} has target {expr.target!r}", field="rules")
        unknown = set(self.traces) - set(TRACES)
        if unknown:
            raise RuleError(f"unknown trace(s) {sorted(unknown)}", field="traces")
        for key, source in self.third_factor.items():
            if key not in POST_TRACES and not is_modulator_name(key):
                raise RuleError(
                    f"third factor {source!r} is bound to {key!r}; bind it to a post trace "
                    f"({', '.join(POST_TRACES)}) or to a modulator name (an identifier that is not a rule symbol)",
                    field="third_factor",
                )
            if not isinstance(source, str) or not source:
                raise RuleError(f"third factor {key!r} must name a node, got {source!r}", field="third_factor")
        for name, trace in self.traces.items():
            if trace.activity and name != "x1":
                raise RuleError(f"only x1 can carry the pre activity (got it on {name})", field="traces")
            if trace.activity and name in self.third_factor:
                raise RuleError(f"{name} cannot be both the pre activity and a third factor", field="traces")
        unknown_symbols = sorted(
            s for s in self.symbols if s not in self.third_factor and is_modulator_name(s)
        )  # fmt: skip
        if unknown_symbols:
            raise RuleError(
                f"unknown symbol {unknown_symbols[0]!r} in the rules: neither a rule symbol nor a third-factor name "
                f"({sorted(self.third_factor)})",
                field="rules",
            )
        if isinstance(self.t_epoch, bool) or not isinstance(self.t_epoch, int) or self.t_epoch < 1:
            raise RuleError(f"t_epoch must be an integer >= 1, got {self.t_epoch!r}", field="t_epoch")
        if self.t_epoch > limits.MAX_T_EPOCH:
            raise RuleError(f"t_epoch {self.t_epoch} is more than {limits.limit_name('MAX_T_EPOCH')} steps",
                            field="t_epoch")  # fmt: skip
        for role in ("pre", "post"):
            if not isinstance(getattr(self, role), str) or not getattr(self, role):
                raise RuleError(f"{role} must name a node, got {getattr(self, role)!r}", field=role)
        lo, hi = self.w_bounds
        if math.isnan(lo) or math.isnan(hi) or not lo < hi:
            raise RuleError(f"w_bounds must satisfy w_min < w_max, got {self.w_bounds}", field="w_bounds")

    @property
    def variables(self) -> tuple[str, ...]:
        """Synaptic variables this spec changes (``w`` always exists; ``t``, ``d`` if a rule targets them)."""
        return tuple(TARGET_VARIABLE[t] for t in TARGETS if t in self.rules)

    @property
    def symbols(self) -> frozenset[str]:
        return frozenset(s for expr in self.rules.values() for s in expr.symbols)

    @property
    def modulators(self) -> dict[str, str]:
        """Modulator name -> source node (third factors not bound to a post trace)."""
        return {k: v for k, v in self.third_factor.items() if k not in POST_TRACES}

    @property
    def bound_traces(self) -> dict[str, str]:
        """Post trace -> source node (third factors bound to y1, y2 or y3)."""
        return {k: v for k, v in self.third_factor.items() if k in POST_TRACES}

    @property
    def pre_activity(self) -> bool:
        """Whether ``x1`` is the pre node's graded output (``traces={"x1": "activity"}``)."""
        return self.traces["x1"].activity

    @property
    def present(self) -> int | None:
        """Number of synapses that exist (``None`` without a mask: every entry)."""
        return None if self.mask is None else int(self.mask.sum())

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Plasticity):
            return NotImplemented
        if (self.mask is None) != (other.mask is None):
            return False
        same_mask = self.mask is None or (self.mask.shape == other.mask.shape and np.array_equal(self.mask, other.mask))
        return same_mask and self.to_dict() == other.to_dict()

    __hash__ = None  # type: ignore[assignment]  # mutable, as the dataclass it was

    # -- (de)serialisation ---------------------------------------------------------------------------
    def to_dict(self) -> dict:
        """The JSON form.  A mask is not in it, only its marker ``{"shape": [n_post, n_pre], "present": k}``
        (the array goes beside it, :mod:`neuro_hw.ir.io` stores it as an HDF5 dataset)."""
        marker = {} if self.mask is None else {"mask": {"shape": list(self.mask.shape), "present": self.present}}
        return {
            "pre": self.pre,
            "post": self.post,
            "rules": {t: e.to_dict() for t, e in self.rules.items()},
            "rule_strings": {t: str(e) for t, e in self.rules.items()},
            "traces": {k: v.to_dict() for k, v in self.traces.items()},
            "third_factor": dict(self.third_factor),
            "t_epoch": self.t_epoch,
            "w_bounds": list(self.w_bounds),
            **marker,
        }

    @classmethod
    def from_dict(cls, data: Mapping, mask: np.ndarray | None = None) -> Plasticity:
        """Rebuild from :meth:`to_dict`'s form, checking every field's type (a file may hold anything).

        ``mask``: the array of a masked entry (its ``"mask"`` marker must be there and match its shape and count)."""
        required = ("pre", "post", "rules", "traces", "t_epoch", "w_bounds")
        data = _entry(data, "plasticity entry", required, ("rule_strings", "third_factor", "mask"))
        mask = as_mask(mask)
        if "mask" in data and data["mask"] is None:
            raise RuleError("'mask' must be an object (the mask marker), got null", field="mask")
        check_mask_marker(data.get("mask"), mask)
        for key in ("rules", "traces", "third_factor", "rule_strings"):
            if not isinstance(data.get(key, {}), Mapping):
                raise RuleError(f"{key} must be an object, got {type(data[key]).__name__}", field=key)
        for key, source in data.get("third_factor", {}).items():
            if not isinstance(source, str):
                raise RuleError(f"third factor {key!r} must name a node, got {source!r}", field="third_factor")
        w_bounds = data["w_bounds"]
        if not isinstance(w_bounds, list) or len(w_bounds) != 2:
            raise RuleError(f"w_bounds must be a list [w_min, w_max], got {w_bounds!r}", field="w_bounds")
        t_epoch = data["t_epoch"]
        if isinstance(t_epoch, bool) or not isinstance(t_epoch, int):
            raise RuleError(f"t_epoch must be an integer >= 1, got {t_epoch!r}", field="t_epoch")
        rules = {}
        for target, expr in data["rules"].items():
            try:
                rules[target] = Expression.from_dict(expr)
            except RuleError as err:
                raise err.located(field=f"rules.{target}") from None
        traces = {}
        for name, trace in data.get("traces", {}).items():
            if name not in TRACES:
                raise RuleError(f"unknown trace {name!r}; expected {', '.join(TRACES)}", field="traces")
            try:
                traces[name] = Trace.from_dict(trace)
            except RuleError as err:
                raise err.located(field=f"traces.{name}") from None
        return cls(
            pre=data["pre"],
            post=data["post"],
            rules=rules,
            traces=traces,
            third_factor=dict(data.get("third_factor", {})),
            t_epoch=t_epoch,
            w_bounds=(_number(w_bounds[0], "w_bounds"), _number(w_bounds[1], "w_bounds")),
            mask=mask,
        )

    def __str__(self) -> str:
        rules = "; ".join(str(e) for e in self.rules.values())
        extra = ""
        if self.pre_activity:
            extra += "; x1 = pre activity"
        if self.third_factor:
            extra += "; " + ", ".join(f"{k} = {v}" for k, v in self.third_factor.items())
        if self.mask is not None:
            extra += f"; mask {self.present}/{self.mask.size} synapses"
        return f"Plasticity({self.pre} -> {self.post}: {rules}{extra}; t_epoch={self.t_epoch})"


def as_mask(mask: object) -> np.ndarray | None:
    """A plasticity mask as a C-contiguous bool ``(n_post, n_pre)`` array, or ``None``.

    Accepts bool arrays and integer or float arrays holding only 0 and 1; anything else (other values, NaN, a
    shape that is not 2-D, an empty matrix) is refused, never coerced."""
    if mask is None:
        return None
    try:
        arr = np.asarray(mask)
    except (TypeError, ValueError) as err:
        raise RuleError(f"mask must be an array of 0/1 values ({err})", field="mask") from None
    if arr.ndim != 2 or arr.size == 0:
        raise RuleError(f"mask must be a non-empty 2-D (n_post, n_pre) array, got shape {arr.shape}", field="mask")
    if arr.size > limits.MAX_ARRAY_ELEMENTS:
        raise RuleError(f"mask has {arr.size:,} entries, more than {limits.limit_name('MAX_ARRAY_ELEMENTS')}",
                        field="mask")  # fmt: skip
    if arr.dtype.kind == "b":
        return _frozen(arr)
    if arr.dtype.kind not in "iuf":
        raise RuleError(f"mask must hold 0/1 (or bool) values, got dtype {arr.dtype}", field="mask")
    bad = ~((arr == 0) | (arr == 1))
    if bad.any():
        i, j = (int(k) for k in np.argwhere(bad)[0])
        raise RuleError(f"mask must hold only 0 and 1; entry ({i}, {j}) is {arr[i, j].item()!r}", field="mask")
    return _frozen(arr == 1)


def _frozen(mask: np.ndarray) -> np.ndarray:
    """A read-only C-contiguous bool copy: a spec's mask cannot change after it was validated."""
    out = np.array(mask, dtype=bool, order="C", copy=True)
    out.setflags(write=False)
    return out


def check_mask_marker(marker: object, mask: np.ndarray | None) -> None:
    """Check a file's ``"mask"`` marker (:meth:`Plasticity.to_dict`) against the array read for it."""
    if marker is None:
        if mask is not None:
            raise RuleError("a mask array is given for an entry without a 'mask' marker", field="mask")
        return
    if not isinstance(marker, Mapping):
        raise RuleError(f"'mask' must be an object, got {type(marker).__name__}", field="mask")
    marker = _entry(marker, "mask marker", ("shape", "present"), ("dataset",))
    if mask is None:
        raise RuleError("the entry declares a mask but no mask array was read for it", field="mask")
    shape, present = marker["shape"], marker["present"]
    if not isinstance(shape, list) or [type(s) for s in shape] != [int, int] or tuple(shape) != mask.shape:
        raise RuleError(f"mask marker shape {shape!r} differs from the mask array's shape {mask.shape}", field="mask")
    if isinstance(present, bool) or not isinstance(present, int) or present != int(np.sum(mask)):
        raise RuleError(f"mask marker counts {present!r} present synapses, the array has {int(np.sum(mask))}",
                        field="mask")  # fmt: skip


def first_absent_nonzero(mask: np.ndarray | None, weights: np.ndarray) -> tuple[int, ...] | None:
    """The index of the first nonzero entry of ``weights`` (``(..., n_post, n_pre)``) on an absent synapse of
    ``mask`` (per-run weights must keep absent synapses at 0), or None."""
    if mask is None:
        return None
    stray = (np.asarray(weights) != 0) & ~mask
    return tuple(int(k) for k in np.argwhere(stray)[0]) if stray.any() else None
