"""The report's five figures: coverage, selection, difficulty, pass rates and token cost; one
more where a run allocated its samples adaptively (problems solved against samples spent), and
one where a run searched step by step (accuracy against compute, beside sampling's).

Figures are plain `matplotlib.figure.Figure` objects: no pyplot, no global state, no backend
switch, so a report can be rendered inside a worker or a test without side effects.
"""

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter, LogFormatter

from jobs.report.allocation import AdaptiveRun, EqualCoverage, SolvedCurve
from jobs.report.runs import Run, curve, has_fit, interval, tokens_per_sample
from jobs.report.search import CURVES, SearchComparison, baseline_curve, shape

FIGSIZE = (7.0, 4.5)
METHODS = (  # metrics.json key, legend name, line style
    ("pass_at_k", "pass@k (coverage)", "-"),
    ("majority_at_k", "majority@k", "--"),
    ("best_of_k", "best-of-k", "-."),
    ("weighted_at_k", "weighted@k", ":"),
)
# Where a reward model scored the pool: the selection comparison replaces the generic pair.
REWARD_METHODS = (
    ("pass_at_k", "pass@k (coverage)", "-"),
    ("majority_at_k", "majority@k", "--"),
    ("best_of_k_logprob", "best-of-k by log-prob", "-."),
    ("best_of_k_reward", "best-of-k by reward", "-"),
    ("weighted_at_k_reward", "weighted@k by reward", ":"),
)


def _figure(columns: int = 1, extra_height: float = 0.0) -> tuple[Figure, list]:
    width = FIGSIZE[0] if columns == 1 else min(5.0 * columns, 16.0)
    fig = Figure(figsize=(width, FIGSIZE[1] + extra_height), layout="constrained")
    axes = fig.subplots(1, columns, sharey=True, squeeze=False)[0]
    return fig, list(axes)


def _log2_k_axis(ax, label: str = "k (samples per problem)") -> None:
    ax.set_xscale("log", base=2)
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:.0f}" if x >= 1 else f"{x:g}"))
    ax.set_xlabel(label)
    ax.grid(True, which="major", alpha=0.3)


def _band(ax, metrics: dict, name: str, color: str, alpha: float = 0.2) -> None:
    ks, low, high = interval(metrics, name)
    if ks.size:
        ax.fill_between(ks, low, high, color=color, alpha=alpha, linewidth=0)


def _fit_lines(ax, run: Run, color: str) -> None:
    """The fitted curve over the measured ks (dashed), continued dotted to the forecast horizon."""
    fit = run.metrics.get("fit") or {}
    ks, _ = curve(run.metrics, "pass_at_k")
    if not has_fit(run.metrics) or not ks.size:
        return
    a, b = fit["a"], fit["b"]
    measured = np.geomspace(ks.min(), ks.max(), 100)
    ax.plot(measured, np.exp(a * measured**b), "--", color=color)
    horizon = max((int(k) for k in fit.get("forecast") or {}), default=0)
    if horizon > ks.max():
        ahead = np.geomspace(ks.max(), horizon, 100)
        ax.plot(ahead, np.exp(a * ahead**b), ":", color=color, linewidth=2)
        ax.plot(*curve(fit, "forecast"), "o", mfc="none", color=color)


def _fit_label(run: Run) -> str:
    fit = run.metrics.get("fit") or {}
    if not has_fit(run.metrics):
        return f"{run.label}: no fit"
    rmse = f", rmse={fit['rmse']:.3f}" if fit.get("rmse") is not None else ""
    return f"{run.label}: a={fit['a']:.3f}, b={fit['b']:.3f}{rmse}"


