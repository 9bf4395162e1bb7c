"""verifiers.numeric: final-number extraction and verdicts."""

import pytest

from verifiers import Verdict
from verifiers.numeric import canonical_number, check_numeric, extract_number


@pytest.mark.parametrize(
    "text, number",
    [
        ("Natalia sold 48 + 24 = 72 clips.\n#### 1,234", "1234"),
        ("#### 72 and then the model rambled about 5 more things", "72"),
        ("#### 3\n#### 4", "4"),  # the last marked number
        ("The answer is $3.00.", "3"),
        ("the ANSWER is: 17", "17"),
        ("The answer is 7 apples, not 9.", "7"),  # the marked number beats the last one
        ("I think 3, then 4, then 5.", "5"),
        ("She owes -12 dollars", "-12"),
        ("The answer is -4.", "-4"),
        ("It costs .5 each", "0.5"),
        ("so 0.50 in total", "0.5"),
        ("1,000,000 people", "1000000"),
        ("total: $1,250.75", "1250.75"),
        ("Answer: 42", "42"),
        ("####3.0", "3"),
    ],
)
def test_extracts_the_final_number(text, number):
    assert extract_number(text) == number


@pytest.mark.parametrize("text", ["", "no digits here", "#### none", "the answer is unknown"])
def test_no_number_extracts_none(text):
    assert extract_number(text) is None


@pytest.mark.parametrize(
    "raw, canonical",
    [("3.0", "3"), ("3", "3"), ("1,000", "1000"), ("$3.00", "3"), ("-7", "-7"), (".5", "0.5"), ("2.50", "2.5"),
     ("10.", "10"), ("0.000", "0"), ("x", None), ("", None), ("nan", None), ("inf", None)],
)
def test_canonical_number(raw, canonical):
    assert canonical_number(raw) == canonical


def test_3_point_0_equals_3():
    assert check_numeric("The answer is 3.0", "3") == Verdict(True, "pass", "3", "")
    assert check_numeric("#### 3", "3.00") == Verdict(True, "pass", "3", "")


def test_thousands_separator_in_the_gold_answer():
    assert check_numeric("#### 1000", "1,000") == Verdict(True, "pass", "1000", "")


def test_wrong_number_fails_with_the_extracted_answer():
    assert check_numeric("#### 4", "3") == Verdict(False, "fail", "4", "expected 3")


def test_no_number_is_no_answer():
    assert check_numeric("I do not know.", "3") == Verdict(False, "no_answer", None, "no number in the completion")


def test_gold_answer_that_is_not_a_number_is_an_error():
    assert check_numeric("#### 3", "three") == Verdict(False, "error", None, "gold answer 'three' is not a number")


def test_a_decimal_is_not_rounded_to_match():
    assert check_numeric("#### 3.01", "3") == Verdict(False, "fail", "3.01", "expected 3")


def test_negative_and_positive_differ():
    assert check_numeric("#### -5", "5").status == "fail"


def test_integer_gold_answer_from_a_json_file():
    """JSONL answers are often numbers, not strings."""
    assert check_numeric("#### 12", 12) == Verdict(True, "pass", "12", "")


def test_gold_answer_that_is_a_full_gsm8k_solution():
    """GSM8K's answer column holds the worked solution ending in '#### 72'."""
    gold = "Natalia sold 48/2 = <<48/2=24>>24 clips in May.\nAltogether she sold 48+24 = <<48+24=72>>72 clips.\n#### 72"
    assert check_numeric("So the answer is 72.", gold) == Verdict(True, "pass", "72", "")
    assert check_numeric("#### 24", gold) == Verdict(False, "fail", "24", "expected 72")
