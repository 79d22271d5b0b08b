"""The report's figures, drawn with matplotlib's Agg backend from an `EvaluationResult`.

- cost-quality plane (CoDyn Fig. 2, RouterBench): single models as labelled points, the zero
  router's hull, the oracle, the SBS, the random router and random strong/weak mixtures, and
  every router's lambda sweep;
- PGR against the share of strong calls (RouteLLM Fig. 1) with the random band;
- selection share per router at lambda = 0 (CoDyn Fig. 4).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator
from matplotlib.transforms import Bbox

from codyn.evaluate import EvaluationResult, RouterResult
from codyn.metrics.binary import pgr
from codyn.metrics.curves import upper_hull

ORACLE_COLOR = "#222222"
RANDOM_COLOR = "#9a9a9a"
MODEL_COLOR = "#4c72b0"
ROUTER_COLORS = [
    "#dd8452",
    "#55a868",
    "#c44e52",
    "#8172b3",
    "#937860",
    "#da8bc3",
    "#17becf",
    "#ccb974",
    "#7f3c8d",
]
"""Router colours: none of them grey (random) or blue (single models) or black (oracle)."""
LABEL_BOX = {"boxstyle": "square,pad=0.1", "fc": "white", "ec": "none", "alpha": 0.75}
LOG_TICKS = [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0]


def _figure(**kwargs: Any) -> Figure:
    """A figure on its own Agg canvas: no pyplot, so no global backend or state is touched."""
    fig = Figure(layout="constrained", **kwargs)
    FigureCanvasAgg(fig)
    return fig


def short_name(model: str) -> str:
    """``org/name`` -> ``name``: labels stay short, the tables keep the full names."""
    return model.rsplit("/", 1)[-1]


def router_colors(result: EvaluationResult) -> dict[str, str]:
    """One colour per router, the same in every figure."""
    return {n: ROUTER_COLORS[i % len(ROUTER_COLORS)] for i, n in enumerate(result.routers)}


def _segments(xs: Iterable[float], ys: Iterable[float]) -> tuple[np.ndarray, np.ndarray]:
    """Hull vertices with points along each segment, so that the straight (linear-cost)
    mixing segments are drawn as they really run on a log cost axis."""
    x, y = np.asarray(list(xs), dtype=float), np.asarray(list(ys), dtype=float)
    t = np.linspace(0.0, 1.0, 40)[:-1]
    dense_x = [x[i] + t * (x[i + 1] - x[i]) for i in range(len(x) - 1)] + [x[-1:]]
    dense_y = [y[i] + t * (y[i + 1] - y[i]) for i in range(len(y) - 1)] + [y[-1:]]
    return np.concatenate(dense_x), np.concatenate(dense_y)


def _percent(value: float, _pos: int | None = None) -> str:
    return f"{100 * value:g}%"


def _place_labels(ax: Axes, xs: Iterable[float], ys: Iterable[float], labels: list[str]) -> None:
    """Label points without overlaps: per point, the first free spot among a few offsets."""
    fig = ax.figure
    renderer = fig.canvas.get_renderer()  # type: ignore[attr-defined]  (an Agg canvas)
    points = ax.transData.transform(np.column_stack([list(xs), list(ys)]))
    taken = [Bbox.from_bounds(px - 4, py - 4, 8, 8) for px, py in points]
    offsets = [
        (7, 3, "left", "bottom"),
        (7, -3, "left", "top"),
        (-7, 3, "right", "bottom"),
        (-7, -3, "right", "top"),
        (0, 8, "center", "bottom"),
        (0, -8, "center", "top"),
        (12, 10, "left", "bottom"),
        (12, -10, "left", "top"),
        (-12, 10, "right", "bottom"),
        (-12, -10, "right", "top"),
    ]
    frame = ax.get_window_extent(renderer)
    order = np.argsort(points[:, 0])
    for i in order:
        x, y = ax.transData.inverted().transform(points[i])
        best = None
        for dx, dy, ha, va in offsets:
            text = ax.annotate(
                labels[i],
                (x, y),
                xytext=(dx, dy),
                textcoords="offset points",
                ha=ha,
                va=va,
                fontsize=7.5,
                color="#333333",
                bbox=LABEL_BOX,
            )
            box = text.get_window_extent(renderer).expanded(1.05, 1.15)
            inside = frame.containsx(box.x0) and frame.containsx(box.x1)
            inside = inside and frame.containsy(box.y0) and frame.containsy(box.y1)
            if inside and not any(box.overlaps(t) for t in taken):
                best = (text, box)
                break
            text.remove()
        if best is None:  # crowded: put it farther out with a leader line
            text = ax.annotate(
                labels[i],
                (x, y),
                xytext=(18, -16),
                textcoords="offset points",
                fontsize=7.5,
                color="#333333",
                bbox=LABEL_BOX,
                arrowprops={"arrowstyle": "-", "color": "#aaaaaa", "lw": 0.6},
            )
            best = (text, text.get_window_extent(renderer))
        taken.append(best[1])


def cost_quality_figure(result: EvaluationResult) -> Figure:
    """Normalised cost (log) against quality for models, baselines and every router's sweep."""
    fig = _figure(figsize=(10, 6.4))
    ax = fig.subplots()
    top = result.max_cost
    models = result.models
    mc = np.array([m["cost"] for m in models]) / top
    mq = np.array([m["test_q"] for m in models])
    lowest = [mc.min()]
    hull = result.zero_router["hull"]
    if hull:
        hx = [h["norm_cost"] for h in hull] + [1.0]
        hy = [h["quality"] for h in hull] + [hull[-1]["quality"]]
        ax.plot(
            *_segments(hx, hy),
            ls="--",
            lw=1.2,
            color=MODEL_COLOR,
            alpha=0.6,
            label=f"zero router (model hull), AIQ {result.zero_router['aiq']:.3f}",
        )
    rnd = result.random
    if rnd["binary_curve"]:
        c = np.array([p["cost"] for p in rnd["binary_curve"]]) / top
        ax.fill_between(
            c,
            [p["quality_lo"] for p in rnd["binary_curve"]],
            [p["quality_hi"] for p in rnd["binary_curve"]],
            color=RANDOM_COLOR,
            alpha=0.2,
            lw=0,
            label="random strong/weak mixtures (95% band)",
        )
    ax.errorbar(
        rnd["norm_cost"],
        rnd["quality"],
        yerr=[[rnd["quality"] - rnd["quality_lo"]], [rnd["quality_hi"] - rnd["quality"]]],
        xerr=[[(rnd["cost"] - rnd["cost_lo"]) / top], [(rnd["cost_hi"] - rnd["cost"]) / top]],
        fmt="D",
        ms=6,
        color=RANDOM_COLOR,
        capsize=3,
        label=f"random model per prompt, AIQ {rnd['aiq']:.3f}",
    )
    oracle = result.oracle
    ax.plot(
        *_segments(*upper_hull(oracle.curve.costs / top, oracle.curve.qualities)),
        color=ORACLE_COLOR,
        lw=1.4,
        label=f"oracle, AIQ {oracle.aiq:.3f}",
    )
    ax.axhline(oracle.default_quality, color=ORACLE_COLOR, ls=":", lw=0.9)
    ax.axvline(oracle.default_cost / top, color=ORACLE_COLOR, ls=":", lw=0.9)
    lowest.append(float(np.min(oracle.curve.costs)) / top)
    ax.axhline(
        result.sbs["test_q"],
        color=MODEL_COLOR,
        ls="-.",
        lw=0.9,
        label=f"SBS {short_name(result.sbs['model'])} (test q {result.sbs['test_q']:.3f})",
    )
    for (name, r), color in zip(
        result.routers.items(), router_colors(result).values(), strict=True
    ):
        c = r.curve.costs / top
        lowest.append(float(c.min()))
        ax.plot(c, r.curve.qualities, "o-", ms=2.2, lw=0.6, color=color, alpha=0.45)
        line = _segments(*upper_hull(c, r.curve.qualities))
        ax.plot(*line, lw=1.6, color=color, label=f"{name}, AIQ {r.aiq:.3f}")
        ax.plot(
            r.default_cost / top, r.default_quality, "*", ms=11, color=color, mec="white", mew=0.6
        )
        for point in r.points:  # a router's named knobs (the profile router's modes)
            x = point["cost"] / top
            if not np.isfinite(x):
                continue
            ax.plot(x, point["quality"], "P", ms=8, color=color, mec="black", mew=0.6)
            ax.annotate(point["name"], (x, point["quality"]), xytext=(4, -10),
                        textcoords="offset points", fontsize=7, color=color)  # fmt: skip
    ax.scatter(
        mc,
        mq,
        s=36,
        color=MODEL_COLOR,
        zorder=5,
        edgecolor="white",
        linewidth=0.6,
        label="single models",
    )
    ax.set_xscale("log")
    left = max(min(lowest) / 1.5, 1e-4)
    ax.set_xlim(left, 1.35)
    ax.xaxis.set_major_locator(FixedLocator([t for t in LOG_TICKS if t >= left]))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.xaxis.set_major_formatter(FuncFormatter(_percent))
    ax.set_xlabel("mean cost per call, as a share of the most expensive model's (log scale)")
    ax.set_ylabel("quality (mean test score)")
    ax.grid(True, which="major", alpha=0.25)
    ax.set_title("Cost-quality: sweeps (dots; ★ default, ✚ named knobs), hulls (area = AIQ)")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    fig.canvas.draw()
    _place_labels(ax, mc, mq, [short_name(m["name"]) for m in models])
    return fig


