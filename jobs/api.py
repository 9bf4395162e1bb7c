"""Troop's use cases as a library: what each `troop` command calls, for a notebook, a script or
a submitted Ray job. Typed arguments in, a summary out; nothing is printed.

    from jobs import api

    config = api.load_config("conf/demo.yaml", ["sampling.n=16"])
    summary = api.run(config)            # RunSummary: generated, verified, metrics, report
    summary.check()                      # raises TroopError if units failed every attempt
    api.verify("runs/demo", ["verify.verifier=math"]).check("runs/demo")
    api.metrics("runs/demo").metrics["pass_at_k"]

Errors a user can cause are `jobs.errors.TroopError` with a one-line message.
"""

from typing import Callable, Sequence

from jobs.cluster.pools import RAY, Cluster
from jobs.config import JobConfig, merge_config
from jobs.usecases.generate import GenerateSummary
from jobs.usecases.generate import generate as _generate
from jobs.usecases.measure import MetricsResult
from jobs.usecases.measure import metrics as _metrics
from jobs.usecases.report import ReportResult
from jobs.usecases.report import report as _report
from jobs.usecases.root import load_root, verifier_name
from jobs.usecases.run import RunSummary
from jobs.usecases.score import ScoreSummary, score_run
from jobs.usecases.run import run as _run
from jobs.usecases.status import run_status
from jobs.usecases.swebench import SwebenchExport, SwebenchImport
from jobs.usecases.swebench import export as _swebench_export
from jobs.usecases.swebench import import_reports as _swebench_import
from jobs.usecases.sweep_run import SweepSummary
from jobs.usecases.sweep_run import sweep as _sweep
from jobs.usecases.verify import VerifySummary, verify_run

__all__ = ["GenerateSummary", "MetricsResult", "ReportResult", "RunSummary", "ScoreSummary", "SwebenchExport",
           "SwebenchImport", "SweepSummary", "VerifySummary", "generate", "load_config", "metrics", "report", "run",
           "score", "status", "swebench_export", "swebench_import", "sweep", "verify"]


def load_config(path: str | None, overrides: Sequence[str] = ()) -> JobConfig:
    """A YAML config (or None: the schema alone) merged with `key=value` overrides, checked."""
    return merge_config(path, list(overrides))


def run(config: JobConfig, cluster: Cluster = RAY) -> RunSummary:
    """`troop run`: generate, verify as units land, metrics, report."""
    return _run(config, cluster=cluster)


def generate(config: JobConfig, cluster: Cluster = RAY) -> GenerateSummary:
    """`troop generate`: the sample pool only."""
    return _generate(config, cluster=cluster)


def sweep(config_path: str | None, overrides: Sequence[str], cluster: Cluster = RAY,
          on_point: Callable[[str, RunSummary], None] | None = None) -> SweepSummary:
    """`troop sweep`: a grid of runs (`key=a,b` overrides or a `sweep:` section), engines loaded
    once per model; `on_point(name, summary)` hears of each point as it finishes."""
    return _sweep(config_path, list(overrides), cluster, on_point)


def verify(root: str, overrides: Sequence[str] = (), cluster: Cluster = RAY) -> VerifySummary:
    """`troop verify ROOT`: verdicts for every sample unit that has none for the verifier yet."""
    config, store = load_root(root, overrides)
    verifier_name(config.verify.verifier)
    return verify_run(store, config.verify, shared_filesystem=config.run.shared_filesystem, cluster=cluster)


def score(root: str, overrides: Sequence[str] = (), cluster: Cluster = RAY) -> ScoreSummary:
    """`troop score ROOT score.model=PATH`: reward-model scores for every unscored sample unit."""
    config, store = load_root(root, overrides)
    return score_run(store, config.score, shared_filesystem=config.run.shared_filesystem, cluster=cluster)


def metrics(root: str, overrides: Sequence[str] = ()) -> MetricsResult:
    """`troop metrics ROOT`: metrics.json and metrics/*.parquet from the verdicts."""
    return _metrics(root, overrides)


def report(roots: Sequence[str], out: str | None = None, against: str | None = None) -> ReportResult:
    """`troop report ROOT [ROOT2 ...]`: index.html and plots (a sweep root: its points compared);
    `against`: a uniform run's root that adaptive runs are compared with, or a sample run scored
    by the same PRM that search runs are compared with at the same compute."""
    return _report(roots, out, against)


def status(root: str, overrides: Sequence[str] = ()) -> list[str]:
    """`troop status ROOT`: what the root holds, as lines of text."""
    return run_status(load_root(root, overrides)[1])


def swebench_export(root: str, out: str, model_name: str | None = None, dataset_name: str | None = None) -> SwebenchExport:
    """`troop swebench export ROOT OUT`: one SWE-bench predictions file per sample index in OUT,
    and OUT/run_harness.sh with the harness command of each (run ids troop-s<idx>)."""
    return _swebench_export(root, out, model_name, dataset_name)


def swebench_import(root: str, reports: str) -> SwebenchImport:
    """`troop swebench import ROOT REPORTS`: the harness's report.json files under REPORTS as
    verdicts under their own key (swebench-<hash>), one file per sample unit."""
    return _swebench_import(root, reports)
