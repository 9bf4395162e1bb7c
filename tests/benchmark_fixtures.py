"""Small local copies of the shipped configs' datasets, in each dataset's real schema and Hub
layout, under tests/fixtures/<benchmark>/ (tests/ is on sys.path).

The files there are committed; this module wrote them and rewrites them:
`.venv/bin/python tests/benchmark_fixtures.py`. GSM8K's and MATH-500's test rows are public
problems of those benchmarks; every other row (GSM8K's worked examples, MBPP, CodeContests,
SWE-bench Lite) is written here in the dataset's schema. The SWE-bench Lite instances are bugs in
the `calc` repository of tests/patch_repos.py, whose clone (`calc-org__calc`, for
`verify.repos`) `build_calc_clone` makes by code with a fixed author and date, so that its
commit is the fixtures' `base_commit` on every machine.
"""

import json
import os
import shutil
import subprocess
import tempfile

from patch_repos import ADD_TEST, FAIL_TO_PASS, FILES, PASS_TO_PASS, build_calc, make_diff

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures")

# openai/gsm8k, subset main: the first three test problems, and worked examples for the few-shot
# prompt written in the style of the train split (calculator annotations, then "#### n").
GSM8K_TEST = [
    {"question": "Janet’s ducks lay 16 eggs per day. She eats three for breakfast every morning and bakes muffins "
                 "for her friends every day with four. She sells the remainder at the farmers' market daily for $2 per "
                 "fresh duck egg. How much in dollars does she make every day at the farmers' market?",
     "answer": "Janet sells 16 - 3 - 4 = <<16-3-4=9>>9 duck eggs a day.\n"
               "She makes 9 * 2 = $<<9*2=18>>18 every day at the farmer’s market.\n#### 18"},
    {"question": "A robe takes 2 bolts of blue fiber and half that much white fiber.  How many bolts in total does it take?",
     "answer": "It takes 2/2=<<2/2=1>>1 bolt of white fiber\nSo the total amount of fabric is 2+1=<<2+1=3>>3 bolts of fabric\n#### 3"},
    {"question": "Josh decides to try flipping a house.  He buys a house for $80,000 and then puts in $50,000 in repairs.  "
                 "This increased the value of the house by 150%.  How much profit did he make?",
     "answer": "The cost of the house and repairs came out to 80,000+50,000=$<<80000+50000=130000>>130,000\n"
               "He increased the value of the house by 80,000*1.5=<<80000*1.5=120000>>120,000\n"
               "So the new value of the house is 120,000+80,000=$<<120000+80000=200000>>200,000\n"
               "So he made a profit of 200,000-130,000=$<<200000-130000=70000>>70,000\n#### 70000"},
]
GSM8K_TRAIN = [
    {"question": "Mia reads 12 pages on Monday and twice as many on Tuesday. How many pages does she read in the two days?",
     "answer": "On Tuesday she reads 12 * 2 = <<12*2=24>>24 pages.\nIn the two days she reads 12 + 24 = <<12+24=36>>36 pages.\n#### 36"},
    {"question": "A baker makes 5 trays of muffins with 12 muffins on each tray. He sells 45 muffins. How many muffins are left?",
     "answer": "He makes 5 * 12 = <<5*12=60>>60 muffins.\nHe has 60 - 45 = <<60-45=15>>15 muffins left.\n#### 15"},
    {"question": "Sam buys 3 notebooks for $4 each and a pen for $2. How much does he spend?",
     "answer": "The notebooks cost 3 * 4 = $<<3*4=12>>12.\nHe spends 12 + 2 = $<<12+2=14>>14.\n#### 14"},
    {"question": "A garden has 4 rows of 9 tulips. A rabbit eats 7 tulips. How many tulips are left?",
     "answer": "The garden has 4 * 9 = <<4*9=36>>36 tulips.\nAfter the rabbit, 36 - 7 = <<36-7=29>>29 tulips are left.\n#### 29"},
    {"question": "Lena saves $15 a week. How many weeks does she need to save $120?",
     "answer": "She needs 120 / 15 = <<120/15=8>>8 weeks.\n#### 8"},
    {"question": "A train travels at 60 miles per hour for 3 hours and then at 40 miles per hour for 2 hours. "
                 "How far does it travel?",
     "answer": "First it travels 60 * 3 = <<60*3=180>>180 miles.\nThen it travels 40 * 2 = <<40*2=80>>80 miles.\n"
               "In all it travels 180 + 80 = <<180+80=260>>260 miles.\n#### 260"},
    {"question": "Tom has 48 marbles. He gives a quarter of them to his sister and 5 to a friend. How many marbles does he keep?",
     "answer": "He gives his sister 48 / 4 = <<48/4=12>>12 marbles.\nHe keeps 48 - 12 - 5 = <<48-12-5=31>>31 marbles.\n#### 31"},
    {"question": "A class of 28 students splits into teams of 4. Each team needs 2 balls. How many balls are needed?",
     "answer": "There are 28 / 4 = <<28/4=7>>7 teams.\nThey need 7 * 2 = <<7*2=14>>14 balls.\n#### 14"},
]

