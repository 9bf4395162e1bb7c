"""Train the demo's outcome reward model (ORM): a one-logit sequence classifier of demo/model's answers.

What it does
------------
1. Draws ``--questions`` (3,000) training questions, seeded, from the space demo/model trained
   on (every two-digit ``a op b``, ``op`` in ``+``/``-``) minus the demo's evaluation set
   (``train_model.EVAL_SET``, compared on ``(a, op, b)`` by ``train_model.held_out_questions``).
2. Samples ``--samples`` (8) completions of each from demo/model as the demo samples it
   (conf/demo.yaml): plain softmax sampling at temperature 1.0 (no top-k: transformers'
   ``generate`` would apply its default top_k=50 of the 54 tokens, so the loop is written out,
   with a KV cache and one seeded generator), at most 8 new tokens, stopping at ``<eos>``; the
   text is decoded without special tokens, as vLLM returns it. Each completion is labelled by
   ``verifiers.numeric.check_numeric`` against the question's answer (about 29% are correct).
3. Trains a ``LlamaForSequenceClassification`` (num_labels=1; demo/model's architecture: hidden
   128, 2 layers, 2 heads of dim 64 -- vLLM's CPU attention refuses smaller heads --, float32;
   ``pad_token_id`` = ``<pad>``; ``problem_type`` "multi_label_classification", under which
   transformers' loss for one label is binary cross-entropy on the logit and vLLM's default
   activation the sigmoid). Its backbone starts as demo/model's (embeddings, layers, final
   norm), its head at zero. It reads exactly what Troop's scorer feeds it
   (``workers.reward.reward_input``/``encode_input``, no chat template): the prompt text then the
   completion text, tokenized with the tokenizer's ``<bos>`` prepended, the logit read at the last
   token. The loss is
   - binary cross-entropy on that logit, on balanced pairs (``--balance pairs``): each step takes
     32 training questions that have both correct and wrong samples and, for each, one of its
     distinct correct texts and one of its distinct wrong texts, drawn by a seeded generator; and
   - plus (``--lm-weight`` 1) the policy's next-token loss on the answer tokens of the pair's
     correct text, read through a copy of demo/model's output layer from the last hidden state
     (the copy is trained and dropped, not saved).
   AdamW, lr 1e-3, 50 warmup steps then cosine to 10%, batch 64 (32 pairs), 3,000 steps.
4. Saves ``--out`` (demo/reward_model): model.safetensors, config.json (architectures
   ["LlamaForSequenceClassification"]) and demo/model's tokenizer files; about 2.1 MB.
5. Evaluates (unless ``--no-evaluate``; alone with ``--evaluate``): samples 64 completions of
   each of the 100 held-out demo questions from demo/model (``--eval-seed`` 0), labels them with
   ``numeric``, scores them with the ORM (transformers, raw logit) and prints, for k = 1, 2, 4,
   ..., 64, the means over questions of: pass@k (unbiased), best-of-k by reward and best-of-k by
   the mean token log-probability (exact expectations over k-subsets, ties sharing), majority@k,
   and the vote weighted by sigmoid(reward) -- all by ``jobs.metrics.estimators``, the functions
   Troop's own metrics use.
``--check-vllm`` loads ``--out`` in vLLM's pooling runner, as Troop's scorer does, and compares
its logits (``PoolingParams(use_activation=False)``) and ``classify`` probabilities with
transformers' on a few texts.

Everything is deterministic: fixed seeds, ``torch.use_deterministic_algorithms(True)``, a fixed
thread count and a fixed batch order; running it twice gives a byte-identical
``model.safetensors`` on the same machine and software. The default is one thread, not two:
on a machine shared with other jobs, two threads made a training step 20 to 25 times slower
(5 s instead of 0.2 s) while one thread was unaffected.

Calibration
-----------
A reward model for best-of-k has to rank a question's own samples, which differ mostly in one
digit (about 5 in 6 of the policy's wrong answers have a wrong ones digit), so the number that
matters is the per-question AUC (the chance that a correct sample of a question outscores a
wrong one of the same question), not the pooled one. Tries (evaluated as above; per-question AUC,
best-of-k by reward at k = 4 / 64, the sigmoid-weighted vote at k = 64):

    plain BCE on all samples, 2,000 questions x 8, 1,000 steps, lr 1e-3
                                            0.495, 0.222 / 0.050, 0.490
      the same at lr 3e-3, 1,500 steps      0.467, 0.231 / 0.054, 0.495
      + the next-token loss (2 layers / 4 layers: 2 fresh ones on top)
                                            0.530, 0.258 / 0.060, 0.500;  0.535, 0.255 / 0.050, 0.500
    balanced pairs, 3,000 questions x 8, 1,000 steps
      without the next-token loss           0.506, 0.272 / 0.100, 0.480
      with it, 2 / 3 / 4 layers             0.627, 0.294 / 0.060, 0.510;  0.575, 0.281 / 0.110, 0.510;
                                            0.608, 0.308 / 0.090, 0.490
      4 layers, the policy's weights at 0.2x the lr, 1,000 / 1,500 steps
                                            0.560, 0.271 / 0.080, 0.490;  0.527, 0.249 / 0.040, 0.500
      with it, 3,000 steps: 4 layers        0.753, 0.402 / 0.250, 0.670
                            2 layers        0.873, 0.515 / 0.400, 0.710   (the defaults)
                            2 layers, next-token weight 2
                                            0.674, 0.334 / 0.170, 0.570

Plain BCE on the policy's samples learns the question's difficulty (pooled AUC 0.63) and a
prior over final digits, not whether the answer is right: within a question it ranks at chance,
and best-of-k by reward falls as k grows, because the highest reward among many samples goes to
a rare wrong one. Two changes made it learn to check answers: balanced pairs (no difficulty left
to learn, only the difference between a question's right and wrong texts) and the next-token
loss (the backbone keeps learning the arithmetic it has to check; at the full lr its loss first
doubles, then falls well below the policy's). Even so the classification loss stays near log 2
for about 1,000 steps and only then falls, steeply, so the run needs about 3,000 steps; where
it takes off varies from run to run (compare the 2- and 4-layer runs, and the weight-2 run).

Measured with the defaults (the table ``--evaluate`` prints; 64 samples per held-out question
drawn with transformers, eval seed 0; pass@1 0.275 and pass@64 0.990 here, against 0.280 and
0.980 in vLLM's ``troop run conf/demo.yaml``):

        k   pass@k   best-of-k reward   best-of-k log-prob   majority@k   vote weighted by sigmoid
        1    0.275        0.275              0.275              0.275           0.275
        2    0.451        0.406              0.381              0.275           0.406
        4    0.651        0.515              0.448              0.338           0.527
        8    0.814        0.554              0.461              0.399           0.618
       16    0.913        0.520              0.459              0.447           0.674
       32    0.961        0.454              0.460              0.479           0.700
       64    0.990        0.400              0.460              0.495           0.710

The ORM separates a question's right and wrong samples well (per-question AUC 0.873; pooled
0.883). Best-of-k by reward beats best-of-k by log-prob and majority for k up to 16 (0.554 vs
0.461 and 0.399 at k = 8) but peaks at k = 8 and falls below both at k = 64 (0.400 vs 0.460
and 0.495): the top reward of 64 samples goes to a wrong one in 60 of the 100 questions, mostly
an answer with the right ones digit and a wrong tens digit (' 83' for 1 + 92), which the model
checks less well than the ones digit. Weighting the vote by sigmoid(reward) beats everything at
every k (0.710 at k = 64). A 5,000-step run (``--steps 5000``, about 11 minutes here) improves
all of it a little -- per-question AUC 0.884, best-of-k by reward 0.571 at k = 8 and 0.430 at
k = 64, the weighted vote 0.800 at k = 64 -- without fixing the fall at large k. Because the
two losses push the pair labels to half and half, sigmoid(reward) is no calibrated probability
of being right (mean 0.69 on right samples, 0.22 on wrong ones, where 29% are right).

Training takes about 5 minutes on one core of a busy 2-core machine (sampling 30 s, then about
0.09 s a step; 4.5 CPU-minutes with the evaluation); the model directory is about 2.1 MB.
vLLM (0.32, CPU, float32) loads it with ``runner="pooling"``; its raw logits agree with
transformers' to 5e-6 and ``classify`` gives their sigmoid (``--check-vllm``).

Usage::

    .venv/bin/python demo/train_reward.py                  # train, save demo/reward_model, evaluate
    .venv/bin/python demo/train_reward.py --evaluate       # the table again, from the saved model
    .venv/bin/python demo/train_reward.py --check-vllm     # vLLM's pooling runner vs transformers
"""

