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
