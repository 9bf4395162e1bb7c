"""Step-level search cost: Troop's beam search against best-of-N at the same N, and against a
per-problem loop around the same engines (search-and-learn's way), on the demo search task.

    .venv/bin/python bench/search.py [--config conf/demo_search.yaml] [--problems 100] [--width 16] [--beam 4]
                                     [--repeats 3] [key=value ...]

One process, one policy engine and one PRM engine (conf/demo_search.yaml's: demo/search_policy
and demo/search_prm, in vLLM's own engines as a search actor holds them), the same problems and
seeds for every method; each pass does the whole problem set:
- best-of-N: one generate call with n = N per problem (what `troop run` with strategy.kind=sample
  does), then one PRM call scoring every sample (what its scoring stage does) and picking the
  best-scored sample per problem;
- beam (Troop): `jobs.strategy.drive.search_problems` over all problems at once, as a search unit
  runs it: one policy call and one PRM call per step for every problem;
- loop: the same search one problem at a time (search-and-learn's beam search runs with
  search_batch_size=1), the same seeds, so it makes the same trees.
Reported: wall time (median of --repeats passes, the methods interleaved so that drift on a
shared machine hits all alike), generated tokens, PRM tokens, and the accuracy of the pick
(best-of-N: the best-scored sample; beam: sample 0) by the numeric checker; then the ratios
beam / best-of-N (goal: at most 2x wall time at equal N) and loop / beam. Engine start is not
timed, nor a first warm-up pass of each method. CPU figures show overheads on this machine, not GPU
speeds.
"""

import argparse
import os
import statistics
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)


def load(args):
    from jobs.config import config_layers, merge_layers, read_config_file
    from jobs.problems import load_problems

    base = read_config_file(args.config)
    base.pop("sweep", None)  # the demo pairs strategies in a sweep: here each method runs below
    config = merge_layers([(args.config, base)] + config_layers([
        "run.root=/tmp/unused", f"problems.options.num_problems={args.problems}", "strategy.kind=beam",
        f"strategy.width={args.width}", f"strategy.beam={args.beam}", *args.overrides]))
    os.chdir(REPO)  # the config's model paths are relative to the repo
    table = load_problems(config.problems, {}, config.prompt, config.model)
    prompts = dict(zip(table["problem_id"].to_pylist(), table["prompt"].to_pylist()))
    answers = dict(zip(table["problem_id"].to_pylist(), table["answer"].to_pylist()))
    return config, prompts, answers


def passed(text: str, answer: str) -> bool:
    from verifiers.numeric import check_numeric

    return check_numeric(text, answer).passed


def best_of_n(policy, prm, prompts, answers, config) -> dict:
    from jobs.problems.units import problem_seed
    from jobs.stages.generation import sampling_spec

    n, separator = config.sampling.n, config.strategy.step_separator
    began = time.perf_counter()
    outputs = policy.generate(list(prompts.values()), sampling_spec(config), n,
                              [problem_seed(config.run.seed, pid) for pid in prompts])
    texts = [[c.text for c in sorted(o.outputs, key=lambda c: c.index)] for o in outputs]
    flat = [(pid, t) for pid, ts in zip(prompts, texts) for t in ts]
    scored = prm.score([prompts[pid] for pid, _ in flat], [t for _, t in flat], separator)
    seconds = time.perf_counter() - began
    correct = 0
    for i, pid in enumerate(prompts):
        rewards = [s.reward if s.reward is not None else -1.0 for s in scored[i * n:(i + 1) * n]]
        correct += passed(texts[i][rewards.index(max(rewards))], answers[pid])
    tokens = sum(len(c.token_ids) for o in outputs for c in o.outputs)
    return {"seconds": seconds, "tokens": tokens, "prm_tokens": sum(s.num_tokens or 0 for s in scored),
            "accuracy": correct / len(prompts)}


