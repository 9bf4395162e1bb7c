"""What the `troop` commands print: the use cases' summaries as lines and tables."""

import sys

from rich.console import Console
from rich.table import Table

from jobs.report.search import shape

# Long lines and tables stay whole in logs and pipes (rich assumes 80 columns there).
out = Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 200)


def print_generate(summary) -> None:
    rate = summary.tokens / summary.seconds if summary.seconds else 0.0
    out.print(
        f"generated {len(summary.generated)} of {summary.units_total} units "
        f"({summary.units_skipped} already done): {summary.samples:,} samples, "
        f"{summary.tokens:,} tokens, {rate:,.0f} tokens/s"
    )
    if summary.rejected:
        out.print(f"{summary.rejected} problem(s) without samples: the engine refused their prompt (reasons in failures/)")


def print_verify(summary) -> None:
    if summary.gold_self_check is not None:
        agree, total = summary.gold_self_check
        share = agree / total if total else 1.0
        out.print(f"gold self-check: {agree:,} of {total:,} gold answers verify as themselves ({share:.1%})")
    if not summary.units:
        out.print(f"verified 0 units with {summary.verifier_key}: every unit already has its verdicts")
        return
    rate = summary.samples / summary.seconds if summary.seconds else 0.0
    statuses = ", ".join(f"{k} {v:,}" for k, v in sorted(summary.statuses.items()))
    out.print(
        f"verified {summary.units} units with {summary.verifier_key}: {summary.samples:,} samples "
        f"({summary.checked:,} distinct), {summary.passed:,} passed ({statuses}), {rate:,.0f} samples/s"
    )
    if summary.gold_notes:
        out.print(gold_patch_line(summary.gold_notes))


def gold_patch_line(notes: dict) -> str:
    """The patch verifier's gold self-checks: flaky tests (left out of the criteria) and broken instances."""
    flaky = [f"{pid} ({', '.join(note['flaky'])})" for pid, note in sorted(notes.items()) if note["flaky"]]
    broken = sorted(pid for pid, note in notes.items() if note["broken"])
    return (f"gold patches run on {len(notes)} instance(s): flaky tests (left out): {'; '.join(flaky) or 'none'}; "
            f"broken (the gold patch never resolves; samples get error): {', '.join(broken) or 'none'}")


def print_score(summary) -> None:
    if not summary.units:
        out.print(f"scored 0 units with {summary.scorer_key}: every unit already has its scores")
        return
    rate = summary.samples / summary.seconds if summary.seconds else 0.0
    too_long = f", {summary.unscored:,} too long (reward null)" if summary.unscored else ""
    out.print(f"scored {summary.units} units with {summary.scorer_key}: {summary.samples:,} samples "
              f"({summary.scored:,} distinct){too_long}, {rate:,.0f} samples/s")


def _with_interval(metrics: dict, name: str, k: str) -> str:
    value = metrics.get(name, {}).get(k)
    if value is None:
        return "-"
    low, high = metrics["ci"][name][k]
    error = metrics["ci"].get("stderr", {}).get(name, {}).get(k)
    mc = f" ±{error:.4f}" if error else ""  # a Monte Carlo standard error, where not exact
    return f"{value:.3f} [{low:.3f}, {high:.3f}]{mc}"


def _count(value) -> str:
    """1,240; a median between two counts keeps its half: 8.5."""
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.1f}"


def allocation_line(allocation: dict) -> str:
    """metrics.json `allocation` of an adaptive run as one line."""
    spread = allocation.get("samples_per_problem") or {}
    per_problem = "/".join(_count(spread[k]) for k in ("min", "median", "max")) if spread else "-"
    idle = allocation.get("engine_idle_share")
    line = (f"allocation {allocation['policy']}: {allocation['samples_spent']:,} of {allocation['budget']:,} budget samples "
            f"spent, {allocation['problems_solved']}/{allocation['problems']} problems solved, samples per problem "
            f"{per_problem} (min/median/max), {allocation['rounds']} rounds")
    if idle is not None:
        line += f", engines idle {idle:.1%}"
    if not allocation.get("finished", True):
        line += f"; not finished: {allocation['problems_open']} problem(s) still open, rerun the same command to go on"
    return line


