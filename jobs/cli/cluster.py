"""`troop submit`, `troop jobs`, `troop logs`, `troop stop`: their arguments and what they print.
What they do to the cluster is in jobs.usecases.submit."""

import sys
from datetime import datetime

from jobs.cli.output import out
from jobs.usecases.submit import (
    TERMINAL,
    check_succeeded,
    connect,
    follow,
    job_log,
    stop,
    submit,
    submitted_jobs,
)


def follow_log(client, job_id: str) -> str:
    """Print the job's log as it comes until the job ends; its final status. Ctrl-C stops
    following, not the job: exit 130 after saying how to follow or stop it."""
    try:
        return follow(client, job_id, sys.stdout)
    except KeyboardInterrupt:
        print(
            f"troop: stopped following job {job_id}, which keeps running on the cluster: "
            f"troop logs {job_id} --follow to follow it again, troop stop {job_id} to stop it",
            file=sys.stderr,
        )
        raise SystemExit(130) from None


def _end_of(client, job_id: str) -> None:
    """Follow a job to its end, print its status; a job that did not succeed fails the command."""
    status = follow_log(client, job_id)
    out.print(f"job {job_id} {status}")
    check_succeeded(client, job_id, status)


def cmd_submit(args) -> None:
    client, job_id, submission = submit(args.config, args.overrides, args.address)
    out.print(f"submitted job {job_id} to {client.get_address()}: troop {submission.command} {args.config}")
    if args.no_wait:
        out.print(f"follow it with troop logs {job_id} --follow; stop it with troop stop {job_id}")
        return
    out.print("following its log (Ctrl-C stops following, not the job):")
    _end_of(client, job_id)


def _started(details) -> str:
    if not details.start_time:
        return "-"
    return datetime.fromtimestamp(details.start_time / 1000).strftime("%Y-%m-%d %H:%M:%S")


def cmd_jobs(args) -> None:
    from rich.table import Table

    client = connect(args.address)
    submitted = submitted_jobs(client)
    if not submitted:
        out.print(f"no submitted jobs on {client.get_address()}")
        return
    table = Table(caption=f"jobs on {client.get_address()}, oldest first")
    table.add_column("submission id", no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column("started", no_wrap=True)
    table.add_column("entrypoint", overflow="fold")
    for details in submitted:
        table.add_row(details.submission_id, str(details.status.value), _started(details), details.entrypoint)
    out.print(table)


def cmd_logs(args) -> None:
    client = connect(args.address)
    if args.follow:
        _end_of(client, args.job_id)
        return
    sys.stdout.write(job_log(client, args.job_id))
    sys.stdout.flush()


def cmd_stop(args) -> None:
    client = connect(args.address)
    was_running, status = stop(client, args.job_id)
    if not was_running:
        out.print(f"job {args.job_id} had already ended: {status}")
    elif status in TERMINAL:
        out.print(f"job {args.job_id} {status}")
    else:
        out.print(f"job {args.job_id} is still {status} after a minute; troop jobs shows when it ends")


def _address_option(parser) -> None:
    parser.add_argument(
        "--address",
        help="the cluster's dashboard, e.g. http://HEAD:8265 (default: RAY_ADDRESS, else a local Ray)",
    )


def add_submit_commands(commands) -> None:
    """`submit`, `jobs`, `logs` and `stop` as subcommands of the `troop` parser."""
    submit_parser = commands.add_parser("submit", help="run a config (or a sweep) as a job on a Ray cluster")
    _address_option(submit_parser)
    submit_parser.add_argument("--no-wait", action="store_true", help="print the job id and return without following its log")
    submit_parser.add_argument("config", help="a YAML config, e.g. conf/demo.yaml")
    submit_parser.add_argument("overrides", nargs="*", help="key=value (key=a,b for a sweep), e.g. sampling.n=64")
    submit_parser.set_defaults(func=cmd_submit)
    listing = commands.add_parser("jobs", help="the jobs submitted to a Ray cluster")
    _address_option(listing)
    listing.set_defaults(func=cmd_jobs)
    logs = commands.add_parser("logs", help="a submitted job's log")
    _address_option(logs)
    logs.add_argument("job_id", metavar="JOB", help="the submission id troop submit printed")
    logs.add_argument("-f", "--follow", action="store_true", help="follow the log until the job ends; exit nonzero unless it succeeded")
    logs.set_defaults(func=cmd_logs)
    stop_parser = commands.add_parser("stop", help="stop a submitted job")
    _address_option(stop_parser)
    stop_parser.add_argument("job_id", metavar="JOB", help="the submission id troop submit printed")
    stop_parser.set_defaults(func=cmd_stop)
