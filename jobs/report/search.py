"""Step-level search against independent sampling at matched compute: each search run's accuracy
(its top trajectory, its PRM-weighted vote) beside a sample run's best-of-k by the same PRM and
majority@k at the k that costs as much, in generated tokens and in FLOPs.

The sample run is the `--against` root, or else, among the report's runs (a sweep's points,
e.g. `strategy.kind=sample,beam`), a sample run scored by the same PRM on as many problems, the
one with the largest measured k. Everything here reads metrics.json's `search` sections
(`jobs.usecases.search_metrics` writes them); the interpolation is `jobs.metrics.search.at_cost`.
"""

from dataclasses import dataclass, field

from jobs.errors import ConfigError
from jobs.metrics.search import AtCost, at_cost
from jobs.report.runs import Run

# metrics.json `search.selection` curves compared, with their names in the table and plot.
CURVES = (("best_of_k", "best-of-k (PRM)"), ("majority_at_k", "majority@k"))
COSTS = (("policy_tokens_per_problem", "generated tokens"), ("flops_per_problem", "FLOPs"))


def search_of(run: Run) -> dict:
    return run.metrics.get("search") or {}


def strategy_kind(run: Run) -> str | None:
    """sample, beam or dvts where the run has a `search` section, else None."""
    section = search_of(run)
    return (section.get("strategy") or {}).get("kind", "sample") if section else None


def is_search_run(run: Run) -> bool:
    return strategy_kind(run) not in (None, "sample")


def shape(run: Run) -> str:
    """A search run's kind and shape, as its markers are labelled: "beam N=16/M=4"."""
    strategy = search_of(run).get("strategy") or {}
    return f"{strategy.get('kind')} N={strategy.get('width')}/M={strategy.get('beam')}"


@dataclass
class SearchComparison:
    """One search run against a sample run at the compute the search spent."""

    run: Run
    baseline: Run | None  # None: no sample run scored by the same PRM on as many problems
    # cost name (COSTS) -> curve name (CURVES) -> the sample run's curve at the search's cost
    matched: dict = field(default_factory=dict)
    unmatched: str = ""  # without a baseline: why the report's sample runs do not fit

    @property
    def accuracy(self) -> dict:
        return search_of(self.run).get("accuracy") or {}

    def cost(self, name: str) -> float | None:
        return search_of(self.run).get(name)

    def k_at(self, cost: str) -> AtCost | None:
        """The sample run's k at the search's `cost` (the same for every curve)."""
        curves = self.matched.get(cost) or {}
        return next(iter(curves.values()), None)


def baseline_curve(baseline: Run, cost: str, curve: str) -> tuple[list[int], list | None, list | None]:
    """(ks, cost at each k, the curve at each k) of a sample run's `search` section; None where absent."""
    section = search_of(baseline)
    ks = [int(k) for k in section.get("ks") or []]
    costs = ((section.get("cost_at_k") or {}).get(cost)) or None
    values = ((section.get("selection") or {}).get(curve)) or None
    pick = lambda points: None if points is None else [points.get(str(k)) for k in ks]  # noqa: E731
    return ks, pick(costs), pick(values)


def compare(run: Run, baseline: Run | None) -> SearchComparison:
    matched = {}
    if baseline is not None:
        for cost, _ in COSTS:
            matched[cost] = {}
            for curve, _ in CURVES:
                ks, costs, values = baseline_curve(baseline, cost, curve)
                matched[cost][curve] = at_cost(ks, costs, values, search_of(run).get(cost))
    return SearchComparison(run, baseline, matched)


def _mismatch(run: Run, baseline: Run) -> str | None:
    """Why `baseline` cannot be the sample run `run` is compared with, or None."""
    ours, theirs = search_of(run), search_of(baseline)
    if strategy_kind(baseline) != "sample":
        return (f"it is not a sample run scored by a PRM (no metrics.json search section of strategy.kind=sample): "
                f"score its samples with the search's PRM (troop score {baseline.store.root} score.model=PRM "
                f"score.kind=process), then troop metrics {baseline.store.root}")
    if ours.get("scorer") != theirs.get("scorer"):
        return f"its scores are by {theirs.get('scorer')}, the search's by {ours.get('scorer')}: score both with the same PRM"
    if ours.get("problems") != theirs.get("problems"):
        return f"it has {theirs.get('problems')} problems, the search {ours.get('problems')}: compare runs of the same problems"
    return None


def _largest_k(run: Run) -> int:
    return max((int(k) for k in search_of(run).get("ks") or []), default=0)


def search_comparisons(runs: list[Run], against: Run | None = None) -> list[SearchComparison]:
    """Every search run of the report against `against` (the sample run --against names:
    a ConfigError if it does not fit) or against the best fitting sample run among `runs`."""
    comparisons = []
    for run in filter(is_search_run, runs):
        if against is not None:
            why = _mismatch(run, against)
            if why is not None:
                raise ConfigError(f"--against {against.store.root}: a search run ({run.label}) is compared with a "
                                  f"sample run scored by the same PRM, and {why}")
            comparisons.append(compare(run, against))
            continue
        fitting = [r for r in runs if r is not run and _mismatch(run, r) is None]
        compared = compare(run, max(fitting, key=_largest_k, default=None))
        if not fitting:
            compared.unmatched = "; ".join(f"{r.label}: {_mismatch(run, r)}" for r in runs if strategy_kind(r) == "sample")
        comparisons.append(compared)
    return comparisons
