"""RoRF (Not-Diamond): one random forest per model pair on the joint outcome, made n-way.

For a pair ``(a, b)`` each training prompt gets one of four labels (`LABELS`): both fail, only
``a`` passes, only ``b`` passes, both pass (CoDyn paper section 6.1.1). With soft scores, "only
``a``" means ``a`` scored higher, and a tie counts as "both pass" when the common score is at
least ``pass_threshold``; on 0/1 scores this is exactly RoRF's labelling. A scikit-learn
`RandomForestClassifier` learns the labels per pair: RoRF's 100 trees of depth at most 20, but
leaves of at least 5 prompts and trees grown on half-size bootstrap samples, which on our
validation splits scored as well as RoRF's fully grown trees with a third of the nodes (36
pairs x 100 trees on 5,489 prompts: 2.0M nodes, 64 MB of weights, 83 s to fit on 2 cores).

The pairwise win probability is ``P(only a) + (P(both fail) + P(both pass)) / 2`` (RoRF gives a
tie to one side as a cost preference; here costs are the policy's job), and the n-way
prediction is the Bradley-Terry fit to these probabilities per prompt (`codyn.routers._pairs`),
calibrated per model into expected scores on the forests' out-of-bag predictions.

Scikit-learn is used at training time only: the trees are stored as flat arrays in
``weights.npz`` (children, split feature, threshold, leaf class probabilities), never pickled,
and `predict` walks all trees of all pairs at once in numpy (`walk_forest`). With more than
``max_pairs`` model pairs only pairs of models close in training mean score are kept.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from codyn.data.routing import RoutingData
from codyn.errors import CodynError
from codyn.routers._pairs import (
    FloatArray,
    IntArray,
    all_pairs,
    bradley_terry,
    calibrated,
    fit_calibration,
)
from codyn.routers.base import Arrays, State
from codyn.routers.embedding import DEFAULT_FEATURISER, EmbeddingRouter, Features
from codyn.routers.registry import register_router

LABELS = ("both fail", "only a", "only b", "both pass")
"""The joint-outcome classes of a model pair ``(a, b)``, in label order 0-3."""
FOREST_ARRAYS = ("left", "right", "feature", "threshold", "proba", "roots")
_WALK_CELLS = 1_000_000
"""Prompts x trees walked at once: bounds the walker's memory."""


def joint_labels(score_a: FloatArray, score_b: FloatArray, pass_threshold: float) -> IntArray:
    """The `LABELS` index per prompt for a pair's two score columns (no NaN)."""
    tie_pass = np.where(score_a >= pass_threshold, 3, 0)
    return np.where(score_a > score_b, 1, np.where(score_a < score_b, 2, tie_pass)).astype(np.int64)


def win_probability(proba: FloatArray) -> FloatArray:
    """``P(a beats b)`` from the four label probabilities (last axis), a tie counting half."""
    return proba[..., 1] + 0.5 * (proba[..., 0] + proba[..., 3])


def close_pairs(mean_score: FloatArray, max_pairs: int) -> IntArray:
    """All model pairs if there are at most ``max_pairs``; otherwise the pairs at most ``k``
    places apart in the ranking by ``mean_score``, with the largest ``k >= 1`` that fits (a
    connected pair graph, so Bradley-Terry still ranks every model)."""
    n_models = len(mean_score)
    pairs = all_pairs(n_models)
    if len(pairs) <= max_pairs:
        return pairs
    rank = np.empty(n_models, dtype=np.int64)
    rank[np.argsort(-np.nan_to_num(mean_score, nan=-np.inf), kind="stable")] = np.arange(n_models)
    apart = np.abs(rank[pairs[:, 0]] - rank[pairs[:, 1]])
    sizes = np.cumsum(np.bincount(apart, minlength=n_models))
    k = max(1, int(np.searchsorted(sizes, max_pairs, side="right")) - 1)
    return pairs[apart <= k]


