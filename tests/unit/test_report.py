"""jobs.report: five PNGs and an index.html from one or several run roots, through any store."""

import io
import json
import uuid

import fsspec
import matplotlib.image
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from jobs.errors import StoreError
from jobs.report.plots import PLOTS, plot_tokens
from jobs.report.runs import config_labels, load_runs, root_names
from jobs.report.write import write_report
from jobs.store.root import RunStore

from doubles import fake_counts, fake_metrics

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
JOB_YAML = """run:
  root: {root}
  seed: 0
  storage_options: {{}}
model:
  path: /models/{model}
  dtype: float32
sampling:
  'n': 16
  temperature: {temperature}
  max_tokens: 64
problems:
  source: arithmetic
  limit: null
verify:
  verifier: numeric
"""


def make_root(path, temperature: float = 0.2, model: str = "tiny-llama") -> RunStore:
    """A run root as the metrics step leaves it: metrics.json, metrics/problems.parquet, job.yaml."""
    n, c = 16, fake_counts(temperature)
    path.mkdir(parents=True)
    (path / "metrics.json").write_text(json.dumps(fake_metrics(c, n, temperature), indent=2))
    (path / "job.yaml").write_text(JOB_YAML.format(root=path, model=model, temperature=temperature))
    (path / "metrics").mkdir()
    table = pa.table({
        "problem_id": [f"p{i:03d}" for i in range(c.size)], "n": [n] * c.size, "passed": c.tolist(),
        "pass_rate": (c / n).tolist(), "tokens": [n * 40] * c.size, "difficulty": ["(0.2, 0.5]"] * c.size,
    })
    pq.write_table(table, path / "metrics" / "problems.parquet")
    return RunStore(str(path))


def assert_png(data: bytes) -> None:
    assert data[:8] == PNG_MAGIC
    assert len(data) > 15_000  # a rendered plot, not an empty canvas
    image = matplotlib.image.imread(io.BytesIO(data), format="png")
    assert image.ndim == 3 and image.shape[0] > 300 and image.shape[1] > 500


@pytest.fixture(scope="module")
def one_root_report(tmp_path_factory):
    base = tmp_path_factory.mktemp("one")
    store = make_root(base / "run-a")
    out = RunStore(str(base / "run-a" / "report"))
    return store, out, write_report([store], out).index


# One root.


def test_writes_every_png_and_an_index_that_links_them(one_root_report):
    _, out, index = one_root_report
    assert index == out.path("index.html")
    page = out.read_text(index)
    for name, _, _ in PLOTS:
        assert_png(out.fs.cat_file(out.path(name)))
        assert f'<img src="{name}"' in page
    names = ["coverage.png", "selection.png", "difficulty.png", "pass_rates.png", "tokens.png"]
    assert [name for name, _, _ in PLOTS] == names


def test_index_holds_the_summary_numbers(one_root_report):
    store, out, index = one_root_report
    page, metrics = out.read_text(index), json.loads(store.read_text(store.metrics_json))
    lo, hi = metrics["ci"]["pass_at_k"]["4"]
    assert f"{metrics['pass_at_k']['4']:.3f} [{lo:.3f}, {hi:.3f}]" in page
    assert f"{metrics['majority_at_k']['16']:.3f}" in page
    assert f"{metrics['counts']['samples']:,}" in page and "numeric-163ad047a0" in page and "mean_logprob" in page
    assert f"a = {metrics['fit']['a']:.4f}" in page and "Forecast (extrapolation" in page
    assert store.root in page and "<h2>run-a</h2>" in page  # one root: labelled by its basename
    assert "<script" not in page and "stylesheet" not in page


# Several roots.


def test_several_roots_are_labelled_by_their_config_difference(tmp_path):
    stores = [make_root(tmp_path / "a" / "run", 0.2), make_root(tmp_path / "b" / "run", 0.8)]
    assert [run.label for run in load_runs(stores)] == ["sampling.temperature=0.2", "sampling.temperature=0.8"]
    out = RunStore(str(tmp_path / "report"))
    page = out.read_text(write_report(stores, out).index)
    assert "sampling.temperature=0.2" in page and "sampling.temperature=0.8" in page
    for name, _, _ in PLOTS:
        assert_png(out.fs.cat_file(out.path(name)))


def test_config_labels_keep_only_the_keys_that_differ():
    a = JOB_YAML.format(root="runs/a", model="tiny-llama", temperature=0.2)
    b = JOB_YAML.format(root="runs/b", model="other-model", temperature=0.8)
    c = JOB_YAML.format(root="runs/c", model="tiny-llama", temperature=0.8) + "extra:\n  flag: true\n"
    assert config_labels([a, b, c], ["a", "b", "c"]) == [
        "extra.flag=unset, model.path=tiny-llama, sampling.temperature=0.2",
        "extra.flag=unset, model.path=other-model, sampling.temperature=0.8",
        "extra.flag=true, model.path=tiny-llama, sampling.temperature=0.8",
    ]