def quality_figure(result: EvaluationResult) -> Figure:
    """Without costs: quality of each model and each router's decision at its default knob."""
    rows = [(short_name(m["name"]), m["test_q"], MODEL_COLOR) for m in result.models]
    colors = router_colors(result)
    rows += [(name, r.default_quality, colors[name]) for name, r in result.routers.items()]
    fig = _figure(figsize=(9, 0.32 * len(rows) + 1.6))
    ax = fig.subplots()
    ax.barh(range(len(rows)), [r[1] for r in rows], color=[r[2] for r in rows])
    ax.set_yticks(range(len(rows)), [r[0] for r in rows], fontsize=8)
    ax.invert_yaxis()
    ax.axvline(result.oracle.default_quality, color=ORACLE_COLOR, ls=":", label="oracle")
    ax.axvline(result.sbs["test_q"], color=MODEL_COLOR, ls="-.", label="SBS")
    ax.set_xlabel("quality (mean test score); costs unknown, so no cost axis")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    ax.set_title("Quality of each model and of each router at its default knob", fontsize=10)
    return fig


def pgr_figure(result: EvaluationResult) -> Figure | None:
    """PGR (or quality, when the strong model is not better) against the strong-call share."""
    if result.weak is None:
        return None
    by_name = {m["name"]: m["test_q"] for m in result.models}
    q_strong, q_weak = by_name[result.strong], by_name[result.weak]
    use_pgr = q_strong > q_weak

    def y(q: np.ndarray) -> np.ndarray:
        return np.asarray(pgr(q, q_weak, q_strong)) if use_pgr else q

    fig = _figure(figsize=(8.5, 5.6))
    ax = fig.subplots()
    band = result.random["binary_curve"]
    share = np.array([p["strong_share"] for p in band])
    ax.fill_between(
        share,
        y(np.array([p["quality_lo"] for p in band])),
        y(np.array([p["quality_hi"] for p in band])),
        color=RANDOM_COLOR,
        alpha=0.25,
        lw=0,
        label="random mixture (95% band)",
    )
    ax.plot(
        share,
        y(np.array([p["quality"] for p in band])),
        color=RANDOM_COLOR,
        lw=1.2,
        label=f"random mixture, APGR {result.random['apgr']:.3f}",
    )
    curves: list[tuple[str, RouterResult, str]] = [("oracle", result.oracle, ORACLE_COLOR)]
    colors = router_colors(result)
    curves += [(name, r, colors[name]) for name, r in result.routers.items()]
    for name, r, color in curves:
        if r.pair is not None:
            label = f"{name}, APGR {r.apgr:.3f}" if use_pgr else name
            share, quality = r.pair.strong_share, y(r.pair.sweep.qualities)
            ax.plot(share, quality, "-o", ms=2.5, lw=1.3, color=color, label=label)
    if use_pgr:
        marks = [
            (0.5, "CPT(50%)", ":"),
            (0.8, "CPT(80%)", ":"),
            (0.0, "weak", "-"),
            (1.0, "strong", "-"),
        ]
        for level, text, style in marks:
            ax.axhline(level, color="#aaaaaa", lw=0.8, ls=style)
            ax.text(
                1.005,
                level,
                text,
                fontsize=7,
                va="center",
                color="#777777",
                transform=ax.get_yaxis_transform(),
            )
        ax.set_ylabel("PGR: (q − q_weak) / (q_strong − q_weak)")
    else:
        ax.set_ylabel("quality (strong model not better than weak: PGR undefined)")
    ax.xaxis.set_major_formatter(FuncFormatter(_percent))
    ax.set_xlim(0, 1)
    ax.set_xlabel(f"share of calls to the strong model {short_name(result.strong)}")
    ax.set_title(
        f"Strong {short_name(result.strong)} (q {q_strong:.3f}) vs weak "
        f"{short_name(result.weak)} (q {q_weak:.3f})",
        fontsize=10,
    )
    ax.grid(True, alpha=0.25)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    return fig