@dataclass
class Forest:
    """Trees as flat arrays: node ``i`` sends ``x`` to ``left[i]`` if
    ``x[feature[i]] <= threshold[i]`` else to ``right[i]``; a leaf points to itself (threshold
    +inf). ``proba`` holds each node's class probabilities over `LABELS`; ``roots`` the first
    node of every tree; ``depth`` the deepest tree's depth (steps to reach every leaf)."""

    left: NDArray[np.int32]
    right: NDArray[np.int32]
    feature: NDArray[np.int32]
    threshold: NDArray[np.float32]
    proba: NDArray[np.float32]
    roots: NDArray[np.int64]
    depth: int

    @classmethod
    def from_estimators(cls, estimators: list[Any], classes: list[IntArray]) -> Forest:
        """Flatten fitted scikit-learn trees; ``classes[i]`` names the label of each column of
        tree ``i``'s values. float64 thresholds become the largest float32 not above them, which
        splits float32 inputs exactly as scikit-learn does."""
        parts: dict[str, list[Any]] = {name: [] for name in FOREST_ARRAYS}
        offset, depth = 0, 0
        for estimator, labels in zip(estimators, classes, strict=True):
            tree = estimator.tree_
            ids = np.arange(tree.node_count)
            leaf = tree.children_left < 0
            value = tree.value[:, 0, :]
            proba = np.zeros((tree.node_count, len(LABELS)))
            proba[:, labels] = value / value.sum(axis=1, keepdims=True)
            threshold = tree.threshold.astype(np.float32)
            threshold = np.where(
                threshold > tree.threshold, np.nextafter(threshold, -np.inf), threshold
            )
            parts["left"].append(np.where(leaf, ids, tree.children_left) + offset)
            parts["right"].append(np.where(leaf, ids, tree.children_right) + offset)
            parts["feature"].append(np.where(leaf, 0, tree.feature))
            parts["threshold"].append(np.where(leaf, np.inf, threshold))
            parts["proba"].append(proba)
            parts["roots"].append([offset])
            offset += tree.node_count
            depth = max(depth, tree.max_depth)
        arrays = {name: np.concatenate(chunks) for name, chunks in parts.items()}
        return cls.from_arrays(arrays, depth)

    @classmethod
    def from_arrays(cls, arrays: Arrays, depth: int) -> Forest:
        return cls(
            left=np.asarray(arrays["left"], dtype=np.int32),
            right=np.asarray(arrays["right"], dtype=np.int32),
            feature=np.asarray(arrays["feature"], dtype=np.int32),
            threshold=np.asarray(arrays["threshold"], dtype=np.float32),
            proba=np.asarray(arrays["proba"], dtype=np.float32),
            roots=np.asarray(arrays["roots"], dtype=np.int64),
            depth=int(depth),
        )

    def arrays(self) -> Arrays:
        return {name: getattr(self, name) for name in FOREST_ARRAYS}