# HuggingFaceH4/MATH-500 (test.jsonl): three public MATH test problems; the first is MATH-500's first.
MATH500_TEST = [
    {"problem": "Convert the point $(0,3)$ in rectangular coordinates to polar coordinates.  Enter your answer in the "
                "form $(r,\\theta),$ where $r > 0$ and $0 \\le \\theta < 2 \\pi.$",
     "solution": "We have that $r = \\sqrt{0^2 + 3^2} = 3.$  Also, if we draw the line connecting the origin and $(0,3),$ "
                 "this line makes an angle of $\\frac{\\pi}{2}$ with the positive $x$-axis.\n\nTherefore, the polar "
                 "coordinates are $\\boxed{\\left( 3, \\frac{\\pi}{2} \\right)}.$",
     "answer": "\\left( 3, \\frac{\\pi}{2} \\right)", "subject": "Precalculus", "level": 2,
     "unique_id": "test/precalculus/807.json"},
    {"problem": "Define\n\\[p = \\sum_{k = 1}^\\infty \\frac{1}{k^2} \\quad \\text{and} \\quad q = \\sum_{k = 1}^\\infty "
                "\\frac{1}{k^3}.\\]Find a way to write\n\\[\\sum_{j = 1}^\\infty \\sum_{k = 1}^\\infty \\frac{1}{(j + k)^3}\\]"
                "in terms of $p$ and $q.$",
     "solution": "We count the number of times $\\frac{1}{n^3}$ appears in the sum, for a fixed positive integer $n$: once "
                 "for each pair $(j,k)$ with $j + k = n,$ that is $n - 1$ times.  Therefore,\n\\begin{align*}\n"
                 "\\sum_{j = 1}^\\infty \\sum_{k = 1}^\\infty \\frac{1}{(j + k)^3} &= \\sum_{n = 1}^\\infty \\frac{n - 1}{n^3} \\\\\n"
                 "&= \\sum_{n = 1}^\\infty \\frac{1}{n^2} - \\sum_{n = 1}^\\infty \\frac{1}{n^3} \\\\\n&= \\boxed{p - q}.\n"
                 "\\end{align*}",
     "answer": "p - q", "subject": "Intermediate Algebra", "level": 5, "unique_id": "test/intermediate_algebra/1994.json"},
    {"problem": "If $f(x) = \\frac{3x-2}{x-2}$, what is the value of $f(-2) +f(-1)+f(0)$? Express your answer as a common "
                "fraction.",
     "solution": "$f(-2) +f(-1)+f(0)=\\frac{3(-2)-2}{-2-2}+\\frac{3(-1)-2}{-1-2}+\\frac{3(0)-2}{0-2}=\\frac{-8}{-4}+"
                 "\\frac{-5}{-3}+\\frac{-2}{-2}=2+\\frac{5}{3}+1=\\boxed{\\frac{14}{3}}$",
     "answer": "\\frac{14}{3}", "subject": "Algebra", "level": 3, "unique_id": "test/algebra/2584.json"},
]

