"""Task centring: which task a prompt is from, and every model's mean score on each task.

Routing data that mixes tasks (LLMRouter's 14 benchmarks, MMLU's 57 subjects) carries most of
its per-model signal in the task: which model is best differs far more between tasks than
within one. A kNN or linear head on prompt features learns that only blurrily (300 neighbours
of a prompt from a 150-prompt task come partly from other tasks). `TaskModel` makes the task
explicit: a multinomial logistic regression on the router's own features gives P(task | x);
a model's prior quality on ``x`` is ``sum_t P(t | x) * mean_t``, and the router's head learns
only what is left, ``score - mean of the prompt's own task``. Data with a single task gets no
`TaskModel`, so centring changes nothing there.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from numpy.typing import NDArray

from codyn.routers.base import Arrays

FloatArray = NDArray[np.float64]

TASK_C = 10.0
"""Inverse L2 penalty of the task classifier (scikit-learn's ``C``) on features scaled to unit
mean row norm; won on 5-fold validation of LLMRouter's and MMLU's train sets."""
PSEUDO_PROMPTS = 5.0
"""A task's mean is shrunk towards the model's overall mean by this many virtual prompts, so a
task with a handful of prompts does not get a 0 or 1 prior."""
MIN_TASK_PROMPTS = 2
"""Tasks with fewer train prompts are folded into the others (a classifier needs examples)."""


class TaskModel:
    """P(task | features) and per-task mean scores; fitted by `fit_task_model`.

    ``classes_``: task names; ``coef_`` (``tasks x dim``) and ``intercept_`` (``tasks``): the
    softmax classifier; ``means_`` (``tasks x models``): shrunk mean score per task and model;
    ``low_`` / ``high_`` (``models``): each model's lowest and highest train score.
    """

    def __init__(
        self,
        classes: list[str],
        coef: FloatArray,
        intercept: FloatArray,
        means: FloatArray,
        low: FloatArray,
        high: FloatArray,
    ) -> None:
        if coef.shape[0] != len(classes) or intercept.shape != (len(classes),):
            raise ValueError(f"task classifier arrays do not fit {len(classes)} tasks")
        if means.ndim != 2 or means.shape[0] != len(classes):
            raise ValueError(f"task means do not fit {len(classes)} tasks")
        if np.shape(low) != (means.shape[1],) or np.shape(high) != (means.shape[1],):
            raise ValueError(f"score ranges do not fit {means.shape[1]} models")
        self.classes_ = list(classes)
        self.coef_ = np.asarray(coef, dtype=np.float32)
        self.intercept_ = np.asarray(intercept, dtype=np.float64)
        self.means_ = np.asarray(means, dtype=np.float64)
        self.low_ = np.asarray(low, dtype=np.float64)
        self.high_ = np.asarray(high, dtype=np.float64)

    def posterior(self, X: NDArray[np.floating[Any]]) -> FloatArray:
        """``n x tasks`` probabilities that each prompt belongs to each task."""
        logits = (np.asarray(X, dtype=np.float32) @ self.coef_.T).astype(np.float64)
        logits += self.intercept_
        logits -= logits.max(axis=1, keepdims=True)
        weights = np.exp(logits)
        return weights / weights.sum(axis=1, keepdims=True)

    def prior(self, X: NDArray[np.floating[Any]]) -> FloatArray:
        """``n x models``: the expected score of each model given only the prompt's task."""
        return self.posterior(X) @ self.means_

    def add_prior(self, X: NDArray[np.floating[Any]], residual: FloatArray) -> FloatArray:
        """A head's predicted ``residual`` plus the task prior, kept within each model's train
        score range: a prompt between tasks can otherwise come out a little below 0 or above
        1, which is no score any model had."""
        return np.clip(residual + self.prior(X), self.low_, self.high_)

    def residuals(self, score: FloatArray, tasks: NDArray[Any]) -> FloatArray:
        """``score`` minus the mean of each prompt's own task (the overall mean for a task the
        classifier does not know); NaN stays NaN."""
        index = {task: i for i, task in enumerate(self.classes_)}
        own = np.array([index.get(task, -1) for task in tasks])
        overall = self.means_.mean(axis=0)
        centre = np.where((own >= 0)[:, None], self.means_[np.maximum(own, 0)], overall)
        return np.asarray(score, dtype=np.float64) - centre

    def state(self) -> tuple[dict[str, Any], Arrays]:
        return {"classes": self.classes_}, {
            "coef": self.coef_,
            "intercept": self.intercept_,
            "means": self.means_,
            "low": self.low_,
            "high": self.high_,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any], arrays: Arrays) -> TaskModel:
        return cls(
            [str(c) for c in state["classes"]],
            arrays["coef"],
            arrays["intercept"],
            arrays["means"],
            arrays["low"],
            arrays["high"],
        )


def fit_task_model(
    X: NDArray[np.floating[Any]], tasks: NDArray[Any], score: FloatArray
) -> TaskModel | None:
    """A `TaskModel` for train features ``X``, their task labels and scores; ``None`` when
    fewer than two tasks have `MIN_TASK_PROMPTS` prompts (nothing to centre on)."""
    from sklearn.linear_model import LogisticRegression

    labels = np.asarray(tasks, dtype=object).astype(str)
    names, counts = np.unique(labels, return_counts=True)
    kept = names[counts >= MIN_TASK_PROMPTS]
    if len(kept) < 2:
        return None
    rows = np.isin(labels, kept)
    classifier = LogisticRegression(C=TASK_C, max_iter=500)
    classifier.fit(np.asarray(X, dtype=np.float32)[rows], labels[rows])
    coef, intercept = classifier.coef_, classifier.intercept_
    if len(classifier.classes_) == 2:  # one logit z: softmax([-z/2, z/2]) = sigmoid(z)
        coef = np.vstack([-coef[0] / 2, coef[0] / 2])
        intercept = np.array([-intercept[0] / 2, intercept[0] / 2])
    score = np.asarray(score, dtype=np.float64)
    known = ~np.isnan(score)
    filled = np.where(known, score, 0.0)
    with np.errstate(invalid="ignore"):
        overall = filled.sum(axis=0) / known.sum(axis=0)
    overall = np.nan_to_num(overall, nan=0.0)
    means = np.empty((len(classifier.classes_), score.shape[1]))
    for i, task in enumerate(classifier.classes_):
        mine = labels == task
        means[i] = (filled[mine].sum(axis=0) + PSEUDO_PROMPTS * overall) / (
            known[mine].sum(axis=0) + PSEUDO_PROMPTS
        )
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a model never scored: NaN range
        low, high = np.nanmin(score, axis=0), np.nanmax(score, axis=0)
    return TaskModel([str(c) for c in classifier.classes_], coef, intercept, means, low, high)


def centred_tasks(router: object) -> list[str]:
    """The tasks a fitted router centres its scores on; empty for a router without task
    centring or trained on a single task."""
    task_model = getattr(router, "task_model_", None)
    return [] if task_model is None else list(task_model.classes_)
