"""Problem sources: a small registry from a name to a loader of the problems table.

Every source returns a `pyarrow.Table` with the contract columns (`problem_id` string, unique;
`prompt` string or chat messages, unless the `prompt:` section builds it) plus its verifier
payload (`answer`, `test`, `entry_point`, `test_cases`, ...). `load_problems` applies
`problems.limit`, builds the prompts (`jobs.problems.prompts`) and checks the result, naming
the row at fault.
"""

from typing import Callable

import pyarrow as pa

from jobs.config import ProblemsConfig
from jobs.config.schema import ModelConfig, PromptConfig
from jobs.errors import ProblemSetError
from jobs.problems.arithmetic import arithmetic_rows
from jobs.problems.chains import chain_rows
from jobs.problems.files import read_jsonl, read_parquet
from jobs.problems.hf import hf_problems
from jobs.problems.humaneval import humaneval_table
from jobs.problems.prompts import render_prompts
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


@register_source("hf")
def _hf(config: ProblemsConfig, storage_options: dict) -> pa.Table:
    return hf_problems(config, storage_options)


def _generated(config: ProblemsConfig, make_rows: Callable[..., list[dict]]) -> pa.Table:
    """Rows a seeded generator makes from problems.options."""
    try:
        rows = make_rows(**config.options)
    except (TypeError, ValueError) as err:
        raise ProblemSetError(f"problems.source={config.source}: bad problems.options ({err})") from None
    return pa.Table.from_pylist(rows)


@register_source("arithmetic")
def _arithmetic(config: ProblemsConfig, storage_options: dict) -> pa.Table:
    return _generated(config, arithmetic_rows)


@register_source("chains")
def _chains(config: ProblemsConfig, storage_options: dict) -> pa.Table:
    return _generated(config, chain_rows)


def load_problems(config: ProblemsConfig, storage_options: dict | None = None, prompt: PromptConfig | None = None,
                  model: ModelConfig | None = None) -> pa.Table:
    """The exact problem set a run uses: the source's rows, the first `limit`, with the prompts
    `prompt` builds (the model's chat template decides between chat and text), checked."""
    storage_options = storage_options or {}
    table = get_source(config.source)(config, storage_options)
    if config.limit is not None:
        table = table.slice(0, config.limit)
    what = f"problems.source={config.source}"
    if prompt is not None:
        table = render_prompts(table, prompt, model, config.columns, storage_options, f"the problems of {what}")
    return validate_problems(table, what)
