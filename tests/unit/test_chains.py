"""jobs.problems.chains: the seeded multi-step arithmetic set of the search demo, its gold
completions, and its `chains` problem source."""

import re

import pytest

from jobs.config import ProblemsConfig
from jobs.errors import ProblemSetError
from jobs.problems import SOURCES, get_source, load_problems
from jobs.problems.chains import (STEP_SEPARATOR, chain_completion, chain_rows, chain_steps, chain_values,
                                  count_chains, format_chain_prompt)
from verifiers.numeric import check_numeric
from workers.reward import split_steps

QUESTION = re.compile(r"^Question: What is (\d+(?: [-+] \d+)+)\?\nAnswer:\n$")


def chain_of(prompt: str) -> tuple[tuple[int, ...], tuple[str, ...]]:
    parts = QUESTION.match(prompt).group(1).split(" ")
    return tuple(int(x) for x in parts[0::2]), tuple(parts[1::2])


def chains(**options) -> list[dict]:
    return load_problems(ProblemsConfig(source="chains", options=options)).to_pylist()


def test_exact_rows_for_a_small_seed():
    # Worked by hand: 76 - 71 = 5, 5 + 25 = 30, 30 + 30 = 60; 67 + 21 = 88, 88 - 77 = 11, ...
    assert chain_rows(num_problems=4, seed=3, min_ops=3, max_ops=4) == [
        {"problem_id": "chain-00000", "prompt": "Question: What is 76 - 71 + 25 + 30?\nAnswer:\n", "answer": "60"},
        {"problem_id": "chain-00001", "prompt": "Question: What is 67 + 21 - 77 + 18?\nAnswer:\n", "answer": "29"},
        {"problem_id": "chain-00002", "prompt": "Question: What is 28 + 44 - 70 + 92 - 37?\nAnswer:\n",
         "answer": "57"},
        {"problem_id": "chain-00003", "prompt": "Question: What is 9 - 9 + 38 - 16?\nAnswer:\n", "answer": "22"},
    ]


def test_the_gold_completion_works_the_chain_one_step_per_operation():
    operands, ops = (12, 7, 5, 30), ("+", "-", "+")
    assert format_chain_prompt(operands, ops) == "Question: What is 12 + 7 - 5 + 30?\nAnswer:\n"
    assert chain_values(operands, ops) == [19, 14, 44]
    assert chain_steps(operands, ops) == ["12 + 7 = 19", "19 - 5 = 14", "14 + 30 = 44"]
    assert chain_completion(operands, ops) == "12 + 7 = 19\n\n19 - 5 = 14\n\n14 + 30 = 44"
    # The PRM's scorer cuts it back into the same steps.
    assert split_steps(chain_completion(operands, ops), STEP_SEPARATOR) == chain_steps(operands, ops)


@pytest.mark.parametrize("operands, ops", [((1, 2), ()), ((1,), ("+",)), ((1, 2), ("*",))])
def test_a_malformed_chain_is_refused(operands, ops):
    with pytest.raises(ValueError):
        chain_steps(operands, ops)


def test_rows_are_deterministic_and_a_smaller_set_is_a_prefix():
    assert chain_rows(num_problems=50, seed=7) == chain_rows(num_problems=50, seed=7)
    assert chain_rows(num_problems=10, seed=7) == chain_rows(num_problems=50, seed=7)[:10]
    assert [r["prompt"] for r in chain_rows(20, seed=7)] != [r["prompt"] for r in chain_rows(20, seed=8)]


def test_defaults_are_the_demo_set():
    rows = chain_rows()
    assert len(rows) == 100 and rows == chain_rows(num_problems=100, seed=0, min_ops=3, max_ops=5)
    assert [r["problem_id"] for r in rows] == [f"chain-{i:05d}" for i in range(100)]
    assert {len(chain_of(r["prompt"])[1]) for r in rows} == {3, 4, 5}


def test_expressions_are_distinct():
    rows = chain_rows(num_problems=2000, seed=1)
    assert len({r["prompt"] for r in rows}) == 2000


def test_every_single_operation_question_once_when_asked_for_all_of_them():
    assert count_chains(1, 1) == 99 * 99  # from a: a + b for b <= 99 - a, a - b for b <= a: 99 each
    rows = chain_rows(num_problems=99 * 99, seed=0, min_ops=1, max_ops=1)
    assert len({r["prompt"] for r in rows}) == 99 * 99


def test_operands_and_every_intermediate_result_stay_in_range():
    for row in chain_rows(num_problems=1000, seed=2, min_ops=2, max_ops=6):
        operands, ops = chain_of(row["prompt"])
        values = chain_values(operands, ops)
        assert 2 <= len(ops) <= 6
        assert all(1 <= x <= 99 for x in operands)
        assert all(0 <= v <= 99 for v in values)
        assert row["answer"] == str(values[-1])


def test_the_numeric_verifier_passes_the_gold_completion_and_not_a_wrong_one():
    for row in chain_rows(num_problems=200, seed=4):
        chain = chain_of(row["prompt"])
        completion = chain_completion(*chain)
        assert check_numeric(completion, row["answer"]).passed
        assert not check_numeric(completion + f" = {int(row['answer']) + 1}", row["answer"]).passed
        # The last step alone (a beam's final step) carries the answer too.
        assert check_numeric(chain_steps(*chain)[-1], row["answer"]).passed


def test_the_chains_source_gives_the_rows():
    assert "chains" in SOURCES
    table = get_source("chains")(ProblemsConfig(source="chains", options={"num_problems": 5, "seed": 3}), {})
    assert table.to_pylist() == chain_rows(num_problems=5, seed=3)
    assert chains(num_problems=30, seed=1, min_ops=4, max_ops=4) == chain_rows(30, 1, 4, 4)
    assert chains() == chain_rows()


def test_limit_takes_the_first_rows():
    rows = load_problems(ProblemsConfig(source="chains", options={"num_problems": 20}, limit=5)).to_pylist()
    assert rows == chain_rows(num_problems=20)[:5]


@pytest.mark.parametrize(
    "options, fragment",
    [({"num_problems": 0}, "num_problems=0"), ({"min_ops": 0}, "min_ops=0"),
     ({"min_ops": 4, "max_ops": 3}, "max_ops=3"), ({"num_problems": 9802, "min_ops": 1, "max_ops": 1}, "only 9801"),
     ({"num_problems": "3"}, "num_problems='3'"), ({"bogus": 1}, "bogus")],
)
def test_bad_options_are_a_problem_set_error(options, fragment):
    with pytest.raises(ProblemSetError) as caught:
        chains(**options)
    message = str(caught.value)
    assert "\n" not in message
    assert "problems.source=chains: bad problems.options" in message and fragment in message
