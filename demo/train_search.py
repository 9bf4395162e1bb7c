"""Train the step-level search demo: a tiny, deliberately weak policy for chains of additions and
subtractions (demo/search_policy) and a tiny process reward model of its steps (demo/search_prm).

The task (jobs/problems/chains.py): chains of 3 to 5 additions and subtractions of operands 1 to
99 whose every intermediate result stays in 0..99, worked one operation per step::

    'Question: What is 12 + 7 - 5 + 30?\nAnswer:\n'            (the prompt)
    '12 + 7 = 19\n\n19 - 5 = 14\n\n14 + 30 = 44'                (the gold completion, then <eos>)

What it does
------------
1. Policy (``--policy-out`` demo/search_policy). Training problems: the first 40,000 of
   ``chain_rows(seed=1)`` that are not an expression of the demo's evaluation set
   ``chain_rows(num_problems=100, seed=0)`` (compared on the operands and operators). The
   tokenizer is demo/train_model.py's (byte-level BPE, digits one per token, ``<bos>``
   prepended; 58 tokens) plus the PRM's step token ``<extra_0>`` as a special token, so that one
   tokenizer serves both models. A ``LlamaForCausalLM`` as demo/model (hidden 128, 2 layers, 2
   heads of dim 64 -- vLLM's CPU attention needs 64 --, intermediate 512, float32, 256
   positions) learns prompt + gold completion + ``<eos>``, the loss on the completion only:
   AdamW, lr 1e-3, 50 warmup steps then cosine to 10%, batch 16, 2,400 steps.
2. PRM training data: 8 completions of each of 2,000 other problems (``chain_rows(seed=2)``,
   none held out) sampled from the policy as the demo samples it: plain softmax sampling at
   temperature 1.0 (no top-k: transformers' ``generate`` would apply its default top_k=50, so
   the loop is written out, with a KV cache and one seeded generator), at most 96 new tokens,
   stopping at ``<eos>``, decoded without special tokens as vLLM returns them. Step i (the
   pieces between blank lines, as Troop's scorer splits them) is correct iff it reads
   ``a op b = c`` with a the true previous result, op and b the expression's i-th operator and
   operand and c the true i-th result (numbers written without leading zeros); a step past the
   last operation is wrong, and so, nearly always, is every step after a wrong one.
3. PRM (``--prm-out`` demo/search_prm): a ``Qwen2ForProcessRewardModel`` as vLLM loads it
   (tests/tiny_reward.py's layout: a ``Qwen2Model`` named ``model.*`` and a head ``score`` =
   Linear(128, 128), ReLU, Linear(128, 2), saved as ``score.0.*`` / ``score.2.*``; 2 labels,
   ``{0: "wrong", 1: "correct"}``; the reward is the probability of label 1). It reads exactly
   what Troop's scorer feeds it, without a chat template: ``workers.reward.reward_input`` of the
   prompt and ``with_step_tokens(split_steps(completion, "\n\n"), "<extra_0>")``, i.e. the prompt,
   then each step followed by ``<extra_0>``, the separators dropped, encoded by
   ``encode_input`` (``<bos>`` first). Its backbone starts as the policy's (the q/k/v biases
   Qwen2 adds at zero) with ``<extra_0>`` embedded as the separator ``\n\n`` is, so it starts by
   reading the text exactly as the policy does. Loss: cross-entropy of the 2 labels at every
   step token, each class weighted by the inverse of its share (39% of the training steps are
   correct), plus (``--prm-value-weight`` 1) a 100-way auxiliary head (not saved) that predicts,
   at each step token, the value of the step's ``a op b`` as written. AdamW, lr 1e-3, 50 warmup
   steps then cosine to 10%, batch 32 of the 9,860 distinct samples, 600 steps.
4. ``--evaluate`` (and after training, unless ``--no-evaluate``): 16 samples of each held-out
   problem (``--eval-seed`` 0), the table below. ``--check-vllm``: both folders in vLLM as Troop
   loads them (``workers.engine.Engine`` and ``workers.reward.RewardEngine``, float32,
   max_model_len 256, eager); 16 samples of each held-out problem from the engine, and the PRM's
   step rewards of 4 of each compared with transformers'.

Everything is deterministic: fixed seeds, ``torch.use_deterministic_algorithms(True)``, a fixed
thread count (1: on this shared 2-core machine a second thread bought nothing) and a fixed batch
order; running it twice gives byte-identical ``model.safetensors`` files on the same machine and
software. It takes 6.5 to 7.5 minutes on one core (policy 4 minutes, sampling 1, PRM 2, with
other jobs on the machine's second core) and each folder is about 2.2 MB.

Calibration
-----------
The policy is meant to be weak per step: with temperature 1.0 one sample is right only some of
the time, a step error carries into every later step, and at least one of 16 samples is right
for most problems. Tries (pass@1 / coverage@16 on the held-out problems, 16 samples each,
transformers' sampling):

    batch 64, lr 1e-3 constant, 200 / 300 / 400 steps     0.014 / 0.21,  0.019 / 0.26,  0.020 / 0.28
    batch 64, lr 3e-3 constant, 300 / 500 steps           0.011 / 0.17,  0.013 / 0.19
    batch 16, lr 1e-3 constant, 1000 / 1500 / 2000 / 2500 / 3000 steps
                                0.017 / 0.21,  0.039 / 0.42,  0.193 / 0.72,  0.261 / 0.76,  0.384 / 0.80
    batch 16, lr 2e-3 constant, 1000 / 1500 steps         0.014 / 0.19,  0.028 / 0.31
    batch 8, lr 1e-3 constant, 2000 / 3000 / 4000 steps   0.021 / 0.29,  0.031 / 0.38,  0.034 / 0.42
    batch 16, lr 1e-3, cosine, 3000 steps                 0.509 / 0.87   (too strong)
    batch 16, lr 1e-3, cosine, 2400 steps                 0.389 / 0.92   (the defaults)

The model first learns to write the right line (``a op b =`` with the right operands: 96% of
first steps at 1,000 steps of batch 16), then, from about 1,500 steps, the arithmetic (19% of
first-step results right at 1,500 steps, 74% at 3,000). At batch 64 neither came within 500
steps (a step costs 4 times as much); at batch 8 the arithmetic had not started by 4,000 steps.
With the defaults, 73% of the samples' first steps are right, 56% of second steps, 42%, 32% and
27% of third to fifth; the first wrong step is almost always a wrong result (tens digit only
645 of 1,600 samples, ones digit only 333, both 104; a wrong operand 12), 1.3% stop a step
early. In vLLM (``--check-vllm``): pass@1 0.395, coverage@16 0.850, no sample cut at 96 tokens.

The PRM is the weak part. Tries, all on the same 9,860 samples of the defaults' policy, 600
steps of batch 32 unless said (within-problem AUC: the chance that a right sample of a problem
outscores a wrong one of the same problem, what best-of-k depends on, "-" where not measured;
best-of-k by the aggregate "min" at k = 4 / 16):

                                                          within-problem AUC   best-of-4 / best-of-16
    the step token's embedding fresh:
      balanced cross-entropy                                        -            0.389 / 0.262
      + next-token loss on the correct steps (a copy of the
        policy's output layer), 600 / 2,000 steps                   -            0.432 / 0.317, 0.419 / 0.327
    the step token embedded as the separator:
      balanced cross-entropy, 3 layers (a fresh one on top)       0.587          0.411 / 0.262
      + next-token loss, balanced pairs of a problem's samples    0.614          0.447 / 0.372
      + value head (the defaults)                                 0.651          0.447 / 0.346
        value weight 3                                            0.588          0.420 / 0.350
        batch 16, 1,500 / 3,000 steps                         0.562 / 0.579      0.397 / 0.293, 0.407 / 0.307
        balanced pairs                                            0.598          0.409 / 0.310
        3 layers; 3 layers, batch 16, 2,000 steps             0.642 / 0.620      0.445 / 0.339, 0.430 / 0.342
      token-level labels (every completion token: is the text so far on the gold path)
        2 / 3 layers                                          0.593 / 0.567      0.398 / 0.265, 0.392 / 0.260
        4 layers (2 fresh)                                        0.575          0.393 / 0.280
        4 layers + "is this token the policy's first choice" read after the third
                                                                  0.578          0.395 / 0.270
    for reference: the policy's lowest token log-probability
      in the sample                                               0.721          0.530 / 0.569

None learned to check a step's arithmetic within a few thousand steps: every PRM separates
right from wrong steps across problems (per-step AUC about 0.82: later steps, longer chains and
some results are more often wrong) but ranks a problem's own samples only a little better than
chance, and best-of-k by the PRM peaks near k = 4 and then falls below pass@1. The top-scored
wrong samples show why: the PRM learned which results the policy tends to get wrong (it marks
down a one-digit result such as ``63 - 57 = 6`` whatever its truth), not whether they are
wrong. The step token sits where checking is hard for a small model: to check ``a op b = c`` at
the token after c it must find b's digits 4 or 5 tokens back depending on how many digits c
has, while the policy computes the result right after ``=``, where they are at fixed offsets;
the policy's own confidence, which a PRM with a layer on top of the policy's could in principle
read, ranks better (last row), but the fresh layers did not learn to within these budgets. The
value head (the only change that helped) makes the backbone work out ``a op b`` at the step
token; its loss is still 0.97 nats (of 100 classes) at 600 steps.

Measured with the defaults (``--evaluate``; 16 samples per held-out problem drawn with
transformers, eval seed 0):

        k   pass@k   majority@k   best-of-k by mean log-prob   best-of-k by PRM: last    min    prod
        1    0.389     0.389              0.389                          0.389        0.389  0.389
        2    0.551     0.389              0.474                          0.444        0.446  0.444
        4    0.699     0.460              0.526                          0.443        0.447  0.449
        8    0.816     0.509              0.552                          0.391        0.403  0.402
       16    0.920     0.535              0.560                          0.330        0.346  0.330

PRM: per-step AUC 0.820 on the 6,473 steps of these samples (50.1% correct; mean reward 0.624 on
correct steps, 0.307 on wrong ones); AUC of the final answer's correctness by "last" / "min" /
"prod": 0.758 / 0.751 / 0.748 pooled, 0.636 / 0.651 / 0.644 within a problem. So
conf/demo_search.yaml aggregates by "min". vLLM reproduces the PRM's step rewards to 2.3e-7
(``--check-vllm``). A search demo with this PRM tests the machinery; a PRM that makes search
pay is a larger model or a longer run than this script's budget.

Usage::

    .venv/bin/python demo/train_search.py                  # train both, save, evaluate
    .venv/bin/python demo/train_search.py --evaluate       # the table again, from the saved folders
    .venv/bin/python demo/train_search.py --check-vllm     # both folders in vLLM, as Troop loads them
    .venv/bin/troop run conf/demo_search.yaml
"""

