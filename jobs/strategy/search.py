"""PRM-guided step-level search (beam search and DVTS) as pure functions: no engine, no I/O.

A driver runs, for all the problems of a unit at once:

    state = start_search(settings, problem_ids, run_seed)
    while not state.done:
        wanted = expansions_needed(state)        # one engine call: each node, n children, a seed
        steps = ...                              # generate, then one PRM call for the new steps
        state = select(state, steps)             # steps[i]: the n children of wanted[i]
    samples = final_trajectories(state)          # exactly N per problem, sample_idx 0..N-1
    tree = tree_records(state)                   # every node, for search/unit-<id>.parquet

Shape. N = `strategy.width` (final trajectories per problem), M = `strategy.beam`; M divides N.
A problem's search is a set of groups, each with its own root (the prompt), active nodes,
finished nodes and a budget of children per step:
- `beam`: one group; it keeps the top M of all expansions and makes N children per step (N/M
  per kept node).
- `dvts`: N/M groups, the independent subtrees; each keeps its best 1 node and makes M children
  per step, a beam of its own. A subtree never sees another's children: selection, duplicate
  filtering and its share (M) of the final trajectories are its own.
Both make N children per problem and step while every group is active (search-and-learn's
shapes, with its beam_width = N/M for beam search and = M for DVTS), so a sweep
`strategy.kind=beam,dvts` compares like with like.

Nodes. A node's id is its path of child indices from its group's root: root "g" (group g, step
0, the bare prompt), its children "g.0", "g.1", ..., their children "g.1.0", ...; so the id
follows from (step, parent, child index), and its length minus one is its step. "Lower id"
means the lower path compared as tuples of integers ("0.2" < "0.10"), not as strings.

Rules, each step, in every group that is not done:
1. Expansion: the group's budget of children is shared by its active nodes in rank order:
   each gets budget // K, and the first budget % K one more (K active nodes; with K = M that is
   N/M each). An active set smaller than M (too few unfinished children survived) thus keeps
   the problem's step at N children, as search-and-learn's refill does.
2. A child is finished when the driver says so (EOS, length: the engine's finish reason), when
   its step text is blank (no progress; the PRM would see no new step), or when it is the
   `max_steps`-th step (finish_reason: the driver's when it says finished, else "empty" or
   "max_steps"). `Expansion.last` tells the driver that its children are the last step, so it
   may drop the stop string there, as search-and-learn does.
3. Score: `score.aggregate` (last, min, prod, mean) of the step rewards; for an unfinished
   child, of the step rewards plus the driver's `lookahead_rewards` (rewards of steps rolled
   out past it, never stored as its own). A missing reward (None or NaN: the PRM could not
   score it) makes the score None, which ranks below every number.
4. Duplicates (`filter_duplicates`, on by default): the group's new children are taken in id
   order; a child whose full text equals an earlier child's of this step, or a finished node's
   of the group, is dropped (status "duplicate"), whatever its score.
5. Finished children leave the competition: every one becomes a final candidate of its group
   (status "finished") and is never expanded again; they do not take active places.
6. Of the unfinished children, the group keeps its best (M for beam, 1 per dvts subtree) by
   score, ties to the lower id (status "kept"); the rest are "pruned".
7. A group is done when it keeps no node (all its children finished or duplicates) or at
   `max_steps`; a problem is done when all its groups are; a done dvts subtree's budget is not
   passed to the others.

Final trajectories: each group's candidates are its finished nodes (every search ends with
finished nodes only, and at least one per group). A group contributes its quota (beam: N, dvts:
M) of its best candidates by score, ties to the lower id; a group with fewer distinct
candidates than its quota repeats them in rank order (best, second, ..., best again) with
`copy` 1, 2, ... . The problem's N entries are then ordered first occurrences before copies,
each by score then id: sample_idx 0 is the best-scored trajectory.

Seeds: the request that expands node P into step t is sampled with
`node_seed(run_seed, problem_id, t, P)`; vLLM gives its child c the seed + c (SamplingParams(n,
seed)), recorded as the child's seed. The same config thus gives the same tree.

What huggingface/search-and-learn (src/sal/search) does differently:
- Its `beam_width` is the branching factor: beam search keeps n/beam_width, DVTS runs
  n/beam_width subtrees, each expanded beam_width ways. Here beam search keeps M (its
  beam_width = N/M) and DVTS runs N/M subtrees of M children (its beam_width = M).
- Ties fall to np.argsort's unstable order; here to the lower id.
- `filter_duplicates` is off by default and covers active beams only; here it is on and covers
  finished children too. `sort_completed` is off by default (the first n completed, in
  completion order); here final trajectories are always the best by score. It also fills a
  shortfall by cycling its completed beams, but copies are not marked nor put last.
- Its DVTS keeps the single best child of each subtree, stops the subtree when that child
  finishes, discards finished siblings, returns the last expansion's siblings (unfinished ones
  too, when a subtree stopped early) and records no tree (its issue #51). Here a subtree is a
  beam of width 1 under the rules above, and the tree is recorded.
- Its beam search scores beams without their lookahead text (DVTS with it); its seeds are one
  global seed; its beam search runs one problem at a time (search_batch_size=1).
"""

