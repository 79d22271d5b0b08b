"""Oracle-gap screening: how much could any router gain on this data at all?

CoDyn (paper 000), section 4: Single Best Solver (SBS), per-instance Oracle, oracle gap
(eq. 1) and the winner-change rate (WCR). Inputs are ``n_prompts x n_models`` arrays;
NaN marks a missing score or an unknown cost.
"""

from __future__ import annotations

import numpy as np


def _tie_break_cost(cost: np.ndarray | None, shape: tuple[int, int]) -> np.ndarray:
    """Per-cell cost used to break score ties: the cell's cost, else the model's mean, else 0."""
    if cost is None:
        return np.zeros(shape)
    cost = np.asarray(cost, dtype=np.float64)
    model_mean = np.nan_to_num(model_means(cost), nan=0.0)
    return np.where(np.isnan(cost), model_mean[None, :], cost)


def model_means(values: np.ndarray) -> np.ndarray:
    """Column means over known (non-NaN) cells: each model's mean score or cost (NaN if none)."""
    values = np.asarray(values, dtype=np.float64)
    counts = np.sum(~np.isnan(values), axis=0)
    return np.where(counts > 0, np.nansum(values, axis=0) / np.maximum(counts, 1), np.nan)


def sbs_index(score: np.ndarray, cost: np.ndarray | None = None) -> int:
    """Single Best Solver: the model with the largest mean score (CoDyn section 4).

    Ties go to the model with the lower mean cost, then to the earlier model.
    """
    means = model_means(score)
    if np.isnan(means).all():
        raise ValueError("no model has any score")
    mean_cost = _tie_break_cost(cost, np.shape(score)).mean(axis=0)
    order = np.lexsort((np.arange(len(means)), mean_cost, -np.nan_to_num(means, nan=-np.inf)))
    return int(order[0])


def answered_prompts(score: np.ndarray) -> np.ndarray:
    """Mask of prompts with at least one model's score (the others cannot be routed)."""
    return ~np.isnan(np.asarray(score, dtype=np.float64)).all(axis=1)


def oracle_choice(score: np.ndarray, cost: np.ndarray | None = None) -> np.ndarray:
    """Per-prompt best model, ties to the cheapest (per-prompt cost where known).

    This is the oracle router's decision (CoDyn section 6: "highest effectiveness and lowest
    cost"). Prompts without any score get -1.
    """
    score = np.asarray(score, dtype=np.float64)
    tie_cost = _tie_break_cost(cost, score.shape)
    filled = np.where(np.isnan(score), -np.inf, score)
    best = filled.max(axis=1, keepdims=True)
    is_best = (filled == best) & np.isfinite(filled)
    candidate_cost = np.where(is_best, tie_cost, np.inf)
    choice = np.argmin(candidate_cost, axis=1)
    return np.where(answered_prompts(score), choice, -1)


def oracle_mean(score: np.ndarray) -> float:
    """Mean over prompts of the best score, ``(1/n) sum_i max_j s_ij`` (CoDyn eq. 1, first term)."""
    score = np.asarray(score, dtype=np.float64)
    rows = answered_prompts(score)
    return float(np.nanmax(score[rows], axis=1).mean()) if rows.any() else float("nan")


def oracle_gap(score: np.ndarray) -> float:
    """Oracle gap ``OG = (1/n) sum_i max_j s_ij - max_j (1/n) sum_i s_ij`` (CoDyn eq. 1).

    OG > 0 means per-prompt routing can beat the best single model; it is the upper bound of
    the quality any router can add.
    """
    return oracle_mean(score) - float(np.nanmax(model_means(score)))


def winner_change_rate(score: np.ndarray, sbs: int) -> float:
    """Share of prompts where some model scores strictly higher than the SBS (CoDyn section 4).

    CoDyn's WCR counts prompts whose per-instance winner differs from the SBS. With 0/1
    scores many prompts tie (all fail, or several pass); we count a change only where the
    SBS is not among the best, so the rate measures where routing can raise quality.
    Prompts where the SBS has no score are left out.
    """
    score = np.asarray(score, dtype=np.float64)
    rows = answered_prompts(score) & ~np.isnan(score[:, sbs])
    if not rows.any():
        return float("nan")
    best = np.nanmax(score[rows], axis=1)
    return float(np.mean(best > score[rows, sbs]))


def cheapest_winner_change_rate(
    score: np.ndarray, sbs: int, cost: np.ndarray | None = None
) -> float:
    """Share of prompts whose cheapest best model is not the SBS (quality or cost can improve).

    This is WCR with ties broken to the cheapest model: it also counts prompts where a
    cheaper model matches the SBS, i.e. where routing can save cost without losing quality.
    """
    choice = oracle_choice(score, cost)
    rows = choice >= 0
    return float(np.mean(choice[rows] != sbs)) if rows.any() else float("nan")


def cheapest_best_share(score: np.ndarray, cost: np.ndarray | None = None) -> np.ndarray:
    """Per model, the share of prompts where it is the oracle's choice (best, then cheapest)."""
    choice = oracle_choice(score, cost)
    n_models = np.shape(score)[1]
    rows = choice >= 0
    if not rows.any():
        return np.full(n_models, np.nan)
    return np.bincount(choice[rows], minlength=n_models) / rows.sum()


WEAK_FRACTION = 0.7
"""ANCHORS.md's weak model: the cheapest one whose mean score is at least this share of the
strong model's."""


def weak_index(
    mean_score: np.ndarray, mean_cost: np.ndarray, strong: int, fraction: float = WEAK_FRACTION
) -> int | None:
    """The weak model of a strong/weak pair (ANCHORS.md): the cheapest model other than
    ``strong`` whose mean score is at least ``fraction`` of the strong's; cost ties go to the
    higher mean score. None when no other model qualifies."""
    q = np.nan_to_num(np.asarray(mean_score, dtype=np.float64), nan=-np.inf)
    costs = np.asarray(mean_cost, dtype=np.float64)
    ok = np.flatnonzero(q >= fraction * q[strong])
    ok = ok[ok != strong]
    if ok.size == 0:
        return None
    return int(ok[np.lexsort((-q[ok], costs[ok]))[0]])
