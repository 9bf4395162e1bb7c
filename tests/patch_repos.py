"""Small repositories for the patch verifier's tests, made by code (tests/ is on sys.path).

`calc`: a package whose `add` subtracts (the bug) and whose `mul` works; its tests check `mul`
(PASS_TO_PASS); the test patch adds `tests/test_add.py`, which checks `add` (FAIL_TO_PASS). The
diffs are made by git from edited copies, so they apply exactly as a model's would.
"""

import os
import shutil
import subprocess
import tarfile
from dataclasses import dataclass

FILES = {
    "calc/__init__.py": "def add(a, b):\n    return a - b\n\n\ndef mul(a, b):\n    return a * b\n",
    "tests/__init__.py": "",
    "tests/test_calc.py": "from calc import mul\n\n\ndef test_mul():\n    assert mul(2, 3) == 6\n\n\n"
                          "def test_mul_zero():\n    assert mul(5, 0) == 0\n",
    "setup.cfg": "[metadata]\nname = calc\n",
}
ADD_TEST = "from calc import add\n\n\ndef test_add():\n    assert add(2, 3) == 5\n"
FAIL_TO_PASS = ["tests/test_add.py::test_add"]
PASS_TO_PASS = ["tests/test_calc.py::test_mul", "tests/test_calc.py::test_mul_zero"]


@dataclass
class Repo:
    path: str  # the workspace folder (the base commit)
    archive: str  # the same as a .tar.gz
    test_patch: str
    gold: str

    def payload(self, workspace: str | None = None, **extra) -> dict:
        return {"workspace": workspace or self.path, "FAIL_TO_PASS": list(FAIL_TO_PASS),
                "PASS_TO_PASS": list(PASS_TO_PASS), "test_patch": self.test_patch, "patch": self.gold, **extra}

    def diff(self, changes: dict[str, str | None]) -> str:
        """The unified diff (git's) that turns the base into the base with `changes` (path ->
        new text, None: deleted)."""
        return make_diff(self.path, changes)


def write_files(root: str, files: dict[str, str]) -> None:
    for path, text in files.items():
        full = os.path.join(root, path)
        os.makedirs(os.path.dirname(full), exist_ok=True)
        with open(full, "w") as f:
            f.write(text)


def make_diff(base: str, changes: dict[str, str | None]) -> str:
    work = base.rstrip("/") + ".edit"
    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(base, work)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-c", "safe.directory=*", "-C", work]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-qm", "base"], check=True)
    for path, text in changes.items():
        full = os.path.join(work, path)
        if text is None:
            os.remove(full)
        else:
            write_files(work, {path: text})
    subprocess.run([*git, "add", "-A"], check=True)
    diff = subprocess.run([*git, "diff", "--cached"], check=True, capture_output=True, text=True).stdout
    shutil.rmtree(work)
    return diff


def build_calc(folder: str, extra_files: dict[str, str] | None = None, add_test: str = ADD_TEST) -> Repo:
    """The `calc` repository at `folder`/calc, its archive, its test patch and gold patch."""
    path = os.path.join(folder, "calc")
    write_files(path, {**FILES, **(extra_files or {})})
    archive = os.path.join(folder, "calc.tar.gz")
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(path, arcname="calc")
    test_patch = make_diff(path, {"tests/test_add.py": add_test})
    gold = make_diff(path, {"calc/__init__.py": FILES["calc/__init__.py"].replace("a - b", "a + b")})
    return Repo(path, archive, test_patch, gold)
