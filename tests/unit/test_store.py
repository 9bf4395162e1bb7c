"""jobs.store.root: every path from one root URL, and writes that appear only when complete."""

import os
import pickle
import subprocess
import sys
import uuid

import fsspec
import pyarrow as pa
import pytest

from jobs.errors import StoreError
from jobs.store.root import TMP_PREFIX, RunStore
from workers.samples import SAMPLES_SCHEMA

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture
def memory_root():
    """A fresh root in fsspec's process-wide memory filesystem, removed afterwards."""
    bucket = f"troop-test-{uuid.uuid4().hex[:8]}"
    yield f"memory://{bucket}/run"
    fs = fsspec.filesystem("memory")
    if fs.exists(f"/{bucket}"):
        fs.rm(f"/{bucket}", recursive=True)


@pytest.fixture(params=["local", "memory"])
def store(request, tmp_path, memory_root) -> RunStore:
    return RunStore(str(tmp_path / "run") if request.param == "local" else memory_root)


def samples(n: int = 3) -> pa.Table:
    """Rows in the shape a worker builds them: python ints (int64), an extra column, columns shuffled."""
    return pa.table(
        {
            "seed": [100 + i for i in range(n)],
            "problem_id": [f"p{i % 2}" for i in range(n)],
            "sample_idx": list(range(n)),
            "text": [f"text {i}" for i in range(n)],
            "num_tokens": [i + 1 for i in range(n)],
            "cumulative_logprob": [None] + [-1.5 * i for i in range(1, n)],
            "finish_reason": ["stop"] * n,
            "not_in_the_schema": [True] * n,
        }
    )


def listing(store: RunStore, folder: str) -> list[str]:
    path = store.path(folder)
    return sorted(os.path.basename(p.rstrip("/")) for p in store.fs.ls(path, detail=False)) if store.fs.exists(path) else []


# Paths.


def test_local_paths_derive_from_the_root(tmp_path):
    store = RunStore(f"{tmp_path}/run/")
    root = f"{tmp_path}/run"
    assert store.path() == root
    assert store.job_yaml == f"{root}/job.yaml"
    assert store.problems == f"{root}/problems.parquet"
    assert store.metrics_json == f"{root}/metrics.json"
    assert store.sample_unit("u7") == f"{root}/samples/unit-u7.parquet"
    assert store.verdict_unit("numeric-abc", "u7") == f"{root}/verdicts/numeric-abc/unit-u7.parquet"
    assert store.url(store.problems) == f"{root}/problems.parquet"


def test_file_url_root_gives_the_same_paths_as_a_plain_path(tmp_path):
    assert RunStore(f"file://{tmp_path}/run").sample_unit("u") == RunStore(f"{tmp_path}/run").sample_unit("u")


def test_memory_url_paths_and_urls():
    store = RunStore("memory://bucket/prefix/run")
    assert store.problems == "/bucket/prefix/run/problems.parquet"
    assert store.sample_unit("u1") == "/bucket/prefix/run/samples/unit-u1.parquet"
    assert store.verdict_unit("k", "u1") == "/bucket/prefix/run/verdicts/k/unit-u1.parquet"
    assert store.url(store.problems) == "memory:///bucket/prefix/run/problems.parquet"


def test_store_is_picklable_after_use(tmp_path):
    store = RunStore(str(tmp_path / "run"))
    store.write_text(store.job_yaml, "a: 1\n")
    copy = pickle.loads(pickle.dumps(store))
    assert copy == store and copy.read_text(copy.job_yaml) == "a: 1\n"


# Writing and reading.


def test_table_round_trip_cast_to_the_schema(store):
    path = store.sample_unit("u1")
    store.write_table(path, samples(), SAMPLES_SCHEMA)
    back = store.read_table(path)
    assert back.schema.equals(SAMPLES_SCHEMA)
    assert back.equals(samples().select(SAMPLES_SCHEMA.names).cast(SAMPLES_SCHEMA))
    assert back["sample_idx"].type == pa.int32() and back["cumulative_logprob"].to_pylist()[0] is None


def test_table_without_schema_is_written_as_it_is(store):
    table = pa.table({"a": pa.array([1, 2], pa.int8()), "b": ["x", None]})
    store.write_table(store.problems, table)
    assert store.read_table(store.problems).equals(table)