import hashlib
import math
from dataclasses import dataclass, replace
from typing import Sequence

from workers.reward import AGGREGATES, aggregate

BEAM, DVTS = "beam", "dvts"
KINDS = (BEAM, DVTS)
KEPT, PRUNED, DUPLICATE, FINISHED, ROOT = "kept", "pruned", "duplicate", "finished", "root"
# The bound of jobs.problems.units: seed + child index fits an int64 column and torch's generator.
SEED_BITS = 62


@dataclass(frozen=True)
class SearchSettings:
    kind: str = BEAM  # "beam" | "dvts"
    width: int = 4  # N: final trajectories per problem
    beam: int = 1  # M: beam keeps the top M per step; dvts runs N/M subtrees of M children per step
    max_steps: int = 40
    step_separator: str = "\n\n"  # the driver's stop string; the PRM's separator
    lookahead: int = 0  # steps the driver rolls out past a child to score it
    aggregate: str = "last"  # score.aggregate: last, min, prod, mean
    filter_duplicates: bool = True

    @property
    def groups(self) -> int:
        return self.width // self.beam if self.kind == DVTS else 1

    @property
    def keep(self) -> int:
        """Nodes a group keeps after each step."""
        return 1 if self.kind == DVTS else self.beam

    @property
    def budget(self) -> int:
        """Children a group makes per step, and its share of the N final trajectories."""
        return self.width // self.groups


def check_settings(settings: SearchSettings) -> None:
    """ValueError (one line, naming the strategy key) on settings no search can run with."""
    s = settings
    if s.kind not in KINDS:
        raise ValueError(f"strategy.kind must be one of {', '.join(KINDS)} for a search, got {s.kind!r}")
    for key, value, least in (("width", s.width, 1), ("beam", s.beam, 1), ("max_steps", s.max_steps, 1),
                              ("lookahead", s.lookahead, 0)):
        if not isinstance(value, int) or value < least:
            raise ValueError(f"strategy.{key} must be an integer of at least {least}, got {value!r}")
    if s.width % s.beam:
        shape = "N/M subtrees of M children each" if s.kind == DVTS else "N/M children of each of M kept nodes"
        raise ValueError(f"strategy.beam ({s.beam}) must divide strategy.width ({s.width}): {s.kind} makes {shape}")
    if not s.step_separator:
        raise ValueError("strategy.step_separator must not be empty")
    if s.aggregate not in AGGREGATES:
        raise ValueError(f"score.aggregate must be one of {', '.join(AGGREGATES)}, got {s.aggregate!r}")


def node_seed(run_seed: int, problem_id: str, step: int, node: str) -> int:
    """The seed of the request that expands `node` into step `step`; its child c gets this + c."""
    key = f"{run_seed}\x00{problem_id}\x00{step}\x00{node}".encode()
    return int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "big") >> (64 - SEED_BITS)


@dataclass(frozen=True)
class Node:
    problem_id: str
    path: tuple[int, ...]  # (group, child index at step 1, ..., child index at this step)
    text: str = ""  # the trajectory so far: the step texts joined
    step_text: str = ""
    step_rewards: tuple[float | None, ...] = ()
    score: float | None = None  # what it is ranked by (rule 3)
    finished: bool = False
    finish_reason: str | None = None
    seed: int | None = None  # the seed it was sampled with (None for a root)
    status: str = ROOT  # root | kept | pruned | duplicate | finished

    @property
    def step(self) -> int:
        return len(self.path) - 1

    @property
    def group(self) -> int:
        return self.path[0]

    @property
    def node_id(self) -> str:
        return ".".join(map(str, self.path))

    @property
    def parent_id(self) -> str | None:
        return ".".join(map(str, self.path[:-1])) or None


