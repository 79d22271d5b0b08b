"""`EmbeddingRouter`: the base of every router that learns on prompt features (kNN, MLP, ...).

Featurising is written once, here: the ``featuriser`` parameter names one featuriser of
`codyn.features` or several joined by ``+`` (their columns are concatenated), ``fit`` fits them
on the training prompts, and save / load keep their configs in ``router.json`` and their arrays
in ``weights.npz`` as ``featuriser.<name>.<array>`` (text arrays, such as a vocabulary, in the
JSON), so a saved router loads without pickle.

Each featuriser's columns are scaled so that their mean row norm on the train prompts is 1:
concatenated blocks then weigh alike in a cosine or a penalty whatever their units, and a
regularisation strength means the same across featurisers. A subclass only sees the float32
feature matrix: it implements `_fit_features` and `_predict_features`, and `_head_state` /
`_set_head_state` for what it learns.

A subclass that takes a ``task_prior`` parameter gets task centring (`codyn.routers.tasks`):
with it on and two or more tasks in the train data, the head is fitted on each score minus its
task's mean, and the task prior is added back to the head's predictions.
"""

from __future__ import annotations

import dataclasses
import os
import sqlite3
from abc import abstractmethod
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from codyn.data.routing import RoutingData
from codyn.errors import CodynError
from codyn.features.base import Featuriser, TruncationStats, featuriser_from_config
from codyn.features.cache import CachedFeaturiser, EmbeddingCache
from codyn.routers.base import Arrays, Router, State
from codyn.routers.tasks import TaskModel, fit_task_model

DEFAULT_FEATURISER = "static+tfidf"
FEATURISER_PREFIX = "featuriser."
"""Prefix of the featurisers' arrays in ``weights.npz``; a subclass must not use it."""
TASK_PREFIX = "task."
"""Prefix of the task model's arrays in ``weights.npz``; a subclass must not use it."""

Features = NDArray[np.float32]
FloatArray = NDArray[np.float64]

CACHE_SWITCH = "CODYN_EMBEDDING_CACHE"
"""Set to ``off`` to keep slow featurisers' embeddings out of the on-disk cache."""


def featurise(featuriser: Featuriser, texts: Sequence[str]) -> Features:
    """``featuriser.transform(texts)``, through the on-disk embedding cache for a slow
    featuriser (one with ``worth_caching``) and more than one text: fitting and evaluating
    several routers on one data set then embeds each prompt once. Single-prompt decisions (the
    proxy) never touch the disk, and an unusable cache directory just means no cache."""
    texts = list(texts)
    if (
        len(texts) > 1
        and getattr(featuriser, "worth_caching", False)
        and os.environ.get(CACHE_SWITCH, "on").lower() not in {"off", "0", "false", "no"}
    ):
        try:
            cache = EmbeddingCache()
        except (OSError, sqlite3.Error):
            cache = None
        if cache is not None:
            return CachedFeaturiser(featuriser, cache).transform(texts)
    return featuriser.transform(texts)


def featuriser_names(spec: str) -> list[str]:
    """``"static+structure"`` -> ``["static", "structure"]``; empty or repeated parts are errors."""
    names = [part.strip() for part in str(spec).split("+")]
    if not all(names) or len(set(names)) != len(names):
        raise CodynError(
            f"featuriser {spec!r}: give one featuriser name or distinct names joined by '+', "
            "e.g. static or static+structure"
        )
    return names


