"""jobs.problems: problem files and built-in sets, and errors that name the row at fault."""

import gzip
import json
import operator
import re

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from jobs.config import ProblemsConfig
from jobs.errors import ProblemSetError
from jobs.problems import SOURCES, load_problems, register_source

ROWS = [
    {"problem_id": "q0", "prompt": "What is 1 + 1?", "answer": "2"},
    {"problem_id": "q1", "prompt": "What is 2 + 2?", "answer": "4"},
    {"problem_id": "q2", "prompt": "What is 3 + 3?", "answer": "6"},
    {"problem_id": "q3", "prompt": "What is 4 + 4?", "answer": "8"},
]


def write_jsonl(path, rows) -> str:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return str(path)


def load(**kwargs) -> pa.Table:
    return load_problems(ProblemsConfig(**kwargs))


def load_error(**kwargs) -> str:
    with pytest.raises(ProblemSetError) as caught:
        load(**kwargs)
    message = str(caught.value)
    assert "\n" not in message
    return message


# Files.


def test_jsonl_rows_come_back_as_written(tmp_path):
    table = load(path=write_jsonl(tmp_path / "p.jsonl", ROWS))
    assert table.column_names == ["problem_id", "prompt", "answer"]
    assert table.to_pylist() == ROWS


def test_gzipped_jsonl_is_read_by_its_name(tmp_path):
    path = tmp_path / "p.jsonl.gz"
    with gzip.open(path, "wt") as handle:
        handle.write("".join(json.dumps(row) + "\n" for row in ROWS))
    assert load(path=str(path)).to_pylist() == ROWS


def test_blank_lines_are_skipped(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text("\n" + json.dumps(ROWS[0]) + "\n\n   \n" + json.dumps(ROWS[1]) + "\n\n")
    assert load(path=str(path)).to_pylist() == ROWS[:2]


@pytest.mark.parametrize("name", ["p.jsonl", "p.jsonl.gz"])
def test_jsonl_by_file_url(tmp_path, name):
    path = tmp_path / name
    text = "".join(json.dumps(row) + "\n" for row in ROWS)
    path.write_bytes(gzip.compress(text.encode()) if name.endswith(".gz") else text.encode())
    assert load(path=f"file://{path}").to_pylist() == ROWS


@pytest.mark.parametrize("url", [False, True])
def test_parquet_rows_come_back_as_written(tmp_path, url):
    path = tmp_path / "p.parquet"
    pq.write_table(pa.Table.from_pylist(ROWS), path)
    table = load(source="parquet", path=f"file://{path}" if url else str(path))
    assert table.to_pylist() == ROWS


def test_columns_maps_file_columns_to_contract_names(tmp_path):
    rows = [{"task_id": f"t{i}", "question": f"Q{i}", "answer": str(i)} for i in range(3)]
    table = load(path=write_jsonl(tmp_path / "p.jsonl", rows), columns={"problem_id": "task_id", "prompt": "question"})
    assert table.column_names == ["problem_id", "prompt", "answer"]
    assert table.to_pylist() == [{"problem_id": f"t{i}", "prompt": f"Q{i}", "answer": str(i)} for i in range(3)]


def test_columns_mapping_replaces_a_file_column_of_the_contract_name(tmp_path):
    """With prompt=question, the file's own `prompt` column is not the prompt any more."""
    rows = [{"problem_id": "a", "prompt": "old", "question": "new"}]
    table = load(path=write_jsonl(tmp_path / "p.jsonl", rows), columns={"prompt": "question"})
    assert table.to_pylist() == [{"problem_id": "a", "prompt": "new"}]


def test_columns_mapping_of_parquet(tmp_path):
    path = tmp_path / "p.parquet"
    pq.write_table(pa.table({"id": ["x", "y"], "text": ["X", "Y"]}), path)
    table = load(source="parquet", path=str(path), columns={"problem_id": "id", "prompt": "text"})
    assert table.to_pylist() == [{"problem_id": "x", "prompt": "X"}, {"problem_id": "y", "prompt": "Y"}]


def test_columns_mapping_to_a_column_the_file_lacks(tmp_path):
    message = load_error(path=write_jsonl(tmp_path / "p.jsonl", ROWS), columns={"prompt": "question"})
    assert "problems.columns.prompt=question" in message
    assert "'question'" in message and "problem_id, prompt, answer" in message


@pytest.mark.parametrize("limit, kept", [(1, 1), (3, 3), (4, 4), (99, 4)])
def test_limit_keeps_the_first_n_in_file_order(tmp_path, limit, kept):
    table = load(path=write_jsonl(tmp_path / "p.jsonl", ROWS), limit=limit)
    assert table["problem_id"].to_pylist() == ["q0", "q1", "q2", "q3"][:kept]


def test_limit_applies_before_the_checks(tmp_path):
    """A duplicate beyond the limit is not part of the run's problem set."""
    table = load(path=write_jsonl(tmp_path / "p.jsonl", ROWS + [ROWS[0]]), limit=4)
    assert table.num_rows == 4


def test_integer_problem_ids_become_strings(tmp_path):
    rows = [{"problem_id": i, "prompt": f"p{i}"} for i in (7, 0, 12)]
    table = load(path=write_jsonl(tmp_path / "p.jsonl", rows))
    assert table.schema.field("problem_id").type == pa.string()
    assert table["problem_id"].to_pylist() == ["7", "0", "12"]


def test_chat_message_prompts_are_accepted(tmp_path):
    chat = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "1 + 1?"}]
    table = load(path=write_jsonl(tmp_path / "p.jsonl", [{"problem_id": "c", "prompt": chat, "answer": "2"}]))
    assert table["prompt"].to_pylist() == [chat]


