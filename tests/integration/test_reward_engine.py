"""workers.reward.RewardEngine with real vLLM pooling engines on the CPU, in this process (no
Ray), against transformers' forward pass of the same tiny models (tests/tiny_reward.py).

One engine per model, started once for the class that uses it and stopped at its end, so that
at most one is alive at a time (an engine takes 20 s or more to start here).
"""

import re

import pytest

from tiny_reward import STEP_TOKEN, load_reference, reference_logits, reference_step_rewards
from workers.reward import RewardEngine, RewardSpec, aggregate, softmax

MAX_MODEL_LEN = 256
TOLERANCE = 1e-4  # float32 on both sides
# vLLM's own test runner uses a small max_model_len and enforce_eager=True; 64 MiB of KV cache
# holds 32k tokens of these models.
ENGINE = dict(dtype="float32", max_model_len=MAX_MODEL_LEN, enforce_eager=True, kv_cache_memory_bytes=64 << 20)
TOO_LONG = "the quick brown fox " * 200  # ~800 tokens
LENGTH_DETAIL = rf"^\d+ tokens, score\.max_model_len is {MAX_MODEL_LEN}$"


def start(model: str, kind: str, **settings) -> RewardEngine:
    return RewardEngine(RewardSpec(model=model, kind=kind, **ENGINE, **settings))


def tokens(tokenizer, messages=None, text=None) -> list[int]:
    """The reference's token ids, computed the transformers way: a conversation through
    apply_chat_template(tokenize=True), a plain text through the tokenizer (with its BOS)."""
    if messages is not None:
        return list(tokenizer.apply_chat_template(messages, tokenize=True)["input_ids"])
    return tokenizer(text)["input_ids"]


@pytest.fixture(scope="module")
def reference(reward_models):
    """The one-label model and its tokenizer in transformers."""
    return load_reference(reward_models["orm1"])


# Class-scoped, each used by one class only: its engine stops when the class is done.

@pytest.fixture(scope="class")
def orm1(reward_models):
    # Chunks of 128 tokens: a text longer than that is prefilled in two steps (vLLM keeps
    # chunked prefill on for a sequence classifier, on the CPU too), and still scores right.
    engine = start(reward_models["orm1"], "outcome", engine_kwargs={"max_num_batched_tokens": 128})
    yield engine
    engine.close()


@pytest.fixture(scope="class")
def orm2(reward_models):
    engine = start(reward_models["orm2"], "outcome", system="Judge the answer.")
    yield engine
    engine.close()


@pytest.fixture(scope="class")
def prm(reward_models):
    engine = start(reward_models["prm"], "process")
    yield engine
    engine.close()


