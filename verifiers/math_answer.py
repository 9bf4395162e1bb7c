"""`math`: LaTeX, boxed and plain answers compared for equivalence with `math-verify`.

math-verify's own timeouts use SIGALRM, which only works on a process's main thread (a Ray
actor's methods need not run there), so they are off and each check runs in a helper process
instead: when a check overruns `timeout_s` (sympy can take minutes on hostile input) the
helper is killed and replaced, and the sample gets `timeout`. The helper dies with the pool
worker, even a SIGKILLed one (its parent-death signal, `verifiers.sandbox.die_with_parent`).
"""

import concurrent.futures
import logging
import multiprocessing
import os
from typing import Optional

from verifiers.sandbox import die_with_parent, in_lasting_thread
from verifiers.verdict import Verdict


def parse_gold(answer: str) -> list:
    """The gold answer parsed. Bare LaTeX, as MATH stores it (`\\frac12`, `2\\pi`), is read
    as one math expression first: plain-text parsing would take `2\\pi` for the number 2."""
    from math_verify import parse

    if "$" not in answer and "\\boxed" not in answer:
        parsed = parse(f"${answer}$", parsing_timeout=None)
        if parsed:
            return parsed
    return parse(answer, parsing_timeout=None)


def math_verdict(text: str, answer: str) -> tuple[bool, str, Optional[str], str]:
    """(passed, status, canonical answer, detail); runs in the helper process."""
    from math_verify import parse, verify

    # It warns once per process that its own (SIGALRM) timeouts are off: they are, on purpose.
    logging.getLogger("math_verify").setLevel(logging.ERROR)
    gold = parse_gold(str(answer))
    if not gold:
        return False, "error", None, f"gold answer {str(answer)[:80]!r} does not parse"
    predicted = parse(text, parsing_timeout=None)
    if not predicted:
        return False, "no_answer", None, "no mathematical answer found"
    # The sympy form groups equivalent spellings ('\\frac12' and '\\frac{1}{2}') for voting.
    canonical = str(predicted[0])
    passed = bool(verify(gold, predicted, timeout_seconds=None))
    return passed, "pass" if passed else "fail", canonical, "" if passed else f"expected {gold[-1]}"


class MathChecker:
    """Runs `math_verdict` in one helper process, replaced whenever a check times out."""

    def __init__(self, timeout_s: float = 10.0):
        self.timeout_s = timeout_s
        self._executor: Optional[concurrent.futures.ProcessPoolExecutor] = None

    def _pool(self) -> concurrent.futures.ProcessPoolExecutor:
        if self._executor is None:
            # The first submit starts the helper (the only one: it is never idle-replaced), so it
            # runs on a lasting thread, which its parent-death signal is tied to.
            self._executor, warm_up = in_lasting_thread(self._start_helper)
            # Start and import before the first timed check: the limit is for checking only.
            warm_up.result()
        return self._executor

    @staticmethod
    def _start_helper() -> tuple[concurrent.futures.ProcessPoolExecutor, concurrent.futures.Future]:
        # spawn: forking a process that runs threads (a Ray worker does) can deadlock.
        context = multiprocessing.get_context("spawn")
        executor = concurrent.futures.ProcessPoolExecutor(
            max_workers=1, mp_context=context, initializer=die_with_parent, initargs=(os.getpid(),)
        )
        return executor, executor.submit(math_verdict, "1", "1")

    def check(self, text: str, answer: str) -> Verdict:
        future = self._pool().submit(math_verdict, text, str(answer))
        try:
            return Verdict(*future.result(timeout=self.timeout_s))
        except concurrent.futures.TimeoutError:
            self._kill()
            return Verdict(False, "timeout", None, f"math-verify took over {self.timeout_s:g} s")
        except concurrent.futures.process.BrokenProcessPool as err:
            self._kill()
            return Verdict(False, "error", None, f"the math checker died ({err})"[:300])

    def _kill(self) -> None:
        if self._executor is not None:
            for process in list(getattr(self._executor, "_processes", {}).values()):
                process.kill()
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None

    def close(self) -> None:
        self._kill()
