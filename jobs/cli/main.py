"""The `troop` command line: `run`, `sweep`, `generate`, `verify`, `metrics`, `report`, `status`,
and the cluster commands `submit`, `jobs`, `logs`, `stop` (jobs.cluster.submit)."""

import argparse
import logging
import sys

from rich.console import Console
from rich.table import Table

from jobs.config import JobConfig, RootConfig, merge_config, merge_root_config
from jobs.errors import ConfigError, StoreError, TroopError
from jobs.store.root import RunStore
from jobs.cluster.submit import add_submit_commands

log = logging.getLogger("troop")
# Long lines and tables stay whole in logs and pipes (rich assumes 80 columns there).
out = Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 200)


def _load_root(root: str, overrides: list[str]) -> tuple[RootConfig, RunStore]:
    """A root's settings: its job.yaml where there is one, then the overrides."""
    probe = merge_root_config(root, None, overrides)
    store = RunStore(root, dict(probe.run.storage_options))
    try:
        text = store.read_text(store.job_yaml) if store.exists(store.job_yaml) else None
    except Exception as err:  # every fsspec backend has its own errors
        raise StoreError(f"{root} cannot be read ({type(err).__name__}: {err}): check the URL and credentials") from None
    config = merge_root_config(root, text, overrides)
    return config, RunStore(root, dict(config.run.storage_options))


def _print_root(config: JobConfig) -> RunStore:
    """Say where the run went, as a path or URL the user can paste."""
    store = RunStore(config.run.root, dict(config.run.storage_options))
    out.print(f"run: {store.url(store.path())}")
    return store


def print_generate(summary) -> None:
    rate = summary.tokens / summary.seconds if summary.seconds else 0.0
    out.print(
        f"generated {len(summary.generated)} of {summary.units_total} units "
        f"({summary.units_skipped} already done): {summary.samples:,} samples, "
        f"{summary.tokens:,} tokens, {rate:,.0f} tokens/s"
    )
    if summary.rejected:
        out.print(f"{summary.rejected} problem(s) without samples: the engine refused their prompt (reasons in failures/)")


def check_unverified_units(summary, root: str) -> None:
    """A unit whose verification killed every worker it met fails the command, after the rest."""
    if summary.failed:
        unit_id, reason = next(iter(summary.failed.items()))
        raise TroopError(
            f"verifying unit {unit_id} failed every attempt ({reason}) and {len(summary.failed) - 1} other unit(s) "
            f"likewise; the rest of {root} is verified: rerun troop verify {root} to retry them"
        )


def check_failed_units(summary, root: str) -> None:
    """After everything else is done: a unit that failed every attempt fails the command."""
    if summary.failed:
        unit_id, (status, reason) = next(iter(summary.failed.items()))
        more = f" and {len(summary.failed) - 1} more" if len(summary.failed) > 1 else ""
        raise TroopError(
            f"unit {unit_id}{more} failed every attempt ({status}: {reason}); the rest of the run is done, "
            f"the failures are in {root}/failures/: rerun the same command to retry them"
        )


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


def _with_interval(metrics: dict, name: str, k: str) -> str:
    value = metrics.get(name, {}).get(k)
    if value is None:
        return "-"
    low, high = metrics["ci"][name][k]
    error = metrics["ci"].get("stderr", {}).get(name, {}).get(k)
    mc = f" ±{error:.4f}" if error else ""  # a Monte Carlo standard error, where not exact
    return f"{value:.3f} [{low:.3f}, {high:.3f}]{mc}"


def print_metrics(metrics: dict, where: str) -> None:
    counts, cost = metrics["counts"], metrics["cost"]
    out.print(
        f"metrics by {metrics['verifier']}: {counts['problems']} problems, {counts['samples']:,} samples, "
        f"{counts['problems_solved']} solved at least once; {cost['tokens_per_sample']:,.1f} tokens per sample"
    )
    if counts.get("problems_refused"):
        out.print(f"{counts['problems_refused']} problem(s) have no samples (the engine refused their prompt, see failures/) and are not in these numbers")
    table = Table(caption=f"95% bootstrap intervals over problems; best-of-k and weighted by {metrics['score']}")
    names = [("pass_at_k", "pass@k"), ("majority_at_k", "maj@k"), ("best_of_k", "best-of-k"), ("weighted_at_k", "weighted@k")]
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
    out.print(f"metrics: {where}")


