"""The `patch` verifier on small repositories made by code (tests/patch_repos.py): verdicts for
right, wrong, breaking, non-applying, empty and test-editing patches; candidates that exit
early, write outside their workspace, read the environment or connect to a listener on the
host's loopback change nothing; flaky tests and broken instances found by the gold
self-check; and `troop run` on a pool of patches (a stand-in policy: canned completions)
gives the verdicts of an offline `troop verify`.

Each check runs bubblewrap and pytest as subprocesses: marked slow."""

import hashlib
import json
import os
import socket
import subprocess
import threading
from types import SimpleNamespace

import pyarrow as pa
import pytest

from doubles import InlineExecutor
from jobs.cli.main import main
from jobs.cluster.pools import Cluster
from jobs.stages.generation import GenerationWorker, engine_spec
from jobs.stages.verification import VerifyWorker
from jobs.store.root import RunStore
from patch_repos import ADD_TEST, FAIL_TO_PASS, FILES, build_calc
from verifiers import get_verifier
from verifiers.patch_check import PatchChecker
from verifiers.registry import VerifySettings
from verifiers.sandbox import probe_mode

pytestmark = pytest.mark.slow

FIXED = FILES["calc/__init__.py"].replace("a - b", "a + b")


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    return build_calc(str(tmp_path_factory.mktemp("repos")))


@pytest.fixture(scope="module")
def checker():
    patches = PatchChecker(VerifySettings(timeout_s=30, gold_runs=2))
    yield patches
    patches.close()


def tree_digest(folder: str) -> str:
    digest = hashlib.sha256()
    for base, dirs, files in sorted(os.walk(folder)):
        dirs.sort()
        for name in sorted(files):
            path = os.path.join(base, name)
            digest.update(path.encode())
            with open(path, "rb") as f:
                digest.update(f.read())
    return digest.hexdigest()


def fix_with(body: str) -> str:
    """calc/__init__.py whose `add` runs `body` (indented) before returning the right sum."""
    lines = "".join(f"    {line}\n" for line in body.splitlines())
    return f"def add(a, b):\n{lines}    return a + b\n\n\ndef mul(a, b):\n    return a * b\n"


def test_the_gold_patch_passes_from_a_folder_and_from_an_archive(repo, checker):
    before = tree_digest(repo.path)
    for workspace in (repo.path, repo.archive, repo.archive):
        verdict = checker.check(repo.gold, repo.payload(workspace))
        assert (verdict.passed, verdict.status, verdict.detail) == (True, "pass", "")
    wrong = repo.diff({"calc/__init__.py": FIXED.replace("a + b", "a * b")})
    assert checker.check(wrong, repo.payload(repo.archive)).status == "fail"
    assert checker.workspaces.prepared == 1  # the archive, unpacked once for all its candidates
    assert tree_digest(repo.path) == before  # candidates write to their own overlay only


@pytest.mark.parametrize("fix, failing", [
    (FILES["calc/__init__.py"].replace("a - b", "a * b"), FAIL_TO_PASS),  # a wrong fix
    (FIXED.replace("return a * b", "return a + b"), ["tests/test_calc.py::test_mul", "tests/test_calc.py::test_mul_zero"]),
])
def test_a_wrong_fix_or_one_that_breaks_a_passing_test_fails(repo, checker, fix, failing):
    verdict = checker.check(repo.diff({"calc/__init__.py": fix}), repo.payload())
    assert (verdict.passed, verdict.status, verdict.detail) == (False, "fail", f"not passing: {', '.join(failing)}")


def test_the_statuses_that_are_not_about_the_tests(repo, checker):
    stale = ("--- a/calc/__init__.py\n+++ b/calc/__init__.py\n@@ -1,2 +1,2 @@\n def add(a, b):\n"
             "-    return a ^ b\n+    return a + b\n")
    assert checker.check(stale, repo.payload()).status == "patch_failed"
    assert checker.check("", repo.payload()).status == "empty_patch"
    assert checker.check("I would change add() to return a + b.", repo.payload()).status == "empty_patch"
    prose = f"The bug is in add.\n\n```diff\n{repo.diff({'calc/__init__.py': 'oops'})}```\nBetter:\n```diff\n{repo.gold}```\n"
    assert checker.check(prose, repo.payload()).status == "pass"  # the last fenced diff is the candidate
    same = checker.check(prose, repo.payload()).answer
    assert same == checker.check(repo.gold, repo.payload()).answer  # one effect, one vote


