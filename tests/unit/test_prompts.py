"""The prompt: section: templates, system messages, few-shot examples and prefills, as chat
messages or plain text, each against the exact prompt; the errors that name what is missing;
what the run records, and a resume with another template refused."""

import json
import os
import shutil

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from jobs.cli.main import main
from jobs.config import ModelConfig, ProblemsConfig, merge_config
from jobs.config.schema import PromptConfig
from jobs.errors import ConfigError, ProblemSetError
from jobs.problems import load_problems
from jobs.problems.prompts import join_example, local_chat_template

# A chat template as simple as can be read in an assertion.
CHAT = ("{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}\n{% endfor %}"
        "{% if add_generation_prompt %}<|assistant|>{% endif %}")
# Gemma's templates refuse a system message this way.
NO_SYSTEM = ("{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}" + CHAT)

PROBLEMS = [{"problem_id": "q0", "question": "What is 6 times 7?", "answer": "42"},
            {"problem_id": "q1", "question": "What is 9 plus 1?", "answer": "10"}]
EXAMPLES = [{"question": "What is 2 plus 3?", "answer": "2 + 3 = 5\n#### 5"},
            {"question": "What is 4 minus 1?", "answer": "4 - 1 = 3\n#### 3"},
            {"question": "What is 1 plus 1?", "answer": "1 + 1 = 2\n#### 2"}]
TEMPLATE = "Question: {{ question }}\nAnswer:"
SYSTEM = "Solve the problem. End with #### and the number."


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, str]:
    """Model folders (a config.json and a tiny trained tokenizer): with a chat template (as
    transformers saves it today, chat_template.jinja, and as older ones did, in
    tokenizer_config.json), without one, and with one that refuses system messages."""
    from tiny_model import build_chat_model_folder

    root = tmp_path_factory.mktemp("prompt-models")
    chat = build_chat_model_folder(str(root / "chat"), CHAT)
    folders = {"chat": chat}
    for name in ("plain", "old_style", "no_system"):
        folders[name] = shutil.copytree(chat, root / name)
        os.remove(os.path.join(folders[name], "chat_template.jinja"))
    for name, template in (("old_style", CHAT), ("no_system", NO_SYSTEM)):
        config_path = os.path.join(folders[name], "tokenizer_config.json")
        with open(config_path) as handle:
            config = json.load(handle)
        with open(config_path, "w") as handle:
            json.dump({**config, "chat_template": template}, handle)
    return {name: str(path) for name, path in folders.items()}


def write_jsonl(path, rows) -> str:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return str(path)


@pytest.fixture
def problems(tmp_path) -> str:
    return write_jsonl(tmp_path / "problems.jsonl", PROBLEMS)


@pytest.fixture
def examples(tmp_path) -> str:
    return write_jsonl(tmp_path / "examples.jsonl", EXAMPLES)


def prompts(path: str, model: str | None = None, **prompt) -> list:
    table = load_problems(ProblemsConfig(path=path), None, PromptConfig(**prompt), ModelConfig(path=model or "unused"))
    return table["prompt"].to_pylist()


def error(kind, path: str, model: str | None = None, **prompt) -> str:
    with pytest.raises(kind) as caught:
        prompts(path, model, **prompt)
    message = str(caught.value)
    assert "\n" not in message
    return message


# Plain text.


def test_without_a_prompt_section_the_prompt_column_is_the_prompt(tmp_path):
    path = write_jsonl(tmp_path / "p.jsonl", [{"problem_id": "a", "prompt": "2 + 2 =", "answer": "4"}])
    table = load_problems(ProblemsConfig(path=path), None, PromptConfig(), ModelConfig(path="unused"))
    assert table.equals(load_problems(ProblemsConfig(path=path)))


