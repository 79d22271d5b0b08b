"""One model for every prompt: what a deployment falls back to when no knob meets a target."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from numpy.typing import ArrayLike

from codyn.errors import CodynError
from codyn.policy.base import FloatArray, IntArray, Policy, check_inputs, register_policy


@register_policy("fixed")
@dataclass(frozen=True)
class FixedPolicy(Policy):
    """Always ``model`` (a column index, or a model name through `make_policy`); no knob.

    `codyn calibrate --max-quality-loss` routes to the single best model with it when no knob
    of the router's policy can be guaranteed to stay within the loss.
    """

    model: int = 0
    knob_name: ClassVar[str] = "knob"
    model_params: ClassVar[tuple[str, ...]] = ("model",)

    def decide(self, predicted: ArrayLike, model_costs: ArrayLike, knob: float) -> IntArray:
        pred, _ = check_inputs(predicted, model_costs)
        if not 0 <= self.model < pred.shape[1]:
            raise CodynError(f"model index {self.model} is out of range for {pred.shape[1]} models")
        return np.full(pred.shape[0], self.model, dtype=np.int64)

    def knob_grid(
        self, predicted: ArrayLike, model_costs: ArrayLike, n_points: int | None = 50
    ) -> FloatArray:
        check_inputs(predicted, model_costs)
        return np.array([self.default_knob])