# google-research-datasets/mbpp, subset full, split test.
MBPP_TEST = [
    {"task_id": 11, "text": "Write a python function to count the vowels in a given string.",
     "code": "def count_vowels(s):\n    return sum(1 for c in s.lower() if c in \"aeiou\")",
     "test_list": ["assert count_vowels(\"hello\") == 2", "assert count_vowels(\"SKY\") == 0",
                   "assert count_vowels(\"Programming\") == 3"],
     "test_setup_code": "", "challenge_test_list": []},
    {"task_id": 12, "text": "Write a function to find the second largest distinct number in a list.",
     "code": "def second_largest(nums):\n    values = sorted(set(nums))\n    return values[-2]",
     "test_list": ["assert second_largest([4, 1, 7, 7, 3]) == 4", "assert second_largest([10, 20]) == 10",
                   "assert second_largest([-1, -5, -3]) == -3"],
     "test_setup_code": "", "challenge_test_list": ["assert second_largest([2, 2, 2, 1]) == 1"]},
    {"task_id": 13, "text": "Write a function to find the n smallest numbers of a list, in ascending order, using the heap "
                            "queue algorithm.",
     "code": "import heapq as hq\ndef heap_smallest(nums, n):\n    return hq.nsmallest(n, nums)",
     "test_list": ["assert heap_smallest(data, 3) == [14, 22, 22]", "assert heap_smallest(data, 1) == [14]",
                   "assert heap_smallest(data, 0) == []"],
     "test_setup_code": "data = [25, 35, 22, 85, 14, 65, 75, 22, 58]", "challenge_test_list": []},
]

# deepmind/code_contests, split test (solutions' languages: 1 Python 2, 2 C++, 3 Python 3, 4 Java).
PAIR_SUMS = """\
t = int(input())
for _ in range(t):
    a, b = map(int, input().split())
    print(a + b)
"""
LONGEST_RUN = """\
s = input().strip()
best = run = 1
for i in range(1, len(s)):
    run = run + 1 if s[i] == s[i - 1] else 1
    best = max(best, run)
print(best)
"""
PAIR_SUMS_CPP = """\
#include <bits/stdc++.h>
using namespace std;
int main() {
  int t;
  cin >> t;
  while (t--) {
    long long a, b;
    cin >> a >> b;
    cout << a + b << "\\n";
  }
}
"""
CODE_CONTESTS_TEST = [
    {"name": "9001_A. Pair Sums",
     "description": "You are given t pairs of integers a and b. For each pair, print a + b.\n\nInput\n\nThe first line "
                    "contains one integer t (1 ≤ t ≤ 100) — the number of test cases.\n\nEach of the next t lines contains "
                    "two integers a and b (-10^9 ≤ a, b ≤ 10^9).\n\nOutput\n\nFor each test case print one integer — the "
                    "sum a + b.\n\nExample\n\nInput\n\n2\n1 2\n-5 5\n\n\nOutput\n\n3\n0\n",
     "public_tests": {"input": ["2\n1 2\n-5 5\n"], "output": ["3\n0\n"]},
     "private_tests": {"input": ["1\n1000000000 1000000000\n", "3\n0 0\n-1 -1\n7 -3\n"], "output": ["2000000000\n", "0\n-2\n4\n"]},
     "generated_tests": {"input": ["1\n-7 2\n"], "output": ["-5\n"]},
     "source": 2, "difficulty": 7,
     "solutions": {"language": [2, 3],
                   "solution": [PAIR_SUMS_CPP, PAIR_SUMS]},
     "incorrect_solutions": {"language": [3], "solution": ["t = int(input())\nfor _ in range(t):\n    print(sum(map(int, input().split())) % 1000000007)\n"]},
     "cf_contest_id": 9001, "cf_index": "A", "cf_points": 500.0, "cf_rating": 800, "cf_tags": ["implementation", "math"],
     "is_description_translated": False, "untranslated_description": "", "time_limit": {"seconds": 1, "nanos": 0},
     "memory_limit_bytes": 256000000, "input_file": "", "output_file": ""},
    {"name": "9001_B. Longest Run",
     "description": "You are given a string s of characters 0 and 1. Find the length of the longest block of equal "
                    "consecutive characters.\n\nInput\n\nThe only line contains the string s (1 ≤ |s| ≤ 10^5).\n\nOutput\n\n"
                    "Print one integer — the length of the longest block.\n\nExamples\n\nInput\n\n0011100\n\n\nOutput\n\n3\n\n\n"
                    "Input\n\n1\n\n\nOutput\n\n1\n\nNote\n\nIn the first example the longest block is 111.",
     "public_tests": {"input": ["0011100\n", "1\n"], "output": ["3\n", "1\n"]},
     "private_tests": {"input": ["0101\n", "0000000000\n"], "output": ["1\n", "10\n"]},
     "generated_tests": {"input": ["10\n", "110\n"], "output": ["1\n", "2\n"]},
     "source": 2, "difficulty": 8,
     "solutions": {"language": [3], "solution": [LONGEST_RUN]},
     "incorrect_solutions": {"language": [3], "solution": ["print(input().count('1'))\n"]},
     "cf_contest_id": 9001, "cf_index": "B", "cf_points": 1000.0, "cf_rating": 1000, "cf_tags": ["strings"],
     "is_description_translated": False, "untranslated_description": "", "time_limit": {"seconds": 2, "nanos": 0},
     "memory_limit_bytes": 256000000, "input_file": "", "output_file": ""},
]

