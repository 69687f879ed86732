"""Learning stage of the compiler: a plastic connection's :class:`~neuro_hw.ir.plasticity.Plasticity` ->
the learning engine's :class:`~neuro_hw.compiler.program.LearningProgram`.

* **Traces.** A spike-driven trace ``k`` (impulse ``I_k`` in float units, time constant ``tau_k``) gets an
  integer impulse ``i_k`` and the scale ``s_k = i_k / I_k`` integers per float unit; its tau becomes whole
  steps (:func:`~neuro_hw.compiler.rules.trace_tau_steps`).  A trace bound to a third factor takes the
  scale of the node that drives it (set every step, impulse 0).  The pre activity (``x1 = "activity"``)
  is Lava's ``GradedSpikeCfg.OVERWRITE``: ``x1 = payload / 2``, so its scale is ``S_pre / 2``; its impulse
  is 0 and its tau the longest the engine has (a tau of 0 would zero it in the epoch history).
* **Modulators.** A modulator ``e`` (a signed third factor) takes free post traces: a population built
  as rails (:mod:`.graded`) takes two, ``e = y2 - y3`` (``e+`` into y2, ``e-`` into y3), an unsigned one
  takes one; every product with ``e`` becomes one product per trace with the rail's sign.
* **Impulses.** Starting from the target's ``default_impulse`` (or ``trace_impulse=``), halve the common
  impulse while a coefficient underflows the engine's smallest scaling factor or errs by more than 25 %;
  then a coordinate descent over per-trace impulses in ``[i/2, i]`` minimises the worst coefficient error
  (the 4-bit mantissa cannot hold most ratios between coefficients, e.g. A-/A+ = 1.05; different trace
  scales can).
* **Rules** are compiled by :func:`~neuro_hw.compiler.rules.compile_expression` with these scales and the
  connection's weight scale ``s_w``.
* The report gets each trace's tau error, the firing rate at which its 7-bit register saturates, the
  coefficient errors of every rule and the weight range the engine enforces.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence

import numpy as np

from neuro_hw.compiler.graph import Connection
from neuro_hw.compiler.program import LearningProgram
from neuro_hw.compiler.report import ParameterReport, Report, RuleReport
from neuro_hw.compiler.rules import compile_expression, trace_tau_steps
from neuro_hw.compiler.target import Target
from neuro_hw.errors import RuleError, UnsupportedNodeError
from neuro_hw.ir.plasticity import Plasticity
from neuro_hw.ir.rules import POST_TRACES, PRE_TRACES, SPIKES, Expression, Factor, Term


class ModulatorUnderflow(RuleError):
    """A rule coefficient on a modulator is below the engine's smallest scaling factor at the modulator's
    current scale; the pipeline retries with one bit fewer for ``signal`` (a larger coefficient)."""

    def __init__(self, reason: str, signal: str, **where: str | None) -> None:
        self.signal = signal
        super().__init__(reason, **where)


def bind_modulators(expr: Expression, binding: Mapping[str, Sequence[tuple[str, int]]]) -> Expression:
    """``expr`` with every modulator factor replaced by its post traces: a product ``c * e * f`` with
    ``binding["e"] = [("y2", 1), ("y3", -1)]`` becomes ``c * y2 * f - c * y3 * f``."""
    terms: list[Term] = []
    for term in expr.terms:
        variants: list[tuple[float, list[Factor]]] = [(term.coefficient, [])]
        for f in term.factors:
            if f.modulator:
                variants = [(c * sign, fs + [Factor(trace)]) for c, fs in variants for trace, sign in binding[f.symbol]]
            else:
                variants = [(c, fs + [f]) for c, fs in variants]
        terms += [Term(c, tuple(fs)) for c, fs in variants]
    return Expression(expr.target, tuple(terms))


#: Compiled rules: target (``dw``, ``dt``, ``dd``) -> (microcode, report).
CompiledRules = dict[str, tuple[str, RuleReport]]


def _rule_error(compiled: CompiledRules) -> tuple[int, float]:
    """(number of coefficients that underflow to 0, worst relative coefficient error)."""
    coeffs = [c for _, rep in compiled.values() for c in rep.coefficients]
    return sum(c.mantissa == 0 for c in coeffs), max((c.rel_error for c in coeffs), default=0.0)


def _refine(
    compile_with: Callable[[dict[str, int]], CompiledRules | None],
    traces: list[str],
    start: int,
    compiled: CompiledRules,
) -> tuple[dict[str, int], CompiledRules]:
    """Coordinate descent over per-trace impulses in ``[start//2, start]``, minimising the worst coefficient error.

    Only strict improvements are taken and larger impulses are tried first, so precision is kept where it
    costs nothing.
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


def _check_rules_fit(name: str, spec: Plasticity, conn: Connection, target: Target) -> None:
    fmt = target.learning
    if spec.t_epoch > fmt.epoch_max:
        raise RuleError(f"t_epoch {spec.t_epoch} exceeds the engine's {fmt.epoch_max}", node=name, field="t_epoch")
    if spec.third_factor:
        spike_traces = sorted(t for t in POST_TRACES if t in spec.symbols and t not in spec.third_factor)
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


def compile_learning(
    conn: Connection,
    spec: Plasticity,
    s_w: float,
    source_scale: Callable[[str], float],
    rails: Mapping[str, Sequence[tuple[str, int]]],
    target: Target,
    dt: float,
    trace_impulse: int | None,
    report: Report,
) -> LearningProgram:
    """The LearningProgram of plastic connection ``conn`` (weight scale ``s_w`` integers per weight unit).

    ``source_scale(node)`` is the payload scale of a node's output (1 for spikes); ``rails[node]`` lists the
    Program populations a graded node became, with the sign each stands for (:mod:`.graded`).
    """
    fmt = target.learning
    name = conn.plastic
    assert name is not None
    _check_rules_fit(name, spec, conn, target)
    trace_scales: dict[str, float] = {}
    impulses: dict[str, float] = {}
    taus: dict[str, int] = {}
    spike_traces: list[str] = []
    third_factor: dict[str, str] = {}
    for trace, source in spec.bound_traces.items():
        populations = rails.get(source, [(source, 1)])
        if len(populations) != 1:
            raise UnsupportedNodeError(
                f"third factor {trace} is bound to {source!r}, a signed population: bind it as a modulator "
                f"(third_factor={{'e': '{source}'}}) so that its sign is kept",
                node=name,
                field="third_factor",
            )
        third_factor[trace] = populations[0][0]
        trace_scales[trace] = source_scale(source)
    # modulators take the free post traces, two for a signed (railed) population
    free = [t for t in ("y2", "y3", "y1") if t not in third_factor]
    binding: dict[str, list[tuple[str, int]]] = {}
    for modulator, source in spec.modulators.items():
        populations = rails.get(source, [(source, 1)])
        if len(populations) > len(free):
            raise UnsupportedNodeError(
                f"modulator {modulator!r} needs {len(populations)} post traces (y1..y3), only {free} are free",
                node=name,
                field="third_factor",
            )
        binding[modulator] = []
        for population, sign in populations:
            trace = free.pop(0)
            third_factor[trace] = population
            trace_scales[trace] = source_scale(source)
            binding[modulator].append((trace, sign))
    expressions = {t: bind_modulators(e, binding) for t, e in spec.rules.items()}
    # traces whose value the engine reads from its overwritten registers, whenever in the epoch it reads them
    end_traces = frozenset(third_factor) | frozenset(k for k, tr in spec.traces.items() if tr.activity)
    symbols = frozenset(s for e in expressions.values() for s in e.symbols)
    for trace in PRE_TRACES + POST_TRACES:
        tr = spec.traces[trace]
        if trace in third_factor:
            impulses[trace], taus[trace] = 0.0, 0
            continue
        if tr.activity:
            trace_scales[trace] = source_scale(spec.pre) / 2.0
            impulses[trace], taus[trace] = 0.0, fmt.tau_max
            continue
        if tr.impulse == 0 or trace not in symbols:
            trace_scales[trace] = 1.0
            impulses[trace], taus[trace] = 0.0, 0
            continue
        if tr.impulse < 0:
            raise RuleError(f"trace {trace} has a negative impulse; engine traces are unsigned", node=name)
        spike_traces.append(trace)
        taus[trace] = trace_tau_steps(tr.tau, dt, fmt)
        exact = math.exp(-dt / tr.tau) if tr.tau > 0 and math.isfinite(tr.tau) else (1.0 if tr.tau else 0.0)
        repr_decay = math.exp(-1.0 / taus[trace]) if taus[trace] else 0.0
        report.parameters.append(
            ParameterReport.of(
                f"{name}.{trace}.tau",
                np.array([exact]),
                np.array([taus[trace]]),
                np.array([repr_decay]),
                unit="decay/step",
            )  # fmt: skip
        )
    if (spec.pre_activity or binding) and any(
        not any(f.symbol in SPIKES for f in term.factors) for e in spec.rules.values() for term in e.terms
    ):
        report.notes.append(
            f"{name}: a product without x0 or y0 is applied every epoch (u-dependency), also to synapses whose pre "
            "was silent in the epoch (x1 then holds an older activity); gate graded rules with x0"
        )

    def compile_with(per_trace: Mapping[str, int]) -> CompiledRules:
        scales = dict(trace_scales)
        for trace, imp in per_trace.items():
            scales[trace] = imp / spec.traces[trace].impulse
        return {t: compile_expression(name, e, scales, s_w, fmt, end_traces) for t, e in expressions.items()}

    # One common impulse first: the default, or smaller when a coefficient would underflow the engine's
    # smallest scaling factor (smaller traces leave room for larger mantissas).
    start = trace_impulse if trace_impulse is not None else fmt.default_impulse
    candidates, imp = [], min(start, fmt.trace_max)
    while imp >= 1:
        candidates.append(imp)
        imp //= 2
    best = None
    for imp_int in candidates:
        try:
            compiled = compile_with({trace: imp_int for trace in spike_traces})
        except RuleError:
            if best is None:
                raise
            break  # smaller traces push coefficients out of range: keep the best so far
        key = _rule_error(compiled)
        if best is None or key < best[0]:
            best = (key, imp_int, compiled)
        if key[0] == 0 and key[1] <= 0.25:
            break
    assert best is not None
    (underflows, _), imp_int, compiled = best
    trace_source = {trace: spec.modulators[m] for m, traces in binding.items() for trace, _ in traces}
    for rule_target, (_, rep) in compiled.items():
        for term, coefficient in zip(expressions[rule_target].terms, rep.coefficients, strict=True):
            sources = [trace_source[f.symbol] for f in term.factors if f.symbol in trace_source]
            if sources and (coefficient.mantissa == 0 or coefficient.rel_error > 0.25):
                raise ModulatorUnderflow(
                    f"coefficient {term.coefficient:g} of '{term}' needs {coefficient.target_value:.3g} in engine "
                    f"units, below the smallest scaling factor 2^{fmt.exponent_min} at the modulator's scale",
                    sources[0],
                    node=name,
                    field="rules",
                )
    if underflows:
        bad = [c.term for _, rep in compiled.values() for c in rep.coefficients if c.mantissa == 0]
        raise RuleError(
            f"coefficient(s) of {bad} underflow the learning engine's smallest scaling factor 2^{fmt.exponent_min} "
            "at every trace scale; use a larger learning rate, a longer t_epoch, or a coarser weight scale",
            node=name,
            field="rules",
        )
    per_trace: dict[str, int] = {}
    if spike_traces:

        def attempt(candidate: dict[str, int]) -> CompiledRules | None:
            try:
                return compile_with(candidate)
            except RuleError:
                return None

        per_trace, compiled = _refine(attempt, spike_traces, imp_int, compiled)
    for trace in spike_traces:
        impulses[trace] = float(per_trace[trace])
        # steady-state mean of a trace driven at p spikes/step: imp * p / (1 - exp(-1/tau))
        tau_steps = taus[trace]
        gain = per_trace[trace] / (1 - math.exp(-1.0 / tau_steps)) if tau_steps else float(per_trace[trace])
        p_sat = fmt.trace_max / gain
        who = "pre" if trace in PRE_TRACES else "post"
        report.notes.append(
            f"{name}.{trace}: impulse {per_trace[trace]}, tau {tau_steps} steps: the 7-bit trace saturates when "
            f"the {who} neurons fire more than {p_sat:.3g} spikes/step on average "
            f"({p_sat / dt:.3g} per time unit); lower it with trace_impulse= if they do"
        )
    if imp_int != min(fmt.default_impulse, fmt.trace_max) and spike_traces:
        report.notes.append(
            f"{name}: trace impulse lowered to {imp_int} (from {fmt.default_impulse}) so that every rule "
            "coefficient is representable"
        )
    rules = {}
    for rule_target, (code, rep) in compiled.items():
        rules[rule_target] = code
        report.rules.append(rep)
    lo, hi = spec.w_bounds
    mag = target.weights.magnitude_max
    enforced_lo, enforced_hi = ((-mag - 1) / s_w if lo < 0 else 0.0), (mag / s_w if hi > 0 else 0.0)
    report.notes.append(
        f"{name}: the engine clips weights to [{enforced_lo:.6g}, {enforced_hi:.6g}] ({target.weights.bits}-bit "
        f"range); requested w_bounds [{lo:g}, {hi:g}]"
    )
    if spec.mask is not None:
        report.notes.append(
            f"{name}: plasticity mask, {spec.present} of {spec.mask.size} synapses present (stored sparse: Lava "
            "LearningSparse); the absent ones stay 0"
        )
    return LearningProgram(
        rules=rules,
        impulses=impulses,
        taus=taus,
        t_epoch=spec.t_epoch,
        third_factor=third_factor,
        pre_activity=spec.pre_activity,
        mask=None if spec.mask is None else spec.mask.copy(),
    )
