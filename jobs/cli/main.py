"""The `troop` command line: parse, call one use case of `jobs.api`, print its summary.

`run`, `sweep`, `generate`, `verify`, `metrics`, `report`, `status` here; the cluster commands
`submit`, `jobs`, `logs`, `stop` in `jobs.cli.cluster`. A `TroopError` is printed as one line
and exits 2.
"""

import argparse
import logging
import sys

from jobs import api
from jobs.cli.cluster import add_submit_commands
from jobs.cli.output import (out, print_generate, print_metrics, print_report, print_run, print_score, print_sweep,
                             print_verify)
from jobs.cli.output import print_swebench_export, print_swebench_import
from jobs.cluster.pools import RAY, Cluster
from jobs.cluster.session import end_ray
from jobs.errors import ConfigError, TroopError
from jobs.usecases.sweep import is_sweep, split_overrides


def _refuse_sweep_axes(overrides: list[str]) -> None:
    axes = split_overrides(overrides)[0]
    if axes:
        key = next(iter(axes))
        raise ConfigError(f"'{key}={','.join(axes[key])}' has several values: run a grid with troop sweep CONFIG {key}=...")


def cmd_run(args) -> None:
    if is_sweep(args.config, []):  # a config with a sweep: section is a grid (conf/demo_search.yaml)
        return cmd_sweep(args)
    _refuse_sweep_axes(args.overrides)
    summary = api.run(api.load_config(args.config, args.overrides), args.cluster)
    print_run(summary)
    summary.check()


def cmd_sweep(args) -> None:
    summary = api.sweep(args.config, args.overrides, args.cluster, on_point=lambda name, result: print_run(result))
    print_sweep(summary)
    summary.check()


def cmd_generate(args) -> None:
    summary = api.generate(api.load_config(args.config, args.overrides), args.cluster)
    print_generate(summary)
    out.print(f"run: {summary.root}")
    summary.check()


def cmd_verify(args) -> None:
    summary = api.verify(args.root, args.overrides, args.cluster)
    print_verify(summary)
    summary.check(args.root)


def cmd_score(args) -> None:
    summary = api.score(args.root, args.overrides, args.cluster)
    print_score(summary)
    summary.check(args.root)


def cmd_metrics(args) -> None:
    print_metrics(api.metrics(args.root, args.overrides))


def cmd_report(args) -> None:
    print_report(api.report(args.roots, args.out, args.against))


def cmd_status(args) -> None:
    for line in api.status(args.root, args.overrides):
        out.print(line)


def cmd_swebench_export(args) -> None:
    print_swebench_export(api.swebench_export(args.root, args.out, args.model_name, args.dataset_name))


def cmd_swebench_import(args) -> None:
    print_swebench_import(api.swebench_import(args.root, args.reports))


def add_swebench_commands(commands) -> None:
    """`troop swebench export ROOT OUT` and `troop swebench import ROOT REPORTS`."""
    swebench = commands.add_parser("swebench", help="evaluate a pool with the official SWE-bench harness")
    actions = swebench.add_subparsers(dest="action", required=True)
    export = actions.add_parser("export", help="one SWE-bench predictions file per sample index, and the harness commands")
    export.add_argument("root", help="the run's root: a path or URL")
    export.add_argument("out", help="the folder for the predictions files and run_harness.sh")
    export.add_argument("--model-name", help="model_name_or_path in the predictions (default: troop-<root's name>)")
    export.add_argument("--dataset-name", help="the harness's --dataset_name (default: the root's Hub dataset, "
                                               "else SWE-bench/SWE-bench_Lite)")
    export.set_defaults(func=cmd_swebench_export)
    imports = actions.add_parser("import", help="the harness's report.json files as verdicts (verdicts/swebench-<hash>/)")
    imports.add_argument("root", help="the run's root: a path or URL")
    imports.add_argument("reports", help="where the harness wrote its reports (its logs/run_evaluation), searched recursively")
    imports.set_defaults(func=cmd_swebench_import)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="troop", description="Repeated sampling from language models at scale.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    commands = parser.add_subparsers(dest="command", required=True)
    config_arg = ("config", "a YAML config, e.g. conf/demo.yaml", "sampling.n=64")
    root_arg = ("root", "the run's root: a path or URL", "verify.verifier=numeric")
    for name, func, helptext, (positional, positional_help, example) in [
        ("run", cmd_run, "generate, verify and measure a run (a config with a sweep: section runs its grid, as troop sweep)", config_arg),
        ("sweep", cmd_sweep, "a grid of runs (key=a,b ...), engines loaded once per model", config_arg),
        ("generate", cmd_generate, "generate the sample pool only", config_arg),
        ("verify", cmd_verify, "verify an existing pool offline (no GPU needed)", root_arg),
        ("score", cmd_score, "score an existing pool with a reward model (score.model=PATH)", root_arg),
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
    report.add_argument("--against", metavar="ROOT",
                        help="a uniform run to compare adaptive runs with (its measured pass@k; default: their own "
                             "expected uniform curve), or a sample run scored by the same PRM to compare search runs "
                             "with at the same compute")
    report.set_defaults(func=cmd_report)
    add_submit_commands(commands)
    add_swebench_commands(commands)
    return parser


def main(argv: list[str] | None = None, cluster: Cluster = RAY) -> int:
    """The command; `cluster` is where the use cases get Ray and their executors (a test's own)."""
    args = build_parser().parse_args(argv)
    args.cluster = cluster
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
    finally:
        if cluster is RAY:
            end_ray()
    return 0
