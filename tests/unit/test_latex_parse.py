"""Parse trees reused by token types, and numbers reused (`verifiers.latex_parse`), give
latex2sympy2's own results: on every LaTeX string math-verify's own test suite parses, on
variants of them with other numbers and letters (the same tokens, so the kept trees are what
converts them), and on strings that fail to parse."""

import json
import os
import random
import re
import threading

import pytest
from latex2sympy2_extended.latex2sympy2 import latex2sympy as plain_latex2sympy
from math_verify.grader import should_treat_as_complex
from sympy import srepr

from verifiers import latex_parse

STRINGS = os.path.join(os.path.dirname(__file__), os.pardir, "fixtures", "latex", "strings.json")

pytestmark = pytest.mark.skipif(not latex_parse.supported(), reason="tree reuse is off for this latex2sympy2")


def result(convert, latex: str) -> str:
    """What a parse gives, as math-verify's `parse_latex_cached` asks for it: the value's srepr,
    or the class of what it raised."""
    try:
        value = convert(latex, is_real=not should_treat_as_complex(latex), convert_degrees=False,
                        normalization_config=None)
    except Exception as err:  # noqa: BLE001 - failing alike is part of the comparison
        return f"raises {type(err).__name__}"
    return srepr(value)


def variant(latex: str, rng: random.Random) -> str:
    """The same text with other digits and other single letters (mostly the same tokens)."""
    digits = re.sub(r"\d+", lambda m: str(rng.randint(0, 10 ** len(m.group()))), latex)
    return re.sub(r"(?<![\\a-zA-Z])[a-df-z](?![a-zA-Z])", lambda m: rng.choice("abcxyzt"), digits)


@pytest.fixture(scope="module")
def corpus() -> list[str]:
    with open(STRINGS) as f:
        strings = json.load(f)
    assert len(strings) == 301
    rng = random.Random(0)
    return strings + [variant(s, rng) for s in strings for _ in range(2)]


def test_reused_trees_give_latex2sympys_results(corpus):
    """In one thread: the originals first (each new token sequence parsed in full and kept),
    then their variants, which mostly find a kept tree."""
    def run():
        got = [result(latex_parse.latex2sympy, s) for s in corpus]
        found.update(trees=len(latex_parse._trees()), again=[result(latex_parse.latex2sympy, s) for s in corpus])
        found["got"] = got

    found: dict = {}
    thread = threading.Thread(target=run)  # a fresh thread: no tree kept from another test
    thread.start()
    thread.join()
    expected = [result(plain_latex2sympy, s) for s in corpus]
    mismatches = [(s, e, g) for s, e, g in zip(corpus, expected, found["got"]) if e != g]
    assert not mismatches, mismatches[:3]
    assert found["again"] == expected  # every tree reused once more, in another order of hits
    parsed = sum(not e.startswith("raises") for e in expected)
    assert found["trees"] < parsed / 3  # most strings were converted from a kept tree
    assert sum(e.startswith("raises") for e in expected) > 0  # failures are compared too


def test_a_failed_parse_keeps_no_tree_and_fails_again():
    def run():
        before = len(latex_parse._trees())
        outcomes.append(result(latex_parse.latex2sympy, "\\frac{1}{"))
        outcomes.append(len(latex_parse._trees()) - before)
        outcomes.append(result(latex_parse.latex2sympy, "\\frac{2}{"))
        outcomes.append(result(latex_parse.latex2sympy, "(3, 17)"))
        outcomes.append(result(latex_parse.latex2sympy, "(12,5)"))  # the same tokens: a kept tree
        outcomes.append(len(latex_parse._trees()) - before)

    outcomes: list = []
    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    assert outcomes[0] == result(plain_latex2sympy, "\\frac{1}{") and outcomes[0].startswith("raises")
    assert outcomes[1] == 0
    assert outcomes[2] == result(plain_latex2sympy, "\\frac{2}{")
    assert outcomes[3] == result(plain_latex2sympy, "(3, 17)") == "Interval(Integer(3), Integer(17), true, true)"
    assert outcomes[4] == result(plain_latex2sympy, "(12,5)")
    assert outcomes[5] == 1


def test_trees_are_kept_per_thread():
    latex_parse.latex2sympy("(3, 17)", normalization_config=None)
    seen: list = []
    thread = threading.Thread(target=lambda: seen.append(len(latex_parse._trees())))
    thread.start()
    thread.join()
    assert seen == [0] and len(latex_parse._trees()) >= 1