import argparse
import math
import os
import random
import re
import sys
import time

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO_ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # the other demo scripts

import numpy as np  # noqa: E402
import torch  # noqa: E402
from transformers import (AutoTokenizer, GenerationConfig, LlamaConfig, LlamaForCausalLM,  # noqa: E402
                          PreTrainedTokenizerFast, Qwen2Config, Qwen2Model)

from jobs.problems.chains import STEP_SEPARATOR, chain_completion, chain_rows, chain_values  # noqa: E402
from train_model import build_tokenizer as build_demo_tokenizer, save_tokenizer  # noqa: E402
from train_reward import auc  # noqa: E402
from verifiers.numeric import check_numeric  # noqa: E402
from workers.reward import encode_input, reward_input, split_steps, with_step_tokens  # noqa: E402

STEP_TOKEN = "<extra_0>"  # the PRM's step token (workers.reward.RewardSpec.step_token's default)
EVAL_SET = dict(num_problems=100, seed=0)  # conf/demo_search.yaml's problems (3 to 5 operations)
# How conf/demo_search.yaml samples: temperature 1.0, top_p 1.0, at most 96 new tokens, stop at <eos>.
MAX_NEW_TOKENS = 96
EVAL_SAMPLES = 16
MAX_LEN = 256
PROMPT_RE = re.compile(r"What is (\d+(?: [-+] \d+)+)\?")
NUMBER = r"(0|[1-9]\d*)"  # as the gold completion writes numbers: no leading zeros
STEP_RE = re.compile(rf"{NUMBER} ([-+]) {NUMBER} = {NUMBER}")

