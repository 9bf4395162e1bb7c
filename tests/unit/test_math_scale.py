"""The math verifier at pool scale: each distinct final answer is parsed and compared once,
checks go to the helper in batches, and every verdict equals math-verify called on the sample
alone (`math_verdict`), row by row, on a pool of many distinct texts and few answers."""

import random
import threading
import time

import pyarrow as pa
import pytest

from jobs.stages.verification import verify_samples
from verifiers import VERDICTS_SCHEMA, get_verifier
from verifiers.math_answer import (
    FinalAnswerSearch, Judge, MathChecker, MathOptions, extraction_config, math_verdict, prediction_key,
)
from verifiers.registry import VerifySettings
from verifiers.verdict import Verdict

# Per problem: the gold and a few answers, each in several spellings (first: the gold's value).
ANSWERS = {
    "half": ("\\frac{1}{2}", [["\\frac{1}{2}", "\\dfrac12", "0.5", "1/2"], ["\\frac{1}{3}"], ["2"]]),
    "root": ("2\\sqrt{3}", [["2\\sqrt{3}", "\\sqrt{12}", "2 \\sqrt 3"], ["3\\sqrt{2}"], ["\\sqrt{3}"]]),
    "tuple": ("(1, -2)", [["(1,-2)", "\\left(1, -2\\right)"], ["(-2, 1)"], ["(1, 2)"]]),
    "interval": ("[-1, 3)", [["[-1,3)", "\\left[-1, 3\\right)"], ["(-1, 3)"], ["[-1, 3]"]]),
    "poly": ("x^2+2x+1", [["(x+1)^2", "x^2 + 2x + 1", "x^{2}+2x+1"], ["x^2+1"], ["(x-1)^2"]]),
    "pi": ("\\frac{\\pi}{4}", [["\\frac{\\pi}{4}", "\\pi/4", "0.25\\pi"], ["\\frac{\\pi}{2}"], ["45"]]),
    "integer": ("1000", [["1000", "1{,}000", "1000.0"], ["999"], ["10^3 + 1"]]),
    "set": ("\\{1, 2\\}", [["\\{1,2\\}", "\\{2, 1\\}"], ["\\{1\\}"], ["1, 2, 3"]]),
}

FILLER = [
    "We substitute $x = {a}$ into $y = {b}x$, which gives $y = {c}$.",
    "Then\n$$\n{a} + {b} = {c}\n$$\nas claimed.",
    "So \\[ {a}^2 = {c} \\] and we go on.",
    "By the lemma,\n\\[\n\\frac{{{a}}}{{{b}}} < {c}\n\\]\n",
    "It costs \\${a} and then ${b}$ more, about {c}% of it.",
    "Compare \\({a} \\cdot {b}\\) with [ {c} ] here.",
    "Before the final answer, check {a} and {b}.",
    "A first guess was \\boxed{{{a}}}, which fails for {b}.",
    "Étape {a}: on obtient {b}.",
    "$$ {a} = {b}",  # a display opened and never closed
    "The answer should be near {c}.",
]

ENDINGS = [
    "Therefore, the final answer is $\\boxed{{{x}}}$.",
    "So the answer is\n\\[\n\\boxed{{{x}}}\n\\]",
    "Hence $$\n y = \\boxed{{{x}}}\n$$",
    "Thus \\boxed{{{x}}}.",
    "The answer is \\boxed {{{x}}} indeed.",
    "We get \\fbox{{{x}}}.",
    "Final Answer: The final answer is ${x}$. I hope it is correct.",
    "So $\\boxed{{{x}}}$ and $\\boxed{{{x}}}$ again.",
    "It is \\boxed{{{x}}} and \\boxed{{{y}}}.",
    "FİNAL ANSWER IS ${x}$",  # a capital dotted I: Unicode case folding, not ASCII's
    "Answer: ${x}$",
    "and we run out of tok",  # cut off: no answer where math-verify looks first
    "so \\boxed{{{x}",  # an unclosed box
    "\\boxed{{{x}}}\\% of the total",
]


def pool(problems: list[str], per_problem: int, seed: int = 0, endings: list[str] = ENDINGS,
         fillers: list[str] = FILLER) -> list[tuple[str, str, str]]:
    """(problem id, text, gold): every text distinct, the answers a handful per problem."""
    rng = random.Random(seed)
    rows = []
    for pid in problems:
        gold, answers = ANSWERS[pid]
        for i in range(per_problem):
            steps = [rng.choice(fillers).format(a=rng.randint(1, 99), b=rng.randint(1, 99), c=rng.randint(1, 999))
                     for _ in range(rng.randint(2, 8))]
            x = rng.choice(rng.choices(answers, [6, 2, 1])[0])
            y = rng.choice(rng.choice(answers))
            ending = rng.choice(endings).format(x=x, y=y)
            rows.append((pid, f"Sample {i}.\n" + "\n\n".join(steps) + "\n\n" + ending, gold))
    # No answer anywhere, and a gold answer that does not parse.
    rows += [("half", "Sample x. I give up.", ANSWERS["half"][0]), ("empty", "Sample y. \\boxed{1}", "")]
    assert len({text for _, text, _ in rows}) == len(rows)
    return rows


