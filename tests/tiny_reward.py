"""Tiny random reward models built offline in seconds for tests, and the reference computations
the engine's scores are checked against.

- `build_tiny_orm`: a `LlamaForSequenceClassification` (an outcome reward model). With
  `num_labels=1` its tokenizer has no chat template and adds a BOS token itself (the plain-text
  path of `workers.reward.reward_input`); with 2 labels it has a chat template that writes the
  BOS token (the chat path; the engine must not add a second one).
- `build_tiny_prm`: a `Qwen2ForProcessRewardModel` as vLLM loads it (Qwen2.5-Math-PRM's layout):
  a `Qwen2Model` named `model.*` and a head `score = Sequential(Linear(h, h), ReLU, Linear(h, 2))`
  named `score.0.*` / `score.2.*`; a ChatML-like chat template and the step token `<extra_0>`.
  transformers has no class for it (the real model ships remote code), hence `TinyPRM`.

Sizes as in tiny_model.py: hidden 128 with 2 heads gives head_dim 64 (vLLM's CPU attention
refuses smaller heads); float32 weights. The weights are drawn wider than transformers' default
(std 0.02) so that the rewards spread and depend on context: the bodies at std 0.2, the score
heads at 0.1.
"""

import json
import os

from tiny_model import build_tokenizer

STEP_TOKEN = "<extra_0>"
HEAD_STD = 0.1
# The bodies too: at the default 0.02 a token's hidden state is almost its own embedding, so two
# step tokens in one text would score alike whatever their context.
INIT_STD = 0.2
# A Llama-3-like template: the template writes the BOS token, so the text is tokenized without
# special tokens (as transformers' apply_chat_template(tokenize=True) does).
ORM_CHAT_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}</s>\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)
# ChatML, as Qwen2.5-Math-PRM's (without Qwen's default system message).
PRM_CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def build_reward_tokenizer(path: str, chat_template: str | None = None, bos: bool = False, extra: list[str] = ()):
    """tiny_model's tokenizer, saved at `path` with `chat_template`, a BOS token prepended to
    plain texts if `bos`, and the special tokens `extra`."""
    from tokenizers.processors import TemplateProcessing

    tokenizer = build_tokenizer(path)
    if bos:  # Llama's tokenizers prepend <s> to a plain text
        tokenizer._tokenizer.post_processor = TemplateProcessing(
            single="<s> $A", special_tokens=[("<s>", tokenizer.bos_token_id)])
    if extra:
        tokenizer.add_special_tokens({"additional_special_tokens": list(extra)})
    tokenizer.chat_template = chat_template
    tokenizer.save_pretrained(path)
    return tokenizer


def _redraw_head(module, seed: int) -> None:
    import torch

    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in module.parameters():
            param.copy_(torch.randn(param.shape, generator=generator) * HEAD_STD)


def build_tiny_orm(path: str, num_labels: int = 1, seed: int = 0, max_positions: int = 1024) -> str:
    """A random 2-layer `LlamaForSequenceClassification` at `path` (once; reused if present).
    Labels: 1 -> the raw score; 2 -> id2label {0: "bad", 1: "good"}."""
    if os.path.isfile(os.path.join(path, "config.json")):
        return path
    import torch
    from transformers import LlamaConfig, LlamaForSequenceClassification

    os.makedirs(path, exist_ok=True)
    chat = num_labels > 1
    tokenizer = build_reward_tokenizer(path, ORM_CHAT_TEMPLATE if chat else None, bos=True, extra=[])
    labels = {0: "score"} if num_labels == 1 else {0: "bad", 1: "good", **{i: f"label{i}" for i in range(2, num_labels)}}
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
        pad_token_id=None,
        id2label=labels,
        label2id={v: k for k, v in labels.items()},
        architectures=["LlamaForSequenceClassification"],
        initializer_range=INIT_STD,
        torch_dtype="float32",
    )
    model = LlamaForSequenceClassification(config)
    _redraw_head(model.score, seed + 1)
    model.save_pretrained(path, safe_serialization=True)
    return path


