"""Strong/weak routing on a threshold: RouteLLM's alpha (eq. 2) and the MBPP paper's tau."""

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
    check_inputs,
    flip_grid,
    mean_costs,
    register_policy,
)


@register_policy("threshold")
@dataclass(frozen=True)
class ThresholdPolicy(Policy):
    """Route to ``strong`` when ``predicted[:, strong] - predicted[:, weak] >= alpha``.

    Otherwise to ``weak``; every other model is never chosen. ``strong`` / ``weak`` are column
    indices (or, through `make_policy`, model names); left out, they are the priciest and the
    cheapest model. A binary router that outputs RouteLLM's win probability ``p =
    P(win_strong)`` can put ``p`` in the strong column and 0 in the weak one, so that ``alpha``
    is RouteLLM's threshold; columns ``[p, 1 - p]`` give the margin ``2p - 1`` instead (``alpha
    = 2 * alpha_routellm - 1``). The MBPP paper's rule ``P(small >= large) >= tau -> small`` is
    the weak column ``P`` against a strong column of 0: ``alpha = -tau``, up to the tie. A
    missing strong prediction routes to ``weak``. The knob is unbounded: large -> all weak.
    """

    strong: int | None = None
    weak: int | None = None
    knob_name: ClassVar[str] = "alpha"
    model_params: ClassVar[tuple[str, ...]] = ("strong", "weak")

    def __post_init__(self) -> None:
        if self.strong is not None and self.strong == self.weak:
            raise CodynError(f"strong and weak must differ, both are model index {self.strong}")

    def pair(self, model_costs: ArrayLike) -> tuple[int, int]:
        """``(strong, weak)`` column indices, defaults filled from the costs."""
        costs = mean_costs(np.asarray(model_costs, dtype=np.float64))
        strong = int(np.argmax(costs)) if self.strong is None else int(self.strong)
        weak = int(np.argmin(costs)) if self.weak is None else int(self.weak)
        for name, index in (("strong", strong), ("weak", weak)):
            if not 0 <= index < costs.shape[0]:
                raise CodynError(
                    f"{name} model index {index} is out of range for {costs.shape[0]} models"
                )
        if strong == weak:
            raise CodynError(f"strong and weak must differ, both are model index {strong}")
        return strong, weak

    def margins(self, predicted: ArrayLike, model_costs: ArrayLike) -> FloatArray:
        """Strong-minus-weak margin per prompt; a missing strong prediction gives -inf (or NaN)."""
        pred, costs = check_inputs(predicted, model_costs)
        strong, weak = self.pair(costs)
        with np.errstate(invalid="ignore"):
            return pred[:, strong] - pred[:, weak]

    def decide(self, predicted: ArrayLike, model_costs: ArrayLike, knob: float) -> IntArray:
        margin = self.margins(predicted, model_costs)
        strong, weak = self.pair(model_costs)
        with np.errstate(invalid="ignore"):
            to_strong = margin >= self.check_knob(knob)
        return np.where(to_strong, strong, weak).astype(np.int64)

    def knob_grid(
        self, predicted: ArrayLike, model_costs: ArrayLike, n_points: int | None = 50
    ) -> FloatArray:
        """Every distinct margin (or margin quantiles = strong-share percentiles) and one above.

        Decreasing alpha sends more prompts to ``strong``, so the grid runs from one value above
        the largest margin (all weak) down to the smallest margin (all strong); it runs the other
        way when ``strong`` is the cheaper model, so that cost always increases along it.
        """
        margin = self.margins(predicted, model_costs)
        grid = flip_grid(margin, n_points, beyond="above")
        costs = mean_costs(np.asarray(model_costs, dtype=np.float64))
        strong, weak = self.pair(costs)
        return grid if costs[strong] < costs[weak] else grid[::-1].copy()