# Errors that name the row or line.


def test_duplicate_ids_name_both_rows(tmp_path):
    message = load_error(path=write_jsonl(tmp_path / "p.jsonl", ROWS + [ROWS[1]]))
    assert "duplicate problem_id 'q1' at rows 2 and 5" in message


def test_duplicate_ids_after_casting_integers(tmp_path):
    rows = [{"problem_id": 1, "prompt": "a"}, {"problem_id": 1, "prompt": "b"}]
    assert "duplicate problem_id '1' at rows 1 and 2" in load_error(path=write_jsonl(tmp_path / "p.jsonl", rows))


@pytest.mark.parametrize("missing", ["problem_id", "prompt"])
def test_row_without_a_required_field_is_named(tmp_path, missing):
    bad = {k: v for k, v in ROWS[2].items() if k != missing}
    message = load_error(path=write_jsonl(tmp_path / "p.jsonl", ROWS[:2] + [bad] + ROWS[3:]))
    assert f"row 3 has no {missing}" in message


def test_row_with_a_null_prompt_is_named(tmp_path):
    rows = [ROWS[0], {"problem_id": "x", "prompt": None}]
    assert "row 2 has no prompt" in load_error(path=write_jsonl(tmp_path / "p.jsonl", rows))


@pytest.mark.parametrize("missing", ["problem_id", "prompt"])
def test_missing_required_column_suggests_a_mapping(tmp_path, missing):
    rows = [{k: v for k, v in row.items() if k != missing} for row in ROWS]
    message = load_error(path=write_jsonl(tmp_path / "p.jsonl", rows))
    assert f"no '{missing}' column" in message
    assert f"problems.columns.{missing}=" in message


def test_prompt_of_another_type_is_refused(tmp_path):
    rows = [{"problem_id": "a", "prompt": 3}]
    assert "prompt must be a string or chat messages" in load_error(path=write_jsonl(tmp_path / "p.jsonl", rows))


@pytest.mark.parametrize("text", ["", "\n\n  \n"])
def test_empty_jsonl_file(tmp_path, text):
    path = tmp_path / "p.jsonl"
    path.write_text(text)
    assert "the problem set is empty" in load_error(path=str(path))


def test_empty_parquet_file(tmp_path):
    path = tmp_path / "p.parquet"
    pq.write_table(pa.table({"problem_id": pa.array([], pa.string()), "prompt": pa.array([], pa.string())}), path)
    assert "the problem set is empty" in load_error(source="parquet", path=str(path))


