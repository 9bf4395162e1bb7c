"""`numeric`: the final number of a completion against the problem's `answer`.

The number taken is, in order of preference: the one after GSM8K's `####`, the one after
"the answer is", or else the last number in the text. With `verify.extract` set
(`verifiers.extract`), it is the first number of the extracted span instead (the last number
of the text for `last_number`). Thousands separators, `$` and a trailing `.` are ignored, and
values are compared exactly as decimals, so `3.0` equals `3` and `1,000` equals `1000`.
"""

import re
from decimal import Decimal, InvalidOperation
from typing import Optional

from verifiers.extract import NUMBER as _NUMBER, final_span, first_number
from verifiers.verdict import Verdict

_MARKED = [
    re.compile(rf"####\s*({_NUMBER})"),
    re.compile(rf"answer is\s*:?\s*({_NUMBER})", re.IGNORECASE),
]
_ANY = re.compile(_NUMBER)


def canonical_number(raw: str) -> Optional[str]:
    """`raw` as a plain decimal string ('1,000.50' -> '1000.5', '$3.0' -> '3'), or None."""
    cleaned = raw.replace(",", "").replace("$", "").replace(" ", "").rstrip(".")
    try:
        value = Decimal(cleaned)
    except InvalidOperation:
        return None
    if not value.is_finite():
        return None
    if value == value.to_integral_value():
        return str(int(value))
    return format(value.normalize(), "f")


def extract_number(text: str, how: Optional[str] = None) -> Optional[str]:
    """The canonical final number of a completion, or None if it has none; `how` is a
    `verify.extract` value (None: ####, then "the answer is", then the last number)."""
    if how is not None:
        span = final_span(text, how)
        raw = span if how == "last_number" or span is None else first_number(span)
        return canonical_number(raw) if raw is not None else None
    for pattern in _MARKED:
        found = pattern.findall(text)
        if found:
            return canonical_number(found[-1])
    found = _ANY.findall(text)
    return canonical_number(found[-1]) if found else None


def check_numeric(text: str, answer: str, extract: Optional[str] = None) -> Verdict:
    # The gold answer goes through the default extraction, so GSM8K's full solutions ending in
    # "#### 72" work as they are, whatever the completions' extraction.
    expected = extract_number(str(answer))
    if expected is None:
        return Verdict(False, "error", None, f"gold answer {answer!r} is not a number")
    got = extract_number(text, extract)
    if got is None:
        where = "the completion" if extract is None else f"the completion's {extract} answer"
        return Verdict(False, "no_answer", None, f"no number in {where}")
    passed = got == expected
    return Verdict(passed, "pass" if passed else "fail", got, "" if passed else f"expected {expected}")
