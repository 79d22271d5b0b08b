"""`ensemble`: the (weighted) mean of several feature routers' predicted-quality matrices.

Every member is an `EmbeddingRouter` family (``knn``, ``linear``, ``sw_ranking``, ...) with its
default hyper-parameters. The ensemble is itself an `EmbeddingRouter`: its featuriser is fitted
and run once, and every member learns from and predicts on that one feature matrix through its
``_fit_features`` / ``_predict_features`` hooks, so adding a member costs its head, never a
second featurising pass.

With ``normalise=True`` each member's predictions are z-scored per model, with the mean and
standard deviation of its predictions on the train prompts, before averaging; the mean of those
z-scores is mapped back onto the members' average scale (per model), so the output stays an
expected score that a cost-aware policy can trade against cost.

Saved without pickle: each member's head state goes into the ensemble's ``weights.npz`` as
``member<i>.<array>`` and its JSON state into ``router.json``, next to the shared featurisers.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from codyn.data.routing import RoutingData
from codyn.errors import CodynError
from codyn.routers.base import Arrays, State
from codyn.routers.embedding import DEFAULT_FEATURISER, EmbeddingRouter, Features, FloatArray
from codyn.routers.registry import register_router, router_class

DEFAULT_MEMBERS = "knn,linear,sw_ranking"
MEMBER_PREFIX = "member"
"""Member ``i``'s arrays are saved as ``member<i>.<name>``."""
_NORM_ARRAYS = ("norm_mean", "norm_std")
_MIN_STD = 1e-9
"""A member's prediction for a model with less spread than this on train counts as constant."""


def member_names(spec: str) -> list[str]:
    """``"knn, linear"`` -> ``["knn", "linear"]``; empty or repeated names are `CodynError`."""
    names = [part.strip() for part in str(spec).split(",")]
    if not all(names) or len(set(names)) != len(names):
        raise CodynError(
            f"ensemble: members {spec!r}: give distinct router names separated by ',', "
            f"e.g. {DEFAULT_MEMBERS}"
        )
    return names


