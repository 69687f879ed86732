"""Compile plasticity rules into the learning engine's sum-of-products microcode.

Scales (integers per float unit): ``s_w`` for the weight (and the tag ``t`` and delay variable ``d``,
which share the weight's scale), ``s_k`` for every trace ``k``.  The engine computes, for a product
``m * 2^e * f_1 ... f_n`` of integer factors with total width ``W = sum(width(f)) + 4``,

    Δw_int = m * 2^e * (f_1 ... f_n) / 2^max(0, W - 15)        (in weight LSBs)

while the float rule asks for ``Δw = c * F_1 ... F_n`` with ``f_i = s_i F_i``.  Hence

    m * 2^e = c * s_w / (s_1 ... s_n) * 2^max(0, W - 15)

(spike and decimation factors have scale 1; ``w``, ``t``, ``d`` factors have scale ``s_w``).  A product
gated by ``x0`` or ``y0`` whose traces are all read at the end of the epoch anyway (``end_traces``: an
activity trace, third factors) may instead carry ``u0`` as its dependency and the spike as a 1-bit factor
(``u0*x0*...``, the same value): the extra bit of width doubles the shift and so the coefficient, which is
taken when it brings a coefficient closer (the smallest scaling factor ``2^exponent_min`` limits small
learning rates).  Offsets
``(F + c0)`` become ``(f + round(c0 * s_f))`` with an 8-bit constant.  ``m`` is a 4-bit signed
mantissa and ``e`` an exponent in the target's range; the relative error of every coefficient goes into
the report, and a coefficient beyond the largest representable value is refused.
"""

from __future__ import annotations

import math

from neuro_hw.compiler.quantize import mantissa_exponent, relative_error, round_half_away
from neuro_hw.compiler.report import CoefficientReport, RuleReport
from neuro_hw.compiler.target import LearningFormat
from neuro_hw.errors import RuleError
from neuro_hw.ir.rules import DECIMATIONS, SPIKES, SYNAPTIC_VARIABLES, TRACES, Expression, Factor

MANTISSA_WIDTH = 4


def factor_scale(symbol: str, trace_scales: dict[str, float], s_w: float) -> float:
    if symbol in SPIKES or symbol in DECIMATIONS:
        return 1.0
    if symbol in TRACES:
        return trace_scales[symbol]
    if symbol in SYNAPTIC_VARIABLES:
        return s_w
    raise RuleError(f"unknown symbol {symbol!r}")


def _factor_code(f: Factor, trace_scales: dict[str, float], s_w: float, fmt: LearningFormat, where: str) -> str:
    if f.sgn and f.symbol not in fmt.sgn_allowed:
        raise RuleError(
            f"{where}: sgn() of {f.symbol!r} is not supported by the learning engine (only of {fmt.sgn_allowed})"
        )
    if not f.offset:
        return f"sgn({f.symbol})" if f.sgn else f.symbol
    const = int(round_half_away(f.offset * factor_scale(f.symbol, trace_scales, s_w)))
    limit = 2 ** (fmt.constant_bits - 1)
    if not -limit <= const < limit:
        raise RuleError(
            f"{where}: offset {f.offset:g} of {f.symbol} becomes the constant {const}, outside the "
            f"{fmt.constant_bits}-bit range [{-limit}, {limit - 1}]"
        )
    inner = f"{f.symbol}{'+' if const >= 0 else '-'}{abs(const)}"
    return f"sgn({inner})" if f.sgn else f"({inner})"


def _encode(
    coefficient: float, others: list[Factor], trace_scales: dict[str, float], s_w: float, fmt: LearningFormat
) -> tuple[float, int, int]:
    """``(needed, m, e)`` for a product with non-dependency factors ``others`` (module doc)."""
    width = MANTISSA_WIDTH + sum(fmt.factor_widths[f.symbol] for f in others)
    shift = max(0, width - fmt.accumulator_bits)
    scale = s_w
    for f in others:
        scale /= factor_scale(f.symbol, trace_scales, s_w)
    needed = coefficient * scale * 2.0**shift
    m, e = mantissa_exponent(needed, fmt.mantissa_min, fmt.mantissa_max, fmt.exponent_min, fmt.exponent_max)
    return needed, m, e


