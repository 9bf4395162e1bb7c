"""A thin adapter around one pooling `vllm.LLM` per process: scores (prompt, completion) pairs
with a reward model.

- An outcome reward model (`kind="outcome"`) is a sequence classifier
  (`*ForSequenceClassification`): one score per text, read at its last token. With one label the
  reward is the raw score (the logit); with two or more, the probability of one label.
- A process reward model (`kind="process"`, vLLM's `Qwen2ForProcessRewardModel`, e.g.
  Qwen2.5-Math-PRM) classifies tokens: the completion is cut into steps, the model's step
  token follows each step, and each step's reward is the probability that the step is correct,
  read at its step token.

What the model reads (`reward_input`) is the prompt and the completion as a conversation through
the reward model's chat template, or, without a template, the prompt text then the completion
text. Texts are tokenized here (`encode_input`): that gives the length check its exact count,
and a chat template's own BOS token is not doubled.

The engine is asked for raw logits (`PoolingParams(use_activation=False)`) and the softmax is
taken here, in float64, over the labels: vLLM's default activation depends on the config's
`problem_type` (sigmoid for one label, softmax for more, sigmoid per label for multi-label).

The engine's processes die with the process that owns it: the same watchdog as the generation
engine (`workers.engine.start_watchdog`).
"""

import contextlib
import json
import math
import os
from dataclasses import dataclass, field, replace
from typing import Any, Sequence

from workers.engine import (first_line, memory_args, placement_group_args, runs_in_process, start_watchdog,
                            vllm_in_process)


OUTCOME, PROCESS = "outcome", "process"
KINDS = (OUTCOME, PROCESS)
# Token classifiers vLLM pools at a step token (pooling type STEP). Its other reward models
# (Qwen2ForRewardModel, InternLM2ForRewardModel) score every token and are not handled here.
PROCESS_ARCHITECTURES = ("Qwen2ForProcessRewardModel",)
AGGREGATES = ("last", "min", "prod", "mean")


@dataclass(frozen=True)
class RewardSpec:
    """Everything the scorer depends on; equal specs give equal scores."""

    model: str
    revision: str | None = None
    dtype: str = "auto"
    max_model_len: int = 4096
    kind: str = OUTCOME  # "outcome" | "process"
    # Which label's probability is the reward, for a model with two or more labels (an outcome
    # model's classes, a process model's correct/incorrect): a name from config.id2label or an
    # index, as a string. None: the last label (Qwen2.5-Math-PRM's positive class is index 1).
    label: str | None = None
    step_separator: str = "\n\n"  # process: how a completion splits into steps
    step_token: str = "<extra_0>"  # process: the token the model reads after each step
    system: str | None = None  # a system message in the reward model's conversation
    tensor_parallel_size: int = 1
    kv_cache_memory_bytes: int | None = None
    gpu_memory_utilization: float | None = None
    enforce_eager: bool = False
    engine_kwargs: dict[str, Any] = field(default_factory=dict, hash=False)
    # Set by the driver for an engine whose actor holds a placement group (see EngineSpec).
    in_placement_group: bool = field(default=False, compare=False)


@dataclass(frozen=True)
class Scored:
    """One completion's score. `reward` None: not scored, `detail` says why."""

    reward: float | None
    step_rewards: tuple[float, ...] | None  # a process model's, one per step; None for an outcome model
    detail: str | None = None
    num_tokens: int | None = field(default=None, compare=False)  # the input tokens the model read (compute accounting)


def reward_engine_args(spec: RewardSpec, on_cpu: bool) -> dict[str, Any]:
    """Keyword arguments of `vllm.LLM` for `spec`; `engine_kwargs` overrides the rest."""
    args: dict[str, Any] = {
        "model": spec.model,
        "revision": spec.revision,
        "dtype": spec.dtype,
        "max_model_len": spec.max_model_len,
        "tensor_parallel_size": spec.tensor_parallel_size,
        "enforce_eager": spec.enforce_eager,
        # The pooling runner, not "auto": a model is never generated from here.
        "runner": "pooling",
        **memory_args(spec.kv_cache_memory_bytes, spec.gpu_memory_utilization, on_cpu),
        **placement_group_args(spec.tensor_parallel_size, spec.in_placement_group),
    }
    # Chunked prefill stays at vLLM's default even on the CPU (workers/engine.py turns it off
    # there for seeded sampling; a pooling request samples nothing): on for a classifier (its
    # LAST pooler reads the final chunk), off for the token-wise STEP pooler (vLLM's choice).
    args.update(spec.engine_kwargs)
    return args


