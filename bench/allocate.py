"""Adaptive sampling budgets on the demo: problems solved against samples spent, per policy.

    .venv/bin/python bench/allocate.py [--problems 100] [--seeds 0] [--budgets 500,600,...,null]

One command, one demo engine (conf/demo.yaml: the tiny Llama of demo/model on held-out two-digit
arithmetic questions, sampling.n=64, the numeric verifier; no reward model), shared by every
run, each a whole `troop run` (`jobs.usecases.run.run`) into its own root:
- uniform: sampling.n=64 samples of every problem, the baseline. From its verdicts (c passes of
  n=64 per problem), uniform sampling's solved fraction with B samples in all is the expected
  coverage at k = B/P samples per problem: the mean over problems of the unbiased pass@k,
  linearly interpolated between whole k (0 solved at k=0). Its actual solved fraction (any
  pass among all 64) is the target the goal names;
- until_solved and coverage at every budget of `--budgets` (`allocate.budget`; `null`: unbounded,
  64 x P): round 1 draws `allocate.first`=8 per problem, or 4 where 8 x P would leave a budget
  no room for a second round, then blocks of the same size (`allocate.step` unset).

Prints per run: samples spent, solved fraction, uniform's expected solved fraction at the same
samples, and the samples uniform needs for the run's solved fraction over the samples spent
(above 1: the policy needed fewer); then per policy the fewest samples after which it had
solved as many problems as uniform at k=64 (the first point of any of its runs'
solved-versus-spent curves, metrics.json `allocation.solved_vs_samples`, that reaches it)
against uniform's 64 x P, and whether the goal holds: at most a quarter of uniform's samples,
and more solved than uniform at the same samples at every budget. Also each adaptive run's
engine idle share (metrics.json `allocation.engine_idle_share`: 1 - the generation actor's time
on units over the wall time from the first unit queued to the last generated). With several
seeds (`run.seed`: a different pool each) the figures are means over seeds, and the goal is
checked seed by seed (each seed's runs against its own uniform run). Saves the plot to
docs/allocation.png. About 100 s per seed on 2 CPU cores; the demo model only.
"""

import argparse
import json
import os
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

CAP = 64
POLICIES = ("until_solved", "coverage")
FIRSTS = (8, 4)  # round 1 samples per problem: the default, and a smaller one for small budgets
PLOT = os.path.join(REPO, "docs", "allocation.png")


def demo_config(root: str, problems: int, seed: int, *overrides: str):
    from jobs.config import merge_config

    return merge_config(os.path.join(REPO, "conf", "demo.yaml"), [
        f"run.root={root}", f"run.seed={seed}", f"model.path={os.path.join(REPO, 'demo', 'model')}",
        "score.model=null", f"sampling.n={CAP}", f"problems.options.num_problems={problems}", *overrides])


def first_for(budget: int | None, problems: int) -> int:
    """The largest round 1 of FIRSTS that leaves the budget room for a later round."""
    fits = [f for f in FIRSTS if budget is None or f * problems < budget]
    if not fits:
        raise SystemExit(f"budget {budget}: round 1 alone needs at least {min(FIRSTS)} x {problems} samples")
    return fits[0]


def pass_counts(root: str):
    """Per problem (problem-set order): samples with verdicts n, passes c."""
    import numpy as np

    from jobs.store import layout
    from jobs.store.root import RunStore
    from verifiers import get_verifier

    store, key = RunStore(root), get_verifier("numeric").key()
    ids = store.read_table(store.problems, columns=["problem_id"])["problem_id"].to_pylist()
    index = {pid: i for i, pid in enumerate(ids)}
    n, c = np.zeros(len(ids)), np.zeros(len(ids))
    for unit in store.unit_ids(layout.verdicts(key)):
        table = store.read_table(store.verdict_unit(key, unit), columns=["problem_id", "passed"])
        for pid, passed in zip(table["problem_id"].to_pylist(), table["passed"].to_pylist()):
            n[index[pid]] += 1
            c[index[pid]] += bool(passed)
    return n, c


class UniformCurve:
    """Uniform sampling's expected solved fraction at k = 0..CAP samples per problem (a mean
    over seeds), and its linear interpolation in samples spent and back."""

    def __init__(self, per_seed: list, problems: int):
        import numpy as np

        from jobs.metrics.estimators import pass_at_k

        curves = [[0.0] + [float(np.mean(pass_at_k(n, c, k))) for k in range(1, CAP + 1)] for n, c in per_seed]
        self.coverage = np.mean(curves, axis=0)
        self.samples = np.arange(CAP + 1) * problems

    def expected(self, spent: float) -> float:
        import numpy as np

        return float(np.interp(spent, self.samples, self.coverage))

    def needed(self, fraction: float) -> float | None:
        """Samples uniform needs for `fraction` solved (None: more than CAP x problems)."""
        import numpy as np

        if fraction > self.coverage[-1] + 1e-12:
            return None
        k = int(np.searchsorted(self.coverage, fraction - 1e-12))  # first k reaching it
        if k == 0:
            return 0.0
        low, high = self.coverage[k - 1], self.coverage[k]
        share = 1.0 if high == low else (fraction - low) / (high - low)
        return float(self.samples[k - 1] + share * (self.samples[k] - self.samples[k - 1]))