def beam(policy, prm, prompts, answers, config, one_at_a_time: bool = False) -> dict:
    from jobs.stages.generation import sampling_spec
    from jobs.stages.search import search_settings
    from jobs.strategy.drive import search_problems
    from jobs.strategy.search import final_trajectories

    settings, sampling = search_settings(config), sampling_spec(config)
    batches = [{pid: p} for pid, p in prompts.items()] if one_at_a_time else [prompts]
    began = time.perf_counter()
    runs = [search_problems(policy, prm, batch, settings, sampling, config.run.seed) for batch in batches]
    seconds = time.perf_counter() - began
    finals = {f.problem_id: f.node.text for state, _ in runs for f in final_trajectories(state) if f.sample_idx == 0}
    return {"seconds": seconds, "tokens": sum(s.generated_tokens for _, s in runs),
            "policy_seconds": sum(s.policy_seconds for _, s in runs), "prm_seconds": sum(s.prm_seconds for _, s in runs),
            "prm_tokens": sum(s.prm_tokens for _, s in runs),
            "accuracy": sum(passed(finals[pid], answers[pid]) for pid in prompts) / len(prompts),
            "steps": max(state.step for state, _ in runs), "trees": [f.node.text for state, _ in runs
                                                                      for f in final_trajectories(state)]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", default=os.path.join(REPO, "conf", "demo_search.yaml"))
    parser.add_argument("--problems", type=int, default=100)
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument("--beam", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("overrides", nargs="*", help="config overrides, e.g. strategy.max_steps=8")
    args = parser.parse_args()

    from jobs.stages.generation import engine_spec
    from jobs.stages.search import search_engines
    from workers.engine import Engine
    from workers.reward import RewardEngine

    config, prompts, answers = load(args)
    engines = search_engines(config)
    policy, prm = Engine(engines.policy), RewardEngine(engines.prm)
    assert engine_spec(config) == engines.policy
    methods = {"best-of-N": lambda: best_of_n(policy, prm, prompts, answers, config),
               "beam (Troop)": lambda: beam(policy, prm, prompts, answers, config),
               "loop (per problem)": lambda: beam(policy, prm, prompts, answers, config, one_at_a_time=True)}
    results: dict = {name: [] for name in methods}
    for method in methods.values():  # warm-up, untimed: the engines' first batches of each shape
        method()
    for _ in range(args.repeats):
        for name, method in methods.items():
            results[name].append(method())
    policy.close()
    prm.close()

    print(f"{len(prompts)} problems, N={config.strategy.width}, M={config.strategy.beam}, "
          f"max_steps={config.strategy.max_steps}, {args.repeats} passes (median)")
    print(f"{'method':20} {'wall s':>8} {'gen tokens':>11} {'PRM tokens':>11} {'accuracy':>9}")
    median = {name: statistics.median(r["seconds"] for r in runs) for name, runs in results.items()}
    for name, runs in results.items():
        r = runs[0]
        print(f"{name:20} {median[name]:8.2f} {r['tokens']:11d} {r['prm_tokens']:11d} {r['accuracy']:9.3f}")
    same = results["beam (Troop)"][0]["trees"] == results["loop (per problem)"][0]["trees"]
    print(f"beam / best-of-N wall time: {median['beam (Troop)'] / median['best-of-N']:.2f}x (goal: at most 2x); "
          f"generated tokens: {results['beam (Troop)'][0]['tokens'] / results['best-of-N'][0]['tokens']:.2f}x")
    ours = results["beam (Troop)"]
    policy_s, prm_s = (statistics.median(r[k] for r in ours) for k in ("policy_seconds", "prm_seconds"))
    print(f"beam (Troop): {policy_s:.2f} s in the policy's calls, {prm_s:.2f} s in the PRM's "
          f"({prm_s / (policy_s + prm_s):.0%} PRM), {median['beam (Troop)'] - policy_s - prm_s:.2f} s in the search's Python")
    print(f"loop / beam wall time: {median['loop (per problem)'] / median['beam (Troop)']:.2f}x; "
          f"the loop's trajectories equal the batched search's: {same}")


if __name__ == "__main__":
    main()
