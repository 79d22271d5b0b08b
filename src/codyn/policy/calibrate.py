"""Pick a policy's knob on validation data so that it meets a cost, strong-share or quality target.

The candidates are the policy's own `Policy.knob_grid` (every flip point while that stays
affordable to evaluate, `codyn.policy.decision.full_grid`), and every candidate is decided by
`codyn.policy.decide`, so calibration works for any policy without knowing its rule.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from codyn.errors import CodynError
from codyn.policy.base import FloatArray, Policy, check_inputs, mean_costs
from codyn.policy.decision import decide, full_grid
from codyn.policy.threshold import ThresholdPolicy

MAX_EVALUATIONS = 50_000_000
"""Upper bound on ``grid points x prompts x models`` evaluated; beyond it the grid is thinned
to flip quantiles (at least 50 points)."""

_REL = 1e-12


@dataclass(frozen=True)
class Calibration:
    """The chosen knob and what it achieved on the validation prompts."""

    knob: float
    cost: float
    """Mean cost per call (per-prompt ``cost_val`` where known, else ``model_costs``)."""
    quality: float | None
    """Mean validation score of the chosen models (None without ``score_val``)."""
    strong_share: float
    """Fraction of calls to ``strong_model``."""
    strong_model: int
    """The policy's strong model for `ThresholdPolicy`; otherwise the model with the best
    validation mean score (ties -> cheaper) or, without scores, the most expensive one."""
    target: str
    """The target met, e.g. ``"cost <= 0.002"``."""


def calibrate(
    policy: Policy,
    predicted_val: ArrayLike,
    model_costs: ArrayLike,
    *,
    target_cost: float | None = None,
    target_cost_fraction: float | None = None,
    strong_share: float | None = None,
    min_quality: float | None = None,
    score_val: ArrayLike | None = None,
    cost_val: ArrayLike | None = None,
) -> Calibration:
    """Choose the knob for exactly one target, on validation predictions.

    - ``target_cost``: mean cost per call (USD or the data's proxy) at most this.
    - ``target_cost_fraction``: mean cost at most this fraction of what sending every prompt
      to ``strong_model`` (see `Calibration`) costs.
    - ``strong_share``: at most this fraction of calls to ``strong_model`` (the MBPP paper's
      cost advantage is ``1 - strong_share``; for `ThresholdPolicy` without ``score_val`` the
      knob is the ``1 - strong_share`` percentile of the validation margins, as in that paper).
    - ``min_quality``: mean validation score (needs ``score_val``) at least this.

    A budget target returns the knob with the best validation quality within the budget (ties
    -> cheaper; without ``score_val`` the most expensive point within it); a quality target
    returns the cheapest knob reaching it. An unreachable target raises `CodynError` stating
    the achievable range.
    """
    targets = {
        "target_cost": target_cost,
        "target_cost_fraction": target_cost_fraction,
        "strong_share": strong_share,
        "min_quality": min_quality,
    }
    given = [name for name, value in targets.items() if value is not None]
    if len(given) != 1:
        raise CodynError(
            f"give exactly one calibration target ({', '.join(targets)}); got "
            f"{', '.join(given) if given else 'none'}"
        )
    pred, costs = check_inputs(predicted_val, model_costs)
    if pred.shape[0] == 0:
        raise CodynError("calibration needs at least one validation prompt")
    scores = _matrix(score_val, pred.shape, "score_val")
    if min_quality is not None and scores is None:
        raise CodynError("min_quality needs the validation scores (score_val)")
    call_costs = _call_costs(cost_val, costs, pred.shape)
    strong = _strong_model(policy, scores, costs)

    knobs = full_grid(policy, pred, costs)
    cost, share, quality = _evaluate(policy, pred, costs, knobs, call_costs, scores, strong)
    if min_quality is not None:
        label = f"quality >= {min_quality:g}"
        feasible = quality >= min_quality - _REL * max(1.0, abs(min_quality))
        achieved = quality
    else:
        if strong_share is not None:
            if not 0.0 <= strong_share <= 1.0:
                raise CodynError(f"strong_share must be in [0, 1], got {strong_share}")
            limit, achieved, what = strong_share, share, "strong share"
        elif target_cost is not None:
            limit, achieved, what = target_cost, cost, "cost"
        else:
            assert target_cost_fraction is not None
            if target_cost_fraction <= 0:
                raise CodynError(f"target_cost_fraction must be > 0, got {target_cost_fraction}")
            limit = target_cost_fraction * float(call_costs[:, strong].mean())
            achieved, what = cost, "cost"
        label = f"{what} <= {limit:g}"
        feasible = achieved <= limit + _REL * max(1.0, abs(limit))
    if not feasible.any():
        raise CodynError(
            f"target {label} is not reachable on validation: it ranges "
            f"{np.nanmin(achieved):g} .. {np.nanmax(achieved):g}"
        )
    if min_quality is not None:
        pick = _best(feasible, primary=-cost, secondary=quality)
    elif scores is None:
        pick = int(np.flatnonzero(feasible)[-1])  # the grid's cost order: closest to the budget
    else:
        pick = _best(feasible, primary=quality, secondary=-cost)
    return Calibration(
        knob=float(knobs[pick]),
        cost=float(cost[pick]),
        quality=None if scores is None else float(quality[pick]),
        strong_share=float(share[pick]),
        strong_model=strong,
        target=label,
    )


def _evaluate(
    policy: Policy,
    pred: FloatArray,
    costs: FloatArray,
    knobs: FloatArray,
    call_costs: FloatArray,
    scores: FloatArray | None,
    strong: int,
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Mean cost, strong share and mean quality (NaN without scores) at every knob."""
    rows = np.arange(pred.shape[0])
    cost, share, quality = np.empty(knobs.size), np.empty(knobs.size), np.full(knobs.size, np.nan)
    for i, knob in enumerate(knobs):  # one knob at a time: a full grid can be long
        chosen = decide(pred, costs, policy, float(knob))
        cost[i] = call_costs[rows, chosen].mean()
        share[i] = np.mean(chosen == strong)
        if scores is not None:
            quality[i] = _nanmean(scores[rows, chosen])
    return cost, share, quality


def _matrix(value: ArrayLike | None, shape: tuple[int, ...], name: str) -> FloatArray | None:
    if value is None:
        return None
    array = np.asarray(value, dtype=np.float64)
    if array.shape != shape:
        raise CodynError(f"{name} has shape {array.shape}, expected {shape} like predicted_val")
    return array


def _call_costs(
    cost_val: ArrayLike | None, costs: FloatArray, shape: tuple[int, ...]
) -> FloatArray:
    """Per-prompt cost of each model: ``cost_val`` where known, the model's mean cost elsewhere."""
    fallback = np.broadcast_to(costs if costs.ndim == 2 else mean_costs(costs), shape)
    observed = _matrix(cost_val, shape, "cost_val")
    return fallback.copy() if observed is None else np.where(np.isnan(observed), fallback, observed)


def _strong_model(policy: Policy, scores: FloatArray | None, costs: FloatArray) -> int:
    if isinstance(policy, ThresholdPolicy):
        return policy.pair(costs)[0]
    if scores is None:
        return int(np.argmax(mean_costs(costs)))
    means = np.nan_to_num(_nanmean(scores), nan=-np.inf)
    best = np.flatnonzero(means == means.max())
    return int(best[np.argmin(mean_costs(costs)[best])])


def _nanmean(values: FloatArray) -> FloatArray:
    """Mean over axis 0 ignoring NaN; NaN where nothing is known (no warning)."""
    known = ~np.isnan(values)
    counts = known.sum(axis=0)
    return np.where(
        counts > 0, np.where(known, values, 0.0).sum(axis=0) / np.maximum(counts, 1), np.nan
    )


def _best(mask: np.ndarray, *, primary: FloatArray, secondary: FloatArray) -> int:
    """Index of the masked point with the largest ``primary``, then ``secondary``, then first."""
    candidates = np.flatnonzero(mask)
    order = np.lexsort((candidates, -secondary[candidates], -primary[candidates]))
    return int(candidates[order[0]])


@dataclass(frozen=True)
class GuaranteedCalibration:
    """The knob `calibrate_with_guarantee` chose and what backs it."""

    knob: float | None
    """None: no knob qualifies; route every prompt to the SBS."""
    max_quality_loss: float
    confidence: float
    method: str
    sbs_model: int
    loss: float
    """Mean validation quality loss against always-SBS at the knob (0 for the SBS itself)."""
    cost: float
    """Mean validation cost per call at the knob."""
    sbs_cost: float
    quality: float
    sbs_quality: float
    knobs_tested: int
    p_value: float
    """The chosen knob's p-value (or, with no knob, the first one tested)."""
    summary: str


def calibrate_with_guarantee(
    policy: Policy,
    predicted_val: ArrayLike,
    model_costs: ArrayLike,
    score_val: ArrayLike,
    *,
    sbs: int,
    max_quality_loss: float,
    confidence: float,
    knobs: ArrayLike | None = None,
    cost_val: ArrayLike | None = None,
    method: str = "betting",
    seed: int = 0,
) -> GuaranteedCalibration:
    """The cheapest knob whose expected quality loss against always routing to model ``sbs`` on
    NEW prompts from the validation prompts' distribution is at most ``max_quality_loss``, with
    probability at least ``confidence`` over the draw of the validation prompts.

    Learn then Test (Angelopoulos, Bates, Candès, Jordan, Lei, 2021, arXiv 2110.01052): per
    knob the loss ``l_i = s_i(SBS) - s_i(chosen)`` (scores in [0, 1]), a p-value for "expected
    loss > E" (`codyn.policy.guarantee`: ``betting``, Waudby-Smith and Ramdas 2023, or ``hb``,
    Hoeffding-Bentkus, Bates et al. 2021), and fixed-sequence testing at ``1 - confidence``
    from the policy's default knob (quality first) towards the cheap end, stopping at the first
    knob not certified. ``knobs`` should not depend on the validation scores: pass the grid
    from the train prompts (`codyn.deploy.PolicySetup.knob_grid`); by default the policy's own
    grid on the validation predictions is used, which depends on the prompts only.
    """
    from codyn.policy.guarantee import learn_then_test

    pred, costs = check_inputs(predicted_val, model_costs)
    scores = _matrix(score_val, pred.shape, "score_val")
    assert scores is not None
    if pred.shape[0] == 0:
        raise CodynError("calibration needs at least one validation prompt")
    if np.isnan(scores).any():
        raise CodynError("a guaranteed calibration needs every model's score on every prompt")
    if scores.min() < 0.0 or scores.max() > 1.0:
        raise CodynError(
            f"a guaranteed calibration needs scores in [0, 1]; they range {scores.min():g} .. "
            f"{scores.max():g} (rescale them)"
        )
    if not 0 <= sbs < pred.shape[1]:
        raise CodynError(f"sbs model index {sbs} is out of range for {pred.shape[1]} models")
    call_costs = _call_costs(cost_val, costs, pred.shape)
    grid = full_grid(policy, pred, costs) if knobs is None else np.asarray(knobs, dtype=float)
    if grid.ndim != 1 or grid.size == 0:
        raise CodynError("the knob grid must be a non-empty list of knob values")
    start = int(np.argmin(np.abs(grid - policy.default_knob)))
    sequence = grid[start::-1]  # the grid runs cheap -> quality: test from the default down
    rows = np.arange(pred.shape[0])
    chosen = [decide(pred, costs, policy, float(k)) for k in sequence]
    losses = np.stack([scores[:, sbs] - scores[rows, c] for c in chosen])
    ltt = learn_then_test(losses, max_quality_loss, confidence, method=method, seed=seed)  # type: ignore[arg-type]
    sbs_cost = float(call_costs[:, sbs].mean())
    sbs_quality = float(scores[:, sbs].mean())
    if ltt.chosen is None:
        knob, cost, quality, loss, p = None, sbs_cost, sbs_quality, 0.0, ltt.p_values[0]
    else:
        pick = chosen[ltt.chosen]
        knob = float(sequence[ltt.chosen])
        cost = float(call_costs[rows, pick].mean())
        quality = float(scores[rows, pick].mean())
        loss, p = float(losses[ltt.chosen].mean()), ltt.p_values[ltt.chosen]
    return GuaranteedCalibration(
        knob=knob,
        max_quality_loss=float(max_quality_loss),
        confidence=float(confidence),
        method=method,
        sbs_model=sbs,
        loss=loss,
        cost=cost,
        sbs_cost=sbs_cost,
        quality=quality,
        sbs_quality=sbs_quality,
        knobs_tested=len(ltt.p_values),
        p_value=float(p),
        summary=ltt.summary(),
    )
