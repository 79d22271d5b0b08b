"""The table of metrics: key, heading, format, description and how each is computed.

``EvaluationResult.summary``, the JSON of ``codyn eval --json``, the ``codyn eval`` table and
the HTML report all read `METRICS`, so a new metric is one row here (its formula lives in
`codyn.metrics`, a pure function with a hand-worked test).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from codyn.evaluate.context import NAN, Context
from codyn.metrics.binary import apgr, cpt
from codyn.metrics.curves import aiq
from codyn.metrics.quality_cost import (
    best_quality_within,
    chosen_cells,
    cost_to_match,
    normalised_cost,
    selection_entropy,
)
from codyn.metrics.stats import paired_bootstrap_aiq_cells

if TYPE_CHECKING:
    from codyn.evaluate.results import RouterResult

Format = Literal["number", "percent", "interval", "ratio", "entropy"]


@dataclass(frozen=True)
class Metric:
    """One column: ``compute(result, context)`` gives the value (None: filled by `evaluate`)."""

    key: str
    heading: str
    format: Format
    description: str
    compute: Callable[[RouterResult, Context], Any] | None
    in_table: bool = True
    """Shown in ``codyn eval``'s table (the report shows every metric)."""

    def cell(self, value: Any, *, never: bool = False) -> str:
        """The value formatted for a table; ``never`` marks a target the sweep never reached."""
        if self.format == "interval":
            return interval(value)
        if self.format == "percent":
            return percent(value)
        if self.format == "ratio" and never and _nan(value):
            return "never"
        return number(value, 2 if self.format == "entropy" else 3)


def number(value: float | None, digits: int = 3) -> str:
    """``0.861``; ``n/a`` for None or NaN; scientific notation for tiny non-zero values."""
    if _nan(value):
        return "n/a"
    assert value is not None
    if abs(value) < 1e-12:  # rounding noise of a difference (1 - 1 = 2e-16), not a value
        value = 0.0
    if value != 0 and abs(value) < 10 ** (-digits):
        return f"{value:.2e}"
    return f"{value:.{digits}f}"


def significant(value: float | None, digits: int = 4) -> str:
    """``0.0004851``: costs span orders of magnitude, so significant digits, not decimals."""
    return "n/a" if _nan(value) else f"{value:.{digits}g}"


def percent(value: float | None) -> str:
    return "n/a" if _nan(value) else f"{100 * value:.1f}%"  # type: ignore[operator]


def interval(d: dict[str, float] | tuple[float, float, float]) -> str:
    """``+0.018 [-0.010, +0.047]`` for a bootstrap ``{diff, lo, hi}`` (or a tuple)."""
    diff, lo, hi = (d["diff"], d["lo"], d["hi"]) if isinstance(d, dict) else d
    if _nan(diff):
        return "n/a"
    return f"{diff:+.3f} [{lo:+.3f}, {hi:+.3f}]"


