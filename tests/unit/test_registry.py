"""verifiers.registry: names, payload columns, stable keys that follow the settings."""

import dataclasses

import pytest

from verifiers import VERIFIERS, Verifier, get_verifier
from verifiers.registry import FunctionChecker, VerifySettings, register
from verifiers.numeric import check_numeric


def test_the_contract_names_are_registered_with_their_payloads():
    assert {name: v.payload_columns for name, v in VERIFIERS.items()} == {
        "numeric": ("answer",),
        "exact": ("answer",),
        "math": ("answer",),
        "unit_tests": ("prompt", "test", "entry_point"),
        "assert_tests": ("test_list",),
        "stdio": ("test_cases",),
        "patch": ("FAIL_TO_PASS", "PASS_TO_PASS"),
    }
    assert VERIFIERS["patch"].optional_columns == ("problem_id", "workspace", "repo", "base_commit", "test_patch",
                                                   "test_cmd", "patch")
    assert [name for name, v in VERIFIERS.items() if v.uses_sandbox] == ["unit_tests", "assert_tests", "stdio", "patch"]


def test_keys_hash_only_the_settings_a_verifier_reads():
    # The patch verifier's settings leave the other verifiers' keys as they were before it existed.
    base = VerifySettings()
    patchy = VerifySettings(python="/usr/bin/python3", repos="/repos", gold_runs=5, allow_test_edits=True)
    assert get_verifier("numeric").key(base) == get_verifier("numeric").key(patchy) == "numeric-163ad047a0"
    assert get_verifier("patch").key(base) != get_verifier("patch").key(patchy)


def test_a_checker_opened_from_the_registry_checks():
    checker = get_verifier("numeric").open(VerifySettings())
    assert checker.check("#### 2", {"answer": "2"}).passed is True
    checker.close()


def test_verifier_key_is_stable():
    """The key names the verdict folder of existing runs: a change must be deliberate (bump the
    version), or every stored run is re-verified into a new folder."""
    assert get_verifier("numeric").key() == "numeric-163ad047a0"


@pytest.mark.parametrize("change", [{"timeout_s": 3.0}, {"memory_mb": 512}])
def test_key_changes_with_the_limits(change):
    numeric = get_verifier("numeric")
    assert numeric.key(dataclasses.replace(VerifySettings(), **change)) != numeric.key()


def test_key_records_the_sandbox_mode_used_for_code_only():
    unit_tests, numeric = get_verifier("unit_tests"), get_verifier("numeric")
    bwrap, rlimits = VerifySettings(sandbox="bwrap"), VerifySettings(sandbox="rlimits")
    assert unit_tests.key(bwrap) != unit_tests.key(rlimits)
    assert unit_tests.key(VerifySettings(sandbox="auto")) == unit_tests.key(bwrap)  # auto found bubblewrap here
    assert numeric.key(bwrap) == numeric.key(rlimits)


@pytest.mark.parametrize("change", [{"version": "2"}, {"name": "numeric2"}])
def test_key_changes_with_version_and_name(change):
    numeric = get_verifier("numeric")
    assert dataclasses.replace(numeric, **change).key() != numeric.key()


def test_unknown_verifier_lists_the_names():
    with pytest.raises(KeyError) as caught:
        get_verifier("numerik")
    message = caught.value.args[0]
    assert "'numerik'" in message
    assert all(name in message for name in VERIFIERS)


def test_registering_a_name_twice_is_refused():
    before = dict(VERIFIERS)
    with pytest.raises(ValueError, match="'numeric'"):
        register(Verifier("numeric", "9", ("answer",), lambda settings: FunctionChecker(check_numeric)))
    assert VERIFIERS == before