def test_config_labels_fall_back_to_the_given_names():
    a = JOB_YAML.format(root="runs/a", model="m", temperature=0.2)
    same = JOB_YAML.format(root="runs/b", model="m", temperature=0.2)  # only run.root differs
    assert config_labels([a, same], ["a", "b"]) == ["a", "b"]
    assert config_labels([a, None], ["a", "b"]) == ["a", "b"]
    assert config_labels([a], ["a"]) == ["a"]
    secret = a.replace("storage_options: {}", "storage_options: {key: SECRET}")
    assert config_labels([a, secret], ["a", "b"]) == ["a", "b"]  # never a credential in a legend


def test_config_labels_shorten_long_values():
    long = "x" * 40
    labels = config_labels(["model:\n  path: short\n", f"model:\n  path: {long}\n"], ["a", "b"])
    assert labels == ["model.path=short", f"model.path={'x' * 23}…"]


def test_fallback_names_are_the_shortest_distinct_path_suffixes():
    assert root_names(["/x/runs/a"]) == ["a"]
    assert root_names(["/x/a/run", "/x/b/run/"]) == ["a/run", "b/run"]
    assert root_names(["s3://bucket/p/run", "/local/p/run"]) == ["bucket/p/run", "local/p/run"]
    assert root_names(["/same", "/same"]) == ["/same", "/same"]


def test_given_labels_win_and_must_match_the_roots(tmp_path):
    stores = [make_root(tmp_path / "a", 0.2), make_root(tmp_path / "b", 0.8)]
    assert [run.label for run in load_runs(stores, ["cold", "hot"])] == ["cold", "hot"]
    with pytest.raises(ValueError):
        load_runs(stores, ["only one"])


def test_flops_axis_on_top_when_shared_a_second_panel_when_models_differ(tmp_path):
    runs = load_runs([make_root(tmp_path / "a", 0.2), make_root(tmp_path / "b", 0.8)])
    (tokens,) = plot_tokens(runs).axes
    assert [axis.get_xlabel() for axis in tokens.child_axes] == ["generation FLOPs per problem"]
    runs[1].metrics["cost"]["flops_per_token"] = 9_000_000
    tokens, flops = plot_tokens(runs).axes
    assert flops.get_xlabel() == "generation FLOPs per problem" and not tokens.child_axes
    runs[1].metrics["cost"]["flops_per_token"] = None
    (tokens,) = plot_tokens(runs).axes
    assert not tokens.child_axes


# Errors and missing parts.


def test_a_root_without_metrics_names_the_root_and_the_fix(tmp_path):
    good, bare = make_root(tmp_path / "good"), RunStore(str(tmp_path / "bare"))
    (tmp_path / "bare").mkdir()
    with pytest.raises(StoreError, match=r"bare has no metrics\.json: run troop metrics .*bare first"):
        write_report([good, bare], RunStore(str(tmp_path / "out")))
    assert not (tmp_path / "out").exists()


def test_optional_curves_fit_and_files_may_be_missing(tmp_path):
    store = make_root(tmp_path / "sparse")
    metrics = json.loads(store.read_text(store.metrics_json))
    for name in ("majority_at_k", "weighted_at_k", "cost", "difficulty", "score"):
        metrics.pop(name)
    metrics["best_of_k"] = None
    metrics["fit"] = {"a": None, "b": None, "rmse": None, "points": 1}
    metrics["ci"] = {"pass_at_k": {"1": [0.1, 0.2]}}
    store.write_text(store.metrics_json, json.dumps(metrics))
    store.fs.rm(store.path("metrics", "problems.parquet"))
    store.fs.rm(store.job_yaml)
    out = RunStore(str(tmp_path / "out"))
    page = out.read_text(write_report([store], out).index)
    for name, _, _ in PLOTS:
        assert out.fs.cat_file(out.path(name))[:8] == PNG_MAGIC
    assert "No scaling fit" in page and "majority@k" not in page.split("<h2>Plots</h2>")[0]


def test_writes_to_a_memory_store(tmp_path):
    bucket = f"troop-report-{uuid.uuid4().hex[:8]}"
    out = RunStore(f"memory://{bucket}/report")
    try:
        index = write_report([make_root(tmp_path / "run")], out, labels=["T<0.5 & hot"]).index
        assert index == f"/{bucket}/report/index.html"
        page = out.read_text(index)
        assert '<img src="tokens.png"' in page and "<h2>T&lt;0.5 &amp; hot</h2>" in page
        assert_png(out.fs.cat_file(out.path("coverage.png")))
    finally:
        fsspec.filesystem("memory").rm(f"/{bucket}", recursive=True)
