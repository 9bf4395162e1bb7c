"""`troop swebench export|import` on a hand-made root: the predictions files the SWE-bench harness
reads, and its report.json files (written here in the harness's exact shape) back as verdicts."""

import hashlib
import json
import os

import pyarrow as pa
import pytest

from jobs import api
from jobs.cli.main import main
from jobs.config import MetricsConfig
from jobs.errors import TroopError
from jobs.store.root import RunStore
from jobs.usecases.measure import measure
from verifiers import VERDICTS_SCHEMA
from verifiers.patch import patch_hash
from workers.samples import SAMPLES_SCHEMA

ASTROPY, DJANGO = "astropy__astropy-12907", "django__django-11099"
DIFF_A = "diff --git a/astropy/sep.py b/astropy/sep.py\n--- a/astropy/sep.py\n+++ b/astropy/sep.py\n@@ -1 +1 @@\n-a = 1\n+a = 2\n"
DIFF_B = "--- a/django/validators.py\n+++ b/django/validators.py\n@@ -3 +3 @@\n-regex = r'^[\\w.@+-]+$'\n+regex = r'\\A[\\w.@+-]+\\Z'\n"
DIFF_B2 = "--- a/django/validators.py\n+++ b/django/validators.py\n@@ -3 +3 @@\n-regex = r'^[\\w.@+-]+$'\n+regex = None\n"
# Two units as troop names them: samples 0-1 and sample 2 of both problems.
UNITS = {
    "p000000-000002-s000000-000002": [
        ("p0", 0, f"The fix:\n```diff\n{DIFF_A}```\n"),
        ("p0", 1, "I could not find the bug."),
        ("p1", 0, f"```patch\n{DIFF_B}```"),
        ("p1", 1, DIFF_B2),
    ],
    "p000000-000002-s000002-000003": [("p0", 2, DIFF_A), ("p1", 2, f"Patch:\n```diff\n{DIFF_B}```")],
}
FIRST, SECOND = UNITS
MODEL = "troop-run"  # the default model name of a root at .../run
KEY = "swebench-" + hashlib.sha256(MODEL.encode()).hexdigest()[:10]


@pytest.fixture
def root(tmp_path) -> str:
    store = RunStore(str(tmp_path / "run"))
    store.write_table(store.problems, pa.table({"problem_id": ["p0", "p1"], "prompt": ["fix A", "fix B"],
                                                "instance_id": [ASTROPY, DJANGO]}))
    for unit, rows in UNITS.items():
        pids, idxs, texts = zip(*rows)
        store.write_table(store.sample_unit(unit), pa.table({
            "problem_id": pids, "sample_idx": idxs, "text": texts, "num_tokens": [10] * len(rows),
            "cumulative_logprob": [-1.0] * len(rows), "finish_reason": ["stop"] * len(rows), "seed": idxs,
        }), SAMPLES_SCHEMA)
    return store.root


def harness_report(instance_id, applied=True, resolved=False, f2p=((), ()), p2p=((), ())) -> dict:
    """What swebench/harness/grading.py get_eval_report returns (include_tests_status=True, as
    run_evaluation.py calls it), which run_instance writes to report.json."""
    report = {"patch_is_None": False, "patch_exists": True, "patch_successfully_applied": applied, "resolved": resolved}
    if applied:
        report["tests_status"] = {
            "FAIL_TO_PASS": {"success": list(f2p[0]), "failure": list(f2p[1])},
            "PASS_TO_PASS": {"success": list(p2p[0]), "failure": list(p2p[1])},
            "FAIL_TO_FAIL": {"success": [], "failure": []},
            "PASS_TO_FAIL": {"success": [], "failure": []},
        }
    return {instance_id: report}


def write_report(logs, run_id, instance_id, report, model=MODEL) -> str:
    """At the harness's path: logs/run_evaluation/<run_id>/<model>/<instance_id>/report.json."""
    folder = logs / run_id / model / instance_id
    folder.mkdir(parents=True)
    (folder / "report.json").write_text(report if isinstance(report, str) else json.dumps(report, indent=4))
    (folder / "run_instance.log").write_text("...")  # the harness's other files sit beside it
    return str(folder / "report.json")