import argparse
import copy
import math
import os
import random
import sys
import time

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO_ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from transformers import AutoTokenizer, LlamaForCausalLM, LlamaForSequenceClassification  # noqa: E402

from jobs.problems.arithmetic import OPERATORS, arithmetic_rows, format_prompt  # noqa: E402
from train_model import EVAL_SET, PROMPT_RE, held_out_questions, save_tokenizer  # noqa: E402
from verifiers.numeric import check_numeric  # noqa: E402

# How the demo samples (conf/demo.yaml): temperature 1.0, top_p 1.0, at most 8 new tokens, stop at <eos>.
MAX_NEW_TOKENS = 8
EVAL_SAMPLES = 64


# --- questions ---

def question_of(prompt: str) -> tuple[int, str, int]:
    match = PROMPT_RE.search(prompt)
    return int(match.group(1)), match.group(2), int(match.group(3))


def training_questions(count: int, seed: int) -> list[tuple[str, str]]:
    """(prompt, answer) of `count` questions drawn (seeded, without replacement) from every
    two-digit +/- question outside the demo's evaluation set, the space demo/model trained on."""
    held_out = held_out_questions()
    space = [(a, op, b) for op in EVAL_SET["ops"] for a in range(10 ** EVAL_SET["digits"])
             for b in range(10 ** EVAL_SET["digits"]) if (a, op, b) not in held_out]
    chosen = random.Random(seed).sample(space, count)
    pairs = [(format_prompt(a, op, b), str(OPERATORS[op](a, b))) for a, op, b in chosen]
    assert not {question_of(prompt) for prompt, _ in pairs} & held_out
    return pairs