Chain = tuple[tuple[int, ...], tuple[str, ...]]  # (operands, operators)


# --- problems ---

def chain_of(prompt: str) -> Chain:
    parts = PROMPT_RE.search(prompt).group(1).split(" ")
    return tuple(int(x) for x in parts[0::2]), tuple(parts[1::2])


def evaluation_problems() -> list[tuple[str, str, Chain]]:
    """(prompt, answer, chain) of every problem of the demo's evaluation set."""
    return [(row["prompt"], row["answer"], chain_of(row["prompt"])) for row in chain_rows(**EVAL_SET)]


def training_problems(count: int, seed: int) -> list[tuple[str, str, Chain]]:
    """`count` problems from `chain_rows(seed=seed)` (the evaluation set's distribution), none of
    them an expression of the evaluation set."""
    held_out = {chain for _, _, chain in evaluation_problems()}
    problems = [(row["prompt"], row["answer"], chain_of(row["prompt"]))
                for row in chain_rows(num_problems=count + len(held_out), seed=seed)]
    problems = [p for p in problems if p[2] not in held_out][:count]
    assert len(problems) == count
    return problems


# --- the tokenizer (one for both models) ---

def build_tokenizer(texts: list[str], vocab_size: int) -> PreTrainedTokenizerFast:
    """demo/train_model.py's tokenizer with the PRM's step token as a special token, so that one
    tokenizer serves both models."""
    return build_demo_tokenizer(texts, vocab_size, extra_special_tokens=(STEP_TOKEN,), max_length=MAX_LEN)


# --- shared training helpers ---

def lr_schedule(optimizer, steps: int, warmup: int):
    def factor(step: int) -> float:  # linear warmup, then cosine decay to 10% of the peak
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, steps - warmup)
        return 0.1 + 0.9 * 0.5 * (1.0 + math.cos(math.pi * progress))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def batches(count: int, batch_size: int, steps: int, seed: int):
    """`steps` lists of example indices: seeded shuffles of 0..count-1, one after the other."""
    rng = random.Random(seed)
    order: list[int] = []
    for _ in range(steps):
        if len(order) < batch_size:
            epoch = list(range(count))
            rng.shuffle(epoch)
            order += epoch
        indices, order = order[:batch_size], order[batch_size:]
        yield indices


def padded(rows: list[list[int]], pad_id: int, fill: int | None = None) -> torch.Tensor:
    """Right-padded rows; `fill` is the padding value (default `pad_id`)."""
    out = torch.full((len(rows), max(len(r) for r in rows)), pad_id if fill is None else fill, dtype=torch.long)
    for i, row in enumerate(rows):
        out[i, : len(row)] = torch.tensor(row)
    return out


# --- the policy ---