@register_router("ensemble")
class EnsembleRouter(EmbeddingRouter):
    """Weighted mean of member routers' predictions on one shared featuriser.

    ``members``: comma-separated names of feature-based router families (default
    ``knn,linear,sw_ranking``), each with its default hyper-parameters.
    ``weights``: comma-separated non-negative numbers, one per member (default: equal); they are
    scaled to sum to 1.
    ``normalise``: z-score each member's predictions per model (train statistics) before
    averaging.
    A model that any member predicts as NaN (no known train score) is NaN in the ensemble.
    """

    members_: list[EmbeddingRouter]
    weights_: FloatArray
    norm_mean_: FloatArray
    norm_std_: FloatArray

    def __init__(
        self,
        members: str = DEFAULT_MEMBERS,
        weights: str | None = None,
        normalise: bool = False,
        featuriser: str = DEFAULT_FEATURISER,
    ) -> None:
        super().__init__(featuriser)
        self.members = members
        self.weights = weights
        self.normalise = normalise

    # -- parameters ---------------------------------------------------------------------------

    def _member_classes(self) -> list[type[EmbeddingRouter]]:
        classes = []
        for name in member_names(self.members):
            if name == self.family:
                raise CodynError("ensemble: an ensemble cannot be a member of itself")
            try:
                cls = router_class(name)
            except CodynError as exc:
                raise CodynError(f"ensemble: bad member {name!r}: {exc}") from None
            if not issubclass(cls, EmbeddingRouter):
                raise CodynError(
                    f"ensemble: member {name!r} does not learn on prompt features; members must "
                    "be feature-based routers such as knn, linear, sw_ranking, mlp, mf or rorf"
                )
            classes.append(cls)
        return classes

    def _member_weights(self, n: int) -> FloatArray:
        if self.weights is None:
            return np.full(n, 1.0 / n)
        try:
            values = np.array([float(part) for part in str(self.weights).split(",")])
        except ValueError:
            values = np.array([])
        if len(values) != n or not np.isfinite(values).all() or (values < 0).any():
            raise CodynError(
                f"ensemble: weights {self.weights!r} must be {n} non-negative numbers separated "
                "by ',' (one per member)"
            )
        if values.sum() <= 0:
            raise CodynError("ensemble: weights must not all be 0")
        return values / values.sum()

    def _check_params(self) -> None:
        classes = self._member_classes()
        self._member_weights(len(classes))
        if not isinstance(self.normalise, bool):
            raise CodynError(f"ensemble: normalise must be true or false, got {self.normalise!r}")

    def _new_members(self) -> list[EmbeddingRouter]:
        """Unfitted members with their default hyper-parameters and this router's models."""
        members = []
        for cls in self._member_classes():
            member = cls()
            member.featuriser = self.featuriser  # informative only: X comes from the ensemble
            # Members see raw scores: pairwise members compare models' scores within a prompt,
            # which residuals from per-model task means would not preserve.
            member.task_prior = False
            member._check_params()
            member.model_names_ = list(self.model_names_)
            members.append(member)
        return members

    # -- EmbeddingRouter hooks ----------------------------------------------------------------

    def _fit_features(self, X: Features, train: RoutingData) -> None:
        self.members_ = self._new_members()
        self.weights_ = self._member_weights(len(self.members_))
        for member in self.members_:
            member._fit_features(X, train)
        n_models = len(self.model_names_)
        self.norm_mean_ = np.zeros((len(self.members_), n_models))
        self.norm_std_ = np.ones((len(self.members_), n_models))
        if self.normalise:
            for i, member in enumerate(self.members_):
                predicted = member._predict_features(X)
                self.norm_mean_[i] = predicted.mean(axis=0)
                std = predicted.std(axis=0)
                self.norm_std_[i] = np.where(std > _MIN_STD, std, 1.0)

    def member_predictions(self, X: Features) -> list[FloatArray]:
        """Each member's predicted quality for the feature rows ``X`` (as `transform` makes)."""
        self._check_fitted("member_predictions")
        return [np.asarray(m._predict_features(X), dtype=np.float64) for m in self.members_]

    def _predict_features(self, X: Features) -> FloatArray:
        predictions = self.member_predictions(X)
        if not self.normalise:
            return sum(w * p for w, p in zip(self.weights_, predictions, strict=True))
        z = sum(
            w * (p - mean) / std
            for w, p, mean, std in zip(
                self.weights_, predictions, self.norm_mean_, self.norm_std_, strict=True
            )
        )
        return z * (self.weights_ @ self.norm_std_) + self.weights_ @ self.norm_mean_

    def _head_state(self) -> State:
        saved, arrays = [], {}
        for i, member in enumerate(self.members_):
            state, member_arrays = member._head_state()
            saved.append(state)
            arrays |= {f"{MEMBER_PREFIX}{i}.{k}": v for k, v in member_arrays.items()}
        arrays |= {"norm_mean": self.norm_mean_, "norm_std": self.norm_std_}
        return {"members": saved}, arrays

    def _set_head_state(self, state: dict[str, Any], arrays: Arrays) -> None:
        self.members_ = self._new_members()
        self.weights_ = self._member_weights(len(self.members_))
        saved = state["members"]
        if not isinstance(saved, list) or len(saved) != len(self.members_):
            raise CodynError(f"saved members do not match {self.members!r}")
        for i, (member, member_state) in enumerate(zip(self.members_, saved, strict=True)):
            prefix = f"{MEMBER_PREFIX}{i}."
            own = {k.removeprefix(prefix): v for k, v in arrays.items() if k.startswith(prefix)}
            member._set_head_state(member_state, own)
        shape = (len(self.members_), len(self.model_names_))
        mean, std = (np.asarray(arrays[name], dtype=np.float64) for name in _NORM_ARRAYS)
        if mean.shape != shape or std.shape != shape:
            raise CodynError(f"saved ensemble normalisation does not fit {shape}")
        self.norm_mean_, self.norm_std_ = mean, std
