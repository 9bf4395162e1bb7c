"""Problem sources: a small registry from a name to a loader of the problems table.

Every source returns a `pyarrow.Table` with the contract columns (`problem_id` string, unique;
`prompt` string or chat messages) plus its verifier payload (`answer`, `test`, `entry_point`,
`test_cases`, ...). `load_problems` applies `problems.limit` and checks the result, naming the
row at fault.
"""

from typing import Callable

import pyarrow as pa

from jobs.config import ProblemsConfig
from jobs.errors import ProblemSetError
from jobs.problems.arithmetic import arithmetic_rows
from jobs.problems.files import read_jsonl, read_parquet
from jobs.problems.humaneval import humaneval_table
from jobs.problems.validate import validate_problems

# A loader gets the problems section and the run's fsspec storage options.
ProblemSource = Callable[[ProblemsConfig, dict], pa.Table]

SOURCES: dict[str, ProblemSource] = {}


def register_source(name: str) -> Callable[[ProblemSource], ProblemSource]:
    def add(loader: ProblemSource) -> ProblemSource:
        if name in SOURCES:
            raise ValueError(f"problem source '{name}' is registered twice")
        SOURCES[name] = loader
        return loader

    return add


def get_source(name: str) -> ProblemSource:
    if name not in SOURCES:
        raise ProblemSetError(f"unknown problems.source '{name}': use one of {', '.join(sorted(SOURCES))}")
    return SOURCES[name]


def _no_options(config: ProblemsConfig) -> None:
    if config.options:
        raise ProblemSetError(
            f"problems.source={config.source} takes no problems.options (got {', '.join(config.options)})"
        )


@register_source("jsonl")
def _jsonl(config: ProblemsConfig, storage_options: dict) -> pa.Table:
    _no_options(config)
    return read_jsonl(config, storage_options)


@register_source("parquet")
def _parquet(config: ProblemsConfig, storage_options: dict) -> pa.Table:
    _no_options(config)
    return read_parquet(config, storage_options)


@register_source("humaneval")
def _humaneval(config: ProblemsConfig, storage_options: dict) -> pa.Table:
    _no_options(config)
    return humaneval_table()


@register_source("arithmetic")
def _arithmetic(config: ProblemsConfig, storage_options: dict) -> pa.Table:
    try:
        rows = arithmetic_rows(**config.options)
    except (TypeError, ValueError) as err:
        raise ProblemSetError(f"problems.source=arithmetic: bad problems.options ({err})") from None
    return pa.Table.from_pylist(rows)


def load_problems(config: ProblemsConfig, storage_options: dict | None = None) -> pa.Table:
    """The exact problem set a run uses: the source's rows, the first `limit`, checked."""
    table = get_source(config.source)(config, storage_options or {})
    if config.limit is not None:
        table = table.slice(0, config.limit)
    return validate_problems(table, f"problems.source={config.source}")