class TestOutcomeModelWithOneLabel:
    """No chat template: the model reads the prompt, then the completion; the reward is the logit."""

    def test_reward_is_the_models_raw_logit(self, orm1, reference):
        model, tokenizer = reference
        pairs = [("Question: What is 12 + 30?\nAnswer:", " 42"),
                 ("Question: What is 12 + 30?\nAnswer:", " 41, because 12 + 30 is 41."),
                 ("def add(a, b):\n", "    return a + b\n"),
                 ("The quick brown fox", " jumps over the lazy dog."),
                 ("", "a completion without a prompt")]
        scored = orm1.score([p for p, _ in pairs], [c for _, c in pairs])
        expected = [reference_logits(model, tokens(tokenizer, text=p + c))[0] for p, c in pairs]
        assert all(s.step_rewards is None and s.detail is None for s in scored)
        assert [s.reward for s in scored] == pytest.approx(expected, abs=TOLERANCE)
        assert len({round(e, 3) for e in expected}) == len(expected)  # the texts tell apart

    def test_too_long_and_unrenderable_inputs_are_not_scored_and_the_others_are(self, orm1, reference):
        model, tokenizer = reference
        scored = orm1.score(["Q:", "Q:", [{"role": "user", "content": "Q:"}], "Q:"], [" 1", TOO_LONG, " 3", " 4"])
        assert [s.reward is None for s in scored] == [False, True, True, False]
        assert scored[1].step_rewards is None
        assert scored[1].detail is not None and re.match(LENGTH_DETAIL, scored[1].detail)
        assert scored[2].detail.startswith("chat template:") and "no chat template" in scored[2].detail
        for s, text in ((scored[0], "Q: 1"), (scored[3], "Q: 4")):
            assert s.reward == pytest.approx(reference_logits(model, tokens(tokenizer, text=text))[0], abs=TOLERANCE)

    def test_a_text_filling_the_whole_context_is_scored(self, orm1, reference):
        model, tokenizer = reference
        words = TOO_LONG.split(" ")
        fits = [p for p in (" ".join(words[:n]) for n in range(150, 300)) if len(tokens(tokenizer, text=p + " x")) == MAX_MODEL_LEN]
        assert fits
        scheduler = orm1.llm.llm_engine.vllm_config.scheduler_config
        assert scheduler.enable_chunked_prefill and scheduler.max_num_batched_tokens == 128  # two chunks
        [scored] = orm1.score([fits[0]], [" x"])
        assert scored.detail is None
        assert scored.reward == pytest.approx(reference_logits(model, tokens(tokenizer, text=fits[0] + " x"))[0],
                                              abs=TOLERANCE)

    def test_a_shared_long_prompt_scores_alike_from_the_prefix_cache(self, orm1, reference):
        """vLLM caches whole blocks (128 tokens on the CPU) of a prompt for the next request: the
        completions of one problem, and a unit scored again, read them from the cache."""
        model, tokenizer = reference
        prompt = "Troop draws many samples per problem and checks every one of them. " * 12
        assert 128 < len(tokens(tokenizer, text=prompt)) < MAX_MODEL_LEN - 16
        completions = [" Yes.", " No.", " Maybe, maybe not."]
        expected = [reference_logits(model, tokens(tokenizer, text=prompt + c))[0] for c in completions]
        first = orm1.score([prompt] * 3, completions)
        again = orm1.score([prompt] * 3, completions)
        assert [s.reward for s in first] == pytest.approx(expected, abs=TOLERANCE)
        assert [s.reward for s in again] == pytest.approx(expected, abs=TOLERANCE)
        # (that the cache served them: the engine's own count of cached tokens)
        from vllm import PoolingParams

        [output] = orm1.llm.encode([{"prompt_token_ids": tokens(tokenizer, text=prompt + " No.")}],
                                   PoolingParams(use_activation=False), pooling_task="classify", use_tqdm=False)
        assert output.num_cached_tokens >= 128

    def test_nothing_to_score_is_no_engine_call(self, orm1):
        assert orm1.score([], []) == []
        with pytest.raises(ValueError, match="2 prompts for 1 completions"):
            orm1.score(["a", "b"], ["c"])


class TestOutcomeModelWithTwoLabels:
    """A chat template that writes BOS: the reward is the last label's ("good") probability."""

    def test_reward_is_the_good_labels_probability_of_the_conversation(self, orm2, reward_models):
        model, tokenizer = load_reference(reward_models["orm2"])
        system = {"role": "system", "content": "Judge the answer."}
        prompts = ["What is 12 + 30?", "What is 12 + 30?",
                   [{"role": "user", "content": "Add 2 and 3."}, {"role": "assistant", "content": "6"},
                    {"role": "user", "content": "Check again."}],
                   [{"role": "system", "content": "replaced by the scorer's"}, {"role": "user", "content": "Hi"}]]
        completions = ["42", "It is 41.", "5, sorry.", "Hello!"]
        conversations = [
            [system, {"role": "user", "content": prompts[0]}, {"role": "assistant", "content": completions[0]}],
            [system, {"role": "user", "content": prompts[1]}, {"role": "assistant", "content": completions[1]}],
            [system, *prompts[2], {"role": "assistant", "content": completions[2]}],
            [system, prompts[3][1], {"role": "assistant", "content": completions[3]}],
        ]
        expected = []
        for conversation in conversations:
            ids = tokens(tokenizer, messages=conversation)
            assert ids.count(tokenizer.bos_token_id) == 1
            expected.append(softmax(reference_logits(model, ids))[1])
        scored = orm2.score(prompts, completions)
        assert [s.reward for s in scored] == pytest.approx(expected, abs=TOLERANCE)
        assert all(0 < s.reward < 1 and s.step_rewards is None for s in scored)

    def test_too_long_is_not_scored(self, orm2):
        scored = orm2.score(["Q", "Q"], [TOO_LONG, "A"])
        assert scored[0].reward is None and re.match(LENGTH_DETAIL, scored[0].detail)
        assert scored[1].reward is not None and scored[1].detail is None


