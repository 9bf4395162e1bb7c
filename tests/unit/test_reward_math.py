"""workers.reward without vLLM: what a reward model reads (reward_input, encode_input, step
splitting and step tokens), the length decision, labels and rewards from logits, aggregate(),
the model checks on config.json, and the engine's keyword arguments."""

import json
import math

import pytest

from tiny_reward import ORM_CHAT_TEMPLATE, PRM_CHAT_TEMPLATE, STEP_TOKEN, build_reward_tokenizer
from workers.engine import CPU_KV_CACHE_BYTES
from workers.reward import (
    RewardSpec,
    Scored,
    aggregate,
    check_reward_model,
    encode_input,
    kind_problem,
    label_index,
    length_problem,
    model_labels,
    outcome_reward,
    reward_engine_args,
    reward_input,
    softmax,
    split_steps,
    step_token_id,
    with_step_tokens,
)


@pytest.fixture(scope="module")
def plain(tmp_path_factory):
    """No chat template; prepends <s> to a text (a Llama base model's tokenizer)."""
    return build_reward_tokenizer(str(tmp_path_factory.mktemp("plain")), None, bos=True)


@pytest.fixture(scope="module")
def chat(tmp_path_factory):
    """A chat template that writes <s> itself, and a tokenizer that would prepend one too."""
    return build_reward_tokenizer(str(tmp_path_factory.mktemp("chat")), ORM_CHAT_TEMPLATE, bos=True)


@pytest.fixture(scope="module")
def chatml(tmp_path_factory):
    return build_reward_tokenizer(str(tmp_path_factory.mktemp("chatml")), PRM_CHAT_TEMPLATE,
                                  extra=[STEP_TOKEN, "<|im_start|>", "<|im_end|>"])


# aggregate: search-and-learn's aggregate_scores choices.

STEPS = [0.9, 0.5, 0.8]


@pytest.mark.parametrize("how, expected", [("last", 0.8), ("min", 0.5), ("prod", 0.36), ("mean", 2.2 / 3)])
def test_aggregate_by_hand(how, expected):
    assert aggregate(STEPS, how) == pytest.approx(expected, abs=1e-12)


def test_aggregate_of_one_step_is_that_step_whatever_the_rule():
    assert {aggregate([0.25], how) for how in ("last", "min", "prod", "mean")} == {0.25}


def test_aggregate_accepts_a_tuple_and_returns_a_float():
    value = aggregate((1, 0.5), "prod")
    assert value == 0.5 and type(value) is float


def test_aggregate_refuses_no_steps_and_unknown_rules():
    with pytest.raises(ValueError, match="no step rewards"):
        aggregate([], "last")
    with pytest.raises(ValueError, match="unknown aggregate 'max'"):
        aggregate(STEPS, "max")


# reward_input: what the model reads.

def test_without_a_chat_template_the_completion_follows_the_prompt_directly(plain):
    assert reward_input(plain, "Q: 1+1?\nA:", " 2") == "Q: 1+1?\nA: 2"


def test_without_a_chat_template_a_system_message_is_a_first_line(plain):
    assert reward_input(plain, "Q?", " yes", system="Be brief.") == "Be brief.\nQ? yes"


def test_without_a_chat_template_chat_messages_are_refused(plain):
    with pytest.raises(ValueError, match="no chat template"):
        reward_input(plain, [{"role": "user", "content": "Q?"}], "yes")


def test_with_a_chat_template_prompt_is_the_user_and_completion_the_assistant(chat):
    assert reward_input(chat, "Q?", "yes") == "<s><|user|>\nQ?</s>\n<|assistant|>\nyes</s>\n"


def test_with_a_chat_template_a_system_message_comes_first(chat):
    assert reward_input(chat, "Q?", "yes", system="Be brief.") == (
        "<s><|system|>\nBe brief.</s>\n<|user|>\nQ?</s>\n<|assistant|>\nyes</s>\n")