# princeton-nlp/SWE-bench_Lite_bm25_13K, split test: two bugs of the `calc` repository.
SWE_REPO = "calc-org/calc"
SWE_DATE = "2024-01-02T03:04:05+00:00"  # the clone's commit: fixed, so its hash is too
README = "# calc\n\nSmall arithmetic and text helpers.\n"
TEXT_BUG = "def shout(s):\n    return s.lower() + \"!\"\n"
TEXT_TEST = "from calc.text import shout\n\n\ndef test_shout():\n    assert shout(\"hi\") == \"HI!\"\n"
ISSUES = [
    ("add() subtracts instead of adding", "Calling `calc.add(2, 3)` returns `-1`; it should return `5`.",
     ["calc/__init__.py"]),
    ("shout() lowercases its argument", "`calc.text.shout(\"hi\")` returns `'hi!'`, but it should shout: `'HI!'`.",
     ["calc/__init__.py", "calc/text.py"]),
]
# SWE-bench's example patch in its prompts (swebench.inference.make_datasets.create_instance).
PATCH_EXAMPLE = """--- a/file.py
+++ b/file.py
@@ -1,27 +1,35 @@
 def euclidean(a, b):
-    while b:
-        a, b = b, a % b
-    return a
+    if b == 0:
+        return a
+    return euclidean(b, a % b)
 
 
 def bresenham(x0, y0, x1, y1):
     points = []
     dx = abs(x1 - x0)
     dy = abs(y1 - y0)
-    sx = 1 if x0 < x1 else -1
-    sy = 1 if y0 < y1 else -1
-    err = dx - dy
+    x, y = x0, y0
+    sx = -1 if x0 > x1 else 1
+    sy = -1 if y0 > y1 else 1
 
-    while True:
-        points.append((x0, y0))
-        if x0 == x1 and y0 == y1:
-            break
-        e2 = 2 * err
-        if e2 > -dy:
+    if dx > dy:
+        err = dx / 2.0
+        while x != x1:
+            points.append((x, y))
             err -= dy
-            x0 += sx
-        if e2 < dx:
-            err += dx
-            y0 += sy
+            if err < 0:
+                y += sy
+                err += dx
+            x += sx
+    else:
+        err = dy / 2.0
+        while y != y1:
+            points.append((x, y))
+            err -= dx
+            if err < 0:
+                x += sx
+                err += dy
+            y += sy
 
+    points.append((x, y))
     return points"""