def test_read_selected_columns(store):
    store.write_table(store.sample_unit("u1"), samples(), SAMPLES_SCHEMA)
    back = store.read_table(store.sample_unit("u1"), columns=["problem_id", "seed"])
    assert back.column_names == ["problem_id", "seed"] and back["seed"].to_pylist() == [100, 101, 102]


def test_reading_a_column_the_file_lacks_is_an_error_naming_it(store):
    store.write_table(store.sample_unit("u1"), samples(), SAMPLES_SCHEMA)
    with pytest.raises(pa.ArrowInvalid, match="unit-u1.parquet has no column 'score'"):
        store.read_table(store.sample_unit("u1"), columns=["problem_id", "score"])


@pytest.mark.slow
def test_reading_a_unit_loads_neither_pyarrow_dataset_nor_pandas(tmp_path):
    """Their imports cost a process about 0.3 s of CPU at its first read (the driver's, before
    Ray starts). Writing Parquet loads pandas (pyarrow's writer does), so this process writes."""
    store = RunStore(str(tmp_path / "run"))
    store.write_table(store.sample_unit("u1"), samples(), SAMPLES_SCHEMA)
    code = ("import sys; from jobs.store.root import RunStore; store = RunStore(sys.argv[1]); "
            "assert store.read_table(store.sample_unit('u1'), ['seed'])['seed'].to_pylist() == [100, 101, 102]; "
            "print(sorted({'pyarrow.dataset', 'pandas'} & set(sys.modules)))")
    done = subprocess.run([sys.executable, "-c", code, store.root], capture_output=True, text=True, cwd=REPO)
    assert done.stdout.strip() == "[]", done.stderr


def test_text_round_trip_and_exists(store):
    assert not store.exists(store.job_yaml)
    store.write_text(store.job_yaml, "run:\n  seed: 1  # é\n")
    assert store.exists(store.job_yaml)
    assert store.read_text(store.job_yaml) == "run:\n  seed: 1  # é\n"


def test_rewrite_replaces_the_file(store):
    store.write_text(store.metrics_json, "old")
    store.write_text(store.metrics_json, "new")
    assert store.read_text(store.metrics_json) == "new"
    assert listing(store, "") == ["metrics.json"]


# Atomic writes: a failed write leaves neither the file nor a temporary.


def test_failure_to_rename_leaves_no_file_and_no_temporary(tmp_path, monkeypatch):
    store = RunStore(str(tmp_path / "run"))

    def broken_mv(*args, **kwargs):
        raise OSError("disk gone")

    monkeypatch.setattr(store.fs, "mv", broken_mv)
    with pytest.raises(OSError, match="disk gone"):
        store.write_table(store.sample_unit("u1"), samples(), SAMPLES_SCHEMA)
    assert not store.exists(store.sample_unit("u1"))
    assert listing(store, "samples") == []


