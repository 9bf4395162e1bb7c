"""verifiers.helper: the math checker's helper process, a fresh interpreter that does not import
its parent's main module, and dies with its parent."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from verifiers.helper import start_helper

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def echo_twice(conn, suffix: str) -> None:
    """A helper's target: each message sent back with `suffix`, twice."""
    while True:
        try:
            message = conn.recv()
        except EOFError:
            return
        conn.send(message + suffix)
        conn.send(message + suffix)


def test_a_helper_runs_its_target_with_the_arguments_and_reports_its_end():
    helper, conn = start_helper(echo_twice, "!")
    try:
        conn.send("hi")
        assert [conn.recv(), conn.recv()] == ["hi!", "hi!"]
        assert helper.is_alive() and helper.exitcode is None
        with open(f"/proc/{helper.pid}/cmdline") as cmdline:
            assert cmdline.read().split("\0")[-2] == f"{echo_twice.__module__}.echo_twice"  # named for ps
    finally:
        conn.close()  # the target reads EOF and returns
    helper.join(30)
    assert not helper.is_alive() and helper.exitcode == 0


def test_a_killed_helper_reports_the_signal():
    helper, conn = start_helper(echo_twice, "!")
    helper.kill()
    helper.join(30)
    assert helper.exitcode == -signal.SIGKILL
    conn.close()


def write_parent(tmp_path) -> str:
    """A parent script: its module level marks each import of it; run as main, it checks one
    answer in a math helper, prints the helper's pid and waits."""
    script = tmp_path / "parent.py"
    script.write_text(textwrap.dedent(f"""
        with open({str(tmp_path / "imports")!r}, "a") as marks:
            marks.write("imported\\n")

        if __name__ == "__main__":
            import sys, time
            from verifiers.math_answer import MathChecker
            checker = MathChecker()
            print(checker.check("so the answer is $\\\\boxed{{4}}$", "4").status, checker._process.pid, flush=True)
            time.sleep(600)
    """))
    return str(script)


@pytest.mark.slow
def test_the_math_helper_does_not_import_its_parents_main_and_dies_with_it(tmp_path):
    parent = subprocess.Popen([sys.executable, write_parent(tmp_path)], stdout=subprocess.PIPE, text=True, cwd=REPO,
                              env={**os.environ, "PYTHONPATH": REPO})
    try:
        status, pid = parent.stdout.readline().split()
        assert status == "pass"
        assert (tmp_path / "imports").read_text() == "imported\n"  # the parent's own import only
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait(30)
        for _ in range(100):
            if not os.path.exists(f"/proc/{pid}") or open(f"/proc/{pid}/stat").read().split(")")[1].split()[0] == "Z":
                break
            time.sleep(0.1)
        else:
            pytest.fail(f"the math helper {pid} outlived its SIGKILLed parent")
    finally:
        parent.kill()
        parent.wait(30)
