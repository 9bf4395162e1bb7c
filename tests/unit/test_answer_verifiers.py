"""exact and math: tables of tricky cases; math's gold self-check and its process timeout."""

import time

import pytest

from verifiers import get_verifier
from verifiers.exact import check_exact, choice_letter, normalize
from verifiers.math_answer import MathChecker

# completion, gold answer, passed, extracted answer
EXACT = {
    "same": ("Paris", "Paris", True, "paris"),
    "case and spaces": ("  the  EIFFEL tower ", "The Eiffel Tower", True, "the eiffel tower"),
    "trailing period": ("Paris.", "Paris", True, "paris"),
    "quotes": ('"Paris"', "Paris", True, "paris"),
    "answer lead-in": ("Answer: Paris", "Paris", True, "paris"),
    "the answer is": ("The answer is Paris.", "paris", True, "paris"),
    "different": ("Lyon", "Paris", False, "lyon"),
    "longer text is not equal": ("Paris is the capital", "Paris", False, "paris is the capital"),
    "empty completion": ("   ", "Paris", False, None),
    "letter in parentheses": ("(B)", "B", True, "B"),
    "letter with a period": ("B. 42 apples", "B", True, "B"),
    "answer colon letter": ("Let me think... Answer: C", "C", True, "C"),
    "the answer is (D)": ("so the answer is (D).", "D", True, "D"),
    "lowercase letter": ("b", "B", True, "B"),
    "gold in parentheses": ("B", "(B)", True, "B"),
    "wrong letter": ("(A)", "B", False, "A"),
    "no letter": ("I am not sure", "B", False, None),
    "last stated answer wins": ("Answer: A. Wait, no. Answer: B", "B", True, "B"),
}


@pytest.mark.parametrize("case", EXACT.values(), ids=EXACT.keys())
def test_exact_table(case):
    text, gold, passed, answer = case
    verdict = check_exact(text, gold)
    assert (verdict.passed, verdict.answer) == (passed, answer)
    assert verdict.status == ("pass" if passed else "no_answer" if answer is None else "fail")


def test_exact_helpers():
    assert normalize("  Answer:  'Yes!' ") == "yes"
    assert choice_letter("(E) none of these") == "E"
    assert check_exact("x", "  ").status == "error"


# completion, gold, passed
MATH = {
    "frac vs decimal": ("The answer is $0.5$", "\\frac12", True),
    "decimal gold, boxed frac": ("\\boxed{\\frac{1}{2}}", "0.5", True),
    "frac braces": ("$\\frac{1}{2}$", "\\frac12", True),
    "dfrac": ("$\\dfrac{3}{4}$", "\\frac{3}{4}", True),
    "integer": ("so x = 3.", "3", True),
    "integer boxed": ("\\boxed{3}", "3", True),
    "wrong integer": ("\\boxed{4}", "3", False),
    "negative": ("\\boxed{-2}", "-2", True),
    "sign matters": ("\\boxed{2}", "-2", False),
    "sqrt": ("\\boxed{\\frac{\\sqrt3}{2}}", "\\frac{\\sqrt{3}}{2}", True),
    "sqrt simplified": ("\\boxed{2\\sqrt{2}}", "\\sqrt{8}", True),
    "pi": ("\\boxed{2\\pi}", "2\\pi", True),
    "closed interval": ("$[1, 2]$", "[1,2]", True),
    "half-open interval": ("$[1, 2)$", "[1,2)", True),
    "interval ends matter": ("$(1, 2)$", "[1,2]", False),
    "set order": ("$\\{2,1\\}$", "\\{1,2\\}", True),
    "set members": ("$\\{1,3\\}$", "\\{1,2\\}", False),
    "tuple": ("\\boxed{(1, 2)}", "(1,2)", True),
    "polynomial expanded": ("\\boxed{x^2+2x+1}", "(x+1)^2", True),
    "polynomial wrong": ("\\boxed{x^2+1}", "(x+1)^2", False),
    "percent": ("\\boxed{10\\%}", "10\\%", True),
    "thousands separator": ("The answer is $1,000$", "1000", True),
    "scientific": ("\\boxed{1.5\\times 10^{3}}", "1500", True),
    "fraction vs wrong decimal": ("\\boxed{0.33}", "\\frac13", False),
    "text wrapped": ("\\boxed{\\text{5}}", "5", True),
    "degrees word": ("\\boxed{30}", "30", True),
    "equation answer": ("$x = 5$", "5", True),
    # math-verify reads several boxed answers as one set of answers, not as the last one.
    "two boxed answers are a set": ("first \\boxed{1}, finally \\boxed{2}", "2", False),
    "a set of boxed answers": ("\\boxed{1} and \\boxed{2}", "\\{1,2\\}", True),
    "exponent": ("\\boxed{2^{10}}", "1024", True),
    "mixed number": ("\\boxed{\\frac{7}{2}}", "3.5", True),
    "matrix-free vector": ("\\boxed{(0, -1)}", "(0,-1)", True),
    "infinity interval": ("$(-\\infty, 0)$", "(-\\infty,0)", True),
}


@pytest.fixture(scope="module")
def math_checker():
    checker = MathChecker(timeout_s=20.0)
    yield checker
    checker.close()


def test_the_math_table_is_big_enough():
    assert len(MATH) >= 30


@pytest.mark.parametrize("case", MATH.values(), ids=MATH.keys())
def test_math_table(math_checker, case):
    text, gold, passed = case
    verdict = math_checker.check(text, gold)
    assert (verdict.passed, verdict.status) == (passed, "pass" if passed else "fail"), verdict
    assert verdict.answer is not None


def test_math_no_answer_and_bad_gold(math_checker):
    assert math_checker.check("I do not know", "3").status == "no_answer"
    assert math_checker.check("\\boxed{3}", "").status == "error"


def test_every_gold_answer_verifies_against_itself(math_checker):
    golds = sorted({gold for _, gold, _ in MATH.values()})
    as_completion = get_verifier("math").gold_as_completion
    agree = [g for g in golds if math_checker.check(as_completion(g), g).passed]
    assert agree == golds
    assert as_completion("\\frac12") == "\\boxed{\\frac12}" and as_completion("$x$") == "$x$"


def test_a_check_that_overruns_is_killed_and_the_next_one_works():
    checker = MathChecker(timeout_s=0.5)
    try:
        checker.check("\\boxed{1}", "1")  # the helper process is up
        began = time.monotonic()
        # sympy grinds on 10^(10^10) for minutes.
        verdict = checker.check("\\boxed{\\sin(x)^2+\\cos(x)^2 + 10^{10^{10}}}", "1")
        assert verdict.status == "timeout" and time.monotonic() - began < 2.0
        assert checker.check("\\boxed{2}", "2").passed is True
    finally:
        checker.close()