def test_a_template_over_the_columns(problems):
    table = load_problems(ProblemsConfig(path=problems), None, PromptConfig(template=TEMPLATE), ModelConfig(path="unused"))
    assert table.column_names == ["problem_id", "prompt", "question", "answer"]  # the source columns stay
    assert table["prompt"].to_pylist() == ["Question: What is 6 times 7?\nAnswer:", "Question: What is 9 plus 1?\nAnswer:"]


def test_a_template_keeps_its_last_newline(problems):
    assert prompts(problems, template="{{ question }}\n")[0] == "What is 6 times 7?\n"


def test_a_template_only_stays_plain_text_even_with_a_chat_template(problems, models):
    """chat=auto makes chat messages only for a system message or examples."""
    assert prompts(problems, models["chat"], template=TEMPLATE)[0] == "Question: What is 6 times 7?\nAnswer:"


def test_plain_text_with_system_few_shot_and_prefill(problems, examples, models):
    """The exact plain format: system, examples (text, a space, completion), the problem, the prefill."""
    got = prompts(problems, models["plain"], template=TEMPLATE, system=SYSTEM, few_shot=examples,
                  few_shot_completion="answer", shots=2, prefill=" Let's think.")
    assert got[0] == (
        f"{SYSTEM}\n\n"
        "Question: What is 2 plus 3?\nAnswer: 2 + 3 = 5\n#### 5\n\n"
        "Question: What is 4 minus 1?\nAnswer: 4 - 1 = 3\n#### 3\n\n"
        "Question: What is 6 times 7?\nAnswer: Let's think."
    )


def test_plain_text_when_chat_is_false_despite_a_chat_template(problems, models):
    got = prompts(problems, models["chat"], template=TEMPLATE, system=SYSTEM, chat="false")
    assert got[1] == f"{SYSTEM}\n\nQuestion: What is 9 plus 1?\nAnswer:"


def test_plain_few_shot_without_a_template_uses_the_prompt_columns(tmp_path):
    path = write_jsonl(tmp_path / "p.jsonl", [{"problem_id": "a", "prompt": "3 + 4 ="}])
    shots = write_jsonl(tmp_path / "shots.jsonl", [{"prompt": "1 + 1 =\n", "completion": "2"}, {"prompt": "2 + 2 =", "completion": "4"}])
    assert prompts(path, few_shot=shots, chat="false") == ["1 + 1 =\n2\n\n2 + 2 = 4\n\n3 + 4 ="]


@pytest.mark.parametrize("text, completion, joined", [
    ("Answer:", "42", "Answer: 42"), ("Answer:\n", "42", "Answer:\n42"), ("Answer:", " 42", "Answer: 42"), ("", "42", "42"),
])
def test_an_example_and_its_completion_are_joined_by_one_space_at_most(text, completion, joined):
    assert join_example(text, completion) == joined


def test_the_source_prompt_column_is_kept_when_the_prompt_is_rebuilt(tmp_path):
    path = write_jsonl(tmp_path / "p.jsonl", [{"problem_id": "a", "prompt": "def f():", "test": "assert f()"}])
    table = load_problems(ProblemsConfig(path=path), None, PromptConfig(template="Complete:\n{{ prompt }}"), ModelConfig(path="unused"))
    assert table.to_pylist() == [{"problem_id": "a", "prompt": "Complete:\ndef f():", "test": "assert f()", "source_prompt": "def f():"}]


# Chat.


def test_chat_messages_with_a_system_message(problems, models):
    assert prompts(problems, models["chat"], template=TEMPLATE, system=SYSTEM)[0] == [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": "Question: What is 6 times 7?\nAnswer:"},
    ]


def test_chat_true_alone_makes_one_user_turn(problems, models):
    assert prompts(problems, models["old_style"], template="{{ question }}", chat="true")[1] == [
        {"role": "user", "content": "What is 9 plus 1?"}]


