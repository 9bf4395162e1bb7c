"""Scoring throughput: Troop's `troop score` stage, raw vLLM and a transformers loop on one pool.

    .venv/bin/python bench/score.py [--problems 200] [--n 16] [--repeats 3] [--context-words 0]

One command, one pool of distinct completions (problems x n; a short prompt and a completion of
about 120 tokens, or with `--context-words W` a problem statement of about 4.5 W tokens before
the question, shared by the problem's n completions, as a long task's prompt is), one outcome
reward model (a random `LlamaForSequenceClassification` built by
tests/tiny_reward.py), reporting samples scored per second at steady state (engine start apart):
- troop: `jobs.usecases.score.score_run` (what `troop score ROOT` runs) on one scoring actor
  (`jobs.cluster.pools.scoring_pool`), reading the sample units and writing score units as
  Parquet; timed from the first unit handed out to the last score file landed;
- raw: one `LLM.encode(..., pooling_task="classify")` call with every text, in this process:
  the engine's own offline ceiling (the texts rendered beforehand, as Troop renders them);
- transformers: the model's forward pass in batches of 32 padded texts under `torch.no_grad`,
  as reward-model glue code (Weaver) does.
Each pass scores the whole pool; the median of `--repeats` passes is reported, the passes of
the three methods interleaved so that drift on a shared machine hits all alike. CPU figures
show overheads on this machine, not GPU speeds.
"""

import argparse
import os
import random
import statistics
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
sys.path.insert(0, os.path.join(REPO, "tests"))

MAX_MODEL_LEN = 1024
UNIT_SAMPLES = 256
WORDS = "the answer is so we add carry one then subtract two and check each step again".split()


def write_pool(root: str, problems: int, n: int, context_words: int = 0):
    """A run root with problems.parquet and sample units of distinct completions."""
    import pyarrow as pa

    from jobs.problems.units import plan_units
    from jobs.store.root import RunStore
    from workers.samples import SAMPLES_SCHEMA

    rng = random.Random(0)
    store = RunStore(root)
    ids = [f"q{i:05d}" for i in range(problems)]
    contexts = [" ".join(rng.choice(WORDS) for _ in range(context_words)) for _ in range(problems)]
    prompts = [f"{c}\nQuestion {i}: what is {rng.randint(10, 99)} + {rng.randint(10, 99)}? Think step by step."
               for i, c in enumerate(contexts)]
    store.write_table(store.problems, pa.table({"problem_id": ids, "prompt": prompts}))
    for unit in plan_units(ids, n, UNIT_SAMPLES):
        rows = [(pid, s, " ".join(rng.choice(WORDS) for _ in range(rng.randint(15, 35))) + f" {s}")
                for pid in unit.problem_ids for s in range(unit.sample_start, unit.sample_end)]
        table = pa.table({"problem_id": [r[0] for r in rows], "sample_idx": [r[1] for r in rows],
                          "text": [r[2] for r in rows], "num_tokens": [0] * len(rows), "cumulative_logprob": [0.0] * len(rows),
                          "finish_reason": ["length"] * len(rows), "seed": [0] * len(rows)}, schema=SAMPLES_SCHEMA)
        store.write_table(store.sample_unit(unit.unit_id), table, SAMPLES_SCHEMA)
    return store, dict(zip(ids, prompts))


def all_texts(store, prompts: dict, tokenizer) -> list[str]:
    """Every sample as the reward model reads it (workers.reward.reward_input)."""
    from workers.reward import reward_input

    texts = []
    for unit in sorted(store.unit_ids("samples")):
        table = store.read_table(store.sample_unit(unit), columns=["problem_id", "text"])
        texts += [reward_input(tokenizer, prompts[p], t) for p, t in zip(*(table[c].to_pylist() for c in ("problem_id", "text")))]
    return texts