def _measure(store: RunStore, key: str, settings, model_path: str | None = None) -> None:
    from jobs.metrics.measure import measure_run, model_parameters, write_metrics

    params = None if settings.model_params else model_parameters(model_path)
    metrics, problems, curves = measure_run(store, key, settings, params)
    write_metrics(store, metrics, problems, curves)
    print_metrics(metrics, store.url(store.metrics_json))


def _report(roots: list[RunStore], out_store: RunStore) -> None:
    from jobs.report.write import write_report

    out.print(f"report: {out_store.url(write_report(roots, out_store))}")


def run_config(config: JobConfig, pool=None, plan=None) -> None:
    """`troop run` of one config: generate and verify (on `pool` if given; `plan` if the caller
    planned the run already), metrics, report; a TroopError at the end names the units that
    failed every attempt."""
    from jobs.usecases.generate import generate
    from jobs.usecases.run import generate_and_verify

    if config.verify.verifier is None:
        summary = generate(config, pool, plan=plan)
        print_generate(summary)
        check_failed_units(summary, _print_root(config).root)
        return
    generated, verified = generate_and_verify(config, pool, plan)
    print_generate(generated)
    print_verify(verified)
    store = _print_root(config)
    _measure(store, verified.verifier_key, config.metrics, config.model.path)
    _report([store], RunStore(store.url(store.path("report")), dict(config.run.storage_options)))
    check_failed_units(generated, store.root)
    check_unverified_units(verified, store.root)


def _refuse_sweep_axes(overrides: list[str]) -> None:
    from jobs.usecases.sweep import split_overrides

    axes = split_overrides(overrides)[0]
    if axes:
        key = next(iter(axes))
        raise ConfigError(f"'{key}={','.join(axes[key])}' has several values: run a grid with troop sweep CONFIG {key}=...")


def cmd_run(args) -> None:
    _refuse_sweep_axes(args.overrides)
    run_config(merge_config(args.config, args.overrides))


def cmd_sweep(args) -> None:
    from jobs.usecases.sweep import load_sweep
    from jobs.usecases.sweep_run import run_sweep

    sweep = load_sweep(args.config, args.overrides)
    out.print(f"sweep: {len(sweep.points)} points under {sweep.store.url(sweep.store.path())}")
    summary = run_sweep(sweep, run_config)
    out.print(
        f"sweep: {len(summary.ran)} point(s) run, {len(summary.skipped)} already done, {len(summary.failed)} failed; "
        f"{summary.engines_started} engine start(s) in {summary.pools_started} pool(s)"
    )
    if summary.ran or summary.skipped:
        _sweep_report(sweep.store, RunStore(sweep.store.url(sweep.store.path("report")), dict(sweep.storage_options)))
    if summary.failed:
        name, error = next(iter(summary.failed.items()))
        more = f" and {len(summary.failed) - 1} more" if len(summary.failed) > 1 else ""
        raise TroopError(f"sweep point {name}{more} did not finish ({error})")


def print_comparison(k, rows, missing) -> None:
    table = Table(caption=f"pass@{k}: the largest k every point measured")
    for title in ("point", "samples", "pass@1", f"pass@{k}", "tokens per solved problem"):
        table.add_column(title, justify="left" if title == "point" else "right")
    show = lambda value, digits: "-" if value is None else format(value, digits)  # noqa: E731
    for r in rows:
        table.add_row(r.name, f"{r.samples:,}", show(r.pass_at_1, ".3f"), show(r.pass_at_k, ".3f"),
                      show(r.tokens_per_solved_problem, ",.1f"))
    out.print(table)
    if missing:
        out.print(f"not measured yet: {', '.join(missing)}")


def _sweep_report(sweep_store: RunStore, out_store: RunStore) -> None:
    from jobs.report.compare import write_sweep_report

    index, k, rows, missing = write_sweep_report(sweep_store, out_store)
    print_comparison(k, rows, missing)
    out.print(f"report: {out_store.url(index)}")