def policy_examples(tokenizer, problems) -> list[tuple[list[int], int]]:
    """Token ids of prompt + gold completion + <eos>, and where the completion starts."""
    examples = []
    for prompt, answer, chain in problems:
        completion = chain_completion(*chain)
        prompt_ids = tokenizer(prompt)["input_ids"]
        full_ids = tokenizer(prompt + completion)["input_ids"] + [tokenizer.eos_token_id]
        # The prompt alone must tokenize to a prefix of the full text, as it will at sampling time.
        assert full_ids[: len(prompt_ids)] == prompt_ids, prompt
        assert tokenizer.decode(full_ids[len(prompt_ids):], skip_special_tokens=True) == completion
        assert check_numeric(completion, answer).passed
        examples.append((full_ids, len(prompt_ids)))
    return examples


def train_policy(tokenizer, problems, args, start: float) -> LlamaForCausalLM:
    examples = policy_examples(tokenizer, problems)
    print(f"policy: {len(examples)} training problems, vocabulary {len(tokenizer)}, "
          f"longest example {max(len(ids) for ids, _ in examples)} tokens", flush=True)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=128,
        intermediate_size=512,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        head_dim=64,
        max_position_embeddings=MAX_LEN,
        rms_norm_eps=1e-5,
        rope_theta=10000.0,
        tie_word_embeddings=False,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        torch_dtype="float32",
    )
    torch.manual_seed(args.seed)
    model = LlamaForCausalLM(config)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01, betas=(0.9, 0.98))
    schedule = lr_schedule(optimizer, args.steps, args.warmup)
    for step, indices in enumerate(batches(len(examples), args.batch_size, args.steps, args.seed)):
        rows = [examples[i][0] for i in indices]
        input_ids = padded(rows, tokenizer.pad_token_id)
        attention = padded([[1] * len(r) for r in rows], 0)
        labels = padded([[-100] * n + ids[n:] for ids, n in (examples[i] for i in indices)], 0, fill=-100)
        loss = model(input_ids=input_ids, attention_mask=attention, labels=labels).loss
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        if step % 100 == 0 or step == args.steps - 1:
            print(f"policy step {step:5d}  loss {loss.item():.4f}  {time.time() - start:.0f}s", flush=True)
    model.eval()
    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        do_sample=True,
        temperature=1.0,
        top_p=1.0,
        max_new_tokens=MAX_NEW_TOKENS,
    )
    return model


@torch.no_grad()
def sample(policy, tokenizer, prompts: list[str], n: int, seed: int, chunk: int = 512) -> list[list[tuple[str, float]]]:
    """`n` completions of each prompt as the demo samples them: plain softmax sampling at
    temperature 1.0 (no top-k: transformers' `generate` would apply its default top_k=50, so the
    loop is written out, with a KV cache and one seeded generator), at most MAX_NEW_TOKENS new
    tokens, stopping at <eos>. Each completion: its text, decoded without special tokens as vLLM
    returns it, and its mean token log-probability (the <eos> included: vLLM's cumulative
    log-probability over its token count, Troop's default best-of-n score). Prompts are batched
    by token length (no padding) in a fixed order: the same arguments give the same completions."""
    generator = torch.Generator().manual_seed(seed)
    encoded = [tokenizer(prompt)["input_ids"] for prompt in prompts]
    by_length: dict[int, list[int]] = {}
    for i, ids in enumerate(encoded):
        by_length.setdefault(len(ids), []).append(i)
    results: list[list[tuple[str, float]]] = [[] for _ in prompts]
    eos = tokenizer.eos_token_id
    for length in sorted(by_length):
        rows = [i for i in by_length[length] for _ in range(n)]
        for begin in range(0, len(rows), chunk):
            owners = rows[begin : begin + chunk]
            out = policy(input_ids=torch.tensor([encoded[i] for i in owners]), use_cache=True)
            cache, logits = out.past_key_values, out.logits[:, -1]
            tokens, log_probs = [], []
            done = torch.zeros(len(owners), dtype=torch.bool)
            for step in range(MAX_NEW_TOKENS):
                probs = torch.softmax(logits.float(), dim=-1)
                token = torch.multinomial(probs, 1, generator=generator)
                tokens.append(token)
                log_probs.append(probs.gather(1, token).log())
                done |= token[:, 0] == eos
                if bool(done.all()) or step == MAX_NEW_TOKENS - 1:
                    break
                out = policy(input_ids=token, past_key_values=cache, use_cache=True)
                cache, logits = out.past_key_values, out.logits[:, -1]
            tokens, log_probs = torch.cat(tokens, dim=1), torch.cat(log_probs, dim=1)
            for row, owner in enumerate(owners):
                ids = tokens[row].tolist()
                count = ids.index(eos) + 1 if eos in ids else len(ids)
                results[owner].append((tokenizer.decode(ids[:count], skip_special_tokens=True),
                                       float(log_probs[row, :count].sum()) / count))
    return results


# --- step labels ---

def step_labels(completion: str, chain: Chain) -> list[bool]:
    """Per step of `completion` (split as Troop's scorer splits it): whether it is correct, i.e.
    it is `a op b = c` with a the true previous result (the first operand for the first step),
    op and b the expression's i-th operator and operand, and c the true i-th result. A step past
    the expression's last operation is wrong; so, nearly always, is every step after a wrong one."""
    operands, ops = chain
    values = chain_values(operands, ops)
    lefts = [operands[0]] + values[:-1]
    labels = []
    for i, step in enumerate(split_steps(completion, STEP_SEPARATOR)):
        match = STEP_RE.fullmatch(step)
        labels.append(bool(match) and i < len(ops) and (int(match.group(1)), match.group(2), int(match.group(3)),
                                                       int(match.group(4))) == (lefts[i], ops[i], operands[i + 1],
                                                                                values[i]))
    return labels


