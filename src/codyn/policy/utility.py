"""N-way routing on a utility: predicted quality minus lambda times normalised cost."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from numpy.typing import ArrayLike

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


def normalised_costs(model_costs: FloatArray) -> FloatArray:
    """``c = cost / max(mean cost per model)`` (all zero when every model is free), so lambda is
    unitless; per-prompt costs keep their shape."""
    top = float(mean_costs(model_costs).max())
    return model_costs / top if top > 0 else np.zeros_like(model_costs)


@register_policy("utility")
@dataclass(frozen=True)
class UtilityPolicy(Policy):
    """Route each prompt to ``argmax_m predicted[:, m] - lambda * c_m``, ``c = cost / max(cost)``.

    The RouterBench willingness-to-pay rule and the sweep of ANCHORS.md, over the whole real
    line: ``lambda = 0`` is quality only; ``lambda > 0`` leans towards cheaper models (past the
    last flip every prompt goes to its cheapest model with a known prediction); ``lambda < 0``
    trades up to pricier models whose predicted quality is within ``-lambda * (c_m - c_best)``
    of the best (before the first flip, every prompt goes to its priciest known model). Ties
    go to the cheaper model. For two models ``u_s - u_w = dq - lambda * dc``: the utility
    curve over all lambda is the threshold curve on the margin ``dq`` (`ThresholdPolicy`).
    """

    knob_name: ClassVar[str] = "lambda"

    def decide(self, predicted: ArrayLike, model_costs: ArrayLike, knob: float) -> IntArray:
        pred, costs = check_inputs(predicted, model_costs)
        lam = self.check_knob(knob)
        with np.errstate(invalid="ignore"):
            value = pred - lam * np.broadcast_to(normalised_costs(costs), pred.shape)
        value[np.isnan(value)] = -np.inf
        return argmax_cheapest(value, costs)

    def knob_grid(
        self, predicted: ArrayLike, model_costs: ArrayLike, n_points: int | None = 50
    ) -> FloatArray:
        """From one lambda past the last flip (cheapest) down through 0 to one below the first
        flip (priciest): every flip, or their quantiles, as in ANCHORS.md "Sweeps".

        ``n_points`` bounds each side of lambda = 0 separately, so the lambda >= 0 half is the
        ANCHORS sweep whatever the other half holds: trading up only ever adds points.
        """
        pred, costs = check_inputs(predicted, model_costs)
        flips = envelope_flips(pred, normalised_costs(costs))
        cheaper = flip_grid(flips[flips > 0], n_points, beyond="above", anchor=0.0)
        pricier = flip_grid(flips[flips <= 0], n_points, beyond="below", anchor=0.0)
        return np.unique(np.concatenate([cheaper, pricier]))[::-1].copy()