def _coverage_legends(ax, runs: list[Run]) -> None:
    """Colour names the run (with its fit), line style what a line is: two short legends
    instead of four entries per run, which buried the curves with two runs."""
    per_run = [Line2D([], [], color=f"C{i}", marker="o", label=_fit_label(run)) for i, run in enumerate(runs)]
    # Below the axes: a run legend inside sat on the upper curves and their bands.
    ax.figure.legend(handles=per_run, title="run: fit exp(a·k^b)", fontsize="small", title_fontsize="small",
                     loc="outside lower center", ncols=1 if len(runs) < 3 else 2)
    grey, fits = "0.35", [run.metrics["fit"] for run in runs if has_fit(run.metrics)]
    styles = [(True, Line2D([], [], color=grey, marker="o", label="pass@k (measured)")),
              (any(interval(r.metrics, "pass_at_k")[0].size for r in runs),
               Patch(color=grey, alpha=0.25, linewidth=0, label="95% CI")),
              (bool(fits), Line2D([], [], color=grey, linestyle="--", label="fit exp(a·k^b)")),
              (any(fit.get("forecast") for fit in fits),
               Line2D([], [], color=grey, linestyle=":", linewidth=2, marker="o", mfc="none", label="forecast (fit)"))]
    ax.legend(handles=[handle for shown, handle in styles if shown], fontsize="small", loc="lower right")


def plot_coverage(runs: list[Run]) -> Figure:
    fig, (ax,) = _figure(extra_height=0.5 + 0.2 * len(runs))  # room for the run legend below
    for i, run in enumerate(runs):
        ks, ys = curve(run.metrics, "pass_at_k")
        ax.plot(ks, ys, "o-", color=f"C{i}")
        _band(ax, run.metrics, "pass_at_k", f"C{i}")
        _fit_lines(ax, run, f"C{i}")
    _log2_k_axis(ax)
    ax.set_ylim(0, 1.02)
    ax.set(ylabel="coverage (pass@k)", title="Coverage vs samples per problem")
    _coverage_legends(ax, runs)
    return fig


def plot_selection(runs: list[Run]) -> Figure:
    fig, axes = _figure(len(runs))
    for ax, run in zip(axes, runs):
        score = run.metrics.get("score")
        for i, (name, title, style) in enumerate(REWARD_METHODS if "best_of_k_reward" in run.metrics else METHODS):
            ks, ys = curve(run.metrics, name)
            if ks.size:
                shown = f"{title} by {score}" if name == "best_of_k" and score else title
                ax.plot(ks, ys, style, marker="o", markersize=3, color=f"C{i}", label=shown)
                # Fainter bands for the selection methods: they overlap each other.
                _band(ax, run.metrics, name, f"C{i}", 0.2 if name == "pass_at_k" else 0.1)
        _log2_k_axis(ax)
        ax.set_title(run.label if len(runs) > 1 else "Selection: coverage and picking one answer of k")
        ax.legend(fontsize="small", loc="upper left")  # all methods start at pass@1: empty up there
    axes[0].set_ylabel("accuracy (shaded: 95% CI)")
    if len(runs) > 1:
        fig.suptitle("Selection: coverage and picking one answer of k")
    return fig


def _difficulty_axes(ax, run: Run, with_title: bool) -> None:
    difficulty = run.metrics.get("difficulty") or {}
    bins = [b for b in difficulty.get("bins") or [] if b.get("problems")]
    # Bins are ordered hard to easy: a sequential map shows the order (its pale yellow end cut off).
    colors = colormaps["viridis"](np.linspace(0.0, 0.85, max(len(bins), 2)))
    for color, bin_ in zip(colors, bins):
        ks, ys = curve(bin_, "pass_at_k")
        ax.plot(ks, ys, "o-", markersize=3, color=color, label=f"{bin_['label']} (n={bin_['problems']})")
    _log2_k_axis(ax)
    never, always = difficulty.get("never_solved"), difficulty.get("always_solved")
    shares = f"never solved {never:.0%}, always solved {always:.0%}" if None not in (never, always) else ""
    ax.set_title(f"{run.label}\n{shares}" if with_title else shares, fontsize="medium")
    if bins:
        ax.legend(fontsize="x-small", title="pass@1 bin", title_fontsize="x-small", loc="best")
    else:
        ax.text(0.5, 0.5, "no difficulty bins in metrics.json", ha="center", va="center", transform=ax.transAxes)


def plot_difficulty(runs: list[Run]) -> Figure:
    fig, axes = _figure(len(runs))
    for ax, run in zip(axes, runs):
        _difficulty_axes(ax, run, with_title=len(runs) > 1)
    axes[0].set_ylabel("pass@k within the bin")
    axes[0].set_ylim(0, 1.02)
    fig.suptitle("Coverage by problem difficulty (binned by pass@1)")
    return fig