def one_run(pool, root: str, problems: int, seed: int, *overrides: str) -> dict:
    """A whole `troop run` on the shared engine; its metrics.json `allocation` and wall seconds."""
    from jobs.usecases.run import run

    began = time.perf_counter()
    run(demo_config(root, problems, seed, *overrides), pool).check()
    with open(os.path.join(root, "metrics.json")) as f:
        allocation = json.load(f)["allocation"]
    return {**allocation, "seconds": time.perf_counter() - began, "root": root}


def mean(values):
    values = [v for v in values if v is not None]
    return sum(values) / len(values) if values else None


def run_all(args, budgets: list) -> tuple[list, list[float], dict]:
    """Every run on one engine. Per seed: the uniform run's pass counts (n, c) and its solved
    fraction; and (policy, budget) -> the run of each seed."""
    import ray

    from jobs.cluster.pools import generation_pool
    from jobs.stages.generation import engine_spec

    work = tempfile.mkdtemp(prefix="troop-bench-allocate-")
    began = time.perf_counter()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    # Half a CPU for the engine, as the integration tests give it: verification runs beside it.
    spec = engine_spec(demo_config(os.path.join(work, "spec"), args.problems, 0))
    per_seed, uniform_solved, runs = [], [], {}
    with generation_pool(spec, num_workers=1, cpus_per_worker=0.5) as pool:
        print(f"[{time.perf_counter() - began:5.0f} s] engine ready; runs under {work}", flush=True)
        for seed in args.seeds:
            root = os.path.join(work, f"seed={seed}", "uniform")
            u = one_run(pool, root, args.problems, seed)
            per_seed.append(pass_counts(root))
            uniform_solved.append(u["problems_solved"] / u["problems"])
            print(f"[{time.perf_counter() - began:5.0f} s] seed {seed} uniform n={CAP}: {u['samples_spent']} samples, "
                  f"solved {uniform_solved[-1]:.3f} ({u['seconds']:.1f} s)", flush=True)
            for policy in POLICIES:
                for budget in budgets:
                    first, shown = first_for(budget, args.problems), "null" if budget is None else budget
                    root = os.path.join(work, f"seed={seed}", f"{policy}-budget={shown}-first={first}")
                    r = one_run(pool, root, args.problems, seed, f"allocate.policy={policy}",
                                f"allocate.budget={shown}", f"allocate.first={first}")
                    runs.setdefault((policy, budget), []).append({**r, "first": first})
                    idle = r["engine_idle_share"]
                    print(f"[{time.perf_counter() - began:5.0f} s] seed {seed} {policy} budget={shown} first={first}: "
                          f"{r['samples_spent']} samples, solved {r['problems_solved'] / r['problems']:.3f}, "
                          f"idle share {'-' if idle is None else f'{idle:.2f}'} ({r['seconds']:.1f} s)", flush=True)
    ray.shutdown()
    return per_seed, uniform_solved, runs


def fewest_to_reach(seed_runs: list[list[dict]], targets: list[float]) -> float | None:
    """Mean over seeds of the fewest samples after which any of a policy's runs of that seed had
    solved the seed's target (a fraction); None if a seed's runs never did."""
    per_seed = []
    for runs, target in zip(seed_runs, targets):
        points = [p["samples_spent"] for r in runs for p in r["solved_vs_samples"]
                  if p["problems_solved"] / r["problems"] >= target - 1e-12]
        if not points:
            return None
        per_seed.append(min(points))
    return mean(per_seed)


def ratio_text(needed: float | None, spent: float, most: int) -> str:
    return f"> {most / spent:.2f}" if needed is None else f"{needed / spent:.2f}"


