"""Problem sets from Hugging Face datasets (`problems.source=hf`), and worked examples from them.

`problems.path` is a Hub dataset id (`openai/gsm8k`), a folder written by `save_to_disk`, or a
local folder of data files (Parquet, JSON Lines, CSV; split names from the file names or from a
`configs:` header in its README.md, as on the Hub). The `datasets` library loads it, with its
cache, its offline mode (HF_DATASETS_OFFLINE=1 or HF_HUB_OFFLINE=1: only what the cache or the
disk holds) and its authentication (HF_TOKEN or `hf auth login`, for gated datasets).
It is imported only when a dataset is loaded: its import alone takes seconds.

A dataset without a `problem_id` column (and no `problems.columns.problem_id`) gets ids
`<split>-<row>`, the row's 0-based index in the split: stable as long as the dataset is.
"""

import fsspec
import pyarrow as pa

from jobs.config import ProblemsConfig
from jobs.errors import ProblemSetError
from jobs.problems.files import rename_columns

OPTIONS = ("split", "name", "revision", "data_files")
PROBLEM_KEYS = ("problems.path", "problems.options")


def _first_line(err: Exception) -> str:
    return (str(err).strip().splitlines() or [type(err).__name__])[0]


def _saved_to_disk(path: str, storage_options: dict) -> bool:
    """Whether `path` is a folder `save_to_disk` wrote: a DatasetDict's or a Dataset's."""
    try:
        fs, root = fsspec.core.url_to_fs(path, **storage_options)
        return any(fs.isfile(f"{root.rstrip('/')}/{name}") for name in ("dataset_dict.json", "state.json"))
    except (ImportError, OSError, ValueError):  # a protocol fsspec does not know: not a folder then
        return False


def _load_from_disk(datasets, path: str, options: dict, storage_options: dict, keys: tuple[str, str]):
    path_key, options_key = keys
    extra = sorted(set(options) - {"split"})
    if extra:
        raise ProblemSetError(f"{options_key}.{extra[0]} does not apply to {path_key}={path}, a folder written by save_to_disk "
                              "(it takes only split)")
    try:
        return datasets.load_from_disk(path, storage_options=storage_options or None)
    except (OSError, ValueError) as err:
        raise ProblemSetError(f"{path_key}={path} cannot be read as a saved dataset ({type(err).__name__}: {_first_line(err)})") from None


def _subsets(datasets, path: str, options: dict) -> list[str]:
    try:
        return list(datasets.get_dataset_config_names(path, revision=options.get("revision"), data_files=options.get("data_files")))
    except Exception:  # only for a better message: the load's own error is reported instead
        return []


def _split_files(datasets, path: str, options: dict):
    """Only the named split's data files, where the dataset lists its files by split (a folder
    of data files, a Hub dataset of Parquet/JSON files): `load_dataset` would otherwise prepare
    every split (CodeContests' train split is 7 GB); None where that cannot be told."""
    split = options.get("split")
    if split is None or options.get("data_files") is not None:
        return options.get("data_files")
    try:
        files = datasets.load_dataset_builder(path, name=options.get("name"), revision=options.get("revision")).config.data_files
    except Exception:  # noqa: BLE001 - only a shortcut: the full load reports the real error
        return None
    return {split: list(files[split])} if files and split in files else None


def _load_dataset(datasets, path: str, options: dict, keys: tuple[str, str]):
    path_key, options_key = keys
    name = options.get("name")
    try:
        return datasets.load_dataset(path, name=name, revision=options.get("revision"),
                                     data_files=_split_files(datasets, path, options))
    except ValueError as err:  # among others: a subset that is missing, or needed and not named
        subsets = _subsets(datasets, path, options)
        if name is not None and subsets and name not in subsets:
            raise ProblemSetError(f"{options_key}.name={name}: {path} has no subset '{name}' (subsets: {', '.join(subsets)})") from None
        if name is None and len(subsets) > 1:
            raise ProblemSetError(f"{path} has subsets {', '.join(subsets)}: pick one with {options_key}.name=NAME") from None
        raise ProblemSetError(f"{path_key}={path} cannot be loaded ({_first_line(err)})") from None
    except (OSError, datasets.exceptions.DatasetsError) as err:
        # Not on the Hub, not reachable (offline and not in the cache), gated, or malformed files.
        raise ProblemSetError(f"{path_key}={path} cannot be loaded ({type(err).__name__}: {_first_line(err)})") from None


def _pick_split(datasets, loaded, split: str | None, path: str, options_key: str):
    """(the split's Dataset, its name)."""
    if isinstance(loaded, datasets.DatasetDict):
        names = list(loaded)
        if split is None:
            if len(names) != 1:
                raise ProblemSetError(f"{path} has splits {', '.join(names)}: pick one with {options_key}.split=NAME")
            split = names[0]
        if split not in loaded:
            raise ProblemSetError(f"{options_key}.split={split}: {path} has no split '{split}' (splits: {', '.join(names)})")
        return loaded[split], split
    recorded = str(loaded.split) if loaded.split is not None else None
    if split is not None and recorded is not None and split != recorded:
        raise ProblemSetError(f"{options_key}.split={split}: {path} holds one split, '{recorded}'")
    return loaded, split or recorded or "train"


def load_split(path: str, options: dict, storage_options: dict, keys: tuple[str, str] = PROBLEM_KEYS) -> tuple[pa.Table, str]:
    """One split of a dataset as a table, and the split's name. `keys` name the settings that
    gave the path and the options, for the messages."""
    path_key, options_key = keys
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise ProblemSetError(f"unknown option {options_key}.{unknown[0]} for a dataset: use {', '.join(OPTIONS)}")
    import datasets  # here, not at import: it takes seconds

    if _saved_to_disk(path, storage_options):
        loaded = _load_from_disk(datasets, path, options, storage_options, keys)
    else:
        loaded = _load_dataset(datasets, path, options, keys)
    dataset, split = _pick_split(datasets, loaded, options.get("split"), path, options_key)
    return dataset.with_format("arrow")[:], split


def hf_problems(config: ProblemsConfig, storage_options: dict) -> pa.Table:
    """The problems of `problems.path`'s split, columns mapped, with ids where it has none."""
    if not config.path:
        raise ProblemSetError("problems.source=hf needs problems.path=DATASET (a Hub dataset id or a local dataset folder)")
    table, split = load_split(config.path, dict(config.options), storage_options)
    table = rename_columns(table, config.columns, config.path)
    if "problem_id" not in table.column_names:
        ids = pa.array([f"{split}-{row}" for row in range(table.num_rows)], pa.string())
        table = table.add_column(0, "problem_id", ids)
    return table
