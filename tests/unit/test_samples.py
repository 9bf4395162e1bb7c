"""workers.samples, workers.engine.engine_args and jobs.stages.generation.GenerationWorker, without vLLM.

The worker test uses a fake engine: it is about what the worker asks of an engine and what it
writes to the store, not about the engine (the integration tests run the real one).
"""

import os
from types import SimpleNamespace

import pyarrow as pa
import pytest

from jobs.stages.generation import GenerationWorker, UnitStats, UnitTask
from jobs.problems.units import plan_units, problem_seed, sample_seed
from jobs.store.root import RunStore
from workers.engine import EngineSpec, engine_args, render_prompt
from workers.samples import SAMPLES_SCHEMA, samples_table
from workers.sampling import SamplingSpec


def completion(index: int, text: str = "", tokens: int = 1, logprob=-1.0, finish="stop"):
    """A vLLM CompletionOutput as far as samples_table reads it."""
    return SimpleNamespace(
        index=index, text=text, token_ids=list(range(tokens)), cumulative_logprob=logprob, finish_reason=finish
    )


def request_output(completions):
    return SimpleNamespace(outputs=list(completions))


# samples_table.


def test_rows_follow_the_samples_schema_exactly():
    table = samples_table(["a"], [request_output([completion(0, "x")])], 0, [5])
    assert table.schema.equals(SAMPLES_SCHEMA)
    assert [(f.name, str(f.type), f.nullable) for f in table.schema] == [
        ("problem_id", "string", False),
        ("sample_idx", "int32", False),
        ("text", "string", False),
        ("num_tokens", "int32", False),
        ("cumulative_logprob", "double", True),
        ("finish_reason", "string", True),
        ("seed", "int64", False),
    ]


def test_one_row_per_completion_with_index_offsets_and_seeds():
    outputs = [
        request_output([completion(0, "a0", 3, -0.5), completion(1, "a1", 4, -1.5, "length"), completion(2, "a2", 1, None)]),
        request_output([completion(0, "b0", 2), completion(1, "b1", 7), completion(2, "b2", 5)]),
    ]
    table = samples_table(["pa", "pb"], outputs, 8, [1000, 2**61])
    assert table.to_pydict() == {
        "problem_id": ["pa", "pa", "pa", "pb", "pb", "pb"],
        "sample_idx": [8, 9, 10, 8, 9, 10],
        "text": ["a0", "a1", "a2", "b0", "b1", "b2"],
        "num_tokens": [3, 4, 1, 2, 7, 5],
        "cumulative_logprob": [-0.5, -1.5, None, -1.0, -1.0, -1.0],
        "finish_reason": ["stop", "length", "stop", "stop", "stop", "stop"],
        "seed": [1000, 1001, 1002, 2**61, 2**61 + 1, 2**61 + 2],
    }


def test_completions_are_ordered_by_their_index():
    outputs = [request_output([completion(2, "c"), completion(0, "a"), completion(1, "b")])]
    table = samples_table(["p"], outputs, 4, [10])
    assert table["sample_idx"].to_pylist() == [4, 5, 6]
    assert table["text"].to_pylist() == ["a", "b", "c"]
    assert table["seed"].to_pylist() == [10, 11, 12]


def test_outputs_and_problems_must_pair_up():
    with pytest.raises(ValueError):
        samples_table(["a", "b"], [request_output([completion(0)])], 0, [1, 2])


# engine_args.

SPEC = EngineSpec(model="/models/tiny", revision="abc123", dtype="float32", max_model_len=256,
                  tensor_parallel_size=2, enforce_eager=True, enable_prefix_caching=False)


@pytest.mark.parametrize("on_cpu", [False, True])
def test_engine_args_carry_the_spec(on_cpu):
    args = engine_args(SPEC, on_cpu=on_cpu)
    assert {k: args[k] for k in ("model", "revision", "dtype", "max_model_len", "tensor_parallel_size",
                                 "enforce_eager", "enable_prefix_caching")} == {
        "model": "/models/tiny", "revision": "abc123", "dtype": "float32", "max_model_len": 256,
        "tensor_parallel_size": 2, "enforce_eager": True, "enable_prefix_caching": False}


def test_engine_args_on_cpu_disable_chunked_prefill():
    """Seeded sampling on vLLM's CPU backend breaks when a prompt's prefill is chunked."""
    args = engine_args(SPEC, on_cpu=True)
    assert args["enable_chunked_prefill"] is False
    assert args["max_num_batched_tokens"] >= SPEC.max_model_len  # a whole prompt fits one step


def test_engine_args_on_gpu_leave_chunked_prefill_to_vllm():
    assert "enable_chunked_prefill" not in engine_args(SPEC, on_cpu=False)


@pytest.mark.parametrize("on_cpu", [False, True])
def test_engine_kwargs_override_everything(on_cpu):
    spec = EngineSpec(model="m", max_model_len=256,
                      engine_kwargs={"enable_chunked_prefill": True, "max_model_len": 99, "swap_space": 1})
    args = engine_args(spec, on_cpu=on_cpu)
    assert (args["enable_chunked_prefill"], args["max_model_len"], args["swap_space"]) == (True, 99, 1)