def rank(node: Node) -> tuple:
    """Sort key: best score first, None last, ties to the lower id."""
    return (node.score is None, -(node.score or 0.0), node.path)


@dataclass(frozen=True)
class Step:
    """One generated child, as the driver hands it back."""

    text: str  # the step as it goes into the sample (with its separator, if the engine kept it)
    reward: float | None  # the PRM's reward for this step
    finished: bool = False  # EOS or length before max_steps
    finish_reason: str | None = None
    lookahead_rewards: tuple[float, ...] = ()


@dataclass(frozen=True)
class Expansion:
    problem_id: str
    node: Node  # the prefix to continue: prompt + node.text
    n: int  # children to sample
    seed: int  # child c is sampled with seed + c
    last: bool  # the children are the max_steps-th step: finished whatever the engine says


@dataclass(frozen=True)
class Group:
    index: int
    active: tuple[Node, ...]  # in rank order
    finished: tuple[Node, ...] = ()
    done: bool = False


@dataclass(frozen=True)
class ProblemSearch:
    problem_id: str
    groups: tuple[Group, ...]
    nodes: tuple[Node, ...] = ()  # every node made so far (not the roots), step by step, id order

    @property
    def done(self) -> bool:
        return all(g.done for g in self.groups)


@dataclass(frozen=True)
class SearchState:
    settings: SearchSettings
    run_seed: int
    step: int  # steps made so far
    problems: tuple[ProblemSearch, ...]

    @property
    def done(self) -> bool:
        return all(p.done for p in self.problems)


def start_search(settings: SearchSettings, problem_ids: Sequence[str], run_seed: int) -> SearchState:
    check_settings(settings)
    if len(set(problem_ids)) != len(problem_ids):
        raise ValueError("problem ids of a search must be unique")
    problems = tuple(
        ProblemSearch(pid, tuple(Group(g, (Node(pid, (g,)),)) for g in range(settings.groups)))
        for pid in problem_ids)
    return SearchState(settings, run_seed, 0, problems)