def local_values(completion: str) -> list[int]:
    """Per step: `a op b` of the step as written (whatever its own result), or -100 where the
    step is not `a op b = c` or the value leaves 0..99: the auxiliary target of the PRM."""
    values = []
    for step in split_steps(completion, STEP_SEPARATOR):
        match = STEP_RE.fullmatch(step)
        value = -100
        if match:
            a, op, b = int(match.group(1)), match.group(2), int(match.group(3))
            value = a + b if op == "+" else a - b
        values.append(value if 0 <= value <= 99 else -100)
    return values


def prm_text(tokenizer, prompt: str, completion: str) -> str:
    """Exactly what Troop's scorer feeds a process reward model without a chat template."""
    steps = split_steps(completion, STEP_SEPARATOR)
    return reward_input(tokenizer, prompt, with_step_tokens(steps, STEP_TOKEN))


# --- the process reward model ---

def prm_config(policy_config, tokenizer) -> Qwen2Config:
    return Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=policy_config.hidden_size,
        intermediate_size=policy_config.intermediate_size,
        num_hidden_layers=policy_config.num_hidden_layers,
        num_attention_heads=policy_config.num_attention_heads,
        num_key_value_heads=policy_config.num_key_value_heads,
        max_position_embeddings=MAX_LEN,
        rms_norm_eps=policy_config.rms_norm_eps,
        rope_parameters=dict(policy_config.rope_parameters),
        tie_word_embeddings=False,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        num_labels=2,
        id2label={0: "wrong", 1: "correct"},
        label2id={"wrong": 0, "correct": 1},
        architectures=["Qwen2ForProcessRewardModel"],
        torch_dtype="float32",
    )


class ProcessRewardModel(torch.nn.Module):
    """vLLM's Qwen2ForProcessRewardModel (Qwen2.5-Math-PRM's layout) in transformers, which has
    no class for it: a Qwen2Model `model` and a head `score` = Linear(h, h), ReLU,
    Linear(h, 2), as tests/tiny_reward.py builds it; forward gives per-token logits."""

    def __init__(self, config: Qwen2Config):
        super().__init__()
        self.config = config
        self.model = Qwen2Model(config)
        h = config.hidden_size
        self.score = torch.nn.Sequential(torch.nn.Linear(h, h), torch.nn.ReLU(), torch.nn.Linear(h, 2))

    def forward(self, input_ids, attention_mask=None):
        return self.score(self.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state)


def build_prm(policy, tokenizer) -> ProcessRewardModel:
    """The policy's embeddings, layers and final norm (Llama's layers are Qwen2's without the
    q/k/v biases, which start at zero) and a fresh head. The step token starts as the step
    separator's embedding: the PRM's text then reads to the backbone exactly as the policy's own
    text (tests: the hidden states are equal), so it starts from a model that works the chains."""
    model = ProcessRewardModel(prm_config(policy.config, tokenizer))
    missing, unexpected = model.model.load_state_dict(policy.model.state_dict(), strict=False)
    assert not unexpected and all(name.endswith(("q_proj.bias", "k_proj.bias", "v_proj.bias")) for name in missing)
    separator = tokenizer.convert_tokens_to_ids(tokenizer.tokenize(STEP_SEPARATOR))
    assert len(separator) == 1
    with torch.no_grad():
        for name in missing:
            model.model.get_parameter(name).zero_()
        embed = model.model.embed_tokens.weight
        embed[tokenizer.convert_tokens_to_ids(STEP_TOKEN)] = embed[separator[0]]
    return model


def prm_examples(tokenizer, problems, samples) -> list[tuple[list[int], list[bool], list[int]]]:
    """Distinct (token ids, step labels, step values) of the sampled completions, the ids as
    the scorer encodes them; the values are the auxiliary targets (`local_values`)."""
    step_id = tokenizer.convert_tokens_to_ids(STEP_TOKEN)
    seen, examples = set(), []
    for (prompt, _, chain), completions in zip(problems, samples):
        for completion in completions:
            text = prm_text(tokenizer, prompt, completion)
            if text in seen:
                continue
            seen.add(text)
            [ids] = encode_input(tokenizer, [text])
            labels = step_labels(completion, chain)
            if len(ids) > MAX_LEN or ids.count(step_id) != len(labels):
                continue
            examples.append((ids, labels, local_values(completion)))
    return examples