def evaluation_questions() -> list[tuple[str, str]]:
    return [(row["prompt"], row["answer"]) for row in arithmetic_rows(**EVAL_SET)]


# --- sampling from the policy ---

@torch.no_grad()
def sample(policy, tokenizer, prompts: list[str], n: int, seed: int, chunk: int = 1024) -> list[list[dict]]:
    """`n` completions of each prompt as the demo samples them: plain softmax sampling at
    temperature 1.0 (no top-k, no top-p), at most MAX_NEW_TOKENS new tokens, stopping at <eos>.
    Each completion: its text (decoded without special tokens, as vLLM returns it), its number
    of tokens (the <eos> included, as vLLM counts them) and its mean token log-probability
    (vLLM's cumulative_logprob / num_tokens, the demo's default score).

    Prompts are batched by token length, so no prompt is padded, and the chunks are cut in a
    fixed order from one seeded generator: the same arguments give the same completions."""
    generator = torch.Generator().manual_seed(seed)
    encoded = [tokenizer(prompt)["input_ids"] for prompt in prompts]
    by_length: dict[int, list[int]] = {}
    for i, ids in enumerate(encoded):
        by_length.setdefault(len(ids), []).append(i)
    results: list[list[dict]] = [[] for _ in prompts]
    eos = tokenizer.eos_token_id
    for length in sorted(by_length):
        rows = [i for i in by_length[length] for _ in range(n)]
        for start in range(0, len(rows), chunk):
            owners = rows[start : start + chunk]
            input_ids = torch.tensor([encoded[i] for i in owners])
            out = policy(input_ids=input_ids, use_cache=True)
            cache, logits = out.past_key_values, out.logits[:, -1]
            tokens = torch.zeros((len(owners), 0), dtype=torch.long)
            log_probs = torch.zeros((len(owners), 0))
            done = torch.zeros(len(owners), dtype=torch.bool)
            for step in range(MAX_NEW_TOKENS):
                step_log_probs = torch.log_softmax(logits.float(), dim=-1)
                token = torch.multinomial(step_log_probs.exp(), 1, generator=generator)
                tokens = torch.cat([tokens, token], dim=1)
                log_probs = torch.cat([log_probs, step_log_probs.gather(1, token)], dim=1)
                done |= token[:, 0] == eos
                if bool(done.all()) or step == MAX_NEW_TOKENS - 1:
                    break
                out = policy(input_ids=token, past_key_values=cache, use_cache=True)
                cache, logits = out.past_key_values, out.logits[:, -1]
            for row, owner in enumerate(owners):
                ids = tokens[row].tolist()
                count = ids.index(eos) + 1 if eos in ids else len(ids)
                results[owner].append({
                    "text": tokenizer.decode(ids[:count], skip_special_tokens=True),
                    "num_tokens": count,
                    "mean_log_prob": float(log_probs[row, :count].sum()) / count,
                })
    return results


