"""The run root's layout: the name of every file and folder of a run, and nowhere else.

```
job.yaml                         resolved config + versions      (JOB_YAML)
problems.parquet                 the exact problem set            (PROBLEMS)
samples/unit-<id>.parquet        one file per work unit           (SAMPLES)
verdicts/<verifier-key>/unit-<id>.parquet                         (verdicts(key))
scores/<scorer-key>/unit-<id>.parquet                             (scores(key))
search/unit-<id>.parquet         a step-level search's tree       (SEARCH)
failures/unit-<id>.parquet       refused prompts, failed units    (FAILURES)
progress.json                    units in flight, by the driver   (PROGRESS)
allocation.json                  an adaptive run's driver facts   (ALLOCATION_JSON)
metrics.json, metrics/<name>.parquet                              (METRICS_JSON, metrics_table(name))
report/index.html, *.png                                          (REPORT)
sweep.yaml                       a sweep root's points            (SWEEP_YAML)
```
Folders are relative to the root; `jobs.store.root.RunStore` turns them into paths.
"""

import posixpath

JOB_YAML = "job.yaml"
PROBLEMS = "problems.parquet"
SAMPLES = "samples"
VERDICTS = "verdicts"
SCORES = "scores"
SEARCH = "search"
FAILURES = "failures"
PROGRESS = "progress.json"
ALLOCATION_JSON = "allocation.json"
METRICS_JSON = "metrics.json"
METRICS = "metrics"
REPORT = "report"
SWEEP_YAML = "sweep.yaml"

UNIT_PREFIX, UNIT_SUFFIX = "unit-", ".parquet"
UNIT_GLOB = f"{UNIT_PREFIX}*{UNIT_SUFFIX}"


def verdicts(verifier_key: str) -> str:
    """The folder of one verifier's verdict units."""
    return posixpath.join(VERDICTS, verifier_key)


def scores(scorer_key: str) -> str:
    """The folder of one scorer's score units."""
    return posixpath.join(SCORES, scorer_key)


def unit_file(folder: str, unit_id: str) -> str:
    return posixpath.join(folder, f"{UNIT_PREFIX}{unit_id}{UNIT_SUFFIX}")


def unit_id_of(file_name: str) -> str:
    """`unit-<id>.parquet` -> `<id>`."""
    return posixpath.basename(file_name)[len(UNIT_PREFIX):-len(UNIT_SUFFIX)]


def metrics_table(name: str) -> str:
    """`metrics/<name>.parquet` (problems, curves)."""
    return posixpath.join(METRICS, f"{name}.parquet")
