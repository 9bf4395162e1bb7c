"""problems.source=hf on local data that `datasets` writes in each test, offline: a save_to_disk
folder, a folder of Parquet or JSON Lines files, named splits and subsets, and the one-line
errors for what a dataset lacks."""

import json
import os
import subprocess
import sys

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from jobs.config import ProblemsConfig
from jobs.errors import ProblemSetError
from jobs.problems import load_problems

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# GSM8K's schema: a question and a worked answer ending in "#### <number>", no id.
TRAIN = [{"question": "Tom has 3 apples and buys 2 more. How many?", "answer": "3 + 2 = 5\n#### 5"},
         {"question": "Ann has 10 pens and loses 4. How many are left?", "answer": "10 - 4 = 6\n#### 6"}]
TEST = [{"question": "What is 6 times 7?", "answer": "6 * 7 = 42\n#### 42"},
        {"question": "What is 9 plus 1?", "answer": "9 + 1 = 10\n#### 10"},
        {"question": "What is 8 minus 3?", "answer": "8 - 3 = 5\n#### 5"}]


@pytest.fixture(autouse=True)
def offline(tmp_path, monkeypatch):
    """No request leaves the machine, and the datasets cache is the test's own."""
    import datasets
    import huggingface_hub

    for name in ("HF_DATASETS_OFFLINE", "HF_HUB_OFFLINE"):
        monkeypatch.setenv(name, "1")
    # `datasets` and the hub client read the environment once, at import.
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf-cache")


def dataset_dict(**splits):
    import datasets

    return datasets.DatasetDict({name: datasets.Dataset.from_list(rows) for name, rows in splits.items()})


def parquet_folder(root, **splits) -> str:
    """A folder laid out as the Hub's Parquet datasets are: data/<split>-00000-of-00001.parquet."""
    os.makedirs(root / "data")
    for name, rows in splits.items():
        pq.write_table(pa.Table.from_pylist(rows), root / "data" / f"{name}-00000-of-00001.parquet")
    return str(root)


def subsets_folder(root) -> str:
    """Two subsets, as openai/gsm8k has (main, socratic), declared in the dataset card's header."""
    for subset, rows in (("main", TEST), ("socratic", [{**r, "answer": "Why? " + r["answer"]} for r in TEST])):
        os.makedirs(root / subset)
        pq.write_table(pa.Table.from_pylist(rows), root / subset / "test-00000-of-00001.parquet")
    (root / "README.md").write_text(
        "---\nconfigs:\n"
        "- config_name: main\n  data_files:\n  - split: test\n    path: main/test-*\n"
        "- config_name: socratic\n  data_files:\n  - split: test\n    path: socratic/test-*\n---\n"
    )
    return str(root)


def load(path, **kwargs) -> pa.Table:
    return load_problems(ProblemsConfig(source="hf", path=path, **kwargs))


def load_error(path, **kwargs) -> str:
    with pytest.raises(ProblemSetError) as caught:
        load(path, **kwargs)
    message = str(caught.value)
    assert "\n" not in message
    return message


def with_ids(split, rows) -> list[dict]:
    return [{"problem_id": f"{split}-{i}", **row} for i, row in enumerate(rows)]


def test_a_save_to_disk_folder_by_split(tmp_path):
    dataset_dict(train=TRAIN, test=TEST).save_to_disk(str(tmp_path / "gsm8k"))
    table = load(str(tmp_path / "gsm8k"), options={"split": "test"}, columns={"prompt": "question"})
    assert table.column_names == ["problem_id", "prompt", "answer"]
    assert table.to_pylist() == [{"problem_id": f"test-{i}", "prompt": r["question"], "answer": r["answer"]}
                                 for i, r in enumerate(TEST)]


def test_a_save_to_disk_folder_of_one_dataset_needs_no_split(tmp_path):
    import datasets

    datasets.Dataset.from_list(TEST).save_to_disk(str(tmp_path / "one"))
    table = load(str(tmp_path / "one"), columns={"prompt": "question"})
    assert table["problem_id"].to_pylist() == ["train-0", "train-1", "train-2"]  # a Dataset made from rows has no split name


def test_a_parquet_folder_with_split_files(tmp_path):
    path = parquet_folder(tmp_path / "pq", train=TRAIN, test=TEST)
    table = load(path, options={"split": "train"}, columns={"prompt": "question"})
    assert table["problem_id"].to_pylist() == ["train-0", "train-1"]
    assert table["prompt"].to_pylist() == [r["question"] for r in TRAIN]


def test_only_the_named_split_is_prepared(tmp_path):
    # load_dataset prepares every split of a folder (CodeContests' train split is 7 GB): the
    # named split's files are the only ones read.
    path = parquet_folder(tmp_path / "pq", train=TRAIN, test=TEST)
    assert load(path, options={"split": "test"}, columns={"prompt": "question"}).num_rows == len(TEST)
    prepared = sorted(f.name for f in (tmp_path / "hf-cache").rglob("*.arrow"))
    assert prepared and all("-test" in name for name in prepared), prepared