def test_chat_few_shot_examples_are_earlier_turns(problems, examples, models):
    assert prompts(problems, models["chat"], template=TEMPLATE, few_shot=examples, few_shot_completion="answer", shots=2)[0] == [
        {"role": "user", "content": "Question: What is 2 plus 3?\nAnswer:"},
        {"role": "assistant", "content": "2 + 3 = 5\n#### 5"},
        {"role": "user", "content": "Question: What is 4 minus 1?\nAnswer:"},
        {"role": "assistant", "content": "4 - 1 = 3\n#### 3"},
        {"role": "user", "content": "Question: What is 6 times 7?\nAnswer:"},
    ]


def test_chat_with_a_prefill_is_the_chat_template_text_and_the_prefill(problems, examples, models):
    got = prompts(problems, models["chat"], template="{{ question }}", system=SYSTEM, few_shot=examples,
                  few_shot_completion="answer", shots=1, prefill="<think>\n")
    assert got[0] == (f"<|system|>{SYSTEM}\n<|user|>What is 2 plus 3?\n<|assistant|>2 + 3 = 5\n#### 5\n"
                      "<|user|>What is 6 times 7?\n<|assistant|><think>\n")


def test_messages_are_recorded_with_the_chat_type(problems, models):
    table = load_problems(ProblemsConfig(path=problems), None, PromptConfig(template=TEMPLATE, system=SYSTEM), ModelConfig(path=models["chat"]))
    assert table.schema.field("prompt").type == pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))


def test_a_chat_template_is_found_in_either_file(models):
    assert local_chat_template(models["chat"]) and local_chat_template(models["old_style"])
    assert not local_chat_template(models["plain"])


# Worked examples from a Parquet file and from a dataset.


def test_few_shot_from_a_parquet_file(problems, tmp_path, models):
    pq.write_table(pa.Table.from_pylist(EXAMPLES), tmp_path / "shots.parquet")
    got = prompts(problems, models["plain"], template=TEMPLATE, few_shot=str(tmp_path / "shots.parquet"), few_shot_completion="answer", shots=1)
    assert got[0] == "Question: What is 2 plus 3?\nAnswer: 2 + 3 = 5\n#### 5\n\nQuestion: What is 6 times 7?\nAnswer:"


def test_few_shot_from_a_dataset_split(problems, tmp_path, models, monkeypatch):
    import datasets

    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf-cache")
    datasets.DatasetDict({"train": datasets.Dataset.from_list(EXAMPLES[1:]), "test": datasets.Dataset.from_list(EXAMPLES[:1])}
                         ).save_to_disk(str(tmp_path / "gsm8k"))
    got = prompts(problems, models["chat"], template="{{ question }}", few_shot=str(tmp_path / "gsm8k"),
                  few_shot_options={"split": "train"}, few_shot_completion="answer", shots=1)
    assert got[0][:2] == [{"role": "user", "content": "What is 4 minus 1?"}, {"role": "assistant", "content": "4 - 1 = 3\n#### 3"}]


def test_the_problems_column_mapping_applies_to_the_examples(tmp_path):
    path = write_jsonl(tmp_path / "p.jsonl", [{"id": "a", "q": "3 + 4 ="}])
    shots = write_jsonl(tmp_path / "shots.jsonl", [{"q": "1 + 1 =", "completion": "2"}])
    table = load_problems(ProblemsConfig(path=path, columns={"problem_id": "id", "prompt": "q"}), None,
                          PromptConfig(few_shot=shots, chat="false"), ModelConfig(path="unused"))
    assert table["prompt"].to_pylist() == ["1 + 1 = 2\n\n3 + 4 ="]


# Errors, each before any engine starts.


def test_a_template_names_the_missing_column(problems):
    assert error(ProblemSetError, problems, template="Q: {{ questoin }}") == (
        "prompt.template uses the column 'questoin', which the problems of problems.source=jsonl lack "
        "(columns: problem_id, question, answer)")


def test_a_template_names_the_row_it_fails_on(tmp_path):
    path = write_jsonl(tmp_path / "p.jsonl", [{"problem_id": "a", "meta": {"level": 1}}, {"problem_id": "b", "meta": None}])
    assert error(ProblemSetError, path, template="Level {{ meta.level }}") == (
        "prompt.template fails on row 2 of the problems of problems.source=jsonl (UndefinedError: 'None' has no attribute 'level')")


