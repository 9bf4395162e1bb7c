"""Train the tiny, deliberately undertrained demo causal LM for two-digit arithmetic.

What it does
------------
1. Builds the training corpus from every question ``a op b`` with ``a, b`` in 0..99 and ``op``
   in ``+``/``-`` (20,000 questions), formatted exactly as the demo asks them
   (``jobs.problems.arithmetic.format_prompt(a, op, b) + " " + answer + EOS``), and removes every
   question of the demo's evaluation set, ``arithmetic_rows(num_problems=100, seed=0, digits=2,
   ops="+-")`` (compared on ``(a, op, b)``), so the model is always evaluated on questions it
   never saw in training.
2. Trains a small byte-level BPE tokenizer with the ``tokenizers`` package (digits split one per
   token by ``pre_tokenizers.Digits(individual_digits=True)``; special tokens ``<bos>``, ``<eos>``,
   ``<pad>``, ``<unk>``; a post-processor that prepends ``<bos>``) and saves it as a
   ``transformers.PreTrainedTokenizerFast`` so vLLM and transformers both load it and stop at
   ``<eos>``. The BPE runs out of merges at 54 tokens, below ``--vocab-size`` 64.
3. Trains a ``LlamaForCausalLM`` (hidden 128, 2 layers, 2 heads of dim 64 -- vLLM's CPU attention
   refuses head_dim 16 -- 2 kv heads, intermediate 512, float32) with AdamW on the answer tokens
   (plus ``<eos>``) only, for a fixed, small number of steps, and saves it with safetensors and a
   generation config.

Everything is deterministic: fixed seeds, ``torch.use_deterministic_algorithms(True)``, a fixed
thread count and a fixed batch order, so running it twice gives a byte-identical
``model.safetensors`` on the same machine and software (floating-point results may differ on a
different CPU or torch build).

Calibration
-----------
The model is meant to be *weak*, so that repeated sampling visibly helps: with temperature 1.0,
top_p 1.0 and max_tokens 8 on the 100 held-out questions, one sample is right only some of the
time while at least one of 64 samples is right for almost every question. The learning rate and
the number of steps were chosen by a sweep (64 samples per question; pass@1 / coverage@64, the
first rows measured with transformers' sampling, which agreed with vLLM on the chosen model):

    lr 3e-3 constant, 1000 / 1500 steps     0.05 / 0.88,  0.07 / 0.95
    lr 5e-3 and 1e-2, cosine, 1500 steps    0.01 / 0.49,  0.01 / 0.21   (too high: unstable)
    lr 2e-3, cosine, 1500 steps             0.28 / 0.97
    lr 1e-3, cosine, 900 / 950 / 1000 / 1200 / 1500 steps
                                            0.27 / 0.95,  0.39 / 0.99,  0.37 / 1.00,
                                            0.49 / 0.99,  0.64 / 0.97

Accuracy climbs steeply from 900 steps on (the cosine schedule stretches with ``--steps``), so
the defaults stop early, at 900 steps of
lr 1e-3 (batch 64, about 2.9 passes over the 19,900 questions). Measured with vLLM by
``troop run conf/demo.yaml`` (n=64, run.seed 0): pass@1 0.280, pass@2 0.454, pass@4 0.648,
pass@8 0.804, pass@16 0.899, pass@32 0.955, pass@64 0.980. Training takes about 80 s on 2 CPU
cores and the model directory is about 2.1 MB.

Usage::

    .venv/bin/python demo/train_model.py --out demo/model
    .venv/bin/troop run conf/demo.yaml
"""

import argparse
import json
import math
import os
import random
import re
import sys
import time

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO_ROOT)

import torch  # noqa: E402
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers  # noqa: E402
from transformers import AutoTokenizer, GenerationConfig, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast  # noqa: E402

from jobs.problems.arithmetic import OPERATORS, arithmetic_rows, format_prompt  # noqa: E402

BOS, EOS, PAD, UNK = "<bos>", "<eos>", "<pad>", "<unk>"
EVAL_SET = dict(num_problems=100, seed=0, digits=2, ops="+-")
PROMPT_RE = re.compile(r"What is (\d+) ([-+*]) (\d+)\?")


def held_out_questions() -> set[tuple[int, str, int]]:
    """The (a, op, b) of every question in the demo's evaluation set."""
    held_out = set()
    for row in arithmetic_rows(**EVAL_SET):
        match = PROMPT_RE.search(row["prompt"])
        a, op, b = int(match.group(1)), match.group(2), int(match.group(3))
        assert str(OPERATORS[op](a, b)) == row["answer"], row
        held_out.add((a, op, b))
    assert len(held_out) == EVAL_SET["num_problems"]
    return held_out


def training_questions() -> list[tuple[str, str]]:
    """(prompt, answer) for every two-digit +/- question outside the evaluation set."""
    held_out = held_out_questions()
    pairs = []
    for op in EVAL_SET["ops"]:
        for a in range(10 ** EVAL_SET["digits"]):
            for b in range(10 ** EVAL_SET["digits"]):
                if (a, op, b) not in held_out:
                    pairs.append((format_prompt(a, op, b), str(OPERATORS[op](a, b))))
    return pairs


def save_tokenizer(tokenizer: PreTrainedTokenizerFast, out: str) -> None:
    tokenizer.save_pretrained(out)
    # transformers 5 records its own class name ("TokenizersBackend"); the generic name loads in
    # transformers 4 and 5 alike (vLLM builds for GPUs may pin either).
    config_path = os.path.join(out, "tokenizer_config.json")
    with open(config_path) as handle:
        tokenizer_config = json.load(handle)
    tokenizer_config["tokenizer_class"] = "PreTrainedTokenizerFast"
    with open(config_path, "w") as handle:
        json.dump(tokenizer_config, handle, indent=2, sort_keys=True)
        handle.write("\n")