class TestProcessModel:
    """Qwen2ForProcessRewardModel: a probability per step, read at the step tokens."""

    def test_step_rewards_are_the_reference_computation(self, prm, reward_models):
        model, tokenizer = load_reference(reward_models["prm"])
        step_id = tokenizer.convert_tokens_to_ids(STEP_TOKEN)
        prompts = ["What is 12 + 30?", "What is 12 + 30?", [{"role": "user", "content": "Add 2 and 3."}],
                   "Say nothing.", "One step?"]
        completions = ["12 + 30 = 42.\n\nThe answer is 42.", "12 + 30 = 41.\n\nSo 41.\n\nThe answer is 41.\n\n",
                       "2 + 3 = 5", "", "Just this one."]
        steps = [["12 + 30 = 42.", "The answer is 42."], ["12 + 30 = 41.", "So 41.", "The answer is 41."],
                 ["2 + 3 = 5"], [""], ["Just this one."]]
        expected = []
        for prompt, parts in zip(prompts, steps):
            user = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else prompt
            assistant = {"role": "assistant", "content": "".join(p + STEP_TOKEN for p in parts)}
            expected.append(reference_step_rewards(model, tokens(tokenizer, messages=[*user, assistant]), step_id))
        scored = prm.score(prompts, completions)
        assert [len(s.step_rewards) for s in scored] == [len(p) for p in steps]
        for s, want in zip(scored, expected):
            assert list(s.step_rewards) == pytest.approx(want, abs=TOLERANCE)
            assert s.reward == s.step_rewards[-1] == aggregate(s.step_rewards, "last")
            assert s.detail is None
        # the steps of one text score differently: the positions are the step tokens' own
        assert len({round(r, 3) for r in scored[1].step_rewards}) == 3

    def test_too_long_and_step_tokens_in_the_text_are_not_scored(self, prm):
        scored = prm.score(["Q", "Q", f"Q {STEP_TOKEN}", "Q"],
                              [TOO_LONG, f"a{STEP_TOKEN}b\n\nc", "a\n\nb", "a\n\nb"])
        assert [s.reward is None for s in scored] == [True, True, True, False]
        assert all(s.step_rewards is None for s in scored[:3])
        assert re.match(LENGTH_DETAIL, scored[0].detail)
        assert scored[1].detail.startswith(f"3 {STEP_TOKEN} tokens for 2 steps")
        assert scored[2].detail.startswith(f"3 {STEP_TOKEN} tokens for 2 steps")
        assert len(scored[3].step_rewards) == 2


# Models that are not reward models of the kind asked for: refused before any engine starts.

@pytest.mark.parametrize("kind", ["outcome", "process"])
def test_a_causal_lm_is_refused_in_one_line(tiny_model, kind):
    with pytest.raises(ValueError) as err:
        RewardEngine(RewardSpec(model=tiny_model, kind=kind, **ENGINE))
    message = str(err.value)
    assert "\n" not in message and tiny_model in message and f"not {'an' if kind == 'outcome' else 'a'} {kind} reward model" in message
    assert "LlamaForCausalLM" in message


def test_the_wrong_kind_of_reward_model_is_refused(reward_models):
    with pytest.raises(ValueError, match="is not a process reward model.*LlamaForSequenceClassification"):
        RewardEngine(RewardSpec(model=reward_models["orm1"], kind="process", **ENGINE))
    with pytest.raises(ValueError, match="is not an outcome reward model.*Qwen2ForProcessRewardModel"):
        RewardEngine(RewardSpec(model=reward_models["prm"], kind="outcome", **ENGINE))


def test_a_missing_path_is_refused(tmp_path):
    missing = str(tmp_path / "no-such-model")
    with pytest.raises(ValueError, match=f"^{missing}: no such model directory$"):
        RewardEngine(RewardSpec(model=missing, **ENGINE))


def test_an_unknown_label_is_refused(reward_models):
    with pytest.raises(ValueError, match="score.label 'great' is none of the model's labels"):
        RewardEngine(RewardSpec(model=reward_models["orm2"], label="great", **ENGINE))
