"""`troop swebench export|import`: a root's samples through the official SWE-bench harness and
its verdicts back, so that metrics, majority vote and the report work as on the patch verifier.

Export writes one predictions file per sample index, `OUT/predictions-s<idx>.jsonl`, each line
`{"instance_id", "model_name_or_path", "model_patch"}` (the harness's KEY_INSTANCE_ID, KEY_MODEL,
KEY_PREDICTION), so each file is one harness run with run id `troop-s<idx>`; and
`OUT/run_harness.sh`, which runs them all from OUT:

    python -m swebench.harness.run_evaluation --dataset_name D --split S \\
        --predictions_path predictions-s00000.jsonl --max_workers 4 --run_id troop-s00000

The harness writes `logs/run_evaluation/<run_id>/<model>/<instance_id>/report.json` under the
folder it runs in (its RUN_EVALUATION_LOG_DIR; `/` in the model name becomes `__`), each
`{instance_id: {"patch_is_None", "patch_exists", "patch_successfully_applied", "resolved",
"tests_status": {"FAIL_TO_PASS": {"success": [...], "failure": [...]}, "PASS_TO_PASS": ...}}}`
(swebench/harness/grading.py get_eval_report; harness 5.x adds "infra_failure"). Import reads
those back into `verdicts/<key>/`, one file per sample unit with the unit's rows: passed =
resolved; status pass, fail, empty_patch, patch_failed, or error (no report, or the harness's
own infrastructure failure); answer = `verifiers.patch.patch_hash` of the exported patch (so
identical patches vote together, as with the patch verifier); detail = the failing node ids.

The key is `swebench-` and 10 hex digits of a SHA-256 of the reports' model folder names,
sorted and newline-joined: the same reports give the same key, and an import of more reports
(more runs finished) rewrites that folder's units whole. The harness skips empty patches and
writes no report for them: such a sample imports as empty_patch.

A predictions file is read by the harness with `open()`: export to a local folder (or copy an
exported URL's files to one) before running it.
"""

import hashlib
import json
import posixpath
import re
import shlex
from collections import Counter, defaultdict
from dataclasses import dataclass, field

import pyarrow as pa

from jobs.errors import StoreError, TroopError
from jobs.store import layout
from jobs.store.root import RunStore
from jobs.store.runinfo import read_job
from jobs.usecases.root import load_root
from verifiers import VERDICTS_SCHEMA
from verifiers.patch import extract_patch, patch_hash

HARNESS = "python -m swebench.harness.run_evaluation"
DEFAULT_DATASET, DEFAULT_SPLIT = "SWE-bench/SWE-bench_Lite", "test"  # the harness's own defaults
MAX_WORKERS = 4  # the harness's default; it asks for at most 75% of the cores of where it runs
REPORT = "report.json"  # the harness's LOG_REPORT
SCRIPT = "run_harness.sh"
KEY_PREFIX = "swebench"
RUN_ID = re.compile(r"^troop-s(\d+)$")
FLAGS = ("patch_is_None", "patch_exists", "patch_successfully_applied", "resolved")
TEST_KINDS = ("FAIL_TO_PASS", "PASS_TO_PASS")


def run_id(sample_idx: int) -> str:
    return f"troop-s{sample_idx:05d}"


def predictions_file(sample_idx: int) -> str:
    return f"predictions-s{sample_idx:05d}.jsonl"


@dataclass
class SwebenchExport:
    root: str
    model_name: str
    dataset_name: str
    out: str
    files: list[str]  # one predictions file per sample index (URLs), in sample-index order
    commands: list[str]  # the harness command of each file, to run from `out` (as the script does)
    script: str  # run_harness.sh: every command, from `out`, so the reports land in out/logs/run_evaluation
    samples: int = 0
    empty: int = 0  # samples without a patch: model_patch "", which the harness does not run

    @property
    def reports(self) -> str:
        """Where the harness puts its reports when run by the script: REPORTS for the import."""
        return posixpath.join(self.out, "logs", "run_evaluation")

    @property
    def import_command(self) -> str:
        return f"troop swebench import {self.root} {self.reports}"


@dataclass
class SwebenchImport:
    root: str
    verifier_key: str
    reports: int = 0  # report.json files read
    units: int = 0  # verdict files written
    samples: int = 0
    resolved: int = 0
    statuses: Counter = field(default_factory=Counter)

    @property
    def metrics_command(self) -> str:
        return f"troop metrics {self.root} verify.verifier={self.verifier_key}"


# Reading the root.

def _sample_units(store: RunStore) -> list[str]:
    units = sorted(store.unit_ids(layout.SAMPLES))
    if not units:
        raise StoreError(f"{store.root} has no samples/unit-*.parquet: generate first (troop generate)")
    return units


def instance_ids(store: RunStore) -> dict[str, str]:
    """problem_id -> SWE-bench instance_id, from the problems' `instance_id` column where the
    problem set kept one; a problem absent here has its problem_id as instance id."""
    if not store.exists(store.problems):
        return {}
    problems = store.read_table(store.problems)
    if "instance_id" not in problems.column_names:
        return {}
    return {p: i for p, i in zip(problems["problem_id"].to_pylist(), problems["instance_id"].to_pylist()) if i}