def print_metrics(result) -> None:
    metrics = result.metrics
    counts, cost = metrics["counts"], metrics["cost"]
    out.print(
        f"metrics by {metrics['verifier']}: {counts['problems']} problems, {counts['samples']:,} samples, "
        f"{counts['problems_solved']} solved at least once; {cost['tokens_per_sample']:,.1f} tokens per sample"
    )
    if counts.get("problems_refused"):
        out.print(f"{counts['problems_refused']} problem(s) have no samples (the engine refused their prompt, see failures/) and are not in these numbers")
    caption = f"95% bootstrap intervals over problems; best-of-k and weighted by {metrics['score']}"
    names = [("pass_at_k", "pass@k"), ("majority_at_k", "maj@k"), ("best_of_k", "best-of-k"), ("weighted_at_k", "weighted@k")]
    if "best_of_k_reward" in metrics:  # the selection comparison: by the policy's log-prob against the reward model
        names = [names[0], names[1], ("best_of_k_logprob", "best-of-k logprob"), ("best_of_k_reward", "best-of-k reward"),
                 ("weighted_at_k_reward", "weighted@k reward")]
        caption = (f"95% bootstrap intervals over problems; logprob: the policy's mean token log-prob; reward: "
                   f"{metrics['reward']['scorer']}, the vote weighted by {metrics['reward']['vote_weight']}")
    table = Table(caption=caption)
    table.add_column("k", justify="right")
    for name, title in names:
        if name in metrics:
            table.add_column(title, justify="right")
    for k in metrics["pass_at_k"]:
        table.add_row(k, *(_with_interval(metrics, name, k) for name, _ in names if name in metrics))
    out.print(table)
    fit = metrics["fit"]
    if fit.get("forecast"):
        forecast = ", ".join(f"pass@{k} {v:.3f}" for k, v in fit["forecast"].items())
        out.print(f"fit exp({fit['a']:.3f} k^{fit['b']:.3f}), rmse {fit['rmse']:.4f}; forecast (extrapolated): {forecast}")
    if (metrics.get("allocation") or {}).get("policy", "uniform") != "uniform":
        out.print(allocation_line(metrics["allocation"]))
    if (metrics.get("search") or {}).get("accuracy"):
        out.print(search_metrics_line(metrics["search"]))
    out.print(f"metrics: {result.where}")


def print_run(summary) -> None:
    print_generate(summary.generated)
    if summary.verified is not None:
        print_verify(summary.verified)
    if summary.scored is not None:
        print_score(summary.scored)
    out.print(f"run: {summary.root}")
    if summary.metrics is not None:
        print_metrics(summary.metrics)
    if summary.report is not None:
        out.print(f"report: {summary.report}")


def print_comparison(result) -> None:
    table = Table(caption=f"pass@{result.k}: the largest k every point measured")
    for title in ("point", "samples", "pass@1", f"pass@{result.k}", "tokens per solved problem"):
        table.add_column(title, justify="left" if title == "point" else "right")
    show = lambda value, digits: "-" if value is None else format(value, digits)  # noqa: E731
    for r in result.rows:
        table.add_row(r.name, f"{r.samples:,}", show(r.pass_at_1, ".3f"), show(r.pass_at_k, ".3f"),
                      show(r.tokens_per_solved_problem, ",.1f"))
    out.print(table)
    if result.missing:
        out.print(f"not measured yet: {', '.join(result.missing)}")


def equal_coverage_line(equal) -> str:
    """An adaptive run's samples against uniform sampling's for as many problems solved."""
    head = (f"equal coverage: {equal.policy} ({equal.run}) solved {equal.solved:.1%} of problems with "
            f"{equal.adaptive_samples:,} samples; {equal.uniform}")
    if equal.uniform_samples is None:
        return f"{head}: not reached"
    return f"{head}: {equal.uniform_samples:,.0f} samples ({equal.ratio:.2f}x)" if equal.ratio else f"{head}: 0 samples"


