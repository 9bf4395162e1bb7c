"""verifiers.numeric and the verifier registry: final-number extraction, verdicts, stable keys."""

import dataclasses

import pytest

from verifiers import VERIFIERS, Verdict, Verifier, get_verifier
from verifiers.numeric import canonical_number, check_numeric, extract_number
from verifiers.registry import register


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


# The registry.


def test_numeric_is_registered_with_its_payload():
    numeric = get_verifier("numeric")
    assert numeric is VERIFIERS["numeric"]
    assert numeric.payload_columns == ("answer",)
    assert numeric.check("#### 2", answer="2").passed is True


def test_verifier_key_is_stable():
    """The key names the verdict folder of existing runs: a change must be deliberate (bump the
    version), or every stored run is re-verified into a new folder."""
    assert get_verifier("numeric").key == "numeric-6ade484256"


def test_equal_verifiers_have_equal_keys_whatever_the_settings_order():
    first = Verifier("v", "1", ("answer",), check_numeric, {"a": 1, "b": [2, 3]})
    second = Verifier("v", "1", ("answer",), check_numeric, {"b": [2, 3], "a": 1})
    assert first.key == second.key
    assert first.key.startswith("v-") and len(first.key) == len("v-") + 10


@pytest.mark.parametrize(
    "change", [{"version": "2"}, {"settings": {"tolerance": 0.01}}, {"name": "numeric2"}]
)
def test_key_changes_with_version_settings_and_name(change):
    numeric = get_verifier("numeric")
    assert dataclasses.replace(numeric, **change).key != numeric.key


def test_unknown_verifier_lists_the_names():
    with pytest.raises(KeyError) as caught:
        get_verifier("numerik")
    message = caught.value.args[0]
    assert "'numerik'" in message
    assert all(name in message for name in VERIFIERS)


def test_registering_a_name_twice_is_refused():
    before = dict(VERIFIERS)
    with pytest.raises(ValueError, match="'numeric'"):
        register(Verifier("numeric", "9", ("answer",), check_numeric))
    assert VERIFIERS == before


def test_gold_answer_that_is_a_full_gsm8k_solution():
    """GSM8K's answer column holds the worked solution ending in '#### 72'."""
    gold = "Natalia sold 48/2 = <<48/2=24>>24 clips in May.\nAltogether she sold 48+24 = <<48+24=72>>72 clips.\n#### 72"
    assert check_numeric("So the answer is 72.", gold) == Verdict(True, "pass", "72", "")
    assert check_numeric("#### 24", gold) == Verdict(False, "fail", "24", "expected 72")