def shares(total: int, k: int) -> list[int]:
    """`total` split over k in order: total // k each, the first total % k one more."""
    return [total // k + (i < total % k) for i in range(k)]


def expansions_needed(state: SearchState) -> list[Expansion]:
    """The next engine call: problems in order, groups in order, active nodes in rank order."""
    s, step = state.settings, state.step + 1
    wanted = []
    for problem in state.problems:
        for group in problem.groups:
            if group.done:
                continue
            for node, n in zip(group.active, shares(s.budget, len(group.active))):
                seed = node_seed(state.run_seed, problem.problem_id, step, node.node_id)
                wanted.append(Expansion(problem.problem_id, node, n, seed, step >= s.max_steps))
    return wanted


def select(state: SearchState, steps: Sequence[Sequence[Step]]) -> SearchState:
    """The state after one step: `steps[i]` are the children of `expansions_needed(state)[i]`,
    child c sampled with its seed + c. The input state is left as it was."""
    if state.done:
        raise ValueError("the search is over: there is nothing to select")
    wanted = expansions_needed(state)
    if len(steps) != len(wanted):
        raise ValueError(f"{len(steps)} lists of children for {len(wanted)} expansions")
    s, step = state.settings, state.step + 1
    children: dict[tuple[str, int], list[Node]] = {}
    for expansion, made in zip(wanted, steps):
        if len(made) != expansion.n:
            raise ValueError(f"problem {expansion.problem_id!r} node {expansion.node.node_id}: "
                             f"{len(made)} children, expected {expansion.n}")
        key = (expansion.problem_id, expansion.node.group)
        children.setdefault(key, []).extend(_child(expansion, c, one, s, step) for c, one in enumerate(made))
    problems = tuple(_advance(p, children, s, step) for p in state.problems)
    return replace(state, step=step, problems=problems)


def _reward(value: float | None) -> float | None:
    return None if value is None or math.isnan(value) else float(value)


def _score(rewards: Sequence[float | None], how: str) -> float | None:
    return None if any(r is None for r in rewards) else aggregate(rewards, how)


def _child(expansion: Expansion, c: int, made: Step, s: SearchSettings, step: int) -> Node:
    parent = expansion.node
    rewards = parent.step_rewards + (_reward(made.reward),)
    blank = not made.text.strip()
    finished = made.finished or blank or step >= s.max_steps
    reason = (made.finish_reason if made.finished else "empty" if blank else
              "max_steps" if finished else None)
    lookahead = () if finished else tuple(_reward(r) for r in made.lookahead_rewards)
    return Node(parent.problem_id, parent.path + (c,), parent.text + made.text, made.text, rewards,
                _score(rewards + lookahead, s.aggregate), finished, reason, expansion.seed + c, KEPT)


def _advance(problem: ProblemSearch, children: dict, s: SearchSettings, step: int) -> ProblemSearch:
    groups, made = [], []
    for group in problem.groups:
        if group.done:
            groups.append(group)
            continue
        group, nodes = _select_group(group, children.get((problem.problem_id, group.index), []), s, step)
        groups.append(group)
        made.extend(nodes)
    return replace(problem, groups=tuple(groups), nodes=problem.nodes + tuple(made))


def _select_group(group: Group, children: list[Node], s: SearchSettings, step: int) -> tuple[Group, list[Node]]:
    """Rules 4-7 for one group's children; returns the group and its children with their status."""
    seen = {node.text for node in group.finished}
    status, racing, finished = {}, [], []
    in_order = sorted(children, key=lambda node: node.path)
    for child in in_order:
        if s.filter_duplicates and child.text in seen:
            status[child.path] = DUPLICATE
            continue
        seen.add(child.text)
        (finished if child.finished else racing).append(child)
    racing.sort(key=rank)
    for i, child in enumerate(racing):
        status[child.path] = KEPT if i < s.keep else PRUNED
    status |= {child.path: FINISHED for child in finished}
    marked = {child.path: replace(child, status=status[child.path]) for child in in_order}
    kept = tuple(marked[child.path] for child in racing[:s.keep])
    group = Group(group.index, kept, group.finished + tuple(marked[child.path] for child in finished),
                  done=not kept or step >= s.max_steps)
    return group, list(marked.values())


@dataclass(frozen=True)
class Final:
    problem_id: str
    sample_idx: int
    node: Node
    copy: int = 0  # 0: the trajectory's first entry; k: its k-th repeat, filling a shortfall


def problem_finals(problem: ProblemSearch, settings: SearchSettings) -> list[Final]:
    """Exactly N final trajectories of one finished problem, in sample_idx order."""
    if not problem.done:
        raise ValueError(f"problem {problem.problem_id!r}: the search is not over")
    entries = []
    for group in problem.groups:
        best = sorted(group.finished, key=rank)[:settings.budget]
        if not best:
            raise ValueError(f"problem {problem.problem_id!r} group {group.index}: no finished trajectory")
        entries.extend((i // len(best), best[i % len(best)]) for i in range(settings.budget))
    entries.sort(key=lambda entry: (entry[0], rank(entry[1])))
    return [Final(problem.problem_id, i, node, copy) for i, (copy, node) in enumerate(entries)]


def final_trajectories(state: SearchState) -> list[Final]:
    """N per problem, problems in order; ValueError if the search is not over."""
    return [final for problem in state.problems for final in problem_finals(problem, state.settings)]


@dataclass(frozen=True)
class NodeRecord:
    """One row of the tree file (search/unit-<id>.parquet)."""

    problem_id: str
    step: int
    node: str
    parent: str  # a step-1 node's parent is its group's root, "g" (not recorded itself)
    group: int
    text: str  # the step's text
    step_reward: float | None
    score: float | None
    status: str  # kept | pruned | duplicate | finished
    finish_reason: str | None
    seed: int
    sample_idx: tuple[int, ...]  # the samples it became (several when repeated), once done


def tree_records(state: SearchState) -> list[NodeRecord]:
    records = []
    for problem in state.problems:
        samples: dict[tuple[int, ...], list[int]] = {}
        if problem.done:
            for final in problem_finals(problem, state.settings):
                samples.setdefault(final.node.path, []).append(final.sample_idx)
        records.extend(
            NodeRecord(problem.problem_id, node.step, node.node_id, node.parent_id, node.group, node.step_text,
                       node.step_rewards[-1], node.score, node.status, node.finish_reason, node.seed,
                       tuple(samples.get(node.path, ())))
            for node in problem.nodes)
    return records