def cmd_generate(args) -> None:
    from jobs.usecases.generate import generate

    config = merge_config(args.config, args.overrides)
    summary = generate(config)
    print_generate(summary)
    check_failed_units(summary, _print_root(config).root)


def _verifier_name(config: RootConfig) -> str:
    if config.verify.verifier is None:
        raise TroopError("verify.verifier is null for this root: name a verifier, e.g. verify.verifier=numeric")
    return config.verify.verifier


def cmd_verify(args) -> None:
    from jobs.usecases.verify import verify_run

    config, store = _load_root(args.root, args.overrides)
    _verifier_name(config)
    summary = verify_run(store, config.verify, shared_filesystem=config.run.shared_filesystem)
    print_verify(summary)
    check_unverified_units(summary, store.root)


def cmd_metrics(args) -> None:
    from jobs.usecases.verify import stored_verifier_key

    config, store = _load_root(args.root, args.overrides)
    key = stored_verifier_key(store, _verifier_name(config), config.verify)
    _measure(store, key, config.metrics, _model_path(store))


def _model_path(store: RunStore) -> str | None:
    """model.path from the root's job.yaml, for the parameter count (FLOPs)."""
    from omegaconf import OmegaConf

    if not store.exists(store.job_yaml):
        return None
    return OmegaConf.select(OmegaConf.create(store.read_text(store.job_yaml)), "model.path", default=None)


def cmd_report(args) -> None:
    from jobs.usecases.sweep import is_sweep_root

    stores = [_load_root(root, [])[1] for root in args.roots]
    target = args.out or stores[0].url(stores[0].path("report"))
    out_store = RunStore(target, dict(stores[0].storage_options) if args.out is None else {})
    sweeps = [s.root for s in stores if is_sweep_root(s)]
    if sweeps and len(stores) > 1:
        raise TroopError(f"{sweeps[0]} is a sweep: report it alone (troop report {sweeps[0]}), its points are overlaid")
    if sweeps:
        _sweep_report(stores[0], out_store)
    else:
        _report(stores, out_store)


def cmd_status(args) -> None:
    from jobs.usecases.status import run_status

    _, store = _load_root(args.root, args.overrides)
    for line in run_status(store):
        out.print(line)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="troop", description="Repeated sampling from language models at scale.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    commands = parser.add_subparsers(dest="command", required=True)
    config_arg = ("config", "a YAML config, e.g. conf/demo.yaml", "sampling.n=64")
    root_arg = ("root", "the run's root: a path or URL", "verify.verifier=numeric")
    for name, func, helptext, (positional, positional_help, example) in [
        ("run", cmd_run, "generate, verify and measure a run", config_arg),
        ("sweep", cmd_sweep, "a grid of runs (key=a,b ...), engines loaded once per model", config_arg),
        ("generate", cmd_generate, "generate the sample pool only", config_arg),
        ("verify", cmd_verify, "verify an existing pool offline (no GPU needed)", root_arg),
        ("metrics", cmd_metrics, "compute metrics.json from the verdicts", root_arg),
        ("status", cmd_status, "units done, verdicts and metrics of a root", root_arg),
    ]:
        sub = commands.add_parser(name, help=helptext)
        sub.add_argument(positional, help=positional_help)
        sub.add_argument("overrides", nargs="*", help=f"key=value, e.g. {example}")
        sub.set_defaults(func=func)
    report = commands.add_parser("report", help="plots and tables of one or several roots as one HTML page")
    report.add_argument("roots", nargs="+", help="run roots (paths or URLs); several overlay their curves; a sweep root overlays its points")
    report.add_argument("--out", help="where index.html and the PNGs go (default: ROOT/report of the first root)")
    report.set_defaults(func=cmd_report)
    add_submit_commands(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s troop: %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
    )
    try:
        args.func(args)
    except TroopError as err:
        print(f"troop: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("troop: interrupted; rerun the same command to resume", file=sys.stderr)
        return 130
    return 0