# --- what the reward model reads (pure) ---

def has_chat_template(tokenizer) -> bool:
    return bool(getattr(tokenizer, "chat_template", None))


def reward_input(tokenizer, prompt, completion: str, system: str | None = None) -> str:
    """The text the reward model reads for `completion` of `prompt` (a string, or chat messages).

    With a chat template: the conversation [system], user = prompt, assistant = completion
    (chat messages: those messages, then the assistant's); `system`, if given, is the
    conversation's system message, in place of one the prompt's messages begin with (a reward
    model is trained with its own). Without a chat template: [system + newline] + prompt +
    completion, the completion directly after the prompt as a base model would have read it;
    chat messages then need a template (ValueError)."""
    if has_chat_template(tokenizer):
        if isinstance(prompt, str):
            messages = [{"role": "user", "content": prompt}]
        else:
            messages = [{"role": m["role"], "content": m["content"]} for m in prompt]
        if system is not None:
            if messages and messages[0]["role"] == "system":
                messages = messages[1:]
            messages.insert(0, {"role": "system", "content": system})
        messages.append({"role": "assistant", "content": completion})
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=False)
    if not isinstance(prompt, str):
        raise ValueError("the prompt is chat messages and the reward model's tokenizer has no chat template")
    return (f"{system}\n" if system is not None else "") + prompt + completion


def encode_input(tokenizer, texts: Sequence[str]) -> list[list[int]]:
    """Token ids of `reward_input` texts. A chat template writes the model's special tokens
    itself (its BOS, if it has one), so its text is tokenized without adding them, as
    transformers' apply_chat_template(tokenize=True) does; a plain text gets them (a Llama
    tokenizer's BOS)."""
    if not texts:
        return []
    return [list(ids) for ids in tokenizer(list(texts), add_special_tokens=not has_chat_template(tokenizer))["input_ids"]]


def split_steps(completion: str, separator: str) -> list[str]:
    """A completion's steps: the pieces between separators, without empty (or blank) ones, so
    that a trailing separator or a run of them makes no step; an empty completion is one empty
    step (it still gets a score)."""
    return [piece for piece in completion.split(separator) if piece.strip()] or [completion]


def with_step_tokens(steps: Sequence[str], step_token: str) -> str:
    """The assistant's text a process model reads: each step followed by the step token, the
    separators dropped (Qwen2.5-Math-PRM's format: "<extra_0>".join(steps) + "<extra_0>")."""
    return "".join(step + step_token for step in steps)


def length_problem(num_tokens: int, max_model_len: int) -> str | None:
    """Why a text of `num_tokens` cannot be scored, or None. A pooling request may fill the
    whole context (nothing is generated after it)."""
    if num_tokens == 0:
        return "empty input: 0 tokens"
    if num_tokens > max_model_len:
        return f"{num_tokens} tokens, score.max_model_len is {max_model_len}"
    return None


# --- what the reward model says (pure) ---

def softmax(logits: Sequence[float]) -> list[float]:
    top = max(logits)
    exps = [math.exp(x - top) for x in logits]
    total = sum(exps)
    return [e / total for e in exps]


def outcome_reward(logits: Sequence[float], label: int) -> float:
    """One label: the raw score. More: the softmax probability of label `label`."""
    if len(logits) == 1:
        return float(logits[0])
    return softmax(logits)[label]


def aggregate(step_rewards: Sequence[float], how: str) -> float:
    """A process model's step rewards as one reward (search-and-learn's aggregate_scores):
    "last" (the final step's), "min" (the weakest step's), "prod" (all steps correct, if
    independent), "mean"."""
    if not step_rewards:
        raise ValueError("no step rewards to aggregate")
    if how == "last":
        return float(step_rewards[-1])
    if how == "min":
        return float(min(step_rewards))
    if how == "prod":
        return float(math.prod(step_rewards))
    if how == "mean":
        return float(sum(step_rewards) / len(step_rewards))
    raise ValueError(f"unknown aggregate {how!r}: one of {', '.join(AGGREGATES)}")


# --- what the model is (pure, and reading its config.json) ---

