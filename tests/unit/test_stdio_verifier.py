"""stdio: programs on stdin/stdout test cases, compared token by token with float tolerance."""

import pytest

from verifiers.code import check_stdio, extract_code, outputs_match, program_hash
from verifiers.sandbox import Limits, Sandbox

pytestmark = pytest.mark.slow  # programs run under bubblewrap

SUM = "a, b = map(int, input().split())\nprint(a + b)\n"
CASES = [{"input": "1 2\n", "output": "3\n"}, {"input": "10 -4\n", "output": "6"}, {"input": "0 0", "output": "0"}]


@pytest.fixture(scope="module")
def sandbox():
    with Sandbox(Limits(timeout_s=2.0, memory_mb=512)) as box:
        yield box


# (completion, test cases, passed, status, detail starts with)
TABLE = {
    "correct": (SUM, CASES, True, "pass", "3 cases"),
    "in a fenced block with prose": (f"Here is my solution:\n```python\n{SUM}```\nIt adds.", CASES, True, "pass", "3 cases"),
    "wrong on the second case": ("a, b = map(int, input().split())\nprint(3)\n", CASES, False, "fail", "case 1: wrong output"),
    "extra whitespace is fine": ("a, b = map(int, input().split())\nprint('  ', a + b, '  \\n\\n')\n", CASES, True, "pass", ""),
    "extra token fails": ("a, b = map(int, input().split())\nprint(a + b, 0)\n", CASES, False, "fail", "case 0"),
    "float within tolerance": ("print(1/3)\n", [{"input": "", "output": "0.333333333"}], True, "pass", ""),
    "float off": ("print(0.34)\n", [{"input": "", "output": "0.333333333"}], False, "fail", "case 0"),
    "integer written as float": ("print(3.0)\n", [{"input": "", "output": "3"}], True, "pass", ""),
    "sys.exit(0) after printing is a normal end": ("import sys\nprint(3)\nsys.exit(0)\n", [{"input": "", "output": "3"}], True, "pass", ""),
    "nonzero exit": ("import sys\nprint(3)\nsys.exit(2)\n", [{"input": "", "output": "3"}], False, "fail", "case 0: exited"),
    "runtime error": ("print(1 // 0)\n", [{"input": "", "output": "0"}], False, "fail", "case 0: ZeroDivisionError"),
    "syntax error": ("print(\n", CASES, False, "syntax_error", "case 0"),
    "reads past the input": ("input()\ninput()\n", [{"input": "1\n", "output": ""}], False, "fail", "case 0: EOFError"),
    "stops at the first failing case": ("import sys\nx = sys.stdin.read()\nprint(3 if x.startswith('1 2') else 0)\n", CASES, False, "fail", "case 1"),
    "too slow": ("while True:\n    pass\n", CASES, False, "timeout", "case 0"),
    "no test cases": (SUM, [], False, "error", "the problem has no test_cases"),
}


@pytest.mark.parametrize("case", TABLE.values(), ids=TABLE.keys())
def test_stdio_table(sandbox, case):
    completion, cases, passed, status, detail = case
    verdict = check_stdio(completion, cases, sandbox)
    assert (verdict.passed, verdict.status) == (passed, status), verdict.detail
    assert verdict.detail.startswith(detail)
    assert verdict.answer == program_hash(extract_code(completion))


@pytest.mark.parametrize(
    "expected, got, same",
    [("1 2 3", "1\n2\n3\n", True), ("1.0", "1", True), ("1e-7", "0", True), ("1e6", "1000000.5", True),
     ("1e6", "1000002", False), ("abc", "ABC", False), ("", "", True), ("1", "", False), ("nan", "nan", True)],
)
def test_outputs_match(expected, got, same):
    assert outputs_match(expected, got) is same


def test_program_hash_ignores_comment_lines_and_blank_lines():
    assert program_hash("# set x\nx = 1   \n\n\n    # then\nprint(x)\n") == program_hash("x = 1\nprint(x)")
    assert program_hash("x = 1\nprint(x)") != program_hash("x = 2\nprint(x)")
