"""Knob sweeps on the test prompts, every decision through `codyn.policy.decide`.

The cost-quality curve of a (router, policy) is the policy's knob grid on the router's test
predictions; the strong/weak curve is `ThresholdPolicy` on the pair, read on the share of
strong calls. APGR and CPT are read on the exact per-prompt curve of the router's margins
(`codyn.metrics.binary.strong_share_curve`, the ANCHORS.md convention: top-k prompts by
margin go strong, ties in a seeded random order).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from codyn.evaluate.context import Context
from codyn.metrics.binary import pgr, strong_share_curve
from codyn.metrics.quality_cost import chosen_cells, curve_points
from codyn.policy import Policy, ThresholdPolicy, decide, sweep_choices
from codyn.policy.base import FloatArray, IntArray


@dataclass
class Sweep:
    """One knob sweep on the test prompts: the choices and their mean cost and quality.

    A router's point is one model per prompt, so its per-prompt outcome is that cell of the
    test matrices. A cascade's is not (it pays for every model it called): its sweep carries
    the per-prompt ``outcome_quality`` / ``outcome_cost`` and the ``calls`` per model, and
    ``choices`` holds the model whose answer was returned.
    """

    knobs: FloatArray
    choices: IntArray  # n_points x n_prompts
    costs: FloatArray
    qualities: FloatArray
    outcome_quality: FloatArray | None = None  # n_points x n_prompts
    outcome_cost: FloatArray | None = None
    calls: FloatArray | None = None  # n_points x n_models: calls made per model

    def outcomes(self, ctx: Context) -> tuple[FloatArray, FloatArray]:
        """Per-prompt quality and cost of every point (``n_points x n_prompts`` each)."""
        if self.outcome_quality is not None and self.outcome_cost is not None:
            return self.outcome_quality, self.outcome_cost
        return chosen_cells(self.choices, ctx.score, ctx.cost)

    def calls_at(self, point: int, n_models: int) -> FloatArray:
        """Calls made to each model at one point (a router: one per prompt it sends there)."""
        if self.calls is not None:
            return self.calls[point]
        return np.bincount(self.choices[point], minlength=n_models).astype(np.float64)


@dataclass
class PairCurve:
    """The strong/weak threshold sweep, read on the share of strong calls (ascending)."""

    sweep: Sweep
    strong_share: FloatArray
    pgr: FloatArray  # NaN when the strong model is not better than the weak one on test
    margin: FloatArray  # per test prompt: the router's strong-minus-weak margin (finite)
    exact_share: FloatArray  # the per-prompt curve APGR and CPT are read on: k / N
    exact_quality: FloatArray

    @property
    def constant(self) -> bool:
        """Every prompt has the same margin: the curve is a random tie order, not a router."""
        return bool(np.ptp(self.margin) == 0)


def sweep_of(choices: IntArray, knobs: FloatArray, ctx: Context) -> Sweep:
    costs, qualities = curve_points(choices, ctx.score, ctx.cost)
    return Sweep(knobs=knobs, choices=choices, costs=costs, qualities=qualities)


def policy_sweep(
    policy: Policy,
    predicted: FloatArray,
    ctx: Context,
    *,
    costs: FloatArray | None = None,
    n_points: int | None = None,
) -> Sweep:
    """The policy's knob grid on ``predicted`` (cheap end first), decided at every point.

    ``costs`` default to the mean train cost per model (what a deployed router knows).
    """
    model_costs = ctx.model_costs if costs is None else costs
    knobs = policy.knob_grid(predicted, model_costs, ctx.n_points if n_points is None else n_points)
    return sweep_of(sweep_choices(predicted, model_costs, policy, knobs), knobs, ctx)


def default_choices(policy: Policy, predicted: FloatArray, costs: FloatArray) -> IntArray:
    """What the policy decides at its default knob (utility: lambda = 0, quality only)."""
    return decide(predicted, costs, policy)


def pair_curve(predicted: FloatArray, ctx: Context) -> PairCurve | None:
    """`ThresholdPolicy` on the strong/weak pair swept over its knob, and the exact curve."""
    if ctx.weak is None:
        return None
    pair = ThresholdPolicy(strong=ctx.strong, weak=ctx.weak)
    sweep = policy_sweep(pair, predicted, ctx)
    share = (sweep.choices == ctx.strong).mean(axis=1)
    order = np.argsort(share, kind="stable")
    sweep = Sweep(
        sweep.knobs[order], sweep.choices[order], sweep.costs[order], sweep.qualities[order]
    )
    margin = np.nan_to_num(pair.margins(predicted, ctx.model_costs), nan=-np.inf)
    margin = np.clip(margin, -1e300, 1e300)
    exact_share, exact_quality = strong_share_curve(
        margin, ctx.score[:, ctx.strong], ctx.score[:, ctx.weak], seed=ctx.seed
    )
    gained = np.atleast_1d(pgr(sweep.qualities, ctx.q_weak, ctx.q_strong))
    return PairCurve(sweep, share[order], gained, margin, exact_share, exact_quality)
