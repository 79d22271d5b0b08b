"""Cost-quality curves: RouterBench's non-decreasing convex hull and AIQ.

RouterBench (Hu et al., 2024: the AIQ metric; code ``evaluation/AIQ.py``) scores a router by
the area under the non-decreasing upper convex hull of its (cost, quality) operating points:
mixing two operating points at random reaches any point on the segment between them, and no
one should pay more for less quality, so the hull is what a router can actually deliver.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

FloatArray = NDArray[np.float64]


def operating_points(
    costs: ArrayLike, qualities: ArrayLike, *, allow_inf: bool = False
) -> tuple[FloatArray, FloatArray]:
    """Validated 1-D (cost, quality) arrays of a curve's operating points: never NaN, and
    finite unless ``allow_inf`` (a cost target may compare against an infinite cost)."""
    c = np.atleast_1d(np.asarray(costs, dtype=np.float64))
    q = np.atleast_1d(np.asarray(qualities, dtype=np.float64))
    if c.ndim != 1 or c.shape != q.shape:
        raise ValueError("costs and qualities must be 1-D arrays of the same length")
    if c.size == 0:
        raise ValueError("no operating points")
    if np.isnan(c).any() or np.isnan(q).any():
        raise ValueError("operating points must not contain NaN")
    if not allow_inf and not (np.isfinite(c).all() and np.isfinite(q).all()):
        raise ValueError("operating points must be finite (no NaN / inf)")
    return c, q


def upper_hull(costs: ArrayLike, qualities: ArrayLike) -> tuple[FloatArray, FloatArray]:
    """Vertices of the non-decreasing upper convex hull, sorted by cost (RouterBench AIQ).

    The hull runs from the cheapest point (best quality among equally cheap ones) to the
    cheapest point of maximum quality; points below it or beyond the maximum are dropped, as
    are collinear middle points. Returns ``(hull_costs, hull_qualities)``.
    """
    c, q = operating_points(costs, qualities)
    order = np.lexsort((-q, c))
    c, q = c[order], q[order]
    first = np.r_[True, c[1:] != c[:-1]]  # best quality at each distinct cost
    c, q = c[first], q[first]
    top = int(np.argmax(q))  # first (cheapest) point of maximum quality
    xs, ys = c[: top + 1].tolist(), q[: top + 1].tolist()
    hx: list[float] = []
    hy: list[float] = []
    for x, y in zip(xs, ys, strict=True):
        # pop the last vertex while it is not above the chord to the new point
        # (collinear up to float noise counts as not above)
        while len(hx) >= 2:
            a = (hx[-1] - hx[-2]) * (y - hy[-2])
            b = (hy[-1] - hy[-2]) * (x - hx[-2])
            if a - b < -1e-12 * (abs(a) + abs(b)):
                break
            hx.pop()
            hy.pop()
        hx.append(x)
        hy.append(y)
    return np.asarray(hx), np.asarray(hy)


def _trapezoid(y: FloatArray, x: FloatArray) -> float:
    return float(np.sum(np.diff(x) * (y[1:] + y[:-1]) * 0.5))


def hull_area(
    hull_costs: ArrayLike, hull_qualities: ArrayLike, lo: float = 0.0, hi: float = 1.0
) -> float:
    """Integral over ``[lo, hi]`` of a hull: 0 left of its first vertex, flat right of its last.

    These are RouterBench's conventions (``calc_AIQ`` integrates from the cheapest point
    and extends the last hull value to the right edge).
    """
    hx = np.asarray(hull_costs, dtype=np.float64)
    hy = np.asarray(hull_qualities, dtype=np.float64)
    start = max(float(hx[0]), lo)
    if start >= hi:
        return 0.0
    xs = np.r_[hx, max(float(hx[-1]), hi)]
    ys = np.r_[hy, hy[-1]]
    inner = xs[(xs > start) & (xs < hi)]
    grid = np.r_[start, inner, hi]
    return _trapezoid(np.interp(grid, xs, ys), grid)


def aiq(costs: ArrayLike, qualities: ArrayLike, max_cost: float) -> float:
    """RouterBench AIQ: area under the non-decreasing upper hull over normalised cost [0, 1].

    Costs are divided by ``max_cost`` (the most expensive single model's mean cost, the
    ANCHORS "norm cost"); the hull is 0 left of the cheapest point and flat right of the best
    point; the area is taken on [0, 1] only (a point beyond 1 still shapes the hull below 1).
    A single point (c, q) gives ``q * (1 - c)``; the "zero router" is the AIQ of the single
    models' points. With qualities in [0, 1] the result lies in [0, 1].
    """
    if not (np.isfinite(max_cost) and max_cost > 0):
        raise ValueError("max_cost must be a positive number")
    c, q = operating_points(costs, qualities)
    hx, hy = upper_hull(c / max_cost, q)
    return hull_area(hx, hy, 0.0, 1.0)


def hull_quality_at(costs: ArrayLike, qualities: ArrayLike, at_cost: ArrayLike) -> FloatArray:
    """Quality of the hull at given costs (same units as ``costs``; NaN left of the hull).

    What a router can deliver at a budget if it may mix its operating points (the curve
    RouterBench's AIQ integrates).
    """
    hx, hy = upper_hull(costs, qualities)
    at = np.asarray(at_cost, dtype=np.float64)
    out = np.interp(at, hx, hy)
    return np.where(at < hx[0], np.nan, out)
