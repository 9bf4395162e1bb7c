"""The `troop` command line: a thin layer that parses, calls one use case of `jobs.api`, prints."""

from jobs.cli.main import main

__all__ = ["main"]
