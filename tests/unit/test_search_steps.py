"""jobs.strategy.search: the step logic of PRM-guided beam search and DVTS as pure functions, on
hand-computed cases: top M with ties (ids compared as integer paths), the aggregate and
lookahead in the score, duplicate filtering, early-finished and blank steps, DVTS subtrees that
never take each other's children or places, exactly N final trajectories in the documented
order (copies last), a batch of problems finishing at different steps, stable node ids and
seeds, and the one-line errors."""

import hashlib

import pytest

from jobs.strategy.search import (
    DUPLICATE,
    FINISHED,
    KEPT,
    PRUNED,
    NodeRecord,
    SearchSettings,
    Step,
    check_settings,
    expansions_needed,
    final_trajectories,
    node_seed,
    select,
    shares,
    start_search,
    tree_records,
)


def beam(width, keep, max_steps=3, **kw):
    return SearchSettings(kind="beam", width=width, beam=keep, max_steps=max_steps, **kw)


def dvts(width, children, max_steps=3, **kw):
    """width/children subtrees, each making `children` children per step."""
    return SearchSettings(kind="dvts", width=width, beam=children, max_steps=max_steps, **kw)


def wanted(state):
    return [(e.problem_id, e.node.node_id, e.n) for e in expansions_needed(state)]


def status(state, problem=0):
    return {node.node_id: node.status for node in state.problems[problem].nodes}


def finals(state):
    return [(f.problem_id, f.sample_idx, f.node.node_id, f.copy) for f in final_trajectories(state)]


def test_the_top_m_of_all_children_are_kept_ties_to_the_lower_id():
    state = start_search(beam(4, 2), ["p"], run_seed=7)
    (root,) = expansions_needed(state)
    assert (root.node.node_id, root.n, root.seed, root.last) == ("0", 4, node_seed(7, "p", 1, "0"), False)
    state = select(state, [[Step("a", 0.5), Step("b", 0.9), Step("c", 0.5), Step("d", 0.5)]])
    assert status(state) == {"0.0": KEPT, "0.1": KEPT, "0.2": PRUNED, "0.3": PRUNED}
    assert wanted(state) == [("p", "0.1", 2), ("p", "0.0", 2)]  # rank order: 0.9, then 0.5 of the lowest id


def test_ids_compare_as_integer_paths_not_strings():
    state = start_search(beam(11, 1), ["p"], run_seed=0)
    rewards = [0.1] * 11
    rewards[2] = rewards[10] = 0.8
    state = select(state, [[Step(f"s{c}", r) for c, r in enumerate(rewards)]])
    assert [n.node_id for n in state.problems[0].groups[0].active] == ["0.2"]  # "0.10" < "0.2" as strings
    assert status(state)["0.10"] == PRUNED


@pytest.mark.parametrize("how, score_c, score_d, kept", [
    ("last", 0.25, 0.5, "0.0.1"),
    ("min", 0.25, 0.5, "0.0.1"),
    ("prod", 0.09375, 0.25, "0.0.1"),
    ("mean", 0.5, 0.5, "0.0.0"),  # a tie: the lower id
])
def test_the_score_aggregates_step_rewards_and_the_lookahead(how, score_c, score_d, kept):
    state = start_search(beam(2, 1, aggregate=how), ["p"], run_seed=0)
    state = select(state, [[Step("a", 0.5), Step("b", 0.25)]])
    state = select(state, [[Step("c", 0.75, lookahead_rewards=(0.25,)), Step("d", 0.5)]])
    c, d = state.problems[0].nodes[2:]
    assert (c.score, d.score) == (score_c, score_d)
    assert (c.step_rewards, d.step_rewards) == ((0.5, 0.75), (0.5, 0.5))  # the lookahead is not stored
    assert [n.node_id for n in state.problems[0].groups[0].active] == [kept]


def test_a_missing_reward_ranks_below_every_number():
    state = start_search(beam(3, 1), ["p"], run_seed=0)
    state = select(state, [[Step("a", None), Step("b", 0.0), Step("c", float("nan"))]])
    assert status(state) == {"0.0": PRUNED, "0.1": KEPT, "0.2": PRUNED}
    assert state.problems[0].nodes[2].step_rewards == (None,) and state.problems[0].nodes[2].score is None


