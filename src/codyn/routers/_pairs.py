"""Shared by the pairwise routers (`sw_ranking`, `mf`, `rorf`): battles, Bradley-Terry, calibration.

A score matrix is read as battles: on every prompt, each pair of models ``(a, b)`` with ``a < b``
plays once and the higher score wins. Ties are explicit (`TIES`): ``"half"`` counts a tie as
half a win for each side (RouteLLM's ``compute_elo_mle_with_tie``: one win each at half weight),
``"drop"`` leaves the battle out. A missing score (NaN) never makes a battle.

The routers turn what they learn into Bradley-Terry strengths ``xi`` per prompt (RouteLLM
eq. 10-11: ``P(a beats b) = sigmoid(xi_a - xi_b)``), centred to sum to zero, and report
``sigmoid(intercept_m + slope_m * xi_m)``: a per-model logistic calibration of the strength
into the model's expected score, fitted on held-out predictions. Quality then lives on the
score's own scale, so ``quality - lambda * cost`` weighs alike on every prompt.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from numpy.typing import NDArray
from scipy.optimize import minimize

from codyn.errors import CodynError

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]
Ties = Literal["half", "drop"]
TIES: tuple[str, ...] = ("half", "drop")


def check_ties(ties: str) -> None:
    """A `CodynError` unless ``ties`` is one of `TIES`."""
    if ties not in TIES:
        raise CodynError(f"ties must be one of {', '.join(TIES)}; got {ties!r}")


def all_pairs(n_models: int) -> IntArray:
    """Every model pair ``(a, b)`` with ``a < b``, as an ``(n_pairs, 2)`` array, row-major."""
    a, b = np.triu_indices(n_models, k=1)
    return np.stack([a, b], axis=1).astype(np.int64)


def pair_signs(pairs: IntArray, n_models: int) -> FloatArray:
    """``n_pairs x n_models``: +1 at each pair's first model, -1 at its second, so that
    ``strength @ pair_signs(...).T`` is ``strength_a - strength_b`` per pair."""
    sign = np.zeros((len(pairs), n_models))
    sign[np.arange(len(pairs)), pairs[:, 0]] = 1.0
    sign[np.arange(len(pairs)), pairs[:, 1]] = -1.0
    return sign


def battles(score: FloatArray, pairs: IntArray, ties: str) -> tuple[FloatArray, FloatArray]:
    """``(outcome, counted)``, both ``n_prompts x n_pairs``.

    ``outcome`` is 1 where ``a`` scored higher, 0 where ``b`` did and 0.5 on a tie; ``counted``
    is 1 where the battle counts and 0 where a score is missing or (``ties="drop"``) it is a tie.
    """
    check_ties(ties)
    left, right = score[:, pairs[:, 0]], score[:, pairs[:, 1]]
    outcome = np.where(left > right, 1.0, np.where(left < right, 0.0, 0.5))
    counted = ~(np.isnan(left) | np.isnan(right))
    if ties == "drop":
        counted &= left != right
    outcome[~counted] = 0.0
    return outcome, counted.astype(np.float64)


def _softplus(x: FloatArray) -> FloatArray:
    return np.logaddexp(0.0, x)


def _sigmoid(x: FloatArray) -> FloatArray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def bradley_terry(
    wins: FloatArray,
    counts: FloatArray,
    pairs: IntArray,
    n_models: int,
    prior: float | FloatArray,
    *,
    max_iter: int = 100,
    tol: float = 1e-7,
) -> FloatArray:
    """Bradley-Terry strengths per row by weighted maximum likelihood (RouteLLM eq. 10, n models).

    Row ``k`` minimises ``sum_p N_kp * softplus(d) - W_kp * d`` with ``d = xi_a - xi_b``,
    ``W = wins`` (weighted wins of ``a`` over ``b``) and ``N = counts`` (weighted battles), i.e.
    the weighted binary cross-entropy of eq. 10. ``prior`` adds that many virtual ties to every
    pair (scalar or one per row): it keeps a model that never lost finite. Solved by Newton's
    method with step halving, all rows at once; the result is centred (``xi.sum(1) == 0``),
    which fixes the model's free offset. Needs a connected pair graph.
    """
    prior = np.reshape(np.asarray(prior, dtype=np.float64), (-1, 1))
    w = wins + 0.5 * prior
    n = counts + prior
    sign = pair_signs(pairs, n_models)
    outer = sign[:, :, None] * sign[:, None, :]
    gauge = np.ones((n_models, n_models))  # the offset direction; gradients never move it

    def loss(xi: FloatArray) -> FloatArray:
        d = xi @ sign.T
        return (n * _softplus(d) - w * d).sum(axis=1)

    xi = np.zeros((len(wins), n_models))
    current = loss(xi)
    for _ in range(max_iter):
        p = _sigmoid(xi @ sign.T)
        grad = (n * p - w) @ sign
        hess = np.einsum("kp,pij->kij", n * p * (1.0 - p), outer) + gauge
        step = np.linalg.solve(hess, grad[:, :, None])[:, :, 0]
        scale = np.ones((len(xi), 1))
        trial = loss(xi - step)
        for _ in range(30):
            worse = trial > current + 1e-12 * np.abs(current)
            if not worse.any():
                break
            scale[worse] *= 0.5
            trial[worse] = loss(xi[worse] - scale[worse] * step[worse])
        xi -= scale * step
        current = trial
        if np.abs(scale * step).max(initial=0.0) < tol:
            break
    return xi - xi.mean(axis=1, keepdims=True)


def fit_calibration(
    strength: FloatArray, score: FloatArray, *, l2: float = 1.0
) -> tuple[FloatArray, FloatArray]:
    """Per-model ``(intercept, slope)`` so that ``sigmoid(intercept + slope * xi)`` fits the score.

    Logistic regression of each model's held-out scores (soft labels allowed; NaN = unused) on
    its strength, with an ``l2`` ridge on both coefficients and ``slope >= 0``: calibration
    rescales the router's ranking of a model across prompts, it never reverses it.
    """
    known = ~np.isnan(strength) & ~np.isnan(score)
    x = np.where(known, strength, 0.0)
    y = np.where(known, score, 0.0)
    n_models = strength.shape[1]

    def objective(coef: FloatArray) -> tuple[float, FloatArray]:
        intercept, slope = coef[:n_models], coef[n_models:]
        logit = intercept + slope * x
        loss = np.where(known, _softplus(logit) - y * logit, 0.0).sum() + 0.5 * l2 * coef @ coef
        r = np.where(known, _sigmoid(logit) - y, 0.0)
        return float(loss), np.concatenate([r.sum(0), (r * x).sum(0)]) + l2 * coef

    bounds = [(None, None)] * n_models + [(0.0, None)] * n_models
    coef = minimize(objective, np.zeros(2 * n_models), jac=True, method="L-BFGS-B", bounds=bounds)
    return coef.x[:n_models].copy(), coef.x[n_models:].copy()


def calibrated(strength: FloatArray, intercept: FloatArray, slope: FloatArray) -> FloatArray:
    """Expected score per (prompt, model): ``sigmoid(intercept + slope * strength)``."""
    return _sigmoid(intercept[None, :] + slope[None, :] * strength)
