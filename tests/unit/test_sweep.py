"""jobs.usecases.sweep, jobs.usecases.sweep_run and jobs.report.compare without Ray: the grid, point names, sweep.yaml,
grouping points by engine, failures, and the comparison table."""

import json

import pytest
from omegaconf import OmegaConf

from jobs.usecases import sweep_run
from jobs.cli.main import main
from jobs.report.compare import common_k, comparison_rows, write_sweep_report
from doubles import fake_counts, fake_metrics
from jobs.cluster.pools import Cluster
from jobs.errors import ConfigError, StoreError, TroopError
from jobs.store.root import RunStore
from jobs.store.sweep_root import read_sweep_points
from jobs.usecases.sweep import is_sweep, load_sweep, point_names, split_overrides, split_values, write_sweep_yaml


@pytest.fixture
def base(tmp_path, tiny_model):
    path = tmp_path / "base.yaml"
    path.write_text(
        f"run: {{root: {tmp_path / 'sweep'}}}\n"
        f"model: {{path: {tiny_model}, dtype: float32, max_model_len: 256}}\n"
        "sampling: {n: 4, max_tokens: 8}\n"
        "problems: {source: arithmetic, options: {num_problems: 6}}\n"
    )
    return str(path)


@pytest.mark.parametrize("text, parts", [
    ("0.6,1.0", ["0.6", "1.0"]),
    ("[a,b]", ["[a,b]"]),
    ("[a,b],[c]", ["[a,b]", "[c]"]),
    ("'x,y',z", ["'x,y'", "z"]),
    ("{a: 1, b: 2}", ["{a: 1, b: 2}"]),
    ("plain", ["plain"]),
])
def test_split_values_at_top_level_commas(text, parts):
    assert split_values(text) == parts


def test_split_overrides():
    axes, plain = split_overrides(["sampling.n=4,8", "sampling.stop=[a,b]", "run.seed=3", "sampling.temperature=0.6,0.8,1.0"])
    assert axes == {"sampling.n": ["4", "8"], "sampling.temperature": ["0.6", "0.8", "1.0"]}
    assert plain == ["sampling.stop=[a,b]", "run.seed=3"]
    with pytest.raises(ConfigError, match="given twice"):
        split_overrides(["sampling.n=1,2", "sampling.n=3,4"])
    with pytest.raises(ConfigError, match="empty value"):
        split_overrides(["sampling.n=1,"])


def test_a_two_by_two_grid(base, tmp_path):
    sweep = load_sweep(base, ["sampling.temperature=0.6,1.0", "sampling.n=4,8", "run.seed=5"])
    assert [p.name for p in sweep.points] == [
        "temperature=0.6,n=4", "temperature=0.6,n=8", "temperature=1.0,n=4", "temperature=1.0,n=8"]
    assert sweep.root == str(tmp_path / "sweep")
    assert sweep.axes == {"sampling.temperature": [0.6, 1.0], "sampling.n": [4, 8]}
    last = sweep.points[-1].config
    assert (last.sampling.temperature, last.sampling.n, last.run.seed) == (1.0, 8, 5)
    assert last.run.root == f"{tmp_path / 'sweep'}/temperature=1.0,n=8"
    assert {p.config.sampling.max_tokens for p in sweep.points} == {8}  # the YAML applies to every point


def test_the_yaml_sweep_section_keeps_types_and_the_command_line_replaces_an_axis(base):
    with open(base, "a") as f:
        f.write("sweep:\n  sampling.temperature: [0.5, 0.7]\n  sampling.stop: [['a', 'b'], ['c']]\n")
    assert is_sweep(base, [])
    sweep = load_sweep(base, ["sampling.temperature=0.9,1.1"])
    assert [p.config.sampling.temperature for p in sweep.points] == [0.9, 0.9, 1.1, 1.1]
    assert [p.config.sampling.stop for p in sweep.points] == [["a", "b"], ["c"], ["a", "b"], ["c"]]
    assert [p.name for p in sweep.points][:2] == ["temperature=0.9,stop=[a,b]", "temperature=0.9,stop=[c]"]