def test_patches_that_edit_the_tests_do_not_pass(repo, checker):
    weaker = repo.diff({"calc/__init__.py": FIXED.replace("a + b", "a * b"), "tests/test_calc.py": "def test_mul():\n    pass\n"})
    forced = repo.diff({"conftest.py": "import pytest\n\n\n@pytest.hookimpl(hookwrapper=True)\n"
                                       "def pytest_runtest_makereport(item, call):\n    outcome = yield\n"
                                       "    outcome.get_result().outcome = 'passed'\n"})
    configured = repo.diff({"setup.cfg": FILES["setup.cfg"] + "\n[tool:pytest]\naddopts = -p no:python\n"})
    for patch, edited in ((weaker, "tests/test_calc.py"), (forced, "conftest.py"), (configured, "setup.cfg")):
        verdict = checker.check(patch, repo.payload())
        assert (verdict.passed, verdict.status, verdict.detail) == (False, "edits_tests", f"changes the tests: {edited}")


def test_with_test_edits_allowed_the_test_patch_still_wins_over_its_own_files(repo):
    # verify.allow_test_edits lets a candidate edit tests, but the files of the test patch are
    # reset to the base before it is applied (as SWE-bench's harness does): a weakened copy goes.
    allowing = PatchChecker(VerifySettings(timeout_s=30, gold_runs=0, allow_test_edits=True))
    try:
        weaker = repo.diff({"tests/test_add.py": "def test_add():\n    pass\n"})
        assert allowing.check(weaker, repo.payload()).status == "fail"  # the test patch's file is reset first
    finally:
        allowing.close()


@pytest.mark.parametrize("body", ["import sys\nsys.exit(0)", "import os\nos._exit(0)"])
def test_exiting_early_in_the_tested_path_does_not_pass(repo, checker, body):
    verdict = checker.check(repo.diff({"calc/__init__.py": fix_with(body)}), repo.payload())
    assert (verdict.passed, verdict.status) == (False, "fail")


def test_a_candidate_changes_nothing_on_the_host(repo, checker, tmp_path, monkeypatch):
    outside = tmp_path / "outside.txt"
    monkeypatch.setenv("TROOP_SECRET", "hunter2")
    received = []
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    port = server.getsockname()[1]

    def accept():
        server.settimeout(20)
        try:
            connection, _ = server.accept()
            received.append(connection.recv(100))
        except OSError:
            pass

    listener = threading.Thread(target=accept)
    listener.start()
    body = (f"import os, socket\n"
            f"open({str(outside)!r}, 'w').write('x') if os.path.isdir({str(tmp_path)!r}) else None\n"
            f"open({os.path.join(repo.path, 'calc', '__init__.py')!r}, 'a').write('# touched')\n"
            f"assert os.environ.get('TROOP_SECRET') == 'hunter2'\n"
            f"socket.create_connection(('127.0.0.1', {port}), timeout=2).sendall(b'leak')\n")
    before = tree_digest(repo.path)
    verdict = checker.check(repo.diff({"calc/__init__.py": fix_with(body)}), repo.payload())
    socket.create_connection(("127.0.0.1", port)).close()  # wakes the listener if nothing came
    listener.join()
    server.close()
    assert (verdict.passed, verdict.status) == (False, "fail")
    assert not outside.exists() and tree_digest(repo.path) == before
    assert received in ([], [b""])


def test_a_candidate_that_runs_forever_times_out(repo):
    quick = PatchChecker(VerifySettings(timeout_s=3, gold_runs=0))
    try:
        verdict = quick.check(repo.diff({"calc/__init__.py": fix_with("while True:\n    pass")}), repo.payload())
        assert (verdict.passed, verdict.status) == (False, "timeout")
    finally:
        quick.close()


def test_the_gold_self_check_finds_a_flaky_test_and_leaves_it_out(tmp_path):
    # test_add passes one run in two (a coin from the OS): with 12 gold runs, it is seen both ways
    # but with probability 2^-11.
    flaky = ADD_TEST + "\n\ndef test_coin():\n    import os\n    assert os.urandom(1)[0] % 2\n"
    repo = build_calc(str(tmp_path), add_test=flaky)
    checker = PatchChecker(VerifySettings(timeout_s=30, gold_runs=12))
    try:
        payload = repo.payload(FAIL_TO_PASS=FAIL_TO_PASS + ["tests/test_add.py::test_coin"], problem_id="calc-1")
        verdict = checker.check(repo.gold, payload)
        assert (verdict.passed, verdict.status) == (True, "pass")
        assert verdict.detail == "(flaky, not counted: tests/test_add.py::test_coin)"
        assert checker.notes() == {"calc-1": {"flaky": ["tests/test_add.py::test_coin"], "broken": False, "runs": 12}}
    finally:
        checker.close()


def test_an_instance_whose_gold_patch_never_resolves_is_broken(repo):
    checker = PatchChecker(VerifySettings(timeout_s=30, gold_runs=2))
    try:
        payload = repo.payload(patch=repo.diff({"calc/__init__.py": FIXED.replace("a + b", "a * b")}), problem_id="bad")
        verdict = checker.check(repo.gold, payload)  # a right fix: but the instance cannot tell
        assert (verdict.passed, verdict.status) == (False, "error")
        assert "gold patch resolves this instance in none of 2 runs" in verdict.detail
        assert checker.notes() == {"bad": {"flaky": [], "broken": True, "runs": 2}}
    finally:
        checker.close()