def _dataset(store: RunStore, dataset_name: str | None) -> tuple[str, str]:
    """The harness's --dataset_name and --split: as given, else the root's Hub dataset, else the harness's defaults."""
    problems = (read_job(store) or {}).get("problems") or {}
    split = ((problems.get("options") or {}).get("split")) or DEFAULT_SPLIT
    if dataset_name:
        return dataset_name, split
    if problems.get("source") == "hf" and problems.get("path"):
        return problems["path"], split
    return DEFAULT_DATASET, split


# Export.

def _predictions(store: RunStore, units: list[str], ids: dict[str, str]) -> dict[int, list[tuple[str, str]]]:
    """sample index -> [(instance_id, model_patch)], sorted by instance id."""
    by_index: dict[int, list[tuple[str, str]]] = defaultdict(list)
    for unit in units:
        table = store.read_table(store.sample_unit(unit), columns=["problem_id", "sample_idx", "text"])
        for pid, idx, text in zip(*(table[c].to_pylist() for c in ("problem_id", "sample_idx", "text"))):
            by_index[idx].append((ids.get(pid, pid), extract_patch(text) or ""))
    return {idx: sorted(rows) for idx, rows in sorted(by_index.items())}


def _command(dataset: str, split: str, sample_idx: int) -> str:
    return (f"{HARNESS} --dataset_name {shlex.quote(dataset)} --split {shlex.quote(split)} "
            f"--predictions_path {predictions_file(sample_idx)} --max_workers {MAX_WORKERS} --run_id {run_id(sample_idx)}")


def _script(commands: list[str], root: str) -> str:
    head = ["#!/bin/sh", "# Written by troop swebench export: one SWE-bench harness run per sample index, run from",
            "# this folder so that the reports land in logs/run_evaluation/ here. Then:",
            f"#   troop swebench import {shlex.quote(root)} <this folder>/logs/run_evaluation",
            "set -e", 'cd "$(dirname "$0")"']
    return "\n".join(head + commands) + "\n"


def export(root: str, out: str, model_name: str | None = None, dataset_name: str | None = None) -> SwebenchExport:
    """`troop swebench export ROOT OUT`: the predictions files, the script and the commands."""
    store = load_root(root)[1]
    units = _sample_units(store)
    predictions = _predictions(store, units, instance_ids(store))
    model = model_name or f"troop-{posixpath.basename(root.rstrip('/')) or 'run'}"
    dataset, split = _dataset(store, dataset_name)
    target = RunStore(out)
    summary = SwebenchExport(root, model, dataset, out, [], [], target.url(target.path(SCRIPT)))
    for idx, rows in predictions.items():
        lines = [json.dumps({"instance_id": iid, "model_name_or_path": model, "model_patch": patch}) + "\n"
                 for iid, patch in rows]
        path = target.path(predictions_file(idx))
        target.write_text(path, "".join(lines))
        summary.files.append(target.url(path))
        summary.commands.append(_command(dataset, split, idx))
        summary.samples += len(rows)
        summary.empty += sum(not patch for _, patch in rows)
    target.write_text(target.path(SCRIPT), _script(summary.commands, root))
    return summary


# Import.

@dataclass(frozen=True)
class Report:
    """One instance's entry of a harness report.json, with where it came from."""

    url: str
    run_id: str
    model: str
    instance_id: str
    sample_idx: int
    entry: dict


def _malformed(url: str, what: str) -> TroopError:
    return TroopError(f"{url} is not a SWE-bench harness report.json ({what}): rerun the harness for that "
                      "instance, or remove the file")


def _check_entry(url: str, instance_id: str, entry) -> dict:
    if not isinstance(entry, dict):
        raise _malformed(url, f"{instance_id} maps to {type(entry).__name__}, not an object")
    for flag in FLAGS:
        if not isinstance(entry.get(flag), bool):
            raise _malformed(url, f"{instance_id} has no true/false '{flag}'")
    tests = entry.get("tests_status", {})
    for kind in TEST_KINDS:
        lists = tests.get(kind, {}) if isinstance(tests, dict) else None
        if not isinstance(lists, dict) or not all(isinstance(lists.get(k, []), list) for k in ("success", "failure")):
            raise _malformed(url, f"{instance_id}'s tests_status.{kind} is not {{success: [...], failure: [...]}}")
    return entry


