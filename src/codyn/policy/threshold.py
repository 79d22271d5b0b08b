"""Strong/weak routing on a threshold: RouteLLM's alpha (eq. 2) and the MBPP paper's tau."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from numpy.typing import ArrayLike

from codyn.errors import CodynError
from codyn.policy.base import FloatArray, IntArray, Policy, check_inputs, flip_grid


@dataclass(frozen=True)
class ThresholdPolicy(Policy):
    """Route to ``strong`` when ``predicted[:, strong] - predicted[:, weak] >= alpha``.

    Otherwise to ``weak``; every other model is never chosen. A binary router that outputs
    RouteLLM's win probability ``p = P(win_strong)`` can put ``p`` in the strong column and 0
    in the weak one, so that ``alpha`` is RouteLLM's threshold; columns ``[p, 1 - p]`` give the
    margin ``2p - 1`` instead (``alpha = 2 * alpha_routellm - 1``). The MBPP paper's rule
    ``P(small >= large) >= tau -> small`` is the weak column ``P`` against a strong column of
    0: ``alpha = -tau``, up to the tie. A missing strong prediction routes to ``weak``. The
    knob is unbounded: large -> all weak.
    """

    strong: int
    weak: int
    knob_name: ClassVar[str] = "alpha"

    def __post_init__(self) -> None:
        if self.strong == self.weak:
            raise CodynError(f"strong and weak must differ, both are model index {self.strong}")

    def margins(self, predicted: ArrayLike, model_costs: ArrayLike) -> FloatArray:
        """Strong-minus-weak margin per prompt; a missing strong prediction gives -inf (or NaN)."""
        pred, _ = check_inputs(predicted, model_costs)
        for name, index in (("strong", self.strong), ("weak", self.weak)):
            if not 0 <= index < pred.shape[1]:
                raise CodynError(
                    f"{name} model index {index} is out of range for {pred.shape[1]} models"
                )
        with np.errstate(invalid="ignore"):
            return pred[:, self.strong] - pred[:, self.weak]

    def decide(self, predicted: ArrayLike, model_costs: ArrayLike, knob: float) -> IntArray:
        margin = self.margins(predicted, model_costs)
        with np.errstate(invalid="ignore"):
            strong = margin >= knob
        return np.where(strong, self.strong, self.weak).astype(np.int64)

    def knob_grid(
        self, predicted: ArrayLike, model_costs: ArrayLike, n_points: int | None = 50
    ) -> FloatArray:
        """Every distinct margin (or margin quantiles = strong-share percentiles) and one above.

        Decreasing alpha sends more prompts to ``strong``, so the grid runs from one value above
        the largest margin (all weak) down to the smallest margin (all strong); it runs the other
        way when ``strong`` is the cheaper model, so that cost always increases along it.
        """
        margin = self.margins(predicted, model_costs)
        grid = flip_grid(margin, n_points, past="above")
        costs = np.asarray(model_costs, dtype=np.float64)
        return grid if costs[self.strong] < costs[self.weak] else grid[::-1].copy()
