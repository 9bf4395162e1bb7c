"""The `troop` command line: a thin layer that parses, calls one use case of `jobs.api`, prints."""

import gc


def main(argv: list[str] | None = None, **kwargs) -> int:
    """The `troop` program (the console script and `python -m jobs`). It imports the CLI when
    called, not when imported (see `jobs/__main__.py`). Once the command is done, the heap it
    built is frozen: the interpreter's exit then skips its last full garbage collection (0.3-0.5 s
    after a run)."""
    from jobs.cli.main import main as run

    code = run(argv, **kwargs)
    gc.freeze()
    return code


__all__ = ["main"]
