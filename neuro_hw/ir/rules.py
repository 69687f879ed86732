"""Plasticity rule expressions: data model and parser.

A rule is a **sum of products** over one vocabulary, shared from the IR down to Lava:

==========  ==========================================================================================
symbol      meaning
==========  ==========================================================================================
``x0``      presynaptic spike (dependency): 1 if the pre neuron spiked in the current learning epoch
``y0``      postsynaptic spike (dependency): 1 if the post neuron spiked in the current epoch
``u<k>``    decimation dependency: 1 on epochs whose index e satisfies ``e % 2**k == 0`` (``u0`` = 1)
``x1 x2``   presynaptic traces (impulse, tau)
``y1 y2 y3``postsynaptic traces (impulse, tau) -- or a third-factor input bound to that trace
``w``       synaptic weight
``t``       synaptic tag
``d``       synaptic delay variable
any name    a **modulator**: a signed third factor bound by name to a neuron population
            (``third_factor={"e": "err"}`` makes ``e`` the output of node ``err``, e.g. an error)
==========  ==========================================================================================

Every product is ``c * f_1 * ... * f_m`` with a float coefficient ``c`` and factors ``f`` that are a
symbol, ``(symbol + const)`` or ``sgn(symbol + const)`` (``sgn`` is ``numpy.sign``: -1, 0 or +1).
Targets are ``dw``, ``dt`` and ``dd``.  Example::

    dw = 0.01*x1*y0 - 0.012*y1*x0

Number syntax: decimals and scientific notation (``1.5e-3``), powers of two ``2^-3`` or ``2**-3``
(also ``3*2^-4``).  Rules are parsed by :func:`parse_rule`; errors raise
:class:`~neuro_hw.errors.RuleSyntaxError` with a caret under the offending token.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from neuro_hw import limits
from neuro_hw.errors import RuleError, RuleSyntaxError

SPIKES = ("x0", "y0")
PRE_TRACES = ("x1", "x2")
POST_TRACES = ("y1", "y2", "y3")
TRACES = PRE_TRACES + POST_TRACES
SYNAPTIC_VARIABLES = ("w", "t", "d")
TARGETS = ("dw", "dt", "dd")
MAX_DECIMATION = 9
DECIMATIONS = tuple(f"u{k}" for k in range(MAX_DECIMATION + 1))
SYMBOLS = SPIKES + TRACES + SYNAPTIC_VARIABLES + DECIMATIONS
#: The synaptic variable each target changes.
TARGET_VARIABLE = {"dw": "w", "dt": "t", "dd": "d"}
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z_0-9]*")
#: Names that cannot be modulators (rule symbols, targets and the sgn function).
RESERVED = frozenset(SYMBOLS + TARGETS + ("sgn",))


def is_modulator_name(name: str) -> bool:
    """Whether ``name`` can name a modulator (an identifier that is not a rule symbol, target or ``sgn``)."""
    return isinstance(name, str) and bool(_IDENTIFIER.fullmatch(name)) and name not in RESERVED


def _fmt_number(value: float) -> str:
    """Shortest string that reads back as exactly ``value``."""
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return repr(float(value))


@dataclass(frozen=True)
class Factor:
    """One factor of a product: ``symbol``, ``(symbol + offset)`` or ``sgn(symbol + offset)``."""

    symbol: str
    offset: float = 0.0
    sgn: bool = False

    def __post_init__(self) -> None:
        if self.symbol not in SYMBOLS and not is_modulator_name(self.symbol):
            raise RuleError(f"unknown symbol {self.symbol!r}; expected one of {', '.join(SYMBOLS)} or a modulator name")
        if not math.isfinite(self.offset):
            raise RuleError(f"factor {self.symbol!r} has a non-finite offset {self.offset!r}")
        if abs(self.offset) > limits.MAX_ABS_VALUE:
            raise RuleError(f"factor {self.symbol!r} has offset {self.offset!r}, larger in magnitude than "
                            f"{limits.limit_name('MAX_ABS_VALUE')}")  # fmt: skip
        if (self.offset != 0.0 or self.sgn) and (self.symbol in SPIKES or self.symbol in DECIMATIONS):
            raise RuleError(f"dependency {self.symbol!r} cannot carry an offset or sgn()")
        if (self.offset != 0.0 or self.sgn) and self.modulator:
            raise RuleError(f"modulator {self.symbol!r} cannot carry an offset or sgn()")

    @property
    def modulator(self) -> bool:
        """Whether this factor is a named modulator (a signed third factor) rather than a rule symbol."""
        return self.symbol not in SYMBOLS

    def __str__(self) -> str:
        inner = self.symbol
        if self.offset:
            sign = "+" if self.offset > 0 else "-"
            inner = f"{self.symbol}{sign}{_fmt_number(abs(self.offset))}"
        if self.sgn:
            return f"sgn({inner})"
        return f"({inner})" if self.offset else inner

    def to_dict(self) -> dict:
        return {"symbol": self.symbol, "offset": self.offset, "sgn": self.sgn}

    @classmethod
    def from_dict(cls, data: Mapping) -> Factor:
        data = _entry(data, "factor", ("symbol",), ("offset", "sgn"))
        symbol = data["symbol"]
        if not isinstance(symbol, str):
            raise RuleError(f"factor symbol must be a string, got {symbol!r}", field="symbol")
        sgn = data.get("sgn", False)
        if not isinstance(sgn, bool):
            raise RuleError(f"factor 'sgn' must be true or false, got {sgn!r}", field="sgn")
        return cls(symbol, _number(data.get("offset", 0.0), "offset"), sgn)


@dataclass(frozen=True)
class Term:
    """One product ``coefficient * factors[0] * factors[1] * ...``."""

    coefficient: float
    factors: tuple[Factor, ...]

    def __post_init__(self) -> None:
        if not math.isfinite(self.coefficient):
            raise RuleError(f"coefficient {self.coefficient!r} is not finite")
        if abs(self.coefficient) > limits.MAX_ABS_VALUE:
            raise RuleError(f"coefficient {self.coefficient!r} is larger in magnitude than "
                            f"{limits.limit_name('MAX_ABS_VALUE')}")  # fmt: skip
        object.__setattr__(self, "factors", tuple(self.factors))
        if len(self.factors) > limits.MAX_RULE_FACTORS:
            raise RuleError(f"a product has {len(self.factors)} factors, more than "
                            f"{limits.limit_name('MAX_RULE_FACTORS')}")  # fmt: skip
        decimations = [f.symbol for f in self.factors if f.symbol in DECIMATIONS]
        if len(decimations) > 1:
            raise RuleError(f"a product may hold at most one decimation dependency, got {decimations}")

    @property
    def symbols(self) -> tuple[str, ...]:
        return tuple(f.symbol for f in self.factors)

    @property
    def dependency(self) -> str:
        """The product's dependency: the first ``x0``/``y0``/``u<k>`` factor, else ``u0`` (every epoch).

        It decides when trace factors are read: at the post neuron's last spike in the epoch (``y0``),
        at the pre neuron's last spike (``x0``) or at the end of the epoch (``u<k>``).
        """
        for f in self.factors:
            if f.symbol in SPIKES or f.symbol in DECIMATIONS:
                return f.symbol
        return "u0"

    def __str__(self) -> str:
        return "*".join([_fmt_number(abs(self.coefficient))] + [str(f) for f in self.factors])

    def to_dict(self) -> dict:
        return {"coefficient": self.coefficient, "factors": [f.to_dict() for f in self.factors]}

    @classmethod
    def from_dict(cls, data: Mapping) -> Term:
        data = _entry(data, "term", ("coefficient", "factors"), ())
        factors = data["factors"]
        if not isinstance(factors, list):
            raise RuleError(f"term 'factors' must be a list, got {type(factors).__name__}", field="factors")
        if len(factors) > limits.MAX_RULE_FACTORS:
            raise RuleError(f"a product has {len(factors)} factors, more than {limits.limit_name('MAX_RULE_FACTORS')}",
                            field="factors")  # fmt: skip
        return cls(_number(data["coefficient"], "coefficient"), tuple(Factor.from_dict(f) for f in factors))


@dataclass(frozen=True)
class Expression:
    """A rule ``target = sum_k terms[k]`` with ``target`` in ``dw``, ``dt``, ``dd``."""

    target: str
    terms: tuple[Term, ...]

    def __post_init__(self) -> None:
        if self.target not in TARGETS:
            raise RuleError(f"unknown rule target {self.target!r}; expected one of {', '.join(TARGETS)}")
        object.__setattr__(self, "terms", tuple(self.terms))
        if len(self.terms) > limits.MAX_RULE_TERMS:
            raise RuleError(f"the rule has {len(self.terms)} products, more than {limits.limit_name('MAX_RULE_TERMS')}")

    @property
    def symbols(self) -> frozenset[str]:
        return frozenset(s for term in self.terms for s in term.symbols)

    def __str__(self) -> str:
        if not self.terms:
            return f"{self.target} = 0"
        parts = []
        for i, term in enumerate(self.terms):
            sign = "-" if term.coefficient < 0 else "+"
            if i == 0:
                parts.append(("-" if sign == "-" else "") + str(term))
            else:
                parts.append(f" {sign} {term}")
        return f"{self.target} = " + "".join(parts)

    def to_dict(self) -> dict:
        return {"target": self.target, "terms": [t.to_dict() for t in self.terms]}

    @classmethod
    def from_dict(cls, data: Mapping) -> Expression:
        data = _entry(data, "rule", ("target", "terms"), ())
        terms = data["terms"]
        if not isinstance(data["target"], str):
            raise RuleError(f"rule target must be a string, got {data['target']!r}", field="target")
        if not isinstance(terms, list):
            raise RuleError(f"rule 'terms' must be a list, got {type(terms).__name__}", field="terms")
        if len(terms) > limits.MAX_RULE_TERMS:
            raise RuleError(f"the rule has {len(terms)} products, more than {limits.limit_name('MAX_RULE_TERMS')}",
                            field="terms")  # fmt: skip
        return cls(data["target"], tuple(Term.from_dict(t) for t in terms))


def _entry(data, what: str, required: tuple[str, ...], optional: tuple[str, ...]) -> Mapping:
    """``data`` as a mapping with exactly the ``required`` keys and some of the ``optional`` ones."""
    if not isinstance(data, Mapping):
        raise RuleError(f"a {what} must be an object, got {type(data).__name__}", field=what)
    missing = [k for k in required if k not in data]
    if missing:
        raise RuleError(f"a {what} needs the field(s) {missing}", field=missing[0])
    unknown = sorted(str(k) for k in data if k not in required + optional)
    if unknown:
        raise RuleError(f"unknown field(s) {unknown} in a {what}", field=unknown[0])
    return data


def _number(value, field: str) -> float:
    """A JSON number (not a boolean, not a string) as a float."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise RuleError(f"{field} must be a number, got {value!r}", field=field)
    try:
        return float(value)
    except OverflowError:
        raise RuleError(f"{field} {value!r} is too large for a float64", field=field) from None