def _git(folder: str, *args: str) -> str:
    """git in `folder` with no user or system config (no hooks, signing or diff options of this
    machine's) and a fixed author and date."""
    env = {**os.environ, "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1",
           "GIT_AUTHOR_NAME": "calc", "GIT_AUTHOR_EMAIL": "calc@example.com", "GIT_AUTHOR_DATE": SWE_DATE,
           "GIT_COMMITTER_NAME": "calc", "GIT_COMMITTER_EMAIL": "calc@example.com", "GIT_COMMITTER_DATE": SWE_DATE}
    done = subprocess.run(["git", "-c", "safe.directory=*", "-C", folder, *args], env=env, check=True,
                          capture_output=True, text=True)
    return done.stdout.strip()


def _calc_source(folder: str):
    """The `calc` repository with this module's README and second bug, at `folder`/calc."""
    return build_calc(folder, {"README.md": README, "calc/text.py": TEXT_BUG})


def build_calc_clone(repos: str) -> tuple[str, dict]:
    """A clone of `calc-org/calc` at `repos`/calc-org__calc, as `verify.repos` wants it: its one
    commit (the instances' base_commit), and its files."""
    with tempfile.TemporaryDirectory() as scratch:
        clone = shutil.copytree(_calc_source(scratch).path, os.path.join(repos, SWE_REPO.replace("/", "__")))
    _git(clone, "init", "-q")
    _git(clone, "add", "-A")
    _git(clone, "commit", "-q", "-m", "calc 0.1")
    files = {}
    for path in ("README.md", *FILES, "calc/text.py"):
        with open(os.path.join(clone, path)) as handle:
            files[path] = handle.read()
    return _git(clone, "rev-parse", "HEAD"), files


def _numbered(files: dict[str, str]) -> str:
    """Files as SWE-bench's prompts give them (make_code_text): each line after its number."""
    text = ""
    for name, content in sorted(files.items()):
        lines = "\n".join(f"{i} {line}" for i, line in enumerate(content.split("\n"), start=1))
        text += f"[start of {name}]\n{lines}\n[end of {name}]\n"
    return text.strip("\n")


def swebench_text(problem_statement: str, readmes: dict[str, str], retrieved: dict[str, str]) -> str:
    """The `text` column of the SWE-bench bm25 datasets (SWE-bench's prompt "style-2"): the
    issue, the README and the retrieved files with line numbers, and the patch format to answer in."""
    return "\n".join([
        "You will be provided with a partial code base and an issue statement explaining a problem to resolve.",
        "<issue>", problem_statement, "</issue>", "<code>", _numbered(readmes), _numbered(retrieved), "</code>",
        ("I need you to solve this issue by generating a single patch file that I can apply directly to this repository "
         "using git apply. Please respond with a single patch file in the following format."),
        "<patch>", PATCH_EXAMPLE, "</patch>",
    ])


def swebench_rows(scratch: str) -> list[dict]:
    commit, files = build_calc_clone(os.path.join(scratch, "repos"))
    base = _calc_source(scratch).path
    fixed_add = FILES["calc/__init__.py"].replace("a - b", "a + b")
    diffs = [
        (make_diff(base, {"calc/__init__.py": fixed_add}), make_diff(base, {"tests/test_add.py": ADD_TEST}), FAIL_TO_PASS),
        (make_diff(base, {"calc/text.py": TEXT_BUG.replace("lower", "upper")}), make_diff(base, {"tests/test_text.py": TEXT_TEST}),
         ["tests/test_text.py::test_shout"]),
    ]
    rows = []
    for number, ((title, body, retrieved), (gold, test_patch, fail_to_pass)) in enumerate(zip(ISSUES, diffs), start=1):
        statement = f"{title}\n{body}\n"
        rows.append({
            "instance_id": f"{SWE_REPO.replace('/', '__')}-{number}",
            "text": swebench_text(statement, {"README.md": files["README.md"]}, {path: files[path] for path in retrieved}),
            "repo": SWE_REPO, "base_commit": commit, "problem_statement": statement, "hints_text": "",
            "created_at": f"2024-01-0{number + 2}T10:00:00Z", "patch": gold, "test_patch": test_patch, "version": "0.1",
            "FAIL_TO_PASS": json.dumps(fail_to_pass), "PASS_TO_PASS": json.dumps(PASS_TO_PASS),
            "environment_setup_commit": commit,
        })
    return rows