def plot_pass_rates(runs: list[Run]) -> Figure:
    fig, (ax,) = _figure()
    edges = np.linspace(0.0, 1.0, 21)
    notes = []
    for i, run in enumerate(runs):
        rates = run.pass_rates
        if rates is None or not rates.size:
            notes.append(f"{run.label}: no metrics/problems.parquet")
            continue
        weights = np.full(rates.size, 1.0 / rates.size)  # shares, so roots of any size compare
        ax.hist(rates, bins=edges, weights=weights, histtype="step" if len(runs) > 1 else "stepfilled",
                color=f"C{i}", alpha=1.0 if len(runs) > 1 else 0.6, linewidth=1.5, label=run.label)
        # The end bins mix "exactly 0/1" with "almost": mark the exact shares separately.
        zero, one = float(np.mean(rates == 0.0)), float(np.mean(rates == 1.0))
        ax.plot([0.0, 1.0], [zero, one], "D", color=f"C{i}", markersize=7, clip_on=False)
        notes.append(f"{run.label}: {zero:.0%} never solved (rate 0), {one:.0%} always (rate 1)")
    ax.set_xlim(-0.02, 1.02)
    low, high = ax.get_ylim()
    ax.set_ylim(low, high * (1.12 + 0.08 * len(notes)))  # headroom: the notes sit above the bars
    ax.set(xlabel="per-problem pass rate (passed / n)", ylabel="share of problems",
           title="Per-problem pass rates (bins of 0.05; ◆ = exactly 0 or 1)")
    empty = all(run.pass_rates is None or not run.pass_rates.size for run in runs)
    box = {"boxstyle": "round", "facecolor": "white", "alpha": 0.85}
    ax.text(0.5, 0.5 if empty else 0.97, "\n".join(notes), transform=ax.transAxes, ha="center",
            va="center" if empty else "top", fontsize="small", bbox=box)
    if len(runs) > 1:
        ax.legend(fontsize="small", loc="center right")
    return fig


