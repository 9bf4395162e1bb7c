"""`python -m jobs`: the `troop` command.

The CLI is imported under the guard: a helper process started with multiprocessing's spawn
(the math checker's) imports this module as its own main, and must not pay for the CLI's
imports (Ray, the config, pyarrow: half a second)."""

import sys

if __name__ == "__main__":
    from jobs.cli import main

    sys.exit(main())