def troop_pass(pool, store, config) -> float:
    """One whole `troop score` pass on the kept scoring actor, into a fresh scores folder."""
    import shutil

    from jobs.usecases.score import score_run

    shutil.rmtree(store.path("scores"), ignore_errors=True)
    began = time.perf_counter()
    summary = score_run(store, config, pool=pool)
    assert summary.failed == {} and summary.unscored == 0
    return time.perf_counter() - began


def raw_pass(llm, texts: list[str]) -> float:
    from vllm import PoolingParams

    began = time.perf_counter()
    outputs = llm.encode(texts, PoolingParams(use_activation=False), pooling_task="classify", use_tqdm=False)
    assert len(outputs) == len(texts)
    return time.perf_counter() - began


def transformers_pass(model, tokenizer, texts: list[str], batch: int = 32) -> float:
    import torch

    began = time.perf_counter()
    with torch.no_grad():
        for start in range(0, len(texts), batch):
            encoded = tokenizer(texts[start:start + batch], padding=True, return_tensors="pt")
            model(**encoded).logits
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--problems", type=int, default=200)
    parser.add_argument("--n", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--context-words", type=int, default=0, help="words of problem statement before each question")
    args = parser.parse_args()
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")
    import ray
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    from vllm import LLM

    from jobs.cluster.pools import start_scoring
    from jobs.config import ScoreConfig
    from tiny_reward import build_tiny_orm

    with tempfile.TemporaryDirectory(prefix="troop-bench-score-") as tmp:
        model_dir = build_tiny_orm(os.path.join(tmp, "orm"), max_positions=MAX_MODEL_LEN)
        store, prompts = write_pool(os.path.join(tmp, "run"), args.problems, args.n, args.context_words)
        config = ScoreConfig(model=model_dir, dtype="float32", max_model_len=MAX_MODEL_LEN, enforce_eager=True,
                             kv_cache_memory_bytes=256 << 20)
        tokenizer = AutoTokenizer.from_pretrained(model_dir)
        texts = all_texts(store, prompts, tokenizer)
        samples = len(texts)
        print(f"pool: {args.problems} problems x n={args.n} = {samples:,} distinct samples, "
              f"{sum(len(t) for t in tokenizer(texts)['input_ids']) / samples:.0f} tokens each on average")

        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        began = time.perf_counter()
        pool = start_scoring(config)
        print(f"troop scoring actor ready in {time.perf_counter() - began:.1f} s")
        began = time.perf_counter()
        llm = LLM(model=model_dir, runner="pooling", dtype="float32", max_model_len=MAX_MODEL_LEN, enforce_eager=True,
                  kv_cache_memory_bytes=256 << 20)
        print(f"raw vLLM engine ready in {time.perf_counter() - began:.1f} s")
        hf = AutoModelForSequenceClassification.from_pretrained(model_dir, dtype=torch.float32).eval()
        # Batches need a pad token, which the model reads past: the last non-pad token is scored.
        tokenizer.pad_token = tokenizer.eos_token
        hf.config.pad_token_id = tokenizer.pad_token_id

        troop_pass(pool, store, config)  # warm-up, discarded: first calls compile and fill caches
        raw_pass(llm, texts)
        seconds = {"troop": [], "raw vLLM": [], "transformers": []}
        for _ in range(args.repeats):
            seconds["troop"].append(troop_pass(pool, store, config))
            seconds["raw vLLM"].append(raw_pass(llm, texts))
            seconds["transformers"].append(transformers_pass(hf, tokenizer, texts))
        rates = {method: samples / statistics.median(s) for method, s in seconds.items()}
        print(f"\nsamples/s, median of {args.repeats} passes (each pass: every rate)")
        for method, rate in rates.items():
            passes = ", ".join(f"{samples / s:,.0f}" for s in seconds[method])
            print(f"{method:>13}: {rate:8,.0f}  ({passes})")
        print(f"troop / raw vLLM = {rates['troop'] / rates['raw vLLM']:.2f}")
        print(f"troop / transformers = {rates['troop'] / rates['transformers']:.2f}")
        pool.shutdown()
        llm.llm_engine.engine_core.shutdown()
        ray.shutdown()


if __name__ == "__main__":
    main()
