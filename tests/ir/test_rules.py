"""Rule parser: vocabulary, number syntax, canonical strings, errors that point at the token."""

import math

import pytest

from neuro_hw.errors import RuleError, RuleSyntaxError
from neuro_hw.ir.rules import Expression, Factor, Term, as_expression, parse_rule


def test_parse_stdp_rule_terms_and_dependencies():
    expr = parse_rule("dw = 0.01*x1*y0 - 0.012*y1*x0")
    assert expr.target == "dw"
    assert expr.terms == (
        Term(0.01, (Factor("x1"), Factor("y0"))),
        Term(-0.012, (Factor("y1"), Factor("x0"))),
    )
    assert [t.dependency for t in expr.terms] == ["y0", "x0"]
    assert str(expr) == "dw = 0.01*x1*y0 - 0.012*y1*x0"


@pytest.mark.parametrize(
    "text, coefficient",
    [
        ("dw = 2^-3*x1*y0", 0.125),
        ("dw = 2**-3*x1*y0", 0.125),
        ("dw = 3*2^-4*x1*y0", 3 / 16),
        ("dw = 1.5e-3*x1*y0", 1.5e-3),
        ("dw = (-1)*x1*y0", -1.0),
        ("dw = -x1*y0", -1.0),
        ("dw = x1*y0*0.5*0.5", 0.25),
        ("dw = .5*x1*y0", 0.5),
    ],
)
def test_number_syntax(text, coefficient):
    (term,) = parse_rule(text).terms
    assert term.coefficient == pytest.approx(coefficient, rel=0, abs=1e-18)
    assert term.symbols == ("x1", "y0")


def test_offsets_sgn_tags_and_decimation():
    expr = parse_rule("dt = -2^-2*x0*(y1+3) + 0.5*sgn(w-0.25)*u2*t")
    first, second = expr.terms
    assert first.factors[1] == Factor("y1", 3.0)
    assert second.factors[0] == Factor("w", -0.25, sgn=True)
    assert second.dependency == "u2"
    assert expr.symbols == {"x0", "y1", "w", "u2", "t"}
    assert parse_rule(str(expr)) == expr


def test_product_without_dependency_defaults_to_every_epoch():
    assert parse_rule("dw = -0.001*w").terms[0].dependency == "u0"


def test_third_factor_alias():
    expr = parse_rule("dw = 0.1*x1*reward", aliases={"reward": "y2"})
    assert expr.terms[0].symbols == ("x1", "y2")


@pytest.mark.parametrize(
    "text, column, message",
    [
        ("dw = 0.01*x1*q0", 14, "unknown symbol 'q0'"),
        ("dw = 0.01*x1**y0", 13, "expected '+', '-', '*'"),
        ("dz = x1*y0", 1, "unknown rule target 'dz'"),
        ("dw = 0.01*x1 +", 15, "found end of rule"),
        ("dw = 0.01*x1 $ y0", 14, "unexpected character '$'"),
        ("dw = sgn(x0)*x1", 10, "cannot carry an offset or sgn"),
        ("dw = 2^x1", 8, "integer exponent"),
        ("x1*y0", 1, "must start with its target"),
        ("dw = (x1 + 3*y0", 13, "expected ')'"),
    ],
)
def test_syntax_errors_point_at_token(text, column, message):
    with pytest.raises(RuleSyntaxError) as info:
        parse_rule(text)
    err = info.value
    assert message in str(err)
    assert err.position + 1 == column, str(err)
    caret_line = str(err).splitlines()[-1]
    assert caret_line.index("^") - 4 == err.position


def test_python_object_forms():
    expr = as_expression([(0.01, "x1", "y0"), (-0.012, "y1", "x0")], target="dw")
    assert expr == parse_rule("dw = 0.01*x1*y0 - 0.012*y1*x0")
    assert as_expression(expr.to_dict()) == expr
    assert as_expression("0.01*x1*y0", target="dw").target == "dw"
    with pytest.raises(RuleError, match="explicit target"):
        as_expression([(0.01, "x1", "y0")])
    with pytest.raises(RuleError, match="unknown symbol 'z9'"):
        as_expression([(0.01, "z9")], target="dw")


def test_invalid_objects():
    with pytest.raises(RuleError, match="not finite"):
        Term(math.nan, (Factor("x1"),))
    with pytest.raises(RuleError, match="at most one decimation"):
        Term(1.0, (Factor("u1"), Factor("u2")))
    with pytest.raises(RuleError, match="unknown rule target"):
        Expression("dq", ())
