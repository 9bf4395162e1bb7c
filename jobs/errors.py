"""Errors a user can cause and fix.

`TroopError` carries one line that names the thing at fault and the fix. The CLI prints it
without a traceback and exits nonzero; anything else is a bug and keeps its traceback.
"""


class TroopError(Exception):
    """A mistake in the user's input (config, problem file, store, model path)."""


class ConfigError(TroopError):
    """A config key, value or combination that cannot work."""


class ProblemSetError(TroopError):
    """A problem source that is missing, malformed or empty."""


class StoreError(TroopError):
    """A run store that cannot be read or written."""
