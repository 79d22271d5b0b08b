"""Strong/weak (binary) routing metrics: RouteLLM's PGR, APGR, CPT and the MBPP paper's gap.

A binary router's sweep is a curve of (strong share, quality): the share of prompts sent to
the strong model (0 = all weak, 1 = all strong) and the mean quality it gets.

Two ways to read a curve at a share it does not list (keyword ``interpolate``):

- ``interpolate=False`` (default, the ANCHORS.md conventions): only listed points count.
  On the exact per-prompt curve (shares k/N, see :func:`strong_share_curve`) PGR at c is
  read at the nearest listed share (k = round(c N)), APGR_trapz is the trapezoid over the
  11 grid values at 0%, 10%, ..., 100% (routellm/evals/evaluate.py; = APGR - 0.05 when
  PGR(0) = 0 and PGR(1) = 1) and CPT is the smallest listed share with PGR >= x. This
  reproduces the anchor table to 1e-12 (tests/test_metrics_anchors.py).
- ``interpolate=True``: linearly between neighbouring points, which a router realises by
  randomising between two thresholds; ``apgr(method="integral")`` is then the exact
  integral of RouteLLM eq. 7 and ``cpt`` the interpolated first crossing. Better for sparse
  curves (a few thresholds); on a per-prompt curve it differs by less than one prompt.

Missing end points are added: share 0 has quality ``q_weak`` and share 1 ``q_strong``
(all-weak and all-strong are always available). PGR is undefined when ``q_strong <= q_weak``
(the "strong" model is not better); every PGR-based function then returns NaN.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

FloatArray = NDArray[np.float64]

# Float noise in means of 0/1 scores: PGR 0.49999999999999994 reaches x = 0.5.
ATOL = 1e-9
APGR_GRID = np.arange(1, 11) / 10.0  # RouteLLM eq. 8: 10%, 20%, ..., 100% strong calls


def _curve(
    strong_share: ArrayLike,
    quality: ArrayLike,
    q_weak: float | None = None,
    q_strong: float | None = None,
) -> tuple[FloatArray, FloatArray]:
    """Sorted, de-duplicated (share, quality) curve with the known end points added."""
    s = np.atleast_1d(np.asarray(strong_share, dtype=np.float64))
    q = np.atleast_1d(np.asarray(quality, dtype=np.float64))
    if s.ndim != 1 or s.shape != q.shape:
        raise ValueError("strong_share and quality must be 1-D arrays of the same length")
    if not (np.isfinite(s).all() and np.isfinite(q).all()):
        raise ValueError("the curve must be finite (no NaN / inf)")
    if s.size and (s.min() < -ATOL or s.max() > 1 + ATOL):
        raise ValueError("strong_share must lie in [0, 1]")
    s = np.clip(s, 0.0, 1.0)
    if q_weak is not None and not np.any(np.isclose(s, 0.0, rtol=0, atol=ATOL)):
        s, q = np.r_[0.0, s], np.r_[q_weak, q]
    if q_strong is not None and not np.any(np.isclose(s, 1.0, rtol=0, atol=ATOL)):
        s, q = np.r_[s, 1.0], np.r_[q, q_strong]
    if s.size == 0:
        raise ValueError("empty curve")
    # equal shares (e.g. tied thresholds) are averaged: one quality per share
    uniq, inv = np.unique(s, return_inverse=True)
    if uniq.size != s.size:
        q = np.bincount(inv, weights=q) / np.bincount(inv)
    else:
        q = q[np.argsort(s, kind="stable")]
    return uniq, q


def _defined(q_weak: float, q_strong: float) -> bool:
    return bool(np.isfinite(q_weak) and np.isfinite(q_strong) and q_strong > q_weak)


def _read(s: FloatArray, q: FloatArray, at: FloatArray, interpolate: bool) -> FloatArray:
    """Curve quality at shares ``at``: linear interpolation or the nearest listed point."""
    if interpolate:
        return np.interp(at, s, q)
    # nearest listed share; a tie goes to the smaller share (fewer strong calls)
    right = np.clip(np.searchsorted(s, at, side="left"), 0, s.size - 1)
    left = np.clip(right - 1, 0, s.size - 1)
    use_left = np.abs(at - s[left]) <= np.abs(s[right] - at)
    return q[np.where(use_left, left, right)]


def pgr(quality: ArrayLike, q_weak: float, q_strong: float) -> float | FloatArray:
    """RouteLLM eq. 6, performance gap recovered: ``(q - q_weak) / (q_strong - q_weak)``.

    0 = weak model's quality, 1 = strong model's; above 1 means the router beats the strong
    model. NaN (same shape as ``quality``) when ``q_strong <= q_weak``.
    """
    qa = np.asarray(quality, dtype=np.float64)
    if not _defined(q_weak, q_strong):
        out = np.full(qa.shape, np.nan)
    else:
        out = (qa - q_weak) / (q_strong - q_weak)
    return float(out) if out.ndim == 0 else out


def apgr(
    strong_share: ArrayLike,
    quality: ArrayLike,
    q_weak: float,
    q_strong: float,
    method: Literal["discrete", "integral"] = "discrete",
    *,
    interpolate: bool = False,
) -> float:
    """Average PGR over the strong-call share (RouteLLM eq. 7-8).

    ``discrete`` (eq. 8, the ANCHORS "APGR"): mean PGR at 10%, 20%, ..., 100% strong calls;
    a random router scores 0.55. ``integral`` (eq. 7, the ANCHORS "APGR_trapz"): the
    integral of PGR over [0, 1]; a random router scores 0.5. With ``interpolate=False`` it is
    the trapezoid over the 11 grid values at 0%, 10%, ..., 100% (ANCHORS, routellm's
    evaluate.py); with ``interpolate=True`` the exact integral of the piecewise-linear curve.
    NaN when ``q_strong <= q_weak``.
    """
    if method not in ("discrete", "integral"):
        raise ValueError(f"unknown method {method!r}")
    s, q = _curve(strong_share, quality, q_weak, q_strong)
    if not _defined(q_weak, q_strong):
        return float("nan")
    p = (q - q_weak) / (q_strong - q_weak)
    if method == "discrete":
        return float(np.mean(_read(s, p, APGR_GRID, interpolate)))
    if interpolate:
        return float(np.sum(np.diff(s) * (p[1:] + p[:-1]) * 0.5))
    grid = np.r_[0.0, APGR_GRID]
    vals = _read(s, p, grid, interpolate=False)
    return float(np.sum(np.diff(grid) * (vals[1:] + vals[:-1]) * 0.5))


def cpt(
    strong_share: ArrayLike,
    quality: ArrayLike,
    q_weak: float,
    q_strong: float,
    x: float,
    *,
    interpolate: bool = False,
) -> float:
    """Call-performance threshold CPT(x) (RouteLLM section 3): least strong share with PGR >= x.

    ``x`` is a fraction (0.5 for CPT(50%)). The first crossing of the curve: with
    ``interpolate=False`` the smallest listed share with PGR >= x (ANCHORS: on the
    per-prompt curve, the least number of strong calls); with ``interpolate=True`` the share
    where the piecewise-linear PGR first reaches ``x``. NaN if the curve never reaches ``x``
    or ``q_strong <= q_weak``.
    """
    s, q = _curve(strong_share, quality, q_weak, q_strong)
    if not _defined(q_weak, q_strong):
        return float("nan")
    p = (q - q_weak) / (q_strong - q_weak)
    hit = p >= x - ATOL
    if not hit.any():
        return float("nan")
    i = int(np.argmax(hit))
    if i == 0 or not interpolate:
        return float(s[i])
    t = (x - p[i - 1]) / (p[i] - p[i - 1])
    return float(s[i - 1] + min(max(t, 0.0), 1.0) * (s[i] - s[i - 1]))


def strong_share_curve(
    router_score: ArrayLike,
    score_strong: ArrayLike,
    score_weak: ArrayLike,
    seed: int | None = 0,
) -> tuple[FloatArray, FloatArray]:
    """Exact per-prompt sweep of a strong/weak router: top-k prompts by score go strong.

    For k = 0..N the k prompts with the highest ``router_score`` (higher = more in need of
    the strong model) use the strong model; returns ``(k / N, mean quality)``, N + 1 points.
    Ties in ``router_score`` are broken in a fixed random order drawn from ``seed`` (ANCHORS
    convention; ``seed=None`` keeps the input order). This is the curve APGR/CPT are read on.
    """
    r = np.asarray(router_score, dtype=np.float64)
    ss = np.asarray(score_strong, dtype=np.float64)
    sw = np.asarray(score_weak, dtype=np.float64)
    if not (r.ndim == 1 and r.shape == ss.shape == sw.shape) or r.size == 0:
        raise ValueError("router_score, score_strong, score_weak must be 1-D, same length")
    if not (np.isfinite(r).all() and np.isfinite(ss).all() and np.isfinite(sw).all()):
        raise ValueError("router_score and the scores must be finite")
    n = r.size
    tie = np.arange(n) if seed is None else np.random.default_rng(seed).permutation(n)
    order = np.lexsort((tie, -r))
    gain = np.r_[0.0, np.cumsum((ss - sw)[order])]
    return np.arange(n + 1) / n, (sw.sum() + gain) / n


def performance_gap_at_cost_advantage(
    strong_share: ArrayLike,
    quality: ArrayLike,
    q_strong: float | None = None,
    cost_advantage: float | ArrayLike = (0.1, 0.2, 0.3, 0.4, 0.5),
    *,
    interpolate: bool = False,
) -> float | FloatArray:
    """Performance gap at a cost advantage (MBPP routing paper, Bai, section 4.1).

    The paper's cost advantage is the share of requests routed to the small model
    (0 = all-large, 1 = all-small), i.e. ``1 - strong_share``; the performance gap is the
    quality (total pass rate) at that cost advantage minus the all-large quality. Here the
    gap is read off the strong-share curve at ``strong_share = 1 - cost_advantage`` (as a
    fraction: multiply by 100 for the paper's percentage points). ``q_strong`` defaults to
    the curve's quality at share 1. NaN where the curve does not reach the requested share.
    See :func:`calibrated_performance_gap` for the paper's validation-percentile procedure.
    """
    s, q = _curve(strong_share, quality, None, q_strong)
    at_one = np.isclose(s, 1.0, rtol=0, atol=ATOL)
    if q_strong is None:
        if not at_one.any():
            raise ValueError("the curve has no all-strong point; pass q_strong")
        q_strong = float(q[at_one][-1])
    ca = np.asarray(cost_advantage, dtype=np.float64)
    at = 1.0 - ca
    inside = (at >= s[0] - ATOL) & (at <= s[-1] + ATOL)
    gap = np.where(inside, _read(s, q, np.clip(at, s[0], s[-1]), interpolate) - q_strong, np.nan)
    return float(gap) if gap.ndim == 0 else gap


def calibrated_performance_gap(
    val_p_small: ArrayLike,
    test_p_small: ArrayLike,
    score_small: ArrayLike,
    score_large: ArrayLike,
    target_cost_advantage: ArrayLike = (0.2, 0.4, 0.6, 0.8),
) -> tuple[FloatArray, FloatArray]:
    """The MBPP paper's evaluation (section 4.1, Figure 4): gap at validation-tuned targets.

    The router sends a prompt to the small model when its ``P(H(x) >= 0) >= tau`` (eq. 1).
    For each target cost advantage t, tau is the (1 - t) empirical quantile of the
    validation probabilities (numpy's linear quantile), so about t of the validation prompts
    go small; the same tau is applied to the test probabilities. Returns
    ``(performance_gap, actual_cost_advantage)`` on the test set, one entry per target
    (the table's "-4.9 [26.0]" = gap -0.049 at actual cost advantage 0.26).
    """
    val = np.asarray(val_p_small, dtype=np.float64)
    test = np.asarray(test_p_small, dtype=np.float64)
    small = np.asarray(score_small, dtype=np.float64)
    large = np.asarray(score_large, dtype=np.float64)
    if val.ndim != 1 or val.size == 0:
        raise ValueError("val_p_small must be a non-empty 1-D array")
    if not (test.ndim == 1 and test.shape == small.shape == large.shape) or test.size == 0:
        raise ValueError("test_p_small, score_small, score_large must be 1-D, same length")
    targets = np.atleast_1d(np.asarray(target_cost_advantage, dtype=np.float64))
    gaps = np.empty(targets.size)
    actual = np.empty(targets.size)
    base = large.mean()
    for i, t in enumerate(targets):
        if t <= 0:
            tau = np.inf
        elif t >= 1:
            tau = -np.inf
        else:
            tau = float(np.quantile(val, 1.0 - t))
        go_small = test >= tau
        gaps[i] = np.where(go_small, small, large).mean() - base
        actual[i] = go_small.mean()
    return gaps, actual
