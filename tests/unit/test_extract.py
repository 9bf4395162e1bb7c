"""verify.extract: where the answer verifiers find a completion's final answer, its config
values, and the verifier keys that record it (and the math settings) only when set."""

import dataclasses

import pytest

from jobs.config import merge_config, verify_settings
from jobs.errors import ConfigError
from verifiers import get_verifier
from verifiers.exact import check_exact
from verifiers.extract import EXTRACTS, final_span
from verifiers.math_answer import MathOptions, math_verdict
from verifiers.numeric import check_numeric
from verifiers.registry import FunctionChecker, Verifier, VerifySettings
from verifiers.verdict import Verdict

REQUIRED = ["run.root=/tmp/troop-run", "model.path=org/model"]
TEXT = "First 3 apples, so \\boxed{\\frac{1}{2}} was wrong. #### 12\nThe answer is: 14 pears.\nCheck: 15"


@pytest.mark.parametrize("how, span", [
    ("boxed", "\\frac{1}{2}"),
    ("hash_answer", "12"),
    ("answer_is", "14 pears"),
    ("last_number", "15"),
])
def test_each_extraction_finds_its_span(how, span):
    assert final_span(TEXT, how) == span


@pytest.mark.parametrize("text, how, span", [
    ("\\boxed{a}, then \\boxed {\\{1, 2\\}}.", "boxed", "\\{1, 2\\}"),  # the last one, braces balanced
    ("\\boxed{3} and a cut-off \\boxed{\\frac{1", "boxed", None),  # the last one is not closed: no answer
    ("no box", "boxed", None),
    ("#### 3\n#### **42**.", "hash_answer", "42"),  # bold and the full stop dropped
    ("####", "hash_answer", None),
    ("THE ANSWER IS $\\frac{3}{4}$.", "answer_is", "$\\frac{3}{4}$"),
    ("The answer is:\n\n  (B)", "answer_is", "(B)"),  # on the next line when the phrase ends one
    ("the answer is: 1. Then answer: 2.", "answer_is", "2"),
    ("no digits", "last_number", None),
    ("costs $1,250.", "last_number", "$1,250"),
])
def test_extraction_edges(text, how, span):
    assert final_span(text, how) == span


def test_numeric_takes_the_extracted_number_and_reads_the_gold_the_default_way():
    gold = "Natalia sold 48 and 24 clips.\n#### 72"  # GSM8K's full solution
    text = "#### 72\nThe answer is 70.\nSo 3 more."
    assert check_numeric(text, gold).passed  # default: #### first
    assert check_numeric(text, gold, extract="hash_answer").passed
    assert check_numeric(text, gold, extract="answer_is").answer == "70"
    assert check_numeric(text, gold, extract="last_number").answer == "3"
    assert check_numeric("So \\boxed{1,000 \\text{ cm}^2}.", "1000", extract="boxed").passed  # the first number in the box
    verdict = check_numeric("42", "42", extract="hash_answer")
    assert (verdict.status, verdict.detail) == ("no_answer", "no number in the completion's hash_answer answer")


def test_exact_compares_the_extracted_span():
    text = "Paris is large, Lyon is not. So \\boxed{Paris}."
    assert not check_exact(text, "Paris").passed  # the whole text
    assert check_exact(text, "Paris", extract="boxed").passed
    assert check_exact("I think (A) at first. The answer is (C).", "C", extract="answer_is").passed
    assert check_exact("no box here", "Paris", extract="boxed") == Verdict(
        False, "no_answer", None, "no boxed answer in the completion")


def test_math_parses_the_extracted_answer():
    text = "we get \\boxed{3}. So the answer is 4"
    assert math_verdict(text, "4")[:2] == (False, "fail")  # math-verify's own search prefers the box
    assert math_verdict(text, "4", MathOptions(extract="answer_is"))[:2] == (True, "pass")
    assert math_verdict("1, 2, 1,000 items", "1000", MathOptions(extract="last_number"))[:2] == (True, "pass")
    assert math_verdict("nothing boxed", "4", MathOptions(extract="boxed"))[1] == "no_answer"