def label(samples: list[list[dict]], answers: list[str]) -> None:
    """Each sample's `numeric` verdict against its question's answer: `passed`, `answer`."""
    for per_question, answer in zip(samples, answers):
        for s in per_question:
            verdict = check_numeric(s["text"], answer)
            s["passed"], s["answer"] = bool(verdict.passed), verdict.answer


# --- the reward model ---

def reward_text(prompt: str, completion: str) -> str:
    """What Troop's scorer feeds an ORM without a chat template (workers.reward.reward_input):
    the prompt text, then the completion text directly after it. The tokenizer prepends <bos>."""
    return prompt + completion


def encode(tokenizer, texts: list[str]) -> list[list[int]]:
    ids = tokenizer(texts)["input_ids"]  # add_special_tokens: <bos> first, as the scorer encodes them
    assert all(row[0] == tokenizer.bos_token_id and tokenizer.pad_token_id not in row for row in ids)
    return ids


def make_batch(ids: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded; LlamaForSequenceClassification reads the last non-pad token."""
    length = max(len(row) for row in ids)
    input_ids = torch.full((len(ids), length), pad_id, dtype=torch.long)
    attention = torch.zeros((len(ids), length), dtype=torch.long)
    for r, row in enumerate(ids):
        input_ids[r, : len(row)] = torch.tensor(row)
        attention[r, : len(row)] = 1
    return input_ids, attention


@torch.no_grad()
def rewards(model, tokenizer, texts: list[str], batch_size: int = 512) -> np.ndarray:
    """The ORM's raw logit for each text."""
    ids = encode(tokenizer, texts)
    out = []
    for start in range(0, len(ids), batch_size):
        input_ids, attention = make_batch(ids[start : start + batch_size], tokenizer.pad_token_id)
        out.append(model(input_ids=input_ids, attention_mask=attention).logits[:, 0].double())
    return torch.cat(out).numpy()


def build_reward_model(policy, init: str, layers: int) -> LlamaForSequenceClassification:
    """The policy's architecture with `layers` layers and a one-logit head. `init` "policy": the
    policy's embeddings and its layers first (they already read arithmetic), any further layers
    fresh with their output projections at zero, so that they start as the identity; "random":
    everything fresh. The head starts at zero: every reward starts at 0 (probability 0.5)."""
    config = copy.deepcopy(policy.config)
    config.architectures = ["LlamaForSequenceClassification"]
    config.num_hidden_layers = layers
    config.num_labels = 1
    config.id2label, config.label2id = {0: "correct"}, {"correct": 0}
    # transformers' loss for one label under this problem type is binary cross-entropy on the
    # logit, the loss trained here; vLLM's default activation for it is the sigmoid.
    config.problem_type = "multi_label_classification"
    config.pad_token_id = policy.config.pad_token_id
    config.use_cache = False
    assert config.head_dim == 64, "vLLM's CPU attention needs head_dim 64"
    model = LlamaForSequenceClassification(config)
    if init == "policy":
        policy_layers = policy.config.num_hidden_layers
        assert layers >= policy_layers
        with torch.no_grad():
            model.model.embed_tokens.load_state_dict(policy.model.embed_tokens.state_dict())
            model.model.norm.load_state_dict(policy.model.norm.state_dict())
            for i in range(policy_layers):
                model.model.layers[i].load_state_dict(policy.model.layers[i].state_dict())
            for layer in model.model.layers[policy_layers:]:
                layer.self_attn.o_proj.weight.zero_()
                layer.mlp.down_proj.weight.zero_()
    with torch.no_grad():
        model.score.weight.zero_()
    return model


def train(model, policy, examples: list[tuple[list[int], float, int]], groups: list[tuple[list[int], list[int]]],
          args, pad_id: int, start: float) -> None:
    """Binary cross-entropy on the reward logit of each (text, label), on balanced pairs or on
    every sample (`args.balance`); with `args.lm_weight`, plus that weight times the policy's
    next-token loss on the answer tokens of the batch's correct texts, read from the hidden state
    at the policy's depth through a copy of the policy's output layer (and of its final norm when
    the model has more layers than the policy): an auxiliary task that keeps the backbone
    computing answers. The copies are trained too, and not saved."""
    model.train()
    depth = policy.config.num_hidden_layers
    aux_norm, aux_head = copy.deepcopy(policy.model.norm), copy.deepcopy(policy.lm_head)
    # What comes from the policy learns at backbone_lr_scale times the rate of what is fresh (the
    # new layers, the head): a full-rate restart of the policy's weights first undoes what it knows.
    fresh = [p for layer in model.model.layers[depth:] for p in layer.parameters()] + list(model.score.parameters())
    fresh_ids = {id(p) for p in fresh}
    pretrained = [p for p in model.parameters() if id(p) not in fresh_ids]
    if args.lm_weight:
        pretrained += list(aux_norm.parameters()) + list(aux_head.parameters())
    scale = args.backbone_lr_scale if args.init == "policy" else 1.0
    parameters = fresh + pretrained
    optimizer = torch.optim.AdamW([{"params": fresh, "lr": args.lr}, {"params": pretrained, "lr": args.lr * scale}],
                                  weight_decay=0.01, betas=(0.9, 0.98))

    def lr_factor(step: int) -> float:  # linear warmup, then cosine decay to 10% of the peak
        if step < args.warmup:
            return (step + 1) / args.warmup
        progress = (step - args.warmup) / max(1, args.steps - args.warmup)
        return 0.1 + 0.9 * 0.5 * (1.0 + math.cos(math.pi * progress))

    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor)
    bce = torch.nn.BCEWithLogitsLoss()
    order_rng = random.Random(args.seed)
    order: list[int] = []
    running: list[tuple[float, float]] = []
    for step in range(args.steps):
        if args.balance == "pairs":  # half the batch's questions, one correct and one wrong text each
            if len(order) < args.batch_size // 2:
                epoch = [q for q, (right, wrong) in enumerate(groups) if right and wrong]
                order_rng.shuffle(epoch)
                order += epoch
            questions, order = order[: args.batch_size // 2], order[args.batch_size // 2 :]
            indices = [order_rng.choice(groups[q][side]) for q in questions for side in (0, 1)]
        else:
            if len(order) < args.batch_size:
                epoch = list(range(len(examples)))
                order_rng.shuffle(epoch)
                order += epoch
            indices, order = order[: args.batch_size], order[args.batch_size :]
        batch = [examples[i] for i in indices]
        input_ids, attention = make_batch([ids for ids, _, _ in batch], pad_id)
        target = torch.tensor([y for _, y, _ in batch])
        out = model(input_ids=input_ids, attention_mask=attention, output_hidden_states=bool(args.lm_weight))
        loss = bce(out.logits[:, 0], target)
        lm_loss = torch.zeros(())
        if args.lm_weight:
            labels = torch.full_like(input_ids, -100)
            for r, (ids, y, answer_start) in enumerate(batch):
                if y == 1.0:
                    labels[r, answer_start : len(ids)] = input_ids[r, answer_start : len(ids)]
            hidden = out.hidden_states[depth]
            if len(model.model.layers) > depth:  # the last entry is already through the final norm
                hidden = aux_norm(hidden)
            if bool((labels != -100).any()):
                logits = aux_head(hidden)[:, :-1]
                lm_loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]),
                                                            labels[:, 1:].reshape(-1))
                loss = loss + args.lm_weight * lm_loss
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(parameters, 1.0)
        optimizer.step()
        schedule.step()
        running.append((loss.item() - args.lm_weight * lm_loss.item(), lm_loss.item()))
        if step % 100 == 0 or step == args.steps - 1:
            mean_bce, mean_lm = np.mean(running, axis=0)
            print(f"step {step:5d}  bce {mean_bce:.4f}" + (f"  lm {mean_lm:.4f}" if args.lm_weight else "")
                  + f"  {time.time() - start:.0f}s", flush=True)
            running = []
    model.eval()


