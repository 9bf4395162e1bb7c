"""JSONL and Parquet problem files at any fsspec URL, with a column mapping."""

import json

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq

from jobs.config import ProblemsConfig
from jobs.errors import ProblemSetError


def _require_path(config: ProblemsConfig) -> str:
    if not config.path:
        raise ProblemSetError(f"problems.source={config.source} needs problems.path=FILE (a local path or URL)")
    return config.path


def _open_error(path: str, err: Exception, key: str = "problems.path") -> ProblemSetError:
    if isinstance(err, FileNotFoundError):
        return ProblemSetError(f"{key}={path} does not exist: check the path")
    return ProblemSetError(f"{key}={path} cannot be read ({type(err).__name__}: {err})")


def read_jsonl_rows(path: str, storage_options: dict, what: str, key: str = "problems.path") -> list[dict]:
    """One dict per non-empty line; `.gz` and other compressions are inferred from the name.
    `what` starts the messages about the content, `key` names the setting that gave the path."""
    rows = []
    try:
        with fsspec.open(path, "rt", compression="infer", encoding="utf-8", **storage_options) as handle:
            for line_no, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as err:
                    raise ProblemSetError(f"{what}: line {line_no} is not valid JSON ({err.msg}): is it JSONL?") from None
                if not isinstance(row, dict):
                    raise ProblemSetError(f"{what}: line {line_no} is not a JSON object")
                rows.append(row)
    except UnicodeDecodeError:
        raise ProblemSetError(f"{what}: not a UTF-8 text file: is it JSONL?") from None
    except (OSError, ValueError) as err:
        raise _open_error(path, err, key) from None
    return rows


def rename_columns(table: pa.Table, columns: dict, path: str) -> pa.Table:
    """Contract name <- file column, as `problems.columns` maps them; a list of columns makes
    one list column of all their items (see `concatenated`)."""
    renames, combined = {}, {}
    for contract_name, file_column in columns.items():
        names = list(file_column) if isinstance(file_column, (list, tuple)) else [file_column]
        for name in names:
            if name not in table.column_names:
                raise ProblemSetError(
                    f"problems.columns.{contract_name}={file_column}: {path} has no column '{name}' "
                    f"(columns: {', '.join(table.column_names)})"
                )
        if isinstance(file_column, (list, tuple)):
            combined[contract_name] = names
        else:
            renames[file_column] = contract_name
    dropped = [name for name in table.column_names if name in columns and name not in renames]
    table = table.drop_columns(dropped)
    table = table.rename_columns([renames.get(name, name) for name in table.column_names])
    for contract_name, names in combined.items():
        table = table.append_column(contract_name, pa.array(concatenated(table.select(names).to_pylist(), names)))
    return table


def concatenated(rows: list[dict], names: list[str]) -> list[list]:
    """Each row's items of the named columns, in order: a list's elements, a struct of parallel
    lists' rows (CodeContests' tests {input: [...], output: [...]} become [{input, output}, ...]),
    any other value as one item; nulls add nothing."""
    out = []
    for row in rows:
        items: list = []
        for name in names:
            value = row[name]
            if isinstance(value, dict) and value and all(isinstance(v, list) for v in value.values()):
                items.extend(dict(zip(value, parts)) for parts in zip(*value.values()))
            elif isinstance(value, list):
                items.extend(value)
            elif value is not None:
                items.append(value)
        out.append(items)
    return out


def read_jsonl(config: ProblemsConfig, storage_options: dict | None = None) -> pa.Table:
    path = _require_path(config)
    rows = read_jsonl_rows(path, storage_options or {}, f"problems.path={path}")
    try:
        table = pa.Table.from_pylist(rows)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as err:
        raise ProblemSetError(f"problems.path={path}: rows disagree on a column's type ({err})") from None
    return rename_columns(table, config.columns, path)


def read_parquet_table(path: str, storage_options: dict, key: str = "problems.path") -> pa.Table:
    try:
        fs, fs_path = fsspec.core.url_to_fs(path, **storage_options)
        return pq.read_table(fs_path, filesystem=fs)
    except pa.ArrowInvalid as err:
        fix = "check the file or use problems.source=jsonl" if key == "problems.path" else "check the file or give a .jsonl file"
        raise ProblemSetError(f"{key}={path} is not a Parquet file ({err}): {fix}") from None
    except (OSError, ValueError) as err:
        raise _open_error(path, err, key) from None


def read_parquet(config: ProblemsConfig, storage_options: dict | None = None) -> pa.Table:
    path = _require_path(config)
    return rename_columns(read_parquet_table(path, storage_options or {}), config.columns, path)
