"""Learning-rule microcode: Lava 0.10's rule-string syntax parsed into integer products.

A :class:`~neuro_hw.compiler.program.LearningProgram` carries rules as strings in Lava's syntax
(``"2^-2*x1*y0 - 2^-2*y1*x0"``).  This module turns them into :class:`Product` objects exactly the way
Lava's ``SymbolicEquation`` + ``ProductSeries`` do (``lava/magma/core/learning/symbolic_equation.py``,
``product_series.py:547-742``), re-implemented here so the emulator never imports Lava
(``docs/lava-semantics.md`` §4.2).

Tokens (spaces are removed first), tried in this order at every position::

    +   -   *   x0   y0   u<digit>   x1 x2 y1 y2 y3 w d t   ( ... )   sgn( ... )
    literals  a*2^b  |  2^b  |  a          (a, b decimal integers, b optionally signed)

Products are split at top-level ``+``/``-``.  Within a product:

* a ``-`` multiplies the mantissa by -1;
* **every** literal is folded into one scaling factor ``m * 2^e`` (``2^b`` is mantissa ``int(2/2) = 1``,
  exponent ``b``); a bracketed literal ``(-3)`` counts with its sign;
* the first dependency (``x0``, ``y0``, ``u<k>``) is the product's dependency; later ``x0``/``y0`` become
  1-bit factors; a later ``u<k>`` is dropped after a ``u`` dependency and refused after ``x0``/``y0`` (Lava
  raises);
* ``(v)``, ``(v+c)``, ``(c+v)``, ``(-v+c)`` are factors ``v + c`` (``(-v+c)`` negates the mantissa and
  ``c``; a lone ``(-v)`` keeps ``v`` -- Lava drops that sign); ``sgn(v+c)`` (only ``w``, ``d``, ``t``)
  is ``sign(v + c)``.  ``c`` is ``a`` or ``a*2^b`` (a float when ``b < 0``);
* normalisation: ``while |m| > 7 and m even and e < 8: m //= 2; e += 1``; then ``-8 <= m <= 7`` and
  ``-7 <= e <= 8`` are required and the stored exponent is ``s_exp = e + 7``.

The decimation exponent ``k`` of ``u<k>`` is shared by all rules of a connection: the first digit
of the (single) distinct ``u[0-9]+`` match over all rule strings (``learning_rule.py`` ``_validate_uk``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from neuro_hw.errors import RuleError

#: Factor widths (``constants.py`` ``FACTOR_TO_WIDTH_DICT``): spikes 1 bit, traces 7 bit (W_TRACE),
#: weight / tag_2 / tag_1 9 bit signed, constant 8 bit.  An engine variant (:func:`factor_widths`) changes the
#: traces' and the synaptic variables' widths.
FACTOR_WIDTH = {"x0": 1, "y0": 1, "x1": 7, "x2": 7, "y1": 7, "y2": 7, "y3": 7, "w": 9, "d": 9, "t": 9, "C": 8}
#: Width of the scaling-factor mantissa (W_S_MANT).
W_S_MANT = 4
#: Unsigned accumulator width (W_ACCUMULATOR_U); products wider than this are shifted down first.
W_ACCUMULATOR_U = 15


def factor_widths(trace_bits: int = 7, weight_bits: int = 8) -> dict[str, int]:
    """Factor widths of an engine with ``trace_bits`` traces and ``weight_bits``-bit weights (Lava: 7, 8)."""
    t, w = trace_bits, weight_bits + 1
    return {"x0": 1, "y0": 1, "x1": t, "x2": t, "y1": t, "y2": t, "y3": t, "w": w, "d": w, "t": w, "C": 8}


#: Rule targets in the order Lava applies them (the dict order of ``_validate_learning_rule_strings``).
TARGET_ORDER = ("dw", "dd", "dt")
#: Synaptic variable each target writes (``string_symbols.SYNAPTIC_VARIABLE_VAR_MAPPING``).
TARGET_VARIABLE = {"dw": "w", "dd": "d", "dt": "t"}

_LITERAL_RES = (
    (re.compile(r"[\+\-]?\d+\*2\^[\+\-]?\d+"), 0),
    (re.compile(r"[\+\-]?2\^[\+\-]?\d+"), 1),
    (re.compile(r"[\+\-]?\d+"), 2),
)
_UK_RE = re.compile(r"u\d")
_VAR_RES = tuple(re.compile(p) for p in ("x[12]", "y[123]", "w", "d", "t"))


@dataclass(frozen=True)
class Factor:
    """One factor ``var + const`` (or ``sign(var + const)``) of a product; ``const`` is None when absent."""

    var: str
    const: int | float | None = None
    sgn: bool = False
    width: int = 0

    def __post_init__(self) -> None:
        if not self.width:
            object.__setattr__(self, "width", FACTOR_WIDTH[self.var])


@dataclass(frozen=True)
class Product:
    """``dependency * m * 2^(s_exp - 7) * prod(factors)`` with Lava's stored exponent ``s_exp = e + 7``."""

    dependency: str  # "x0", "y0" or "u"
    mantissa: int
    s_exp: int
    factors: tuple[Factor, ...]
    accumulator_bits: int = W_ACCUMULATOR_U

    @property
    def width_sum(self) -> int:
        """Sum of factor widths plus the mantissa width (the product is shifted right by ``max(0, W-15)``)."""
        return sum(f.width for f in self.factors) + W_S_MANT

    @property
    def shift(self) -> int:
        return max(0, self.width_sum - self.accumulator_bits)


