"""What a run could not produce, recorded under the root: `failures/unit-<id>.parquet`.

A row names a problem whose prompt the engine refused (its unit still holds the other problems'
samples), or, with a null problem_id, a whole unit that failed every attempt (its sample file
does not exist, so a rerun tries it again). A unit that later succeeds replaces its file.
"""

import pyarrow as pa

from jobs.store import layout
from jobs.store.root import RunStore

FAILURES_SCHEMA = pa.schema(
    [
        pa.field("unit_id", pa.string(), nullable=False),
        pa.field("problem_id", pa.string()),  # null: the whole unit
        pa.field("status", pa.string(), nullable=False),  # prompt_too_long | rejected | worker_died | error
        pa.field("reason", pa.string(), nullable=False),
    ]
)
def failure_path(store: RunStore, unit_id: str) -> str:
    return store.unit_file(layout.FAILURES, unit_id)


def record_failures(store: RunStore, unit_id: str, rows: list[tuple[str | None, str, str]]) -> None:
    """(problem_id or None, status, reason) rows of one unit, replacing what it had; none: removed."""
    path = failure_path(store, unit_id)
    if rows:
        columns = list(zip(*rows))
        table = pa.table({"unit_id": [unit_id] * len(rows), "problem_id": columns[0], "status": columns[1], "reason": columns[2]})
        store.write_table(path, table, FAILURES_SCHEMA)
    elif store.exists(path):
        store.fs.rm(path)


def read_failures(store: RunStore) -> pa.Table:
    """Every failure of the run, units in id order."""
    ids = sorted(store.unit_ids(layout.FAILURES))
    tables = [store.read_table(failure_path(store, u)) for u in ids]
    return pa.concat_tables(tables) if tables else FAILURES_SCHEMA.empty_table()
