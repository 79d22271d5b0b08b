"""A cost cap per call: the best predicted model among those that cost at most the knob."""

from __future__ import annotations

from dataclasses import dataclass
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
    register_policy,
)

COST_TOLERANCE = 1e-12
"""A cost this close (relative) to the cap counts as within it: a cap read from a printed
cost must admit that model."""


@register_policy("budget")
@dataclass(frozen=True)
class BudgetPolicy(Policy):
    """Route each prompt to its best predicted model costing at most ``max_cost`` per call.

    The knob is in the units of the model costs (USD per call, or the data's price proxy); the
    default, infinity, is no cap (quality only). Ties go to the cheaper model; a cap below
    every model's cost is a `CodynError` naming the cheapest.
    """

    knob_name: ClassVar[str] = "max_cost"
    default_knob: ClassVar[float] = float("inf")

    def check_knob(self, knob: float) -> float:
        value = float(knob)
        if np.isnan(value) or value < 0:
            raise CodynError(f"max_cost must be a number >= 0, got {knob}")
        return value

    def decide(self, predicted: ArrayLike, model_costs: ArrayLike, knob: float) -> IntArray:
        pred, costs = check_inputs(predicted, model_costs)
        cap = self.check_knob(knob)
        within = np.broadcast_to(costs, pred.shape) <= cap + COST_TOLERANCE * max(1.0, cap)
        if not within.any(axis=1).all():
            raise CodynError(
                f"no model costs at most {cap:g} per call; the cheapest costs {costs.min():g}"
            )
        return argmax_cheapest(np.where(within, pred, -np.inf), costs)

    def knob_grid(
        self, predicted: ArrayLike, model_costs: ArrayLike, n_points: int | None = 50
    ) -> FloatArray:
        """Ascending caps: every distinct cost (or cost quantiles), the cheapest first."""
        pred, costs = check_inputs(predicted, model_costs)
        return flip_grid(np.broadcast_to(costs, pred.shape).ravel(), n_points, beyond="none")
