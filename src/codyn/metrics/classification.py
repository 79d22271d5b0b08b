"""Label accuracy with CoDyn's bias penalty, for binary tasks such as SVEN.

CoDyn (paper 000), appendix A.6: a model that answers "positive" to everything is right on
every positive example, so on balanced data plain accuracy gives it 0.5 for no skill. The
penalty measures how far the number of positive predictions is from the number of positive
examples::

    P = |N_tp - N_pp| / N_t

with N_tp the examples whose true label is positive, N_pp the examples predicted positive
and N_t all examples. The paper applies P to each effectiveness score of the task, per
model; here the penalised effectiveness is ``accuracy - P`` (per example: ``correct - P``),
so an always-"Yes" model on balanced data gets 0.5 - 0.5 = 0.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray


def _flags(values: ArrayLike, name: str) -> NDArray[np.bool_]:
    array = np.asarray(values)
    if array.ndim != 1 or array.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-d sequence")
    return array.astype(bool)


def _pair(y_true: ArrayLike, y_pred: ArrayLike) -> tuple[NDArray[np.bool_], NDArray[np.bool_]]:
    true, pred = _flags(y_true, "y_true"), _flags(y_pred, "y_pred")
    if true.shape != pred.shape:
        raise ValueError(f"y_true has {true.size} examples but y_pred has {pred.size}")
    return true, pred


def bias_penalty(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """CoDyn's bias penalty ``P = |N_tp - N_pp| / N_t`` (paper 000, appendix A.6).

    ``y_true`` and ``y_pred`` flag each example as positive (truthy) or not; an answer
    without a readable label is a negative prediction.
    """
    true, pred = _pair(y_true, y_pred)
    return float(abs(int(true.sum()) - int(pred.sum())) / true.size)


def penalised_scores(y_true: ArrayLike, y_pred: ArrayLike) -> NDArray[np.float64]:
    """Per example: 1 if the prediction is right else 0, minus the model's `bias_penalty`
    (the paper's penalty applied to each effectiveness score)."""
    true, pred = _pair(y_true, y_pred)
    return (true == pred).astype(np.float64) - bias_penalty(true, pred)


def penalised_accuracy(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Accuracy minus the bias penalty: ``mean(correct) - |N_tp - N_pp| / N_t``, in [-1, 1]."""
    return float(np.mean(penalised_scores(y_true, y_pred)))
