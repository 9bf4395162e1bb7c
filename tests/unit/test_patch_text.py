"""verifiers.patch, the patch verifier's pure text functions: finding the diff in a completion,
the files it touches, test edits, the hash of its effect, node ids and pytest's -rA report.

Hand-written diffs, and git's own from tests/patch_repos.make_diff (a few git commands, no
sandbox). One test runs pytest on a tiny file to read its real -rA summary (`slow`).
"""

import subprocess
import sys

import pytest
from patch_repos import make_diff, write_files

from verifiers import patch
from verifiers.patch import (
    extract_patch,
    is_test_file,
    node_ids,
    patch_hash,
    read_pytest_report,
    resolved,
    touched_files,
)

# Not imported by name: pytest would collect them as tests.
edits_of_tests, files_of_tests = patch.test_edits, patch.test_files_of

FIX = ("diff --git a/calc/ops.py b/calc/ops.py\n--- a/calc/ops.py\n+++ b/calc/ops.py\n"
       "@@ -1,3 +1,3 @@\n def add(a, b):\n-    return a - b\n+    return a + b\n \n")
OTHER = FIX.replace("a + b", "b + a")


def diff_of(path: str, removed: str, added: str) -> str:
    return f"--- a/{path}\n+++ b/{path}\n@@ -1,2 +1,2 @@\n [section]\n-{removed}\n+{added}\n"


# extract_patch


def test_a_raw_diff_is_the_patch():
    assert extract_patch(FIX) == FIX


def test_a_raw_diff_after_prose_starts_at_its_first_header():
    assert extract_patch("Here is my change:\n\n" + FIX) == FIX


def test_the_last_fenced_block_wins():
    text = f"First try:\n```diff\n{OTHER}```\nBetter:\n```patch\n{FIX}```\nDone."
    assert extract_patch(text) == FIX


def test_an_empty_fenced_block_is_ignored():
    text = f"```diff\n{FIX}```\nand nothing more:\n```diff\n\n```\n"
    assert extract_patch(text) == FIX


def test_a_fence_with_a_language_suffix_counts():
    assert extract_patch(f"```diff python\n{FIX}```") == FIX


@pytest.mark.parametrize("text", ["", None, "I could not find the bug.", "```python\nx = 1\n```\n", "```diff\n```"])
def test_no_diff_is_none(text):
    assert extract_patch(text) is None


def test_a_diff_without_a_final_newline_gets_one():
    assert extract_patch(FIX.rstrip("\n")) == FIX
    assert extract_patch(f"```diff\n{FIX.rstrip(chr(10))}```") == FIX


# touched_files


def test_prefixes_are_dropped_and_each_path_named_once():
    assert touched_files(FIX) == ["calc/ops.py"]


def test_paths_without_prefixes_and_with_timestamps():
    diff = "--- calc/ops.py\t2024-01-01 10:00:00\n+++ calc/ops.py\t2024-01-02 10:00:00\n@@ -1 +1 @@\n-a\n+b\n"
    assert touched_files(diff) == ["calc/ops.py"]


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> str:
    root = str(tmp_path_factory.mktemp("repo") / "base")
    write_files(root, {"pkg/util.py": "".join(f"line {i}\n" for i in range(20)), "pkg/old.py": "x = 1\n",
                       "setup.cfg": "[metadata]\nname = pkg\n"})
    return root


def test_new_deleted_and_renamed_files(base):
    body = "".join(f"line {i}\n" for i in range(20))
    diff = make_diff(base, {"pkg/new.py": "y = 2\n", "pkg/old.py": None,
                            "pkg/util.py": None, "pkg/helpers.py": body.replace("line 3", "LINE 3")})
    assert "rename from pkg/util.py" in diff  # git saw a rename with a change
    assert sorted(touched_files(diff)) == ["pkg/helpers.py", "pkg/new.py", "pkg/old.py", "pkg/util.py"]


def test_a_pure_rename_names_both_files():
    rename = "diff --git a/pkg/a.py b/pkg/b.py\nsimilarity index 100%\nrename from pkg/a.py\nrename to pkg/b.py\n"
    assert touched_files(rename) == ["pkg/a.py", "pkg/b.py"]