def test_the_examples_lack_a_template_column(problems, tmp_path):
    shots = write_jsonl(tmp_path / "shots.jsonl", [{"query": "1 + 1", "completion": "2"}])
    assert error(ProblemSetError, problems, template=TEMPLATE, few_shot=shots, chat="false") == (
        f"prompt.template uses the column 'question', which the examples of prompt.few_shot={shots} lack (columns: query, completion)")


def test_the_examples_lack_the_completion_column(problems, examples):
    assert error(ProblemSetError, problems, template=TEMPLATE, few_shot=examples, chat="false") == (
        f"prompt.few_shot_completion=completion: the examples of prompt.few_shot={examples} have no column 'completion' "
        "(columns: question, answer)")


def test_more_shots_than_examples(problems, examples):
    assert error(ProblemSetError, problems, template=TEMPLATE, few_shot=examples, few_shot_completion="answer", shots=4, chat="false") == (
        f"prompt.shots=4, but prompt.few_shot={examples} holds 3 examples")


def test_a_missing_examples_file(problems, tmp_path):
    path = str(tmp_path / "nope.jsonl")
    assert error(ProblemSetError, problems, template=TEMPLATE, few_shot=path, chat="false") == (
        f"prompt.few_shot={path} does not exist: check the path")


def test_chat_true_without_a_chat_template(problems, models):
    assert error(ConfigError, problems, models["plain"], template=TEMPLATE, chat="true") == (
        f"prompt.chat=true, but model.path={models['plain']} has no chat template: set prompt.chat=false for plain text")


def test_a_chat_template_that_refuses_the_messages(problems, models):
    assert error(ConfigError, problems, models["no_system"], template=TEMPLATE, system=SYSTEM) == (
        f"the chat template of model.path={models['no_system']} refuses the prompt's messages (System role not supported): "
        "drop prompt.system or prompt.few_shot, or set prompt.chat=false")


def test_a_hub_model_whose_tokenizer_is_not_in_the_cache_while_offline(problems, monkeypatch):
    import huggingface_hub

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    message = error(ConfigError, problems, "nobody/no-such-model", template=TEMPLATE, system=SYSTEM)
    assert message.startswith("prompt.chat=auto needs the tokenizer of model.path=nobody/no-such-model, which cannot be loaded (")
    assert message.endswith("): check model.path, or set prompt.chat=false")


def test_chat_messages_as_the_source_prompt_cannot_take_a_system_text(tmp_path):
    path = write_jsonl(tmp_path / "p.jsonl", [{"problem_id": "a", "prompt": [{"role": "user", "content": "hi"}]}])
    message = error(ProblemSetError, path, system=SYSTEM, chat="false")
    assert message.startswith("the prompt column of the problems of problems.source=jsonl holds list<")
    assert message.endswith("not text, which prompt.system, few_shot and prefill build on: build the text with prompt.template")


@pytest.mark.parametrize("overrides, message", [
    (["prompt.template='{{ question }'"], "config key 'prompt.template' is not a valid Jinja2 template (line 1: unexpected '}')"),
    (["prompt.chat=maybe"], "config key 'prompt.chat' is 'maybe': use one of auto, true, false"),
    (["prompt.shots=2"], "config key 'prompt.shots' is set without prompt.few_shot: name the examples' file or dataset"),
    (["prompt.few_shot=x.jsonl", "prompt.shots=-1"], "config key 'prompt.shots' is -1: it must be >= 0"),
])
def test_bad_prompt_settings(overrides, message):
    with pytest.raises(ConfigError) as caught:
        merge_config(None, ["run.root=/tmp/x", "model.path=m", *overrides])
    assert str(caught.value) == message


