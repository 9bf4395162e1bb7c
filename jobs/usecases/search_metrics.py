"""metrics.json `search`: what a run scored by a process reward model cost and chose, so that a
step-level search can be set against independent sampling at the same compute
(`jobs.report.search`). Reads the root here; the arithmetic is `jobs.metrics.search`'s.

- A search run (`strategy.kind=beam|dvts`): the accuracy of its N trajectories (top, weighted
  vote, majority, pass@N), unit by unit (a unit holds every trajectory of its problems), and
  its cost from the tree (`search/`): every node's generated and lookahead tokens, the PRM's.
- A sample run whose scores hold step rewards (a PRM's): its selection curves by that PRM as
  the metrics computed them (best-of-k and weighted vote by reward, majority@k), and the cost of
  k samples per problem at each k (generated tokens, the PRM's from the scores' `num_tokens`).
Any other run has no `search` section (None).
"""

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from jobs.metrics.measure import model_parameters, reward_vote_weights
from jobs.metrics.search import cost_at_k, flops, flops_at_k, mean_or_none, per_problem, search_accuracy
from jobs.store import layout
from jobs.store.root import RunStore
from jobs.store.verified import VerifiedReader

KEYS = ["problem_id", "sample_idx"]


def search_metrics(store: RunStore, job: dict | None, verifier_key: str, scorer_key: str | None, metrics: dict,
                   problems: pa.Table, prm_path: str | None = None) -> dict | None:
    """The `search` section of metrics.json, or None without a PRM's scores. `metrics`: the
    run's metrics so far (its selection curves and policy size are reused); `problems`: the
    per-problem table (n, tokens); `prm_path`: the PRM's folder (default: job.yaml's score.model)."""
    if scorer_key is None:
        return None
    job = job or {}
    strategy = job.get("strategy") or {}
    kind = strategy.get("kind") or "sample"
    if kind == "sample" and not has_step_rewards(store, scorer_key):
        return None  # an outcome model's scores: no PRM to match a search's
    policy_params = (metrics.get("cost") or {}).get("model_params")
    prm_params = model_parameters(prm_path or (job.get("score") or {}).get("model"))
    width = strategy.get("width") or (job.get("sampling") or {}).get("n")
    section = {
        "scorer": scorer_key,
        "strategy": {"kind": kind, "width": width if kind != "sample" else None,
                     "beam": strategy.get("beam") if kind != "sample" else None},
        "policy_params": policy_params,
        "prm_params": prm_params,
    }
    reader = VerifiedReader(store, verifier_key, None, scorer_key=scorer_key)
    if kind == "sample":
        return {**section, **sample_section(store, reader, metrics, problems, policy_params, prm_params)}
    return {**section, **search_section(store, reader, policy_params, prm_params)}


def has_step_rewards(store: RunStore, scorer_key: str) -> bool:
    """Whether the scores are a process model's: its rows carry step rewards (an outcome model's are null)."""
    units = sorted(store.unit_ids(layout.scores(scorer_key)))
    if not units:
        return False
    path = store.unit_file(layout.scores(scorer_key), units[0])
    if "step_rewards" not in _schema(store, path).names:
        return False
    column = store.read_table(path, ["step_rewards"])["step_rewards"]
    return column.null_count < len(column)


def _schema(store: RunStore, path: str) -> pa.Schema:
    with store.fs.open(path, "rb") as f:
        return pq.read_schema(f)


def _column_sums(store: RunStore, folder: str, units: list[str], columns: list[str]) -> dict[str, dict] | None:
    """{column: {problem_id: sum}} over the units' files in `folder`; None where a file or a
    column is missing (a root written before the column was)."""
    totals = {name: {} for name in columns}
    for unit in units:
        path = store.unit_file(folder, unit)
        if not store.exists(path) or not set(columns) <= set(_schema(store, path).names):
            return None
        table = store.read_table(path, ["problem_id", *columns])
        sums = table.group_by("problem_id").aggregate([(name, "sum") for name in columns])
        for name in columns:
            for pid, value in zip(sums["problem_id"].to_pylist(), sums[f"{name}_sum"].to_pylist()):
                totals[name][pid] = totals[name].get(pid, 0) + (value or 0)
    return totals


