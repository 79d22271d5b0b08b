"""`knn`: each model's quality on a prompt = the (similarity-weighted) mean of its scores on the
k most similar train prompts (the RouterBench kNN baseline, n-way).

Similarity is the cosine of the prompt features, computed as one matrix product on L2-normalised
rows: for a few thousand train prompts that beats a tree search and needs no scikit-learn.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from codyn.data.routing import RoutingData
from codyn.errors import CodynError
from codyn.features.base import l2_normalise
from codyn.routers.base import Arrays, State
from codyn.routers.embedding import DEFAULT_FEATURISER, EmbeddingRouter, Features, FloatArray
from codyn.routers.registry import register_router

WEIGHTINGS = ("uniform", "similarity")
_CHUNK = 1024
"""Query prompts per similarity block: bounds memory to ``_CHUNK x n_train`` floats."""
_FEW = 8
"""Up to this many query prompts, similarities come from einsum's own loop instead of BLAS:
waking BLAS worker threads on a busy 2-core machine took the p50 of one decision from 0.5 ms to
16 ms (5,500 train prompts), and a single row gains nothing from threads."""


@register_router("knn")
class KNNRouter(EmbeddingRouter):
    """Cosine k-nearest-neighbour regression of every model's score.

    ``weights="uniform"`` averages the k neighbours' scores; ``"similarity"`` weights each by its
    cosine similarity (clipped at 0), so closer prompts count more. Missing scores (NaN) are
    skipped per model; a model with no known score among the neighbours gets its train mean (NaN
    if it has none). ``k`` larger than the train set uses every train prompt.

    ``task_prior`` (on by default): on data with several tasks, the neighbours' deviations from
    their own task's mean are averaged and added to the prompt's predicted task mean
    (`codyn.routers.tasks`), so neighbours from another task no longer blur the estimate.
    """

    def __init__(
        self,
        k: int = 300,
        weights: str = "similarity",
        task_prior: bool = True,
        featuriser: str = DEFAULT_FEATURISER,
    ) -> None:
        super().__init__(featuriser)
        self.k = k
        self.weights = weights
        self.task_prior = task_prior

    def _check_params(self) -> None:
        if not isinstance(self.k, int) or self.k < 1:
            raise CodynError(f"knn: k must be a positive integer, got {self.k!r}")
        if self.weights not in WEIGHTINGS:
            raise CodynError(f"knn: weights must be one of {', '.join(WEIGHTINGS)}")

    def _fit_features(self, X: Features, train: RoutingData) -> None:
        self.X_ = l2_normalise(np.array(X, dtype=np.float32))
        self.scores_ = np.asarray(train.score, dtype=np.float64)
        known = ~np.isnan(self.scores_)
        with np.errstate(invalid="ignore"):
            self.prior_ = np.where(known, self.scores_, 0.0).sum(axis=0) / known.sum(axis=0)

    def _predict_features(self, X: Features) -> FloatArray:
        queries = l2_normalise(np.array(X, dtype=np.float32))
        return np.concatenate(
            [self._predict_block(queries[i : i + _CHUNK]) for i in range(0, len(X), _CHUNK)]
            or [np.empty((0, self.scores_.shape[1]))]
        )

    def _predict_block(self, queries: Features) -> FloatArray:
        if len(queries) <= _FEW:
            similarity = np.einsum("qd,nd->qn", queries, self.X_)
        else:
            similarity = queries @ self.X_.T
        k = min(self.k, similarity.shape[1])
        if k < similarity.shape[1]:
            nearest = np.argpartition(-similarity, k - 1, axis=1)[:, :k]
        else:
            nearest = np.broadcast_to(np.arange(k), (len(queries), k))
        if self.weights == "uniform":
            weight = np.ones(nearest.shape)
        else:
            weight = np.clip(np.take_along_axis(similarity, nearest, axis=1), 0.0, None)
        scores = self.scores_[nearest]  # n x k x m
        known = ~np.isnan(scores)
        w = weight[:, :, None] * known
        total = w.sum(axis=1)
        mean = np.einsum("nkm,nkm->nm", w, np.where(known, scores, 0.0))
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(total > 0, mean / total, self.prior_)

    def _head_state(self) -> State:
        return {}, {"X": self.X_, "scores": self.scores_, "prior": self.prior_}

    def _set_head_state(self, state: dict[str, Any], arrays: Arrays) -> None:
        X, scores = arrays["X"].astype(np.float32), arrays["scores"].astype(np.float64)
        n_models = len(self.model_names_)
        if scores.shape != (len(X), n_models) or arrays["prior"].shape != (n_models,):
            raise ValueError(f"knn arrays do not fit {len(X)} prompts x {n_models} models")
        self.X_, self.scores_, self.prior_ = X, scores, arrays["prior"].astype(np.float64)
