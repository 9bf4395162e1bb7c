"""Driving a search with engines: every step of every problem of a unit is one policy call and
one PRM call (`jobs.strategy.search` decides; this module asks the engines).

- Expansion: each active node is one request, prompt + the node's text, with `n` = its share of
  children, its seed from `node_seed`, and the step separator as a stop string (dropped for the
  `max_steps`-th step). The trajectory so far is the request's prefix, which vLLM's prefix
  cache keeps from the step before; the step's children are `SamplingParams.n` of one request,
  so they share its prefill.
- A child stopped by the separator gets the separator back (vLLM strips a stop string) and goes
  on; one stopped by EOS, by a user's stop string (`sampling.stop`) or by length is finished
  with the engine's finish reason. `sampling.max_tokens` caps a whole trajectory, as it caps an
  independent sample: each request asks for what its trajectory has left.
- Scoring: the PRM reads each child's whole trajectory (its prompt as `troop score` gives it,
  the steps split at the separator) and the child's reward is the last step's. A causal PRM's
  reward of step i reads steps 1..i only, so the final trajectory's step rewards are the
  rewards each step got when it was made, and what `troop score` writes for the sample. Equal
  (problem, text) pairs are scored once per call.
- Lookahead k > 0: every unfinished child is rolled out k more steps greedily (temperature 0,
  one request each, k calls), the rollouts are scored in one PRM call, and the rollout's step
  rewards rank the child (search-and-learn's lookahead); they are never its own.
- A trajectory too long for the policy's context (`Rejected`): its children are finished
  blank, with the reason "prompt_too_long", and its text ends the search where it stands.
"""

import time
from dataclasses import dataclass, field, replace
from typing import Sequence

from jobs.strategy.search import Expansion, SearchSettings, SearchState, Step, expansions_needed, select, start_search
from workers.engine import Rejected, render_prompt
from workers.sampling import SamplingSpec


@dataclass
class Spent:
    """What a search cost and made, beyond the tree: per node (problem, path) the tokens and
    log-probability of its own step; totals for the compute accounting."""

    tokens: dict = field(default_factory=dict)  # (problem_id, path) -> generated tokens of the node's step
    logprob: dict = field(default_factory=dict)  # (problem_id, path) -> the step's cumulative log-probability
    scored: dict = field(default_factory=dict)  # (problem_id, text) -> workers.reward.Scored
    # (problem_id, text) -> what scoring it cost: PRM input tokens (the text's own, when first
    # scored, and its lookahead rollout's), and the rollout's generated tokens.
    prm_tokens_of: dict = field(default_factory=dict)
    lookahead_tokens_of: dict = field(default_factory=dict)
    generated_tokens: int = 0  # every token the policy generated (pruned, duplicate and lookahead too)
    prompt_tokens: int = 0  # prompt tokens of every request (before prefix caching)
    prm_tokens: int = 0  # tokens of every PRM input
    policy_calls: int = 0
    prm_calls: int = 0
    policy_seconds: float = 0.0  # wall time in the policy's calls, and in the PRM's
    prm_seconds: float = 0.0

    def path_tokens(self, problem_id: str, path: tuple) -> int:
        return sum(self.tokens.get((problem_id, path[:i]), 0) for i in range(2, len(path) + 1))

    def path_logprob(self, problem_id: str, path: tuple) -> float | None:
        parts = [self.logprob.get((problem_id, path[:i])) for i in range(2, len(path) + 1)]
        return None if any(p is None for p in parts) else float(sum(parts))


@dataclass(frozen=True)
class Made:
    """One child as the engine made it."""

    text: str
    tokens: int
    logprob: float | None
    finished: bool
    finish_reason: str | None
    stopped_at_separator: bool


def rendered_prompts(policy, prompts: dict) -> dict:
    """problem_id -> the text the policy continues (chat messages through its template)."""
    tokenizer = policy.llm.get_tokenizer()
    return {pid: render_prompt(tokenizer, prompt) for pid, prompt in prompts.items()}


