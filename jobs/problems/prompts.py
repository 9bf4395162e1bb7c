"""What the model is given for each problem: the `prompt:` section of a job.

With the section unset, a problem's `prompt` column is its prompt, as it is. Otherwise each
problem's prompt is built from its user text (`prompt.template`, Jinja2 over the problem's
columns as `problems.columns` names them, or else its `prompt` column), `prompt.system`, the
worked examples of `prompt.few_shot` (the first `prompt.shots`; each one's user text is built
like a problem's, its completion is the `prompt.few_shot_completion` column) and `prompt.prefill`:

- chat (`prompt.chat=true`, or `auto` where the model has a chat template and a system message or
  examples are given): messages `[system, (user, assistant) per example, user]`, which the engine
  renders through the model's chat template. With a prefill they are rendered here instead (with
  the generation prompt) and the prefill appended, so the prompt is that text;
- plain text: paragraphs separated by a blank line: the system text, each example (its user
  text, a space unless that ends in whitespace or the completion starts with it, its
  completion), the problem's user text; then the prefill, appended as it is.

The problem set's own `prompt` column, where it had one, is kept as `source_prompt`.
"""

import json
import logging
import os

import pyarrow as pa

from jobs.config.schema import ModelConfig, PromptConfig
from jobs.errors import ConfigError, ProblemSetError
from jobs.problems.files import read_jsonl_rows, read_parquet_table, rename_columns
from jobs.problems.hf import load_split

log = logging.getLogger("troop")