def test_dev_null_is_not_a_path():
    new = "--- /dev/null\n+++ b/pkg/new.py\n@@ -0,0 +1 @@\n+y = 2\n"
    deleted = "--- a/pkg/old.py\n+++ /dev/null\n@@ -1 +0,0 @@\n-x = 1\n"
    assert touched_files(new) == ["pkg/new.py"]
    assert touched_files(deleted) == ["pkg/old.py"]


def test_a_diff_without_headers_names_nothing():
    assert touched_files("@@ -1 +1 @@\n-a\n+b\n") == []


# is_test_file, test_edits


@pytest.mark.parametrize("path", [
    "tests/test_calc.py", "tests/helpers.py", "pkg/tests/data/input.txt", "test/util.py", "testing/fixtures.py",
    "test_calc.py", "pkg/test_io.py", "pkg/io_test.py", "conftest.py", "pkg/sub/conftest.py", "pytest.ini",
])
def test_test_files(path):
    assert is_test_file(path)


@pytest.mark.parametrize("path", [
    "calc/ops.py", "pkg/testutils.py", "pkg/contest.py", "pkg/latest.py", "setup.cfg", "pyproject.toml",
    "tox.ini", "docs/testing.rst", "pkg/attest/check.py",
])
def test_not_test_files(path):
    assert not is_test_file(path)


def test_a_source_fix_edits_no_tests():
    assert edits_of_tests(FIX) == []


def test_edits_to_tests_and_pytest_files_are_named():
    diff = (FIX + "--- a/tests/test_calc.py\n+++ b/tests/test_calc.py\n@@ -1 +1 @@\n-assert x\n+assert True\n"
            + "--- a/pkg/conftest.py\n+++ b/pkg/conftest.py\n@@ -1 +1 @@\n-a = 1\n+a = 2\n"
            + "--- /dev/null\n+++ b/pytest.ini\n@@ -0,0 +1,2 @@\n+[pytest]\n+addopts = -x\n")
    assert edits_of_tests(diff) == ["tests/test_calc.py", "pkg/conftest.py", "pytest.ini"]


def test_a_deleted_test_file_is_a_test_edit(tmp_path):
    root = str(tmp_path / "base")
    write_files(root, {"pkg/ops.py": "x = 1\n", "tests/test_old.py": "def test_old():\n    assert False\n"})
    assert edits_of_tests(make_diff(root, {"tests/test_old.py": None})) == ["tests/test_old.py"]


@pytest.mark.parametrize("name", ["pyproject.toml", "setup.cfg", "tox.ini"])
def test_shared_configs_count_only_when_a_changed_line_names_pytest(name):
    assert edits_of_tests(diff_of(name, "version = 1", "version = 2")) == []
    assert edits_of_tests(diff_of(name, "addopts = -q", "addopts = -q -p no:pytest_cov")) == [name]
    assert edits_of_tests(diff_of(name, "[tool.Pytest.ini_options]", "[tool.Pytest.ini_options] # x")) == [name]


def test_pytest_in_the_context_of_a_shared_config_does_not_count():
    diff = "--- a/setup.cfg\n+++ b/setup.cfg\n@@ -1,2 +1,2 @@\n [tool:pytest]\n-name = a\n+name = b\n"
    assert edits_of_tests(diff) == []


# patch_hash


def test_the_hash_is_sixteen_hex_digits():
    digest = patch_hash(FIX)
    assert len(digest) == 16 and int(digest, 16) >= 0


def test_the_same_effect_hashes_alike():
    other_context = FIX.replace(" def add(a, b):", " def add(a, b):  # plus").replace(" \n", " # end\n")
    other_lines = FIX.replace("@@ -1,3 +1,3 @@", "@@ -40,3 +40,3 @@ class Calc:")
    trailing = FIX.replace("+    return a + b\n", "+    return a + b   \t\n")
    spaced = FIX.replace("+    return a + b\n", "+    return  a +  b\n")
    git_header = FIX.replace("diff --git a/calc/ops.py b/calc/ops.py\n", "")
    for variant in (other_context, other_lines, trailing, spaced, git_header):
        assert variant != FIX and patch_hash(variant) == patch_hash(FIX)