def _si(x: float) -> str:
    for factor, prefix in ((1e18, "E"), (1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if x >= factor:
            return f"{x / factor:.3g}{prefix}"
    return f"{x:.3g}"


class _SIFormatter(LogFormatter):
    """matplotlib's choice of which log ticks to label, written 30, 200, 5k, 1G instead of 3×10^1."""

    def __call__(self, x, pos=None):
        return _si(x) if super().__call__(x, pos) else ""


def _si_log_axis(axis) -> None:
    axis.set_major_formatter(_SIFormatter())
    axis.set_minor_formatter(_SIFormatter(labelOnlyBase=False))


def _common_flops(runs: list[Run]) -> list[float] | None:
    flops = [(run.metrics.get("cost") or {}).get("flops_per_token") for run in runs]
    return None if any(f is None for f in flops) else [float(f) for f in flops]


def _token_lines(ax, runs: list[Run], scale: list[float]) -> None:
    for i, (run, factor) in enumerate(zip(runs, scale)):
        ks, ys = curve(run.metrics, "pass_at_k")
        per_sample = tokens_per_sample(run.metrics)
        if per_sample and ks.size:
            ax.plot(ks * per_sample * factor, ys, "o-", color=f"C{i}", label=run.label)
    ax.set_xscale("log")
    _si_log_axis(ax.xaxis)
    ax.grid(True, which="major", alpha=0.3)
    if len(runs) > 1:
        ax.legend(fontsize="small", loc="lower right")


def plot_tokens(runs: list[Run]) -> Figure:
    """Coverage against generation cost; a FLOPs axis when every run knows its FLOPs per token:
    a second scale on top when they share it, else a second panel (one token axis would lie)."""
    flops = _common_flops(runs)
    shared = flops is not None and len(set(flops)) == 1
    fig, axes = _figure(2 if flops and not shared else 1)
    _token_lines(axes[0], runs, [1.0] * len(runs))
    axes[0].set(xlabel="expected generated tokens per problem (k × tokens per sample)",
                ylabel="coverage (pass@k)")
    axes[0].set_ylim(0, 1.02)
    if shared:
        top = axes[0].secondary_xaxis("top", functions=(lambda x: x * flops[0], lambda x: x / flops[0]))
        _si_log_axis(top.xaxis)
        top.set_xlabel("generation FLOPs per problem")
    elif flops:
        _token_lines(axes[1], runs, flops)
        axes[1].set_xlabel("generation FLOPs per problem")
    fig.suptitle("Coverage vs generation cost")
    return fig


PLOTS = (  # file name, figure, caption
    ("coverage.png", plot_coverage, "Coverage (pass@k) against the number of samples per problem, with its 95% "
     "interval, the fitted exp(a·k^b) curve and its forecast (an extrapolation, not a measurement)."),
    ("selection.png", plot_selection, "How much of the coverage survives when one answer must be picked: "
     "majority vote, best-of-k by the score, and score-weighted vote against pass@k."),
    ("difficulty.png", plot_difficulty, "Coverage within groups of problems binned by their pass@1, "
     "with the shares of problems never and always solved."),
    ("pass_rates.png", plot_pass_rates, "Distribution of per-problem pass rates; the diamonds mark the "
     "shares of problems with a pass rate of exactly 0 (never solved) and exactly 1 (always solved)."),
    ("tokens.png", plot_tokens, "Coverage against the expected number of generated tokens per problem "
     "(and FLOPs where the model size is known)."),
)


def _uniform_line(ax, uniform: SolvedCurve, color: str, label: str, measured: bool) -> None:
    """Drawn densely, so that on the log axis the line is the linear interpolation between the
    points that the equal-coverage number uses, not the straight chords a plain plot would draw."""
    if not uniform.samples.size:
        return
    xs = np.geomspace(uniform.samples[0], uniform.samples[-1], 200)
    ax.plot(xs, np.interp(xs, uniform.samples, uniform.solved), "--", color=color, label=label)
    if measured:  # a measured curve's points are its pass@k; an expected curve has one per k, a blur
        ax.plot(uniform.samples, uniform.solved, "o", mfc="none", color=color)


def _equal_coverage_mark(ax, equal: EqualCoverage, color: str) -> None:
    """The adaptive run's final point joined to where the uniform curve solves as many, with the ratio."""
    if equal.uniform_samples is None or equal.uniform_samples <= 0:
        return
    ax.plot([equal.adaptive_samples, equal.uniform_samples], [equal.solved] * 2, ":", color=color, linewidth=1)
    ax.plot([equal.uniform_samples], [equal.solved], "x", color=color)
    # Below and left of the ×: to its right it would leave the axes when uniform needs all it drew.
    ax.annotate(f"{equal.ratio:.2f}x", (equal.uniform_samples, equal.solved), xytext=(-4, -14), ha="right",
                textcoords="offset points", fontsize="small", color=color)


def plot_allocation(adaptive: list[AdaptiveRun], against: SolvedCurve | None = None) -> Figure:
    """Problems solved against samples spent: each adaptive run's rounds against its own
    expected uniform curve (same colour, dashed), or against one measured uniform run (grey)."""
    several = len(adaptive) > 1
    fig, (ax,) = _figure(extra_height=0.5 + 0.2 * len(adaptive) if several else 0.0)  # room for the legend below
    for i, a in enumerate(adaptive):
        color = f"C{i}"
        ax.plot(a.curve.samples, a.curve.solved, "o-", color=color,
                label=a.run.label if several else f"{a.equal.policy} (adaptive)")
        if against is None:
            _uniform_line(ax, a.uniform, color, f"{a.run.label}: {a.uniform.label}" if several else a.uniform.label,
                          measured=False)
        _equal_coverage_mark(ax, a.equal, color)
    if against is not None:
        _uniform_line(ax, against, "0.35", against.label, measured=True)
    ax.set_xscale("log")
    _si_log_axis(ax.xaxis)
    ax.grid(True, which="major", alpha=0.3)
    ax.set_ylim(0, 1.02)
    ax.set(xlabel="samples spent (over all problems)", ylabel="share of problems solved",
           title="Problems solved vs samples spent")
    if several:  # long config labels: below the axes, as the coverage plot's run legend
        fig.legend(fontsize="small", loc="outside lower center", ncols=1)
    else:
        ax.legend(fontsize="small", loc="lower right")
    return fig


ALLOCATION_PLOT = ("allocation.png", ("Problems solved against samples spent: the adaptive run after each of its "
                                      "rounds, against uniform sampling (every problem the same number of samples). "
                                      "×: where uniform sampling solves as many problems as the adaptive run did in "
                                      "the end."))


def search_cost(comparisons: list[SearchComparison]) -> str:
    """The x axis of the search plot: FLOPs where every run knows them, else generated tokens."""
    baselines = [c.baseline for c in comparisons if c.baseline is not None]
    known = all(c.cost("flops_per_problem") is not None for c in comparisons) and all(
        baseline_curve(b, "flops_per_problem", "best_of_k")[1] is not None for b in baselines)
    return "flops_per_problem" if known else "policy_tokens_per_problem"


def _sample_lines(ax, baselines: list[Run], cost: str) -> None:
    """Each sample run's best-of-k (PRM) and majority@k against its cost at k, k written at the points."""
    for j, baseline in enumerate(baselines):
        for (name, title), style in zip(CURVES, ("-", "--")):
            ks, costs, values = baseline_curve(baseline, cost, name)
            points = [(k, x, y) for k, x, y in zip(ks, costs or [], values or []) if x and y is not None]
            if not points:
                continue
            label = f"{baseline.label}: {title}" if len(baselines) > 1 else f"sampling: {title}"
            ax.plot([x for _, x, _ in points], [y for _, _, y in points], style, marker="o", markersize=3,
                    color="0.25" if name == "best_of_k" else "0.6", linewidth=1.5 + j, label=label)
            if name == "best_of_k":
                for k, x, y in points:
                    ax.annotate(f"k={k}", (x, y), xytext=(0, 5), textcoords="offset points", ha="center",
                                fontsize="x-small", color="0.35")


def plot_search(comparisons: list[SearchComparison]) -> Figure:
    """Accuracy against compute per problem: the sample runs' best-of-k by the PRM and majority@k
    over k (grey lines), each search run's top trajectory (★) and PRM-weighted vote (◆)."""
    cost = search_cost(comparisons)
    fig, (ax,) = _figure(extra_height=0.4 + 0.15 * len(comparisons))  # room for the legend below
    baselines = list({id(c.baseline): c.baseline for c in comparisons if c.baseline is not None}.values())
    _sample_lines(ax, baselines, cost)
    for i, c in enumerate(comparisons):
        x, color = c.cost(cost), f"C{i}"
        if not x:
            continue
        top, vote = c.accuracy.get("top"), c.accuracy.get("weighted_vote")
        if top is not None:
            ax.plot([x], [top], "*", markersize=13, color=color, label=f"{c.run.label} ({shape(c.run)}): top")
            ax.annotate(shape(c.run), (x, top), xytext=(0, 9), textcoords="offset points", ha="center",
                        fontsize="small", color=color)
        if vote is not None:
            ax.plot([x], [vote], "D", markersize=7, mfc="none", color=color, label=f"{c.run.label}: weighted vote")
    ax.set_xscale("log")
    ax.margins(x=0.1)  # the labels of the outermost markers stay inside
    _si_log_axis(ax.xaxis)
    ax.grid(True, which="major", alpha=0.3)
    ax.set_ylim(0, 1.02)
    flops = cost == "flops_per_problem"
    ax.set(xlabel="FLOPs per problem (policy + PRM)" if flops else "generated tokens per problem (FLOPs unknown)",
           ylabel="accuracy", title="Search vs sampling at the same compute")
    fig.legend(fontsize="small", loc="outside lower center", ncols=2)
    return fig


SEARCH_PLOT = ("search.png", ("Accuracy against compute per problem (FLOPs: 2 × parameters × tokens of the policy and "
                              "of the PRM; generated tokens where a model's size is unknown): independent samples' "
                              "best-of-k by the PRM and majority@k over k (grey), each step-level search's top "
                              "trajectory (★) and PRM-weighted vote over its N trajectories (◆), labelled kind "
                              "N=trajectories/M=beam."))
