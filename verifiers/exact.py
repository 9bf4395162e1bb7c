"""`exact`: the completion equals the answer after normalization.

Normalization trims, folds case, collapses whitespace, drops an "Answer:" / "The answer is"
lead-in and the punctuation and quotes around the text. When the gold answer is a
multiple-choice letter (A-J), the completion is reduced to the letter it picks: "(B)",
"B)", "B.", "Answer: B", "The answer is (B)". With `verify.extract` set (`verifiers.extract`),
only the extracted span of the completion is compared (`\\boxed{Paris}` -> "paris").
"""

import re
from typing import Optional

from verifiers.extract import final_span
from verifiers.verdict import Verdict

_LEAD_IN = re.compile(r"^(?:the\s+)?(?:final\s+)?answer\s*(?:is|:)?\s*:?\s*", re.IGNORECASE)
_SURROUNDING = " \t\n\r.,;:!?\"'`*()[]{}"
_LETTER_ONLY = re.compile(r"^[A-J]$", re.IGNORECASE)
_LETTER_PICKED = [
    re.compile(r"answer\s*(?:is|:)\s*:?\s*\(?([A-J])\b\)?", re.IGNORECASE),
    re.compile(r"^\s*\(([A-J])\)"),  # "(B) ..."
    re.compile(r"^\s*([A-J])[.):](?:\s|$)"),  # "B. ...", "B) ..."; not the pronoun "I am"
]


def normalize(text: str) -> str:
    text = " ".join(str(text).split())
    text = _LEAD_IN.sub("", text)
    return text.strip(_SURROUNDING).casefold()


def choice_letter(text: str) -> Optional[str]:
    """The multiple-choice letter a completion picks, or None."""
    if _LETTER_ONLY.match(normalize(text)):
        return normalize(text).upper()
    for pattern in _LETTER_PICKED:
        found = pattern.findall(text)
        if found:
            return found[-1].upper()
    return None


def check_exact(text: str, answer: str, extract: Optional[str] = None) -> Verdict:
    expected = normalize(answer)
    if not expected:
        return Verdict(False, "error", None, "the gold answer is empty")
    if extract is not None:
        text = final_span(text, extract)
        if text is None:
            return Verdict(False, "no_answer", None, f"no {extract} answer in the completion")
    if _LETTER_ONLY.match(expected):
        got = choice_letter(text)
        if got is None:
            return Verdict(False, "no_answer", None, "no choice letter in the completion")
        passed = got == expected.upper()
    else:
        got = normalize(text)
        if not got:
            return Verdict(False, "no_answer", None, "empty completion")
        passed = got == expected
    detail = "" if passed else f"expected {expected[:80]!r}"
    return Verdict(passed, "pass" if passed else "fail", got, detail)