def model_config(model: str, revision: str | None = None) -> dict:
    """The model's config.json as a dict; ValueError (one line) if it cannot be read."""
    if os.path.isdir(model):
        path = os.path.join(model, "config.json")
        if not os.path.isfile(path):
            raise ValueError(f"{model} has no config.json: not a model directory")
    elif "://" in model:
        raise ValueError(f"cannot check {model}: a reward model is read from a local directory or the Hugging Face Hub")
    elif os.path.isabs(model) or model.startswith((".", "~")) or model.count("/") > 1:
        raise ValueError(f"{model}: no such model directory")
    else:  # a Hugging Face Hub id ("org/name")
        try:
            from huggingface_hub import hf_hub_download

            path = hf_hub_download(model, "config.json", revision=revision)
        except Exception as err:
            raise ValueError(f"cannot read the config.json of {model}: {first_line(err)}") from None
    try:
        with open(path) as handle:
            return json.load(handle)
    except (OSError, ValueError) as err:
        raise ValueError(f"cannot read {path}: {first_line(err)}") from None


def kind_problem(model: str, kind: str, architectures: Sequence[str]) -> str | None:
    """Why `model` (its config's `architectures`) is not a `kind` reward model, or None."""
    if kind not in KINDS:
        return f"unknown reward model kind {kind!r}: one of {', '.join(KINDS)}"
    if kind == OUTCOME:
        if any(a.endswith("ForSequenceClassification") for a in architectures):
            return None
        wanted = "a sequence classifier (*ForSequenceClassification)"
    else:
        if any(a in PROCESS_ARCHITECTURES for a in architectures):
            return None
        wanted = f"a token classifier pooled at step tokens ({', '.join(PROCESS_ARCHITECTURES)})"
    found = ", ".join(architectures) or "no architectures"
    article = "an" if kind == OUTCOME else "a"
    return f"{model} is not {article} {kind} reward model: score.kind={kind} needs {wanted}, its config.json has {found}"


def model_labels(config: dict, kind: str) -> list[str]:
    """The model's label names by index, as transformers reads them from config.json."""
    if kind == PROCESS:
        count = 2  # vLLM's Qwen2ForProcessRewardModel fixes num_labels at 2
    else:
        count = len(config.get("id2label") or {}) or int(config.get("num_labels", 2))
    id2label = {int(k): str(v) for k, v in (config.get("id2label") or {}).items()}
    return [id2label.get(i, f"LABEL_{i}") for i in range(count)]


def label_index(labels: Sequence[str], label: str | None) -> int:
    """Index of the label whose probability is the reward: `label` by name or index; None: the last."""
    if label is None:
        return len(labels) - 1
    if label in labels:
        return list(labels).index(label)
    try:
        index = int(label)
    except ValueError:
        index = None
    if index is not None and -len(labels) <= index < len(labels):
        return index % len(labels)
    raise ValueError(f"score.label {label!r} is none of the model's labels {list(labels)} (names or indexes)")


def check_reward_model(model: str, kind: str, revision: str | None = None, label: str | None = None) -> dict:
    """The model's config.json, once it is known to be a `kind` reward model whose labels
    include `label`; otherwise a one-line ValueError naming the model and what was expected.
    Reads only config.json: no engine starts."""
    config = model_config(model, revision)
    problem = kind_problem(model, kind, config.get("architectures") or [])
    if problem:
        raise ValueError(problem)
    try:
        label_index(model_labels(config, kind), label)
    except ValueError as err:
        raise ValueError(f"{model}: {err}") from None
    return config


