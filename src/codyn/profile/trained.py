"""The trained profiler's parts: difficulty levels from observed scores and a softmax head.

DynaRoute asks an LLM for a prompt's category and level (`codyn.profile.llm`). With labelled
prompts, a classifier on prompt embeddings does the same in milliseconds: categories come from
the data's task names through an editable map (``data/task_categories.yaml``), levels from how
many of the data's models failed the prompt. The `profile` router holds two `SoftmaxHead`s on
its featurisers' columns, one per question.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from codyn.errors import DataError
from codyn.profile.taxonomy import Taxonomy, data_file

FloatArray = NDArray[np.float64]
LEVEL_CUTS = (1 / 3, 2 / 3)
"""Shares of failing models where a prompt's observed level steps up: below 1/3 of the models
failing it is level 1 (simple), below 2/3 level 2, else level 3."""


def observed_levels(score: FloatArray, cuts: Sequence[float] = LEVEL_CUTS) -> NDArray[np.int64]:
    """Level 1-3 per prompt from its scores (``n x m``, in [0, 1], NaN unknown): the share of
    models failing it, ``1 - mean score``, against ``cuts``; a prompt no model scored is 0."""
    known = ~np.isnan(score)
    counts = known.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        failing = 1.0 - np.where(known, score, 0.0).sum(axis=1) / counts
    levels = 1 + (failing[:, None] >= np.asarray(cuts)[None, :]).sum(axis=1)
    return np.where(counts > 0, levels, 0).astype(np.int64)


def load_task_map(path: str | Path | None, taxonomy: Taxonomy) -> dict[str, str]:
    """Task name -> domain (shipped ``data/task_categories.yaml`` or a user's file)."""
    from codyn.catalog import read_yaml

    source = Path(path) if path is not None else data_file("task_categories.yaml")
    mapping: dict[str, str] = {}
    for task, domain in read_yaml(source).items():
        found = taxonomy.canonical(str(domain))
        if found is None:
            raise DataError(f"{source}: {task}: {domain!r} is not a domain of {taxonomy.source}")
        mapping[str(task)] = found
    return mapping


def task_categories(
    tasks: Sequence[str], task_map: Mapping[str, str], taxonomy: Taxonomy
) -> list[str]:
    """Each task's domain: the map's, else the domain the task names, else the fallback."""
    return [task_map.get(t) or taxonomy.canonical(t) or taxonomy.fallback for t in tasks]


@dataclass(frozen=True)
class SoftmaxHead:
    """Multinomial logistic regression on features: ``classes`` and ``coef`` (``d x k``),
    ``intercept`` (``k``); one class predicts itself with probability 1."""

    classes: list[str]
    coef: FloatArray
    intercept: FloatArray

    @classmethod
    def fit(cls, X: FloatArray, labels: Sequence[str], alpha: float = 1.0) -> SoftmaxHead:
        """L2 penalty ``alpha`` (scikit-learn's ``C = 1 / alpha``), deterministic lbfgs."""
        from sklearn.linear_model import LogisticRegression

        classes = sorted(set(labels))
        if len(classes) == 1:
            return cls(classes, np.zeros((X.shape[1], 1)), np.zeros(1))
        model = LogisticRegression(C=1.0 / alpha, max_iter=2000)
        model.fit(X, np.asarray(labels, dtype=object))
        coef, intercept = model.coef_.T, model.intercept_
        if len(classes) == 2:  # scikit-learn keeps one column for two classes
            coef, intercept = np.hstack([-coef / 2, coef / 2]), np.array([-1, 1]) * intercept / 2
        return cls([str(c) for c in model.classes_], coef.astype(np.float64), intercept)

    def probabilities(self, X: FloatArray) -> FloatArray:
        logits = X @ self.coef + self.intercept
        logits -= logits.max(axis=1, keepdims=True)
        odds = np.exp(logits)
        return odds / odds.sum(axis=1, keepdims=True)

    def predict(self, X: FloatArray) -> tuple[list[str], FloatArray]:
        """The most probable class per row and its probability (the profile's confidence)."""
        proba = self.probabilities(X)
        best = proba.argmax(axis=1)
        return [self.classes[i] for i in best], proba[np.arange(len(best)), best]
