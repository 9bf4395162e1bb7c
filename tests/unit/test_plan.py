"""jobs.problems.units: work units and seeds are a pure function of the problem set and the config."""

from collections import Counter

import pytest

from jobs.problems.units import SEED_BITS, WorkUnit, plan_units, problem_seed, sample_seed, unit_id

IDS = [f"problem-{i}" for i in range(13)]


def unit_seeds(units: list[WorkUnit], run_seed: int) -> dict[tuple[str, int], int]:
    """Seed of every sample as a worker derives it: the request seed base+start, plus the
    completion's index within the request (what vLLM does with SamplingParams(n, seed))."""
    seeds = {}
    for unit in units:
        for pid in unit.problem_ids:
            request_seed = problem_seed(run_seed, pid) + unit.sample_start
            for j in range(unit.samples_per_problem):
                seeds[(pid, unit.sample_start + j)] = request_seed + j
    return seeds


def test_same_inputs_give_the_same_units():
    assert plan_units(IDS, 10, 16) == plan_units(list(IDS), 10, 16)


@pytest.mark.parametrize(
    "num_problems, n, samples_per_unit",
    [(1, 1, 1), (13, 1, 3), (13, 10, 4), (13, 3, 2048), (4, 5, 5), (13, 7, 20), (3, 10000, 2048), (5, 9, 1)],
)
def test_every_sample_is_covered_exactly_once(num_problems, n, samples_per_unit):
    ids = IDS[:num_problems]
    units = plan_units(ids, n, samples_per_unit)
    covered = Counter(
        (pid, idx) for u in units for pid in u.problem_ids for idx in range(u.sample_start, u.sample_end)
    )
    assert set(covered) == {(pid, idx) for pid in ids for idx in range(n)}
    assert set(covered.values()) == {1}
    assert sum(u.num_samples for u in units) == num_problems * n


@pytest.mark.parametrize("n, samples_per_unit", [(10, 4), (3, 2048), (7, 20), (10000, 2048), (2048, 2048), (1, 1)])
def test_no_unit_exceeds_samples_per_unit(n, samples_per_unit):
    assert max(u.num_samples for u in plan_units(IDS, n, samples_per_unit)) <= samples_per_unit


def test_large_n_splits_each_problem_over_five_units():
    units = plan_units(IDS[:3], 10000, 2048)
    assert len(units) == 15
    ranges = [(0, 2048), (2048, 4096), (4096, 6144), (6144, 8192), (8192, 10000)]
    for p, pid in enumerate(IDS[:3]):
        mine = [u for u in units if u.problem_ids == (pid,)]
        assert [(u.sample_start, u.sample_end) for u in mine] == ranges
        assert [u.problem_start for u in mine] == [p] * 5
    assert [u.samples_per_problem for u in units[:5]] == [2048, 2048, 2048, 2048, 1808]


def test_small_n_packs_several_problems_into_a_unit():
    units = plan_units(IDS[:5], 4, 10)  # 10 // 4 = 2 problems of 4 samples per unit
    assert [u.problem_ids for u in units] == [tuple(IDS[0:2]), tuple(IDS[2:4]), (IDS[4],)]
    assert [(u.problem_start, u.sample_start, u.sample_end, u.num_samples) for u in units] == [
        (0, 0, 4, 8), (2, 0, 4, 8), (4, 0, 4, 4)]


def test_unit_ids_are_unique_and_name_their_ranges():
    units = plan_units(IDS, 10, 4)
    assert len({u.unit_id for u in units}) == len(units) == 13 * 3
    assert units[1].unit_id == "p000000-000001-s000004-000008"
    assert unit_id(2, 4, 2048, 4096) == "p000002-000004-s002048-004096"


def test_a_unit_id_means_the_same_samples_whatever_the_unit_size():
    by_id = {}
    for size in (1, 3, 4, 7, 10, 30, 2048):
        for u in plan_units(IDS, 10, size):
            by_id.setdefault(u.unit_id, (u.problem_ids, u.sample_start, u.sample_end))
            assert by_id[u.unit_id] == (u.problem_ids, u.sample_start, u.sample_end)


def test_no_problems_no_units():
    assert plan_units([], 5, 8) == []


@pytest.mark.parametrize("n, samples_per_unit", [(0, 8), (5, 0), (-1, 8)])
def test_counts_below_one_are_refused(n, samples_per_unit):
    with pytest.raises(ValueError):
        plan_units(IDS, n, samples_per_unit)


# Seeds.


def test_sample_seed_is_the_problem_base_plus_the_index():
    base = problem_seed(0, "q")
    assert [sample_seed(0, "q", i) for i in (0, 1, 9999)] == [base, base + 1, base + 9999]


def test_seeds_are_a_pure_function_of_run_seed_problem_and_index():
    assert problem_seed(5, "HumanEval/3") == problem_seed(5, "HumanEval/3")
    assert unit_seeds(plan_units(IDS, 10, 4), 5) == unit_seeds(plan_units(IDS, 10, 4), 5)


def test_seeds_of_a_problem_are_distinct():
    seeds = unit_seeds(plan_units(IDS[:2], 10000, 2048), 0)
    for pid in IDS[:2]:
        assert len({seeds[(pid, i)] for i in range(10000)}) == 10000


def test_seeds_do_not_depend_on_the_unit_size():
    """A unit's request seed is base + its first index: cutting differently gives the same seeds."""
    small = unit_seeds(plan_units(IDS, 10, 3), 11)
    large = unit_seeds(plan_units(IDS, 10, 64), 11)
    assert small == large
    assert small == {(pid, i): sample_seed(11, pid, i) for pid in IDS for i in range(10)}


def test_raising_n_keeps_the_seeds_of_existing_samples():
    assert unit_seeds(plan_units(IDS, 20, 8), 0).items() >= unit_seeds(plan_units(IDS, 10, 8), 0).items()


def test_a_different_run_seed_changes_every_problem_seed():
    assert all(problem_seed(0, pid) != problem_seed(1, pid) for pid in IDS)


def test_problems_get_different_base_seeds():
    ids = [f"p{i}" for i in range(1000)]
    assert len({problem_seed(0, pid) for pid in ids}) == 1000


def test_problem_ids_that_could_be_confused_get_different_seeds():
    """(run seed 1, problem '23') and (run seed 12, problem '3') must not hash the same text."""
    assert problem_seed(1, "23") != problem_seed(12, "3")


def test_seeds_stay_below_2_to_the_62():
    bases = [problem_seed(seed, f"p{i}") for seed in (0, 1, 2**40) for i in range(1000)]
    assert SEED_BITS == 62
    assert min(bases) >= 0 and max(bases) < 2**62
    assert max(bases) >= 2**61  # the seeds use the whole range, not a few low bits
    assert sample_seed(0, "p0", 10**9) < 2**63  # base + a large index still fits an int64