def _nan(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


# -- how each metric is computed -------------------------------------------------------------


def _aiq(r: RouterResult, ctx: Context) -> float:
    return aiq(r.curve.costs, r.curve.qualities, ctx.max_cost) if ctx.cost_known else NAN


def _match_point(r: RouterResult, ctx: Context) -> int | None:
    """The cheapest sweep point reaching the SBS's test quality (best quality among equals)."""
    match = cost_to_match(r.curve.costs, r.curve.qualities, ctx.sbs_q)
    if not (ctx.cost_known and np.isfinite(match)):
        return None
    at = np.flatnonzero(r.curve.costs == match)
    return int(at[np.argmax(r.curve.qualities[at])])


def _cost_to_match_sbs(r: RouterResult, ctx: Context) -> float:
    point = _match_point(r, ctx)
    return NAN if point is None else float(r.curve.costs[point] / ctx.sbs_cost)


def _codyn_cost_at_sbs_q(r: RouterResult, ctx: Context) -> float:
    point = _match_point(r, ctx)
    if point is None:
        return NAN
    return normalised_cost(r.curve.calls_at(point, ctx.score.shape[1]), ctx.mean_test_cost)


def _best_quality_at_sbs_cost(r: RouterResult, ctx: Context) -> float:
    if not ctx.cost_known:
        return NAN
    return best_quality_within(r.curve.costs, r.curve.qualities, ctx.sbs_cost)


def _pair_defined(r: RouterResult, ctx: Context) -> bool:
    return r.pair is not None and ctx.pair_note is None and not r.pair.constant


def _on_pair(read: Callable[..., float]) -> Callable[[RouterResult, Context], float]:
    """A strong/weak metric read on the router's exact per-prompt curve (NaN where the pair
    makes it meaningless: see `Context.pair_note` and `PairCurve.constant`)."""

    def compute(r: RouterResult, ctx: Context) -> float:
        if r.pair is None or ctx.pair_note is not None or r.pair.constant:
            return NAN
        return read(r.pair.exact_share, r.pair.exact_quality, ctx.q_weak, ctx.q_strong)

    return compute


def _aiq_diff_vs_zero(r: RouterResult, ctx: Context) -> tuple[float, float, float]:
    if not ctx.cost_known:
        return (NAN, NAN, NAN)
    return paired_bootstrap_aiq_cells(
        *r.curve.outcomes(ctx),
        *chosen_cells(ctx.zero_choices, ctx.score, ctx.cost),
        ctx.max_cost,
        n_boot=ctx.n_boot,
        seed=ctx.seed,
    )


METRICS: tuple[Metric, ...] = (
    Metric(
        "aiq",
        "AIQ",
        "number",
        "area under the non-decreasing cost-quality hull of the knob sweep, over cost / the "
        "most expensive model's mean test cost (RouterBench)",
        _aiq,
    ),
    Metric(
        "q_at_default",
        "q@default",
        "number",
        "quality at the policy's default knob (utility: lambda = 0, quality only)",
        lambda r, ctx: r.default_quality,
    ),
    Metric(
        "norm_cost_at_default",
        "norm cost@default",
        "number",
        "mean cost at the default knob / the most expensive model's",
        lambda r, ctx: r.default_cost / ctx.max_cost,
        in_table=False,
    ),
    Metric(
        "apgr",
        "APGR",
        "number",
        "average performance gap recovered at 10%..100% strong calls (RouteLLM eq. 8), on the "
        "strong/weak pair",
        _on_pair(lambda *curve: apgr(*curve, method="discrete")),
    ),
    Metric(
        "apgr_integral",
        "APGR integral",
        "number",
        "the integral of PGR over the strong-call share (RouteLLM eq. 7)",
        _on_pair(lambda *curve: apgr(*curve, method="integral")),
        in_table=False,
    ),
    Metric(
        "cpt50",
        "CPT50",
        "percent",
        "least share of strong calls with PGR >= 50%",
        _on_pair(lambda *c: cpt(*c, 0.5)),
    ),
    Metric(
        "cpt80",
        "CPT80",
        "percent",
        "least share of strong calls with PGR >= 80%",
        _on_pair(lambda *c: cpt(*c, 0.8)),
    ),
    Metric(
        "cost_to_match_sbs",
        "cost→SBS q",
        "ratio",
        "cheapest sweep point with q >= the SBS's test q, as a fraction of the SBS's cost "
        "('never' if no point reaches it)",
        _cost_to_match_sbs,
    ),
    Metric(
        "codyn_cost_at_sbs_q",
        "CoDyn cost @ SBS q",
        "number",
        "CoDyn eq. 2 normalised cost of that point",
        _codyn_cost_at_sbs_q,
        in_table=False,
    ),
    Metric(
        "best_quality_at_sbs_cost",
        "best q≤SBS cost",
        "number",
        "best quality among sweep points costing at most the SBS",
        _best_quality_at_sbs_cost,
    ),
    Metric(
        "aiq_diff_vs_zero",
        "AIQ − zero [95%]",
        "interval",
        "AIQ minus the zero router's (the hull of the single models), paired bootstrap over "
        "test prompts",
        _aiq_diff_vs_zero,
    ),
    Metric(
        "aiq_diff_vs_reference",
        "AIQ − reference [95%]",
        "interval",
        "AIQ minus the reference router's, paired bootstrap over test prompts",
        None,
    ),
    Metric(
        "selection_entropy",
        "selection entropy",
        "entropy",
        "normalised entropy of the models chosen at the default knob (CoDyn RQ3: 0 = one "
        "model, 1 = uniform)",
        lambda r, ctx: selection_entropy(r.selection_share),
        in_table=False,
    ),
)
METRIC_KEYS = tuple(m.key for m in METRICS)
INTERVAL_KEYS = tuple(m.key for m in METRICS if m.format == "interval")
