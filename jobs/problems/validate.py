"""Checks every problem set passes: contract columns present, typed, non-null, unique ids."""

import pyarrow as pa
import pyarrow.compute as pc

from jobs.errors import ProblemSetError

REQUIRED_COLUMNS = ("problem_id", "prompt")


def _is_chat(prompt_type: pa.DataType) -> bool:
    """Chat messages: a list of structs with `role` and `content`."""
    if not pa.types.is_list(prompt_type) and not pa.types.is_large_list(prompt_type):
        return False
    item = prompt_type.value_type
    return pa.types.is_struct(item) and {"role", "content"} <= {f.name for f in item}


def _first_null_row(column: pa.ChunkedArray) -> int | None:
    nulls = pc.indices_nonzero(pc.is_null(column))
    return nulls[0].as_py() + 1 if len(nulls) else None


def _check_unique(ids: list[str], what: str) -> None:
    first_row: dict[str, int] = {}
    for row, problem_id in enumerate(ids, start=1):
        if problem_id in first_row:
            raise ProblemSetError(
                f"{what}: duplicate problem_id '{problem_id}' at rows {first_row[problem_id]} and {row}: "
                "make the ids unique"
            )
        first_row[problem_id] = row


def validate_problems(table: pa.Table, what: str) -> pa.Table:
    """The table with `problem_id` as strings, or a `ProblemSetError` naming the row at fault."""
    # Before the column check: an empty file has no columns, and "no 'problem_id' column"
    # would send the user looking for the wrong fix.
    if table.num_rows == 0:
        raise ProblemSetError(f"{what}: the problem set is empty")
    for name in REQUIRED_COLUMNS:
        if name not in table.column_names:
            build = " or build it with prompt.template" if name == "prompt" else ""
            raise ProblemSetError(
                f"{what}: no '{name}' column (columns: {', '.join(table.column_names) or 'none'}); "
                f"map one with problems.columns.{name}=COLUMN{build}"
            )
    for name in REQUIRED_COLUMNS:
        row = _first_null_row(table[name])
        if row is not None:
            raise ProblemSetError(f"{what}: row {row} has no {name}")
    ids = table["problem_id"]
    if not pa.types.is_string(ids.type):
        if not (pa.types.is_integer(ids.type) or pa.types.is_large_string(ids.type)):
            raise ProblemSetError(f"{what}: problem_id must be strings or integers, not {ids.type}")
        table = table.set_column(table.column_names.index("problem_id"), "problem_id", ids.cast(pa.string()))
    prompt_type = table.schema.field("prompt").type
    if not (pa.types.is_string(prompt_type) or pa.types.is_large_string(prompt_type) or _is_chat(prompt_type)):
        raise ProblemSetError(
            f"{what}: prompt must be a string or chat messages [{{role, content}}], not {prompt_type}"
        )
    _check_unique(table["problem_id"].to_pylist(), what)
    return table