def build_tokenizer(texts: list[str], vocab_size: int, extra_special_tokens: tuple[str, ...] = (),
                    max_length: int = 256) -> PreTrainedTokenizerFast:
    """Byte-level BPE, digits one per token, <bos> prepended; `extra_special_tokens` (the search
    demo's PRM step token) join the special tokens, so one tokenizer can serve two models."""
    tokenizer = Tokenizer(models.BPE(unk_token=UNK))
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False)]
    )
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=[PAD, BOS, EOS, UNK, *extra_special_tokens], show_progress=False
    )
    tokenizer.train_from_iterator(texts, trainer=trainer)
    bos_id = tokenizer.token_to_id(BOS)
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A", pair=f"{BOS} $A {BOS} $B", special_tokens=[(BOS, bos_id)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token=BOS,
        eos_token=EOS,
        pad_token=PAD,
        unk_token=UNK,
        **({"additional_special_tokens": list(extra_special_tokens)} if extra_special_tokens else {}),
        model_max_length=max_length,
        clean_up_tokenization_spaces=False,
    )


def encode_examples(tokenizer, pairs):
    """Token ids of prompt+" "+answer+EOS and the index where the answer tokens start."""
    examples = []
    for prompt, answer in pairs:
        prompt_ids = tokenizer(prompt)["input_ids"]
        full_ids = tokenizer(prompt + " " + answer)["input_ids"] + [tokenizer.eos_token_id]
        # The prompt alone must tokenize to a prefix of the full text, as it will at sampling time.
        assert full_ids[: len(prompt_ids)] == prompt_ids, (prompt, answer)
        assert tokenizer.decode(full_ids[len(prompt_ids) :], skip_special_tokens=True) == " " + answer
        examples.append((full_ids, len(prompt_ids)))
    return examples


def make_batch(examples, indices, pad_id):
    length = max(len(examples[i][0]) for i in indices)
    input_ids = torch.full((len(indices), length), pad_id, dtype=torch.long)
    labels = torch.full((len(indices), length), -100, dtype=torch.long)
    attention = torch.zeros((len(indices), length), dtype=torch.long)
    for row, i in enumerate(indices):
        ids, answer_start = examples[i]
        input_ids[row, : len(ids)] = torch.tensor(ids)
        attention[row, : len(ids)] = 1
        labels[row, answer_start : len(ids)] = torch.tensor(ids[answer_start:])
    return input_ids, attention, labels


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=os.path.join(REPO_ROOT, "demo", "model"))
    parser.add_argument("--steps", type=int, default=900)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--vocab-size", type=int, default=64)
    args = parser.parse_args()

    random.seed(args.seed)
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    torch.use_deterministic_algorithms(True)
    start = time.time()

    pairs = training_questions()
    texts = [prompt + " " + answer for prompt, answer in pairs]
    tokenizer = build_tokenizer(texts, args.vocab_size)
    examples = encode_examples(tokenizer, pairs)
    print(f"{len(pairs)} training questions, vocabulary {len(tokenizer)}, "
          f"longest example {max(len(ids) for ids, _ in examples)} tokens", flush=True)

    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=128,
        intermediate_size=512,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        head_dim=64,
        max_position_embeddings=256,
        rms_norm_eps=1e-5,
        rope_theta=10000.0,
        tie_word_embeddings=False,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        torch_dtype="float32",
    )
    model = LlamaForCausalLM(config)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01, betas=(0.9, 0.98))

    def lr_factor(step: int) -> float:  # linear warmup, then cosine decay to 10% of the peak
        if step < args.warmup:
            return (step + 1) / args.warmup
        progress = (step - args.warmup) / max(1, args.steps - args.warmup)
        return 0.1 + 0.9 * 0.5 * (1.0 + math.cos(math.pi * progress))

    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor)

    order_rng = random.Random(args.seed)
    order: list[int] = []
    for step in range(args.steps):
        if len(order) < args.batch_size:
            epoch = list(range(len(examples)))
            order_rng.shuffle(epoch)
            order += epoch
        indices, order = order[: args.batch_size], order[args.batch_size :]
        input_ids, attention, labels = make_batch(examples, indices, tokenizer.pad_token_id)
        loss = model(input_ids=input_ids, attention_mask=attention, labels=labels).loss
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        if step % 50 == 0 or step == args.steps - 1:
            print(f"step {step:5d}  loss {loss.item():.4f}  {time.time() - start:.0f}s", flush=True)

    model.eval()
    os.makedirs(args.out, exist_ok=True)
    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        do_sample=True,
        temperature=1.0,
        top_p=1.0,
        max_new_tokens=8,
    )
    model.save_pretrained(args.out, safe_serialization=True)
    save_tokenizer(tokenizer, args.out)
    reloaded = AutoTokenizer.from_pretrained(args.out)
    probe = format_prompt(12, "-", 34) + " -22"
    assert reloaded(probe)["input_ids"] == tokenizer(probe)["input_ids"], "saved tokenizer differs"
    assert reloaded.eos_token_id == tokenizer.eos_token_id == config.eos_token_id
    print(f"saved to {args.out} after {time.time() - start:.0f}s", flush=True)


if __name__ == "__main__":
    main()