class EmbeddingRouter(Router):
    """A router on prompt features; ``featuriser`` is a name or ``"a+b"`` (columns concatenated).

    Predicting on an empty (or blank) prompt is a `CodynError`: there is nothing to route on.
    Prompts longer than a featuriser's limit are cut by it; `truncation` counts them.
    """

    featuriser: str
    featurisers_: list[Featuriser]
    block_scales_: list[float]
    task_prior: bool = False
    """Centre the head's targets on task means (a parameter of the subclasses that offer it)."""
    task_model_: TaskModel | None

    def __init__(self, featuriser: str = DEFAULT_FEATURISER) -> None:
        self.featuriser = featuriser

    # -- subclass hooks ---------------------------------------------------------------------

    def _check_params(self) -> None:
        """Raise a `CodynError` for bad hyper-parameters; runs before any featurising, and on
        load. Default: nothing to check."""

    @abstractmethod
    def _fit_features(self, X: Features, train: RoutingData) -> None:
        """Learn from the training features ``X`` (one row per prompt of ``train``)."""

    @abstractmethod
    def _predict_features(self, X: Features) -> FloatArray:
        """Predicted quality, ``len(X) x n_models``, from features made like the training ones."""

    def _head_state(self) -> State:
        """What the subclass learned (JSON-able dict, named arrays). Default: nothing."""
        return {}, {}

    def _set_head_state(self, state: dict[str, Any], arrays: Arrays) -> None:
        """Restore what `_head_state` returned (the featurisers are already rebuilt)."""

    # -- features ---------------------------------------------------------------------------

    def transform(self, texts: Sequence[str]) -> Features:
        """The fitted featurisers' columns for ``texts``, concatenated: ``(n, dim)`` float32."""
        self._check_fitted("transform")
        return self._join([featurise(featuriser, texts) for featuriser in self.featurisers_])

    def _join(self, blocks: list[Features]) -> Features:
        scaled = [block * scale for block, scale in zip(blocks, self.block_scales_, strict=True)]
        return np.hstack(scaled, dtype=np.float32)

    @property
    def truncation(self) -> TruncationStats:
        """Prompts featurised since fit or load, and how many a featuriser had to cut."""
        self._check_fitted("truncation")
        stats = [featuriser.stats for featuriser in self.featurisers_]
        return TruncationStats(
            seen=max(s.seen for s in stats), truncated=max(s.truncated for s in stats)
        )

    # -- Router hooks -----------------------------------------------------------------------

    def _centres_on_tasks(self) -> bool:
        """Whether this fit centres the head's targets on task means (see the module docstring)."""
        return self.task_prior

    def _check_task_prior(self) -> None:
        if not isinstance(self.task_prior, bool):
            raise CodynError(f"task_prior must be true or false, got {self.task_prior!r}")

    def _fit(self, train: RoutingData) -> None:
        self._check_params()
        self._check_task_prior()
        texts = train.texts
        self.featurisers_ = [
            featuriser_from_config({"name": name}).fit(texts)
            for name in featuriser_names(self.featuriser)
        ]
        blocks = [featurise(featuriser, texts) for featuriser in self.featurisers_]
        norms = [float(np.linalg.norm(block, axis=1).mean()) for block in blocks]
        self.block_scales_ = [1.0 / norm if norm > 0 else 1.0 for norm in norms]
        X = self._join(blocks)
        self.task_model_ = (
            fit_task_model(X, train.tasks, train.score) if self._centres_on_tasks() else None
        )
        if self.task_model_ is not None:
            residual = self.task_model_.residuals(train.score, train.tasks)
            train = dataclasses.replace(train, score=residual)
        self._fit_features(X, train)

    def _predict(self, texts: list[str], data: RoutingData | None) -> FloatArray:
        empty = [i for i, text in enumerate(texts) if not text.strip()]
        if empty:
            raise CodynError(
                f"{len(empty)} empty prompt(s) (first at position {empty[0]}): "
                "there is nothing to route on"
            )
        X = self.transform(texts)
        predicted = self._predict_features(X)
        if self.task_model_ is not None:
            predicted = self.task_model_.add_prior(X, predicted)
        return predicted

    def _state(self) -> State:
        state, arrays = self._head_state()
        if {"featurisers", "block_scales", "task_model"} & set(state) or any(
            k.startswith((FEATURISER_PREFIX, TASK_PREFIX)) for k in arrays
        ):
            raise CodynError(f"{type(self).__name__} state uses a name reserved for featurisers")
        saved = []
        for featuriser in self.featurisers_:
            prefix = f"{FEATURISER_PREFIX}{featuriser.name}."
            text = {}
            for key, value in featuriser.state().items():
                if value.dtype.kind in "US":  # e.g. a vocabulary: JSON, as weights are numeric
                    text[key] = value.tolist()
                else:
                    arrays[prefix + key] = value
            saved.append({"config": featuriser.config(), "text_arrays": text})
        task_state = None
        if self.task_model_ is not None:
            task_state, task_arrays = self.task_model_.state()
            arrays |= {TASK_PREFIX + key: value for key, value in task_arrays.items()}
        return {
            **state,
            "featurisers": saved,
            "block_scales": self.block_scales_,
            "task_model": task_state,
        }, arrays

    def _set_state(self, state: dict[str, Any], arrays: Arrays) -> None:
        self._check_params()
        self._check_task_prior()
        head_state = dict(state)
        saved = head_state.pop("featurisers")
        self.block_scales_ = [float(scale) for scale in head_state.pop("block_scales")]
        task_state = head_state.pop("task_model", None)  # absent in routers saved before it
        self.task_model_ = None
        if task_state is not None:
            task_arrays = {
                k.removeprefix(TASK_PREFIX): v
                for k, v in arrays.items()
                if k.startswith(TASK_PREFIX)
            }
            self.task_model_ = TaskModel.from_state(task_state, task_arrays)
        names = [record["config"]["name"] for record in saved]
        if names != featuriser_names(self.featuriser) or len(self.block_scales_) != len(names):
            raise CodynError(f"saved featurisers {names} do not match {self.featuriser!r}")
        self.featurisers_ = []
        for name, record in zip(names, saved, strict=True):
            prefix = f"{FEATURISER_PREFIX}{name}."
            own = {k.removeprefix(prefix): v for k, v in arrays.items() if k.startswith(prefix)}
            own |= {k: np.array(v, dtype=str) for k, v in record["text_arrays"].items()}
            self.featurisers_.append(featuriser_from_config(record["config"], own))
        head_arrays = {
            k: v for k, v in arrays.items() if not k.startswith((FEATURISER_PREFIX, TASK_PREFIX))
        }
        self._set_head_state(head_state, head_arrays)