def test_a_json_lines_folder(tmp_path):
    (tmp_path / "js").mkdir()
    for name, rows in (("train", TRAIN), ("test", TEST)):
        (tmp_path / "js" / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    table = load(str(tmp_path / "js"), options={"split": "test"}, columns={"prompt": "question"})
    assert table.to_pylist() == [{"problem_id": f"test-{i}", "prompt": r["question"], "answer": r["answer"]}
                                 for i, r in enumerate(TEST)]


def test_data_files_name_the_splits(tmp_path):
    path = parquet_folder(tmp_path / "pq", train=TRAIN, test=TEST)
    table = load(path, options={"data_files": {"eval": "data/test-*.parquet"}}, columns={"prompt": "question"})
    assert table["problem_id"].to_pylist() == ["eval-0", "eval-1", "eval-2"]  # the only split: no split option needed


def test_a_named_subset(tmp_path):
    path = subsets_folder(tmp_path / "gsm8k")
    table = load(path, options={"name": "socratic", "split": "test"}, columns={"prompt": "question"})
    assert table["answer"].to_pylist() == ["Why? " + r["answer"] for r in TEST]


def test_the_dataset_id_column_and_the_limit(tmp_path):
    """MBPP's schema: an integer task_id, the prompt in `text`; ids become strings."""
    rows = [{"task_id": 11 + i, "text": f"Write a function number {i}.", "test_list": [f"assert f({i}) == {i}"]} for i in range(5)]
    path = parquet_folder(tmp_path / "mbpp", test=rows)
    table = load(path, options={"split": "test"}, columns={"problem_id": "task_id", "prompt": "text"}, limit=2)
    assert table.to_pylist() == [{"problem_id": "11", "prompt": "Write a function number 0.", "test_list": ["assert f(0) == 0"]},
                                 {"problem_id": "12", "prompt": "Write a function number 1.", "test_list": ["assert f(1) == 1"]}]


def test_a_problem_id_column_of_its_own_is_kept(tmp_path):
    path = parquet_folder(tmp_path / "own", test=[{"problem_id": "a", "prompt": "A?"}, {"problem_id": "b", "prompt": "B?"}])
    assert load(path).to_pylist() == [{"problem_id": "a", "prompt": "A?"}, {"problem_id": "b", "prompt": "B?"}]


def test_a_missing_split(tmp_path):
    path = parquet_folder(tmp_path / "pq", train=TRAIN, test=TEST)
    assert load_error(path, options={"split": "validation"}) == (
        f"problems.options.split=validation: {path} has no split 'validation' (splits: train, test)")


def test_several_splits_and_none_named(tmp_path):
    dataset_dict(train=TRAIN, test=TEST).save_to_disk(str(tmp_path / "dd"))
    path = str(tmp_path / "dd")
    assert load_error(path) == f"{path} has splits train, test: pick one with problems.options.split=NAME"


def test_a_missing_column(tmp_path):
    path = parquet_folder(tmp_path / "pq", test=TEST)
    assert load_error(path, columns={"prompt": "query"}) == (
        f"problems.columns.prompt=query: {path} has no column 'query' (columns: question, answer)")


def test_no_prompt_column_and_no_template(tmp_path):
    path = parquet_folder(tmp_path / "pq", test=TEST)
    assert load_error(path) == ("problems.source=hf: no 'prompt' column (columns: problem_id, question, answer); "
                                "map one with problems.columns.prompt=COLUMN or build it with prompt.template")


def test_a_missing_subset(tmp_path):
    path = subsets_folder(tmp_path / "gsm8k")
    assert load_error(path, options={"name": "nope"}) == (
        f"problems.options.name=nope: {path} has no subset 'nope' (subsets: main, socratic)")


def test_several_subsets_and_none_named(tmp_path):
    path = subsets_folder(tmp_path / "gsm8k")
    assert load_error(path) == f"{path} has subsets main, socratic: pick one with problems.options.name=NAME"


def test_unknown_options(tmp_path):
    path = parquet_folder(tmp_path / "pq", test=TEST)
    assert load_error(path, options={"splt": "test"}) == (
        "unknown option problems.options.splt for a dataset: use split, name, revision, data_files")


def test_a_save_to_disk_folder_takes_only_a_split(tmp_path):
    dataset_dict(test=TEST).save_to_disk(str(tmp_path / "dd"))
    path = str(tmp_path / "dd")
    assert load_error(path, options={"name": "main"}) == (
        f"problems.options.name does not apply to problems.path={path}, a folder written by save_to_disk (it takes only split)")


def test_a_hub_dataset_not_in_the_cache_while_offline():
    message = load_error("nobody/no-such-dataset", options={"split": "test"})
    assert message.startswith("problems.path=nobody/no-such-dataset cannot be loaded (")
    assert "nobody/no-such-dataset" in message and "Hub" in message


def test_no_path():
    assert load_error(None) == (
        "problems.source=hf needs problems.path=DATASET (a Hub dataset id or a local dataset folder)")


def test_the_driver_does_not_import_datasets_until_it_loads_one():
    code = "import sys, jobs.cli, jobs.usecases.generate; assert 'datasets' not in sys.modules, 'datasets imported'"
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
