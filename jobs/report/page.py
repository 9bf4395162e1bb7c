"""The report's index.html: a self-contained page (inline CSS, no scripts) with the roots, per-run
tables of the curves and the fit, and the PNGs linked by relative name, so the report folder can
be copied or served from any store."""

import html

from jobs.metrics.search import AtCost
from jobs.report.allocation import AdaptiveRun, EqualCoverage
from jobs.report.plots import ALLOCATION_PLOT, METHODS, PLOTS, REWARD_METHODS, SEARCH_PLOT
from jobs.report.runs import Run, curve, has_fit, tokens_per_sample
from jobs.report.search import COSTS, CURVES, SearchComparison, search_of, shape

CSS = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border:1px solid #ccc;padding:.25em .6em;text-align:right}
th{background:#f3f3f3}td.l,th.l{text-align:left}figure{margin:2em 0}img{max-width:100%}
figcaption{color:#555}.forecast{color:#8a5a00}code{font-size:90%}"""


def _esc(value) -> str:
    return html.escape(str(value))


def _cell(metrics: dict, name: str, k: int) -> str:
    value = (metrics.get(name) or {}).get(str(k))
    if value is None:
        return "—"
    ci = ((metrics.get("ci") or {}).get(name) or {}).get(str(k))
    return f"{value:.3f}" + (f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci and None not in ci else "")


def _facts_html(metrics: dict) -> str:
    counts, cost = metrics.get("counts") or {}, metrics.get("cost") or {}
    facts = [("problems", counts.get("problems")), ("samples", counts.get("samples")),
             ("tokens", counts.get("tokens")), ("problems solved", counts.get("problems_solved")),
             ("tokens per sample", tokens_per_sample(metrics)), ("verifier", metrics.get("verifier")),
             ("score", metrics.get("score")), ("model parameters", cost.get("model_params"))]
    row = "<tr><th class=l>{}</th><td class=l>{}</td></tr>"
    return "<table>" + "".join(row.format(_esc(k), _esc(_fmt(v))) for k, v in facts if v is not None) + "</table>"


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:,.1f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def _curves_html(metrics: dict) -> str:
    score = metrics.get("score")
    methods = REWARD_METHODS if metrics.get("best_of_k_reward") else METHODS
    names = [(n, f"{t} by {score}" if n == "best_of_k" and score else t) for n, t, _ in methods if metrics.get(n)]
    ks = sorted({int(k) for n, _ in names for k in metrics[n]})
    head = "<tr><th>k</th>" + "".join(f"<th>{_esc(t)}</th>" for _, t in names) + "</tr>"
    rows = "".join(f"<tr><td>{k}</td>" + "".join(f"<td>{_cell(metrics, n, k)}</td>" for n, _ in names) + "</tr>"
                   for k in ks)
    return f"<table>{head}{rows}</table><p>Brackets: 95% intervals.</p>"


def _fit_html(metrics: dict) -> str:
    fit = metrics.get("fit") or {}
    if not has_fit(metrics):
        points = _esc(fit.get("points", 0))
        return f"<p>No scaling fit: too few coverage points strictly between 0 and 1 ({points}).</p>"
    rmse = f", rmse {fit['rmse']:.4f}" if fit.get("rmse") is not None else ""
    text = (f"<p>Fitted coverage(k) = exp(a·k<sup>b</sup>): a = {fit['a']:.4f}, b = {fit['b']:.4f}{rmse}, "
            f"on {_esc(fit.get('points'))} points.</p>")
    forecast = curve(fit, "forecast")
    if forecast[0].size:
        points = ", ".join(f"k={k}: {v:.3f}" for k, v in zip(*forecast))
        text += ("<p class=forecast><b>Forecast (extrapolation of the fit beyond the sampled k, not measured):</b> "
                 f"{points}</p>")
    return text


def _run_html(run: Run) -> str:
    title = f"<h2>{_esc(run.label)}</h2><p><code>{_esc(run.store.url(run.store.path()))}</code></p>"
    return title + _facts_html(run.metrics) + _curves_html(run.metrics) + _fit_html(run.metrics)


def _number(value) -> str:
    """A count as the tables show it: 1,240; a median between two counts keeps its half: 8.5."""
    if value is None:
        return "—"
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.1f}"


def _equal_coverage_cells(equal: EqualCoverage) -> tuple[str, str]:
    if equal.uniform_samples is None:
        return f"not reached (to solve {equal.solved:.1%})", "—"
    return f"{equal.uniform_samples:,.0f} (to solve {equal.solved:.1%})", f"{equal.ratio:.2f}x" if equal.ratio else "—"


def _allocation_facts(a: AdaptiveRun) -> list[tuple[str, str]]:
    alloc = a.run.metrics["allocation"]
    spread, idle = alloc.get("samples_per_problem") or {}, alloc.get("engine_idle_share")
    samples, ratio = _equal_coverage_cells(a.equal)
    return [
        ("policy", alloc["policy"]),
        ("budget (samples)", _number(alloc.get("budget"))),
        ("samples spent", _number(alloc.get("samples_spent"))),
        ("tokens spent", _number(alloc.get("tokens_spent"))),
        ("problems solved", f"{alloc['problems_solved']:,} of {alloc['problems']:,}"),
        ("samples per problem (min / median / max)",
         " / ".join(_number(spread.get(k)) for k in ("min", "median", "max")) if spread else "—"),
        ("rounds", _number(alloc.get("rounds"))),
        ("engine idle share", "—" if idle is None else f"{idle:.1%}"),
        ("uniform curve", a.uniform.label),
        ("samples for equal coverage", samples),
        ("uniform / adaptive samples", ratio),
    ]


def allocation_html(adaptive: list[AdaptiveRun]) -> str:
    """The adaptive runs' allocation (one column each) and their plot; empty without any."""
    if not adaptive:
        return ""
    columns = [_allocation_facts(a) for a in adaptive]
    head = "<tr><th class=l></th>" + "".join(f"<th>{_esc(a.run.label)}</th>" for a in adaptive) + "</tr>"
    rows = "".join(f"<tr><th class=l>{_esc(name)}</th>" + "".join(f"<td>{_esc(c[i][1])}</td>" for c in columns) + "</tr>"
                   for i, (name, _) in enumerate(columns[0]))
    note = ("<p>Samples for equal coverage: the fewest samples at which the uniform curve solves the share of "
            "problems the adaptive run solved in the end (linear between the curve's points); the ratio divides "
            "them by the samples the adaptive run spent.</p>")
    name, caption = ALLOCATION_PLOT
    figure = f'<figure><img src="{_esc(name)}" alt="{_esc(name)}"><figcaption>{_esc(caption)}</figcaption></figure>'
    return f"<h2>Adaptive allocation</h2><table>{head}{rows}</table>{note}{figure}"


def _share(value) -> str:
    return "—" if value is None else f"{value:.3f}"


def _k_cell(at: AtCost | None, largest: int) -> str:
    """The sample run's k at the search's cost: "5.7", "40.2 (beyond n=16)", "0.5 (below k=1)"."""
    if at is None or at.k is None:
        return "—"
    if at.beyond:
        return f"{at.k:,.1f} (beyond n={largest})"
    return f"{at.k:,.2f} (below k=1)" if at.below else f"{at.k:,.1f}"


def _value_cell(at: AtCost | None) -> str:
    if at is not None and at.beyond:
        return "beyond n"
    return _share(at.value if at is not None else None)


def _cost_cell(value) -> str:
    return "—" if value is None else f"{value:,.0f}" if value < 1e6 else f"{value:.3g}"


def _search_row(c: SearchComparison) -> str:
    accuracy = c.accuracy
    cells = [_share(accuracy.get(name)) for name in ("top", "weighted_vote", "majority", "pass_at_n")]
    largest = max((int(k) for k in search_of(c.baseline).get("ks") or []), default=0) if c.baseline else 0
    for cost, _ in COSTS:
        matched = c.matched.get(cost) or {}
        cells += [_cost_cell(c.cost(cost)), _k_cell(c.k_at(cost), largest)]
        cells += [_value_cell(matched.get(name)) for name, _ in CURVES]
    against = c.baseline.label if c.baseline is not None else " ".join(
        ["no sample run scored by the same PRM on the same problems", f"({c.unmatched})" if c.unmatched else ""]).strip()
    head = f"<td class=l>{_esc(c.run.label)}</td><td class=l>{_esc(shape(c.run))}</td><td class=l>{_esc(against)}</td>"
    return "<tr>" + head + "".join(f"<td>{_esc(cell)}</td>" for cell in cells) + "</tr>"


def search_html(comparisons: list[SearchComparison]) -> str:
    """Each search run's accuracy beside a sample run's at the same generated tokens and FLOPs,
    and the plot; empty without a search run."""
    if not comparisons:
        return ""
    matched = "".join(f"<th colspan=4>at equal {_esc(title)}</th>" for _, title in COSTS)
    head = ("<tr><th class=l rowspan=2>search run</th><th class=l rowspan=2>strategy</th><th class=l rowspan=2>"
            f"compared with</th><th colspan=4>search</th>{matched}</tr><tr>"
            + "".join(f"<th>{name}</th>" for name in ("top", "weighted vote", "majority", "pass@N"))
            + "".join(f"<th>{_esc(title)} per problem</th><th>sample k</th>"
                      + "".join(f"<th>{_esc(name)}</th>" for _, name in CURVES) for _, title in COSTS)
            + "</tr>")
    rows = "".join(_search_row(c) for c in comparisons)
    note = ("<p>top: the share of problems whose best-scored trajectory (sample 0) passes; weighted vote: the answer "
            "with the largest sum of PRM rewards over the N trajectories; majority: the plurality of the N; pass@N: any "
            "of the N. Sample k: the samples per problem of the sample run that cost what the search did (generated "
            "tokens; FLOPs = 2 × parameters × tokens of the policy and of the PRM, prefill left out); its best-of-k by "
            "the same PRM and majority@k there are linear in log2(k) between its measured k. Beyond n: the search "
            "spent more than the sample run's n samples cost, and nothing is extrapolated.</p>")
    name, caption = SEARCH_PLOT
    figure = f'<figure><img src="{_esc(name)}" alt="{_esc(name)}"><figcaption>{_esc(caption)}</figcaption></figure>'
    return f"<h2>Search vs sampling at the same compute</h2><table>{head}{rows}</table>{note}{figure}"


def render_html(runs: list[Run], preface_html: str = "") -> str:
    """The index page: roots and labels, `preface_html` (a sweep's comparison), per-run tables,
    then the plots with captions."""
    roots = "".join(f"<li>{_esc(r.label)}: <code>{_esc(r.store.url(r.store.path()))}</code></li>" for r in runs)
    figure = '<figure><img src="{0}" alt="{0}"><figcaption>{1}</figcaption></figure>'
    figures = "".join(figure.format(_esc(name), _esc(caption)) for name, _, caption in PLOTS)
    tables = "".join(_run_html(r) for r in runs)
    body = f"<h1>Troop report</h1><ul>{roots}</ul>{preface_html}{tables}<h2>Plots</h2>{figures}"
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>Troop report</title>'
            f"<style>{CSS}</style></head><body>{body}</body></html>\n")