# --------------------------------------------------------------------------------------------------
# tokenizer (SymbolicEquation)
# --------------------------------------------------------------------------------------------------
@dataclass
class _Sym:
    kind: str  # "add" "sub" "mul" "dep" "uk" "var" "bracket" "sgn" "lit"
    text: str
    mantissa: int = 0
    base: int = 1
    exponent: int = 0
    sub: list[_Sym] | None = None


def _closing(expr: str) -> int:
    depth = 0
    for i, ch in enumerate(expr):
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth == 0:
                return i
    raise RuleError(f"bracket expression missing closing bracket in {expr!r}")


def _literal(text: str, kind: int) -> _Sym:
    if kind == 0:
        head, exp = text.split("^")
        return _Sym("lit", text, mantissa=int(head[:-2]), base=2, exponent=int(exp))
    if kind == 1:
        head, exp = text.split("^")
        return _Sym("lit", text, mantissa=int(int(head) / 2), base=2, exponent=int(exp))
    return _Sym("lit", text, mantissa=int(text), base=1, exponent=0)


def _tokenize(expr: str, rule: str) -> list[_Sym]:
    out: list[_Sym] = []
    while expr:
        ch = expr[0]
        if ch in "+-*":
            out.append(_Sym({"+": "add", "-": "sub", "*": "mul"}[ch], ch))
            expr = expr[1:]
            continue
        if expr.startswith(("x0", "y0")):
            out.append(_Sym("dep", expr[:2]))
            expr = expr[2:]
            continue
        m = _UK_RE.match(expr)
        if m:
            out.append(_Sym("uk", m.group(), exponent=int(m.group()[1:])))
            expr = expr[m.end() :]
            continue
        matched = False
        for pat in _VAR_RES:
            m = pat.match(expr)
            if m:
                out.append(_Sym("var", m.group()))
                expr = expr[m.end() :]
                matched = True
                break
        if matched:
            continue
        if ch == "(" or expr.startswith("sgn("):
            start = 3 if ch == "s" else 0
            close = start + _closing(expr[start:])
            inner = expr[start + 1 : close]
            if not inner:
                raise RuleError(f"empty bracket in rule {rule!r}")
            out.append(_Sym("sgn" if start else "bracket", expr[: close + 1], sub=_tokenize(inner, rule)))
            expr = expr[close + 1 :]
            continue
        for pat, kind in _LITERAL_RES:
            m = pat.match(expr)
            if m:
                out.append(_literal(m.group(), kind))
                expr = expr[m.end() :]
                matched = True
                break
        if matched:
            continue
        raise RuleError(f"cannot interpret {expr!r} in learning rule {rule!r} (Lava microcode syntax)")
    return out


# --------------------------------------------------------------------------------------------------
# products (ProductSeries._generate_product)
# --------------------------------------------------------------------------------------------------
def _const(sym: _Sym) -> int | float:
    return sym.mantissa * sym.base**sym.exponent


