"""The run store and the root commands on `s3://` through s3fs, against a moto S3 server on
loopback (no Ray, no vLLM): uploads that appear only whole, listings that see other
processes' units, endpoint and credentials from the environment or `run.storage_options`, and
a missing or unreachable bucket refused before anything is written."""

import json
import os
import pickle
import socket

import pyarrow as pa
import pytest
import s3fs

from doubles import inline_cluster
from jobs.cli.main import main
from jobs.errors import StoreError
from jobs.problems.units import unit_id
from jobs.store.root import RunStore
from workers.samples import SAMPLES_SCHEMA

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

PROBLEMS = pa.table({"problem_id": ["a", "b", "c"], "prompt": ["2+2?", "3+4?", "0+1?"], "answer": ["4", "7", "1"]})
# problem -> completions; with verify.verifier=exact: a pass fail pass pass (c=3), b pass
# no_answer fail fail (c=1), c fail fail fail no_answer (c=0)
TEXTS = {"a": ["4", "5", "Answer: 4", "4"], "b": ["7", "", "8", "9"], "c": ["2", "3", "2", ""]}
UNITS = {unit_id(0, 3, 0, 2): (0, 2), unit_id(0, 3, 2, 4): (2, 4)}  # troop's names: all problems x 2 samples


def samples_table(start: int, end: int) -> pa.Table:
    rows = [(p, i, TEXTS[p][i]) for p in TEXTS for i in range(start, end)]
    return pa.table({
        "problem_id": [r[0] for r in rows], "sample_idx": [r[1] for r in rows], "text": [r[2] for r in rows],
        "num_tokens": [2] * len(rows), "cumulative_logprob": [-1.0 - r[1] for r in rows],
        "finish_reason": ["stop"] * len(rows), "seed": [100 + r[1] for r in rows],
    }, schema=SAMPLES_SCHEMA)


def write_foreign_pool(store: RunStore) -> None:
    """problems.parquet and two sample units, as `troop verify` needs them; no job.yaml."""
    store.write_table(store.problems, PROBLEMS)
    for uid, (start, end) in UNITS.items():
        store.write_table(store.sample_unit(uid), samples_table(start, end), SAMPLES_SCHEMA)


def raw_fs(endpoint_url: str, **options) -> s3fs.S3FileSystem:
    """Another client with its own caches: what an actor or an earlier run writes with."""
    return s3fs.S3FileSystem(endpoint_url=endpoint_url, skip_instance_cache=True, **options)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def store(s3_bucket, s3_endpoint) -> RunStore:
    return RunStore(f"s3://{s3_bucket}/run", {"endpoint_url": s3_endpoint})


# Writing and reading.


def test_table_round_trip_cast_to_the_schema(store):
    store.write_table(store.sample_unit("u1"), samples_table(0, 4), SAMPLES_SCHEMA)
    back = store.read_table(store.sample_unit("u1"))
    assert back.schema.equals(SAMPLES_SCHEMA) and back.equals(samples_table(0, 4))
    assert store.read_table(store.sample_unit("u1"), columns=["text"])["text"].to_pylist()[:3] == ["4", "5", "Answer: 4"]
    store.write_text(store.job_yaml, "run:\n  seed: 1  # é\n")
    assert store.read_text(store.job_yaml) == "run:\n  seed: 1  # é\n"
    assert store.url(store.problems) == f"s3://{store.root[len('s3://'):]}/problems.parquet"