def test_blank_line_edits_do_not_count():
    with_blank = FIX.replace("+    return a + b\n", "+    return a + b\n+\n")
    assert patch_hash(with_blank) == patch_hash(FIX)


def test_the_file_order_does_not_count():
    second = "--- a/calc/mul.py\n+++ b/calc/mul.py\n@@ -1 +1 @@\n-x = 1\n+x = 2\n"
    assert patch_hash(FIX + second) == patch_hash(second + FIX)


def test_a_different_change_hashes_differently():
    moved = FIX.replace("calc/ops.py", "calc/other.py")
    reverted = FIX.replace("-    return a - b\n+    return a + b\n", "-    return a + b\n+    return a - b\n")
    hashes = {patch_hash(d) for d in (FIX, OTHER, moved, reverted, FIX + diff_of("x.py", "a", "b"))}
    assert len(hashes) == 5


def test_git_diffs_of_one_fix_made_differently_hash_alike(base):
    body = "".join(f"line {i}\n" for i in range(20))
    plain = make_diff(base, {"pkg/util.py": body.replace("line 9", "line 9!")})
    with_blank = make_diff(base, {"pkg/util.py": body.replace("line 9", "line 9!").replace("line 12\n", "line 12\n\n")})
    assert plain != with_blank and patch_hash(plain) == patch_hash(with_blank)


def test_deleting_different_files_hashes_differently():
    deleted = "diff --git a/x.py b/x.py\ndeleted file mode 100644\n--- a/x.py\n+++ /dev/null\n@@ -1 +0,0 @@\n-v = 1\n"
    assert patch_hash(deleted) != patch_hash(deleted.replace("x.py", "y.py"))


def test_a_removed_line_starting_with_two_dashes_is_a_change():
    sql = "--- a/q.sql\n+++ b/q.sql\n@@ -1,2 +1,2 @@\n--- old comment\n+-- new comment\n select 1;\n"
    assert touched_files(sql) == ["q.sql"]
    assert patch_hash(sql) != patch_hash(sql.replace("--- old comment", "--- other comment"))


# node_ids, test_files_of


def test_node_ids_of_a_list():
    ids = ["tests/test_a.py::test_x", "tests/test_a.py::T::test_y[1-2]"]
    assert node_ids(ids) == ids and node_ids(tuple(ids)) == ids


def test_node_ids_of_swebench_json_strings():
    assert node_ids('["tests/test_a.py::test_x", "tests/test_b.py::test_y"]') == [
        "tests/test_a.py::test_x", "tests/test_b.py::test_y"]
    assert node_ids("[]") == []


@pytest.mark.parametrize("value", [None, "", "  "])
def test_no_node_ids(value):
    assert node_ids(value) == []


@pytest.mark.parametrize("value", ["tests/test_a.py::test_x", "[1, 2]", '{"a": 1}', [1], ["ok", None], 3, {"x": "y"}])
def test_malformed_node_ids_raise_value_error(value):
    with pytest.raises(ValueError):
        node_ids(value)


def test_test_files_in_order_once_each():
    ids = ["tests/test_b.py::test_1", "tests/test_a.py::T::test_2[x-y]", "tests/test_b.py::test_3", "tests/test_c.py"]
    assert files_of_tests(ids) == ["tests/test_b.py", "tests/test_a.py", "tests/test_c.py"]
    assert files_of_tests([]) == []


# read_pytest_report, resolved

REPORT = """\
============================= test session starts ==============================
collected 6 items

tests/test_x.py .F.sxE                                                    [100%]

==================================== PASSES ====================================
=========================== short test summary info ============================
PASSED tests/test_x.py::test_ok
PASSED tests/test_x.py::TestCalc::test_p[1-2]
SKIPPED [1] tests/test_x.py:9: not here
XFAIL tests/test_x.py::test_xf - known
XPASS tests/test_x.py::test_xp - lucky
ERROR tests/test_x.py::test_err - RuntimeError: boom
FAILED tests/test_x.py::test_bad - assert 1 == 2
==== 1 failed, 2 passed, 1 skipped, 1 xfailed, 1 xpassed, 1 error in 0.05s =====
"""
READ = {
    "tests/test_x.py::test_ok": "PASSED", "tests/test_x.py::TestCalc::test_p[1-2]": "PASSED",
    "tests/test_x.py::test_xf": "XFAIL", "tests/test_x.py::test_xp": "XPASS",
    "tests/test_x.py::test_err": "ERROR", "tests/test_x.py::test_bad": "FAILED",
}