# ---------------------------------------------------------------------------------------------------
# Parser
# ---------------------------------------------------------------------------------------------------
_TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<number>(?:\d+\.\d*|\.\d+|\d+)(?:[eE][+-]?\d+)?)
  | (?P<pow>\^|\*\*)
  | (?P<name>[A-Za-z_][A-Za-z_0-9]*)
  | (?P<op>[+\-*=()])
  | (?P<bad>.)
    """,
    re.VERBOSE,
)


@dataclass(frozen=True)
class _Tok:
    kind: str
    text: str
    pos: int


def _tokenize(text: str) -> list[_Tok]:
    tokens = []
    for m in _TOKEN.finditer(text):
        kind = m.lastgroup
        if kind == "ws":
            continue
        if kind == "bad":
            raise RuleSyntaxError(f"unexpected character {m.group()!r}", text, m.start())
        tokens.append(_Tok(kind, m.group(), m.start()))
    tokens.append(_Tok("end", "", len(text)))
    return tokens


class _Parser:
    """Recursive-descent parser for ``target = [+-] product {(+|-) product}``."""

    def __init__(self, text: str, aliases: Mapping[str, str], modulators: Iterable[str] = ()) -> None:
        self.text = text
        self.aliases = dict(aliases)
        self.modulators = frozenset(modulators)
        self.tokens = _tokenize(text)
        self.i = 0

    # -- helpers ---------------------------------------------------------------------------------
    @property
    def tok(self) -> _Tok:
        return self.tokens[self.i]

    def error(self, reason: str, tok: _Tok | None = None) -> RuleSyntaxError:
        tok = tok or self.tok
        return RuleSyntaxError(reason, self.text, tok.pos)

    def take(self, text: str) -> _Tok:
        tok = self.tok
        if tok.text != text:
            found = "end of rule" if tok.kind == "end" else repr(tok.text)
            raise self.error(f"expected {text!r}, found {found}")
        self.i += 1
        return tok

    def symbol(self, tok: _Tok) -> str:
        name = self.aliases.get(tok.text, tok.text)
        if name not in SYMBOLS and name not in self.modulators:
            names = sorted(set(self.aliases) | self.modulators)
            raise self.error(
                f"unknown symbol {tok.text!r}; expected one of {', '.join(SYMBOLS[:10])}, u0..u9"
                + (f" or a third-factor name ({', '.join(names)})" if names else ""),
                tok,
            )
        return name

    # -- grammar ---------------------------------------------------------------------------------
    def parse(self, default_target: str | None) -> Expression:
        target = default_target
        if self.tok.kind == "name" and self.tokens[self.i + 1].text == "=":
            tok = self.tok
            if tok.text not in TARGETS:
                raise self.error(f"unknown rule target {tok.text!r}; expected one of {', '.join(TARGETS)}")
            target = tok.text
            self.i += 2
        if target is None:
            raise self.error("a rule must start with its target, e.g. 'dw = ...'")
        terms = []
        sign = 1.0
        if self.tok.text in "+-" and self.tok.kind == "op":
            sign = -1.0 if self.tok.text == "-" else 1.0
            self.i += 1
        while True:
            terms.append(self.product(sign))
            if self.tok.kind == "end":
                break
            if self.tok.text not in ("+", "-"):
                raise self.error(f"expected '+', '-', '*' or end of rule, found {self.tok.text!r}")
            sign = -1.0 if self.tok.text == "-" else 1.0
            self.i += 1
        return Expression(target, tuple(t for t in terms if t.coefficient != 0.0))

    def product(self, sign: float) -> Term:
        coefficient = sign
        factors: list[Factor] = []
        start = self.tok
        zero_literal = False
        while True:
            value = self.item(factors)
            zero_literal |= value == 0.0
            coefficient *= value
            if self.tok.text == "*" and self.tok.kind == "op":
                self.i += 1
                continue
            break
        if coefficient == 0.0 and not zero_literal:
            raise self.error("the product of the numbers underflows to 0 in float64", start)
        if not math.isfinite(coefficient):
            raise self.error("the product of the numbers overflows float64", start)
        try:
            return Term(coefficient, tuple(factors))
        except RuleError as err:
            raise self.error(err.reason, start) from None

    def number(self) -> float:
        """A number, optionally raised to a power: ``2^-3``, ``2**4``, ``1.5e-2``."""
        tok = self.tok
        if tok.kind != "number":
            raise self.error(f"expected a number, found {tok.text!r}")
        self.i += 1
        value = float(tok.text)
        if value == 0.0 and re.search(r"[1-9]", tok.text.split("e")[0].split("E")[0]):
            raise self.error(f"number {tok.text} underflows to 0 in float64", tok)
        if value == math.inf:
            raise self.error(f"number {tok.text} overflows float64", tok)
        if self.tok.kind == "pow":
            self.i += 1
            exp_sign = 1
            if self.tok.text in ("+", "-") and self.tok.kind == "op":
                exp_sign = -1 if self.tok.text == "-" else 1
                self.i += 1
            etok = self.tok
            if etok.kind != "number" or not re.fullmatch(r"\d+", etok.text):
                raise self.error("expected an integer exponent after '^'", etok)
            self.i += 1
            if len(etok.text) > 6:
                raise self.error(f"exponent {etok.text} is too large", etok)
            exponent = exp_sign * int(etok.text)
            try:
                result = value**exponent
            except ZeroDivisionError:
                raise self.error("0 cannot be raised to a negative power", tok) from None
            except OverflowError:
                raise self.error(f"{tok.text}^{exponent} overflows float64", tok) from None
            if result == 0.0 and value != 0.0:
                raise self.error(f"{tok.text}^{exponent} underflows to 0 in float64", tok)
            value = result
        return value

    def signed_number(self) -> float:
        sign = 1.0
        if self.tok.text in ("+", "-") and self.tok.kind == "op":
            sign = -1.0 if self.tok.text == "-" else 1.0
            self.i += 1
        return sign * self.number()

    def item(self, factors: list[Factor]) -> float:
        """One item of a product; appends to ``factors`` and returns the numeric multiplier."""
        tok = self.tok
        if tok.kind == "number":
            return self.number()
        if tok.kind == "name" and tok.text == "sgn":
            self.i += 1
            self.take("(")
            factors.append(self.inner_factor(sgn=True, sgn_tok=tok))
            self.take(")")
            return 1.0
        if tok.kind == "name":
            self.i += 1
            factors.append(self._factor(self.symbol(tok), 0.0, False, tok))
            return 1.0
        if tok.text == "(":
            self.i += 1
            if self.tok.kind == "name":
                f = self.inner_factor(sgn=False, sgn_tok=tok)
                self.take(")")
                factors.append(f)
                return 1.0
            value = self.signed_number()
            self.take(")")
            return value
        found = "end of rule" if tok.kind == "end" else repr(tok.text)
        raise self.error(f"expected a number, a symbol, '(' or 'sgn(', found {found}")

    def inner_factor(self, sgn: bool, sgn_tok: _Tok) -> Factor:
        """``symbol [(+|-) number]`` inside parentheses."""
        tok = self.tok
        if tok.kind != "name":
            raise self.error(f"expected a symbol, found {tok.text!r}")
        self.i += 1
        name = self.symbol(tok)
        offset = 0.0
        if self.tok.text in ("+", "-") and self.tok.kind == "op":
            s = -1.0 if self.tok.text == "-" else 1.0
            self.i += 1
            offset = s * self.number()
        return self._factor(name, offset, sgn, tok)

    def _factor(self, name: str, offset: float, sgn: bool, tok: _Tok) -> Factor:
        try:
            return Factor(name, offset, sgn)
        except RuleError as err:
            raise self.error(err.reason, tok) from None


def parse_rule(
    text: str,
    *,
    target: str | None = None,
    aliases: Mapping[str, str] | None = None,
    modulators: Iterable[str] = (),
) -> Expression:
    """Parse a rule string such as ``"dw = 0.01*x1*y0 - 0.012*y1*x0"`` into an :class:`Expression`.

    Parameters
    ----------
    text:
        The rule.  ``target =`` may be omitted when ``target`` is given.
    target:
        Default target when the string has none.
    aliases:
        Extra names accepted for symbols, e.g. ``{"reward": "y2"}`` for a third factor bound to y2.
    modulators:
        Names of modulators (signed third factors) the rule may use, e.g. ``{"e"}``.
    """
    if not isinstance(text, str):
        raise RuleError(f"a rule must be a string, got {type(text).__name__}")
    if len(text) > limits.MAX_RULE_LENGTH:
        raise RuleError(f"the rule has {len(text):,} characters, more than {limits.limit_name('MAX_RULE_LENGTH')}")
    return _Parser(text, aliases or {}, modulators).parse(target)


def as_expression(
    rule: str | Expression | Mapping | Iterable,
    *,
    target: str | None = None,
    aliases: Mapping[str, str] | None = None,
    modulators: Iterable[str] = (),
) -> Expression:
    """Accept a rule in any supported form: string, :class:`Expression`, its dict form, or terms.

    Terms may be given as ``[(0.01, "x1", "y0"), (-0.012, "y1", "x0")]`` (coefficient then symbols)
    together with ``target``.
    """
    if isinstance(rule, Expression):
        return rule
    if isinstance(rule, str):
        return parse_rule(rule, target=target, aliases=aliases, modulators=modulators)
    if isinstance(rule, Mapping):
        return Expression.from_dict(rule)
    if target is None:
        raise RuleError("a rule given as a list of terms needs an explicit target ('dw', 'dt' or 'dd')")
    terms = []
    for item in rule:
        if isinstance(item, Term):
            terms.append(item)
            continue
        try:
            coefficient, *factors = item
            coefficient = float(coefficient)
        except (TypeError, ValueError, OverflowError):
            raise RuleError(f"a term must be (coefficient, symbol, ...) with a number first, got {item!r}") from None
        fs = []
        for f in factors:
            if isinstance(f, Factor):
                fs.append(f)
            else:
                if not isinstance(f, str):
                    raise RuleError(f"a factor must be a symbol name, got {f!r}")
                name = (aliases or {}).get(f, f)
                if name not in SYMBOLS and name not in set(modulators):
                    raise RuleError(f"unknown symbol {name!r}; expected one of {', '.join(SYMBOLS)} or a modulator")
                fs.append(Factor(name))
        terms.append(Term(coefficient, tuple(fs)))
    return Expression(target, tuple(terms))
