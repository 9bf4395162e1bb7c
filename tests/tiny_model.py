"""A tiny random Llama with a trained BPE tokenizer, built offline in seconds for tests.

hidden 128 with 2 heads gives head_dim 64: vLLM's CPU attention refuses smaller heads.
"""

import json
import os

CORPUS = [
    "Question: What is 12 + 30?\nAnswer: 42",
    "The quick brown fox jumps over the lazy dog.",
    "def add(a, b):\n    return a + b\n",
    "Troop draws many samples per problem and checks every one of them.",
]


def build_tokenizer(path: str, vocab_size: int = 512):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=["<unk>", "<s>", "</s>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(CORPUS * 50, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>")
    fast.save_pretrained(path)
    return fast


def build_tiny_llama(path: str, seed: int = 0, max_positions: int = 1024) -> str:
    """A randomly initialized 2-layer Llama at `path` (once; reused if present)."""
    if os.path.isfile(os.path.join(path, "config.json")):
        return path
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    os.makedirs(path, exist_ok=True)
    tokenizer = build_tokenizer(path)
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=128,
        intermediate_size=256,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=max_positions,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        torch_dtype="float32",
    )
    LlamaForCausalLM(config).save_pretrained(path, safe_serialization=True)
    with open(os.path.join(path, "generation_config.json"), "w") as handle:
        json.dump({"bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id}, handle)
    return path


def build_chat_model_folder(path: str, chat_template: str) -> str:
    """A model folder holding only what a prompt needs of a model: the tiny tokenizer with
    `chat_template` (saved as chat_template.jinja) and a config.json."""
    import json

    tokenizer = build_tokenizer(path)
    tokenizer.chat_template = chat_template
    tokenizer.save_pretrained(path)
    with open(os.path.join(path, "config.json"), "w") as handle:
        json.dump({"model_type": "llama"}, handle)
    return path