def _product(symbols: list[_Sym], rule: str) -> Product:
    dependency: str | None = None
    m, e = 1, 0
    factors: list[Factor] = []
    for sym in symbols:
        if sym.kind in ("add", "mul"):
            continue
        if sym.kind == "sub":
            m = -m
        elif sym.kind == "uk":
            if dependency is None:
                dependency = "u"
            elif dependency != "u":
                # Lava's Product refuses a decimate exponent with an x0/y0 dependency (product_series.py:L335)
                raise RuleError(f"a u<k> after the dependency {dependency!r} in {rule!r} (Lava raises ValueError)")
        elif sym.kind == "dep":
            if dependency is None:
                dependency = sym.text
            else:
                factors.append(Factor(sym.text))
        elif sym.kind == "lit":
            m *= sym.mantissa
            e += sym.exponent
        elif sym.kind == "var":
            factors.append(Factor(sym.text))
        else:  # bracket / sgn
            sub = list(sym.sub or [])
            if sub[0].kind not in ("add", "sub", "mul"):
                sub.insert(0, _Sym("add", "+"))
            var: str | None = None
            const: int | float | None = None
            negative_var = False
            if len(sub) <= 2:
                sign = -1 if sub[0].kind == "sub" else 1
                inner = sub[1] if len(sub) > 1 else None
                if inner is not None and inner.kind == "var":
                    var = inner.text  # Lava ignores the sign of a lone bracketed variable
                elif inner is not None and inner.kind == "lit":
                    m = m * inner.mantissa * sign
                    e += inner.exponent
                # a lone dependency in brackets, e.g. "(x0)", is silently dropped, as in Lava
            else:
                if len(sub) < 4:
                    raise RuleError(f"sub-expression {sym.text!r} cannot be interpreted in rule {rule!r}")
                if sub[1].kind in ("dep", "var") and sub[3].kind == "lit":
                    iv, ic = 1, 3
                elif sub[3].kind in ("dep", "var") and sub[1].kind == "lit":
                    iv, ic = 3, 1
                else:
                    raise RuleError(
                        f"sub-expression {sym.text!r} cannot be interpreted as [+,-]var[+,-]const in rule {rule!r}"
                    )
                negative_var = sub[iv - 1].kind == "sub"
                var = sub[iv].text
                if var not in FACTOR_WIDTH:
                    raise RuleError(f"{var!r} cannot be used as a factor in rule {rule!r}")
                const = _const(sub[ic]) * (-1 if sub[ic - 1].kind == "sub" else 1)
                if negative_var:
                    m = -m
                    const = -const
            if sym.kind == "bracket":
                if var is not None:
                    factors.append(Factor(var, const))
            else:
                if var not in ("w", "d", "t"):
                    raise RuleError(f"sgn(..) can only be applied to 'w', 'd' or 't' (rule {rule!r})")
                if negative_var:
                    raise RuleError(f"variable in sgn(..) cannot be negative (rule {rule!r})")
                factors.append(Factor(var, const, sgn=True))
    while abs(m) > 7 and m % 2 == 0 and e < 8:
        m = int(m / 2)
        e += 1
    if dependency is None:
        raise RuleError(f"no dependency (x0, y0 or u<k>) in a product of learning rule {rule!r}")
    if m < -8 or m >= 8:
        raise RuleError(f"mantissa {m} not representable in 4 bits (rule {rule!r})")
    if e < -7 or e >= 9:
        raise RuleError(f"scaling exponent {e} outside -7..8 (rule {rule!r})")
    return Product(dependency, int(m), int(e + 7), tuple(factors))


def parse_microcode(rule: str, trace_bits: int = 7, weight_bits: int = 8) -> tuple[Product, ...]:
    """Parse one Lava rule string into its products (see module doc for the exact semantics); an engine
    variant with other trace or weight widths changes the factor widths and the accumulator width
    (``weight_bits + 7``) that set each product's shift.

    Raises
    ------
    RuleError
        Where Lava's parser would raise (or crash): unknown token, missing dependency, mantissa or
        exponent out of range, bad sub-expression.
    """
    if not isinstance(rule, str):
        raise RuleError(f"a learning rule must be a string, got {type(rule).__name__}")
    text = rule.replace(" ", "")
    if not text:
        raise RuleError("empty learning rule")
    symbols = _tokenize(text, rule)
    groups: list[list[_Sym]] = []
    current: list[_Sym] = []
    for sym in symbols:
        if sym.kind == "mul":
            continue
        if sym.kind in ("add", "sub") and current:
            groups.append(current)
            current = [sym]
        else:
            current.append(sym)
    groups.append(current)
    products = tuple(_product(g, rule) for g in groups)
    if (trace_bits, weight_bits) == (7, 8):
        return products
    widths = factor_widths(trace_bits, weight_bits)
    return tuple(
        Product(
            p.dependency,
            p.mantissa,
            p.s_exp,
            tuple(Factor(f.var, f.const, f.sgn, widths[f.var]) for f in p.factors),
            weight_bits + 7,
        )  # fmt: skip
        for p in products
    )


def decimation_exponent(rules: dict[str, str]) -> int | None:
    """The ``k`` of ``u<k>`` shared by all rule strings (None without one); several different ones raise."""
    found: list[str] = []
    for text in rules.values():
        found.extend(re.findall(r"u[0-9]+", text))
    distinct = set(found)
    if not distinct:
        return None
    if len(distinct) > 1:
        raise RuleError(f"learning rules cannot contain uk terms with different k: {sorted(distinct)}")
    return int(found[0][1])
