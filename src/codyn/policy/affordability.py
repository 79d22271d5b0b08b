"""CoDyn's ranking score: a weighted sum of effectiveness and affordability (section 6.1.3)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from numpy.typing import ArrayLike

from codyn.errors import CodynError
from codyn.metrics.quality_cost import affordability
from codyn.policy.base import (
    FloatArray,
    IntArray,
    Policy,
    argmax_cheapest,
    check_inputs,
    envelope_flips,
    flip_grid,
    mean_costs,
    register_policy,
)


@register_policy("affordability")
@dataclass(frozen=True)
class AffordabilityPolicy(Policy):
    """Route each prompt to ``argmax_m RS = lambda1 * ES_m + lambda2 * CS^-1_m`` (CoDyn).

    ``ES`` is the predicted effectiveness (the router's output), ``CS^-1`` the affordability of
    each model's mean cost (`codyn.metrics.affordability`). The one knob ``w`` in [0, 1] is the
    cost weight: ``lambda1 = 1 - w``, ``lambda2 = w``. ``w = 0`` is CoDyn's cost-free Setting
    1; the paper's Settings 2 and 3 are ``w = 0.25`` and ``0.5``; ``w = 1`` picks the cheapest
    model. Ties go to the cheaper model. For ``w < 1`` this ranks like `UtilityPolicy` on
    min-max normalised costs with ``lambda = w / (1 - w)``.
    """

    knob_name: ClassVar[str] = "w"

    def check_knob(self, knob: float) -> float:
        value = float(knob)
        if not 0.0 <= value <= 1.0:
            raise CodynError(f"the cost weight w must be in [0, 1], got {knob}")
        return value

    def decide(self, predicted: ArrayLike, model_costs: ArrayLike, knob: float) -> IntArray:
        pred, costs = check_inputs(predicted, model_costs)
        w = self.check_knob(knob)
        model_cost = mean_costs(costs)
        with np.errstate(invalid="ignore"):
            score = (1.0 - w) * pred + w * affordability(model_cost)[None, :]
        score[np.isnan(score)] = -np.inf
        return argmax_cheapest(score, model_cost)

    def knob_grid(
        self, predicted: ArrayLike, model_costs: ArrayLike, n_points: int | None = 50
    ) -> FloatArray:
        """From just past the last flip down to ``w = 0``: the utility flips (lambda > 0) on
        min-max normalised cost, mapped by ``w = lambda / (1 + lambda)``."""
        pred, costs = check_inputs(predicted, model_costs)
        flips = envelope_flips(pred, 1.0 - affordability(mean_costs(costs)))
        lambdas = flip_grid(flips[flips > 0], n_points, beyond="above", anchor=0.0)[::-1]
        return lambdas / (1.0 + lambdas)
