"""DynaRoute's rule: predicted difficulty -> cost tier -> best predicted model within the tier."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import ClassVar

import numpy as np
from numpy.typing import ArrayLike

from codyn.errors import CodynError
from codyn.policy.base import (
    FloatArray,
    IntArray,
    Policy,
    argmax_cheapest,
    check_inputs,
    flip_grid,
    mean_costs,
    register_policy,
)

Difficulty = Callable[[FloatArray], ArrayLike]


@register_policy("tiers")
@dataclass(frozen=True)
class TiersPolicy(Policy):
    """Difficulty thresholds pick a cost tier; the tier's best predicted model answers.

    Models are bucketed by cost percentile into ``len(thresholds) + 1`` cumulative tiers, as in
    DynaRoute: tier ``t`` holds the models costing at most the ``(t + 1) / n_tiers`` quantile of
    the model costs, so the top tier holds them all. A prompt of difficulty ``d`` goes to tier
    ``#{thresholds <= d + offset}`` and there to the model with the best predicted quality
    (ties -> cheaper). ``difficulty`` is a function of the predicted matrix returning one value
    per prompt, or a column index (or, through `make_policy`, a model name) ``j`` meaning
    ``1 - predicted[:, j]`` (how likely model ``j`` fails); the default is the difficulty the
    router gives (`Router.predict_with_difficulty`: the `profile` router's level, 1 -> 0,
    2 -> 0.5, 3 -> 1), else the cheapest model's column. Missing predictions count as hardest.
    The cost quantiles are taken per prompt over the models with a known prediction, as
    DynaRoute takes them over the models with a score in the prompt's category.

    Knob ``offset`` (any real, default 0 = the difficulty as predicted) shifts every difficulty:
    negative leans to cheap tiers, positive to expensive ones.
    """

    thresholds: Sequence[float] = (1 / 3, 2 / 3)
    difficulty: int | Difficulty | None = None
    knob_name: ClassVar[str] = "offset"
    model_params: ClassVar[tuple[str, ...]] = ("difficulty",)

    def __post_init__(self) -> None:
        try:
            values = tuple(float(t) for t in self.thresholds)
        except (TypeError, ValueError):
            values = ()
        if len(values) == 0 or (np.diff(values) <= 0).any():
            raise CodynError(
                f"thresholds must be one or more increasing numbers, got {self.thresholds!r}"
            )
        object.__setattr__(self, "thresholds", values)

    def with_difficulty(self, difficulty: ArrayLike | None) -> TiersPolicy:
        """This policy reading the router's per-prompt ``difficulty``, unless one was set."""
        if difficulty is None or self.difficulty is not None:
            return self
        return replace(self, difficulty=GivenDifficulty(np.asarray(difficulty, dtype=np.float64)))

    def decide(self, predicted: ArrayLike, model_costs: ArrayLike, knob: float) -> IntArray:
        tier = self.tiers(predicted, model_costs, knob)
        pred, costs = check_inputs(predicted, model_costs)
        return self._choice_per_tier(pred, costs)[np.arange(pred.shape[0]), tier]

    def tiers(self, predicted: ArrayLike, model_costs: ArrayLike, knob: float) -> IntArray:
        """The cost tier (0 = cheapest) each prompt lands in at ``knob``."""
        pred, costs = check_inputs(predicted, model_costs)
        offset = self.check_knob(knob)
        return np.sum(self._shifted_thresholds(pred, costs) <= offset, axis=1).astype(np.int64)

    def choices_per_tier(self, predicted: ArrayLike, model_costs: ArrayLike) -> IntArray:
        """``n x n_tiers``: the model each tier would answer each prompt with (the prompt's row
        of DynaRoute's table: Low / Moderate / Best for two thresholds)."""
        pred, costs = check_inputs(predicted, model_costs)
        return self._choice_per_tier(pred, costs)

    def knob_grid(
        self, predicted: ArrayLike, model_costs: ArrayLike, n_points: int | None = 50
    ) -> FloatArray:
        """Ascending offsets: one below the first flip (all in the cheapest tier), then every
        ``threshold - difficulty`` where the chosen model changes (or their quantiles)."""
        pred, costs = check_inputs(predicted, model_costs)
        choice = self._choice_per_tier(pred, costs)
        changes = choice[:, 1:] != choice[:, :-1]
        flips = self._shifted_thresholds(pred, costs)[changes]
        return flip_grid(flips, n_points, beyond="below")

    def _shifted_thresholds(self, pred: FloatArray, costs: FloatArray) -> FloatArray:
        """``threshold - difficulty`` per prompt and threshold: the offsets where tiers change.

        Deciding by comparing the offset with these exact numbers makes a grid value that equals
        one reproduce its flip, free of rounding.
        """
        if callable(self.difficulty):
            d = np.asarray(self.difficulty(pred), dtype=np.float64)
        else:
            column = (
                int(np.argmin(mean_costs(costs))) if self.difficulty is None else self.difficulty
            )
            if not 0 <= column < pred.shape[1]:
                raise CodynError(f"difficulty column {column} is out of range")
            d = 1.0 - pred[:, column]
        if d.shape != (pred.shape[0],):
            raise CodynError(f"difficulty must give one value per prompt, got shape {d.shape}")
        d = np.where(np.isnan(d), np.inf, d)
        return np.asarray(self.thresholds, dtype=np.float64)[None, :] - d[:, None]

    def _choice_per_tier(self, pred: FloatArray, costs: FloatArray) -> IntArray:
        """``n x n_tiers``: the best predicted model (ties -> cheaper) within each cost tier.

        Tier ``t`` holds the models costing at most the ``(t + 1) / n_tiers`` quantile of the
        costs of the prompt's models with a known prediction (all models when none is known).
        """
        model_cost = mean_costs(costs)
        n_tiers = len(self.thresholds) + 1
        known = np.isfinite(pred)
        known[~known.any(axis=1)] = True
        pooled = np.where(known, model_cost[None, :], np.nan)
        cutoffs = np.nanquantile(pooled, np.arange(1, n_tiers + 1) / n_tiers, axis=1)
        return np.stack(
            [
                argmax_cheapest(np.where(model_cost <= cut[:, None], pred, -np.inf), model_cost)
                for cut in cutoffs
            ],
            axis=1,
        )


@dataclass(frozen=True)
class GivenDifficulty:
    """A difficulty computed elsewhere (by the router), one value per prompt."""

    values: FloatArray

    def __call__(self, predicted: FloatArray) -> FloatArray:
        return self.values
