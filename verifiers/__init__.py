"""Checkers of samples: pure functions, knowing nothing of the driver or of vLLM."""

from verifiers.registry import VERIFIERS, Verifier, get_verifier
from verifiers.verdict import VERDICTS_SCHEMA, Verdict

__all__ = ["VERIFIERS", "VERDICTS_SCHEMA", "Verdict", "Verifier", "get_verifier"]
