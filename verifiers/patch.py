"""Candidate patches as text: finding the diff in a completion, the files it touches, whether it
edits the tests, a hash of its effect, and reading pytest's `-rA` report. Pure functions; the
patch verifier (`verifiers.patch_check`) runs them around the sandbox.
"""

import hashlib
import json
import posixpath
import re
from dataclasses import dataclass, field

FENCE = re.compile(r"```[ \t]*(?:diff|patch)[^\n]*\n(.*?)```", re.DOTALL)
DIFF_START = re.compile(r"^(diff --git |--- \S)", re.MULTILINE)
# pytest's short test summary (-rA): "PASSED tests/a.py::test_x", "FAILED tests/a.py::t - Assert...",
# "PASSED tests/a.py::t[a b]" (a parameter with a space); skips read "SKIPPED [1] a.py:9: why".
SUMMARY_LINE = re.compile(r"^(PASSED|FAILED|ERROR|SKIPPED|XFAIL|XPASS) (.+)$")
# What SWE-bench's harness counts as passing (grading.test_passed).
PASSING = ("PASSED", "XFAIL")
# Files whose change alters what the tests check rather than what they test.
PYTEST_CONFIGS = {"pytest.ini", "conftest.py"}
SHARED_CONFIGS = {"pyproject.toml", "setup.cfg", "tox.ini"}  # pytest's config when a hunk names pytest


def extract_patch(text: str) -> str | None:
    """The candidate diff: the last ```diff / ```patch block of a completion, else the text
    itself when it is a unified diff; None where there is none."""
    blocks = [b for b in FENCE.findall(text or "") if b.strip()]
    if blocks:
        return _ending(blocks[-1])
    match = DIFF_START.search(text or "")
    return _ending(text[match.start():]) if match else None


def _ending(diff: str) -> str:
    return diff if diff.endswith("\n") else diff + "\n"


@dataclass
class FileDiff:
    """One file's part of a diff: its old and new paths (None: /dev/null) and changed lines."""

    old: str | None = None
    new: str | None = None
    changes: list[str] = field(default_factory=list)  # the hunks' "-" and "+" lines
    headers: bool = False  # its ---/+++ lines were read: the next "--- " starts another file

    @property
    def path(self) -> str | None:
        return self.new or self.old


HUNK = re.compile(r"^@@ -\d+(?:,(\d+))? \+\d+(?:,(\d+))? @@")
GIT_HEADER = re.compile(r"^diff --git a/(\S+) b/(\S+)")


def parse_diff(diff: str) -> list[FileDiff]:
    """The files of a unified diff, in order. Inside a hunk the line counts of its header say
    where it ends, so a removed line that reads "-- x" is not taken for a "--- " header."""
    files: list[FileDiff] = []
    old_left = new_left = 0
    for line in diff.splitlines():
        if (old_left > 0 or new_left > 0) and line[:1] not in ("", " ", "+", "-", "\\"):
            old_left = new_left = 0  # miscounted hunk (models write them): a header ends it
        if old_left > 0 or new_left > 0:
            if line.startswith("\\"):  # "\ No newline at end of file"
                continue
            if line.startswith("-"):
                old_left -= 1
            elif line.startswith("+"):
                new_left -= 1
            else:
                old_left, new_left = old_left - 1, new_left - 1
            if line[:1] in "+-":
                files[-1].changes.append(line)
            continue
        if header := GIT_HEADER.match(line):
            files.append(FileDiff(header.group(1), header.group(2)))
        elif line.startswith("--- "):
            if not files or files[-1].changes or files[-1].headers:
                files.append(FileDiff())
            files[-1].old, files[-1].headers = _path(line), True
        elif line.startswith("+++ ") and files:
            files[-1].new = _path(line)
        elif line.startswith(("rename from ", "rename to ")) and files:
            setattr(files[-1], "old" if line.startswith("rename from ") else "new", line.split(" ", 2)[2].strip())
        elif line.startswith("deleted file") and files:
            files[-1].new = None
        elif line.startswith("new file") and files:
            files[-1].old = None
        elif (hunk := HUNK.match(line)) and files:
            old_left, new_left = int(hunk.group(1) or 1), int(hunk.group(2) or 1)
    return files