def _features():
    from datasets import Features, Sequence, Value

    tests = {"input": Sequence(Value("string")), "output": Sequence(Value("string"))}
    solutions = {"language": Sequence(Value("int64")), "solution": Sequence(Value("string"))}
    return {
        "gsm8k": Features({"question": Value("string"), "answer": Value("string")}),
        "mbpp": Features({"task_id": Value("int32"), "text": Value("string"), "code": Value("string"),
                          "test_list": Sequence(Value("string")), "test_setup_code": Value("string"),
                          "challenge_test_list": Sequence(Value("string"))}),
        "code_contests": Features({
            "name": Value("string"), "description": Value("string"), "public_tests": tests, "private_tests": tests,
            "generated_tests": tests, "source": Value("int64"), "difficulty": Value("int64"), "solutions": solutions,
            "incorrect_solutions": solutions, "cf_contest_id": Value("int64"), "cf_index": Value("string"),
            "cf_points": Value("float32"), "cf_rating": Value("int32"), "cf_tags": Sequence(Value("string")),
            "is_description_translated": Value("bool"), "untranslated_description": Value("string"),
            "time_limit": {"seconds": Value("int64"), "nanos": Value("int64")}, "memory_limit_bytes": Value("int64"),
            "input_file": Value("string"), "output_file": Value("string")}),
        "swebench": Features({name: Value("string") for name in (
            "instance_id", "text", "repo", "base_commit", "problem_statement", "hints_text", "created_at", "patch",
            "test_patch", "version", "FAIL_TO_PASS", "PASS_TO_PASS", "environment_setup_commit")}),
    }


def _parquet(rows: list[dict], features, path: str) -> None:
    from datasets import Dataset

    os.makedirs(os.path.dirname(path), exist_ok=True)
    Dataset.from_list(rows, features=features).to_parquet(path)


def _card(folder: str, configs: dict[str, dict[str, str]]) -> None:
    """A dataset card whose header declares the subsets' files, as the Hub's do."""
    lines = ["---", "configs:"]
    for name, splits in configs.items():
        lines += [f"- config_name: {name}", "  data_files:"]
        lines += [f"  - split: {split}\n    path: {path}" for split, path in splits.items()]
    with open(os.path.join(folder, "README.md"), "w") as handle:
        handle.write("\n".join(lines + ["---", ""]))


def write_fixtures(root: str = FIXTURES) -> None:
    features = _features()
    gsm8k = os.path.join(root, "gsm8k")
    _parquet(GSM8K_TEST, features["gsm8k"], os.path.join(gsm8k, "main", "test-00000-of-00001.parquet"))
    _parquet(GSM8K_TRAIN, features["gsm8k"], os.path.join(gsm8k, "main", "train-00000-of-00001.parquet"))
    _card(gsm8k, {"main": {"train": "main/train-*", "test": "main/test-*"}})

    math500 = os.path.join(root, "math500")
    os.makedirs(math500, exist_ok=True)
    with open(os.path.join(math500, "test.jsonl"), "w") as handle:
        handle.writelines(json.dumps(row) + "\n" for row in MATH500_TEST)

    mbpp = os.path.join(root, "mbpp")
    _parquet(MBPP_TEST, features["mbpp"], os.path.join(mbpp, "full", "test-00000-of-00001.parquet"))
    _card(mbpp, {"full": {"test": "full/test-*"}})

    _parquet(CODE_CONTESTS_TEST, features["code_contests"],
             os.path.join(root, "code_contests", "data", "test-00000-of-00001-9c49eeff30aacaa8.parquet"))

    swebench = os.path.join(root, "swebench_lite")
    with tempfile.TemporaryDirectory() as scratch:
        _parquet(swebench_rows(scratch), features["swebench"], os.path.join(swebench, "data", "test-00000-of-00001.parquet"))
    _card(swebench, {"default": {"test": "data/test-*"}})


if __name__ == "__main__":
    write_fixtures()