def test_failure_in_the_middle_of_writing_leaves_no_file_and_no_temporary(tmp_path, monkeypatch):
    store = RunStore(str(tmp_path / "run"))
    real_pipe = store.fs.pipe_file

    def half_then_fail(path, data, **kwargs):
        real_pipe(path, data[: len(data) // 2])  # some bytes reached storage, then the writer died
        raise OSError("connection reset")

    monkeypatch.setattr(store.fs, "pipe_file", half_then_fail)
    with pytest.raises(OSError, match="connection reset"):
        store.write_table(store.sample_unit("u1"), samples(), SAMPLES_SCHEMA)
    monkeypatch.undo()
    assert not store.exists(store.sample_unit("u1"))
    assert [name for name in listing(store, "samples") if name.startswith(TMP_PREFIX)] == []
    assert store.unit_ids("samples") == set()


def test_failed_upload_leaves_no_object(memory_root, monkeypatch):
    """Elsewhere than a local disk the file is one upload: a failed upload leaves nothing."""
    store = RunStore(memory_root)

    def broken_pipe(*args, **kwargs):
        raise OSError("upload failed")

    monkeypatch.setattr(store.fs, "pipe_file", broken_pipe)
    with pytest.raises(OSError, match="upload failed"):
        store.write_table(store.sample_unit("u1"), samples(), SAMPLES_SCHEMA)
    monkeypatch.undo()
    assert listing(store, "samples") == [] and store.unit_ids("samples") == set()


def test_local_write_never_shows_a_partial_file_under_the_final_name(tmp_path, monkeypatch):
    """The bytes go to a temporary in the same folder; the final name appears by rename."""
    store = RunStore(str(tmp_path / "run"))
    written = []
    real_pipe = store.fs.pipe_file
    monkeypatch.setattr(store.fs, "pipe_file", lambda path, data, **kw: (written.append(path), real_pipe(path, data, **kw)))
    store.write_text(store.sample_unit("u1"), "x")
    assert len(written) == 1 and os.path.basename(written[0]).startswith(TMP_PREFIX)
    assert os.path.dirname(written[0]) == store.path("samples")
    assert listing(store, "samples") == ["unit-u1.parquet"]


@pytest.mark.parametrize(
    "bad",
    [pa.table({"problem_id": ["a"], "sample_idx": ["not a number"]}),  # lacks schema columns
     samples().set_column(2, "sample_idx", pa.array(["x", "y", "z"]))],  # cannot be cast
)
def test_table_that_does_not_fit_the_schema_writes_nothing(store, bad):
    with pytest.raises((KeyError, pa.ArrowInvalid)):
        store.write_table(store.sample_unit("u1"), bad, SAMPLES_SCHEMA)
    assert not store.exists(store.sample_unit("u1"))
    assert listing(store, "samples") == []


# Listing units and cleaning up.


def test_unit_ids_lists_complete_unit_files_only(store):
    for uid in ("p000000-000002-s000000-000004", "b"):
        store.write_text(store.sample_unit(uid), "x")
    store.fs.pipe_file(store.path("samples", f"{TMP_PREFIX}0123abcd-unit-c.parquet"), b"partial")
    store.fs.pipe_file(store.path("samples", "notes.txt"), b"")
    store.fs.pipe_file(store.path("samples", "unit-d.json"), b"")
    store.fs.pipe_file(store.path("samples", "other.parquet"), b"")
    assert store.unit_ids("samples") == {"p000000-000002-s000000-000004", "b"}


def test_unit_ids_of_nested_and_missing_folders(store):
    store.write_text(store.verdict_unit("numeric-abc", "u1"), "x")
    assert store.unit_ids("verdicts/numeric-abc") == {"u1"}
    assert store.unit_ids("verdicts/other") == set()
    assert store.unit_ids("samples") == set()


def test_remove_stale_temporaries_removes_only_temporaries(store):
    store.write_text(store.sample_unit("a"), "done")
    for i in range(2):
        store.fs.pipe_file(store.path("samples", f"{TMP_PREFIX}{i}-unit-x.parquet"), b"partial")
    assert store.remove_stale_temporaries("samples") == 2
    assert listing(store, "samples") == ["unit-a.parquet"]
    assert store.remove_stale_temporaries("samples") == 0


def test_remove_stale_temporaries_of_a_missing_folder(store):
    assert store.remove_stale_temporaries("samples") == 0


# check_writable.


def test_root_under_a_regular_file_is_not_writable(tmp_path):
    (tmp_path / "a-file").write_text("")
    root = str(tmp_path / "a-file" / "run")
    with pytest.raises(StoreError) as caught:
        RunStore(root).check_writable()
    assert f"run.root={root} is not writable" in str(caught.value)
    assert "\n" not in str(caught.value)


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root ignores file permissions")
def test_read_only_root_is_not_writable(tmp_path):
    (tmp_path / "ro").mkdir()
    os.chmod(tmp_path / "ro", 0o500)
    try:
        with pytest.raises(StoreError):
            RunStore(str(tmp_path / "ro" / "run")).check_writable()
    finally:
        os.chmod(tmp_path / "ro", 0o700)


@pytest.mark.parametrize("relative", ["run", "new/nested/run"])
def test_fresh_writable_root_leaves_no_folder_behind(tmp_path, relative):
    RunStore(str(tmp_path / relative)).check_writable()
    assert os.listdir(tmp_path) == []


def test_existing_root_keeps_its_files_and_gets_no_probe(tmp_path):
    store = RunStore(str(tmp_path))
    store.write_text(store.job_yaml, "x")
    store.check_writable()
    assert os.listdir(tmp_path) == ["job.yaml"]


def test_memory_root_is_writable_and_keeps_no_probe(memory_root):
    store = RunStore(memory_root)
    store.check_writable()
    assert [p for p in store.fs.find(store.path()) if TMP_PREFIX in p] == []