def step_request(sampling: SamplingSpec, settings: SearchSettings, used: int, last: bool) -> SamplingSpec:
    stop = tuple(sampling.stop) + (() if last else (settings.step_separator,))
    return replace(sampling, max_tokens=max(1, sampling.max_tokens - used), stop=stop)


def made_children(output, separator: str, used: int, max_tokens: int) -> list[Made]:
    """The children of one request, in index order; `used`: the parent's trajectory tokens."""
    if isinstance(output, Rejected):
        raise ValueError("a rejected request has no children")
    made = []
    for c in sorted(output.outputs, key=lambda c: c.index):
        at_separator = c.finish_reason == "stop" and c.stop_reason == separator
        tokens = len(c.token_ids)
        out_of_tokens = used + tokens >= max_tokens
        finished = not at_separator or out_of_tokens
        reason = None if not finished else ("length" if at_separator else c.finish_reason)
        made.append(Made(c.text + (separator if at_separator else ""), tokens, c.cumulative_logprob,
                         finished, reason, at_separator))
    return made


def expand(policy, rendered: dict, wanted: Sequence[Expansion], sampling: SamplingSpec, settings: SearchSettings,
           spent: Spent) -> list[list[Made]]:
    """One policy call for every expansion of a step."""
    used = [spent.path_tokens(e.problem_id, e.node.path) for e in wanted]
    specs = [step_request(sampling, settings, u, e.last) for e, u in zip(wanted, used)]
    began = time.perf_counter()
    outputs = policy.generate([rendered[e.problem_id] + e.node.text for e in wanted], specs,
                              [e.n for e in wanted], [e.seed for e in wanted])
    spent.policy_seconds += time.perf_counter() - began
    spent.policy_calls += 1
    children = []
    for e, u, output in zip(wanted, used, outputs):
        if isinstance(output, Rejected):  # the trajectory fills the context: it ends here
            children.append([Made("", 0, 0.0, True, output.status, False)] * e.n)
            continue
        spent.prompt_tokens += len(output.prompt_token_ids or ())
        made = made_children(output, settings.step_separator, u, sampling.max_tokens)
        spent.generated_tokens += sum(m.tokens for m in made)
        children.append(made)
    return children


def score_texts(prm, prompts: dict, pairs: Sequence[tuple[str, str]], separator: str, spent: Spent,
                charge_to: dict | None = None) -> None:
    """PRM scores of (problem_id, text) pairs not scored yet, in one call, steps split at
    `separator`; the tokens read are charged to the pair, or to `charge_to[pair]` (a rollout's
    to the child it ranks)."""
    todo = [pair for pair in dict.fromkeys(pairs) if pair not in spent.scored]
    if not todo:
        return
    began = time.perf_counter()
    results = prm.score([prompts[pid] for pid, _ in todo], [text for _, text in todo], separator)
    spent.prm_seconds += time.perf_counter() - began
    spent.prm_calls += 1
    for pair, result in zip(todo, results):
        read = result.num_tokens or 0
        spent.prm_tokens += read
        owner = charge_to.get(pair, pair) if charge_to else pair
        spent.prm_tokens_of[owner] = spent.prm_tokens_of.get(owner, 0) + read
    spent.scored.update(zip(todo, results))


def last_reward(scored) -> float | None:
    return scored.step_rewards[-1] if scored.step_rewards else None