def _path(header: str) -> str | None:
    path = header[4:].split("\t")[0].strip()
    if path == "/dev/null":
        return None
    return path[2:] if path.startswith(("a/", "b/")) else path


def touched_files(diff: str) -> list[str]:
    """Repository paths the diff creates, changes, renames or deletes."""
    paths: list[str] = []
    for file in parse_diff(diff):
        for path in (file.old, file.new):
            if path and path not in paths:
                paths.append(path)
    return paths


def is_test_file(path: str) -> bool:
    """A test module, a file under a test folder, or a conftest.py."""
    name = posixpath.basename(path)
    parts = path.split("/")[:-1]
    return (name in PYTEST_CONFIGS or name.startswith("test_") or name.endswith("_test.py")
            or any(p in ("test", "tests", "testing") for p in parts))


def test_edits(diff: str) -> list[str]:
    """The files of `diff` that change the tests or pytest's configuration."""
    edited = [p for p in touched_files(diff) if is_test_file(p)]
    for path, hunks in _file_hunks(diff).items():
        if posixpath.basename(path) in SHARED_CONFIGS and "pytest" in hunks.lower() and path not in edited:
            edited.append(path)
    return edited


def _file_hunks(diff: str) -> dict[str, str]:
    """Each file's changed lines (+/-, headers left out), by its path (the old one if deleted)."""
    out: dict[str, list[str]] = {}
    for file in parse_diff(diff):
        if file.path is not None:
            out.setdefault(file.path, []).extend(file.changes)
    return {path: "\n".join(lines) for path, lines in out.items()}


def patch_hash(diff: str) -> str:
    """A hash of what the patch changes: per file, its removed and added lines with whitespace
    collapsed, files by path (their order in the diff does not count); context, line numbers and
    blank-line edits do not count. Two
    candidates with the same effect vote together."""
    parts = []
    for path, hunks in sorted(_file_hunks(diff).items()):
        lines = [f"{line[0]}{' '.join(line[1:].split())}" for line in hunks.splitlines() if line[1:].strip()]
        parts.append(path + "\n" + "\n".join(lines))
    return hashlib.sha256("\n\0".join(parts).encode()).hexdigest()[:16]


def node_ids(value) -> list[str]:
    """FAIL_TO_PASS / PASS_TO_PASS as a list, from a list or SWE-bench's JSON-encoded string."""
    if value is None:
        return []
    if isinstance(value, str):
        value = json.loads(value) if value.strip() else []
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"FAIL_TO_PASS / PASS_TO_PASS must be a list of pytest node ids, got {value!r:.80}")
    return list(value)


def test_files_of(ids: list[str]) -> list[str]:
    """The test files the node ids name, in order, once each."""
    files: list[str] = []
    for node in ids:
        path = node.split("::")[0]
        if path not in files:
            files.append(path)
    return files


def read_pytest_report(output: str) -> dict[str, str]:
    """node id -> PASSED, FAILED, ERROR, SKIPPED, XFAIL or XPASS, from pytest's -rA summary."""
    results: dict[str, str] = {}
    for line in output.splitlines():
        match = SUMMARY_LINE.match(line)
        node = _node_of(match.group(2)) if match else None
        if node:
            results[node] = match.group(1)
    return results


def _node_of(rest: str) -> str | None:
    """The node id at the start of a summary line's rest: up to its first space, or to the
    closing bracket of a parameter that holds spaces; None for a skip's "[count] path: reason"."""
    head = rest.split(" ", 1)[0]
    if head.startswith("["):
        return None
    if "[" in head and not head.endswith("]"):
        end = rest.find("]", len(head))
        return rest[:end + 1] if end >= 0 else head
    return head


def resolved(results: dict[str, str], required: list[str]) -> list[str]:
    """The required tests that did not pass (missing from the report counts as not passing; an
    expected failure counts as passing, as in SWE-bench's grading)."""
    return [node for node in required if results.get(node) not in PASSING]
