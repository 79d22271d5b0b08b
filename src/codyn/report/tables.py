"""Formatted metric cells shared by the ``codyn eval`` table and the HTML report."""

from __future__ import annotations

import math
from typing import Any

from codyn.evaluate import EvaluationResult


def number(value: float | None, digits: int = 3) -> str:
    """``0.861``; ``n/a`` for None or NaN; scientific notation for tiny non-zero values."""
    if value is None or math.isnan(value):
        return "n/a"
    if value != 0 and abs(value) < 10 ** (-digits):
        return f"{value:.2e}"
    return f"{value:.{digits}f}"


def significant(value: float | None, digits: int = 4) -> str:
    """``0.0004851``: costs span orders of magnitude, so significant digits, not decimals."""
    return "n/a" if value is None or math.isnan(value) else f"{value:.{digits}g}"


def percent(value: float | None) -> str:
    return "n/a" if value is None or math.isnan(value) else f"{100 * value:.1f}%"


def interval(d: dict[str, float]) -> str:
    """``+0.018 [-0.010, +0.047]`` for a bootstrap ``{diff, lo, hi}``."""
    if math.isnan(d["diff"]):
        return "n/a"
    return f"{d['diff']:+.3f} [{d['lo']:+.3f}, {d['hi']:+.3f}]"


def with_reference_column(columns: dict[str, str], result: EvaluationResult) -> dict[str, str]:
    """``columns`` (key -> heading) plus the AIQ difference to the reference router, if any."""
    if result.reference is None:
        return columns
    return {**columns, "aiq_diff_vs_reference": f"AIQ − {result.reference} [95%]"}


def summary_cells(result: EvaluationResult) -> list[dict[str, Any]]:
    """`EvaluationResult.summary` with every metric formatted for display.

    A router whose sweep never reaches the SBS's quality shows ``never`` as its cost to
    match it (n/a is kept for baselines and for data without costs).
    """
    rows = []
    for r in result.summary():
        never = result.cost_known and r["kind"] != "baseline" and math.isnan(r["cost_to_match_sbs"])
        rows.append(
            {
                "name": r["name"],
                "kind": r["kind"],
                "aiq": number(r["aiq"]),
                "q_at_zero": number(r["q_at_zero"]),
                "norm_cost_at_zero": number(r["norm_cost_at_zero"]),
                "apgr": number(r["apgr"]),
                "apgr_integral": number(r["apgr_integral"]),
                "cpt50": percent(r["cpt50"]),
                "cpt80": percent(r["cpt80"]),
                "cost_to_match_sbs": "never" if never else number(r["cost_to_match_sbs"]),
                "codyn_cost_at_sbs_q": number(r["codyn_cost_at_sbs_q"]),
                "best_quality_at_sbs_cost": number(r["best_quality_at_sbs_cost"]),
                "aiq_diff_vs_zero": interval(r["aiq_diff_vs_zero"]),
                "aiq_diff_vs_reference": interval(r["aiq_diff_vs_reference"]),
                "selection_entropy": number(r["selection_entropy"], 2),
            }
        )
    return rows