@pytest.fixture
def logs(tmp_path):
    """Reports of three harness runs: sample 0 resolves astropy and fails django's tests; sample 1
    has no patch for astropy (the harness skips it) and django's does not apply; sample 2 resolves
    astropy, and django's run did not finish."""
    logs = tmp_path / "logs" / "run_evaluation"
    write_report(logs, "troop-s00000", ASTROPY, harness_report(
        ASTROPY, resolved=True, f2p=(["astropy/tests/test_sep.py::test_a"], []), p2p=(["astropy/tests/test_sep.py::test_b"], [])))
    write_report(logs, "troop-s00000", DJANGO, harness_report(
        DJANGO, f2p=([], ["tests/auth_tests/test_validators.py::test_unicode"]),
        p2p=(["tests/auth_tests/test_validators.py::test_ok"], ["tests/auth_tests/test_validators.py::test_ascii"])))
    write_report(logs, "troop-s00001", DJANGO, harness_report(DJANGO, applied=False))
    write_report(logs, "troop-s00002", ASTROPY, harness_report(ASTROPY, resolved=True, f2p=(["astropy/tests/test_sep.py::test_a"], [])))
    return logs


def read_jsonl(path) -> list[dict]:
    with open(path) as f:
        return [json.loads(line) for line in f]


def test_export_writes_one_predictions_file_per_sample_index(root, tmp_path):
    out = tmp_path / "out"
    summary = api.swebench_export(root, str(out))
    assert sorted(os.listdir(out)) == ["predictions-s00000.jsonl", "predictions-s00001.jsonl", "predictions-s00002.jsonl",
                                       "run_harness.sh"]
    assert summary.files == [str(out / f"predictions-s0000{i}.jsonl") for i in range(3)]
    assert (summary.samples, summary.empty, summary.model_name) == (6, 1, MODEL)
    def line(iid, patch):
        return {"instance_id": iid, "model_name_or_path": MODEL, "model_patch": patch}

    assert read_jsonl(out / "predictions-s00000.jsonl") == [line(ASTROPY, DIFF_A), line(DJANGO, DIFF_B)]
    assert read_jsonl(out / "predictions-s00001.jsonl") == [line(ASTROPY, ""), line(DJANGO, DIFF_B2)]
    assert read_jsonl(out / "predictions-s00002.jsonl") == [line(ASTROPY, DIFF_A), line(DJANGO, DIFF_B)]
    assert [list(row) for row in read_jsonl(out / "predictions-s00000.jsonl")] == [
        ["instance_id", "model_name_or_path", "model_patch"]] * 2


def test_export_gives_one_harness_command_per_file(root, tmp_path):
    summary = api.swebench_export(root, str(tmp_path / "out"), model_name="org/model", dataset_name="SWE-bench/SWE-bench")
    assert summary.commands == [
        f"python -m swebench.harness.run_evaluation --dataset_name SWE-bench/SWE-bench --split test "
        f"--predictions_path predictions-s0000{i}.jsonl --max_workers 4 --run_id troop-s0000{i}" for i in range(3)]
    script = (tmp_path / "out" / "run_harness.sh").read_text().splitlines()
    assert script[-3:] == summary.commands and 'cd "$(dirname "$0")"' in script
    assert read_jsonl(tmp_path / "out" / "predictions-s00001.jsonl")[1]["model_name_or_path"] == "org/model"
    assert summary.reports == str(tmp_path / "out" / "logs" / "run_evaluation")


def test_import_writes_the_harness_verdicts_per_sample_unit(root, logs):
    summary = api.swebench_import(root, str(logs))
    store = RunStore(root)
    assert (summary.verifier_key, summary.reports, summary.units, summary.samples, summary.resolved) == (KEY, 4, 2, 6, 2)
    assert dict(summary.statuses) == {"pass": 2, "fail": 1, "empty_patch": 1, "patch_failed": 1, "error": 1}
    first = store.read_table(store.verdict_unit(KEY, FIRST))
    assert first.schema.equals(VERDICTS_SCHEMA)
    assert first.to_pydict() == {
        "problem_id": ["p0", "p0", "p1", "p1"],
        "sample_idx": [0, 1, 0, 1],
        "passed": [True, False, False, False],
        "status": ["pass", "empty_patch", "fail", "patch_failed"],
        "answer": [patch_hash(DIFF_A), None, patch_hash(DIFF_B), patch_hash(DIFF_B2)],
        "detail": ["", "no patch in the sample: the harness does not run it",
                   ("FAIL_TO_PASS failed: tests/auth_tests/test_validators.py::test_unicode; "
                    "PASS_TO_PASS failed: tests/auth_tests/test_validators.py::test_ascii"),
                   "the harness found no test results: the patch did not apply or the tests did not run"],
    }
    assert store.read_table(store.verdict_unit(KEY, SECOND)).to_pydict() == {
        "problem_id": ["p0", "p1"], "sample_idx": [2, 2], "passed": [True, False], "status": ["pass", "error"],
        "answer": [patch_hash(DIFF_A), patch_hash(DIFF_B)], "detail": ["", "no harness report for it (run troop-s00002)"],
    }


