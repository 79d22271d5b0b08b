"""Quality and cost of routing decisions: the two axes every paper plots.

Inputs are plain arrays: ``choices`` holds one model index per prompt, ``score`` and ``cost``
are ``n_prompts x n_models``. A NaN score is a cell nobody measured: routing to it is an
error (the outcome is unknown). A NaN cost is a price nobody recorded: it is left out of the
mean cost (the mean runs over the prompts whose chosen cost is known).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from codyn.metrics.curves import operating_points

FloatArray = NDArray[np.float64]

# Float noise in means of 0/1 scores (e.g. 0.49999999999999994 for 1/2): comparisons that
# decide "reaches the target" accept a shortfall this small.
ATOL = 1e-9


def _score_cost(score: ArrayLike, cost: ArrayLike) -> tuple[FloatArray, FloatArray]:
    s = np.asarray(score, dtype=np.float64)
    c = np.asarray(cost, dtype=np.float64)
    if s.ndim != 2:
        raise ValueError(f"score must be n_prompts x n_models, got shape {s.shape}")
    if c.shape != s.shape:
        raise ValueError(f"cost shape {c.shape} differs from score shape {s.shape}")
    return s, c


def _check_choices(choices: ArrayLike, n_prompts: int, n_models: int, ndim: int) -> NDArray:
    ch = np.asarray(choices)
    if ch.ndim != ndim or ch.shape[-1] != n_prompts:
        raise ValueError(
            f"choices must have {ndim} dimension(s) ending in n_prompts={n_prompts}, "
            f"got shape {ch.shape}"
        )
    if ch.size and not np.issubdtype(ch.dtype, np.integer):
        if not np.all(np.equal(np.mod(ch, 1), 0)):
            raise ValueError("choices must be integer model indices")
        ch = ch.astype(np.int64)
    if ch.size and (ch.min() < 0 or ch.max() >= n_models):
        raise ValueError(f"choices must lie in [0, {n_models}); drop unroutable prompts first")
    return ch.astype(np.int64, copy=False)


def chosen_cells(
    choices: ArrayLike, score: ArrayLike, cost: ArrayLike
) -> tuple[FloatArray, FloatArray]:
    """Score and cost of the chosen model per prompt, same shape as ``choices`` (1-D or 2-D).

    Raises ValueError if a chosen score is NaN; a chosen NaN cost stays NaN.
    """
    s, c = _score_cost(score, cost)
    ch = np.asarray(choices)
    ch = _check_choices(ch, s.shape[0], s.shape[1], max(ch.ndim, 1))
    rows = np.arange(s.shape[0])
    cs, cc = s[rows, ch], c[rows, ch]
    if np.isnan(cs).any():
        raise ValueError("a chosen model has no score (NaN) on some prompt")
    return cs, cc


def _nanmean_last(values: FloatArray) -> FloatArray:
    known = ~np.isnan(values)
    n = known.sum(axis=-1)
    total = np.where(known, values, 0.0).sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, total / np.maximum(n, 1), np.nan)


def outcomes(choices: ArrayLike, score: ArrayLike, cost: ArrayLike) -> tuple[float, float]:
    """Mean quality and mean cost of one routing decision per prompt.

    RouteLLM eq. 5 (``r = (1/|Q|) sum_q s(M(q))``) for quality, the same mean for cost (the
    axes of RouterBench's cost-quality plane). A chosen NaN score raises ValueError; chosen
    NaN costs are skipped (mean over the known costs, NaN if none is known).
    """
    cs, cc = chosen_cells(choices, score, cost)
    if cs.size == 0:
        raise ValueError("no prompts")
    return float(cs.mean()), float(_nanmean_last(cc))


def curve_points(
    choices: ArrayLike, score: ArrayLike, cost: ArrayLike
) -> tuple[FloatArray, FloatArray]:
    """Mean cost and mean quality of each row of ``choices`` (``n_points x n_prompts``).

    The vectorised form of :func:`outcomes` for a sweep (one row per threshold / lambda);
    returns ``(costs, qualities)``, each of length ``n_points``. Same NaN rules.
    """
    s, c = _score_cost(score, cost)
    ch = _check_choices(choices, s.shape[0], s.shape[1], 2)
    if s.shape[0] == 0:
        raise ValueError("no prompts")
    cs, cc = chosen_cells(ch, s, c)
    return _nanmean_last(cc), cs.mean(axis=-1)


def normalised_cost(calls_per_model: ArrayLike, mean_cost_per_model: ArrayLike) -> float:
    """CoDyn eq. 2: ``sum_i (share of calls to model_i * cost_i) / max_i cost_i``.

    CoDyn writes "% of calls to model_i", so the calls are shares of all calls; counts are
    accepted and divided by their sum (the result does not depend on which is passed).
    ``mean_cost_per_model`` is each model's mean cost per call (cbar); the maximum runs over
    all models, called or not, so 1.0 means "as expensive as always using the priciest model"
    (the ANCHORS "CoDyn cost" column). A model with no calls may have a NaN cost; a called
    model with a NaN cost raises ValueError.
    """
    calls = np.asarray(calls_per_model, dtype=np.float64)
    cbar = np.asarray(mean_cost_per_model, dtype=np.float64)
    if calls.ndim != 1 or calls.shape != cbar.shape:
        raise ValueError("calls_per_model and mean_cost_per_model must be 1-D, same length")
    if (calls < 0).any() or not np.isfinite(calls).all():
        raise ValueError("calls must be finite and non-negative")
    total = calls.sum()
    if total <= 0:
        raise ValueError("no calls")
    if np.isnan(cbar[calls > 0]).any():
        raise ValueError("a called model has no known cost")
    top = np.nanmax(cbar)
    if not top > 0:
        raise ValueError("the most expensive model must have a positive cost")
    shares = calls / total
    return float(np.sum(np.where(calls > 0, shares * np.nan_to_num(cbar), 0.0)) / top)


def affordability(cost: ArrayLike) -> FloatArray:
    """CoDyn section 6.1.3: ``CS^-1 = 1 - (CS - 1) / (max(CS) - 1)``, in [0, 1].

    CoDyn's CS is a cost ratio with the cheapest model at 1 (1, 1.6, 5, 16, 72); for any
    positive costs this equals ``1 - (c - min c) / (max c - min c)``, which is what is
    computed (so raw prices work too). Cheapest model -> 1, priciest -> 0; all equal -> 1.
    """
    c = np.asarray(cost, dtype=np.float64)
    lo, hi = np.nanmin(c), np.nanmax(c)
    if hi == lo:
        return np.where(np.isnan(c), np.nan, 1.0)
    return 1.0 - (c - lo) / (hi - lo)


def ranking_score(
    effectiveness: ArrayLike, cost: ArrayLike, lambda_1: float = 1.0, lambda_2: float = 0.0
) -> FloatArray:
    """CoDyn section 6.1.3: ``RS = lambda_1 * ES + lambda_2 * CS^-1`` per model.

    ``cost`` holds one cost per model (last axis); the paper's settings are lambda_2 = 0,
    0.25, 0.5 with lambda_1 = 1.
    """
    es = np.asarray(effectiveness, dtype=np.float64)
    return lambda_1 * es + lambda_2 * affordability(cost)


def cost_to_match(costs: ArrayLike, qualities: ArrayLike, target_quality: float) -> float:
    """Cheapest operating point whose quality reaches ``target_quality`` (NaN if none does).

    ANCHORS "cost -> SBS q": the cheapest sweep point with q >= the SBS's test q. Only
    measured points count (no interpolation: a router cannot run between two thresholds
    without randomising). A shortfall below ATOL counts as reaching the target.
    """
    c, q = operating_points(costs, qualities, allow_inf=True)
    ok = q >= target_quality - ATOL
    return float(c[ok].min()) if ok.any() else float("nan")


def best_quality_within(costs: ArrayLike, qualities: ArrayLike, budget: float) -> float:
    """Best quality among operating points with mean cost <= ``budget`` (NaN if none).

    ANCHORS "best q <= SBS cost" with ``budget`` = the SBS's mean cost.
    """
    c, q = operating_points(costs, qualities, allow_inf=True)
    ok = c <= budget + ATOL * max(1.0, abs(budget))
    return float(q[ok].max()) if ok.any() else float("nan")


def selection_share(choices: ArrayLike, n_models: int) -> FloatArray:
    """Share of prompts routed to each model (CoDyn appendix A.3, Figure 4: "% of calls").

    Returns an array of length ``n_models`` summing to 1.
    """
    ch = np.asarray(choices).ravel()
    if ch.size == 0:
        raise ValueError("no choices")
    ch = _check_choices(ch, ch.size, n_models, 1)
    return np.bincount(ch, minlength=n_models) / ch.size


def selection_entropy(shares: ArrayLike, normalised: bool = True) -> float:
    """Shannon entropy ``-sum_m p_m ln p_m`` of the selection shares (nats).

    CoDyn RQ3 (appendix A.3) reports diversity as the per-model share of calls; the entropy
    is a one-number summary of that distribution. ``normalised`` divides by ``ln(n_models)``
    (all models of the portfolio, used or not): 0 = always one model, 1 = uniform. Shares
    may be counts; they are divided by their sum.
    """
    p = np.asarray(shares, dtype=np.float64).ravel()
    if p.size == 0 or (p < 0).any() or not np.isfinite(p).all() or p.sum() <= 0:
        raise ValueError("shares must be non-negative, finite and not all zero")
    p = p / p.sum()
    nz = p[p > 0]
    h = max(0.0, float(-np.sum(nz * np.log(nz))))  # one model: 0.0, never -0.0
    if not normalised:
        return h
    return h / float(np.log(p.size)) if p.size > 1 else 0.0


def models_above_share(shares: ArrayLike, threshold: float = 0.10) -> int:
    """Number of models that receive more than ``threshold`` of the calls.

    CoDyn appendix A.3 describes diversity this way ("selects three models with more than
    10% of the selection percentage").
    """
    p = np.asarray(shares, dtype=np.float64).ravel()
    return int(np.sum(p > threshold))