def test_chat_message_prompts_are_those_messages_then_the_completion(chat):
    prompt = [{"role": "system", "content": "S"}, {"role": "user", "content": "Q1"},
              {"role": "assistant", "content": "A1"}, {"role": "user", "content": "Q2", "name": "ignored"}]
    assert reward_input(chat, prompt, "A2") == (
        "<s><|system|>\nS</s>\n<|user|>\nQ1</s>\n<|assistant|>\nA1</s>\n<|user|>\nQ2</s>\n<|assistant|>\nA2</s>\n")


def test_the_reward_models_system_message_replaces_the_prompts(chat):
    prompt = [{"role": "system", "content": "generator's"}, {"role": "user", "content": "Q"}]
    text = reward_input(chat, prompt, "A", system="scorer's")
    assert text == "<s><|system|>\nscorer's</s>\n<|user|>\nQ</s>\n<|assistant|>\nA</s>\n"


def test_reward_input_leaves_the_prompt_messages_alone(chat):
    prompt = [{"role": "system", "content": "S"}, {"role": "user", "content": "Q"}]
    reward_input(chat, prompt, "A", system="T")
    assert prompt == [{"role": "system", "content": "S"}, {"role": "user", "content": "Q"}]


# encode_input: special tokens once.

def test_a_plain_text_gets_the_tokenizers_bos(plain):
    [ids] = encode_input(plain, [reward_input(plain, "Q?", " yes")])
    assert ids[0] == plain.bos_token_id and ids.count(plain.bos_token_id) == 1
    assert ids == plain("Q? yes")["input_ids"]


def test_a_chat_template_text_keeps_its_own_bos_only(chat):
    messages = [{"role": "user", "content": "Q?"}, {"role": "assistant", "content": "yes"}]
    [ids] = encode_input(chat, [reward_input(chat, "Q?", "yes")])
    assert ids.count(chat.bos_token_id) == 1 and ids[0] == chat.bos_token_id
    assert ids == list(chat.apply_chat_template(messages, tokenize=True)["input_ids"])


def test_encode_input_of_nothing_is_nothing(chat):
    assert encode_input(chat, []) == []


# Process models: steps and step tokens.

@pytest.mark.parametrize("completion, steps", [
    ("a\n\nb\n\nc", ["a", "b", "c"]),
    ("a\n\nb\n\n", ["a", "b"]),  # a trailing separator makes no step
    ("\n\na\n\n\n\n\n\nb", ["a", "b"]),  # nor does a run of them
    ("a\n\n  \n\nb", ["a", "b"]),  # nor a blank piece
    ("a\nb", ["a\nb"]),  # single newlines stay inside a step
    (" a \n\n b", [" a ", " b"]),  # steps are not stripped
    ("one step", ["one step"]),
    ("", [""]),  # an empty completion is one (empty) step: it is still scored
    ("\n\n", ["\n\n"]),
])
def test_split_steps(completion, steps):
    assert split_steps(completion, "\n\n") == steps


def test_split_steps_on_another_separator():
    assert split_steps("x = 1; y = 2;", ";") == ["x = 1", " y = 2"]


def test_the_step_token_follows_each_step_and_replaces_the_separators():
    assert with_step_tokens(["a", "b"], STEP_TOKEN) == "a<extra_0>b<extra_0>"
    assert with_step_tokens([""], STEP_TOKEN) == "<extra_0>"


def test_step_tokens_are_single_tokens_right_after_their_steps(chatml):
    step_id = step_token_id(chatml, "tiny", STEP_TOKEN)
    steps = split_steps("First, 12 + 30.\n\nThat is 42.\n\n", "\n\n")
    [ids] = encode_input(chatml, [reward_input(chatml, "What is 12 + 30?", with_step_tokens(steps, STEP_TOKEN))])
    positions = [i for i, t in enumerate(ids) if t == step_id]
    assert len(positions) == len(steps) == 2
    # each step token comes right after its step's text, in the assistant's turn
    assert chatml.decode(ids[:positions[0]]).endswith("<|im_start|>assistant\nFirst, 12 + 30.")
    assert chatml.decode(ids[positions[0] + 1:positions[1]]) == "That is 42."
    assert chatml.decode(ids[positions[1] + 1:]) == "<|im_end|>\n"


