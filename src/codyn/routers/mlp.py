"""`mlp`: a one-hidden-layer network regressing every model's score at once (the RouterBench
MLP baseline, n-way).

Written in numpy (mini-batch Adam on a masked squared error) so that the weights are four
arrays in ``weights.npz``, prediction is two matrix products, and no deep-learning framework is
needed. Missing scores (NaN) contribute no error; a model never scored predicts NaN. Training
holds out ``validation_fraction`` of the train prompts and keeps the epoch with the lowest
held-out error (early stopping).
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from typing import Any

import numpy as np

from codyn.data.routing import RoutingData
from codyn.errors import CodynError
from codyn.routers.base import Arrays, State
from codyn.routers.embedding import DEFAULT_FEATURISER, EmbeddingRouter, Features, FloatArray
from codyn.routers.registry import register_router

Params = list[np.ndarray]
_BETA1, _BETA2, _EPS = 0.9, 0.999, 1e-8
PARAM_NAMES = ("W1", "b1", "W2", "b2")


def _one_blas_thread() -> AbstractContextManager[object]:
    """Single-threaded BLAS while training, when threadpoolctl (a scikit-learn dependency) is
    installed: batch-sized products gain nothing from threads, and on a busy 2-core machine
    waking them made an epoch 7x slower."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