def test_names_show_values_as_written(base):
    sweep = load_sweep(base, ["sampling.temperature=0.60,1", "sampling.top_p=0.9,1.0"])
    assert [p.name for p in sweep.points] == ["temperature=0.60,top_p=0.9", "temperature=0.60,top_p=1.0",
                                              "temperature=1,top_p=0.9", "temperature=1,top_p=1.0"]
    assert [p.config.sampling.temperature for p in sweep.points] == [0.6, 0.6, 1.0, 1.0]


def test_is_sweep(base):
    assert not is_sweep(base, ["sampling.stop=[a,b]"])
    assert is_sweep(base, ["sampling.n=1,2"])


def test_names_use_a_path_basename_unless_two_points_would_collide():
    assert point_names({"model.path": ["/m/a", "/m/b"]}, [("/m/a",), ("/m/b",)]) == ["path=a", "path=b"]
    assert point_names({"model.path": ["/x/m", "/y/m"]}, [("/x/m",), ("/y/m",)]) == ["path=_x_m", "path=_y_m"]
    # Two keys ending alike are told apart by more of their key.
    names = point_names({"model.path": ["/m/a"], "problems.path": ["p.jsonl"]}, [("/m/a", "p.jsonl")])
    assert names == ["model.path=a,problems.path=p.jsonl"]


@pytest.mark.parametrize("overrides, fragment", [
    (["sampling.temprature=0.6,1.0"], "did you mean 'sampling.temperature'"),
    (["sampling.temperature=0.6,abc"], "config key 'sampling.temperature' in sweep axis 'sampling.temperature=abc'"),
    (["run.root=a,b"], "run.root cannot be a sweep axis"),
    (["run.seed=1"], "at least one axis"),
    (["sampling.temperature=0,1", "sampling.n=4"], "gives 4 identical greedy samples"),
])
def test_bad_sweeps_are_one_line_errors(base, overrides, fragment):
    with pytest.raises(ConfigError) as err:
        load_sweep(base, overrides)
    assert fragment in str(err.value) and "\n" not in str(err.value)


def test_troop_run_with_several_values_points_to_troop_sweep(base, capsys):
    assert main(["run", base, "sampling.n=4,8"]) == 2
    assert "run a grid with troop sweep" in capsys.readouterr().err


def test_sweep_yaml_keeps_earlier_points(base):
    first = load_sweep(base, ["sampling.temperature=0.6,1.0"])
    write_sweep_yaml(first)
    write_sweep_yaml(load_sweep(base, ["sampling.temperature=1.0,1.2"]))
    assert [p["name"] for p in read_sweep_points(first.store)] == ["temperature=0.6", "temperature=1.0", "temperature=1.2"]
    listing = OmegaConf.load(first.store.sweep_yaml)
    assert listing.axes == {"sampling.temperature": [1.0, 1.2]} and listing.config == base


class FakePool:
    started = []

    def __init__(self, config):
        self.spec = config.model.path
        self.num_workers = 1
        self.closed = False
        FakePool.started.append(self)

    def shutdown(self):
        self.closed = True


FAKE_CLUSTER = Cluster(connect=lambda *args: None, generation=FakePool)


@pytest.fixture
def fake_pools():
    FakePool.started = []
    return FakePool.started