def train_prm(model, tokenizer, examples, args, start: float) -> None:
    """Cross-entropy of the 2 labels at every step token, each class weighted by the inverse of
    its share of the training steps (balanced); plus `args.prm_value_weight` times the
    cross-entropy of a 100-way head (trained, not saved) that reads the same hidden state and
    predicts the value of the step's `a op b` as written: an auxiliary task that asks the
    backbone to work out, at the step token, what the step's result should be."""
    step_id = tokenizer.convert_tokens_to_ids(STEP_TOKEN)
    share = np.mean([y for _, labels, _ in examples for y in labels])
    weight = torch.tensor([0.5 / (1 - share), 0.5 / share], dtype=torch.float32)
    value_head = torch.nn.Linear(model.config.hidden_size, 100)
    parameters = list(model.parameters()) + list(value_head.parameters())
    model.train()
    optimizer = torch.optim.AdamW(parameters, lr=args.prm_lr, weight_decay=0.01, betas=(0.9, 0.98))
    schedule = lr_schedule(optimizer, args.prm_steps, args.warmup)
    running = []
    for step, indices in enumerate(batches(len(examples), args.prm_batch_size, args.prm_steps, args.seed + 1)):
        rows = [examples[i][0] for i in indices]
        input_ids = padded(rows, tokenizer.pad_token_id)
        attention = padded([[1] * len(r) for r in rows], 0)
        hidden = model.model(input_ids=input_ids, attention_mask=attention).last_hidden_state[input_ids == step_id]
        labels = torch.tensor([int(y) for i in indices for y in examples[i][1]])
        values = torch.tensor([v for i in indices for v in examples[i][2]])
        loss = torch.nn.functional.cross_entropy(model.score(hidden), labels, weight=weight)
        value_loss = torch.nn.functional.cross_entropy(value_head(hidden), values)  # -100: no value
        optimizer.zero_grad()
        (loss + args.prm_value_weight * value_loss).backward()
        torch.nn.utils.clip_grad_norm_(parameters, 1.0)
        optimizer.step()
        schedule.step()
        running.append((loss.item(), value_loss.item()))
        if step % 100 == 0 or step == args.prm_steps - 1:
            mean_loss, mean_value = np.mean(running, axis=0)
            print(f"prm step {step:5d}  step loss {mean_loss:.4f}  value loss {mean_value:.4f}  "
                  f"{time.time() - start:.0f}s", flush=True)
            running = []
    model.eval()


def save_prm(model, tokenizer, out: str) -> None:
    from safetensors.torch import save_file

    os.makedirs(out, exist_ok=True)
    model.config.save_pretrained(out)
    state = {name: tensor.contiguous() for name, tensor in model.state_dict().items()}
    save_file(state, os.path.join(out, "model.safetensors"), metadata={"format": "pt"})
    save_tokenizer(tokenizer, out)


def load_prm(path: str) -> ProcessRewardModel:
    from safetensors.torch import load_file

    model = ProcessRewardModel(Qwen2Config.from_pretrained(path))
    model.load_state_dict(load_file(os.path.join(path, "model.safetensors")))
    return model.eval()


@torch.no_grad()
def step_rewards(model, tokenizer, prompts: list[str], completions: list[str], batch_size: int = 256) -> list[list[float]]:
    """Per completion, the probability of label 1 ("correct") at each step token, in float64, as
    Troop's scorer computes it from vLLM's logits."""
    step_id = tokenizer.convert_tokens_to_ids(STEP_TOKEN)
    ids = encode_input(tokenizer, [prm_text(tokenizer, p, c) for p, c in zip(prompts, completions)])
    out = []
    for begin in range(0, len(ids), batch_size):
        rows = ids[begin : begin + batch_size]
        input_ids = padded(rows, tokenizer.pad_token_id)
        attention = padded([[1] * len(r) for r in rows], 0)
        probs = model(input_ids, attention).double().softmax(dim=-1)[..., 1]
        out += [probs[r][input_ids[r] == step_id].tolist() for r in range(len(rows))]
    return out


# --- evaluation ---

def evaluate(policy, tokenizer, prm, seed: int) -> dict:
    """Samples EVAL_SAMPLES completions of each held-out problem, labels them (`numeric`, and
    per step), scores them with the PRM (if given) and prints the table: for k = 1, 2, 4, 8, 16,
    pass@k (coverage; unbiased), majority@k, best-of-k by the policy's mean token log-probability
    and, with the PRM, best-of-k by its "last", "min" and "prod" step-reward aggregates (exact
    expectations over k-subsets, ties sharing) -- all by `jobs.metrics.estimators`."""
    from jobs.metrics.estimators import best_of_k_by_problem, default_ks, pass_at_k, votes_by_problem

    start = time.time()
    problems = evaluation_problems()
    samples = sample(policy, tokenizer, [p for p, _, _ in problems], EVAL_SAMPLES, seed)
    flat = [(p, answer, chain, text, log_prob) for (p, answer, chain), per in zip(problems, samples)
            for text, log_prob in per]
    problem = np.repeat(np.arange(len(problems)), EVAL_SAMPLES)
    verdicts = [check_numeric(text, answer) for _, answer, _, text, _ in flat]
    passed = np.array([bool(v.passed) for v in verdicts])
    labels = [step_labels(text, chain) for _, _, chain, text, _ in flat]
    print_sample_summary(flat, labels, time.time() - start)

    ks = default_ks(EVAL_SAMPLES)
    correct = passed.astype(np.float64)
    answer_ids: dict = {}
    answers = np.array([-1 if v.answer is None else answer_ids.setdefault((p, v.answer), len(answer_ids))
                        for p, v in zip(problem, verdicts)])
    votes = votes_by_problem(problem, answers, correct, np.ones(len(flat)), ks, seed=seed)
    scores = {"logprob": np.array([log_prob for *_, log_prob in flat])}
    if prm is not None:
        rewards = step_rewards(prm, tokenizer, [f[0] for f in flat], [f[3] for f in flat])
        assert [len(r) for r in rewards] == [len(x) for x in labels]
        print_prm_summary(rewards, labels, problem, passed)
        scores.update({"PRM last": np.array([r[-1] for r in rewards]), "PRM min": np.array([min(r) for r in rewards]),
                       "PRM prod": np.array([math.prod(r) for r in rewards])})
    n, c = np.full(len(problems), EVAL_SAMPLES), np.bincount(problem, weights=passed, minlength=len(problems))
    table = {"pass@k": {k: float(pass_at_k(n, c, k).mean()) for k in ks},
             "majority@k": {k: float(np.mean(votes["majority_at_k"][0][k])) for k in ks}}
    for name, score in scores.items():
        table[f"best {name}"] = {k: float(best_of_k_by_problem(problem, score, correct, k).mean()) for k in ks}
    print("    k  " + "  ".join(f"{name:>14}" for name in table))
    for k in ks:
        print(f"{k:5d}  " + "  ".join(f"{table[name][k]:14.3f}" for name in table))
    return table