def report(per_seed: list, solved_per_seed: list[float], runs: dict, budgets: list, problems: int) -> None:
    """Prints both tables (means over seeds; the goal's checks seed by seed)."""
    most = CAP * problems
    curve, uniform_solved = UniformCurve(per_seed, problems), mean(solved_per_seed)
    seed_curves = [UniformCurve([counts], problems) for counts in per_seed]
    print(f"\nuniform n={CAP}: solved {uniform_solved:.3f} of {problems} problems with {most} samples "
          f"(expected coverage at k=1: {curve.coverage[1]:.3f}, at k={CAP}: {curve.coverage[-1]:.3f})")
    print("\n| policy | budget | first | samples spent | solved | uniform at same samples "
          "| uniform samples for same solved / spent | engine idle share |")
    print("|---|---|---|---|---|---|---|---|")
    print(f"| uniform | {most} | {CAP} | {most} | {uniform_solved:.3f} | {curve.expected(most):.3f} | 1.00 | - |")
    beats = {policy: True for policy in POLICIES}
    for policy in POLICIES:
        for budget in budgets:
            seed_runs = runs[(policy, budget)]
            spent = mean([r["samples_spent"] for r in seed_runs])
            solved = mean([r["problems_solved"] / r["problems"] for r in seed_runs])
            expected = curve.expected(spent)
            beats[policy] &= all(r["problems_solved"] / r["problems"] > c.expected(r["samples_spent"])
                                 for r, c in zip(seed_runs, seed_curves))
            needed = curve.needed(solved)
            idle = mean([r["engine_idle_share"] for r in seed_runs])
            print(f"| {policy} | {'null' if budget is None else budget} | {seed_runs[0]['first']} | {spent:.0f} | "
                  f"{solved:.3f} | {expected:.3f} | "
                  f"{'> ' + str(most) if needed is None else f'{needed:.0f}'} / {spent:.0f} = "
                  f"{ratio_text(needed, spent, most)} | {'-' if idle is None else f'{idle:.2f}'} |")
    print(f"\nsamples to solve uniform's k={CAP} fraction ({uniform_solved:.3f}) against uniform's {most}:")
    print("\n| policy | samples | / uniform's | <= 1/4 | beats uniform at every budget | goal |")
    print("|---|---|---|---|---|---|")
    for policy in POLICIES:
        seeds = len(runs[(policy, budgets[0])])
        needed = fewest_to_reach([[runs[(policy, b)][s] for b in budgets] for s in range(seeds)], solved_per_seed)
        quarter = needed is not None and needed <= most / 4
        print(f"| {policy} | {'never reached' if needed is None else f'{needed:.0f}'} | "
              f"{'-' if needed is None else f'{needed / most:.3f}'} | {'yes' if quarter else 'no'} | "
              f"{'yes' if beats[policy] else 'no'} | {'holds' if quarter and beats[policy] else 'does not hold'} |")


def plot(per_seed: list, solved_per_seed: list[float], runs: dict, budgets: list, problems: int) -> None:
    from matplotlib.figure import Figure

    curve, uniform_solved = UniformCurve(per_seed, problems), mean(solved_per_seed)
    fig = Figure(figsize=(7, 4.5), dpi=120)
    ax = fig.add_subplot()
    ax.plot(curve.samples[1:], curve.coverage[1:], color="0.3", label="uniform, expected (k = 1..64 per problem)")
    ax.axhline(uniform_solved, color="0.6", linestyle=":", linewidth=1, label=f"uniform at k={CAP}")
    # Large circles under small squares, solid under dashed: where the two policies take the same
    # decisions, both stay visible.
    for policy, color, marker, size, dashes in zip(POLICIES, ("tab:blue", "tab:orange"), ("o", "s"), (10, 5),
                                                   ("-", "--")):
        for first, fill in zip(FIRSTS, ("none", "full")):
            chosen = [b for b in budgets if runs[(policy, b)][0]["first"] == first]
            points = sorted((mean([r["samples_spent"] for r in runs[(policy, b)]]),
                             mean([r["problems_solved"] / r["problems"] for r in runs[(policy, b)]])) for b in chosen)
            if points:
                ax.plot(*zip(*points), marker=marker, color=color, linestyle="none", markersize=size, fillstyle=fill,
                        label=f"{policy}, first={first}: one run per budget")
        if None in budgets:  # the unbounded run's rounds (the first seed's)
            r = runs[(policy, None)][0]
            steps = [(p["samples_spent"], p["problems_solved"] / r["problems"]) for p in r["solved_vs_samples"]]
            ax.plot(*zip(*steps), color=color, linestyle=dashes, linewidth=1,
                    label=f"{policy}, rounds of the unbounded run")
    ax.set_xscale("log")
    ax.set_xlabel(f"samples spent ({problems} problems)")
    ax.set_ylabel("fraction of problems solved")
    ax.set_title("Demo task: coverage against samples spent")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    os.makedirs(os.path.dirname(PLOT), exist_ok=True)
    fig.savefig(PLOT)
    print(f"\nplot: {os.path.relpath(PLOT, os.getcwd())}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problems", type=int, default=100)
    parser.add_argument("--seeds", default="0", help="run.seed values, comma-separated; figures are means over them")
    parser.add_argument("--budgets", default="500,600,700,800,900,1000,1100,1200,null",
                        help="allocate.budget values for the adaptive runs, comma-separated; null: unbounded")
    args = parser.parse_args()
    args.seeds = [int(s) for s in args.seeds.split(",")]
    budgets = [None if b == "null" else int(b) for b in args.budgets.split(",")]
    for budget in budgets:
        first_for(budget, args.problems)  # refuse an impossible budget before the engine starts
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")
    began = time.perf_counter()
    per_seed, solved_per_seed, runs = run_all(args, budgets)
    report(per_seed, solved_per_seed, runs, budgets, args.problems)
    plot(per_seed, solved_per_seed, runs, budgets, args.problems)
    print(f"total {time.perf_counter() - began:.0f} s")


if __name__ == "__main__":
    main()