def test_text_prompt_is_sent_as_it_is():
    assert render_prompt(None, "Question: 1 + 1?") == "Question: 1 + 1?"


def test_chat_prompt_goes_through_the_chat_template():
    calls = []

    class Tokenizer:
        def apply_chat_template(self, messages, **kwargs):
            calls.append((messages, kwargs))
            return "<rendered>"

    chat = [{"role": "user", "content": "hi", "extra": 1}]
    assert render_prompt(Tokenizer(), chat) == "<rendered>"
    assert calls == [([{"role": "user", "content": "hi"}], {"tokenize": False, "add_generation_prompt": True})]


# GenerationWorker with a fake engine.


class FakeEngine:
    """Answers each request with n completions whose text names the prompt and the seed used."""

    def __init__(self, spec):
        self.spec = spec
        self.calls = []

    def generate(self, prompts, sampling, n, seeds):
        self.calls.append((list(prompts), sampling, n, list(seeds)))
        return [
            request_output(completion(i, f"{prompt}|{seed + i}", tokens=1 + i % 3) for i in reversed(range(n)))
            for prompt, seed in zip(prompts, seeds)
        ]


PROBLEM_IDS = [f"q{i}" for i in range(5)]


@pytest.fixture
def store(tmp_path) -> RunStore:
    store = RunStore(str(tmp_path / "run"))
    prompts = [f"prompt {p}" for p in PROBLEM_IDS]
    store.write_table(store.problems, pa.table({"problem_id": PROBLEM_IDS, "prompt": prompts}))
    return store


def test_worker_builds_its_engine_from_the_spec():
    spec = EngineSpec(model="m")
    assert GenerationWorker(spec, engine_factory=FakeEngine).engine.spec is spec


UNITS = {  # (n, samples_per_unit, unit index) -> the unit's problems and sample range
    "split problem": ((10, 4, 4), ("q1",), 4, 8),  # 10 samples of a problem over 3 units
    "packed problems": ((4, 8, 1), ("q2", "q3"), 0, 4),  # 2 problems of 4 samples in a unit
}


@pytest.mark.parametrize("layout", UNITS.values(), ids=UNITS.keys())
def test_worker_writes_a_unit_of_p_times_n_rows_with_unique_keys(store, layout):
    (n, size, index), problems, start, end = layout
    unit = plan_units(PROBLEM_IDS, n, size)[index]
    assert (unit.problem_ids, unit.sample_start, unit.sample_end) == (problems, start, end)
    worker = GenerationWorker(EngineSpec(model="m"), engine_factory=FakeEngine)
    stats = worker.run_unit(UnitTask(store, unit, SamplingSpec(temperature=0.8), run_seed=3))

    table = store.read_table(store.sample_unit(unit.unit_id))
    assert table.schema.equals(SAMPLES_SCHEMA)
    assert table.num_rows == len(problems) * (end - start)
    keys = list(zip(table["problem_id"].to_pylist(), table["sample_idx"].to_pylist()))
    assert len(set(keys)) == len(keys)
    assert set(keys) == {(p, i) for p in problems for i in range(start, end)}
    assert table["seed"].to_pylist() == [sample_seed(3, p, i) for p, i in keys]
    assert table["text"].to_pylist() == [f"prompt {p}|{sample_seed(3, p, i)}" for p, i in keys]
    assert stats == UnitStats(unit.unit_id, table.num_rows, sum(table["num_tokens"].to_pylist()), stats.seconds)
    assert stats.tokens == len(problems) * sum(1 + j % 3 for j in range(end - start))
    assert store.unit_ids("samples") == {unit.unit_id}
    assert os.listdir(store.path("samples")) == [f"unit-{unit.unit_id}.parquet"]  # no temporary left


@pytest.mark.parametrize("layout", UNITS.values(), ids=UNITS.keys())
def test_worker_sends_one_request_per_problem_with_n_and_the_base_seed(store, layout):
    (n, size, index), problems, start, end = layout
    unit = plan_units(PROBLEM_IDS, n, size)[index]
    worker = GenerationWorker(EngineSpec(model="m"), engine_factory=FakeEngine)
    sampling = SamplingSpec(temperature=0.8, max_tokens=7)
    worker.run_unit(UnitTask(store, unit, sampling, run_seed=3))
    assert worker.engine.calls == [
        ([f"prompt {p}" for p in problems], sampling, end - start, [problem_seed(3, p) + start for p in problems])
    ]


def test_worker_serves_a_second_run_with_its_own_prompts(store, tmp_path):
    other = RunStore(str(tmp_path / "other"))
    other.write_table(other.problems, pa.table({"problem_id": ["q0"], "prompt": ["another prompt"]}))
    worker = GenerationWorker(EngineSpec(model="m"), engine_factory=FakeEngine)
    for s in (store, other):
        worker.run_unit(UnitTask(s, plan_units(["q0"], 2, 8)[0], SamplingSpec(), run_seed=0))
    assert [call[0] for call in worker.engine.calls] == [["prompt q0"], ["another prompt"]]