def print_sample_summary(flat, labels, seconds: float) -> None:
    ops = np.array([len(chain[1]) for _, _, chain, _, _ in flat])
    num_steps = np.array([len(x) for x in labels])
    by_step = " ".join(f"{np.mean([x[i] for x in labels if len(x) > i]):.2f}" for i in range(5))
    print(f"evaluation: {len(flat)} samples drawn in {seconds:.0f}s; {np.mean(num_steps < ops):.3f} have fewer "
          f"steps than operations, {np.mean(num_steps > ops):.3f} more; {np.mean([y for x in labels for y in x]):.3f} "
          f"of the steps are correct; steps 1 to 5: {by_step}", flush=True)


def print_prm_summary(rewards, labels, problem: np.ndarray, passed: np.ndarray) -> None:
    """The PRM's per-step AUC (correct vs wrong steps, pooled), and for each aggregate the AUC
    of final-answer correctness, pooled and within a problem (what best-of-k depends on)."""
    step_r = np.array([r for per in rewards for r in per])
    step_y = np.array([y for per in labels for y in per])
    print(f"PRM on the evaluation samples: per-step AUC {auc(step_r, step_y):.3f} ({step_y.mean():.3f} of the steps "
          f"correct), mean step reward {step_r[step_y].mean():.3f} on correct steps, "
          f"{step_r[~step_y].mean():.3f} on wrong ones", flush=True)
    for name, how in (("last", lambda r: r[-1]), ("min", min), ("prod", math.prod)):
        score = np.array([how(r) for r in rewards])
        within = np.nanmean([auc(score[problem == p], passed[problem == p]) for p in np.unique(problem)])
        print(f"  aggregate {name}: AUC of the final answer's correctness {auc(score, passed):.3f} pooled, "
              f"{within:.3f} within a problem", flush=True)


