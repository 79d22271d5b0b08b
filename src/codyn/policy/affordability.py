"""CoDyn's ranking score: a weighted sum of effectiveness and affordability (section 6.1.3)."""

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


def affordability(model_costs: FloatArray) -> FloatArray:
    """CoDyn's ``CS^-1 = 1 - (CS - 1) / (max(CS) - 1)`` with ``CS`` = cost ratio to the cheapest.

    Computed as ``1 - (c - min c) / (max c - min c)``, the same number that also holds when the
    cheapest model is free; 1 for every model when all cost the same.
    """
    spread = float(model_costs.max() - model_costs.min())
    if spread == 0:
        return np.ones_like(model_costs)
    return 1.0 - (model_costs - model_costs.min()) / spread


@dataclass(frozen=True)
class AffordabilityPolicy(Policy):
    """Route each prompt to ``argmax_m RS = lambda1 * ES_m + lambda2 * CS^-1_m`` (CoDyn).

    ``ES`` is the predicted effectiveness (the router's output). The one knob ``w`` in [0, 1] is
    the cost weight: ``lambda1 = 1 - w``, ``lambda2 = w``. ``w = 0`` is CoDyn's cost-free
    Setting 1; the paper's Settings 2 and 3 are ``w = 0.25`` and ``0.5``; ``w = 1`` picks the
    cheapest model. Ties go to the cheaper model. For ``w < 1`` this ranks like `UtilityPolicy`
    on min-max normalised costs with ``lambda = w / (1 - w)``.
    """

    knob_name: ClassVar[str] = "w"

    def decide(self, predicted: ArrayLike, model_costs: ArrayLike, knob: float) -> IntArray:
        pred, costs = check_inputs(predicted, model_costs)
        if not 0.0 <= knob <= 1.0:
            raise CodynError(f"the cost weight w must be in [0, 1], got {knob}")
        with np.errstate(invalid="ignore"):
            score = (1.0 - knob) * pred + knob * affordability(costs)[None, :]
        score[np.isnan(score)] = -np.inf
        return argmax_cheapest(score, costs)

    def knob_grid(
        self, predicted: ArrayLike, model_costs: ArrayLike, n_points: int | None = 50
    ) -> FloatArray:
        """From just past the last flip down to ``w = 0``: the utility flips on normalised cost,
        mapped by ``w = lambda / (1 + lambda)``."""
        pred, costs = check_inputs(predicted, model_costs)
        flips = utility_flips(pred, 1.0 - affordability(costs))
        lambdas = flip_grid(flips, n_points, past="above", end=0.0)[::-1]
        return lambdas / (1.0 + lambdas)
