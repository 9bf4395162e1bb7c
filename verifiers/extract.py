"""Where a completion's final answer is: the `verify.extract` setting of the answer verifiers.

- `last_number`: the last number in the text;
- `hash_answer`: what follows the last `####` (GSM8K's `#### 72`), to the end of its line;
- `boxed`: the content of the last `\\boxed{...}`, braces balanced (an unclosed one is no answer);
- `answer_is`: what follows the last "answer is" or "answer:", to the end of its line.

`None` (the default) is each verifier's own search: `numeric` takes the number after `####`,
else after "the answer is", else the last number; `exact` the whole text; `math` whatever
math-verify finds in the whole text. The gold answer is always read the default way (a GSM8K
solution ending in `#### 72` stays a gold of 72 whatever the completions' extraction).
"""

import re
from typing import Optional

EXTRACTS = ("last_number", "hash_answer", "boxed", "answer_is")

NUMBER = r"-?\$?\s*\d[\d,]*(?:\.\d+)?|-?\$?\s*\.\d+"
_NUMBERS = re.compile(NUMBER)
# Markers: the answer is the rest of the line after the last one (after the next line break
# when the marker ends its line).
_HASH = re.compile(r"####\s*")
_ANSWER_IS = re.compile(r"\banswer\s*(?:is\b|:)\s*:?\s*", re.IGNORECASE)
_BOXED = re.compile(r"\\boxed\s*\{")


def last_boxed(text: str) -> Optional[str]:
    """The content of the last `\\boxed{...}`, or None (none, or the last one is not closed)."""
    found = None
    for found in _BOXED.finditer(text):
        pass
    if found is None:
        return None
    depth, start = 1, found.end()
    for i in range(start, len(text)):
        depth += {"{": 1, "}": -1}.get(text[i], 0)
        if depth == 0:
            return text[start:i].strip()
    return None


def _after_last(marker: re.Pattern, text: str) -> Optional[str]:
    found = None
    for found in marker.finditer(text):
        pass
    if found is None:
        return None
    end = text.find("\n", found.end())
    span = text[found.end():end if end >= 0 else len(text)]
    # Markdown bold and a sentence's full stop around the answer are not part of it.
    return span.strip(" \t*").rstrip(".").strip(" \t*") or None


def final_span(text: str, how: str) -> Optional[str]:
    """The text of the final answer by extraction `how` (one of EXTRACTS), or None."""
    if how == "boxed":
        return last_boxed(text)
    if how == "hash_answer":
        return _after_last(_HASH, text)
    if how == "answer_is":
        return _after_last(_ANSWER_IS, text)
    if how == "last_number":
        found = _NUMBERS.findall(text)
        return found[-1].strip() if found else None
    raise ValueError(f"unknown answer extraction {how!r}: use one of {', '.join(EXTRACTS)}")


def first_number(span: str) -> Optional[str]:
    """The first number written in an extracted span ('x = -5 cm' -> '-5'), raw."""
    found = _NUMBERS.search(span)
    return found.group(0) if found else None


def as_completion(answer: str, how: Optional[str]) -> str:
    """A completion that extraction `how` reads as `answer` (the gold self-check); None: as it is."""
    if how is None or how == "last_number":
        return answer
    return {"boxed": f"\\boxed{{{answer}}}", "hash_answer": f"#### {answer}",
            "answer_is": f"The answer is {answer}"}[how]