def _read_report(fs, path: str, url: str) -> list[Report]:
    """The entries of one report.json, its run id (-> sample index) and model from its folders."""
    parts = path.rstrip("/").split("/")
    if len(parts) < 4:
        raise TroopError(f"{url} is not in the harness's layout <run_id>/<model>/<instance_id>/report.json: "
                         "point REPORTS at the harness's logs/run_evaluation folder")
    run, model = parts[-4], parts[-3]
    match = RUN_ID.match(run)
    if not match:
        raise TroopError(f"{url}: run id '{run}' is not troop-s<sample index>: import only the runs of the commands "
                         "troop swebench export printed (move other runs out of REPORTS)")
    try:
        data = json.loads(fs.cat_file(path).decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as err:
        raise _malformed(url, f"not JSON: {err}") from None
    if not isinstance(data, dict) or not data:
        raise _malformed(url, "not an object of instance_id -> report")
    return [Report(url, run, model, iid, int(match[1]), _check_entry(url, iid, entry)) for iid, entry in data.items()]


def read_reports(reports: str) -> list[Report]:
    """Every report.json under `reports` (a local folder or fsspec URL), searched recursively."""
    folder = RunStore(reports)
    try:
        found = sorted(p for p in folder.fs.find(folder.path()) if posixpath.basename(p) == REPORT)
    except FileNotFoundError:
        found = []
    if not found:
        raise TroopError(f"{reports} holds no report.json: point REPORTS at the folder where the harness ran "
                         "(its logs/run_evaluation, e.g. OUT/logs/run_evaluation after OUT/run_harness.sh)")
    return [r for path in found for r in _read_report(folder.fs, path, folder.url(path))]


def import_key(reports: list[Report]) -> str:
    """swebench-<10 hex>: a SHA-256 of the reports' model names, sorted, one per line."""
    models = "\n".join(sorted({r.model for r in reports}))
    return f"{KEY_PREFIX}-{hashlib.sha256(models.encode()).hexdigest()[:10]}"


def _index_reports(store: RunStore, units: list[str], ids: dict[str, str], reports: list[Report]) -> dict:
    """(problem_id, sample_idx) -> Report; every report must name a sample of the root, once."""
    problem_of = {iid: pid for pid, iid in ids.items()}
    samples = set()
    for unit in units:
        table = store.read_table(store.sample_unit(unit), columns=["problem_id", "sample_idx"])
        samples.update(zip(table["problem_id"].to_pylist(), table["sample_idx"].to_pylist()))
    indexed: dict[tuple[str, int], Report] = {}
    for report in reports:
        key = (problem_of.get(report.instance_id, report.instance_id), report.sample_idx)
        if key not in samples:
            raise TroopError(f"{report.url}: {store.root} has no sample {report.sample_idx} of instance "
                             f"{report.instance_id}: import the reports of this root's export")
        if key in indexed:
            raise TroopError(f"{report.url} and {indexed[key].url} both report sample {report.sample_idx} of "
                             f"{report.instance_id}: keep one of them")
        indexed[key] = report
    return indexed


def _failing(entry: dict) -> str:
    tests = entry.get("tests_status") or {}
    failing = [(kind, tests.get(kind, {}).get("failure", [])) for kind in TEST_KINDS]
    return "; ".join(f"{kind} failed: {' '.join(ids)}" for kind, ids in failing if ids)


def verdict_of(report: Report | None, patch: str | None, sample_idx: int) -> tuple[bool, str, str]:
    """(passed, status, detail) of one sample from its harness report, if any."""
    if report is None:
        if not patch:
            return False, "empty_patch", "no patch in the sample: the harness does not run it"
        return False, "error", f"no harness report for it (run {run_id(sample_idx)})"
    entry = report.entry
    if entry["patch_is_None"] or not entry["patch_exists"]:
        return False, "empty_patch", "the harness found no patch"
    if not entry["patch_successfully_applied"]:
        if entry.get("infra_failure"):
            return False, "error", f"harness infrastructure failure: {entry.get('infra_failure_reason', '')}"
        return False, "patch_failed", "the harness found no test results: the patch did not apply or the tests did not run"
    if entry["resolved"]:
        return True, "pass", ""
    return False, "fail", _failing(entry)


def _verdicts(samples: pa.Table, indexed: dict) -> pa.Table:
    rows = {name: [] for name in VERDICTS_SCHEMA.names}
    for pid, idx, text in zip(*(samples[c].to_pylist() for c in ("problem_id", "sample_idx", "text"))):
        patch = extract_patch(text)
        passed, status, detail = verdict_of(indexed.get((pid, idx)), patch, idx)
        for name, value in zip(VERDICTS_SCHEMA.names, (pid, idx, passed, status, patch_hash(patch) if patch else None, detail)):
            rows[name].append(value)
    return pa.table(rows, schema=VERDICTS_SCHEMA)


def import_reports(root: str, reports: str) -> SwebenchImport:
    """`troop swebench import ROOT REPORTS`: verdicts/<swebench key>/ from the harness's reports;
    everything is read and checked before the first verdict file is written."""
    store = load_root(root)[1]
    units = _sample_units(store)
    found = read_reports(reports)
    ids = instance_ids(store)
    indexed = _index_reports(store, units, ids, found)
    summary = SwebenchImport(root, import_key(found), reports=len({r.url for r in found}))
    store.remove_stale_temporaries(layout.verdicts(summary.verifier_key))
    for unit in units:
        samples = store.read_table(store.sample_unit(unit), columns=["problem_id", "sample_idx", "text"])
        table = _verdicts(samples, indexed)
        store.write_table(store.verdict_unit(summary.verifier_key, unit), table, VERDICTS_SCHEMA)
        summary.units += 1
        summary.samples += table.num_rows
        summary.resolved += sum(table["passed"].to_pylist())
        summary.statuses.update(table["status"].to_pylist())
    return summary