def test_a_workspace_from_repo_and_base_commit(repo, tmp_path):
    clones = tmp_path / "repos"
    clone = clones / "acme__calc"
    clones.mkdir()
    subprocess.run(["cp", "-r", repo.path, str(clone)], check=True)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-C", str(clone)]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-qm", "base"], check=True)
    commit = subprocess.run([*git, "rev-parse", "HEAD"], check=True, capture_output=True, text=True).stdout.strip()
    (clone / "calc" / "__init__.py").write_text("def add(a, b):\n    raise SystemExit\n")  # the clone moved on: unused
    checker = PatchChecker(VerifySettings(timeout_s=30, gold_runs=0, repos=str(clones)))
    try:
        payload = {**repo.payload(), "workspace": None, "repo": "acme/calc", "base_commit": commit}
        assert checker.check(repo.gold, payload).status == "pass"
        assert checker.check(repo.gold, {**payload, "repo": "acme/other"}).status == "error"
    finally:
        checker.close()


def test_without_namespaces_the_workspace_is_copied_per_candidate(repo):
    if probe_mode("auto") != "bwrap":
        pytest.skip("this machine has no bubblewrap: rlimits is already the mode of every other test")
    copying = PatchChecker(VerifySettings(timeout_s=30, gold_runs=0, sandbox="rlimits"))
    try:
        assert copying.check(repo.gold, repo.payload()).status == "pass"
        assert copying.check(repo.diff({"calc/__init__.py": FIXED.replace("a + b", "a * b")}), repo.payload()).status == "fail"
    finally:
        copying.close()


# --- troop run on a pool of patches, and troop verify ----------------------------------------

class CannedEngine:
    """A stand-in policy: each prompt's completions are the canned texts in the prompt's JSON."""

    def __init__(self, spec):
        self.spec = spec

    def generate(self, prompts, sampling, n, seeds):
        outputs = []
        for prompt in prompts:
            texts = json.loads(prompt)["candidates"]
            completions = [SimpleNamespace(index=i, text=texts[i % len(texts)], token_ids=[0],
                                           cumulative_logprob=0.0, finish_reason="stop") for i in range(n)]
            outputs.append(SimpleNamespace(outputs=completions))
        return outputs

    def close(self):
        pass


class CannedGeneration(InlineExecutor):
    def __init__(self, config):
        super().__init__(GenerationWorker(engine_spec(config), CannedEngine))
        self.stage = SimpleNamespace(identity=engine_spec(config))


def test_troop_run_on_a_pool_of_patches_and_troop_verify_agree(repo, tmp_path, tiny_model):
    wrong = repo.diff({"calc/__init__.py": FIXED.replace("a + b", "a * b")})
    candidates = [repo.gold, wrong, f"Fix:\n```diff\n{repo.gold}```", "no idea"]
    problems = tmp_path / "problems.jsonl"
    rows = [{"problem_id": f"calc-{i}", "prompt": json.dumps({"candidates": candidates[i:] + candidates[:i]}),
             **repo.payload(repo.archive)} for i in range(2)]
    problems.write_text("".join(json.dumps(r) + "\n" for r in rows))
    config = tmp_path / "job.yaml"
    config.write_text(f"model: {{path: {tiny_model}}}\nsampling: {{n: 4}}\n"
                      f"problems: {{source: jsonl, path: {problems}}}\n"
                      "verify: {verifier: patch, timeout_s: 30, gold_runs: 1}\n")
    cluster = Cluster(connect=lambda *args: None, generation=CannedGeneration,
                      verification=lambda settings: InlineExecutor(VerifyWorker()))
    root = tmp_path / "run"
    assert main(["run", str(config), f"run.root={root}"], cluster) == 0
    key = get_verifier("patch").key(VerifySettings(timeout_s=30.0, gold_runs=1))
    store = RunStore(str(root))
    verdicts = pa.concat_tables([store.read_table(store.verdict_unit(key, u)) for u in sorted(store.unit_ids(f"verdicts/{key}"))])
    by_text = {(r["problem_id"], r["sample_idx"]): r["status"] for r in verdicts.to_pylist()}
    assert sorted(by_text.values()) == sorted(["pass", "fail", "pass", "empty_patch"] * 2)

    offline = tmp_path / "offline"
    subprocess.run(["cp", "-r", str(root), str(offline)], check=True)
    subprocess.run(["rm", "-r", str(offline / "verdicts")], check=True)
    assert main(["verify", str(offline)], cluster) == 0
    again = RunStore(str(offline))
    assert again.unit_ids(f"verdicts/{key}") == store.unit_ids(f"verdicts/{key}")
    for unit in store.unit_ids(f"verdicts/{key}"):
        assert again.read_table(again.verdict_unit(key, unit)).equals(store.read_table(store.verdict_unit(key, unit)))
