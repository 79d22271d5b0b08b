"""THE decision path: predictions, model costs, a policy and its knob -> a model per prompt.

`decide` is the one function every caller goes through: evaluation sweeps (`sweep_choices`),
calibration, ``codyn route``, `codyn.Client` and ``codyn serve`` (whose fallback order is
`rank`: the policy's choice, then its choice with that model gone, and so on). Nothing else in
codyn turns predictions into choices.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from codyn.errors import CodynError
from codyn.policy.base import FloatArray, IntArray, Policy, check_inputs

MAX_EVALUATIONS = 50_000_000
"""Upper bound on ``knobs x prompts x models`` a full sweep evaluates; beyond it the grid is
thinned to flip quantiles (at least 50 points)."""


def decide(
    predicted: ArrayLike,
    model_costs: ArrayLike,
    policy: Policy,
    knob: float | None = None,
    *,
    offered: ArrayLike | None = None,
) -> IntArray:
    """The chosen model (column index) per prompt.

    ``knob`` defaults to the policy's `Policy.default_knob`. ``offered`` (a boolean mask over
    models, or one per prompt) limits the choice: models not offered are never chosen. Where the
    policy's rule lands on a model not offered (no offered model has a known prediction, or a
    pair policy's model is not offered) the cheapest offered model answers.
    """
    pred, costs = check_inputs(predicted, model_costs)
    mask = _offered_mask(offered, pred.shape)
    if mask is not None:
        pred = np.where(mask, pred, -np.inf)
    chosen = policy.decide(pred, costs, policy.default_knob if knob is None else knob)
    if mask is None:
        return chosen
    rows = np.arange(pred.shape[0])
    wrong = ~mask[rows, chosen]
    if wrong.any():
        by_cost = np.where(mask, np.broadcast_to(costs, pred.shape), np.inf)
        chosen[wrong] = np.argmin(by_cost[wrong], axis=1)
    return chosen


def rank(
    predicted: ArrayLike,
    model_costs: ArrayLike,
    policy: Policy,
    knob: float | None = None,
    *,
    offered: ArrayLike | None = None,
) -> IntArray:
    """Every offered model per prompt in the policy's order: ``n x n_offered`` column indices.

    Column 0 is `decide`'s choice; each next one is the choice with the models before it
    removed, so a fallback order follows the policy's own rule whatever it is.
    """
    pred, costs = check_inputs(predicted, model_costs)
    mask = _offered_mask(offered, pred.shape)
    remaining = np.ones(pred.shape, dtype=bool) if mask is None else mask.copy()
    counts = remaining.sum(axis=1)
    if (counts != counts[0]).any():
        raise CodynError("rank needs the same number of offered models for every prompt")
    rows = np.arange(pred.shape[0])
    order = np.empty((pred.shape[0], int(counts[0])), dtype=np.int64)
    for step in range(order.shape[1]):
        order[:, step] = decide(pred, costs, policy, knob, offered=remaining)
        remaining[rows, order[:, step]] = False
    return order


def sweep_choices(
    predicted: ArrayLike, model_costs: ArrayLike, policy: Policy, knobs: ArrayLike
) -> IntArray:
    """`decide` at every knob: ``n_knobs x n_prompts`` (the rows of a cost-quality curve)."""
    pred, costs = check_inputs(predicted, model_costs)
    values = np.atleast_1d(np.asarray(knobs, dtype=np.float64))
    if values.size == 0:
        return np.empty((0, pred.shape[0]), dtype=np.int64)
    return np.stack([decide(pred, costs, policy, float(k)) for k in values])


def full_grid(
    policy: Policy,
    predicted: ArrayLike,
    model_costs: ArrayLike,
    *,
    at_least: int = 50,
    max_evaluations: int = MAX_EVALUATIONS,
) -> FloatArray:
    """Every flip point of the policy, thinned to quantiles (at least ``at_least``) when
    sweeping them all would evaluate more than ``max_evaluations`` cells."""
    pred, costs = check_inputs(predicted, model_costs)
    per_point = max(1, pred.size)
    knobs = policy.knob_grid(pred, costs, n_points=None)
    if knobs.size * per_point > max_evaluations:
        knobs = policy.knob_grid(pred, costs, n_points=max(at_least, max_evaluations // per_point))
    return knobs


def _offered_mask(offered: ArrayLike | None, shape: tuple[int, ...]) -> NDArray[np.bool_] | None:
    if offered is None:
        return None
    mask = np.asarray(offered)
    if mask.dtype != bool or mask.shape not in ((shape[1],), shape):
        raise CodynError(
            f"offered must be a boolean mask over the {shape[1]} models (or one per prompt), "
            f"got {mask.dtype} {mask.shape}"
        )
    mask = np.broadcast_to(mask, shape)
    if not mask.any(axis=1).all():
        raise CodynError("no model offered: offer at least one model")
    return mask