@pytest.mark.parametrize("how", [None, *EXTRACTS])
@pytest.mark.parametrize("name, gold", [("numeric", "Natalia sold 48 clips.\n#### 72"), ("numeric", "1,000"),
                                        ("exact", "Paris"), ("exact", "B")])
def test_the_gold_written_as_a_completion_passes_under_each_extraction(name, gold, how):
    verifier = get_verifier(name)
    if name == "exact" and how == "last_number":
        pytest.skip("a word has no number to extract")
    checker = verifier.open(VerifySettings(extract=how))
    assert checker.check(verifier.gold_as_completion(gold, how), {"answer": gold}).passed


@pytest.mark.parametrize("how", [None, "boxed", "hash_answer", "answer_is"])
@pytest.mark.parametrize("gold", ["\\frac{1}{2}", "(1, 2)", "$x^2+1$", "42"])
def test_the_math_gold_as_a_completion_passes_under_each_extraction(gold, how):
    completion = get_verifier("math").gold_as_completion(gold, how)
    assert math_verdict(completion, gold, MathOptions(extract=how))[:2] == (True, "pass")


def test_the_settings_come_from_the_config():
    config = merge_config(None, REQUIRED + ["verify.verifier=math", "verify.extract=boxed", "verify.math.precision=3",
                                            "verify.math.strict=false", "verify.math.targets=[latex,string]"])
    settings = verify_settings(config.verify)
    assert (settings.extract, settings.math_precision, settings.math_strict, settings.math_targets) == (
        "boxed", 3, False, ("latex", "string"))
    assert settings.math_options() == MathOptions(precision=3, strict=False, targets=("latex", "string"), extract="boxed")
    assert verify_settings(merge_config(None, REQUIRED).verify) == VerifySettings()


@pytest.mark.parametrize("override, names", [
    ("verify.extract=last", ["verify.extract", "last_number, hash_answer, boxed, answer_is"]),
    ("verify.math.precision=-1", ["verify.math.precision"]),
    ("verify.math.targets=[latex,sympy]", ["verify.math.targets", "latex, expr, string"]),
    ("verify.math.targets=[latex,latex]", ["verify.math.targets"]),
    ("verify.math.targets=[]", ["verify.math.targets"]),
])
def test_a_bad_value_is_a_one_line_error_naming_the_key(override, names):
    with pytest.raises(ConfigError) as caught:
        merge_config(None, REQUIRED + [override])
    message = str(caught.value)
    assert "\n" not in message and all(name in message for name in names)


# Keys: the new settings enter only the keys of the verifiers that read them, and only when set.


def test_keys_without_the_new_settings_are_the_ones_stored_runs_have():
    assert [get_verifier(name).key() for name in ("numeric", "exact", "math")] == [
        "numeric-163ad047a0", "exact-88a823b5b2", "math-ebb7de32f4"]


@pytest.mark.parametrize("change, readers", [
    ({"extract": "boxed"}, {"numeric", "exact", "math"}),
    ({"math_precision": 3}, {"math"}),
    ({"math_strict": False}, {"math"}),
    ({"math_targets": ("latex", "expr", "string")}, {"math"}),
])
def test_a_set_value_changes_the_keys_of_the_verifiers_that_read_it(change, readers):
    changed = dataclasses.replace(VerifySettings(), **change)
    for name in ("numeric", "exact", "math", "unit_tests", "stdio"):
        verifier = get_verifier(name)
        assert (verifier.key(changed) != verifier.key()) == (name in readers), name


def test_a_value_equal_to_the_default_keeps_the_key():
    math = get_verifier("math")
    assert math.key(VerifySettings(math_precision=6, math_strict=True, math_targets=["latex", "expr"])) == math.key()
    assert math.key(VerifySettings(extract="boxed")) != math.key(VerifySettings(extract="answer_is"))


def test_settings_if_changed_is_hashed_only_away_from_its_default():
    plain = Verifier("probe", "1", ("answer",), lambda settings: FunctionChecker(check_numeric))
    probing = dataclasses.replace(plain, settings_if_changed=("gold_runs",))
    assert probing.key(VerifySettings()) == plain.key(VerifySettings())
    assert probing.key(VerifySettings(gold_runs=5)) != plain.key(VerifySettings(gold_runs=5)) == plain.key()
