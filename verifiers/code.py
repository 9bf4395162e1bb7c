"""`unit_tests` (HumanEval-style function tests) and `stdio` (stdin/stdout programs), both run
in the sandbox; see `verifiers.sandbox` for what it isolates.

`answer` of a code verdict is a short hash of the normalized program (whole-line comments,
blank lines and trailing spaces dropped), so majority voting groups programs that differ only
in layout.
"""

import hashlib
import math
import re

from verifiers.sandbox import RunResult, Sandbox
from verifiers.verdict import Verdict

_FENCE = re.compile(r"```[ \t]*(?:python3?|py)?[ \t]*\n(.*?)(?:```|\Z)", re.DOTALL | re.IGNORECASE)


def extract_code(text: str) -> str:
    """The program in a completion: the first fenced block if there is one, else the text."""
    found = _FENCE.search(text)
    return found.group(1) if found else text


def program_hash(program: str) -> str:
    """Hash of the program without blank lines, whole-line comments and trailing spaces.
    Line-based on purpose: `tokenize` would also drop end-of-line comments but costs half a
    millisecond per program, a tenth of what verifying one takes."""
    lines = [line.rstrip() for line in program.splitlines()]
    kept = [line for line in lines if line and not line.lstrip().startswith("#")]
    return hashlib.sha256("\n".join(kept).encode()).hexdigest()[:16]


def failure_verdict(run: RunResult, answer: str, what: str = "") -> Verdict:
    """The verdict of a program that did not complete, from how it ended."""
    prefix = f"{what}: " if what else ""
    if run.sandbox_died:
        if run.timed_out:
            status, detail = "timeout", "wall-clock limit"
        else:
            status, detail = "error", "the program killed its sandbox"
    elif run.timed_out:
        status, detail = "timeout", f"wall-clock limit ({run.seconds:.1f} s)"
    elif run.output_limit:
        status, detail = "output_limit", "stdout or stderr over the cap"
    elif run.result.startswith("syntax_error"):
        status, detail = "syntax_error", run.result.removeprefix("syntax_error ")
    elif run.result.startswith("memory") or "MemoryError" in run.stderr[-300:]:
        status, detail = "memory", "MemoryError (address-space limit)"
    elif run.signal == 24:  # SIGXCPU
        status, detail = "timeout", "CPU-time limit"
    elif run.signal == 25:  # SIGXFSZ
        status, detail = "error", "file-size limit"
    elif run.signal is not None:
        status, detail = "fail", f"killed by signal {run.signal}"
    elif run.result.startswith("exit"):
        status, detail = "fail", f"exited before the end ({run.result})"
    elif run.result:
        status, detail = "fail", run.result.removeprefix("exception ")
    else:
        status, detail = "fail", f"ended without finishing (exit code {run.exit_code})"
    return Verdict(False, status, answer, (prefix + detail)[:500])


def check_unit_tests(text: str, prompt: str, test: str, entry_point: str, sandbox: Sandbox,
                     source_prompt: str | None = None) -> Verdict:
    """HumanEval: program = prompt + completion + test + check(entry_point); pass means it ran
    to its end and said so on the private result pipe (sys.exit(0) or os._exit(0) before
    check() has run are failures). Where a `prompt:` section rendered the prompt (a template,
    chat messages), the problem set's own prompt (`source_prompt`) is the program's head, and a
    completion with a fenced block is that block (a chat answer restates the function)."""
    head = source_prompt if source_prompt is not None else prompt
    body = extract_code(text) if source_prompt is not None and "```" in text else text
    program = f"{head}{body}\n\n{test}\n\ncheck({entry_point})\n"
    run = sandbox.run(program, exit_ok=False)
    answer = program_hash(prompt + text)
    if run.completed:
        return Verdict(True, "pass", answer, "")
    return failure_verdict(run, answer)


def check_assert_tests(text: str, test_list, sandbox: Sandbox, test_setup_code: str | None = None,
                       test_imports=None) -> Verdict:
    """MBPP: program = test_imports + test_setup_code + the completion's code (its first fenced
    block, else the text) + each assert of `test_list`; pass means it ran to its end."""
    asserts = list(test_list) if not isinstance(test_list, str) else [test_list]
    code = extract_code(text)
    program = "\n".join([*(test_imports or []), test_setup_code or "", code, "", *asserts, ""])
    run = sandbox.run(program, exit_ok=False)
    answer = program_hash(code)
    if run.completed:
        return Verdict(True, "pass", answer, "")
    return failure_verdict(run, answer)


def outputs_match(expected: str, got: str, rel_tol: float = 1e-6, abs_tol: float = 1e-6) -> bool:
    """Whitespace-insensitive token equality; numbers equal within the tolerances."""
    want, have = expected.split(), got.split()
    if len(want) != len(have):
        return False
    for a, b in zip(want, have):
        if a == b:
            continue
        try:
            x, y = float(a), float(b)
        except ValueError:
            return False
        if not math.isclose(x, y, rel_tol=rel_tol, abs_tol=abs_tol):
            return False
    return True


def check_stdio(text: str, test_cases, sandbox: Sandbox) -> Verdict:
    """Runs the completion's program on each case's `input`; stops at the first failing case."""
    program = extract_code(text)
    answer = program_hash(program)
    cases = list(test_cases or [])
    if not cases:
        return Verdict(False, "error", answer, "the problem has no test_cases")
    for i, case in enumerate(cases):
        run = sandbox.run(program, stdin=str(case["input"]), exit_ok=True)
        if not run.completed:
            return failure_verdict(run, answer, f"case {i}")
        if not outputs_match(str(case["output"]), run.stdout):
            expected = _clip(str(case["output"]))
            return Verdict(False, "fail", answer, f"case {i}: wrong output {_clip(run.stdout)!r}, expected {expected!r}")
    return Verdict(True, "pass", answer, f"{len(cases)} cases")


def _clip(text: str, size: int = 60) -> str:
    return text if len(text) <= size else text[:size] + "..."

