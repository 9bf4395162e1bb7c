"""`troop status`: what a root holds, read from the store alone."""

import json

from omegaconf import OmegaConf

from jobs.plan import plan_units
from jobs.store import RunStore


def run_status(store: RunStore) -> list[str]:
    lines = [f"root: {store.root}"]
    done = store.unit_ids("samples")
    if store.exists(store.job_yaml) and store.exists(store.problems):
        job = OmegaConf.create(store.read_text(store.job_yaml))
        ids = store.read_table(store.problems, columns=["problem_id"])["problem_id"].to_pylist()
        units = plan_units(ids, job.sampling.n, job.plan.samples_per_unit)
        finished = sum(u.unit_id in done for u in units)
        lines.append(f"samples: {finished}/{len(units)} units ({len(ids)} problems x n={job.sampling.n})")
    else:
        lines.append(f"samples: {len(done)} unit files (no job.yaml: not written by troop run)")
    verdict_root = store.path("verdicts")
    keys = sorted(p.rsplit("/", 1)[-1] for p in store.fs.glob(store.path("verdicts", "*"))) if store.exists(verdict_root) else []
    for key in keys:
        lines.append(f"verdicts {key}: {len(store.unit_ids(f'verdicts/{key}') & done)}/{len(done)} sample units")
    if store.exists(store.metrics_json):
        metrics = json.loads(store.read_text(store.metrics_json))
        curve = metrics.get("pass_at_k", {})
        if curve:
            top = max(curve, key=int)
            lines.append(f"metrics: pass@1 {curve.get('1', float('nan')):.3f}, pass@{top} {curve[top]:.3f}")
    return lines
