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
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from codyn.data.routing import RoutingData
from codyn.errors import CodynError
from codyn.features.base import Featuriser, TruncationStats, featuriser_from_config
from codyn.routers.base import Arrays, Router, State

DEFAULT_FEATURISER = "static+tfidf"
FEATURISER_PREFIX = "featuriser."
"""Prefix of the featurisers' arrays in ``weights.npz``; a subclass must not use it."""

Features = NDArray[np.float32]
FloatArray = NDArray[np.float64]


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
        return self._join([featuriser.transform(texts) for featuriser in self.featurisers_])

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

    def _fit(self, train: RoutingData) -> None:
        self._check_params()
        texts = train.texts
        self.featurisers_ = [
            featuriser_from_config({"name": name}).fit(texts)
            for name in featuriser_names(self.featuriser)
        ]
        blocks = [featuriser.transform(texts) for featuriser in self.featurisers_]
        norms = [float(np.linalg.norm(block, axis=1).mean()) for block in blocks]
        self.block_scales_ = [1.0 / norm if norm > 0 else 1.0 for norm in norms]
        self._fit_features(self._join(blocks), train)

    def _predict(self, texts: list[str], data: RoutingData | None) -> FloatArray:
        empty = [i for i, text in enumerate(texts) if not text.strip()]
        if empty:
            raise CodynError(
                f"{len(empty)} empty prompt(s) (first at position {empty[0]}): "
                "there is nothing to route on"
            )
        return self._predict_features(self.transform(texts))

    def _state(self) -> State:
        state, arrays = self._head_state()
        if {"featurisers", "block_scales"} & set(state) or any(
            k.startswith(FEATURISER_PREFIX) for k in arrays
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
        return {**state, "featurisers": saved, "block_scales": self.block_scales_}, arrays

    def _set_state(self, state: dict[str, Any], arrays: Arrays) -> None:
        self._check_params()
        head_state = dict(state)
        saved = head_state.pop("featurisers")
        self.block_scales_ = [float(scale) for scale in head_state.pop("block_scales")]
        names = [record["config"]["name"] for record in saved]
        if names != featuriser_names(self.featuriser) or len(self.block_scales_) != len(names):
            raise CodynError(f"saved featurisers {names} do not match {self.featuriser!r}")
        self.featurisers_ = []
        for name, record in zip(names, saved, strict=True):
            prefix = f"{FEATURISER_PREFIX}{name}."
            own = {k.removeprefix(prefix): v for k, v in arrays.items() if k.startswith(prefix)}
            own |= {k: np.array(v, dtype=str) for k, v in record["text_arrays"].items()}
            self.featurisers_.append(featuriser_from_config(record["config"], own))
        head_arrays = {k: v for k, v in arrays.items() if not k.startswith(FEATURISER_PREFIX)}
        self._set_head_state(head_state, head_arrays)