def test_points_sharing_an_engine_share_one_pool(base, tmp_path, tiny_model, fake_pools):
    import shutil

    other = str(tmp_path / "other-model")
    shutil.copytree(tiny_model, other)
    sweep = load_sweep(base, [f"model.path={tiny_model},{other}", "sampling.temperature=0.6,1.0"])
    calls = []
    summary = sweep_run.run_sweep(sweep, lambda config, pool, plan: calls.append((config.run.root, pool)), FAKE_CLUSTER)
    assert len(fake_pools) == 2 and all(p.closed for p in fake_pools)
    assert (summary.pools_started, summary.engines_started) == (2, 2)
    by_pool = [[root.rsplit("/", 1)[-1] for root, pool in calls if pool is p] for p in fake_pools]
    assert by_pool == [["path=tiny-llama,temperature=0.6", "path=tiny-llama,temperature=1.0"],
                       ["path=other-model,temperature=0.6", "path=other-model,temperature=1.0"]]
    assert summary.ran == [name for names in by_pool for name in names]
    assert RunStore(sweep.root).exists(RunStore(sweep.root).sweep_yaml)


def test_a_failing_point_does_not_stop_the_sweep(base, fake_pools):
    sweep = load_sweep(base, ["sampling.temperature=0.6,0.8,1.0"])

    def run_point(config, pool, plan):
        if config.sampling.temperature == 0.8:
            raise TroopError("unit 0000 failed every attempt")

    summary = sweep_run.run_sweep(sweep, run_point, FAKE_CLUSTER)
    assert summary.ran == ["temperature=0.6", "temperature=1.0"]
    assert summary.failed == {"temperature=0.8": "unit 0000 failed every attempt"}
    assert len(fake_pools) == 1


def test_a_bad_point_fails_before_any_pool_starts(base, tmp_path, fake_pools):
    sweep = load_sweep(base, [f"model.path={tmp_path / 'missing'},{tmp_path / 'missing2'}"])
    with pytest.raises(TroopError, match=r"sweep point path=missing: model.path=.* does not exist"):
        sweep_run.run_sweep(sweep, lambda config, pool, plan: None, FAKE_CLUSTER)
    assert fake_pools == [] and not (tmp_path / "sweep").exists()


def _metrics(pass_at_k: dict, tokens_per_solved, samples=10) -> dict:
    return {"pass_at_k": {str(k): v for k, v in pass_at_k.items()},
            "cost": {"tokens_per_solved_problem": tokens_per_solved}, "counts": {"samples": samples}}


def test_comparison_rows_at_the_largest_common_k():
    metrics = [_metrics({1: 0.2, 2: 0.3, 4: 0.4}, 50.0), _metrics({1: 0.25, 2: 0.35, 4: 0.5, 8: 0.6}, None)]
    assert common_k(metrics) == 4
    k, rows = comparison_rows(["a", "b"], metrics)
    assert k == 4
    assert [(r.name, r.pass_at_1, r.pass_at_k, r.tokens_per_solved_problem) for r in rows] == [
        ("a", 0.2, 0.4, 50.0), ("b", 0.25, 0.5, None)]


def test_a_sweep_report_of_unmeasured_points_says_so(base):
    sweep = load_sweep(base, ["sampling.temperature=0.6,1.0"])
    write_sweep_yaml(sweep)
    with pytest.raises(StoreError, match="no point of the sweep"):
        write_sweep_report(sweep.store, RunStore(sweep.store.report))
    assert main(["report", sweep.root, sweep.points[0].config.run.root]) == 2


def test_troop_report_of_a_sweep_root(base, capsys):
    sweep = load_sweep(base, ["sampling.temperature=0.6,1.0"])
    write_sweep_yaml(sweep)
    point = sweep.points[1]
    store = RunStore(point.config.run.root)
    store.write_text(store.metrics_json, json.dumps(fake_metrics(fake_counts(1.0), 16, 1.0)))
    assert main(["report", sweep.root]) == 0
    printed = capsys.readouterr().out
    assert "temperature=1.0" in printed and "not measured yet: temperature=0.6" in printed
    page = (sweep.store.path("report", "index.html"))
    text = open(page).read()
    assert "<h2>Sweep points</h2>" in text and "temperature=1.0" in text and "Not measured yet" in text
