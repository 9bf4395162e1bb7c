"""A temperature sweep with engine reuse against the same points as separate `troop run` commands.

    .venv/bin/python bench/sweep.py [--config conf/demo.yaml] [--temperatures 0.4,0.7,1.0,1.3]

Both sides are whole commands, each starting its own local Ray, as a user types them:
- separate: one `troop run CONFIG sampling.temperature=T run.root=...` per temperature, one after
  the other: every command loads the model again;
- sweep: one `troop sweep CONFIG sampling.temperature=T1,T2,...`: the points share one engine.
Prints each side's wall time, the ratio separate / sweep, and checks that every point's samples
are the same on both sides (the reuse changes nothing in the pool).
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)


def troop(args: list[str]) -> float:
    """Wall seconds of one `troop` command (its own Ray); fails loudly on a nonzero exit."""
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    began = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "jobs", *args], cwd=REPO, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - began
    if result.returncode != 0:
        sys.exit(f"troop {' '.join(args)} failed:\n{result.stderr[-3000:]}")
    return seconds


def samples(root: str):
    from jobs.store.root import RunStore
    import pyarrow as pa

    store = RunStore(root)
    tables = [store.read_table(store.sample_unit(u)) for u in sorted(store.unit_ids("samples"))]
    return pa.concat_tables(tables).sort_by([("problem_id", "ascending"), ("sample_idx", "ascending")])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="conf/demo.yaml")
    parser.add_argument("--temperatures", default="0.4,0.7,1.0,1.3")
    parser.add_argument("overrides", nargs="*", help="key=value for every point, e.g. sampling.n=16")
    args = parser.parse_args()
    temperatures = args.temperatures.split(",")
    work = tempfile.mkdtemp(prefix="troop-bench-sweep-")

    separate = 0.0
    for t in temperatures:
        seconds = troop(["run", args.config, *args.overrides, f"sampling.temperature={t}", f"run.root={work}/separate/temperature={t}"])
        print(f"troop run, temperature={t}: {seconds:.1f} s", flush=True)
        separate += seconds
    swept = troop(["sweep", args.config, *args.overrides, f"sampling.temperature={args.temperatures}", f"run.root={work}/sweep"])
    print(f"troop sweep, {len(temperatures)} points: {swept:.1f} s", flush=True)

    same = all(samples(f"{work}/separate/temperature={t}").equals(samples(f"{work}/sweep/temperature={t}")) for t in temperatures)
    print(f"\n{len(temperatures)} separate runs {separate:.1f} s, one sweep {swept:.1f} s: "
          f"separate / sweep = {separate / swept:.2f}x; samples identical: {same}")
    print(f"(roots under {work})")
    if not same:
        sys.exit(1)


if __name__ == "__main__":
    main()
