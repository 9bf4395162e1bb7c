"""`troop status` from the store alone: units done, in flight, failed and remaining."""

import json

import pyarrow as pa

from jobs.config import merge_config
from jobs.store.failures import record_failures
from jobs.problems.units import plan_units
from jobs.store.runinfo import record_run
from jobs.store.progress import ProgressFile
from jobs.usecases.status import run_status
from jobs.store.root import RunStore
from workers.samples import SAMPLES_SCHEMA


def test_status_counts_units_by_state_and_the_samples_so_far(tmp_path):
    config = merge_config(None, [f"run.root={tmp_path / 'run'}", "model.path=m", "problems.source=arithmetic",
                                 "problems.options.num_problems=8", "sampling.n=4", "plan.samples_per_unit=8"])
    store = RunStore(config.run.root)
    problems = pa.table({"problem_id": [f"p{i}" for i in range(8)], "prompt": ["q"] * 8})
    record_run(store, config, problems)
    units = plan_units(problems["problem_id"].to_pylist(), 4, 8)  # 4 units of 2 problems x 4
    first, second, third, _ = units
    rows = {"problem_id": ["p0"] * 8, "sample_idx": list(range(8)), "text": ["t"] * 8, "num_tokens": [3] * 8,
            "cumulative_logprob": [0.0] * 8, "finish_reason": ["stop"] * 8, "seed": [0] * 8}
    store.write_table(store.sample_unit(first.unit_id), pa.table(rows), SAMPLES_SCHEMA)
    record_failures(store, second.unit_id, [(None, "worker_died", "killed")])
    progress = ProgressFile(store, every_s=0.0)
    progress.dispatched(third.unit_id)
    lines = run_status(store)
    assert "samples: 1/4 units done, 1 in flight, 1 failed, 1 remaining (8 problems x n=4)" in lines
    assert f"failed units (rerun to retry): {second.unit_id}" in lines
    assert "so far: 8 samples, 24 tokens" in lines
    assert any(line.startswith("in flight as of ") for line in lines)
    progress.settled(third.unit_id)
    assert json.loads(store.read_text(store.progress_json))["in_flight"] == []
    assert "samples: 1/4 units done, 0 in flight, 1 failed, 2 remaining (8 problems x n=4)" in run_status(store)
