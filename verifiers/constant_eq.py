"""math-verify's symbolic comparison, without `simplify` where the difference is a nonzero number.

math-verify compares two sympy values by structure, then numerically, then symbolically:
`sympy_symbolic_eq(a, b)` is `simplify(a - b).is_zero`. In a pool most comparisons that get
that far are of a wrong answer with the gold, both constants (`3\\sqrt{2}` against
`2\\sqrt{3}`, `\\frac{41}{4}` against `9\\sqrt{2}`), and `simplify` takes 1-10 ms to find
what is plain from their values: they differ. simplify keeps an expression's value, so where
a - b is a constant whose value is not zero, simplify(a - b) is not zero either and the
comparison is False. `nonzero_constant` says so only when sympy's strict evalf gives a - b
to 30 significant digits as a number other than 0 (strict evalf raises where it cannot tell a
value from zero, `sqrt(3 + 2\\sqrt{2}) - 1 - \\sqrt{2}` or `\\log 8 - 3 \\log 2`); anything
else (free symbols, infinities, unevaluated functions, a raise) goes to math-verify's own.
`tests/unit/test_constant_eq.py` checks both give the same on pairs equal and unequal.

Installed in the math helper process only, as `verifiers.latex_parse` is; written against
math-verify 0.9, whose grader looks `sympy_symbolic_eq` up by name at each comparison.
"""

import importlib.metadata
import logging

log = logging.getLogger(__name__)

DIGITS = 30  # significant digits a - b must be known to before it counts as not zero
_SUPPORTED = "0.9."  # math-verify versions whose grader this was written for


def nonzero_constant(a, b) -> bool:
    """Whether a - b is certainly a number other than zero."""
    from sympy import Expr

    if not (isinstance(a, Expr) and isinstance(b, Expr)):
        return False
    try:
        difference = a - b
        if difference.free_symbols:
            return False
        value = difference.evalf(DIGITS, strict=True)
        parts = value.as_real_imag()
    except Exception:  # noqa: BLE001 - PrecisionExhausted (maybe zero), or anything sympy cannot evaluate
        return False
    known = all(part.is_Float or part.is_zero for part in parts)
    return known and any(part.is_Float and part != 0 for part in parts)


def install() -> bool:
    """math-verify's symbolic comparisons in this process skip `simplify` for differences that
    are nonzero numbers; False (and a warning) with another math-verify version."""
    from math_verify import grader

    version = importlib.metadata.version("math-verify")
    if not version.startswith(_SUPPORTED):
        log.warning("math-verify %s is not the version Troop's constant comparison was written for: "
                    "every symbolic comparison runs simplify", version)
        return False
    original = getattr(grader.sympy_symbolic_eq, "__wrapped__", grader.sympy_symbolic_eq)

    def sympy_symbolic_eq(a, b) -> bool:
        return False if nonzero_constant(a, b) else original(a, b)

    sympy_symbolic_eq.__wrapped__ = original
    grader.sympy_symbolic_eq = sympy_symbolic_eq
    return True