def test_duplicates_are_dropped_before_selection_keeping_the_first_id():
    steps = [[Step("a", 0.1), Step("a", 0.9), Step("b", 0.5), Step("a", 0.8)]]
    state = select(start_search(beam(4, 2), ["p"], run_seed=0), steps)
    assert status(state) == {"0.0": KEPT, "0.1": DUPLICATE, "0.2": KEPT, "0.3": DUPLICATE}
    assert wanted(state) == [("p", "0.2", 2), ("p", "0.0", 2)]
    unfiltered = select(start_search(beam(4, 2, filter_duplicates=False), ["p"], run_seed=0), steps)
    assert status(unfiltered) == {"0.0": PRUNED, "0.1": KEPT, "0.2": PRUNED, "0.3": KEPT}


def test_a_child_equal_to_an_earlier_finished_trajectory_is_a_duplicate():
    state = start_search(beam(2, 1), ["p"], run_seed=0)
    state = select(state, [[Step("ab", 0.5, finished=True, finish_reason="eos"), Step("a", 0.4)]])
    state = select(state, [[Step("b", 0.9, finished=True), Step("c", 0.3, finished=True)]])
    assert status(state) == {"0.0": FINISHED, "0.1": KEPT, "0.1.0": DUPLICATE, "0.1.1": FINISHED}
    assert state.done  # its only unfinished place went to nothing
    assert finals(state) == [("p", 0, "0.0", 0), ("p", 1, "0.1.1", 0)]


def test_early_finished_trajectories_are_kept_and_never_expanded_again():
    state = start_search(beam(4, 2), ["p"], run_seed=0)
    state = select(state, [[Step("A", 0.95, True, "eos"), Step("B", 0.4), Step("C", 0.6), Step("D", 0.2)]])
    assert status(state) == {"0.0": FINISHED, "0.1": KEPT, "0.2": KEPT, "0.3": PRUNED}
    assert wanted(state) == [("p", "0.2", 2), ("p", "0.1", 2)]  # M active: the finished one takes no place
    state = select(state, [[Step("E", 0.7, True, "length"), Step("F", 0.3)],
                           [Step("G", 0.8, True, "eos"), Step("H", 0.1, True, "eos")]])
    assert [s for n, s in status(state).items() if n.count(".") == 2] == [FINISHED, FINISHED, FINISHED, KEPT]
    (last,) = expansions_needed(state)
    assert (last.node.node_id, last.n, last.last) == ("0.2.1", 4, True)  # one active node takes all N
    state = select(state, [[Step("I", 0.5), Step("J", 0.9, True, "eos"), Step("K", 0.6), Step(" ", 0.05)]])
    assert state.done and expansions_needed(state) == []
    reasons = {n.node_id: n.finish_reason for n in state.problems[0].nodes if n.step == 3}
    assert reasons == {"0.2.1.0": "max_steps", "0.2.1.1": "eos", "0.2.1.2": "max_steps", "0.2.1.3": "empty"}
    out = final_trajectories(state)
    assert [(f.sample_idx, f.node.node_id, f.node.text, f.node.score) for f in out] == [
        (0, "0.0", "A", 0.95), (1, "0.2.1.1", "CFJ", 0.9), (2, "0.1.0", "BG", 0.8), (3, "0.2.0", "CE", 0.7)]
    assert out[1].node.step_rewards == (0.6, 0.3, 0.9)


def test_a_blank_step_finishes_its_trajectory():
    state = select(start_search(beam(2, 1), ["p"], run_seed=0), [[Step("\n\n", 0.9), Step("a\n\n", 0.1)]])
    first = state.problems[0].nodes[0]
    assert (first.status, first.finish_reason) == (FINISHED, "empty")
    assert wanted(state) == [("p", "0.1", 2)]


def test_fewer_distinct_trajectories_than_n_are_repeated_best_first_copies_last():
    state = start_search(beam(4, 2), ["p"], run_seed=0)
    state = select(state, [[Step(t, r, finished=True) for t, r in (("x", 0.3), ("x", 0.9), ("y", 0.6), ("x", 0.2))]])
    assert state.done and state.step == 1
    assert finals(state) == [("p", 0, "0.2", 0), ("p", 1, "0.0", 0), ("p", 2, "0.2", 1), ("p", 3, "0.0", 1)]
    samples = {r.node: r.sample_idx for r in tree_records(state)}
    assert samples == {"0.0": (1, 3), "0.1": (), "0.2": (0, 2), "0.3": ()}


