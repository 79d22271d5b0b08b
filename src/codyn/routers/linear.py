"""`linear`: one regularised linear model per candidate model on the prompt features.

The cheap reference every learned router should beat: ridge regression in closed form, or
L2-regularised logistic regression (iteratively reweighted ridge, a few Newton steps) when the
scores are pass rates in [0, 1]. Each model is fitted on the prompts where its score is known.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from codyn.data.routing import RoutingData
from codyn.errors import CodynError
from codyn.routers.base import Arrays, State
from codyn.routers.embedding import DEFAULT_FEATURISER, EmbeddingRouter, Features, FloatArray
from codyn.routers.registry import register_router

LOSSES = ("squared", "logistic")
NEWTON_STEPS = 25
NEWTON_TOLERANCE = 1e-6


def weighted_ridge(
    X: FloatArray, Y: FloatArray, weight: FloatArray, alpha: float
) -> tuple[FloatArray, FloatArray]:
    """Coefficients (``d x k``) and intercepts (``k``) minimising, for every column of ``Y``,
    ``sum w (y - X b - c)^2 + alpha |b|^2`` (the intercept is not penalised).

    Closed form on weight-centred data; the dual form when there are fewer prompts than
    features (TF-IDF), so the system solved is never larger than ``min(n, d)``.
    """
    total = weight.sum()
    x_mean = weight @ X / total
    y_mean = weight @ Y / total
    root = np.sqrt(weight)[:, None]
    Xs, Ys = (X - x_mean) * root, (Y - y_mean) * root
    if len(Xs) < Xs.shape[1]:
        gram = Xs @ Xs.T
        gram[np.diag_indices_from(gram)] += alpha
        coef = Xs.T @ np.linalg.solve(gram, Ys)
    else:
        gram = Xs.T @ Xs
        gram[np.diag_indices_from(gram)] += alpha
        coef = np.linalg.solve(gram, Xs.T @ Ys)
    return coef, y_mean - x_mean @ coef


def _sigmoid(z: FloatArray) -> FloatArray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))


def logistic_ridge(X: FloatArray, y: FloatArray, alpha: float) -> tuple[FloatArray, float]:
    """L2-regularised logistic regression (soft labels in [0, 1] allowed) by Newton's method:
    each step is a `weighted_ridge` on the working response."""
    coef, intercept = np.zeros(X.shape[1]), 0.0
    for _ in range(NEWTON_STEPS):
        eta = X @ coef + intercept
        p = _sigmoid(eta)
        w = np.clip(p * (1.0 - p), 1e-6, None)
        new_coef, new_intercept = weighted_ridge(X, (eta + (y - p) / w)[:, None], w, alpha)
        change = max(
            np.abs(new_coef[:, 0] - coef).max(initial=0.0), abs(new_intercept[0] - intercept)
        )
        coef, intercept = new_coef[:, 0], float(new_intercept[0])
        if change < NEWTON_TOLERANCE:
            break
    return coef, intercept


@register_router("linear")
class LinearRouter(EmbeddingRouter):
    """Per-model ridge (``loss="squared"``) or logistic (``loss="logistic"``, scores in [0, 1])
    regression with penalty ``alpha``; a model without any known score predicts NaN.

    Features arrive scaled to unit mean row norm (`EmbeddingRouter`), so one ``alpha`` suits
    every featuriser; 30 won on validation splits of four public train sets.

    ``task_prior`` (squared loss only): on data with several tasks, fit the deviations from each
    task's mean and add the predicted task's mean back (`codyn.routers.tasks`). The logistic
    loss models pass rates in [0, 1] directly and ignores it.
    """

    def __init__(
        self,
        alpha: float = 30.0,
        loss: str = "squared",
        task_prior: bool = True,
        featuriser: str = DEFAULT_FEATURISER,
    ) -> None:
        super().__init__(featuriser)
        self.alpha = alpha
        self.loss = loss
        self.task_prior = task_prior

    def _check_params(self) -> None:
        if self.loss not in LOSSES:
            raise CodynError(f"linear: loss must be one of {', '.join(LOSSES)}, got {self.loss!r}")
        if not self.alpha > 0:
            raise CodynError(f"linear: alpha must be > 0, got {self.alpha!r}")

    def _centres_on_tasks(self) -> bool:
        return self.task_prior and self.loss == "squared"

    def _fit_features(self, X: Features, train: RoutingData) -> None:
        score = train.score
        if self.loss == "logistic" and ((score < 0) | (score > 1)).any():
            raise CodynError("linear: loss='logistic' needs scores in [0, 1]; use 'squared'")
        X64 = X.astype(np.float64)
        self.coef_ = np.full((X.shape[1], score.shape[1]), np.nan)
        self.intercept_ = np.full(score.shape[1], np.nan)
        known = ~np.isnan(score)
        if self.loss == "logistic":
            for j in np.flatnonzero(known.any(axis=0)):
                rows = known[:, j]
                self.coef_[:, j], self.intercept_[j] = logistic_ridge(
                    X64[rows], score[rows, j], self.alpha
                )
            return
        # Models scored on the same prompts (usually all of them) share one solve.
        patterns, group = np.unique(known.T, axis=0, return_inverse=True)
        for g, rows in enumerate(patterns):
            columns = np.flatnonzero(group.ravel() == g)
            if rows.any():
                self.coef_[:, columns], self.intercept_[columns] = weighted_ridge(
                    X64[rows], score[np.ix_(rows, columns)], np.ones(int(rows.sum())), self.alpha
                )

    def _predict_features(self, X: Features) -> FloatArray:
        eta = X.astype(np.float64) @ self.coef_ + self.intercept_
        return _sigmoid(eta) if self.loss == "logistic" else eta

    def _head_state(self) -> State:
        return {}, {"coef": self.coef_, "intercept": self.intercept_}

    def _set_head_state(self, state: dict[str, Any], arrays: Arrays) -> None:
        coef, intercept = arrays["coef"], arrays["intercept"]
        n_models = len(self.model_names_)
        if coef.ndim != 2 or coef.shape[1] != n_models or intercept.shape != (n_models,):
            raise ValueError(f"linear weights do not fit {n_models} models")
        self.coef_, self.intercept_ = coef.astype(np.float64), intercept.astype(np.float64)