def walk_forest(forest: Forest, X: Features) -> NDArray[np.float32]:
    """Class probabilities of every tree: ``len(X) x n_trees x len(LABELS)``, all trees walked
    together level by level. The mean over a forest's trees equals its ``predict_proba``."""
    X = np.asarray(X, dtype=np.float32)
    n_trees = len(forest.roots)
    out = np.empty((len(X), n_trees, len(LABELS)), dtype=np.float32)
    chunk = max(1, _WALK_CELLS // max(n_trees, 1))
    for start in range(0, len(X), chunk):
        block = X[start : start + chunk]
        rows = np.arange(len(block))[:, None]
        node = np.broadcast_to(forest.roots, (len(block), n_trees)).copy()
        for _ in range(forest.depth):
            goes_left = block[rows, forest.feature[node]] <= forest.threshold[node]
            node = np.where(goes_left, forest.left[node], forest.right[node])
        out[start : start + len(block)] = forest.proba[node]
    return out


@register_router("rorf")
class RoRFRouter(EmbeddingRouter):
    """Pairwise random forests on the four joint-outcome labels, combined by Bradley-Terry.

    ``n_estimators``, ``max_depth``, ``min_samples_leaf``, ``max_features``, ``max_samples``:
    each pair's `RandomForestClassifier`; ``n_jobs`` its threads (-1: every core; the trees do
    not depend on it). ``max_pairs``: most model pairs
    trained (all of them up to 11 models). ``pass_threshold``: the score that counts as a pass
    in a tie. ``prior``: virtual ties per pair in the Bradley-Terry fit. Predictions are
    expected scores.
    """

    pairs_: IntArray
    forest_: Forest
    intercept_: FloatArray
    slope_: FloatArray

    def __init__(
        self,
        featuriser: str = DEFAULT_FEATURISER,
        n_estimators: int = 100,
        max_depth: int | None = 20,
        min_samples_leaf: int = 5,
        max_features: str | float = "sqrt",
        max_samples: float | None = 0.5,
        max_pairs: int = 55,
        pass_threshold: float = 0.5,
        prior: float = 0.1,
        seed: int = 0,
        n_jobs: int = -1,
    ) -> None:
        super().__init__(featuriser)
        self.n_estimators = n_estimators
        self.max_depth = max_depth
        self.min_samples_leaf = min_samples_leaf
        self.max_features = max_features
        self.max_samples = max_samples
        self.max_pairs = max_pairs
        self.pass_threshold = pass_threshold
        self.prior = prior
        self.seed = seed
        self.n_jobs = n_jobs

    def _check_params(self) -> None:
        if not isinstance(self.max_pairs, int) or self.max_pairs < 1:
            raise CodynError(f"rorf: max_pairs must be a positive integer, got {self.max_pairs!r}")
        if not self.prior > 0:
            raise CodynError(f"rorf: prior must be > 0, got {self.prior}")

    def _fit_features(self, X: Features, train: RoutingData) -> None:
        from sklearn.ensemble import RandomForestClassifier

        score = np.asarray(train.score, dtype=np.float64)
        known = ~np.isnan(score)
        mean = np.where(known, score, 0.0).sum(0) / np.maximum(known.sum(0), 1)
        self.pairs_ = close_pairs(mean, self.max_pairs)
        held_out = np.full((len(X), len(self.pairs_)), np.nan)
        estimators, classes = [], []
        for p, (a, b) in enumerate(self.pairs_):
            rows = np.flatnonzero(known[:, a] & known[:, b])
            if len(rows) == 0:
                names = self.model_names_[a], self.model_names_[b]
                raise CodynError(f"rorf: no training prompt has scores of both {names}")
            labels = joint_labels(score[rows, a], score[rows, b], self.pass_threshold)
            forest = RandomForestClassifier(
                n_estimators=self.n_estimators,
                max_depth=self.max_depth,
                min_samples_leaf=self.min_samples_leaf,
                max_features=self.max_features,
                max_samples=self.max_samples,
                oob_score=len(rows) > 1,
                random_state=self.seed + p,
                n_jobs=self.n_jobs,
            )
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # prompts never out of bag: NaN
                forest.fit(X[rows], labels)
            estimators += forest.estimators_
            classes += [forest.classes_] * len(forest.estimators_)
            if len(rows) > 1:
                oob = np.zeros((len(rows), len(LABELS)))
                oob[:, forest.classes_] = forest.oob_decision_function_
                held_out[rows, p] = win_probability(oob)
        self.forest_ = Forest.from_estimators(estimators, classes)
        strength = self._strengths(held_out)
        self.intercept_, self.slope_ = fit_calibration(strength, score)

    def _strengths(self, win: FloatArray) -> FloatArray:
        """Bradley-Terry strengths from pairwise win probabilities (NaN = pair unknown)."""
        counted = (~np.isnan(win)).astype(np.float64)
        return bradley_terry(
            np.nan_to_num(win), counted, self.pairs_, len(self.model_names_), self.prior
        )

    def _predict_features(self, X: Features) -> FloatArray:
        trees = walk_forest(self.forest_, X)
        proba = trees.reshape(len(X), len(self.pairs_), -1, len(LABELS)).mean(axis=2)
        return calibrated(self._strengths(win_probability(proba)), self.intercept_, self.slope_)

    def _head_state(self) -> State:
        arrays = self.forest_.arrays() | {
            "pairs": self.pairs_,
            "intercept": self.intercept_,
            "slope": self.slope_,
        }
        return {"depth": self.forest_.depth}, arrays

    def _set_head_state(self, state: dict[str, Any], arrays: Arrays) -> None:
        self.forest_ = Forest.from_arrays(arrays, state["depth"])
        self.pairs_ = np.asarray(arrays["pairs"], dtype=np.int64)
        self.intercept_ = np.asarray(arrays["intercept"], dtype=np.float64)
        self.slope_ = np.asarray(arrays["slope"], dtype=np.float64)
        n_models = len(self.model_names_)
        if (
            self.pairs_.ndim != 2
            or self.pairs_.shape[1] != 2
            or self.pairs_.max(initial=0) >= n_models
            or len(self.forest_.roots) % max(len(self.pairs_), 1)
            or self.intercept_.shape != (n_models,)
        ):
            raise CodynError(f"saved rorf arrays do not fit {n_models} models")