def sample_section(store: RunStore, reader: VerifiedReader, metrics: dict, problems: pa.Table,
                   policy_params: int | None, prm_params: int | None) -> dict:
    ids = problems["problem_id"].to_pylist()
    n = problems["n"].to_numpy().astype(np.float64)
    tokens = problems["tokens"].to_numpy().astype(np.float64)
    read = _column_sums(store, reader.scores, reader.units, ["num_tokens"])
    prm = None if read is None else np.array([read["num_tokens"].get(pid, 0) for pid in ids], dtype=np.float64)
    ks = [int(k) for k in metrics["ks"]]
    policy_at_k = cost_at_k(ks, n, tokens)
    prm_at_k = cost_at_k(ks, n, prm)
    policy_tokens = float(tokens.sum()) / len(ids)
    prm_tokens = None if prm is None else float(prm.sum()) / len(ids)
    return {
        "problems": len(ids),
        "policy_tokens_per_problem": policy_tokens,
        "prm_tokens_per_problem": prm_tokens,
        "flops_per_problem": flops(policy_params, policy_tokens, prm_params, prm_tokens),
        "ks": ks,
        # As the metrics computed them: selection by the PRM's reward, and the plain vote.
        "selection": {"best_of_k": metrics.get("best_of_k_reward"), "majority_at_k": metrics.get("majority_at_k"),
                      "weighted_at_k": metrics.get("weighted_at_k_reward")},
        "cost_at_k": {"policy_tokens_per_problem": policy_at_k, "prm_tokens_per_problem": prm_at_k,
                      "flops_per_problem": flops_at_k(ks, policy_at_k, policy_params, prm_at_k, prm_params)},
    }


def search_section(store: RunStore, reader: VerifiedReader, policy_params: int | None, prm_params: int | None) -> dict:
    answers = "answer" in reader.verdict_columns
    parts = {name: [] for name in ("top", "weighted_vote", "majority", "pass_at_n")}
    voted = False  # any answer at all: a verifier may leave every answer null (nothing to vote on)
    for unit in reader.units:
        accuracy, any_answer = unit_accuracy(store, reader, unit, answers)
        voted = voted or any_answer
        for name, values in accuracy.items():
            parts[name].append(values)
    accuracy = {name: np.concatenate(values) for name, values in parts.items()}
    problems = int(accuracy["top"].size)
    tree = _column_sums(store, layout.SEARCH, reader.units, ["num_tokens", "lookahead_tokens", "prm_tokens"])
    policy_tokens = prm_tokens = None
    if tree is not None:
        policy_tokens = per_problem(sum(tree["num_tokens"].values()) + sum(tree["lookahead_tokens"].values()), problems)
        prm_tokens = per_problem(sum(tree["prm_tokens"].values()), problems)
    return {
        "problems": problems,
        "policy_tokens_per_problem": policy_tokens,
        "prm_tokens_per_problem": prm_tokens,
        "flops_per_problem": flops(policy_params, policy_tokens, prm_params, prm_tokens),
        "accuracy": {name: mean_or_none(values) if voted or name in ("top", "pass_at_n") else None
                     for name, values in accuracy.items()},
    }


def unit_accuracy(store: RunStore, reader: VerifiedReader, unit: str, answers: bool) -> tuple[dict[str, np.ndarray], bool]:
    """Per problem of one search unit (which holds all N trajectories of its problems), and
    whether any of its verdicts has an answer."""
    columns = KEYS + ["passed"] + (["answer"] if answers else [])
    verdicts = store.read_table(store.unit_file(reader.folder, unit), columns)
    scores = store.read_table(store.unit_file(reader.scores, unit), KEYS + ["reward"])
    table = verdicts.join(scores, KEYS).sort_by([(k, "ascending") for k in KEYS])
    _, problem = np.unique(np.array(table["problem_id"].to_pylist(), dtype=object), return_inverse=True)
    answer = (pc.fill_null(pc.dictionary_encode(table["answer"].combine_chunks()).indices, -1).to_numpy(zero_copy_only=False)
              if answers else np.full(table.num_rows, -1))
    reward = pc.cast(table["reward"], pa.float64()).to_numpy(zero_copy_only=False).astype(np.float64)
    passed = pc.fill_null(table["passed"], False).to_numpy(zero_copy_only=False)
    weights = reward_vote_weights(reward, reader.reward_is_logit)
    return search_accuracy(problem, table["sample_idx"].to_numpy(), passed, answer, weights), bool(np.any(answer >= 0))
