"""A run on a local Ray with a real vLLM engine on the CPU: rows, reproducibility, resume."""

import glob
import os

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from jobs.usecases.generate import generate
from jobs.problems.units import sample_seed
from jobs.store.root import RunStore
from workers.samples import SAMPLES_SCHEMA


def read_pool(config) -> pa.Table:
    store = RunStore(config.run.root)
    tables = [store.read_table(store.sample_unit(u)) for u in sorted(store.unit_ids("samples"))]
    return pa.concat_tables(tables).sort_by([("problem_id", "ascending"), ("sample_idx", "ascending")])


def test_run_gives_p_times_n_rows_with_contract_columns(pool, make_config):
    config = make_config("pool", "problems.options.num_problems=7", "sampling.n=10", "plan.samples_per_unit=16")
    summary = generate(config, pool=pool)
    table = read_pool(config)
    assert table.schema.equals(SAMPLES_SCHEMA)
    assert table.num_rows == 7 * 10
    assert summary.samples == 70 and summary.units_total == 7  # 10 samples/problem, 1 problem/unit
    keys = set(zip(table["problem_id"].to_pylist(), table["sample_idx"].to_pylist()))
    assert keys == {(f"arithmetic-{p:05d}", i) for p in range(7) for i in range(10)}
    assert pc.min(table["num_tokens"]).as_py() >= 1
    assert pc.max(table["num_tokens"]).as_py() <= 12
    assert table["cumulative_logprob"].null_count == 0
    assert set(table["finish_reason"].to_pylist()) <= {"stop", "length"}
    expected_seeds = [sample_seed(0, p, i) for p, i in zip(table["problem_id"].to_pylist(), table["sample_idx"].to_pylist())]
    assert table["seed"].to_pylist() == expected_seeds
    assert summary.tokens == pc.sum(table["num_tokens"]).as_py()


def test_same_config_twice_gives_identical_texts(pool, make_config):
    first, second = make_config("first"), make_config("second")
    generate(first, pool=pool)
    generate(second, pool=pool)
    assert read_pool(first).equals(read_pool(second))


def test_a_different_seed_gives_different_texts(pool, make_config):
    base, other = make_config("seed0"), make_config("seed1", "run.seed=1")
    generate(base, pool=pool)
    generate(other, pool=pool)
    assert read_pool(base)["text"].to_pylist() != read_pool(other)["text"].to_pylist()


def test_samples_do_not_depend_on_how_units_are_cut(pool, make_config):
    """Seeds follow (run.seed, problem, sample index), not the unit layout: n split over three
    units per problem gives the same samples as whole problems batched together."""
    split = make_config("split", "sampling.n=20", "plan.samples_per_unit=8")
    whole = make_config("whole", "sampling.n=20", "plan.samples_per_unit=80")
    assert generate(split, pool=pool).units_total == 12 * 3
    assert generate(whole, pool=pool).units_total == 3
    assert read_pool(split).equals(read_pool(whole))


def test_rerun_regenerates_exactly_the_deleted_units(pool, make_config):
    config = make_config("resume")
    first = generate(config, pool=pool)
    original = read_pool(config)
    store = RunStore(config.run.root)
    deleted = sorted(first.generated)[1::2]
    for unit_id in deleted:
        store.fs.rm(store.sample_unit(unit_id))
    rerun = generate(config, pool=pool)
    assert sorted(rerun.generated) == deleted
    assert rerun.units_skipped == first.units_total - len(deleted)
    assert read_pool(config).equals(original)
    assert generate(config, pool=pool).generated == []


def test_resume_with_other_sampling_settings_is_refused(pool, make_config):
    from jobs.errors import ConfigError

    generate(make_config("guarded"), pool=pool)
    with pytest.raises(ConfigError, match=r"sampling\.temperature: 1\.0 -> 0\.5"):
        generate(make_config("guarded", "sampling.temperature=0.5"), pool=pool)


def test_raising_n_on_resume_adds_exactly_the_new_samples(pool, make_config):
    small = make_config("grown", "sampling.n=4")
    first = generate(small, pool=pool)
    before = {p: os.path.getmtime(p) for p in glob.glob(os.path.join(small.run.root, "samples", "*.parquet"))}
    grown = generate(make_config("grown", "sampling.n=10"), pool=pool)
    assert grown.units_skipped == len(first.generated) and grown.samples == 12 * 6
    assert all(os.path.getmtime(p) == t for p, t in before.items())  # the first samples untouched
    scratch = make_config("scratch", "sampling.n=10")
    generate(scratch, pool=pool)
    assert read_pool(make_config("grown", "sampling.n=10")).equals(read_pool(scratch))