def test_imported_verdicts_measure_like_any_verifier_s(root, logs):
    key = api.swebench_import(root, str(logs)).verifier_key
    metrics = measure(RunStore(root), key, MetricsConfig(ks=[1, 3])).metrics
    assert metrics["verifier"] == key
    assert metrics["pass_at_k"] == pytest.approx({"1": (2 / 3 + 0) / 2, "3": 0.5})
    assert metrics["counts"]["problems_solved"] == 1


def test_the_newer_harness_s_infrastructure_failure_is_an_error(root, tmp_path):
    logs = tmp_path / "logs"
    report = harness_report(DJANGO, applied=False)
    report[DJANGO].update(infra_failure=True, infra_failure_reason="docker: no space left on device")
    write_report(logs, "troop-s00001", DJANGO, report)
    api.swebench_import(root, str(logs))
    row = RunStore(root).read_table(RunStore(root).verdict_unit(KEY, FIRST)).to_pylist()[3]
    assert (row["status"], row["detail"]) == ("error", "harness infrastructure failure: docker: no space left on device")


def test_the_key_follows_the_model_names(root, tmp_path):
    logs = tmp_path / "logs"
    write_report(logs, "troop-s00000", ASTROPY, harness_report(ASTROPY, resolved=True), model="org__model")
    expected = "swebench-" + hashlib.sha256(b"org__model").hexdigest()[:10]
    assert api.swebench_import(root, str(logs)).verifier_key == expected
    assert api.swebench_import(root, str(logs)).verifier_key == expected


def test_a_root_without_samples_is_refused_and_nothing_is_written(tmp_path):
    with pytest.raises(TroopError, match="has no samples/unit-.*generate first"):
        api.swebench_export(str(tmp_path / "empty"), str(tmp_path / "out"))
    assert not (tmp_path / "out").exists()


def test_a_folder_without_reports_is_refused(root, tmp_path):
    (tmp_path / "nothing").mkdir()
    for reports in (tmp_path / "nothing", tmp_path / "missing"):
        with pytest.raises(TroopError, match="holds no report.json: point REPORTS at"):
            api.swebench_import(root, str(reports))
    assert not os.path.exists(os.path.join(root, "verdicts"))


@pytest.mark.parametrize("content, what", [
    ("{not json", "not JSON"),
    (json.dumps({ASTROPY: {"patch_exists": True}}), "no true/false 'patch_is_None'"),
    (json.dumps({ASTROPY: {**harness_report(ASTROPY)[ASTROPY], "tests_status": {"FAIL_TO_PASS": []}}}), "tests_status.FAIL_TO_PASS"),
    (json.dumps([]), "not an object"),
])
def test_a_malformed_report_is_refused_naming_it_and_nothing_is_written(root, logs, content, what):
    bad = write_report(logs, "troop-s00003", ASTROPY, content)
    with pytest.raises(TroopError) as err:
        api.swebench_import(root, str(logs))
    assert str(err.value).startswith(f"{bad} is not a SWE-bench harness report.json") and what in str(err.value)
    assert not os.path.exists(os.path.join(root, "verdicts"))


def test_a_run_id_not_of_an_export_is_refused_naming_the_file(root, logs):
    bad = write_report(logs, "my-gold-run", ASTROPY, harness_report(ASTROPY, resolved=True))
    with pytest.raises(TroopError, match=f"^{bad}: run id 'my-gold-run' is not troop-s<sample index>"):
        api.swebench_import(root, str(logs))
    assert not os.path.exists(os.path.join(root, "verdicts"))


def test_a_report_of_another_root_s_sample_is_refused(root, logs):
    bad = write_report(logs, "troop-s00007", ASTROPY, harness_report(ASTROPY))
    with pytest.raises(TroopError, match=f"^{bad}: .* has no sample 7 of instance {ASTROPY}"):
        api.swebench_import(root, str(logs))


def test_the_command_exports_imports_and_refuses_with_one_line(root, logs, tmp_path, capsys):
    assert main(["swebench", "export", root, str(tmp_path / "out")]) == 0
    printed = capsys.readouterr().out
    assert "exported 6 samples (1 without a patch) as 3 SWE-bench predictions file(s)" in printed
    assert "--run_id troop-s00000" in printed and f"troop swebench import {root} " in printed
    assert main(["swebench", "import", root, str(logs)]) == 0
    printed = capsys.readouterr().out
    assert f"under {KEY}: 6 samples, 2 resolved" in printed
    assert f"troop metrics {root} verify.verifier={KEY}" in printed
    assert main(["swebench", "import", root, str(tmp_path / "nothing")]) == 2
    err = capsys.readouterr().err
    assert err.count("troop: error:") == 1 and "holds no report.json" in err