def compile_expression(
    synapse: str,
    expr: Expression,
    trace_scales: dict[str, float],
    s_w: float,
    fmt: LearningFormat,
    end_traces: frozenset[str] = frozenset(),
) -> tuple[str, RuleReport]:
    """Microcode string (Lava syntax) for ``expr`` and its report; raises :class:`RuleError` if impossible.

    ``end_traces``: traces whose value does not depend on when the epoch reads them (module doc)."""
    where = f"rule {expr.target} of '{synapse}'"
    if len(expr.terms) > fmt.max_terms:
        raise RuleError(f"{where} has {len(expr.terms)} product terms; the engine takes at most {fmt.max_terms}")
    decimations = {f.symbol for term in expr.terms for f in term.factors if f.symbol in DECIMATIONS}
    decimations.discard("u0")
    if len(decimations) > 1:
        raise RuleError(f"{where}: one decimation exponent per rule, got {sorted(decimations)}")
    report = RuleReport(synapse=synapse, target=expr.target, original=str(expr), microcode="")
    parts = []
    for term in expr.terms:
        dependency = term.dependency
        for sym in decimations | {dependency}:
            if sym in DECIMATIONS and int(sym[1:]) > fmt.decimation_max:
                raise RuleError(f"{where}: decimation {sym} exceeds u{fmt.decimation_max}")
        # The dependency goes first (Lava takes the first dependency token); other factors keep their order.
        others = list(term.factors)
        dep_factor = next((f for f in others if f.symbol == dependency), None)
        if dep_factor is not None:
            others.remove(dep_factor)
        try:
            needed, m, e = _encode(term.coefficient, others, trace_scales, s_w, fmt)
        except OverflowError as err:
            raise RuleError(f"{where}: coefficient {term.coefficient:g} of '{term}': {err}") from None
        timeless = all(f.symbol not in TRACES or f.symbol in end_traces for f in others)
        if dependency in SPIKES and timeless and not decimations:
            # u0 as the dependency and the spike as a 1-bit factor: the same product, twice the coefficient
            try:
                alt = _encode(term.coefficient, [Factor(dependency)] + others, trace_scales, s_w, fmt)
            except OverflowError:
                alt = None
            if alt is not None and relative_error(alt[0], alt[1] * 2.0 ** alt[2]) < relative_error(needed, m * 2.0**e):
                needed, m, e = alt
                others = [Factor(dependency)] + others
                dependency = "u0"
        represented = m * 2.0**e
        report.coefficients.append(
            CoefficientReport(
                term=str(term) if term.coefficient >= 0 else "-" + str(term),
                coefficient=term.coefficient,
                target_value=needed,
                mantissa=m,
                exponent=e,
                represented=represented,
                rel_error=float(relative_error(needed, represented)),
            )
        )
        if m == 0:
            continue  # underflows to nothing; visible in the report (rel. error 1)
        codes = [dependency] + [_factor_code(f, trace_scales, s_w, fmt, where) for f in others]
        literal = f"{abs(m)}*2^{e}"
        sign = "-" if m < 0 else "+"
        parts.append((sign, "*".join([literal] + codes)))
    if not parts:
        microcode = "0"
    else:
        microcode = ("-" if parts[0][0] == "-" else "") + parts[0][1]
        for sign, code in parts[1:]:
            microcode += f" {sign} {code}"
    report.microcode = microcode
    return microcode, report


def trace_tau_steps(tau: float, dt: float, fmt: LearningFormat) -> int:
    """Trace time constant in whole steps (0 = reset every step); inf maps to the longest the engine has."""
    if tau == 0:
        return 0
    if math.isinf(tau):
        return fmt.tau_max
    steps = int(round_half_away(tau / dt))
    return min(max(steps, 1), fmt.tau_max)
