"""The verifier registry: names are part of the contract (`verify.verifier=NAME`).

A verifier is a pure check of one sample against its problem's payload columns. Its key,
`<name>-<hash>`, hashes its name, version and settings, so a changed verifier writes its
verdicts beside the old ones instead of over them.
"""

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Callable

from verifiers.numeric import check_numeric
from verifiers.verdict import Verdict


@dataclass(frozen=True)
class Verifier:
    name: str
    version: str
    payload_columns: tuple[str, ...]  # problem columns the check reads, besides the sample
    check: Callable[..., Verdict]  # check(text, **payload) -> Verdict
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        identity = json.dumps([self.name, self.version, self.settings], sort_keys=True)
        return f"{self.name}-{hashlib.sha256(identity.encode()).hexdigest()[:10]}"


VERIFIERS: dict[str, Verifier] = {}


def register(verifier: Verifier) -> Verifier:
    if verifier.name in VERIFIERS:
        raise ValueError(f"verifier '{verifier.name}' is registered twice")
    VERIFIERS[verifier.name] = verifier
    return verifier


def get_verifier(name: str) -> Verifier:
    """The registered verifier; a KeyError lists the available names."""
    if name not in VERIFIERS:
        raise KeyError(f"unknown verifier '{name}': use one of {', '.join(sorted(VERIFIERS))}")
    return VERIFIERS[name]


register(Verifier(name="numeric", version="1", payload_columns=("answer",), check=check_numeric))
