"""RouteLLM's similarity-weighted (SW) ranking, solved at inference time over all n models.

For a query ``q`` every training prompt ``q'`` gets the weight ``gamma ** (1 + S(q, q'))`` with
``S`` of eq. 9: the cosine similarity of ``q`` and ``q'``, divided by the largest cosine
similarity of ``q'`` to any *other* training prompt (over all of them, ``q'`` itself included,
that maximum would always be 1). The battles of every training prompt (`codyn.routers._pairs`:
higher score wins, ties as set by ``ties``) are then weighed by it, and a Bradley-Terry model
over all models is fitted for this query alone (eq. 10, n models instead of two; a few Newton
steps on ``m`` parameters). The strengths are calibrated per model into expected scores on
leave-one-out predictions for the training prompts (see `codyn.routers._pairs`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from codyn.data.routing import RoutingData
from codyn.errors import CodynError
from codyn.features.base import l2_normalise
from codyn.routers._pairs import (
    FloatArray,
    IntArray,
    Ties,
    all_pairs,
    battles,
    bradley_terry,
    calibrated,
    check_ties,
    fit_calibration,
)
from codyn.routers.base import Arrays, State
from codyn.routers.embedding import DEFAULT_FEATURISER, EmbeddingRouter, Features
from codyn.routers.registry import register_router

_CHUNK = 512
"""Queries weighed at once: bounds the ``queries x training prompts`` weight matrix."""
PRIOR_TIES = 1.0
"""Virtual ties per model pair, in units of one average-weight training prompt: keeps an
unbeaten model's strength finite and hardly moves the others."""
MIN_SCALE = 1e-3
"""Floor of eq. 9's denominator, for a training prompt unlike all others (cosine <= 0)."""


def nearest_other_similarity(x: Features) -> FloatArray:
    """Per row of unit vectors ``x``, the largest cosine similarity to any other row: eq. 9's
    denominator, floored at `MIN_SCALE` (1 when there is no other row)."""
    best = np.full(len(x), -np.inf)
    for start in range(0, len(x), _CHUNK):
        sims = x[start : start + _CHUNK] @ x.T
        rows = np.arange(len(sims))
        sims[rows, start + rows] = -np.inf
        best[start : start + _CHUNK] = sims.max(axis=1)
    return np.where(np.isfinite(best), np.maximum(best, MIN_SCALE), 1.0)


@register_router("sw_ranking")
class SWRankingRouter(EmbeddingRouter):
    """Similarity-weighted Bradley-Terry ranking (RouteLLM eq. 9-10) of all models per query.

    ``gamma``: base of the weights ``gamma ** (1 + S)`` (10 in the paper; 1 = one global fit,
    larger = more local).
    ``ties``: ``"half"`` (a tie is half a win each, as RouteLLM's Elo fit) or ``"drop"``.
    Predictions are expected scores (per-model calibration of the strengths).
    """

    features_: Features
    score_: FloatArray
    scale_: FloatArray
    intercept_: FloatArray
    slope_: FloatArray
    pairs_: IntArray
    won_: FloatArray
    counted_: FloatArray

    def __init__(
        self,
        featuriser: str = DEFAULT_FEATURISER,
        gamma: float = 10.0,
        ties: Ties = "half",
    ) -> None:
        super().__init__(featuriser)
        self.gamma = gamma
        self.ties = ties

    def _check_params(self) -> None:
        check_ties(self.ties)
        if not (self.gamma >= 1.0 and np.isfinite(self.gamma)):
            raise CodynError(f"sw_ranking: gamma must be a finite number >= 1, got {self.gamma}")

    def _fit_features(self, X: Features, train: RoutingData) -> None:
        self.features_ = l2_normalise(np.array(X, dtype=np.float32))
        self.score_ = np.asarray(train.score, dtype=np.float64)
        self.scale_ = nearest_other_similarity(self.features_)
        self._prepare()
        held_out = self._strengths(self.features_, leave_out=len(X) > 1)
        self.intercept_, self.slope_ = fit_calibration(held_out, self.score_)

    def _prepare(self) -> None:
        """Battle tables derived from the stored training scores."""
        self.pairs_ = all_pairs(self.score_.shape[1])
        outcome, self.counted_ = battles(self.score_, self.pairs_, self.ties)
        self.won_ = outcome * self.counted_

    def _strengths(self, queries: Features, *, leave_out: bool = False) -> FloatArray:
        """Bradley-Terry strengths per query; ``leave_out``: query ``i`` is training prompt ``i``
        and gets no weight in its own fit."""
        out = np.empty((len(queries), self.score_.shape[1]))
        for start in range(0, len(queries), _CHUNK):
            sims = (queries[start : start + _CHUNK] @ self.features_.T).astype(np.float64)
            log_w = np.log(self.gamma) * (sims / self.scale_)  # eq. 9, without the constant 1
            if leave_out:
                rows = np.arange(len(sims))
                log_w[rows, start + rows] = -np.inf
            weights = np.exp(log_w - log_w.max(axis=1, keepdims=True))  # relative weights suffice
            prior = PRIOR_TIES * weights.mean(axis=1)
            out[start : start + len(sims)] = bradley_terry(
                weights @ self.won_,
                weights @ self.counted_,
                self.pairs_,
                self.score_.shape[1],
                prior,
            )
        return out

    def _predict_features(self, X: Features) -> FloatArray:
        return calibrated(
            self._strengths(l2_normalise(np.array(X, dtype=np.float32))),
            self.intercept_,
            self.slope_,
        )

    def _head_state(self) -> State:
        arrays = {
            "features": self.features_,
            "score": self.score_,
            "scale": self.scale_,
            "intercept": self.intercept_,
            "slope": self.slope_,
        }
        return {}, arrays

    def _set_head_state(self, state: dict[str, Any], arrays: Arrays) -> None:
        self.features_ = np.asarray(arrays["features"], dtype=np.float32)
        self.score_ = np.asarray(arrays["score"], dtype=np.float64)
        self.scale_ = np.asarray(arrays["scale"], dtype=np.float64)
        self.intercept_ = np.asarray(arrays["intercept"], dtype=np.float64)
        self.slope_ = np.asarray(arrays["slope"], dtype=np.float64)
        n_train, n_models = self.score_.shape
        if self.score_.shape[1] != len(self.model_names_) or len(self.features_) != n_train:
            raise CodynError("saved sw_ranking arrays do not fit the models / training prompts")
        if self.scale_.shape != (n_train,) or self.intercept_.shape != (n_models,):
            raise CodynError("saved sw_ranking arrays have inconsistent shapes")
        self._prepare()