def prm_config(tokenizer, max_positions: int = 1024):
    from transformers import Qwen2Config

    return Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=128,
        intermediate_size=256,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=max_positions,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        tie_word_embeddings=False,
        num_labels=2,
        architectures=["Qwen2ForProcessRewardModel"],
        initializer_range=INIT_STD,
        torch_dtype="float32",
    )


def tiny_prm_module(config):
    """Qwen2.5-Math-PRM's modeling_qwen2_rm.py in small: `model` (a transformers Qwen2Model),
    `score` (Linear(h, h), ReLU, Linear(h, num_labels)); forward gives per-token logits."""
    import torch
    from transformers import Qwen2Model

    class TinyPRM(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = Qwen2Model(config)
            self.score = torch.nn.Sequential(
                torch.nn.Linear(config.hidden_size, config.hidden_size),
                torch.nn.ReLU(),
                torch.nn.Linear(config.hidden_size, config.num_labels),
            )

        def forward(self, input_ids):
            hidden = self.model(input_ids=input_ids).last_hidden_state
            return self.score(hidden)

    return TinyPRM()


def build_tiny_prm(path: str, seed: int = 0, max_positions: int = 1024) -> str:
    """A random 2-layer `Qwen2ForProcessRewardModel` at `path` (once; reused if present)."""
    if os.path.isfile(os.path.join(path, "config.json")):
        return path
    import torch
    from safetensors.torch import save_file

    os.makedirs(path, exist_ok=True)
    tokenizer = build_reward_tokenizer(path, PRM_CHAT_TEMPLATE, bos=False, extra=[STEP_TOKEN, "<|im_start|>", "<|im_end|>"])
    torch.manual_seed(seed)
    config = prm_config(tokenizer, max_positions)
    module = tiny_prm_module(config)
    _redraw_head(module.score, seed + 1)
    config.save_pretrained(path)
    save_file({k: v.contiguous() for k, v in module.state_dict().items()}, os.path.join(path, "model.safetensors"),
              metadata={"format": "pt"})
    with open(os.path.join(path, "generation_config.json"), "w") as handle:
        json.dump({"bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id}, handle)
    return path


# --- reference computations (transformers, float32, one sequence at a time, no padding) ---

def load_reference(path: str):
    """The model at `path` in transformers (eager attention, float32) and its tokenizer."""
    import torch
    from transformers import AutoConfig, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path)
    config = AutoConfig.from_pretrained(path)
    config._attn_implementation = "eager"
    if config.architectures == ["Qwen2ForProcessRewardModel"]:
        from safetensors.torch import load_file

        model = tiny_prm_module(config)
        model.load_state_dict(load_file(os.path.join(path, "model.safetensors")))
    else:
        from transformers import AutoModelForSequenceClassification

        model = AutoModelForSequenceClassification.from_pretrained(path, config=config, dtype=torch.float32)
    return model.eval(), tokenizer


def reference_logits(model, input_ids: list[int]) -> list[float]:
    """A sequence-classification model's logits for one unpadded sequence (the last token's)."""
    import torch

    with torch.no_grad():
        return model(input_ids=torch.tensor([input_ids])).logits[0].tolist()


def reference_step_rewards(model, input_ids: list[int], step_token_id: int) -> list[float]:
    """The PRM reference: Qwen2Model's last hidden states through the score head, softmax over the
    2 labels, the positive (index 1) label's probability at each position holding the step
    token; as Qwen2.5-Math-PRM's model card computes it (make_step_rewards)."""
    import torch

    ids = torch.tensor([input_ids])
    with torch.no_grad():
        probabilities = model(ids)[0].double().softmax(dim=-1)[:, 1]
    return probabilities[ids[0] == step_token_id].tolist()