class RewardEngine:
    """One vLLM pooling engine; `score` sends all of a unit's completions in one call."""

    def __init__(self, spec: RewardSpec):
        # Checked before the engine starts: vLLM would start a causal LM as an embedding model
        # (runner="pooling" converts it), and fail deep in its own code on other mistakes.
        config = check_reward_model(spec.model, spec.kind, spec.revision, spec.label)
        labels = model_labels(config, spec.kind)
        self._label = label_index(labels, spec.label)
        # An outcome model with one output gives a raw logit; every other reward is a probability.
        self.reward_is_logit = spec.kind == OUTCOME and len(labels) == 1

        import psutil
        from vllm import LLM, PoolingParams
        from vllm.platforms import current_platform

        self.spec = spec
        before = {child.pid for child in psutil.Process().children()}
        args = reward_engine_args(spec, on_cpu=current_platform.is_cpu())
        # As the generation engine: a one-rank CPU engine runs in this process (workers.engine).
        with vllm_in_process() if runs_in_process(args, current_platform.is_cpu()) else contextlib.nullcontext():
            self.llm = LLM(**args)
        # The processes the engine started; see workers.engine.Engine.
        started = [child.pid for child in psutil.Process().children() if child.pid not in before]
        self._watchdog = start_watchdog(started) if started else None
        try:
            tokenizer = self.llm.get_tokenizer()
            if spec.kind == OUTCOME:
                self._task = "classify"
                self._params = PoolingParams(use_activation=False)
            else:
                self._task = "token_classify"
                self._step_token_id = step_token_id(tokenizer, spec.model, spec.step_token)
                # vLLM's default step tag is Qwen's <extra_0> id (151651) whatever the
                # tokenizer: name the token's id in this tokenizer.
                self._params = PoolingParams(use_activation=False, step_tag_id=self._step_token_id)
            if self._task not in self.llm.supported_tasks:
                raise ValueError(f"{spec.model} is not the {spec.kind} reward model vLLM expected: it serves it for "
                                 f"{', '.join(self.llm.supported_tasks)}, not {self._task}")
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Stops the engine's processes (see workers.engine.Engine.close)."""
        if self._watchdog is not None:
            self._watchdog.kill()
            self._watchdog.wait()
            self._watchdog = None
        self.llm.llm_engine.engine_core.shutdown()

    def score(self, prompts: Sequence, completions: Sequence[str], step_separator: str | None = None) -> list[Scored]:
        """In order, a `Scored` per (prompt, completion); all the scorable ones in one engine
        call. One that cannot be scored (too long, a chat template that refuses it) does not
        cost the others their scores. `step_separator`: a process model's steps split there
        instead of at the spec's (a search names its own)."""
        if len(prompts) != len(completions):
            raise ValueError(f"{len(prompts)} prompts for {len(completions)} completions")
        spec = self.spec
        tokenizer = self.llm.get_tokenizer()
        results: list[Scored | None] = [None] * len(prompts)
        texts: dict[int, str] = {}
        num_steps: dict[int, int] = {}
        for i, (prompt, completion) in enumerate(zip(prompts, completions)):
            if spec.kind == PROCESS:
                steps = split_steps(completion, step_separator or spec.step_separator)
                num_steps[i] = len(steps)
                completion = with_step_tokens(steps, spec.step_token)
            try:
                texts[i] = reward_input(tokenizer, prompt, completion, spec.system)
            except Exception as err:  # a chat template that refuses the messages
                results[i] = Scored(None, None, f"chat template: {first_line(err)}")
        order = sorted(texts)
        token_ids = dict(zip(order, encode_input(tokenizer, [texts[i] for i in order])))
        requests = []
        for i in order:
            ids = token_ids[i]
            problem = length_problem(len(ids), spec.max_model_len)
            if problem is None and spec.kind == PROCESS and ids.count(self._step_token_id) != num_steps[i]:
                # The model's step pooling reads every step token of the text, the prompt's too.
                problem = (f"{ids.count(self._step_token_id)} {spec.step_token} tokens for {num_steps[i]} steps: "
                           f"the prompt or the completion holds the step token itself")
            if problem is not None:
                results[i] = Scored(None, None, problem)
            else:
                requests.append(i)
        if requests:
            outputs = self.llm.encode([{"prompt_token_ids": token_ids[i]} for i in requests], self._params,
                                      pooling_task=self._task, use_tqdm=False)
            for i, output in zip(requests, outputs):
                results[i] = replace(self._scored(output.outputs.data), num_tokens=len(token_ids[i]))
        return results  # type: ignore[return-value]

    def _scored(self, data) -> Scored:
        if self.spec.kind == OUTCOME:  # data: [num_labels] logits at the last token
            return Scored(outcome_reward(data.double().tolist(), self._label), None)
        # data: [steps, 2] logits at the step tokens
        steps = tuple(softmax(row)[self._label] for row in data.double().tolist())
        return Scored(aggregate(steps, "last"), steps)


def step_token_id(tokenizer, model: str, step_token: str) -> int:
    """The id of `step_token` as one token of `tokenizer`; ValueError if it is not one."""
    ids = tokenizer.encode(step_token, add_special_tokens=False)
    if len(ids) != 1:
        raise ValueError(f"the tokenizer of {model} has no step token {step_token!r} (score.step_token): "
                         f"it reads it as {len(ids)} tokens")
    return ids[0]
