"""verifiers.constant_eq: math-verify's symbolic comparison skips simplify only where a - b is
certainly a nonzero number, and every comparison gives what math-verify's own gives."""

import itertools

import pytest
import sympy
from math_verify import grader, verify

from verifiers import constant_eq
from verifiers.math_answer import parse_gold

x = sympy.Symbol("x")


@pytest.mark.parametrize(("a", "b", "nonzero"), [
    (2 * sympy.sqrt(3), 3 * sympy.sqrt(2), True),
    (sympy.pi, sympy.Rational(355, 113), True),  # 2.7e-7 apart
    (1 + sympy.sqrt(2) * sympy.I, sympy.Integer(1), True),  # a complex difference
    (sympy.Rational(41, 4), 9 * sympy.sqrt(2), True),
    (sympy.sqrt(12), 2 * sympy.sqrt(3), False),  # equal: sympy makes both 2*sqrt(3)
    (sympy.sqrt(3 + 2 * sympy.sqrt(2)), 1 + sympy.sqrt(2), False),  # equal, not by sympy's own evaluation
    (sympy.log(8), 3 * sympy.log(2), False),  # equal likewise
    (x + 1, sympy.Integer(1), False),  # free symbols: left to simplify
    (sympy.oo, sympy.Integer(5), False),
    (sympy.Function("f")(2), sympy.Integer(1), False),  # no value
    (sympy.Interval(0, 1), sympy.Interval(0, 2), False),  # not expressions
])
def test_only_a_certainly_nonzero_constant_difference_counts(a, b, nonzero):
    assert constant_eq.nonzero_constant(a, b) is nonzero


# Answers as a MATH pool has them: equal values in other forms, near misses, symbols.
ANSWERS = [
    "2\\sqrt{3}", "\\sqrt{12}", "3\\sqrt{2}", "\\sqrt{18}", "\\frac{\\sqrt{6}}{2}", "\\sqrt{\\frac{3}{2}}",
    "\\frac{\\pi}{4}", "0.25\\pi", "\\frac{355}{452}", "45", "\\frac{41}{4}", "10.25", "1.2247",
    "\\sqrt{3+2\\sqrt{2}}", "1+\\sqrt{2}", "\\log 8", "3\\log 2", "e^{i\\pi}", "-1", "2^{10}", "1024",
    "\\frac{1}{\\sqrt{2}}", "\\frac{\\sqrt{2}}{2}", "x^2+2x+1", "(x+1)^2", "\\infty", "(1, 2)", "[1, 2)",
]


def test_comparisons_give_math_verifys_verdicts(monkeypatch):
    values = {answer: parse_gold(answer, ("latex", "expr")) for answer in ANSWERS}
    pairs = list(itertools.product(ANSWERS, repeat=2))
    own = [verify(values[g], values[p]) for g, p in pairs]
    monkeypatch.setattr(grader, "sympy_symbolic_eq", grader.sympy_symbolic_eq)  # put back afterwards
    assert constant_eq.install()
    shortcut = [verify(values[g], values[p]) for g, p in pairs]
    assert [pair for pair, a, b in zip(pairs, own, shortcut) if a != b] == []
    assert sum(own) == len(ANSWERS) + 20  # each with itself, and 10 pairs of forms of one value both ways
    skipped = sum(constant_eq.nonzero_constant(values[g][0], values[p][0]) for g, p in pairs)
    assert skipped == 444  # of the 736 unequal pairs: simplify is left for symbols, sets and near-zeros


def test_installing_twice_wraps_math_verifys_own_once(monkeypatch):
    monkeypatch.setattr(grader, "sympy_symbolic_eq", grader.sympy_symbolic_eq)
    original = grader.sympy_symbolic_eq
    constant_eq.install()
    constant_eq.install()
    assert grader.sympy_symbolic_eq.__wrapped__ is original
    assert grader.sympy_symbolic_eq(x**2 - 1, (x - 1) * (x + 1)) is True  # symbols: simplify decides
