"""The report of one or several runs: five PNG plots and an index.html beside them.

Reads each root's `metrics.json`, `metrics/problems.parquet` and `job.yaml` (the last two are
optional: a foreign pool may lack them) and writes coverage, selection, difficulty, pass-rate
and token-cost plots plus a self-contained HTML page (inline CSS, no scripts) that links the PNGs
by relative name, so the report folder can be copied or served from any store. All I/O goes
through `RunStore`, so roots and the output may be local paths, `s3://...` or `memory://...`.
Figures are plain `matplotlib.figure.Figure` objects: no pyplot, no global state, no backend
switch, so a report can be rendered inside a worker or a test without side effects.
"""

import html
import io
import json
import posixpath
from dataclasses import dataclass

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter, LogFormatter
from omegaconf import OmegaConf

from jobs.errors import StoreError
from jobs.store.root import RunStore

FIGSIZE = (7.0, 4.5)
DPI = 110
METHODS = (  # metrics.json key, legend name, line style
    ("pass_at_k", "pass@k (coverage)", "-"),
    ("majority_at_k", "majority@k", "--"),
    ("best_of_k", "best-of-k", "-."),
    ("weighted_at_k", "weighted@k", ":"),
)
# Never put into labels: the root is what labels replace, and storage options may hold credentials.
IGNORED_KEYS = ("run.root", "run.storage_options")
MAX_VALUE_CHARS = 24


@dataclass
class Run:
    """One root as the report sees it."""

    store: RunStore
    label: str
    metrics: dict
    pass_rates: np.ndarray | None  # per-problem pass rates, None without metrics/problems.parquet


# Loading.


def load_metrics(store: RunStore) -> dict:
    """The root's metrics.json; a root without one is a user mistake with a known fix."""
    if not store.exists(store.metrics_json):
        raise StoreError(f"{store.root} has no metrics.json: run troop metrics {store.root} first")
    return json.loads(store.read_text(store.metrics_json))


def _read_optional(store: RunStore, path: str) -> str | None:
    return store.read_text(path) if store.exists(path) else None


def _pass_rates(store: RunStore) -> np.ndarray | None:
    path = store.path("metrics", "problems.parquet")
    if not store.exists(path):
        return None
    column = store.read_table(path, ["pass_rate"])["pass_rate"]
    return column.to_numpy(zero_copy_only=False).astype(np.float64)


def root_names(roots: list[str]) -> list[str]:
    """The shortest path suffixes that tell the roots apart: "run" for one, "a/run", "b/run"
    for two roots that both end in "run"."""
    parts = [root.rstrip("/").split("/") for root in roots]
    for depth in range(1, max(len(p) for p in parts) + 1):
        names = ["/".join(p[-depth:]) for p in parts]
        if len(set(names)) == len(names):
            return names
    return list(roots)


def load_runs(roots: list[RunStore], labels: list[str] | None = None) -> list[Run]:
    """Every root's metrics (failing fast on the first without), with its legend label."""
    metrics = [load_metrics(store) for store in roots]
    if labels is None:
        fallback = root_names([store.root for store in roots])
        # One root has nothing to compare its config with: no need to read it.
        yamls = [_read_optional(store, store.job_yaml) for store in roots] if len(roots) > 1 else []
        labels = config_labels(yamls, fallback)
    if len(labels) != len(roots):
        raise ValueError(f"{len(labels)} labels for {len(roots)} roots")
    return [Run(s, lab, m, _pass_rates(s)) for s, lab, m in zip(roots, labels, metrics)]


# Labels from config differences.


def flatten(tree, prefix: str = "") -> dict:
    """A nested dict as {dotted.key: leaf}; lists and empty dicts are leaves."""
    if not isinstance(tree, dict) or not tree:
        return {prefix: tree} if prefix else {}
    flat = {}
    for key, value in tree.items():
        flat.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    return flat


def _parse_yaml(text: str) -> dict:
    # resolve=False: a label needs the written value, and a dangling ${...} must not fail a report.
    return flatten(OmegaConf.to_container(OmegaConf.create(text), resolve=False))


def _short(value) -> str:
    """A config value as a legend shows it: YAML spelling, paths by basename, long values cut."""
    if isinstance(value, bool) or value is None:
        text = json.dumps(value)
    else:
        text = str(value)
    if "/" in text.rstrip("/"):
        text = posixpath.basename(text.rstrip("/"))
    return text if len(text) <= MAX_VALUE_CHARS else text[: MAX_VALUE_CHARS - 1] + "…"


def _ignored(key: str) -> bool:
    return any(key == k or key.startswith(k + ".") for k in IGNORED_KEYS)


def config_labels(yaml_texts: list[str | None], fallback: list[str]) -> list[str]:
    """One label per run: "key=value, ..." over the config keys whose values differ between the
    runs; `fallback` when a config is missing, nothing differs, or labels would not be unique."""
    if len(yaml_texts) < 2 or any(text is None for text in yaml_texts):
        return list(fallback)
    configs = [_parse_yaml(text) for text in yaml_texts]
    keys = sorted({key for config in configs for key in config if not _ignored(key)})
    missing = object()  # a key only some runs have differs too: those without show "unset"
    differ = [k for k in keys if len({repr(c.get(k, missing)) for c in configs}) > 1]
    labels = [", ".join(f"{k}={_short(c[k]) if k in c else 'unset'}" for k in differ) for c in configs]
    if not differ or len(set(labels)) < len(labels):
        return list(fallback)
    return labels


# Reading curves out of metrics.json (any of them may be missing or null).


def curve(metrics: dict, name: str) -> tuple[np.ndarray, np.ndarray]:
    """(ks, values) of one {k: value} curve, sorted by k; empty when absent."""
    points = sorted((int(k), float(v)) for k, v in (metrics.get(name) or {}).items() if v is not None)
    return np.array([k for k, _ in points]), np.array([v for _, v in points])


def interval(metrics: dict, name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(ks, low, high) of a curve's 95% interval; empty when absent."""
    entries = ((metrics.get("ci") or {}).get(name) or {}).items()
    points = sorted((int(k), float(v[0]), float(v[1])) for k, v in entries if v is not None and None not in v)
    return tuple(np.array([p[i] for p in points]) for i in range(3))


def tokens_per_sample(metrics: dict) -> float | None:
    cost = metrics.get("cost") or {}
    if cost.get("tokens_per_sample"):
        return float(cost["tokens_per_sample"])
    counts = metrics.get("counts") or {}
    return counts["tokens"] / counts["samples"] if counts.get("tokens") and counts.get("samples") else None


def has_fit(metrics: dict) -> bool:
    fit = metrics.get("fit") or {}
    return fit.get("a") is not None and fit.get("b") is not None


# Figures.


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
        for i, (name, title, style) in enumerate(METHODS):
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


def _save(fig: Figure, out: RunStore, name: str) -> None:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    fig.clear()  # a Figure outside pyplot is freed by the garbage collector; clear drops its artists now
    out.write_bytes(out.path(name), buf.getvalue())


# HTML.

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
    names = [(n, f"{t} by {score}" if n == "best_of_k" and score else t) for n, t, _ in METHODS if metrics.get(n)]
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


def write_report(roots: list[RunStore], out: RunStore, labels: list[str] | None = None, preface_html: str = "") -> str:
    """Writes out.path("index.html") and the PNGs beside it; returns the index.html path."""
    if not roots:
        raise ValueError("write_report needs at least one root")
    runs = load_runs(roots, labels)
    for name, plot, _ in PLOTS:
        _save(plot(runs), out, name)
    index = out.path("index.html")
    out.write_text(index, render_html(runs, preface_html))
    return index