@pytest.fixture(scope="module")
def rows():
    return pool(list(ANSWERS), 40)


@pytest.fixture(scope="module")
def reference(rows):
    """math-verify on each sample alone."""
    return [Verdict(*math_verdict(text, gold)) for _, text, gold in rows]


def test_the_final_answer_search_finds_what_parse_finds(rows):
    from math_verify import parse

    config = extraction_config(MathOptions.targets)
    search = FinalAnswerSearch(config)
    assert search.enabled
    decided = 0
    for _, text, _ in rows:
        found = search.find(text)
        if found is None:
            continue
        decided += 1
        whole = parse(text, config, parsing_timeout=None)
        assert found[0] == whole and [type(v) for v in found[0]] == [type(v) for v in whole], text
        assert found[1] == prediction_key(whole), text
    assert decided > 0.7 * len(rows)  # the rest: math-verify's lower priorities, over the whole text


@pytest.mark.parametrize("text, start", [
    ("one\ntwo \\boxed{1}", 3),  # the line of the box
    ("$$ a\nb $$\nc\n\\boxed{1}", 11),  # no display closes after the box: none before it holds it
    ("$$ a\nb $$\nc\n\\boxed{1} $$ d $$", 4),  # the last `$$` before its line may open one: back to there
    ("$$ a\nb\n\\boxed{1} $$", 0),  # a display still open at its line
    ("\\[ a \\]\n$$ b\n\\boxed{1}\n$$", 7),
    ("\\[ a\n\\]\nfine\nfinal answer is 2 \\boxed{3} \\[ \\]", 12),  # closed before the line
    ("abc", None),
    ("x\nThe Final Answer is 7", 6),  # no box: where "final answer" starts
])
def test_the_search_window(text, start):
    assert FinalAnswerSearch.window(text) == start


def test_batched_and_cached_verdicts_equal_math_verify_on_each_sample(rows, reference):
    checker = MathChecker(timeout_s=30.0)
    try:
        batched = checker.check_many([(text, gold) for _, text, gold in rows])
    finally:
        checker.close()
    assert len(batched) == len(reference)
    for (_, text, _), got, expected in zip(rows, batched, reference):
        assert got == expected, text
    statuses = {v.status for v in reference}
    assert statuses == {"pass", "fail", "no_answer", "error"}


def test_a_pool_of_few_answers_costs_few_comparisons():
    # Every text ends in one boxed answer, after steps without a box or a display left open
    # (math-verify would read those with the final box, as a set).
    boxed = pool(list(ANSWERS), 40, seed=1, endings=ENDINGS[:4], fillers=FILLER[:7] + FILLER[8:9] + FILLER[10:])
    judge = Judge(MathOptions())
    verdicts = [judge.verdict(text, gold) for _, text, gold in boxed]
    assert verdicts == [math_verdict(text, gold) for _, text, gold in boxed]
    compared = len(judge._verdicts)  # one verify per (gold, parsed answer)
    spellings = sum(len(s) for _, answers in ANSWERS.values() for s in answers)
    assert compared <= spellings < len(boxed) / 4, compared


@pytest.mark.parametrize("options", [
    MathOptions(precision=2), MathOptions(strict=False), MathOptions(targets=("latex", "expr", "string")),
    MathOptions(extract="boxed"), MathOptions(extract="answer_is"),
])
def test_settings_reach_the_cached_path_unchanged(rows, options):
    some = rows[::5]
    judge = Judge(options)
    assert [judge.verdict(text, gold) for _, text, gold in some] == [math_verdict(text, gold, options) for _, text, gold in some]


def test_the_settings_change_verdicts():
    assert not math_verdict("\\boxed{0.33}", "\\frac{1}{3}")[0]
    assert math_verdict("\\boxed{0.33}", "\\frac{1}{3}", MathOptions(precision=2))[0]
    assert not math_verdict("\\boxed{y+1}", "x+1")[0]
    assert math_verdict("\\boxed{y+1}", "x+1", MathOptions(strict=False))[0]
    assert math_verdict("The answer is B.", "B")[1] == "no_answer"
    assert math_verdict("The answer is B.", "B", MathOptions(targets=("string",)))[0]


