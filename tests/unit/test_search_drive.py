"""jobs.strategy.drive and the search stage's tables, with a scripted policy and the fake PRM
(tests/doubles.py): what a step asks the engine, how a completion becomes a child (the
separator given back, EOS, length, the token cap, a refused trajectory), lookahead, and the
compute accounting the tree records. The engines themselves: tests/integration/test_search.py."""

from dataclasses import dataclass, field

import pytest

from doubles import FakeRewardEngine
from jobs.stages.search import TREE_SCHEMA, outputs_tables, tree_table
from jobs.strategy.drive import made_children, search_problems, separator_stops, step_request
from jobs.strategy.search import SearchSettings, final_trajectories
from workers.engine import Rejected
from workers.reward import RewardSpec
from workers.sampling import SamplingSpec

SEP = "|"


@dataclass
class Completion:
    index: int
    text: str
    token_ids: list
    cumulative_logprob: float
    finish_reason: str
    stop_reason: str | None = None


@dataclass
class Output:
    outputs: list
    prompt_token_ids: list = field(default_factory=list)


class ScriptedPolicy:
    """Child c of a request writes `c` repeated (c + 1) times: one token per character; a
    trajectory with `depth` steps already ends (EOS); a request whose text is longer than
    `max_len` characters is refused. Records every call."""

    def __init__(self, depth: int = 3, max_len: int = 1000):
        self.depth, self.max_len, self.calls = depth, max_len, []
        self.llm = self  # rendered_prompts asks policy.llm.get_tokenizer()
        self.spec = type("Spec", (), {"max_model_len": max_len})()

    def get_tokenizer(self):
        return None

    def generate(self, texts, specs, n, seeds):
        counts = [n] * len(texts) if isinstance(n, int) else n
        specs = [specs] * len(texts) if isinstance(specs, SamplingSpec) else specs
        self.calls.append([(t, s, k, seed) for t, s, k, seed in zip(texts, specs, counts, seeds)])
        return [self._one(t, s, k) for t, s, k in zip(texts, specs, counts)]

    def _one(self, text, spec, n):
        if len(text) > self.max_len:
            return Rejected("prompt_too_long", f"{len(text)} characters")
        ends = text.count(SEP) + 1 >= self.depth
        made = []
        for c in range(n):
            words = str(c) * (c + 1)
            if len(words) > spec.max_tokens:
                made.append(Completion(c, words[:spec.max_tokens], [0] * spec.max_tokens, -1.0, "length"))
            elif ends or SEP not in spec.stop:
                made.append(Completion(c, words, [0] * len(words), -1.0, "stop"))
            else:
                made.append(Completion(c, words, [0] * len(words), -1.0, "stop", SEP))
        return Output(made, [0] * len(text))


def settings(**kw):
    return SearchSettings(**{"kind": "beam", "width": 4, "beam": 2, "max_steps": 3, "step_separator": SEP, **kw})


def prm():
    return FakeRewardEngine(RewardSpec(model="m", kind="process", max_model_len=1000))


def test_a_step_asks_for_what_the_trajectory_has_left_and_stops_at_the_separator_except_the_last():
    spec = SamplingSpec(max_tokens=20, stop=("STOP",))
    assert step_request(spec, settings(), used=15, last=False) == SamplingSpec(max_tokens=5, stop=("STOP", SEP))
    assert step_request(spec, settings(), used=15, last=True) == SamplingSpec(max_tokens=5, stop=("STOP",))
    assert step_request(spec, settings(), used=25, last=False).max_tokens == 1


def test_a_completion_becomes_a_child_with_the_separator_given_back():
    out = Output([Completion(1, "b", [0], -0.5, "stop", None), Completion(0, "a", [0, 0], -1.0, "stop", SEP),
                  Completion(2, "c", [0] * 3, -2.0, "length"), Completion(3, "d", [0] * 4, -1.0, "stop", SEP)])
    made = made_children(out, SEP, used=4, max_tokens=8)
    assert [(m.text, m.tokens, m.finished, m.finish_reason, m.stopped_at_separator) for m in made] == [
        ("a|", 2, False, None, True),
        ("b", 1, True, "stop", False),  # EOS
        ("c", 3, True, "length", False),
        ("d|", 4, True, "length", True),  # at the separator, but the trajectory's 8 tokens are spent
    ]


