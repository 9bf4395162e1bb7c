"""Failure bookkeeping without an engine: the engine adapter isolating refused prompts, the
failures files, and the command's exit when a unit failed every attempt."""

import pytest

from jobs.errors import TroopError
from jobs.store.failures import read_failures, record_failures
from jobs.usecases.generate import GenerateSummary
from jobs.store.root import RunStore
from workers.engine import Engine, EngineSpec, Rejected
from workers.sampling import SamplingSpec


class FakeTokenizer:
    def encode(self, text):
        return text.split()


class FakeLLM:
    """Refuses a whole call when any prompt in it contains "poison", as vLLM refuses a batch."""

    def __init__(self):
        self.calls = []

    def get_tokenizer(self):
        return FakeTokenizer()

    def generate(self, texts, params, use_tqdm=False):
        self.calls.append(list(texts))
        if any("poison" in t for t in texts):
            raise ValueError("prompt contains poison\nsecond line")
        return [f"out:{t}" for t in texts]


def fake_engine(max_model_len=8) -> Engine:
    engine = Engine.__new__(Engine)
    engine.spec, engine.llm = EngineSpec(model="fake", max_model_len=max_model_len), FakeLLM()
    return engine


def test_refused_prompts_are_isolated_and_the_rest_generated():
    engine = fake_engine()
    prompts = ["a b", "poison", "c", "one two three four five six seven eight", "d e f"]
    results = engine.generate(prompts, SamplingSpec(), 2, [10, 11, 12, 13, 14])
    assert results[0] == "out:a b" and results[2] == "out:c" and results[4] == "out:d e f"
    assert results[1] == Rejected("rejected", "prompt contains poison")
    assert results[3] == Rejected("prompt_too_long", "8 prompt tokens, model.max_model_len is 8")
    assert engine.llm.calls[0] == ["a b", "poison", "c", "d e f"]  # one call first; too-long never sent


def test_a_unit_without_refusals_is_one_engine_call():
    engine = fake_engine()
    assert engine.generate(["a", "b"], SamplingSpec(), 1, [0, 1]) == ["out:a", "out:b"]
    assert len(engine.llm.calls) == 1


def test_failure_files_record_replace_and_clear(tmp_path):
    store = RunStore(str(tmp_path / "run"))
    record_failures(store, "u1", [("p1", "prompt_too_long", "300 tokens")])
    record_failures(store, "u2", [(None, "worker_died", "killed")])
    assert [(r["unit_id"], r["problem_id"], r["status"]) for r in read_failures(store).to_pylist()] == [
        ("u1", "p1", "prompt_too_long"), ("u2", None, "worker_died")]
    record_failures(store, "u2", [])  # the unit succeeded on a later run
    assert read_failures(store)["unit_id"].to_pylist() == ["u1"]
    assert read_failures(RunStore(str(tmp_path / "empty"))).num_rows == 0


def test_a_failed_unit_fails_the_command_naming_it():
    summary = GenerateSummary(4, 0, ["a", "b"], 10, 10, 1.0, failed={"u3": ("worker_died", "killed"), "u4": ("error", "x")},
                              root="/run")
    with pytest.raises(TroopError, match=r"unit u3 and 1 more failed every attempt \(worker_died: killed\).*/run/failures/"):
        summary.check()
    GenerateSummary(1, 0, ["a"], 1, 1, 1.0, root="/run").check()  # nothing failed: no error
