"""The baselines every router is drawn against: the zero router (the hull of the single
models, RouterBench) and a random router (a uniform model per prompt, and RouteLLM's random
strong/weak mixture with its band over seeds). The oracle and the SBS are assessed like
routers (`codyn.evaluate.run`)."""

from __future__ import annotations

from typing import Any

import numpy as np

from codyn.evaluate.context import NAN, Context
from codyn.metrics.binary import apgr, cpt
from codyn.metrics.curves import aiq, upper_hull
from codyn.metrics.stats import random_mixture_curve, random_router

RANDOM_SEEDS = 20


def zero_router(ctx: Context) -> dict[str, Any]:
    """The hull of the single models (RouterBench's "zero router"), on normalised cost."""
    if not ctx.cost_known:
        return {"aiq": NAN, "hull": []}
    q = ctx.score.mean(axis=0)
    hull_c, hull_q = upper_hull(ctx.mean_test_cost / ctx.max_cost, q)
    return {
        "aiq": aiq(ctx.mean_test_cost, q, ctx.max_cost),
        "hull": [
            {"norm_cost": float(c), "quality": float(v)}
            for c, v in zip(hull_c, hull_q, strict=True)
        ],
    }


def random_baseline(ctx: Context) -> dict[str, Any]:
    """Uniform random model per prompt (one point), and a random strong/weak mixture swept
    over the strong share (RouteLLM's random baseline) with the band over seeds."""
    point = random_router(ctx.score, ctx.cost, n_seeds=RANDOM_SEEDS, seed=ctx.seed)
    out: dict[str, Any] = dict(point)
    out["norm_cost"] = point["cost"] / ctx.max_cost if ctx.cost_known else NAN
    out["aiq"] = aiq([point["cost"]], [point["quality"]], ctx.max_cost) if ctx.cost_known else NAN
    if not ctx.cost_known:
        out.update(cost=NAN, cost_lo=NAN, cost_hi=NAN)
    out["binary_curve"] = []
    for key in ("apgr", "apgr_integral", "cpt50", "cpt80", "apgr_lo", "apgr_hi"):
        out[key] = NAN
    out["apgr_integral_lo"] = out["apgr_integral_hi"] = NAN
    if ctx.weak is None:
        return out
    s, w = ctx.strong, ctx.weak
    mix = random_mixture_curve(
        ctx.score[:, s],
        ctx.score[:, w],
        ctx.cost[:, s],
        ctx.cost[:, w],
        shares=np.linspace(0.0, 1.0, ctx.n_points + 1),
        n_seeds=RANDOM_SEEDS,
        seed=ctx.seed,
    )
    if ctx.pair_note is None:
        pair = (ctx.q_weak, ctx.q_strong)
        out["apgr"], out["apgr_integral"], out["cpt50"], out["cpt80"] = _pair_metrics(
            mix["shares"], mix["quality"], *pair
        )
        for end in ("lo", "hi"):  # APGR of the band's edges
            band = _pair_metrics(mix["shares"], mix[f"quality_{end}"], *pair)
            out[f"apgr_{end}"], out[f"apgr_integral_{end}"] = band[:2]
    out["binary_curve"] = [
        {
            "strong_share": float(sh),
            "quality": float(q),
            "quality_lo": float(lo),
            "quality_hi": float(hi),
            "cost": float(c) if ctx.cost_known else NAN,
        }
        for sh, q, lo, hi, c in zip(
            mix["shares"],
            mix["quality"],
            mix["quality_lo"],
            mix["quality_hi"],
            mix["cost"],
            strict=True,
        )
    ]
    return out


def _pair_metrics(
    share: np.ndarray, quality: np.ndarray, q_weak: float, q_strong: float
) -> tuple[float, float, float, float]:
    """APGR (discrete, integral), CPT(50%) and CPT(80%) of a sparse strong-share curve, read
    with interpolation (a mixture realises every share between its points)."""
    args = (share, quality, q_weak, q_strong)
    return (
        apgr(*args, method="discrete", interpolate=True),
        apgr(*args, method="integral", interpolate=True),
        cpt(*args, 0.5, interpolate=True),
        cpt(*args, 0.8, interpolate=True),
    )