def test_with_more_than_n_finished_only_the_best_n_are_returned():
    state = start_search(beam(2, 1), ["p"], run_seed=0)
    state = select(state, [[Step("a", 0.2, True), Step("b", 0.5)]])
    state = select(state, [[Step("c", 0.1), Step("d", 0.7, True)]])
    state = select(state, [[Step("e", 0.4), Step("f", 0.3)]])
    assert finals(state) == [("p", 0, "0.1.1", 0), ("p", 1, "0.1.0.0", 0)]


def test_dvts_subtrees_never_take_each_others_children_or_places():
    state = start_search(dvts(4, 2, max_steps=2), ["p"], run_seed=7)
    assert [(e.node.node_id, e.n, e.seed) for e in expansions_needed(state)] == [
        ("0", 2, node_seed(7, "p", 1, "0")), ("1", 2, node_seed(7, "p", 1, "1"))]
    # Subtree 1's children are all better; beam search would keep only them. The same text in two
    # subtrees is no duplicate.
    state = select(state, [[Step("a", 0.1), Step("b", 0.2)], [Step("a", 0.9), Step("c", 0.8, True, "eos")]])
    assert status(state) == {"0.0": PRUNED, "0.1": KEPT, "1.0": KEPT, "1.1": FINISHED}
    assert wanted(state) == [("p", "0.1", 2), ("p", "1.0", 2)]
    state = select(state, [[Step("d", 0.3), Step("e", 0.4)], [Step("f", 0.95), Step("g", 0.85)]])
    assert state.done
    # N/M = 2 places per subtree: 1.1 (0.8) beats both of subtree 0's but its subtree's places are taken.
    assert finals(state) == [("p", 0, "1.0.0", 0), ("p", 1, "1.0.1", 0), ("p", 2, "0.1.1", 0), ("p", 3, "0.1.0", 0)]


def test_a_finished_dvts_subtree_keeps_its_budget_to_itself():
    state = start_search(dvts(6, 2), ["p"], run_seed=0)
    state = select(state, [[Step("a", 0.5, True), Step("b", 0.4, True)],
                           [Step("c", 0.5), Step("d", 0.6)],
                           [Step("e", 0.1, True), Step("f", 0.2)]])
    assert [g.done for g in state.problems[0].groups] == [True, False, False]
    assert wanted(state) == [("p", "1.1", 2), ("p", "2.1", 2)]  # 4 children this step, not 6


def test_shares_split_a_groups_budget_in_rank_order():
    assert shares(8, 3) == [3, 3, 2] and shares(4, 2) == [2, 2] and shares(4, 1) == [4]
    state = start_search(beam(8, 4), ["p"], run_seed=0)
    state = select(state, [[Step(f"s{c}", c / 8, finished=c < 5) for c in range(8)]])
    assert wanted(state) == [("p", "0.7", 3), ("p", "0.6", 3), ("p", "0.5", 2)]


def test_problems_of_a_unit_are_searched_together_and_finish_apart():
    state = start_search(beam(2, 1, max_steps=2), ["p", "q"], run_seed=0)
    assert wanted(state) == [("p", "0", 2), ("q", "0", 2)]
    state = select(state, [[Step("a", 0.5, True), Step("b", 0.6, True)], [Step("c", 0.2), Step("d", 0.1)]])
    assert [p.done for p in state.problems] == [True, False] and wanted(state) == [("q", "0.0", 2)]
    state = select(state, [[Step("e", 0.3), Step("f", 0.4)]])
    assert finals(state) == [("p", 0, "0.1", 0), ("p", 1, "0.0", 0), ("q", 0, "0.0.1", 0), ("q", 1, "0.0.0", 0)]


def test_one_step_search_finishes_every_child_at_max_steps():
    state = start_search(beam(2, 2, max_steps=1), ["p"], run_seed=0)
    assert [e.last for e in expansions_needed(state)] == [True]
    state = select(state, [[Step("a", 0.1), Step("b", 0.2)]])
    assert state.done and [n.finish_reason for n in state.problems[0].nodes] == ["max_steps", "max_steps"]