@pytest.mark.parametrize("value, chat", [("true", "True"), ("false", "False"), ("auto", "auto")])
def test_chat_true_and_false_pass_the_checks_as_yaml_reads_them(value, chat):
    assert merge_config(None, ["run.root=/tmp/x", "model.path=m", f"prompt.chat={value}"]).prompt.chat == chat


# What the run records, and resuming.


def job_file(tmp_path, problems, model, template=TEMPLATE) -> str:
    path = tmp_path / "job.yaml"
    path.write_text(json.dumps({
        "run": {"root": str(tmp_path / "run")},
        "model": {"path": model},
        "problems": {"source": "jsonl", "path": problems},
        "prompt": {"template": template, "system": SYSTEM},
        "verify": {"verifier": "numeric"},
    }))
    return str(path)


def test_the_run_records_the_rendered_prompts_and_the_template(problems, models, tmp_path):
    from jobs.store.runinfo import record_run
    from jobs.usecases.generate import plan_run

    config = merge_config(job_file(tmp_path, problems, models["chat"]))
    plan = plan_run(config)
    record_run(plan.store, config, plan.problems)
    recorded = pq.read_table(tmp_path / "run" / "problems.parquet")
    assert recorded.column_names == ["problem_id", "prompt", "question", "answer"]
    assert recorded["prompt"].to_pylist()[0] == [{"role": "system", "content": SYSTEM},
                                                 {"role": "user", "content": "Question: What is 6 times 7?\nAnswer:"}]
    job = (tmp_path / "run" / "job.yaml").read_text()
    assert "prompt:\n  template: 'Question: {{ question }}\n\n    Answer:'\n" in job


def test_a_resume_with_another_template_is_refused(problems, models, tmp_path, capsys):
    from jobs.store.runinfo import record_run
    from jobs.usecases.generate import plan_run

    config = merge_config(job_file(tmp_path, problems, models["chat"]))
    plan = plan_run(config)
    record_run(plan.store, config, plan.problems)
    assert plan_run(config).units == plan.units  # the same settings resume
    other = job_file(tmp_path, problems, models["chat"], template="Q: {{ question }}\nA:")
    with pytest.raises(ConfigError) as caught:
        plan_run(merge_config(other))
    assert f"run.root={tmp_path / 'run'} holds a run with other sampling settings (prompt.template: " in str(caught.value)
    assert "'Question: {{ question }}\\nAnswer:' -> 'Q: {{ question }}\\nA:'" in str(caught.value)
    assert main(["run", other]) == 2
    assert "other sampling settings (prompt.template: " in capsys.readouterr().err


def test_a_root_from_before_the_prompt_section_resumes(tmp_path, models):
    """An old job.yaml has no prompt: section; it gave the prompt column as it is."""
    from jobs.store.root import RunStore
    from jobs.store.runinfo import record_run
    from jobs.usecases.generate import plan_run

    path = write_jsonl(tmp_path / "p.jsonl", [{"problem_id": "a", "prompt": "1 + 1 =", "answer": "2"}])
    config = merge_config(None, [f"run.root={tmp_path / 'run'}", f"model.path={models['plain']}", f"problems.path={path}"])
    plan = plan_run(config)
    record_run(plan.store, config, plan.problems)
    store = RunStore(str(tmp_path / "run"))
    lines = store.read_text(store.job_yaml).splitlines()
    start = lines.index("prompt:")
    end = next(i for i in range(start + 1, len(lines)) if not lines[i].startswith(" "))
    store.write_text(store.job_yaml, "\n".join(lines[:start] + lines[end:]) + "\n")
    assert "prompt:" not in store.read_text(store.job_yaml)
    assert plan_run(config).units == plan.units
    with pytest.raises(ConfigError, match=r"other sampling settings \(prompt.system: None -> 'Be brief.'\)"):
        plan_run(merge_config(None, [f"run.root={tmp_path / 'run'}", f"model.path={models['plain']}", f"problems.path={path}",
                                     "prompt.system='Be brief.'"]))