def selection_figure(result: EvaluationResult) -> Figure:
    """One small bar chart per router (and the oracle): share of prompts per model at the
    default knob."""
    panels: list[tuple[str, RouterResult, str]] = [("oracle", result.oracle, ORACLE_COLOR)]
    colors = router_colors(result)
    panels += [(name, r, colors[name]) for name, r in result.routers.items()]
    names = [short_name(n) for n in result.model_names]
    cols = min(4, len(panels))
    rows = math.ceil(len(panels) / cols)
    fig = _figure(figsize=(2.3 * cols + 2.0, (0.2 * len(names) + 1.0) * rows + 0.4))
    axes = fig.subplots(rows, cols, sharex=True, sharey=True, squeeze=False)
    for ax, (name, r, color) in zip(axes.flat, panels, strict=False):
        ax.barh(range(len(names)), r.selection_share, color=color)
        for i, share in enumerate(r.selection_share):
            if share > 0:
                ax.text(share + 0.02, i, f"{share:.0%}", va="center", fontsize=6.5)
        ax.set_title(f"{name}\nentropy {r.selection_entropy:.2f}", fontsize=8.5)
        ax.set_xlim(0, 1.15)
        ax.set_xticks([0, 0.25, 0.5, 0.75, 1.0])
        ax.xaxis.set_major_formatter(FuncFormatter(_percent))
        ax.tick_params(labelsize=7.5, labelbottom=True)
        ax.grid(True, axis="x", alpha=0.25)
    for ax in axes.flat[len(panels) :]:
        ax.set_visible(False)
    axes[0, 0].set_yticks(range(len(names)), names)
    axes[0, 0].invert_yaxis()
    fig.suptitle("Share of test prompts routed to each model (default knob)", fontsize=10)
    return fig