MESSAGES = pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))
FILE_KINDS = {".jsonl": "jsonl", ".jsonl.gz": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet"}
FEW_SHOT_KEYS = ("prompt.few_shot", "prompt.few_shot_options")


def _first_line(err: Exception) -> str:
    return (str(err).strip().splitlines() or [type(err).__name__])[0]


def is_set(prompt: PromptConfig) -> bool:
    """Whether the section builds the prompts; if not, the `prompt` column is used as it is."""
    parts = (prompt.template, prompt.system, prompt.few_shot, prompt.prefill)
    return any(part is not None for part in parts) or prompt.chat.lower() == "true"


class Template:
    """`prompt.template`, compiled once; a column it uses that a table lacks is named."""

    def __init__(self, source: str):
        import jinja2
        import jinja2.meta

        # StrictUndefined: a missing value is an error, not an empty string in thousands of prompts.
        # keep_trailing_newline: the text is the template's, to the last character.
        env = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
        try:
            self.template = env.from_string(source)
            used = jinja2.meta.find_undeclared_variables(env.parse(source))
        except jinja2.TemplateSyntaxError as err:
            raise ConfigError(f"config key 'prompt.template' is not a valid Jinja2 template (line {err.lineno}: {err.message})") from None
        self.columns = sorted(used - set(env.globals))

    def render_all(self, table: pa.Table, what: str) -> list[str]:
        missing = [column for column in self.columns if column not in table.column_names]
        if missing:
            raise ProblemSetError(f"prompt.template uses the column '{missing[0]}', which {what} lack "
                                  f"(columns: {', '.join(table.column_names) or 'none'})")
        values = {column: table[column].to_pylist() for column in self.columns}
        texts = []
        for row in range(table.num_rows):
            try:
                texts.append(self.template.render({column: values[column][row] for column in self.columns}))
            except Exception as err:  # noqa: BLE001 - the user's template on the user's data: any failure is theirs to fix
                raise ProblemSetError(f"prompt.template fails on row {row + 1} of {what} "
                                      f"({type(err).__name__}: {_first_line(err)})") from None
        return texts


def user_texts(table: pa.Table, template: Template | None, what: str) -> list[str]:
    """Each row's user text: the template rendered over its columns, or its `prompt` column."""
    if template is not None:
        return template.render_all(table, what)
    if "prompt" not in table.column_names:
        raise ProblemSetError(f"{what} have no 'prompt' column (columns: {', '.join(table.column_names) or 'none'}): "
                              "build it with prompt.template or map one with problems.columns.prompt=COLUMN")
    prompt_type = table.schema.field("prompt").type
    if not (pa.types.is_string(prompt_type) or pa.types.is_large_string(prompt_type)):
        raise ProblemSetError(f"the prompt column of {what} holds {prompt_type}, not text, which prompt.system, few_shot and "
                              "prefill build on: build the text with prompt.template")
    texts = table["prompt"].to_pylist()
    if None in texts:
        raise ProblemSetError(f"row {texts.index(None) + 1} of {what} has no prompt")
    return texts


def _read_examples(path: str, options: dict, storage_options: dict) -> pa.Table:
    """A .jsonl or .parquet file, or else a dataset loaded as `problems.source=hf` loads one."""
    kind = next((kind for suffix, kind in FILE_KINDS.items() if path.lower().endswith(suffix)), None)
    if kind is None:
        return load_split(path, options, storage_options, FEW_SHOT_KEYS)[0]
    if options:
        raise ProblemSetError(f"prompt.few_shot_options apply to a dataset, not to the file prompt.few_shot={path}")
    if kind == "parquet":
        return read_parquet_table(path, storage_options, "prompt.few_shot")
    rows = read_jsonl_rows(path, storage_options, f"prompt.few_shot={path}", "prompt.few_shot")
    try:
        return pa.Table.from_pylist(rows)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as err:
        raise ProblemSetError(f"prompt.few_shot={path}: rows disagree on a column's type ({err})") from None


def few_shot_examples(prompt: PromptConfig, columns: dict[str, str], template: Template | None,
                      storage_options: dict) -> list[tuple[str, str]]:
    """(user text, completion) of the first `prompt.shots` worked examples, columns mapped as
    the problems' are (where the examples have the mapped column)."""
    if prompt.few_shot is None:
        return []
    table = _read_examples(prompt.few_shot, dict(prompt.few_shot_options), storage_options)
    what = f"the examples of prompt.few_shot={prompt.few_shot}"
    if prompt.shots is not None:
        if table.num_rows < prompt.shots:
            raise ProblemSetError(f"prompt.shots={prompt.shots}, but prompt.few_shot={prompt.few_shot} holds {table.num_rows} examples")
        table = table.slice(0, prompt.shots)
    table = rename_columns(table, {name: column for name, column in columns.items() if column in table.column_names}, prompt.few_shot)
    completion = prompt.few_shot_completion
    if completion not in table.column_names:
        raise ProblemSetError(f"prompt.few_shot_completion={completion}: {what} have no column '{completion}' "
                              f"(columns: {', '.join(table.column_names) or 'none'})")
    completions = table[completion].to_pylist()
    if None in completions:
        raise ProblemSetError(f"row {completions.index(None) + 1} of {what} has no {completion}")
    return list(zip(user_texts(table, template, what), [str(c) for c in completions]))


def join_example(text: str, completion: str) -> str:
    """A worked example in plain text: a space between its text and its completion unless one
    of them has whitespace there ('Answer:' + '42' -> 'Answer: 42'; 'Answer:\\n' + '42')."""
    if not text or not completion or text[-1].isspace() or completion[0].isspace():
        return text + completion
    return f"{text} {completion}"


def plain_prompt(user: str, shots: list[tuple[str, str]], system: str | None, prefill: str | None) -> str:
    paragraphs = ([system] if system is not None else []) + [join_example(*shot) for shot in shots] + [user]
    return "\n\n".join(paragraphs) + (prefill or "")


def chat_messages(user: str, shots: list[tuple[str, str]], system: str | None) -> list[dict]:
    messages = [{"role": "system", "content": system}] if system is not None else []
    for text, completion in shots:
        messages += [{"role": "user", "content": text}, {"role": "assistant", "content": completion}]
    return messages + [{"role": "user", "content": user}]


def _tokenizer_source(model: ModelConfig) -> tuple[str, str, str | None]:
    """(config key, path, revision) of the tokenizer the engine loads: vLLM's `tokenizer`
    argument where engine_kwargs sets one, else the model's."""
    if model.engine_kwargs.get("tokenizer"):
        return "model.engine_kwargs.tokenizer", model.engine_kwargs["tokenizer"], model.engine_kwargs.get("tokenizer_revision")
    return "model.path", model.path, model.revision


def local_chat_template(folder: str) -> bool:
    """Whether a local model folder's tokenizer has a chat template (read from its files, so a
    folder without one costs no transformers import)."""
    jinja = os.path.join(folder, "chat_template.jinja")
    if os.path.isfile(jinja) and os.path.getsize(jinja) > 0:
        return True
    for name in ("tokenizer_config.json", "chat_template.json"):
        try:
            with open(os.path.join(folder, name), encoding="utf-8") as handle:
                if json.load(handle).get("chat_template"):
                    return True
        except (OSError, ValueError, AttributeError):  # absent, or not a JSON object
            continue
    return False


def load_tokenizer(model: ModelConfig, why: str):
    """The model's tokenizer (transformers): a local folder's, or a Hub id's from the cache, or
    from the Hub where the cache lacks it and HF_HUB_OFFLINE is not set."""
    from huggingface_hub import constants
    from transformers import AutoTokenizer

    key, path, revision = _tokenizer_source(model)
    kwargs = {"revision": revision, "trust_remote_code": bool(model.engine_kwargs.get("trust_remote_code", False))}
    try:
        try:
            return AutoTokenizer.from_pretrained(path, local_files_only=True, **kwargs)  # a folder, or the cache
        except OSError:
            if os.path.isdir(path) or constants.HF_HUB_OFFLINE:
                raise
            return AutoTokenizer.from_pretrained(path, **kwargs)  # a Hub id not in the cache yet
    except (OSError, ValueError) as err:
        raise ConfigError(f"{why} needs the tokenizer of {key}={path}, which cannot be loaded ({type(err).__name__}: "
                          f"{_first_line(err)}): check {key}, or set prompt.chat=false") from None


def chat_tokenizer(prompt: PromptConfig, model: ModelConfig | None):
    """The model's tokenizer where the prompts are chat messages, None where they are plain text."""
    mode = prompt.chat.lower()
    if mode == "false" or (mode == "auto" and prompt.system is None and prompt.few_shot is None):
        return None
    if model is None:
        raise ValueError(f"prompt.chat={mode} needs the model section to find the chat template")
    key, path, _ = _tokenizer_source(model)
    tokenizer = None
    if not os.path.isdir(path) or local_chat_template(path):
        tokenizer = load_tokenizer(model, f"prompt.chat={mode}")
        tokenizer = tokenizer if getattr(tokenizer, "chat_template", None) else None
    if tokenizer is None:
        if mode == "true":
            raise ConfigError(f"prompt.chat=true, but {key}={path} has no chat template: set prompt.chat=false for plain text")
        log.info("prompt.chat=auto: %s=%s has no chat template, so the prompts are plain text", key, path)
    return tokenizer


def chat_text(tokenizer, messages: list[dict], model: ModelConfig) -> str:
    """Messages through the model's chat template, up to where the assistant's answer starts."""
    try:
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    except Exception as err:  # noqa: BLE001 - a chat template raises what it likes ("System role not supported")
        key, path, _ = _tokenizer_source(model)
        raise ConfigError(f"the chat template of {key}={path} refuses the prompt's messages ({_first_line(err)}): "
                          "drop prompt.system or prompt.few_shot, or set prompt.chat=false") from None


def with_prompts(table: pa.Table, prompts: pa.Array) -> pa.Table:
    """`table` with `prompts` as its prompt column; its own, if any, kept as `source_prompt`."""
    names = table.column_names
    if "prompt" in names:
        if "source_prompt" not in names:
            table = table.append_column("source_prompt", table["prompt"])
        return table.set_column(names.index("prompt"), "prompt", prompts)
    return table.add_column(names.index("problem_id") + 1 if "problem_id" in names else 0, "prompt", prompts)


def render_prompts(problems: pa.Table, prompt: PromptConfig, model: ModelConfig | None, columns: dict[str, str],
                   storage_options: dict, what: str) -> pa.Table:
    """The problems with the prompts the section builds (unchanged where it is unset). `columns`:
    `problems.columns`, applied to the examples too; `what` names the problems in messages."""
    if not is_set(prompt):
        return problems
    template = Template(prompt.template) if prompt.template is not None else None
    users = user_texts(problems, template, what)
    shots = few_shot_examples(prompt, columns, template, storage_options)
    tokenizer = chat_tokenizer(prompt, model)
    if tokenizer is None:
        prompts = pa.array([plain_prompt(user, shots, prompt.system, prompt.prefill) for user in users], pa.string())
        return with_prompts(problems, prompts)
    messages = [chat_messages(user, shots, prompt.system) for user in users]
    if prompt.prefill is None:
        if messages:  # a template that refuses these messages fails here, not in every engine
            chat_text(tokenizer, messages[0], model)
        return with_prompts(problems, pa.array(messages, MESSAGES))
    texts = [chat_text(tokenizer, m, model) + prompt.prefill for m in messages]
    return with_prompts(problems, pa.array(texts, pa.string()))
