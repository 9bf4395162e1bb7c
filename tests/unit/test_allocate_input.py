"""Bad allocate sections: one line naming the key and the fix, exit 2, nothing written; through
the command's own entry point, in process (every check comes before Ray or an engine starts)."""

import os

import pytest

from jobs.cli.main import main

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEMO = os.path.join(REPO, "conf", "demo.yaml")


@pytest.mark.parametrize("command, overrides, message", [
    ("run", ["allocate.policy=greedy"],
     "config key 'allocate.policy' is 'greedy': use one of uniform, until_solved, coverage, confidence"),
    ("run", ["allocate.policy=until_solved", "allocate.budget=799"],
     "config key 'allocate.budget' is 799: round 1 alone needs allocate.first x problems = 8 x 100 = 800; raise it "
     "or lower allocate.first"),
    ("run", ["allocate.policy=coverage", "allocate.first=4", "problems.limit=10", "allocate.budget=39"],
     "config key 'allocate.budget' is 39: round 1 alone needs allocate.first x problems = 4 x 10 = 40; raise it or "
     "lower allocate.first"),
    ("run", ["allocate.policy=until_solved", "verify.verifier=null"],
     "config key 'allocate.policy' is 'until_solved': it stops on passing samples, so it needs a verifier; set "
     "verify.verifier or use allocate.policy=uniform"),
    ("run", ["allocate.policy=coverage", "verify.verifier=null", "score.model=null"],
     "config key 'allocate.policy' is 'coverage': it stops on passing samples, so it needs a verifier; set "
     "verify.verifier or use allocate.policy=uniform"),
    ("humaneval", ["allocate.policy=confidence"],
     "config key 'allocate.policy' is 'confidence': it votes over extracted answers; set verify.verifier to an answer "
     "checker (numeric, exact, math) or pick another policy"),
    ("run", ["allocate.policy=confidence", "verify.verifier=null"],
     "config key 'allocate.policy' is 'confidence': it votes over extracted answers; set verify.verifier to an answer "
     "checker (numeric, exact, math) or pick another policy"),
    ("run", ["allocate.policy=until_solved", "allocate.first=65"],
     "config key 'allocate.first' is 65: it must lie in [1, sampling.n=64]; lower it or raise sampling.n"),
    ("run", ["allocate.policy=until_solved", "allocate.first=0"],
     "config key 'allocate.first' is 0: it must lie in [1, sampling.n=64]; lower it or raise sampling.n"),
    ("run", ["allocate.policy=confidence", "allocate.confidence=1.5"],
     "config key 'allocate.confidence' is 1.5: it must lie in (0.5, 1), e.g. 0.95"),
    ("run", ["allocate.budget=10"],
     "config key 'allocate.budget' is 10: allocate.policy=uniform draws sampling.n=64 per problem (6400 in all); drop "
     "allocate.budget or pick an adaptive policy"),
    ("generate", ["allocate.policy=until_solved"],
     "allocate.policy=until_solved decides from verdicts as they land: use troop run (troop generate draws sampling.n "
     "per problem, allocate.policy=uniform)"),
    ("run", ["allocate.polcy=coverage"], "allocate.policy"),  # a misspelt key names the nearest one
])
def test_bad_allocation_is_one_line_exit_2_and_nothing_written(command, overrides, message, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(REPO)
    root = tmp_path / "run"
    config = DEMO
    if command == "humaneval":  # code problems: verdicts carry program hashes, not answers to vote on
        config, command = str(tmp_path / "humaneval.yaml"), "run"
        with open(config, "w") as f:
            f.write("model: {path: demo/model}\nproblems: {source: humaneval}\nverify: {verifier: unit_tests}\n")
    assert main([command, config, f"run.root={root}", *overrides]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and message in err, err
    assert not root.exists()


def test_uniform_plans_exactly_todays_units(tmp_path, monkeypatch):
    from jobs.config import merge_config
    from jobs.usecases.generate import plan_run

    monkeypatch.chdir(REPO)
    today = plan_run(merge_config(DEMO, [f"run.root={tmp_path / 'a'}"]))
    explicit = plan_run(merge_config(DEMO, [f"run.root={tmp_path / 'b'}", "allocate.policy=uniform", "allocate.budget=6400"]))
    assert today.units == explicit.units and len(today.units) == 4  # 100 problems x 64 in units of 2048 samples
    assert [u.unit_id for u in today.units][0] == "p000000-000032-s000000-000064"


def test_a_root_from_before_the_allocate_section_resumes_as_uniform(tmp_path, monkeypatch):
    from jobs.config import merge_config
    from jobs.store.root import RunStore
    from jobs.store.runinfo import record_run
    from jobs.usecases.generate import plan_run

    monkeypatch.chdir(REPO)
    config = merge_config(DEMO, [f"run.root={tmp_path / 'run'}"])
    plan = plan_run(config)
    record_run(plan.store, config, plan.problems)
    store = RunStore(str(tmp_path / "run"))
    old = "\n".join(line for line in store.read_text(store.job_yaml).splitlines() if "allocate" not in line
                    and not line.startswith(("  policy:", "  budget:", "  first:", "  step:", "  confidence:", "  min_gain:")))
    store.write_text(store.job_yaml, old + "\n")
    assert plan_run(config).units == plan.units  # the same run, no "other sampling settings" error
    assert main(["run", DEMO, f"run.root={tmp_path / 'run'}", "allocate.policy=until_solved"]) == 2