def check_vllm(policy_path: str, prm_path: str, seed: int) -> None:
    """Loads both folders in vLLM as Troop does (workers.engine.Engine, workers.reward.RewardEngine),
    samples the held-out problems with the policy and compares the PRM's step rewards of those
    samples with transformers'."""
    from workers.engine import Engine, EngineSpec
    from workers.reward import RewardEngine, RewardSpec
    from workers.sampling import SamplingSpec

    problems = evaluation_problems()
    prompts = [p for p, _, _ in problems]
    engine = Engine(EngineSpec(model=policy_path, dtype="float32", max_model_len=MAX_LEN, enforce_eager=True))
    try:
        spec = SamplingSpec(temperature=1.0, top_p=1.0, max_tokens=MAX_NEW_TOKENS)
        outputs = engine.generate(prompts, spec, EVAL_SAMPLES, [seed + i for i in range(len(prompts))])
    finally:
        engine.close()
    samples = [[o.text for o in output.outputs] for output in outputs]
    passed = np.array([[check_numeric(c, a).passed for c in per] for (_, a, _), per in zip(problems, samples)])
    finish = [o.finish_reason for output in outputs for o in output.outputs]
    print(f"vLLM policy: {passed.size} samples, pass@1 {passed.mean():.3f}, coverage@{EVAL_SAMPLES} "
          f"{passed.any(axis=1).mean():.3f}, finish reasons {sorted(set(finish))}, "
          f"{np.mean([f == 'length' for f in finish]):.3f} cut at max_tokens", flush=True)

    flat = [(p, c) for p, per in zip(prompts, samples) for c in per[:4]]
    scorer = RewardEngine(RewardSpec(model=prm_path, kind="process", dtype="float32", max_model_len=MAX_LEN,
                                     enforce_eager=True))
    try:
        scored = scorer.score([p for p, _ in flat], [c for _, c in flat])
    finally:
        scorer.close()
    expected = step_rewards(load_prm(prm_path), AutoTokenizer.from_pretrained(prm_path),
                            [p for p, _ in flat], [c for _, c in flat])
    assert all(s.step_rewards is not None for s in scored), [s.detail for s in scored if s.step_rewards is None]
    assert [len(s.step_rewards) for s in scored] == [len(e) for e in expected]
    worst = max(abs(a - b) for s, e in zip(scored, expected) for a, b in zip(s.step_rewards, e))
    print(f"vLLM PRM: {len(flat)} completions, {sum(len(e) for e in expected)} steps; largest |transformers - "
          f"vLLM| step reward difference {worst:.2e}", flush=True)
    for (p, c), s in list(zip(flat, scored))[:2]:
        print(repr(p + c), [round(r, 4) for r in s.step_rewards])
    assert worst < 1e-5, worst


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--policy-out", default=os.path.join(REPO_ROOT, "demo", "search_policy"))
    parser.add_argument("--prm-out", default=os.path.join(REPO_ROOT, "demo", "search_prm"))
    parser.add_argument("--stage", choices=["all", "policy", "prm"], default="all",
                        help="policy: train and save the policy only; prm: the PRM only, from the saved policy")
    parser.add_argument("--problems", type=int, default=40000, help="training problems of the policy")
    parser.add_argument("--steps", type=int, default=2400)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--prm-problems", type=int, default=2000)
    parser.add_argument("--prm-samples", type=int, default=8, help="completions sampled per PRM training problem")
    parser.add_argument("--prm-steps", type=int, default=600)
    parser.add_argument("--prm-lr", type=float, default=1e-3)
    parser.add_argument("--prm-batch-size", type=int, default=32)
    parser.add_argument("--prm-value-weight", type=float, default=1.0)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--vocab-size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--eval-seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--evaluate", action="store_true", help="only evaluate the saved folders")
    parser.add_argument("--no-evaluate", action="store_true", help="train and save, skip the evaluation")
    parser.add_argument("--check-vllm", action="store_true", help="only load the saved folders in vLLM and check them")
    args = parser.parse_args()

    random.seed(args.seed)
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    torch.use_deterministic_algorithms(True)
    start = time.time()

    if args.check_vllm:
        check_vllm(args.policy_out, args.prm_out, args.eval_seed)
        return
    if args.evaluate:
        policy = LlamaForCausalLM.from_pretrained(args.policy_out, dtype=torch.float32).eval()
        prm = load_prm(args.prm_out) if os.path.isfile(os.path.join(args.prm_out, "model.safetensors")) else None
        evaluate(policy, AutoTokenizer.from_pretrained(args.policy_out), prm, args.eval_seed)
        return

    if args.stage in ("all", "policy"):
        problems = training_problems(args.problems, seed=1)
        tokenizer = build_tokenizer([p + chain_completion(*chain) for p, _, chain in problems], args.vocab_size)
        policy = train_policy(tokenizer, problems, args, start)
        os.makedirs(args.policy_out, exist_ok=True)
        policy.save_pretrained(args.policy_out, safe_serialization=True)
        save_tokenizer(tokenizer, args.policy_out)
        reloaded = AutoTokenizer.from_pretrained(args.policy_out)
        probe = problems[0][0] + chain_completion(*problems[0][2])
        assert reloaded(probe)["input_ids"] == tokenizer(probe)["input_ids"], "saved tokenizer differs"
        assert reloaded.convert_tokens_to_ids(STEP_TOKEN) == tokenizer.convert_tokens_to_ids(STEP_TOKEN)
        assert len(reloaded.encode(STEP_TOKEN, add_special_tokens=False)) == 1
        print(f"policy saved to {args.policy_out} after {time.time() - start:.0f}s", flush=True)
    tokenizer = AutoTokenizer.from_pretrained(args.policy_out)
    policy = LlamaForCausalLM.from_pretrained(args.policy_out, dtype=torch.float32).eval()
    prm = None
    if args.stage in ("all", "prm"):
        problems = training_problems(args.prm_problems, seed=2)
        samples = [[text for text, _ in per] for per in
                   sample(policy, tokenizer, [p for p, _, _ in problems], args.prm_samples, args.seed)]
        examples = prm_examples(tokenizer, problems, samples)
        labels = [y for _, per, _ in examples for y in per]
        print(f"prm: {len(problems)} problems x {args.prm_samples} samples: {len(examples)} distinct, "
              f"{len(labels)} steps, {np.mean(labels):.3f} correct, longest {max(len(ids) for ids, _, _ in examples)} "
              f"tokens; sampled in {time.time() - start:.0f}s", flush=True)
        torch.manual_seed(args.seed)
        prm = build_prm(policy, tokenizer)
        train_prm(prm, tokenizer, examples, args, start)
        save_prm(prm, tokenizer, args.prm_out)
        reloaded = load_prm(args.prm_out)
        probe = [p for p, _, _ in problems[:4]], [per[0] for per in samples[:4]]
        assert step_rewards(reloaded, tokenizer, *probe) == step_rewards(prm, tokenizer, *probe), "saved PRM differs"
        prm = reloaded
        print(f"prm saved to {args.prm_out} after {time.time() - start:.0f}s", flush=True)
    if not args.no_evaluate:
        evaluate(policy, tokenizer, prm, args.eval_seed)


if __name__ == "__main__":
    main()
