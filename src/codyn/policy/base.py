"""The `Policy` contract and the helpers every decision rule shares.

A router predicts a quality matrix; a policy turns it, the models' costs and ONE knob into a
model per prompt. Evaluation sweeps the knob with `Policy.knob_grid`, calibration picks one.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from codyn.errors import CodynError

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]

TIE_TOLERANCE = 1e-9
"""Values within this (relative) distance of the best count as tied, so that a knob computed
as a flip point reproduces the flip despite rounding; ties go to the cheaper model."""


class Policy(ABC):
    """A decision rule with one knob: ``decide`` picks a model per prompt, ``knob_grid`` sweeps."""

    knob_name: ClassVar[str]

    @abstractmethod
    def decide(self, predicted: ArrayLike, model_costs: ArrayLike, knob: float) -> IntArray:
        """Chosen model index per prompt (``n``) from ``predicted`` (``n x m``, higher is better)
        and ``model_costs`` (``m``, mean cost per call on the train split)."""

    @abstractmethod
    def knob_grid(
        self, predicted: ArrayLike, model_costs: ArrayLike, n_points: int | None = 50
    ) -> FloatArray:
        """Knob values from the cheap end to the quality end (cost weakly increasing).

        Holds every knob value where a decision flips when they fit in ``n_points`` values
        (``None``: always), otherwise quantiles of the flip points; both ends are always there.
        """


def check_inputs(predicted: ArrayLike, model_costs: ArrayLike) -> tuple[FloatArray, FloatArray]:
    """Validate shapes and costs; missing predictions (NaN) become -inf so they never win."""
    pred = np.array(predicted, dtype=np.float64)
    costs = np.asarray(model_costs, dtype=np.float64)
    if pred.ndim != 2 or pred.shape[1] == 0:
        raise CodynError(f"predicted must be a 2-D n_prompts x n_models array, got {pred.shape}")
    if costs.shape != (pred.shape[1],):
        raise CodynError(
            f"model_costs has shape {costs.shape}, expected ({pred.shape[1]},): one cost per "
            "column of predicted"
        )
    bad = np.flatnonzero(~np.isfinite(costs) | (costs < 0))
    if bad.size:
        raise CodynError(
            f"model_costs must be finite and non-negative; model index {int(bad[0])} has "
            f"{costs[bad[0]]} (use a price proxy when costs are unknown)"
        )
    pred[np.isnan(pred)] = -np.inf
    return pred, costs


def argmax_cheapest(values: FloatArray, costs: FloatArray) -> IntArray:
    """Per-row argmax where ties (within `TIE_TOLERANCE`) go to the cheaper, then lower, index."""
    best = values.max(axis=1, keepdims=True)
    with np.errstate(invalid="ignore"):
        slack = TIE_TOLERANCE * np.maximum(1.0, np.abs(best))
        near = values >= np.where(np.isfinite(best), best - slack, best)
    by_cost = np.argsort(costs, kind="stable")
    return by_cost[np.argmax(near[:, by_cost], axis=1)].astype(np.int64)


def utility_flips(values: FloatArray, costs: FloatArray) -> FloatArray:
    """Every lambda > 0 where a prompt's ``argmax(values - lambda * costs)`` changes.

    Walks each prompt's upper envelope from lambda = 0 towards ever cheaper models: from the
    current choice ``a``, the next flip is the smallest crossing ``(u_a - u_b) / (c_a - c_b)``
    over cheaper models ``b`` (ties to the cheapest). At most ``m - 1`` steps, vectorised.
    """
    n = values.shape[0]
    rows = np.arange(n)
    current = argmax_cheapest(values, costs)
    flips: list[FloatArray] = []
    by_cost = np.argsort(costs, kind="stable")
    for _ in range(values.shape[1] - 1):
        gain = values[rows, current][:, None] - values
        saving = costs[current][:, None] - costs[None, :]
        with np.errstate(invalid="ignore", divide="ignore"):
            cross = np.where(saving > 0, gain / saving, np.inf)
        cross[~np.isfinite(cross)] = np.inf
        nearest = cross.min(axis=1)
        moving = np.isfinite(nearest)
        if not moving.any():
            break
        slack = TIE_TOLERANCE * np.maximum(1.0, np.abs(nearest))
        tied = cross <= (nearest + slack)[:, None]
        cheapest_tied = by_cost[np.argmax(tied[:, by_cost], axis=1)]
        flips.append(nearest[moving])
        current = np.where(moving, cheapest_tied, current)
    return np.concatenate(flips) if flips else np.empty(0)


def flip_grid(
    flips: FloatArray,
    n_points: int | None,
    *,
    past: Literal["above", "below"],
    end: float | None = None,
) -> FloatArray:
    """Ascending knob values: the flips (or their quantiles) closed by both ends.

    One value past the extreme flip on side ``past`` closes the grid there (ANCHORS.md
    "Sweeps": "one past the last flip"); ``end`` closes the other side (default: the extreme
    flip there). At most ``n_points`` values; ``None`` keeps every flip.
    """
    if n_points is not None and n_points < 2:
        raise CodynError(f"n_points must be at least 2 (both ends), got {n_points}")
    flips = flips[np.isfinite(flips)]
    if flips.size == 0:
        return np.array([0.0 if end is None else float(end)])
    unique = np.unique(flips)
    last = unique[-1] if past == "above" else unique[0]
    step = max(1e-6, 1e-2 * abs(float(last)))
    beyond = last + step if past == "above" else last - step
    if end is None:
        end = unique[0] if past == "above" else unique[-1]
    if n_points is None or unique.size <= n_points - 2:
        inner = unique
    else:
        inner = np.quantile(flips, np.linspace(0.0, 1.0, n_points - 2))
    return np.unique(np.concatenate([inner, [end, beyond]]))
