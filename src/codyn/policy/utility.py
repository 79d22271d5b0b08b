"""N-way routing on a utility: predicted quality minus lambda times normalised cost."""

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
    utility_flips,
)


def normalised_costs(model_costs: FloatArray) -> FloatArray:
    """``c_m = cost_m / max(cost)`` (all zero when every model is free), so lambda is unitless."""
    top = float(model_costs.max())
    return model_costs / top if top > 0 else np.zeros_like(model_costs)


@dataclass(frozen=True)
class UtilityPolicy(Policy):
    """Route each prompt to ``argmax_m predicted[:, m] - lambda * c_m``, ``c = cost / max(cost)``.

    The RouterBench willingness-to-pay rule and the sweep of ANCHORS.md. Ties go to the cheaper
    model. Knob ``lambda >= 0``: 0 is quality only; larger lambdas lean towards cheap models, and
    past the last flip every prompt goes to its cheapest model with a known prediction.
    """

    knob_name: ClassVar[str] = "lambda"

    def decide(self, predicted: ArrayLike, model_costs: ArrayLike, knob: float) -> IntArray:
        pred, costs = check_inputs(predicted, model_costs)
        if not (np.isfinite(knob) and knob >= 0):
            raise CodynError(f"lambda must be a finite number >= 0, got {knob}")
        c = normalised_costs(costs)
        return argmax_cheapest(pred - knob * c[None, :], costs)

    def knob_grid(
        self, predicted: ArrayLike, model_costs: ArrayLike, n_points: int | None = 50
    ) -> FloatArray:
        """From one lambda past the last flip down to 0: lambda = 0, the flips (or their
        quantiles) and one past the last flip, as in ANCHORS.md "Sweeps"."""
        pred, costs = check_inputs(predicted, model_costs)
        flips = utility_flips(pred, normalised_costs(costs))
        return flip_grid(flips, n_points, past="above", end=0.0)[::-1].copy()