def test_a_unit_is_one_put_of_its_final_key(store, monkeypatch):
    """No temporary object and no copy: the object appears when its one upload completes."""
    calls = []
    real_call = store.fs._call_s3

    async def recording(method, *args, **kwargs):
        calls.append((method, kwargs.get("Key")))
        return await real_call(method, *args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(store.fs, "_call_s3", recording)
        store.write_table(store.sample_unit("u1"), samples_table(0, 2), SAMPLES_SCHEMA)
    key = store.sample_unit("u1").split("/", 1)[1]
    assert [c for c in calls if c[0] not in ("head_object", "list_objects_v2", "get_object")] == [("put_object", key)]
    assert store.read_table(store.sample_unit("u1")).num_rows == 6
    assert store.fs.find(store.path()) == [store.sample_unit("u1")]


def test_an_unfinished_multipart_upload_is_no_unit(store, s3_endpoint):
    """A writer killed in the middle of a large (multipart) upload leaves nothing visible."""
    client = raw_fs(s3_endpoint)
    bucket, key = store.sample_unit("u1").split("/", 1)
    upload = client.call_s3("create_multipart_upload", Bucket=bucket, Key=key)
    client.call_s3("upload_part", Bucket=bucket, Key=key, PartNumber=1, UploadId=upload["UploadId"], Body=b"x" * 1024)
    assert not store.exists(store.sample_unit("u1"))
    assert store.unit_ids("samples") == set()


def test_a_failed_upload_leaves_no_object(store, monkeypatch):
    def broken(*args, **kwargs):
        raise OSError("upload failed")

    with monkeypatch.context() as patch, pytest.raises(OSError, match="upload failed"):
        patch.setattr(store.fs, "pipe_file", broken)
        store.write_table(store.sample_unit("u1"), samples_table(0, 2), SAMPLES_SCHEMA)
    assert store.unit_ids("samples") == set() and not store.exists(store.sample_unit("u1"))


def test_listings_see_units_that_another_process_wrote(store, s3_endpoint):
    """s3fs keeps a listing once a folder is listed; the units written after it must still count."""
    store.write_text(store.sample_unit("a"), "x")
    store.write_text(store.verdict_unit("k", "a"), "x")
    store.fs.ls(store.path("samples"))  # anything in the process that lists a folder fills the cache
    store.fs.ls(store.path("verdicts", "k"))
    assert store.unit_ids("samples") == {"a"}
    other = raw_fs(s3_endpoint)
    other.pipe_file(store.sample_unit("b"), b"y")
    other.pipe_file(store.verdict_unit("k", "b"), b"y")
    assert store.unit_ids("samples") == {"a", "b"} and store.unit_ids("verdicts/k") == {"a", "b"}
    assert store.exists(store.sample_unit("b"))


def test_unit_ids_ignore_other_objects(store):
    store.write_text(store.sample_unit(unit_id(0, 3, 0, 2)), "x")
    store.fs.pipe_file(store.path("samples", "notes.txt"), b"")
    store.fs.pipe_file(store.path("samples", "unit-d.json"), b"")
    assert store.unit_ids("samples") == {unit_id(0, 3, 0, 2)}
    assert store.unit_ids("verdicts/none") == set()


def test_store_is_picklable_after_use(store):
    store.write_text(store.job_yaml, "a: 1\n")
    copy = pickle.loads(pickle.dumps(store))
    assert copy == store and copy.read_text(copy.job_yaml) == "a: 1\n"


# Where the endpoint and credentials come from.


def test_endpoint_and_credentials_from_the_environment(s3_bucket, s3_endpoint, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_endpoint)  # read by botocore
    store = RunStore(f"s3://{s3_bucket}/run")
    store.check_writable()
    store.write_text(store.job_yaml, "x")
    assert raw_fs(s3_endpoint).cat_file(store.job_yaml) == b"x"


def test_endpoint_and_credentials_from_storage_options(s3_bucket, s3_endpoint, monkeypatch):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name)
    options = {"endpoint_url": s3_endpoint, "key": "testing", "secret": "testing"}
    store = RunStore(f"s3://{s3_bucket}/run", options)
    store.check_writable()
    store.write_text(store.job_yaml, "x")
    assert raw_fs(**options).cat_file(store.job_yaml) == b"x"
    with pytest.raises(StoreError, match="NoCredentialsError"):  # the same without them: not anonymous
        RunStore(f"s3://{s3_bucket}/run", {"endpoint_url": s3_endpoint}).check_writable()


# A bucket that cannot be written.


def test_missing_bucket_is_one_line_naming_the_root_and_the_fix_and_creates_nothing(s3_bucket, s3_endpoint):
    buckets = raw_fs(s3_endpoint).ls("")
    root = f"s3://{s3_bucket}-missing/run"
    with pytest.raises(StoreError) as caught:
        RunStore(root, {"endpoint_url": s3_endpoint}).check_writable()
    message = str(caught.value)
    assert message.startswith(f"run.root={root} is not writable") and "\n" not in message
    assert "does not exist" in message and "bucket exists" in message and "AWS_ENDPOINT_URL" in message
    assert raw_fs(s3_endpoint).ls("", refresh=True) == buckets  # no bucket made on the way


def test_writable_bucket_keeps_no_probe(store):
    store.check_writable()
    assert store.fs.find(store.root.split("/")[2]) == []


