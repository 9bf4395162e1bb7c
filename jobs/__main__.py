"""`python -m jobs`: the `troop` command. The CLI is imported under the guard: a process that
imports this module as its main without running it (multiprocessing's spawn does) does not pay
for the CLI's imports (the config, pyarrow: half a second)."""

import sys

if __name__ == "__main__":
    from jobs.cli import main

    sys.exit(main())