def test_a_unit_verifies_in_one_batch_with_the_rows_of_the_per_sample_path(rows, reference):
    samples = pa.table({"problem_id": [p for p, _, _ in rows] * 2, "sample_idx": list(range(2 * len(rows))),
                        "text": [t for _, t, _ in rows] * 2})  # every text twice: checked once
    payloads = {pid: {"answer": gold} for pid, _, gold in rows}
    checker = get_verifier("math").open(VerifySettings(timeout_s=30.0))
    batches = []
    check_many = checker.check_many
    checker.check_many = lambda items: batches.append(len(items)) or check_many(items)
    try:
        table, checked = verify_samples(samples, payloads, checker)
    finally:
        checker.close()
    assert batches == [len(rows)] and checked == len(rows)
    expected = [{"problem_id": p, "sample_idx": i, "passed": v.passed, "status": v.status, "answer": v.answer,
                 "detail": v.detail} for i, ((p, _, _), v) in enumerate(list(zip(rows, reference)) * 2)]
    assert table.schema == VERDICTS_SCHEMA and table.to_pylist() == expected


HOSTILE = "\\boxed{\\sin(x)^2+\\cos(x)^2 + 10^{10^{10}}}"  # sympy grinds on 10^(10^10) for minutes


def test_an_overrun_in_a_batch_is_that_sample_only_and_is_not_run_twice():
    checker = MathChecker(timeout_s=1.0)
    try:
        checker.check("\\boxed{1}", "1")  # the helper is up
        began = time.monotonic()
        verdicts = checker.check_many([("\\boxed{2}", "2"), ("so " + HOSTILE, "1"), ("\\boxed{3}", "2"),
                                       ("then " + HOSTILE, "1"), ("\\boxed{2}.", "2")])
        took = time.monotonic() - began
    finally:
        checker.close()
    assert [v.status for v in verdicts] == ["pass", "timeout", "fail", "timeout", "pass"]
    assert verdicts[1].detail == "math-verify took over 1 s"
    # One overrun and a helper restart; the second text ends in the same answer: a timeout at once.
    assert took < 8.0, took


def test_a_helper_that_died_between_batches_is_replaced():
    checker = MathChecker(timeout_s=20.0)
    try:
        assert checker.check("\\boxed{1}", "1").passed
        checker._process.kill()
        checker._process.join()
        assert checker.check_many([("\\boxed{2}", "2"), ("\\boxed{3}", "2")]) == [
            Verdict(True, "pass", "2", ""), Verdict(False, "fail", "3", "expected 2")]
    finally:
        checker.close()


def test_a_helper_killed_during_a_batch_fails_that_sample_only():
    checker = MathChecker(timeout_s=60.0)
    try:
        checker.check("\\boxed{1}", "1")  # the helper is up
        helper = checker._process
        threading.Timer(1.5, helper.kill).start()  # while it grinds on the hostile answer
        verdicts = checker.check_many([("\\boxed{2}", "2"), ("so " + HOSTILE, "1"), ("\\boxed{3}", "3")])
    finally:
        checker.close()
    assert [v.status for v in verdicts] == ["pass", "error", "pass"]
    assert verdicts[1].detail == "the math checker died (exit code -9)"


def test_a_started_helper_is_waited_for_by_the_first_check_and_started_once():
    checker = MathChecker(timeout_s=30.0)
    try:
        checker.start()
        helper = checker._process
        checker.start()  # already starting: no second process
        assert checker._process is helper
        assert checker.check_many([("\\boxed{2}", "2"), ("\\boxed{3}", "2")]) == [
            Verdict(True, "pass", "2", ""), Verdict(False, "fail", "3", "expected 2")]
        assert checker._process is helper
    finally:
        checker.close()


def test_spellings_of_one_value_are_compared_once():
    """`2\\sqrt{3}` and `2 \\sqrt 3` parse to one sympy value: one sympy comparison for both
    (each verdict is still math-verify's own; `\\sqrt{12}` stays a value of its own)."""
    judge = Judge(MathOptions())
    compared = []
    verify = judge._verify
    judge._verify = lambda gold, predicted, **kw: compared.append((gold, predicted)) or verify(gold, predicted, **kw)
    texts = ["So \\boxed{\\sqrt{12}}.", "So \\boxed{2\\sqrt{3}}.", "So \\boxed{2 \\sqrt 3}.", "So \\boxed{3\\sqrt{2}}."]
    verdicts = [judge.verdict(text, "2\\sqrt{3}") for text in texts]
    assert verdicts == [math_verdict(text, "2\\sqrt{3}") for text in texts]
    assert [v[0] for v in verdicts] == [True, True, True, False]
    sympy_pairs = [(g[0], p[0]) for g, p in compared if not isinstance(g[0], str) and not isinstance(p[0], str)]
    assert [str(p) for _, p in sympy_pairs] == ["sqrt(12)", "2*sqrt(3)", "3*sqrt(2)"]  # not once per spelling