def run(run_seed):
    state = start_search(beam(4, 2), ["p", "q"], run_seed)
    for rewards in ([0.1, 0.4, 0.3, 0.2], [0.5, 0.6, 0.7, 0.8], [0.9, 0.1, 0.2, 0.3]):
        state = select(state, [[Step(f"{e.node.node_id}/{c}|", rewards[(c + i) % 4]) for c in range(e.n)]
                               for i, e in enumerate(expansions_needed(state))])
    return state


def test_node_ids_seeds_and_trees_are_deterministic():
    first, again = run(7), run(7)
    assert first == again and tree_records(first) == tree_records(again)
    assert tree_records(first) != tree_records(run(8))  # the run seed reaches every node's seed
    digest = hashlib.blake2b(b"7\x00p\x002\x000.1", digest_size=8).digest()
    assert node_seed(7, "p", 2, "0.1") == int.from_bytes(digest, "big") >> 2 == 4253659836834600638
    assert node_seed(0, "p", 1, "0") == 284389837382278517
    assert len({node_seed(7, "p", 2, "0.1"), node_seed(7, "q", 2, "0.1"), node_seed(7, "p", 3, "0.1"),
                node_seed(7, "p", 2, "0.2"), node_seed(8, "p", 2, "0.1")}) == 5
    record = next(r for r in tree_records(first) if r.node == "0.1.0")
    assert record == NodeRecord("p", 2, "0.1.0", "0.1", 0, "0.1/0|", 0.5, 0.5, PRUNED, None,
                                node_seed(7, "p", 2, "0.1"), ())
    child = next(r for r in tree_records(first) if r.node == "0.1.1")
    assert child.seed == record.seed + 1  # vLLM's n children of one seeded request: seed + c


@pytest.mark.parametrize("settings, message", [
    (SearchSettings(kind="sample"), "strategy.kind must be one of beam, dvts for a search, got 'sample'"),
    (beam(0, 1), "strategy.width must be an integer of at least 1, got 0"),
    (beam(4, 0), "strategy.beam must be an integer of at least 1, got 0"),
    (beam(4, 2, max_steps=0), "strategy.max_steps must be an integer of at least 1, got 0"),
    (beam(4, 2, lookahead=-1), "strategy.lookahead must be an integer of at least 0, got -1"),
    (beam(6, 4), "strategy.beam (4) must divide strategy.width (6): beam makes N/M children of each of M kept nodes"),
    (dvts(6, 4), "strategy.beam (4) must divide strategy.width (6): dvts makes N/M subtrees of M children each"),
    (beam(2, 4), "strategy.beam (4) must divide strategy.width (2): beam makes N/M children of each of M kept nodes"),
    (beam(4, 2, step_separator=""), "strategy.step_separator must not be empty"),
    (beam(4, 2, aggregate="max"), "score.aggregate must be one of last, min, prod, mean, got 'max'"),
])
def test_bad_settings_are_one_line_errors(settings, message):
    with pytest.raises(ValueError) as error:
        check_settings(settings)
    assert str(error.value) == message and "\n" not in message
    with pytest.raises(ValueError):
        start_search(settings, ["p"], run_seed=0)


def test_bad_driver_input_is_refused():
    state = start_search(beam(2, 1, max_steps=1), ["p"], run_seed=0)
    with pytest.raises(ValueError, match="^problem ids of a search must be unique$"):
        start_search(beam(2, 1), ["p", "p"], run_seed=0)
    with pytest.raises(ValueError, match=r"^0 lists of children for 1 expansions$"):
        select(state, [])
    with pytest.raises(ValueError, match=r"^problem 'p' node 0: 1 children, expected 2$"):
        select(state, [[Step("a", 0.1)]])
    with pytest.raises(ValueError, match=r"^problem 'p': the search is not over$"):
        final_trajectories(state)
    done = select(state, [[Step("a", 0.1), Step("b", 0.2)]])
    with pytest.raises(ValueError, match="^the search is over: there is nothing to select$"):
        select(done, [])
    assert state.step == 0 and state.problems[0].nodes == ()  # select left its input as it was