def test_a_search_makes_n_trajectories_with_one_policy_call_and_one_prm_call_per_step():
    policy, reward = ScriptedPolicy(depth=3), prm()
    prompts = {"p": "P:", "q": "Q:"}
    state, spent = search_problems(policy, reward, prompts, settings(), SamplingSpec(max_tokens=50), run_seed=0)
    assert state.done and state.step == 3
    assert len(policy.calls) == 3 and spent.policy_calls == 3 and spent.prm_calls == 3 == len(reward.calls)
    assert [len(call) for call in policy.calls] == [2, 4, 4]  # 1 root per problem, then the 2 kept each
    finals = final_trajectories(state)
    assert [(f.problem_id, f.sample_idx) for f in finals] == [(p, i) for p in "pq" for i in range(4)]
    # The fake PRM rewards longer steps (len/(len+1)): step 1 keeps "3333|" (0.8) and "222|" (0.75);
    # each makes 2 children ("0", "11") after that, and equal scores go to the lower id (0.2 < 0.3).
    assert finals[0].node.text == "222|11|11" and finals[0].node.node_id == "0.2.1.1"
    samples, scores = outputs_tables(state, spent, "last")
    assert samples.column("num_tokens").to_pylist()[0] == 7
    assert scores.column("step_rewards").to_pylist()[0] == pytest.approx([0.75, 2 / 3, 2 / 3])
    tree = tree_table(state, spent)
    assert tree.schema == TREE_SCHEMA
    assert sum(tree.column("prm_tokens").to_pylist()) == spent.prm_tokens > 0
    assert sum(tree.column("num_tokens").to_pylist()) == spent.generated_tokens


def test_the_token_cap_ends_a_trajectory_with_length():
    state, spent = search_problems(ScriptedPolicy(depth=9), prm(), {"p": "P:"}, settings(max_steps=9),
                                   SamplingSpec(max_tokens=6), run_seed=0)
    finals = final_trajectories(state)
    assert all(spent.path_tokens("p", f.node.path) <= 6 for f in finals)
    assert {f.node.finish_reason for f in finals} <= {"length", "stop"}
    assert "length" in {f.node.finish_reason for f in finals}


def test_a_trajectory_too_long_for_the_context_ends_where_it_stands():
    policy = ScriptedPolicy(depth=9, max_len=12)  # the second step's requests are refused
    state, _ = search_problems(policy, prm(), {"p": "P:"}, settings(max_steps=9), SamplingSpec(max_tokens=50), 0)
    refused = [n for n in state.problems[0].nodes if n.finish_reason == "prompt_too_long"]
    assert refused and all(n.step_text == "" for n in refused)
    assert all(f.node.finish_reason in ("prompt_too_long", "stop") for f in final_trajectories(state))


def test_lookahead_rolls_out_greedily_ranks_by_the_rollout_and_is_charged_to_the_child():
    policy, reward = ScriptedPolicy(depth=4), prm()
    state, spent = search_problems(policy, reward, {"p": "P:"}, settings(lookahead=1), SamplingSpec(max_tokens=50), 0)
    greedy = [call for call in policy.calls if all(spec.temperature == 0.0 for _, spec, _, _ in call)]
    assert len(greedy) == 2  # steps 1 and 2 roll out one step each; step 3 is the last: nothing to roll out
    assert all(k == 1 for call in greedy for _, _, k, _ in call)
    tree = tree_table(state, spent)
    assert sum(tree.column("lookahead_tokens").to_pylist()) == sum(spent.lookahead_tokens_of.values()) > 0
    assert sum(tree.column("prm_tokens").to_pylist()) == spent.prm_tokens
    step1 = [n for n in state.problems[0].nodes if n.step == 1]
    # An unfinished child's score reads its own reward and its rollout's (last: the rollout's).
    assert all(n.score == pytest.approx(0.5) for n in step1 if n.status != "finished")  # rollout writes "0"


def test_the_separator_check_counts_first_step_children_that_stopped_there():
    assert separator_stops(ScriptedPolicy(depth=3), prm(), {"p": "P:"}, settings(), SamplingSpec(max_tokens=50), 0) == (4, 4)
    assert separator_stops(ScriptedPolicy(depth=1), prm(), {"p": "P:"}, settings(), SamplingSpec(max_tokens=50), 0) == (0, 4)