def test_a_tokenizer_without_the_step_token_is_refused(plain):
    with pytest.raises(ValueError, match=r"tokenizer of /m/prm has no step token '<extra_0>'"):
        step_token_id(plain, "/m/prm", STEP_TOKEN)


# The length decision.

def test_a_text_as_long_as_the_context_is_scored():
    assert length_problem(1024, 1024) is None and length_problem(1, 1024) is None


def test_a_longer_text_is_not_and_says_why():
    assert length_problem(1234, 1024) == "1234 tokens, score.max_model_len is 1024"


def test_an_empty_text_is_not_scored():
    assert length_problem(0, 1024) == "empty input: 0 tokens"


# Rewards from logits, labels.

def test_one_label_is_the_raw_logit():
    assert outcome_reward([-3.25], 0) == -3.25


def test_two_labels_give_the_chosen_labels_probability():
    p_good = 1 / (1 + math.exp(-(2.0 - 0.5)))
    assert outcome_reward([0.5, 2.0], 1) == pytest.approx(p_good, abs=1e-15)
    assert outcome_reward([0.5, 2.0], 0) == pytest.approx(1 - p_good, abs=1e-15)


def test_softmax_is_stable_for_large_logits():
    assert softmax([1000.0, 1000.0, -1000.0]) == pytest.approx([0.5, 0.5, 0.0])
    assert sum(softmax([3.0, -1.0, 0.5])) == pytest.approx(1.0)


def test_labels_from_the_config():
    assert model_labels({"id2label": {"0": "bad", "1": "good"}}, "outcome") == ["bad", "good"]
    assert model_labels({"id2label": {"0": "LABEL_0"}}, "outcome") == ["LABEL_0"]
    assert model_labels({}, "outcome") == ["LABEL_0", "LABEL_1"]  # transformers' default: 2
    assert model_labels({"num_labels": 3}, "outcome") == ["LABEL_0", "LABEL_1", "LABEL_2"]
    assert model_labels({"id2label": {"0": "only"}}, "process") == ["only", "LABEL_1"]  # always 2


@pytest.mark.parametrize("label, index", [(None, 2), ("bad", 0), ("good", 1), ("2", 2), ("0", 0), ("-1", 2)])
def test_label_index(label, index):
    assert label_index(["bad", "good", "meh"], label) == index


@pytest.mark.parametrize("label", ["3", "ugly", "-4", ""])
def test_an_unknown_label_is_refused(label):
    with pytest.raises(ValueError, match="score.label"):
        label_index(["bad", "good", "meh"], label)


# What the model is: config.json only.

def write_config(path, **config):
    path.mkdir(parents=True, exist_ok=True)
    (path / "config.json").write_text(json.dumps(config))
    return str(path)


def test_a_sequence_classifier_is_an_outcome_model(tmp_path):
    model = write_config(tmp_path / "orm", architectures=["LlamaForSequenceClassification"], id2label={"0": "s"})
    assert check_reward_model(model, "outcome")["architectures"] == ["LlamaForSequenceClassification"]
    assert kind_problem(model, "process", ["LlamaForSequenceClassification"]).startswith(
        f"{model} is not a process reward model")


def test_a_qwen2_process_reward_model_is_a_process_model(tmp_path):
    model = write_config(tmp_path / "prm", architectures=["Qwen2ForProcessRewardModel"])
    check_reward_model(model, "process")
    with pytest.raises(ValueError, match="is not an outcome reward model"):
        check_reward_model(model, "outcome")


@pytest.mark.parametrize("kind", ["outcome", "process"])
def test_a_causal_lm_is_no_reward_model_and_the_error_is_one_line(tmp_path, kind):
    model = write_config(tmp_path / "lm", architectures=["LlamaForCausalLM"])
    with pytest.raises(ValueError) as err:
        check_reward_model(model, kind)
    message = str(err.value)
    assert "\n" not in message and model in message and f"score.kind={kind}" in message
    assert "LlamaForCausalLM" in message