def lookahead_rewards(policy, prm, prompts: dict, rendered: dict, starts: list[tuple[str, str, int]],
                      sampling: SamplingSpec, settings: SearchSettings, spent: Spent) -> dict:
    """(problem_id, text) -> the rewards of `settings.lookahead` greedy steps rolled out past it;
    `starts`: (problem_id, text, trajectory tokens) of the unfinished children."""
    greedy = replace(sampling, temperature=0.0, top_p=1.0, top_k=0, min_p=0.0)
    rolling = {(pid, text): [text, used, False] for pid, text, used in starts}
    for _ in range(settings.lookahead):
        open_ = [key for key, (_, used, done) in rolling.items() if not done and used < sampling.max_tokens]
        if not open_:
            break
        specs = [step_request(greedy, settings, rolling[key][1], False) for key in open_]
        began = time.perf_counter()
        outputs = policy.generate([rendered[pid] + rolling[(pid, t)][0] for pid, t in open_], specs, 1, [0] * len(open_))
        spent.policy_seconds += time.perf_counter() - began
        spent.policy_calls += 1
        for key, output in zip(open_, outputs):
            if isinstance(output, Rejected):
                rolling[key][2] = True
                continue
            made = made_children(output, settings.step_separator, rolling[key][1], sampling.max_tokens)[0]
            spent.generated_tokens += made.tokens
            spent.lookahead_tokens_of[key] = spent.lookahead_tokens_of.get(key, 0) + made.tokens
            rolling[key] = [rolling[key][0] + made.text, rolling[key][1] + made.tokens, made.finished]
    pairs = [(pid, rolled) for (pid, _), (rolled, _, _) in rolling.items()]
    charge = {(pid, rolled): key for key, (rolled, _, _) in rolling.items() for pid in (key[0],)}
    score_texts(prm, prompts, pairs, settings.step_separator, spent, charge)
    rewards = {}
    for (pid, text), (rolled, _, _) in rolling.items():
        own = len(spent.scored[(pid, text)].step_rewards or ())
        rewards[(pid, text)] = tuple(spent.scored[(pid, rolled)].step_rewards or ())[own:]
    return rewards


def run_step(state: SearchState, policy, prm, prompts: dict, rendered: dict, sampling: SamplingSpec,
             spent: Spent) -> tuple[SearchState, list[list[Made]]]:
    """One step of every problem in `state`: one policy call, one PRM call (two more calls per
    lookahead step); returns the new state and what the engine made."""
    settings = state.settings
    wanted = expansions_needed(state)
    made = expand(policy, rendered, wanted, sampling, settings, spent)
    texts = [[e.node.text + m.text for m in children] for e, children in zip(wanted, made)]
    score_texts(prm, prompts, [(e.problem_id, t) for e, ts in zip(wanted, texts) for t in ts], settings.step_separator, spent)
    ahead = {}
    if settings.lookahead:
        starts = [(e.problem_id, t, spent.path_tokens(e.problem_id, e.node.path) + m.tokens)
                  for e, children, ts in zip(wanted, made, texts) for m, t in zip(children, ts) if not m.finished]
        ahead = lookahead_rewards(policy, prm, prompts, rendered, starts, sampling, settings, spent)
    steps = []
    for e, children, ts in zip(wanted, made, texts):
        row = []
        for c, (m, text) in enumerate(zip(children, ts)):
            spent.tokens[(e.problem_id, e.node.path + (c,))] = m.tokens
            spent.logprob[(e.problem_id, e.node.path + (c,))] = m.logprob
            row.append(Step(m.text, last_reward(spent.scored[(e.problem_id, text)]), m.finished, m.finish_reason,
                            ahead.get((e.problem_id, text), ())))
        steps.append(row)
    return select(state, steps), made


def search_problems(policy, prm, prompts: dict, settings: SearchSettings, sampling: SamplingSpec,
                    run_seed: int) -> tuple[SearchState, Spent]:
    """The whole search of `prompts` (problem_id -> prompt, in unit order), to the end."""
    rendered = rendered_prompts(policy, prompts)
    state, spent = start_search(settings, list(prompts), run_seed), Spent()
    while not state.done:
        state, _ = run_step(state, policy, prm, prompts, rendered, sampling, spent)
    return state, spent


def separator_stops(policy, prm, prompts: dict, settings: SearchSettings, sampling: SamplingSpec,
                    run_seed: int) -> tuple[int, int]:
    """(children that stopped at the separator, children) of the search's first step: the
    check that the policy writes the separator at all."""
    rendered = rendered_prompts(policy, prompts)
    state = start_search(settings, list(prompts), run_seed)
    made = expand(policy, rendered, expansions_needed(state), sampling, settings, Spent())
    children = [m for row in made for m in row]
    return sum(m.stopped_at_separator for m in children), len(children)
