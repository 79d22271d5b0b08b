"""Reference routers every learned router is compared with: random, oracle, single model,
cheapest and single best (SBS). They need no features, so they also exercise the contract."""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
from numpy.typing import NDArray

from codyn.data.routing import RoutingData
from codyn.errors import CodynError
from codyn.routers.base import Arrays, Router, State
from codyn.routers.registry import register_router

FloatArray = NDArray[np.float64]


def _one_hot(n_prompts: int, n_models: int, column: int) -> FloatArray:
    predicted = np.zeros((n_prompts, n_models))
    predicted[:, column] = 1.0
    return predicted


def _column_means(matrix: FloatArray) -> FloatArray:
    """Per-model mean over the prompts where the value is known (NaN where none is)."""
    known = ~np.isnan(matrix)
    counts = known.sum(axis=0)
    sums = np.where(known, matrix, 0.0).sum(axis=0)
    return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)


def _vector(arrays: Arrays, name: str, size: int) -> FloatArray:
    """A saved per-model array, checked against the number of models."""
    vector = np.asarray(arrays[name], dtype=np.float64)
    if vector.shape != (size,):
        raise ValueError(f"{name} has shape {vector.shape}, expected ({size},)")
    return vector


@register_router("random")
class RandomRouter(Router):
    """Uniform random quality per (prompt, model); argmax is a uniform random choice.

    Each prompt's numbers come from a hash of ``seed`` and its text, so the same prompt gets the
    same prediction whatever batch it arrives in, and runs are reproducible.
    """

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed

    def _predict(self, texts: list[str], data: RoutingData | None) -> FloatArray:
        n_models = len(self.model_names_)
        predicted = np.empty((len(texts), n_models))
        for i, text in enumerate(texts):
            key = hashlib.blake2b(f"{self.seed}\0{text}".encode(), digest_size=16).digest()
            predicted[i] = np.random.default_rng(int.from_bytes(key, "little")).random(n_models)
        return predicted


@register_router("oracle")
class OracleRouter(Router):
    """The true scores as predictions: the upper bound of any router.

    ``predict`` needs a `RoutingData` that carries the scores of the fitted models; missing
    scores become -inf so that no policy prefers them.
    """

    def _predict(self, texts: list[str], data: RoutingData | None) -> FloatArray:
        if data is None:
            raise CodynError(
                "OracleRouter reads the true scores: pass the RoutingData, not prompt strings"
            )
        missing = [name for name in self.model_names_ if name not in data.model_names]
        if missing:
            raise CodynError(f"OracleRouter: the data has no scores for {', '.join(missing)}")
        score = data.score[:, [data.model_index(name) for name in self.model_names_]]
        return np.where(np.isnan(score), -np.inf, score)


@register_router("single", arg="model")
class SingleModelRouter(Router):
    """Always the one named model (one-hot predictions): each model's own operating point."""

    def __init__(self, model: str) -> None:
        self.model = model

    def _fit(self, train: RoutingData) -> None:
        self._check_model()

    def _set_state(self, state: dict[str, Any], arrays: Arrays) -> None:
        self._check_model()

    def _check_model(self) -> None:
        if self.model not in self.model_names_:
            raise CodynError(
                f"unknown model {self.model!r}; the models are: {', '.join(self.model_names_)}"
            )

    def _predict(self, texts: list[str], data: RoutingData | None) -> FloatArray:
        column = self.model_names_.index(self.model)
        return _one_hot(len(texts), len(self.model_names_), column)


@register_router("cheapest")
class CheapestRouter(Router):
    """Predicts ``1 - cost / max(cost)`` from the training mean cost per call: cheapest wins."""

    mean_cost_: FloatArray

    def _fit(self, train: RoutingData) -> None:
        mean_cost = train.mean_cost()
        unknown = [
            name for name, c in zip(train.model_names, mean_cost, strict=True) if np.isnan(c)
        ]
        if unknown:
            raise CodynError(
                f"CheapestRouter needs training costs; none for {', '.join(unknown)} "
                f"({train.describe_costs()})"
            )
        self.mean_cost_ = mean_cost

    def _state(self) -> State:
        return {}, {"mean_cost": self.mean_cost_}

    def _set_state(self, state: dict[str, Any], arrays: Arrays) -> None:
        self.mean_cost_ = _vector(arrays, "mean_cost", len(self.model_names_))

    def _predict(self, texts: list[str], data: RoutingData | None) -> FloatArray:
        top = float(self.mean_cost_.max())
        quality = 1.0 - self.mean_cost_ / top if top > 0 else np.ones_like(self.mean_cost_)
        return np.tile(quality, (len(texts), 1))


@register_router("sbs")
class SBSRouter(Router):
    """The single best model on the training split (best mean score; ties -> cheaper), one-hot.

    Models without training costs count as the most expensive in a tie.
    """

    mean_score_: FloatArray
    best_model_: str

    def _fit(self, train: RoutingData) -> None:
        self.mean_score_ = _column_means(train.score)
        means = np.nan_to_num(self.mean_score_, nan=-np.inf)
        tied = np.flatnonzero(means == means.max())
        costs = np.nan_to_num(train.mean_cost()[tied], nan=np.inf)
        self.best_model_ = self.model_names_[int(tied[np.argmin(costs)])]

    def _state(self) -> State:
        return {"best_model": self.best_model_}, {"mean_score": self.mean_score_}

    def _set_state(self, state: dict[str, Any], arrays: Arrays) -> None:
        if state["best_model"] not in self.model_names_:
            raise ValueError(f"best_model {state['best_model']!r} is not one of the models")
        self.best_model_ = state["best_model"]
        self.mean_score_ = _vector(arrays, "mean_score", len(self.model_names_))

    def _predict(self, texts: list[str], data: RoutingData | None) -> FloatArray:
        column = self.model_names_.index(self.best_model_)
        return _one_hot(len(texts), len(self.model_names_), column)
