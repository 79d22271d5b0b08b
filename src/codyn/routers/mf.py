"""RouteLLM's matrix factorisation router (eq. 11-12), one model ranking all n models.

The score of model ``m`` on prompt features ``q`` is ``delta(m, q) = w2^T (v_m * (W1^T q + b))``
(eq. 12) and ``P(a beats b | q) = sigmoid(delta(a, q) - delta(b, q))`` (eq. 11). It is trained
on every pairwise battle of the training scores (`codyn.routers._pairs`; ties as set by
``ties``) by minibatch Adam with weight decay, in numpy. A batch holds whole prompts with all
their battles, so an epoch costs a few matrix products; training stops early when the loss on
a held-out part of the training prompts has not improved for ``patience`` epochs, and keeps
the best epoch's weights. The centred deltas are calibrated per model into expected scores on
that held-out part.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from codyn.data.routing import RoutingData
from codyn.errors import CodynError
from codyn.routers._pairs import (
    FloatArray,
    IntArray,
    Ties,
    all_pairs,
    battles,
    calibrated,
    check_ties,
    fit_calibration,
    pair_signs,
)
from codyn.routers.base import Arrays, State
from codyn.routers.embedding import DEFAULT_FEATURISER, EmbeddingRouter, Features
from codyn.routers.registry import register_router

PARAMS = ("W1", "b", "v", "w2")
"""The learned arrays of eq. 12, by name in ``weights.npz``."""
_BETAS = (0.9, 0.999)
_EPS = 1e-8


def mf_scores(params: dict[str, FloatArray], X: FloatArray) -> FloatArray:
    """``delta(m, q)`` for every prompt row of ``X`` and every model (eq. 12)."""
    hidden = X @ params["W1"] + params["b"]
    return hidden @ (params["v"] * params["w2"]).T


def pairwise_loss(
    params: dict[str, FloatArray],
    X: FloatArray,
    outcome: FloatArray,
    counted: FloatArray,
    sign: FloatArray,
) -> tuple[float, dict[str, FloatArray]]:
    """Mean binary cross-entropy of eq. 11 over the counted battles, and its gradients."""
    hidden = X @ params["W1"] + params["b"]
    factors = params["v"] * params["w2"]
    diff = (hidden @ factors.T) @ sign.T
    total = max(float(counted.sum()), 1.0)
    loss = float((counted * (np.logaddexp(0.0, diff) - outcome * diff)).sum()) / total
    d_diff = counted * (0.5 * (1.0 + np.tanh(0.5 * diff)) - outcome) / total
    d_delta = d_diff @ sign
    d_factors = d_delta.T @ hidden
    d_hidden = d_delta @ factors
    grads = {
        "W1": X.T @ d_hidden,
        "b": d_hidden.sum(axis=0),
        "v": d_factors * params["w2"],
        "w2": (d_factors * params["v"]).sum(axis=0),
    }
    return loss, grads


@register_router("mf")
class MFRouter(EmbeddingRouter):
    """Bilinear matrix factorisation of pairwise preferences (RouteLLM eq. 11-12).

    ``dim``: size of the model embeddings ``v_m`` (128 in RouteLLM). ``ties``: ``"half"`` (a tie
    is a 0.5 target; better than dropping ties, as RouteLLM does, on our validation splits) or
    ``"drop"``. ``learning_rate`` / ``weight_decay``:
    Adam's (L2 added to the gradient, as torch's Adam). ``batch_size``: prompts per step, each
    with all its battles. ``validation_fraction`` of the training prompts (at least one) is
    held out for early stopping and calibration. Predictions are expected scores;
    ``best_epoch_`` is the epoch whose weights were kept.
    """

    params_: dict[str, FloatArray]
    intercept_: FloatArray
    slope_: FloatArray
    best_epoch_: int

    def __init__(
        self,
        featuriser: str = DEFAULT_FEATURISER,
        dim: int = 128,
        ties: Ties = "half",
        learning_rate: float = 3e-3,
        weight_decay: float = 1e-5,
        batch_size: int = 64,
        max_epochs: int = 200,
        patience: int = 10,
        validation_fraction: float = 0.2,
        seed: int = 0,
    ) -> None:
        super().__init__(featuriser)
        self.dim = dim
        self.ties = ties
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.patience = patience
        self.validation_fraction = validation_fraction
        self.seed = seed

    def _check_params(self) -> None:
        check_ties(self.ties)
        for name in ("dim", "batch_size", "max_epochs", "patience"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise CodynError(f"mf: {name} must be a positive integer, got {value!r}")
        if not (0.0 < self.validation_fraction < 1.0):
            raise CodynError(
                f"mf: validation_fraction must be in (0, 1), got {self.validation_fraction}"
            )
        if not (self.learning_rate > 0 and self.weight_decay >= 0):
            raise CodynError("mf: learning_rate must be > 0 and weight_decay >= 0")

    def _fit_features(self, X: Features, train: RoutingData) -> None:
        x = np.asarray(X, dtype=np.float64)
        n_models = train.n_models
        pairs = all_pairs(n_models)
        sign = pair_signs(pairs, n_models)
        outcome, counted = battles(np.asarray(train.score, dtype=np.float64), pairs, self.ties)
        rng = np.random.default_rng(self.seed)
        fit_rows, val_rows = _holdout(len(x), self.validation_fraction, rng)
        params = self._init_params(x.shape[1], n_models, rng)
        moments = {k: (np.zeros_like(p), np.zeros_like(p)) for k, p in params.items()}
        val = (x[val_rows], outcome[val_rows], counted[val_rows], sign)
        best_loss, best, best_epoch, step = pairwise_loss(params, *val)[0], params, 0, 0
        for epoch in range(1, self.max_epochs + 1):
            order = rng.permutation(fit_rows)
            for start in range(0, len(order), self.batch_size):
                rows = order[start : start + self.batch_size]
                _, grads = pairwise_loss(params, x[rows], outcome[rows], counted[rows], sign)
                step += 1
                params = self._adam(params, grads, moments, step)
            loss = pairwise_loss(params, *val)[0]
            if loss < best_loss:
                best_loss, best, best_epoch = loss, params, epoch
            elif epoch - best_epoch >= self.patience:
                break
        self.params_, self.best_epoch_ = best, best_epoch
        delta = mf_scores(best, x[val_rows])
        self.intercept_, self.slope_ = fit_calibration(
            delta - delta.mean(axis=1, keepdims=True), train.score[val_rows]
        )

    def _init_params(
        self, n_features: int, n_models: int, rng: np.random.Generator
    ) -> dict[str, FloatArray]:
        """torch's defaults for RouteLLM's layers: uniform(+-1/sqrt(fan_in)) linear weights,
        standard normal model embeddings, zero bias."""
        bound_q, bound_m = 1.0 / np.sqrt(n_features), 1.0 / np.sqrt(self.dim)
        return {
            "W1": rng.uniform(-bound_q, bound_q, (n_features, self.dim)),
            "b": np.zeros(self.dim),
            "v": rng.standard_normal((n_models, self.dim)),
            "w2": rng.uniform(-bound_m, bound_m, self.dim),
        }

    def _adam(
        self,
        params: dict[str, FloatArray],
        grads: dict[str, FloatArray],
        moments: dict[str, tuple[FloatArray, FloatArray]],
        step: int,
    ) -> dict[str, FloatArray]:
        """One Adam step (new arrays: the best epoch's weights stay untouched)."""
        b1, b2 = _BETAS
        updated = {}
        for name, value in params.items():
            grad = grads[name] + self.weight_decay * value
            m, v = moments[name]
            m *= b1
            m += (1 - b1) * grad
            v *= b2
            v += (1 - b2) * grad * grad
            m_hat, v_hat = m / (1 - b1**step), v / (1 - b2**step)
            updated[name] = value - self.learning_rate * m_hat / (np.sqrt(v_hat) + _EPS)
        return updated

    def _predict_features(self, X: Features) -> FloatArray:
        delta = mf_scores(self.params_, np.asarray(X, dtype=np.float64))
        return calibrated(delta - delta.mean(axis=1, keepdims=True), self.intercept_, self.slope_)

    def _head_state(self) -> State:
        arrays = dict(self.params_) | {"intercept": self.intercept_, "slope": self.slope_}
        return {"best_epoch": self.best_epoch_}, arrays

    def _set_head_state(self, state: dict[str, Any], arrays: Arrays) -> None:
        self.params_ = {name: np.asarray(arrays[name], dtype=np.float64) for name in PARAMS}
        self.intercept_ = np.asarray(arrays["intercept"], dtype=np.float64)
        self.slope_ = np.asarray(arrays["slope"], dtype=np.float64)
        self.best_epoch_ = int(state["best_epoch"])
        n_models, dim = len(self.model_names_), self.dim
        shapes = {"b": (dim,), "v": (n_models, dim), "w2": (dim,)}
        if (
            any(self.params_[k].shape != s for k, s in shapes.items())
            or self.params_["W1"].shape[1] != dim
        ):
            raise CodynError(f"saved mf weights do not fit {n_models} models x dim {dim}")


def _holdout(n: int, fraction: float, rng: np.random.Generator) -> tuple[IntArray, IntArray]:
    """(fit rows, held-out rows): ``round(fraction * n)`` rows held out, at least one and at
    most ``n - 1``; a single prompt serves as both."""
    if n == 1:
        rows = np.zeros(1, dtype=np.int64)
        return rows, rows
    order = rng.permutation(n)
    n_out = min(max(1, round(fraction * n)), n - 1)
    return np.sort(order[n_out:]), np.sort(order[:n_out])
