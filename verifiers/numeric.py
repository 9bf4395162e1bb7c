"""`numeric`: the final number of a completion against the problem's `answer`.

The number taken is, in order of preference: the one after GSM8K's `####`, the one after
"the answer is", or else the last number in the text. Thousands separators, `$` and a
trailing `.` are ignored, and values are compared exactly as decimals, so `3.0` equals `3`
and `1,000` equals `1000`.
"""

import re
from decimal import Decimal, InvalidOperation
from typing import Optional

from verifiers.verdict import Verdict

_NUMBER = r"-?\$?\s*\d[\d,]*(?:\.\d+)?|-?\$?\s*\.\d+"
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


def extract_number(text: str) -> Optional[str]:
    """The canonical final number of a completion, or None if it has none."""
    for pattern in _MARKED:
        found = pattern.findall(text)
        if found:
            return canonical_number(found[-1])
    found = _ANY.findall(text)
    return canonical_number(found[-1]) if found else None


def check_numeric(text: str, answer: str) -> Verdict:
    # The gold answer goes through the same extraction, so GSM8K's full solutions ending in
    # "#### 72" work as they are.
    expected = extract_number(str(answer))
    if expected is None:
        return Verdict(False, "error", None, f"gold answer {answer!r} is not a number")
    got = extract_number(text)
    if got is None:
        return Verdict(False, "no_answer", None, "no number in the completion")
    passed = got == expected
    return Verdict(passed, "pass" if passed else "fail", got, "" if passed else f"expected {expected}")
