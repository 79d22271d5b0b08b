"""Baselines and uncertainty: random routers and bootstrap intervals over prompts.

Test sets are small (100-500 prompts), so a difference of a few points between routers can
be noise; these functions say how much. All randomness comes from ``numpy.random
.default_rng(seed)``: the same seed gives the same numbers.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypedDict

import numpy as np
from numpy.typing import ArrayLike, NDArray

from codyn.metrics.curves import aiq
from codyn.metrics.quality_cost import chosen_cells

FloatArray = NDArray[np.float64]


def _interval(samples: ArrayLike, confidence: float, axis: int = 0) -> tuple[Any, Any]:
    if not 0 < confidence < 1:
        raise ValueError("confidence must lie in (0, 1)")
    tail = (1.0 - confidence) / 2.0
    lo, hi = np.quantile(np.asarray(samples, dtype=np.float64), [tail, 1.0 - tail], axis=axis)
    return lo, hi


class RandomRouterResult(TypedDict):
    """Mean and percentile interval (over seeds) of a uniform random router."""

    quality: float
    cost: float
    quality_lo: float
    quality_hi: float
    cost_lo: float
    cost_hi: float
    n_seeds: int


def random_router(
    score: ArrayLike,
    cost: ArrayLike,
    n_seeds: int = 20,
    seed: int = 0,
    confidence: float = 0.95,
) -> RandomRouterResult:
    """Uniform random choice of a model per prompt, repeated over ``n_seeds`` seeds.

    The ANCHORS "random" row (one operating point, 20 seeds averaged) and CoDyn Table 2's
    "Random" baseline. Each prompt picks uniformly among the models that have a score on it
    (a NaN score is an unknown outcome); NaN costs are skipped as in ``outcomes``. The
    interval is the ``confidence`` percentile interval of the per-seed means.
    """
    s = np.asarray(score, dtype=np.float64)
    c = np.asarray(cost, dtype=np.float64)
    if s.ndim != 2 or c.shape != s.shape or s.shape[0] == 0:
        raise ValueError("score and cost must be n_prompts x n_models with the same shape")
    if n_seeds < 1:
        raise ValueError("n_seeds must be >= 1")
    avail = ~np.isnan(s)
    n_avail = avail.sum(axis=1)
    if (n_avail == 0).any():
        raise ValueError("some prompt has no scored model")
    rng = np.random.default_rng(seed)
    pick = np.floor(rng.random((n_seeds, s.shape[0])) * n_avail).astype(np.int64)
    # column of the (pick+1)-th available model on each prompt
    rank = np.cumsum(avail, axis=1)
    choices = np.argmax((rank[None] == (pick + 1)[..., None]) & avail[None], axis=2)
    cs, cc = chosen_cells(choices, s, c)
    q = cs.mean(axis=1)
    known = ~np.isnan(cc)
    with np.errstate(invalid="ignore", divide="ignore"):
        k = np.where(known, cc, 0.0).sum(axis=1) / known.sum(axis=1)
    q_lo, q_hi = _interval(q, confidence)
    k_lo, k_hi = _interval(k, confidence)
    return RandomRouterResult(
        quality=float(q.mean()),
        cost=float(np.mean(k)),
        quality_lo=float(q_lo),
        quality_hi=float(q_hi),
        cost_lo=float(k_lo),
        cost_hi=float(k_hi),
        n_seeds=int(n_seeds),
    )


class RandomMixtureCurve(TypedDict):
    """Per strong share: mean and percentile interval (over seeds) of a random mixture."""

    shares: FloatArray
    quality: FloatArray
    quality_lo: FloatArray
    quality_hi: FloatArray
    cost: FloatArray


def random_mixture_curve(
    score_strong: ArrayLike,
    score_weak: ArrayLike,
    cost_strong: ArrayLike,
    cost_weak: ArrayLike,
    shares: ArrayLike,
    n_seeds: int = 20,
    seed: int = 0,
    confidence: float = 0.95,
) -> RandomMixtureCurve:
    """Random strong/weak router: round(share * N) random prompts go to the strong model.

    RouteLLM's random baseline (section 5: "routes queries randomly under a cost
    constraint") and the ANCHORS random row (20 seeds, curves averaged). Its expected
    quality is linear in the share, so its APGR is 0.55 (discrete) / 0.5 (integral).
    ``cost_*`` are per-prompt costs (arrays of length N, or scalars); NaN costs are skipped.
    Scores must be finite. Returns the mean quality, its interval and the mean cost.
    """
    ss = np.asarray(score_strong, dtype=np.float64)
    sw = np.asarray(score_weak, dtype=np.float64)
    if ss.ndim != 1 or ss.shape != sw.shape or ss.size == 0:
        raise ValueError("score_strong and score_weak must be 1-D, same non-zero length")
    if not (np.isfinite(ss).all() and np.isfinite(sw).all()):
        raise ValueError("scores must be finite")
    n = ss.size
    cs = np.broadcast_to(np.asarray(cost_strong, dtype=np.float64), (n,))
    cw = np.broadcast_to(np.asarray(cost_weak, dtype=np.float64), (n,))
    sh = np.atleast_1d(np.asarray(shares, dtype=np.float64))
    if sh.ndim != 1 or (sh < 0).any() or (sh > 1).any():
        raise ValueError("shares must be a 1-D array in [0, 1]")
    if n_seeds < 1:
        raise ValueError("n_seeds must be >= 1")
    k = np.rint(sh * n).astype(np.int64)
    rng = np.random.default_rng(seed)
    perm = np.argsort(rng.random((n_seeds, n)), axis=1)

    def prefix(values: FloatArray) -> FloatArray:  # (seeds, n + 1) prefix sums in random order
        return np.concatenate([np.zeros((n_seeds, 1)), np.cumsum(values[perm], axis=1)], axis=1)

    q = (sw.sum() + prefix(ss - sw)[:, k]) / n
    # strong cost on the first k prompts of each order, weak cost on the rest
    ks, kw = (~np.isnan(cs)).astype(np.float64), (~np.isnan(cw)).astype(np.float64)
    cs0, cw0 = np.nan_to_num(cs), np.nan_to_num(cw)
    csum = prefix(cs0)[:, k] + cw0.sum() - prefix(cw0)[:, k]
    ccount = prefix(ks)[:, k] + kw.sum() - prefix(kw)[:, k]
    with np.errstate(invalid="ignore", divide="ignore"):
        cost = np.where(ccount > 0, csum / np.maximum(ccount, 1), np.nan)
    lo, hi = _interval(q, confidence, axis=0)
    return RandomMixtureCurve(
        shares=sh,
        quality=q.mean(axis=0),
        quality_lo=np.asarray(lo),
        quality_hi=np.asarray(hi),
        cost=_nanmean_axis0(cost),
    )


def _nanmean_axis0(values: FloatArray) -> FloatArray:
    known = ~np.isnan(values)
    n = known.sum(axis=0)
    total = np.where(known, values, 0.0).sum(axis=0)
    return np.where(n > 0, total / np.maximum(n, 1), np.nan)


def bootstrap_interval(
    values: ArrayLike,
    stat: Callable[[np.ndarray], Any] = np.mean,
    n_boot: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
) -> tuple[float, float, float]:
    """Percentile bootstrap over prompts (Efron & Tibshirani 1993): ``(stat(values), lo, hi)``.

    Rows of ``values`` (axis 0, one per prompt) are resampled with replacement ``n_boot``
    times; ``stat`` maps a resample to a number.
    """
    v = np.asarray(values)
    if v.shape[0] == 0:
        raise ValueError("no values")
    rng = np.random.default_rng(seed)
    n = v.shape[0]
    boots = np.array([float(stat(v[rng.integers(0, n, n)])) for _ in range(n_boot)])
    lo, hi = _interval(boots, confidence)
    return float(stat(v)), float(lo), float(hi)


def paired_bootstrap(
    values_a: ArrayLike,
    values_b: ArrayLike,
    stat: Callable[[np.ndarray], Any] = np.mean,
    n_boot: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
) -> tuple[float, float, float]:
    """Paired percentile bootstrap of ``stat(a) - stat(b)``: ``(difference, lo, hi)``.

    Both routers are evaluated on the same resampled prompts (same indices), so prompt
    difficulty cancels out of the difference. An interval excluding 0 means the difference
    is unlikely to be resampling noise.
    """
    a, b = np.asarray(values_a), np.asarray(values_b)
    if a.shape[0] != b.shape[0] or a.shape[0] == 0:
        raise ValueError("values_a and values_b must have the same, non-zero number of rows")
    rng = np.random.default_rng(seed)
    n = a.shape[0]
    boots = np.empty(n_boot)
    for i in range(n_boot):
        idx = rng.integers(0, n, n)
        boots[i] = float(stat(a[idx])) - float(stat(b[idx]))
    lo, hi = _interval(boots, confidence)
    return float(stat(a)) - float(stat(b)), float(lo), float(hi)


def _sweep_cells(choices: ArrayLike, score: ArrayLike, cost: ArrayLike) -> tuple[FloatArray, ...]:
    ch = np.asarray(choices)
    if ch.ndim == 1:
        ch = ch[None]
    return chosen_cells(ch, score, cost)


def paired_bootstrap_aiq(
    choices_a: ArrayLike,
    choices_b: ArrayLike,
    score: ArrayLike,
    cost: ArrayLike,
    max_cost: float,
    n_boot: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
) -> tuple[float, float, float]:
    """Paired bootstrap over prompts of ``AIQ(a) - AIQ(b)``: ``(difference, lo, hi)``.

    ``choices_a`` (``p_a x n``) and ``choices_b`` (``p_b x n``) are two routers' sweeps on
    the same prompts; `paired_bootstrap_aiq_cells` on the chosen cells.
    """
    return paired_bootstrap_aiq_cells(
        *_sweep_cells(choices_a, score, cost),
        *_sweep_cells(choices_b, score, cost),
        max_cost,
        n_boot=n_boot,
        seed=seed,
        confidence=confidence,
    )


def paired_bootstrap_aiq_cells(
    quality_a: ArrayLike,
    cost_a: ArrayLike,
    quality_b: ArrayLike,
    cost_b: ArrayLike,
    max_cost: float,
    n_boot: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
) -> tuple[float, float, float]:
    """Paired bootstrap over prompts of ``AIQ(a) - AIQ(b)`` from per-prompt outcomes.

    ``quality_a`` / ``cost_a`` (``p_a x n``) are the quality and cost each of a's ``p_a``
    sweep points got on each prompt (a router: its chosen cell; a cascade: the answer it
    returned and every call it paid for); NaN cost = unknown, left out of that point's mean.
    Each resample draws prompt indices with replacement (the same for both), recomputes every
    point's mean quality and cost, and both AIQs. ``max_cost`` (the cost axis of
    RouterBench's AIQ) stays fixed so all resamples share one axis. Resamples are drawn as
    multiplicity counts, so a sweep's points come from one matrix product (1000 x 5000
    prompts x 50 points: about a second).
    """

    def cells(quality: ArrayLike, cost: ArrayLike) -> tuple[FloatArray, ...]:
        s, c = np.atleast_2d(np.asarray(quality, float)), np.atleast_2d(np.asarray(cost, float))
        if s.shape != c.shape:
            raise ValueError(f"quality {s.shape} and cost {c.shape} must have one shape")
        known = ~np.isnan(c)
        return s, np.where(known, c, 0.0), known.astype(np.float64)

    sa, ca, ka = cells(quality_a, cost_a)
    sb, cb, kb = cells(quality_b, cost_b)
    n = sa.shape[1]
    if n == 0:
        raise ValueError("no prompts")
    if sb.shape[1] != n:
        raise ValueError(f"a has {n} prompts, b has {sb.shape[1]}")

    def curve_aiq(w: FloatArray, s: FloatArray, c: FloatArray, k: FloatArray) -> FloatArray:
        q = w @ s.T / n
        with np.errstate(invalid="ignore", divide="ignore"):
            cost_pts = (w @ c.T) / (w @ k.T)
        out = np.empty(w.shape[0])
        for r in range(w.shape[0]):
            ok = np.isfinite(cost_pts[r])
            out[r] = aiq(cost_pts[r, ok], q[r, ok], max_cost) if ok.any() else np.nan
        return out

    ones = np.ones((1, n))
    diff = float(curve_aiq(ones, sa, ca, ka)[0] - curve_aiq(ones, sb, cb, kb)[0])
    rng = np.random.default_rng(seed)
    chunk = max(1, min(n_boot, 2_000_000 // max(n, 1)))
    boots = np.empty(n_boot)
    for start in range(0, n_boot, chunk):
        b = min(chunk, n_boot - start)
        idx = rng.integers(0, n, size=(b, n)) + (np.arange(b) * n)[:, None]
        w = np.bincount(idx.ravel(), minlength=b * n).reshape(b, n).astype(np.float64)
        boots[start : start + b] = curve_aiq(w, sa, ca, ka) - curve_aiq(w, sb, cb, kb)
    lo, hi = _interval(boots[np.isfinite(boots)], confidence)
    return diff, float(lo), float(hi)