def test_a_missing_directory_is_named(tmp_path):
    with pytest.raises(ValueError, match=f"^{tmp_path}/nope: no such model directory$"):
        check_reward_model(str(tmp_path / "nope"), "outcome")


def test_a_directory_without_config_is_named(tmp_path):
    with pytest.raises(ValueError, match="has no config.json"):
        check_reward_model(str(tmp_path), "outcome")


def test_an_unknown_kind_is_refused(tmp_path):
    model = write_config(tmp_path / "orm", architectures=["LlamaForSequenceClassification"])
    with pytest.raises(ValueError, match="unknown reward model kind 'orm'"):
        check_reward_model(model, "orm")


def test_a_label_the_model_lacks_is_refused_before_any_engine(tmp_path):
    model = write_config(tmp_path / "orm", architectures=["LlamaForSequenceClassification"],
                         id2label={"0": "bad", "1": "good"})
    assert check_reward_model(model, "outcome", label="good")
    with pytest.raises(ValueError, match=f"^{model}: score.label 'great'"):
        check_reward_model(model, "outcome", label="great")


# The engine's keyword arguments.

def test_engine_args_use_the_pooling_runner_and_a_fixed_kv_cache_on_cpu():
    args = reward_engine_args(RewardSpec(model="/m", max_model_len=512), on_cpu=True)
    assert args["runner"] == "pooling" and args["model"] == "/m" and args["max_model_len"] == 512
    assert args["kv_cache_memory_bytes"] == CPU_KV_CACHE_BYTES and "gpu_memory_utilization" not in args
    assert "enable_chunked_prefill" not in args  # nothing is sampled: vLLM's default stands


def test_engine_args_on_gpu_leave_memory_to_vllm_unless_told():
    assert "kv_cache_memory_bytes" not in reward_engine_args(RewardSpec(model="/m"), on_cpu=False)
    args = reward_engine_args(RewardSpec(model="/m", gpu_memory_utilization=0.4), on_cpu=False)
    assert args["gpu_memory_utilization"] == 0.4


def test_engine_kwargs_override_the_rest():
    spec = RewardSpec(model="/m", engine_kwargs={"runner": "auto", "max_num_seqs": 8})
    assert reward_engine_args(spec, on_cpu=True)["runner"] == "auto"
    assert reward_engine_args(spec, on_cpu=True)["max_num_seqs"] == 8


def test_specs_are_hashable_and_engine_kwargs_do_not_count():
    assert hash(RewardSpec(model="/m", engine_kwargs={"a": 1})) == hash(RewardSpec(model="/m"))
    assert RewardSpec(model="/m", kind="process") != RewardSpec(model="/m")
    assert Scored(None, None, "why").reward is None


def test_a_one_rank_cpu_engine_runs_in_process_unless_numba_is_loaded(monkeypatch):
    """vLLM's kernel registration fails on llvmlite's objects: in a process that loaded numba
    (metrics), the engine keeps vLLM's own processes (workers.engine.runs_in_process)."""
    import sys

    from workers.engine import runs_in_process

    for name in ("VLLM_ENABLE_V1_MULTIPROCESSING", "VLLM_CPU_OMP_THREADS_BIND", "VLLM_CPU_NUM_OF_RESERVED_CPU"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delitem(sys.modules, "llvmlite", raising=False)
    assert runs_in_process({"tensor_parallel_size": 1}, on_cpu=True)
    assert not runs_in_process({"tensor_parallel_size": 2}, on_cpu=True)
    assert not runs_in_process({"tensor_parallel_size": 1}, on_cpu=False)
    monkeypatch.setitem(sys.modules, "llvmlite", object())
    assert not runs_in_process({"tensor_parallel_size": 1}, on_cpu=True)