def test_the_summary_block_is_read():
    report = read_pytest_report(REPORT)
    assert {k: v for k, v in report.items() if "::" in k} == READ
    assert "tests/test_x.py::test_skip" not in report  # -rA names a skip by file:line, not node id


def test_lines_outside_the_summary_shape_are_ignored():
    assert read_pytest_report("") == {}
    assert read_pytest_report("  PASSED tests/a.py::t\npassed tests/a.py::u\nPASSED\nFAILEDtests/a.py::v\n") == {}


def test_resolved_names_the_required_tests_that_did_not_pass():
    report = read_pytest_report(REPORT)
    required = ["tests/test_x.py::test_ok", "tests/test_x.py::test_bad", "tests/test_x.py::test_xp",
                "tests/test_x.py::test_skip", "tests/test_x.py::missing", "tests/test_x.py::test_err"]
    assert resolved(report, required) == required[1:]
    assert resolved(report, ["tests/test_x.py::test_ok", "tests/test_x.py::TestCalc::test_p[1-2]"]) == []
    assert resolved({}, []) == []


TINY_TESTS = '''\
import pytest


def test_ok():
    pass


def test_bad():
    assert 1 == 2


@pytest.mark.skip(reason="not here")
def test_skip():
    pass


@pytest.fixture
def broken():
    raise RuntimeError("boom")


def test_err(broken):
    pass


@pytest.mark.xfail(reason="known")
def test_xf():
    assert 0


@pytest.mark.parametrize("v", [1, 2])
def test_p(v):
    assert v == 1
'''


@pytest.mark.slow  # runs pytest in a subprocess
def test_a_real_pytest_report(tmp_path):
    write_files(str(tmp_path), {"tests/test_x.py": TINY_TESTS})
    done = subprocess.run([sys.executable, "-m", "pytest", "-rA", "-p", "no:cacheprovider", "tests/test_x.py"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False)
    assert "short test summary info" in done.stdout, done.stdout[-2000:]
    report = read_pytest_report(done.stdout)
    assert {k: v for k, v in report.items() if "::" in k} == {
        "tests/test_x.py::test_ok": "PASSED", "tests/test_x.py::test_bad": "FAILED",
        "tests/test_x.py::test_err": "ERROR", "tests/test_x.py::test_xf": "XFAIL",
        "tests/test_x.py::test_p[1]": "PASSED", "tests/test_x.py::test_p[2]": "FAILED",
    }
    required = ["tests/test_x.py::test_ok", "tests/test_x.py::test_p[1]", "tests/test_x.py::test_skip",
                "tests/test_x.py::test_p[2]"]
    assert resolved(report, required) == ["tests/test_x.py::test_skip", "tests/test_x.py::test_p[2]"]


def test_summary_node_ids_with_spaces_skips_and_expected_failures():
    report = read_pytest_report(
        "PASSED tests/t.py::test_p[a b]\n"
        "FAILED tests/t.py::test_q[x - y] - AssertionError: no\n"
        "SKIPPED [2] tests/t.py:9: not here\n"
        "XFAIL tests/t.py::test_known - reason\n"
    )
    assert report == {"tests/t.py::test_p[a b]": "PASSED", "tests/t.py::test_q[x - y]": "FAILED",
                      "tests/t.py::test_known": "XFAIL"}
    # As SWE-bench's grading: an expected failure passes, a failure does not.
    assert resolved(report, ["tests/t.py::test_p[a b]", "tests/t.py::test_known", "tests/t.py::test_q[x - y]"]) == [
        "tests/t.py::test_q[x - y]"]
