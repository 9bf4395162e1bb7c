"""Ray's syntax for node label selectors and custom resources, as pure checks: the config
validates `cluster.*` and `verify.*` placement keys with them before anything starts, and
`jobs.cluster.placement` matches labels with the same pattern."""

import re

# Ray's label syntax (ray._private.label_utils): a value, "!value", "in(a, b)" or "!in(a, b)".
_LABEL = r"[a-zA-Z0-9](?:[a-zA-Z0-9_.-]{0,61}[a-zA-Z0-9])?"
_LABEL_KEY = re.compile(rf"(?:[a-zA-Z0-9.-]{{1,253}}/)?{_LABEL}")
SELECTOR_VALUE = re.compile(rf"(?P<negated>!?)(?:in\((?P<values>{_LABEL}(?:, ?{_LABEL})*)\)|(?P<value>{_LABEL}))")
# Resource names Ray takes as num_cpus / num_gpus, never inside `resources`.
_BUILT_IN_RESOURCES = ("CPU", "GPU")
_RESOURCE_UNIT = 0.0001  # Ray's finest fraction of a resource


def selector_value_error(value) -> str | None:
    """Why `value` is not a Ray label selector value, or None."""
    if isinstance(value, str) and SELECTOR_VALUE.fullmatch(value):
        return None
    return f"{value!r} is not a label selector: write 'value', '!value', 'in(a,b)' or '!in(a,b)'"


def label_selector_error(selector: dict, key: str) -> str | None:
    """A one-line complaint about the first bad entry of config key `key`, or None."""
    for label, value in selector.items():
        if not _LABEL_KEY.fullmatch(str(label)):
            return f"config key '{key}' names the label {label!r}: a label key is [prefix/]name of letters, digits, '-', '_', '.'"
        problem = selector_value_error(value)
        if problem:
            return f"config key '{key}.{label}' is {problem}"
    return None


def resources_error(resources: dict, key: str) -> str | None:
    """A one-line complaint about the first bad entry of config key `key`, or None."""
    for name, amount in resources.items():
        if name in _BUILT_IN_RESOURCES:
            return f"config key '{key}.{name}' is not a custom resource: remove it ({name}s are set by their own keys)"
        if not isinstance(amount, (int, float)) or amount < _RESOURCE_UNIT:
            return f"config key '{key}.{name}' is {amount!r}: it must be a number >= {_RESOURCE_UNIT}"
    return None