def test_csv_given_as_jsonl_names_the_line(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text("problem_id,prompt\nq0,hello\n")
    message = load_error(path=str(path))
    assert "line 1 is not valid JSON" in message and "JSONL" in message


def test_bad_line_in_the_middle_is_named(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text(json.dumps(ROWS[0]) + "\n" + json.dumps(ROWS[1]) + "\n{oops\n")
    assert "line 3 is not valid JSON" in load_error(path=str(path))


def test_json_line_that_is_not_an_object_is_named(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text(json.dumps(ROWS[0]) + "\n[1, 2]\n")
    assert "line 2 is not a JSON object" in load_error(path=str(path))


def test_binary_file_given_as_jsonl(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_bytes(bytes(range(256)) * 4)
    message = load_error(path=str(path))
    assert str(path) in message and "JSONL" in message


def test_parquet_file_given_as_jsonl(tmp_path):
    path = tmp_path / "p.jsonl"
    pq.write_table(pa.Table.from_pylist(ROWS), path)
    assert "JSONL" in load_error(path=str(path))


@pytest.mark.parametrize("content", [b"", b'{"problem_id": "a", "prompt": "b"}\n'])
def test_file_that_is_not_parquet(tmp_path, content):
    path = tmp_path / "p.parquet"
    path.write_bytes(content)
    message = load_error(source="parquet", path=str(path))
    assert f"problems.path={path} is not a Parquet file" in message


@pytest.mark.parametrize("source", ["jsonl", "parquet"])
def test_missing_file(tmp_path, source):
    path = tmp_path / f"absent.{source}"
    assert f"problems.path={path} does not exist" in load_error(source=source, path=str(path))


@pytest.mark.parametrize("source", ["jsonl", "parquet"])
def test_file_source_without_a_path(source):
    assert "needs problems.path" in load_error(source=source)


def test_file_source_refuses_options(tmp_path):
    message = load_error(path=write_jsonl(tmp_path / "p.jsonl", ROWS), options={"seed": 1})
    assert "takes no problems.options" in message and "seed" in message


def test_unknown_source_lists_the_names():
    message = load_error(source="jsonll")
    assert "'jsonll'" in message
    for name in ("arithmetic", "humaneval", "jsonl", "parquet"):
        assert name in message
    assert set(SOURCES) >= {"arithmetic", "humaneval", "jsonl", "parquet"}


def test_registering_a_source_name_twice_is_refused():
    before = dict(SOURCES)
    with pytest.raises(ValueError, match="'jsonl'"):
        register_source("jsonl")(lambda config, options: pa.table({}))
    assert SOURCES == before


# HumanEval.


def test_humaneval_has_its_164_problems_with_tests():
    table = load(source="humaneval")
    assert table.num_rows == 164
    assert table["problem_id"].to_pylist() == [f"HumanEval/{i}" for i in range(164)]
    assert {"prompt", "test", "entry_point", "canonical_solution"} <= set(table.column_names)
    first = table.slice(0, 1).to_pylist()[0]
    assert first["entry_point"] == "has_close_elements"
    assert first["prompt"].startswith("from typing import List")
    assert "def check(candidate)" in first["test"]


def test_humaneval_limit():
    assert load(source="humaneval", limit=5)["problem_id"].to_pylist() == [f"HumanEval/{i}" for i in range(5)]


# Arithmetic.

QUESTION = re.compile(r"^Question: What is (\d+) ([-+*]) (\d+)\?\nAnswer:$")
OPS = {"+": operator.add, "-": operator.sub, "*": operator.mul}


def arithmetic(**options) -> list[dict]:
    return load(source="arithmetic", options=options).to_pylist()


def test_arithmetic_gives_exactly_num_problems_with_numbered_ids():
    rows = arithmetic(num_problems=37, seed=2)
    assert [r["problem_id"] for r in rows] == [f"arithmetic-{i:05d}" for i in range(37)]


def test_arithmetic_default_size():
    assert len(arithmetic()) == 200


def test_arithmetic_answers_are_correct():
    for row in arithmetic(num_problems=300, seed=5, digits=3, ops="+-*"):
        a, op, b = QUESTION.match(row["prompt"]).groups()
        assert row["answer"] == str(OPS[op](int(a), int(b)))


def test_arithmetic_questions_are_distinct():
    rows = arithmetic(num_problems=300, digits=1, ops="+-*")  # every one of the 10 x 10 x 3 questions
    assert len({r["prompt"] for r in rows}) == 300


def test_arithmetic_respects_digits_and_ops():
    rows = arithmetic(num_problems=50, digits=1, ops="*")
    for row in rows:
        a, op, b = QUESTION.match(row["prompt"]).groups()
        assert op == "*" and int(a) < 10 and int(b) < 10


def test_arithmetic_is_deterministic():
    assert arithmetic(num_problems=20, seed=3) == arithmetic(num_problems=20, seed=3)


def test_arithmetic_seed_changes_the_questions():
    first, second = arithmetic(num_problems=20, seed=3), arithmetic(num_problems=20, seed=4)
    assert [r["prompt"] for r in first] != [r["prompt"] for r in second]


def test_arithmetic_smaller_set_is_a_prefix_of_a_larger_one():
    """The questions come from one seeded stream: the limit of a larger set equals a smaller set."""
    assert arithmetic(num_problems=10, seed=1) == arithmetic(num_problems=30, seed=1)[:10]


@pytest.mark.parametrize(
    "options, fragment",
    [({"num_problems": 0}, "num_problems=0"), ({"digits": 0}, "digits=0"), ({"ops": "/"}, "ops='/'"),
     ({"ops": ""}, "ops=''"), ({"num_problems": 101, "digits": 1, "ops": "+"}, "only 100 distinct"),
     ({"bogus": 1}, "bogus")],
)
def test_arithmetic_bad_options(options, fragment):
    message = load_error(source="arithmetic", options=options)
    assert "bad problems.options" in message and fragment in message


def test_a_list_of_columns_concatenates_their_items(tmp_path):
    # CodeContests' test sets: structs of parallel lists, two of them, into one list of cases.
    from jobs.problems.files import concatenated

    rows = [{"public": {"input": ["1\n", "2\n"], "output": ["a\n", "b\n"]}, "private": {"input": ["3\n"], "output": ["c\n"]}},
            {"public": {"input": [], "output": []}, "private": None}]
    assert concatenated(rows, ["public", "private"]) == [
        [{"input": "1\n", "output": "a\n"}, {"input": "2\n", "output": "b\n"}, {"input": "3\n", "output": "c\n"}], []]
    assert concatenated([{"a": [1, 2], "b": 3}], ["a", "b"]) == [[1, 2, 3]]


def test_a_columns_value_must_be_a_name_or_a_list_of_names():
    from jobs.config import merge_config
    from jobs.errors import ConfigError

    with pytest.raises(ConfigError, match=r"problems\.columns\.test_cases' is \[\]: give a column name"):
        merge_config(None, ["run.root=/tmp/x", "model.path=m", "problems.columns.test_cases=[]"])