@pytest.fixture
def config_file(tmp_path) -> str:
    path = tmp_path / "job.yaml"
    path.write_text(
        f"model:\n  path: {REPO}/demo/model\n"
        "problems:\n  source: arithmetic\n  options: {num_problems: 3}\nverify:\n  verifier: numeric\n"
    )
    return str(path)


def one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("troop: error: "), err
    return lines[0]


@pytest.mark.parametrize("command", ["generate", "run"])
def test_generate_and_run_refuse_a_missing_bucket(command, config_file, s3_bucket, s3_endpoint, monkeypatch, capsys):
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_endpoint)
    buckets = raw_fs(s3_endpoint).ls("")
    root = f"s3://{s3_bucket}-missing/run"
    assert main([command, config_file, f"run.root={root}"]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert f"run.root={root} is not writable" in line and "bucket does not exist" in line
    assert raw_fs(s3_endpoint).ls("", refresh=True) == buckets
    assert raw_fs(s3_endpoint).find(s3_bucket) == []


@pytest.mark.parametrize("command", ["generate", "run"])
def test_generate_and_run_refuse_an_unreachable_endpoint(command, config_file, s3_bucket, s3_endpoint, monkeypatch, capsys):
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")  # botocore's retries; each would only fail again
    endpoint = f"http://127.0.0.1:{closed_port()}"
    root = f"s3://{s3_bucket}/run"
    assert main([command, config_file, f"run.root={root}", f"run.storage_options.endpoint_url={endpoint}"]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert f"run.root={root} is not writable" in line and "Could not connect" in line and endpoint in line
    assert raw_fs(s3_endpoint).find(s3_bucket) == []


# The root commands on a pool in the bucket.


def test_verify_metrics_report_on_an_s3_root(store, s3_endpoint, monkeypatch, capsys):
    """Endpoint from the environment, as a user of AWS or of a compatible store sets it."""
    write_foreign_pool(store)
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_endpoint)
    root = store.root
    assert main(["verify", root, "verify.verifier=exact"], inline_cluster()) == 0
    out = capsys.readouterr().out
    assert "verified 2 units with exact-" in out
    assert "12 samples (12 distinct), 4 passed (fail 6, no_answer 2, pass 4)" in out
    [key] = [p.rsplit("/", 1)[-1] for p in raw_fs(s3_endpoint).ls(store.path("verdicts"))]
    assert store.unit_ids(f"verdicts/{key}") == set(UNITS)
    assert main(["verify", root, "verify.verifier=exact"], inline_cluster()) == 0
    assert "verified 0 units" in capsys.readouterr().out

    assert main(["metrics", root, "verify.verifier=exact"]) == 0
    assert f"metrics: {root}/metrics.json" in capsys.readouterr().out
    metrics = json.loads(store.read_text(store.metrics_json))
    assert metrics["counts"] == {"problems": 3, "samples": 12, "passed": 4, "tokens": 24, "problems_solved": 2,
                                 "problems_refused": 0}
    assert metrics["pass_at_k"] == pytest.approx({"1": 1 / 3, "2": 1 / 2, "4": 2 / 3}, abs=1e-12)
    assert store.exists(store.path("metrics", "problems.parquet"))

    assert main(["report", root, "--out", f"{root}/plots"]) == 0
    assert f"report: {root}/plots/index.html" in capsys.readouterr().out
    assert store.exists(store.path("plots", "index.html")) and store.exists(store.path("plots", "coverage.png"))


def test_report_goes_to_root_slash_report_on_s3(store, s3_endpoint, monkeypatch, tmp_path, capsys):
    write_foreign_pool(store)
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_endpoint)
    monkeypatch.chdir(tmp_path)  # a report written locally by mistake would land here, not in the repo
    assert main(["verify", store.root, "verify.verifier=exact"], inline_cluster()) == 0
    assert main(["metrics", store.root, "verify.verifier=exact"]) == 0
    assert main(["report", store.root]) == 0
    assert f"report: {store.root}/report/index.html" in capsys.readouterr().out
    assert store.exists(store.path("report", "index.html"))


def test_verify_and_metrics_with_the_endpoint_in_storage_options(store, s3_endpoint, capsys):
    write_foreign_pool(store)
    option = f"run.storage_options.endpoint_url={s3_endpoint}"
    assert main(["verify", store.root, "verify.verifier=exact", option], inline_cluster()) == 0
    assert main(["metrics", store.root, "verify.verifier=exact", option]) == 0
    assert json.loads(store.read_text(store.metrics_json))["counts"]["passed"] == 4