def search_metrics_line(search: dict) -> str:
    """A search run's accuracy and compute per problem (metrics.json `search`)."""
    strategy, accuracy = search["strategy"], search["accuracy"]
    show = lambda v, digits: "-" if v is None else format(v, digits)  # noqa: E731
    parts = ", ".join(f"{title} {show(accuracy.get(name), '.3f')}" for name, title in
                      (("top", "top"), ("weighted_vote", "weighted vote"), ("majority", "majority"), ("pass_at_n", "pass@N")))
    return (f"search {strategy['kind']} N={strategy['width']}/M={strategy['beam']}: {parts}; per problem "
            f"{show(search.get('policy_tokens_per_problem'), ',.0f')} generated tokens, "
            f"{show(search.get('prm_tokens_per_problem'), ',.0f')} PRM tokens, {show(search.get('flops_per_problem'), '.3g')} FLOPs")


def _at_cost_text(at, title: str) -> str:
    if at is None or at.k is None:
        return f"at equal {title}: unknown"
    if at.beyond:
        return f"at equal {title} (k={at.k:.1f}): beyond n"
    shown = "-" if at.value is None else f"{at.value:.3f}"
    return f"at equal {title} (k={at.k:.1f}): {shown}"


def search_line(compared) -> str:
    """A search run's accuracy, and the sample run's best-of-k by the PRM at its cost."""
    accuracy = compared.accuracy
    show = lambda v: "-" if v is None else f"{v:.3f}"  # noqa: E731
    head = (f"search: {compared.run.label} ({shape(compared.run)}) top {show(accuracy.get('top'))}, "
            f"weighted vote {show(accuracy.get('weighted_vote'))}")
    if compared.baseline is None:
        why = f" ({compared.unmatched})" if compared.unmatched else ""
        return f"{head}; no sample run scored by the same PRM on the same problems to compare with{why}"
    costs = "; ".join(_at_cost_text(compared.matched[cost]["best_of_k"], title)
                      for cost, title in (("policy_tokens_per_problem", "tokens"), ("flops_per_problem", "FLOPs")))
    return f"{head}; {compared.baseline.label} best-of-k (PRM) {costs}"


def print_report(result) -> None:
    if result.rows or result.missing:
        print_comparison(result)
    for equal in result.equal_coverage:
        out.print(equal_coverage_line(equal))
    for compared in result.search:
        out.print(search_line(compared))
    out.print(f"report: {result.index}")


def print_sweep(summary) -> None:
    out.print(
        f"sweep: {len(summary.ran)} point(s) run, {len(summary.skipped)} already done, {len(summary.failed)} failed; "
        f"{summary.engines_started} engine start(s) in {summary.pools_started} pool(s)"
    )
    if summary.report is not None:
        print_report(summary.report)


def print_swebench_export(summary) -> None:
    out.print(f"exported {summary.samples:,} samples ({summary.empty:,} without a patch) as {len(summary.files)} "
              f"SWE-bench predictions file(s), one per sample index, model {summary.model_name}: {summary.out}")
    if summary.commands:
        out.print(f"run the harness: sh {summary.script} ({len(summary.commands)} run(s) of {summary.dataset_name}); "
                  f"the first, from {summary.out}:")
        out.print(f"  {summary.commands[0]}")
    out.print(f"then: {summary.import_command}")


def print_swebench_import(summary) -> None:
    statuses = ", ".join(f"{k} {v:,}" for k, v in sorted(summary.statuses.items()))
    out.print(f"imported {summary.reports:,} harness report(s) into {summary.units} verdict unit(s) under "
              f"{summary.verifier_key}: {summary.samples:,} samples, {summary.resolved:,} resolved ({statuses})")
    out.print(f"metrics: {summary.metrics_command}")