def save(model, tokenizer, out: str) -> None:
    os.makedirs(out, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    save_tokenizer(tokenizer, out)  # as demo/train_model.py writes it


# --- evaluation ---

def auc(scores: np.ndarray, positive: np.ndarray) -> float:
    """Probability that a random correct sample outscores a random wrong one (ties: half)."""
    from scipy.stats import rankdata

    ranks = rankdata(scores)
    pos, neg = int(positive.sum()), int((~positive).sum())
    if pos == 0 or neg == 0:
        return float("nan")
    return float((ranks[positive].sum() - pos * (pos + 1) / 2) / (pos * neg))


def evaluate(policy, model, tokenizer, seed: int) -> dict:
    """Samples EVAL_SAMPLES completions of each held-out demo question, labels them with the
    `numeric` verifier, scores them with the ORM and prints the table of metrics."""
    from jobs.metrics.estimators import best_of_k_by_problem, default_ks, pass_at_k, votes_by_problem

    start = time.time()
    questions = evaluation_questions()
    prompts, answers = [p for p, _ in questions], [a for _, a in questions]
    samples = sample(policy, tokenizer, prompts, EVAL_SAMPLES, seed)
    label(samples, answers)
    texts = [reward_text(p, s["text"]) for p, per in zip(prompts, samples) for s in per]
    reward = rewards(model, tokenizer, texts)
    print(f"evaluation: {len(texts)} samples drawn and scored in {time.time() - start:.0f}s", flush=True)

    flat = [s for per in samples for s in per]
    problem = np.repeat(np.arange(len(prompts)), EVAL_SAMPLES)
    passed = np.array([s["passed"] for s in flat])
    log_prob = np.array([s["mean_log_prob"] for s in flat])
    ids: dict = {}
    answer_ids = np.array([-1 if s["answer"] is None else ids.setdefault((p, s["answer"]), len(ids))
                           for p, s in zip(problem, flat)])
    ks = default_ks(EVAL_SAMPLES)
    n = np.full(len(prompts), EVAL_SAMPLES)
    c = np.bincount(problem, weights=passed, minlength=len(prompts))
    correct = passed.astype(np.float64)
    sigmoid = 1.0 / (1.0 + np.exp(-reward))
    votes = votes_by_problem(problem, answer_ids, correct, np.ones(len(flat)), ks, seed=seed)
    weighted = votes_by_problem(problem, answer_ids, correct, sigmoid, ks, seed=seed)
    table = {
        "pass@k": {k: float(pass_at_k(n, c, k).mean()) for k in ks},
        "best-of-k reward": {k: float(best_of_k_by_problem(problem, reward, correct, k).mean()) for k in ks},
        "best-of-k logprob": {k: float(best_of_k_by_problem(problem, log_prob, correct, k).mean()) for k in ks},
        "majority@k": {k: float(np.mean(votes["majority_at_k"][0][k])) for k in ks},
        "weighted@k sigmoid": {k: float(np.mean(weighted["weighted_at_k"][0][k])) for k in ks},
    }
    per_question_auc = np.nanmean([auc(reward[problem == p], passed[problem == p]) for p in range(len(prompts))])
    print(f"ORM on the evaluation samples: AUC {auc(reward, passed):.3f} (correct vs wrong, pooled), "
          f"per-question AUC {per_question_auc:.3f}, "
          f"mean sigmoid {sigmoid[passed].mean():.3f} on correct / {sigmoid[~passed].mean():.3f} on wrong")
    names = list(table)
    print("    k  " + "  ".join(f"{name:>18}" for name in names))
    for k in ks:
        print(f"{k:5d}  " + "  ".join(f"{table[name][k]:18.3f}" for name in names))
    return table


def check_vllm(path: str, model, tokenizer) -> None:
    """Loads the saved model in vLLM's pooling runner, as Troop's scorer does, and compares its
    scores of a few texts with transformers': `classify` (sigmoid of the logit) and
    `PoolingParams(use_activation=False)` (the raw logit, what Troop asks for)."""
    from vllm import LLM, PoolingParams

    questions = evaluation_questions()[:3]
    texts = [reward_text(p, c) for p, a in questions for c in (" " + a, " " + str(int(a) + 1))]
    expected = rewards(model, tokenizer, texts)
    # On the CPU vLLM reads gpu_memory_utilization as a share of host RAM and refuses to start on a
    # busy machine; a fixed KV cache (as workers.engine does) avoids that, and this model needs little.
    llm = LLM(model=path, runner="pooling", dtype="float32", max_model_len=128, enforce_eager=True,
              kv_cache_memory_bytes=1 << 28)
    try:
        probs = [o.outputs.probs[0] for o in llm.classify(texts, use_tqdm=False)]
        raw = llm.classify(texts, pooling_params=PoolingParams(use_activation=False), use_tqdm=False)
        logits = [o.outputs.probs[0] for o in raw]
        assert [list(o.prompt_token_ids) for o in raw] == encode(tokenizer, texts), "vLLM tokenizes differently"
    finally:
        llm.llm_engine.engine_core.shutdown()
    print("text | transformers logit | vLLM raw logit | sigmoid | vLLM classify")
    for text, e, r, pr in zip(texts, expected, logits, probs):
        print(f"{text!r} | {e:+.6f} | {r:+.6f} | {1 / (1 + math.exp(-e)):.6f} | {pr:.6f}")
    worst = max(abs(e - r) for e, r in zip(expected, logits))
    print(f"largest |transformers - vLLM| logit difference: {worst:.2e}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=os.path.join(REPO_ROOT, "demo", "reward_model"))
    parser.add_argument("--policy", default=os.path.join(REPO_ROOT, "demo", "model"))
    parser.add_argument("--questions", type=int, default=3000)
    parser.add_argument("--samples", type=int, default=8, help="completions sampled per training question")
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--balance", choices=["none", "pairs"], default="pairs")
    parser.add_argument("--lm-weight", type=float, default=1.0)
    parser.add_argument("--backbone-lr-scale", type=float, default=1.0)
    parser.add_argument("--init", choices=["policy", "random"], default="policy")
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--eval-seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--evaluate", action="store_true", help="only evaluate the model already at --out")
    parser.add_argument("--no-evaluate", action="store_true", help="train and save, skip the evaluation")
    parser.add_argument("--check-vllm", action="store_true",
                        help="only load the model at --out in vLLM's pooling runner and compare its scores "
                             "with transformers'")
    args = parser.parse_args()

    random.seed(args.seed)
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    torch.use_deterministic_algorithms(True)
    start = time.time()

    tokenizer = AutoTokenizer.from_pretrained(args.policy)
    policy = LlamaForCausalLM.from_pretrained(args.policy, dtype=torch.float32).eval()
    if args.check_vllm:
        check_vllm(args.out, LlamaForSequenceClassification.from_pretrained(args.out, dtype=torch.float32).eval(),
                   AutoTokenizer.from_pretrained(args.out))
        return
    if args.evaluate:
        model = LlamaForSequenceClassification.from_pretrained(args.out, dtype=torch.float32).eval()
        evaluate(policy, model, AutoTokenizer.from_pretrained(args.out), args.eval_seed)
        return

    pairs = training_questions(args.questions, args.seed)
    prompts = [p for p, _ in pairs]
    samples = sample(policy, tokenizer, prompts, args.samples, args.seed)
    label(samples, [a for _, a in pairs])
    texts = [reward_text(p, s["text"]) for p, per in zip(prompts, samples) for s in per]
    targets = [float(s["passed"]) for per in samples for s in per]
    answer_starts = [len(tokenizer(p)["input_ids"]) for p, per in zip(prompts, samples) for _ in per]
    examples = list(zip(encode(tokenizer, texts), targets, answer_starts))
    # The prompt alone tokenizes to a prefix of prompt + completion (the auxiliary loss relies on it).
    assert all(ids[:n] == tokenizer(p)["input_ids"] for (ids, _, n), p in
               zip(examples, [p for p, per in zip(prompts, samples) for _ in per]))
    print(f"{len(pairs)} training questions x {args.samples} samples: {len(examples)} examples, "
          f"{np.mean(targets):.3f} correct, {len(set(texts))} distinct texts, "
          f"longest {max(len(ids) for ids, _, _ in examples)} tokens; sampled in {time.time() - start:.0f}s",
          flush=True)

    model = build_reward_model(policy, args.init, args.layers)
    groups = []  # per question: the indices of its distinct correct texts, and of its distinct wrong ones
    for q in range(len(pairs)):
        first: dict[str, int] = {}
        for i in range(q * args.samples, (q + 1) * args.samples):
            first.setdefault(texts[i], i)
        groups.append(([i for i in first.values() if targets[i]], [i for i in first.values() if not targets[i]]))
    print(f"{sum(1 for right, wrong in groups if right and wrong)} questions have correct and wrong samples",
          flush=True)
    train(model, policy, examples, groups, args, tokenizer.pad_token_id, start)
    save(model, tokenizer, args.out)
    reloaded = LlamaForSequenceClassification.from_pretrained(args.out, dtype=torch.float32).eval()
    probe = texts[:4]
    assert np.allclose(rewards(reloaded, tokenizer, probe), rewards(model, tokenizer, probe)), "saved model differs"
    print(f"saved to {args.out} after {time.time() - start:.0f}s", flush=True)
    if not args.no_evaluate:
        evaluate(policy, reloaded, AutoTokenizer.from_pretrained(args.out), args.eval_seed)


if __name__ == "__main__":
    main()