def _forward(params: Params, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    W1, b1, W2, b2 = params
    hidden = np.maximum(X @ W1 + b1, 0.0)
    return hidden, hidden @ W2 + b2


def _masked_error(predicted: np.ndarray, y: np.ndarray, known: np.ndarray) -> float:
    return float((((predicted - y) * known) ** 2).sum() / max(known.sum(), 1))


@register_router("mlp")
class MLPRouter(EmbeddingRouter):
    """Standardised features -> ``hidden`` ReLU units -> one output per model.

    ``alpha`` is the L2 penalty on the weights, ``epochs`` the most passes over the data,
    ``patience`` the epochs without held-out improvement before stopping; ``seed`` fixes the
    initialisation, the batches and the held-out prompts. The strong default penalty won on
    validation splits of four public train sets: with a few hundred noisy 0/1 labels per model
    a lightly regularised network overfits (RouterBench's MLP falls below the zero router).
    ``task_prior``: on data with several tasks the network learns deviations from each task's
    mean score (`codyn.routers.tasks`).
    """

    def __init__(
        self,
        hidden: int = 100,
        alpha: float = 100.0,
        learning_rate: float = 1e-3,
        batch_size: int = 64,
        epochs: int = 200,
        validation_fraction: float = 0.1,
        patience: int = 20,
        seed: int = 0,
        task_prior: bool = True,
        featuriser: str = DEFAULT_FEATURISER,
    ) -> None:
        super().__init__(featuriser)
        self.task_prior = task_prior
        self.hidden = hidden
        self.alpha = alpha
        self.learning_rate = learning_rate
        self.batch_size = batch_size
        self.epochs = epochs
        self.validation_fraction = validation_fraction
        self.patience = patience
        self.seed = seed

    def _check_params(self) -> None:
        for name in ("hidden", "batch_size", "epochs", "patience"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise CodynError(f"mlp: {name} must be a positive integer")
        if not 0.0 <= self.validation_fraction < 1.0:
            raise CodynError("mlp: validation_fraction must be in [0, 1)")
        if not self.alpha >= 0:
            raise CodynError(f"mlp: alpha must be >= 0, got {self.alpha!r}")

    def _fit_features(self, X: Features, train: RoutingData) -> None:
        self.mean_ = X.mean(axis=0)
        self.scale_ = X.std(axis=0)
        self.scale_[self.scale_ == 0] = 1.0
        Z = ((X - self.mean_) / self.scale_).astype(np.float32)
        known = ~np.isnan(train.score)
        y = np.where(known, train.score, 0.0).astype(np.float32)
        rng = np.random.default_rng(self.seed)
        order = rng.permutation(len(Z))
        n_val = round(self.validation_fraction * len(Z))
        val, fit = order[:n_val], order[n_val:]
        with _one_blas_thread():
            self.params_ = self._train(Z, y, known.astype(np.float32), fit, val, rng)
        self.params_[3][~known.any(axis=0)] = np.nan  # never scored: predict NaN, as linear

    def _train(
        self,
        Z: np.ndarray,
        y: np.ndarray,
        known: np.ndarray,
        fit: np.ndarray,
        val: np.ndarray,
        rng: np.random.Generator,
    ) -> Params:
        """Adam on the masked squared error; returns the parameters of the best epoch."""
        d, m, h = Z.shape[1], y.shape[1], self.hidden
        params: Params = [
            (rng.standard_normal((d, h)) * np.sqrt(2.0 / d)).astype(np.float32),
            np.zeros(h, np.float32),
            (rng.standard_normal((h, m)) * np.sqrt(1.0 / h)).astype(np.float32),
            np.zeros(m, np.float32),
        ]
        # Outputs start at each model's mean score: the network learns deviations from it.
        params[3] = (y[fit].sum(axis=0) / np.maximum(known[fit].sum(axis=0), 1)).astype(np.float32)
        moments = [(np.zeros_like(p), np.zeros_like(p)) for p in params]
        best, best_error, waited, step = [p.copy() for p in params], np.inf, 0, 0
        for _ in range(self.epochs):
            shuffled = fit[rng.permutation(len(fit))]
            for start in range(0, len(shuffled), self.batch_size):
                rows = shuffled[start : start + self.batch_size]
                step += 1
                grads = self._gradients(params, Z[rows], y[rows], known[rows], len(fit))
                for p, g, (m1, m2) in zip(params, grads, moments, strict=True):
                    m1 *= _BETA1
                    m1 += (1 - _BETA1) * g
                    m2 *= _BETA2
                    m2 += (1 - _BETA2) * g * g
                    lr = self.learning_rate * (1 - _BETA2**step) ** 0.5 / (1 - _BETA1**step)
                    p -= lr * m1 / (np.sqrt(m2) + _EPS)
            monitor = val if len(val) else fit
            error = _masked_error(_forward(params, Z[monitor])[1], y[monitor], known[monitor])
            if error < best_error - 1e-7:
                best, best_error, waited = [p.copy() for p in params], error, 0
            else:
                waited += 1
                if len(val) and waited >= self.patience:
                    break
        return best

    def _gradients(
        self, params: Params, X: np.ndarray, y: np.ndarray, known: np.ndarray, n_fit: int
    ) -> Params:
        """Gradients of the batch's mean masked squared error plus ``alpha / n_fit * |W|^2 / 2``:
        the penalty of ``sum of squared errors + alpha |W|^2``, like ridge's ``alpha``, so one
        ``alpha`` suits any number of train prompts (scikit-learn divides by the batch size)."""
        W1, _, W2, _ = params
        hidden, out = _forward(params, X)
        delta = 2.0 * (out - y) * known / max(float(known.sum()), 1.0)
        decay = self.alpha / n_fit
        grad_W2 = hidden.T @ delta + decay * W2
        back = (delta @ W2.T) * (hidden > 0)
        grad_W1 = X.T @ back + decay * W1
        return [grad_W1, back.sum(axis=0), grad_W2, delta.sum(axis=0)]

    def _predict_features(self, X: Features) -> FloatArray:
        Z = ((X - self.mean_) / self.scale_).astype(np.float32)
        return _forward(self.params_, Z)[1].astype(np.float64)

    def _head_state(self) -> State:
        arrays = dict(zip(PARAM_NAMES, self.params_, strict=True))
        return {}, {**arrays, "mean": self.mean_, "scale": self.scale_}

    def _set_head_state(self, state: dict[str, Any], arrays: Arrays) -> None:
        params = [arrays[name].astype(np.float32) for name in PARAM_NAMES]
        W1, b1, W2, b2 = params
        n_models = len(self.model_names_)
        if W2.shape != (len(b1), n_models) or W1.shape[1] != len(b1) or b2.shape != (n_models,):
            raise ValueError(f"mlp weights do not fit {n_models} models")
        self.params_ = params
        self.mean_ = arrays["mean"].astype(np.float32)
        self.scale_ = arrays["scale"].astype(np.float32)
