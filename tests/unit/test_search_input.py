"""Bad strategy sections: one line naming the key and the fix, exit 2, nothing written; through
the command's own entry point, in process (every check here comes before Ray or an engine
starts). A separator the policy never writes needs the engine: tests/integration/test_search.py."""

import os

import pytest

from jobs.cli.main import main
from jobs.config import merge_config

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEMO = os.path.join(REPO, "conf", "demo.yaml")
SEARCH = ["strategy.kind=beam", "strategy.width=8", "strategy.beam=2"]


@pytest.mark.parametrize("command, overrides, message", [
    ("run", [*SEARCH, "score.model=null"],
     "strategy.kind=beam needs a process reward model to score each step: set score.model=PATH and "
     "score.kind=process (or strategy.kind=sample)"),
    ("run", ["strategy.kind=dvts", "strategy.width=8", "strategy.beam=2", "score.model=null"],
     "strategy.kind=dvts needs a process reward model"),
    ("run", [*SEARCH, "score.kind=outcome"],
     "strategy.kind=beam needs a process reward model, and score.kind is 'outcome': set score.kind=process with a "
     "PRM in score.model"),
    ("run", ["strategy.kind=beam", "strategy.width=8", "strategy.beam=3", "score.kind=process"],
     "strategy.beam=3 does not divide strategy.width=8 (beam makes N/M children of each of the M kept trajectories): "
     "pick a divisor of 8, e.g. strategy.beam=2"),
    ("run", ["strategy.kind=dvts", "strategy.width=6", "strategy.beam=4", "score.kind=process"],
     "strategy.beam=4 does not divide strategy.width=6 (dvts makes N/M subtrees of M children): pick a divisor of 6, "
     "e.g. strategy.beam=3"),
    ("run", [*SEARCH, "score.kind=process", "strategy.step_separator=''"],
     "config key 'strategy.step_separator' is empty"),
    ("run", [*SEARCH, "score.kind=process", "strategy.max_steps=0"],
     "config key 'strategy.max_steps' is 0: it must be at least 1"),
    ("run", [*SEARCH, "score.kind=process", "strategy.lookahead=-1"],
     "config key 'strategy.lookahead' is -1: it must be at least 0"),
    ("run", ["strategy.kind=mcts"], "config key 'strategy.kind' is 'mcts': use one of sample, beam, dvts"),
    ("run", [*SEARCH, "score.kind=process", "allocate.policy=until_solved"],
     "allocate.policy=until_solved decides how many independent samples a problem gets; strategy.kind=beam makes "
     "strategy.width trajectories per problem: use one or the other"),
    # The demo's reward model is an outcome model (a sequence classifier), not a PRM.
    ("run", [*SEARCH, "score.kind=process"], "demo/reward_model"),
    ("run", [*SEARCH, "score.kind=process", "score.model=/no/such/prm"], "score.model=/no/such/prm"),
    ("generate", [*SEARCH, "score.kind=process"], "demo/reward_model"),
    ("run", ["strategy.knd=beam"], "strategy.kind"),  # a misspelt key names the nearest one
])
def test_bad_strategy_is_one_line_exit_2_and_nothing_written(command, overrides, message, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(REPO)
    root = tmp_path / "run"
    assert main([command, DEMO, f"run.root={root}", *overrides]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and message in err, err
    assert not root.exists()


def test_a_search_takes_sampling_n_from_its_width_and_the_prm_its_separator():
    config = merge_config(DEMO, ["run.root=x", *SEARCH, "score.kind=process", "strategy.step_separator=\"\\n\""])
    assert config.sampling.n == 8 and config.score.step_separator == "\n"
    config = merge_config(DEMO, ["run.root=x", "strategy.kind=dvts", "strategy.beam=4", "score.kind=process"])
    assert config.strategy.width == 64 and config.sampling.n == 64  # the demo's sampling.n
    assert config.strategy.step_separator == "\n\n" == config.score.step_separator
    assert merge_config(DEMO, ["run.root=x"]).strategy.width is None  # sample: untouched


@pytest.mark.parametrize("change, named", [
    ("strategy.beam=4", "strategy.beam: 2 -> 4"),
    ("strategy.kind=dvts", "strategy.kind: 'beam' -> 'dvts'"),
    ("score.aggregate=min", "score.aggregate: 'last' -> 'min'"),  # the PRM's ranking chooses the samples
    ("score.model=other/prm", "score.model: "),
])
def test_a_search_root_refuses_a_resume_that_would_search_otherwise(change, named, tmp_path):
    from jobs.errors import ConfigError
    from jobs.problems import load_problems
    from jobs.store.root import RunStore
    from jobs.store.runinfo import check_resumable, record_run

    keys = [f"run.root={tmp_path / 'run'}", *SEARCH, "score.kind=process", "problems.options.num_problems=4"]
    config = merge_config(DEMO, keys)
    store = RunStore(config.run.root)
    problems = load_problems(config.problems, {}, config.prompt, config.model)
    record_run(store, config, problems)
    assert check_resumable(store, merge_config(DEMO, keys), problems) == [(0, 8)]
    assert check_resumable(store, merge_config(DEMO, [*keys, "score.workers=3"]), problems) == [(0, 8)]
    with pytest.raises(ConfigError, match="holds a run with other sampling settings") as caught:
        check_resumable(store, merge_config(DEMO, [*keys, change]), problems)
    assert named in str(caught.value)
