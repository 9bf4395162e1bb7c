"""Sampling settings shared by every request of a job, and their vLLM SamplingParams."""

from dataclasses import dataclass, field


@dataclass(frozen=True)
class SamplingSpec:
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    min_p: float = 0.0
    max_tokens: int = 256
    stop: tuple[str, ...] = field(default_factory=tuple)
    ignore_eos: bool = False
    # 0 gives each completion's cumulative log-probability (the default best-of-n score)
    # without per-token alternatives; None skips log-probabilities altogether.
    logprobs: int | None = 0


def sampling_params(spec: SamplingSpec, n: int, seed: int):
    """One request's SamplingParams: `n` completions whose seeds are seed, seed+1, ...

    vLLM shares the prompt's prefill across the n completions of one request.
    """
    from vllm import SamplingParams
    from vllm.sampling_params import RequestOutputKind

    return SamplingParams(
        n=n,
        seed=seed,
        temperature=spec.temperature,
        top_p=spec.top_p,
        top_k=spec.top_k,
        min_p=spec.min_p,
        max_tokens=spec.max_tokens,
        stop=list(spec.stop) or None,
        ignore_eos=spec.ignore_eos,
        logprobs=spec.logprobs,
        output_kind=RequestOutputKind.FINAL_ONLY,
    )
