"""The `troop` command line: a thin layer that parses, calls one use case of `jobs.api`, prints."""


def main(argv: list[str] | None = None, **kwargs) -> int:
    """The `troop` console script. It imports the CLI when called, not when imported: the
    script's module is what a spawned helper process (the math checker's) imports as its main."""
    from jobs.cli.main import main as run

    return run(argv, **kwargs)


__all__ = ["main"]
