"""Verify, then escalate: a cascade calls a model, checks its answer against the prompt's own
tests, and pays for the next model only when the check fails.

The cascade is a policy whose ranking orders the models (a fixed ``chain``, or the router's
utility ranking at the knob, so a prompt predicted hard can skip the cheap model) and whose
steps walk that order: each model up to ``depth`` models, each tried ``1 + retries`` times
(fresh samples) before moving on. The first answer whose visible-test pass fraction reaches
``threshold`` is accepted; a prompt without tests cannot be verified, so its first answer is
(routing as without a cascade); when no answer passes, the best one tried is returned (by
visible pass, ties to the later step: the pricier model). Cost is every call made.

The same step rules (`cascade_steps`, `accepts`, `final_step`) drive the live proxy (a real
sandbox run per attempt) and the evaluation (`simulate_cascade` on recorded visible scores),
so both measure one behaviour.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar, TypeVar

import numpy as np
from numpy.typing import ArrayLike

from codyn.errors import CodynError
from codyn.policy.base import FloatArray, IntArray, Policy, check_inputs, register_policy
from codyn.policy.decision import rank
from codyn.policy.utility import UtilityPolicy

M = TypeVar("M")


def cascade_steps(order: Sequence[M], depth: int, retries: int) -> list[tuple[M, int]]:
    """``(model, sample)`` attempts in order: the first ``depth`` models of ``order`` (indices
    or names), each ``1 + retries`` times."""
    return [(model, sample) for model in order[:depth] for sample in range(retries + 1)]


def accepts(visible: float | None, threshold: float) -> bool:
    """Whether an answer with visible pass fraction ``visible`` ends the cascade: it reached
    ``threshold``, or there was nothing to verify (None or NaN: no visible tests)."""
    return visible is None or bool(np.isnan(visible)) or visible >= threshold


def final_step(visible: Sequence[float | None]) -> int:
    """The attempt a cascade that accepted nothing answers with: the best visible pass
    fraction, ties to the later attempt (a later model is the pricier, stronger one)."""
    values = [-np.inf if v is None or np.isnan(v) else float(v) for v in visible]
    best = max(values)
    return max(i for i, v in enumerate(values) if v == best)


@register_policy("cascade")
@dataclass(frozen=True)
class CascadePolicy(Policy):
    """Call models in the policy's order, accept the first answer passing the visible tests.

    ``chain`` fixes the order (model indices, or names through `make_policy`; models not in
    it follow by cost); without it the order is `UtilityPolicy`'s ranking of the router's
    predictions at the knob (lambda: large starts at the cheapest model, 0 at the best
    predicted one). ``depth`` models at most (default: the whole chain, or 2 models
    router-led), ``retries`` extra samples of each before escalating, ``threshold`` the
    visible pass fraction that accepts. `decide` is the first model called (what a
    verifier-less caller gets); the escalation needs verification: `simulate_cascade` on
    recorded outcomes, or the proxy's sandbox.
    """

    chain: tuple[int, ...] | None = None
    threshold: float = 1.0
    depth: int | None = None
    retries: int = 0
    knob_name: ClassVar[str] = "lambda"
    model_params: ClassVar[tuple[str, ...]] = ("chain",)

    def __post_init__(self) -> None:
        if not 0.0 < self.threshold <= 1.0:
            raise CodynError(f"threshold must be in (0, 1], got {self.threshold}")
        if (self.depth is not None and self.depth < 1) or self.retries < 0:
            raise CodynError(
                f"depth must be >= 1 and retries >= 0, got {self.depth}, {self.retries}"
            )
        if self.chain is not None:
            chain = tuple(int(m) for m in self.chain)
            if not chain or len(set(chain)) != len(chain) or min(chain) < 0:
                raise CodynError(f"chain must name distinct models, got {list(self.chain)}")
            object.__setattr__(self, "chain", chain)

    @property
    def max_depth(self) -> int:
        """Models one prompt's cascade calls at most."""
        if self.depth is not None:
            return self.depth if self.chain is None else min(self.depth, len(self.chain))
        return 2 if self.chain is None else len(self.chain)

    def order(self, predicted: ArrayLike, model_costs: ArrayLike, knob: float) -> IntArray:
        """``n x depth``: the models each prompt's cascade tries, in order (`rank`'s)."""
        pred, costs = check_inputs(predicted, model_costs)
        return rank(pred, costs, self, knob)[:, : self.max_depth]

    def decide(self, predicted: ArrayLike, model_costs: ArrayLike, knob: float) -> IntArray:
        """The first model called: the chain's first offered model (a model not offered has
        prediction -inf), or the utility choice at the knob."""
        pred, costs = check_inputs(predicted, model_costs)
        if self.chain is None:
            return UtilityPolicy().decide(pred, costs, self.check_knob(knob))
        chain = np.asarray(self.chain, dtype=np.int64)
        if chain.max() >= pred.shape[1]:
            raise CodynError(f"chain {list(self.chain)} names a model index out of range")
        available = np.isfinite(pred[:, chain])
        return chain[np.argmax(available, axis=1)]

    def knob_grid(
        self, predicted: ArrayLike, model_costs: ArrayLike, n_points: int | None = 50
    ) -> FloatArray:
        """The utility grid (where the order changes); one point for a fixed chain."""
        if self.chain is not None:
            check_inputs(predicted, model_costs)
            return np.array([self.default_knob])
        return UtilityPolicy().knob_grid(predicted, model_costs, n_points)


@dataclass(frozen=True)
class CascadeOutcome:
    """What a cascade did on each prompt (arrays over prompts)."""

    quality: FloatArray
    """Hidden-test score of the answer returned."""
    cost: FloatArray
    """Sum of every call's cost."""
    latency: FloatArray
    """Sum of every call's latency (NaN where unknown)."""
    answered_by: IntArray
    """The model whose answer was returned."""
    depth: IntArray
    """Distinct models called (1 = the first model's answer was accepted)."""
    attempts: IntArray
    calls: IntArray
    """``n x m``: calls made to each model."""


def simulate_cascade(
    order: ArrayLike,
    visible: ArrayLike,
    hidden: ArrayLike,
    cost: ArrayLike,
    *,
    threshold: float = 1.0,
    retries: int = 0,
    latency: ArrayLike | None = None,
    rotate: int = 0,
) -> CascadeOutcome:
    """Run the cascade on recorded outcomes, by the rules of `cascade_steps`, `accepts` and
    `final_step`, vectorised over prompts.

    ``order``: ``n x depth`` models per prompt; ``visible`` / ``hidden``: ``n x m x k``
    per-sample pass fractions (NaN hidden = sample not recorded, NaN visible = no visible
    tests); ``cost`` / ``latency``: ``n x m`` per call. Attempt ``s`` of a model uses its
    recorded sample ``(s + rotate) mod n_recorded`` (averaging over ``rotate`` in ``range(k)``
    takes every sample once as the first answer); a model is tried at most as often as it
    has samples."""
    steps_order = np.asarray(order, dtype=np.int64)
    vis = np.asarray(visible, dtype=np.float64)
    hid = np.asarray(hidden, dtype=np.float64)
    per_call = np.asarray(cost, dtype=np.float64)
    n, m = per_call.shape
    if (
        vis.shape != hid.shape
        or vis.ndim != 3
        or vis.shape[:2] != (n, m)
        or steps_order.ndim != 2
        or steps_order.shape[0] != n
    ):
        raise CodynError(
            f"simulate_cascade: visible {vis.shape}, hidden {hid.shape}, cost {per_call.shape} "
            f"and order {steps_order.shape} do not fit one another"
        )
    lat = np.full((n, m), np.nan) if latency is None else np.asarray(latency, dtype=np.float64)
    # recorded samples first in each cell, so attempt s can index the s-th recorded one
    front = np.argsort(np.isnan(hid), axis=2, kind="stable")
    vis, hid = np.take_along_axis(vis, front, 2), np.take_along_axis(hid, front, 2)
    n_recorded = (~np.isnan(hid)).sum(axis=2)
    rows = np.arange(n)
    total, took = np.zeros(n), np.zeros(n)
    depth, attempts = np.zeros(n, np.int64), np.zeros(n, np.int64)
    calls = np.zeros((n, m), dtype=np.int64)
    open_ = np.ones(n, dtype=bool)  # no answer accepted yet
    best = np.full(n, -np.inf)  # best visible pass tried so far (final_step's rule)
    pick = np.full((n, 2), -1, dtype=np.int64)  # (model, sample) of the answer so far
    width = steps_order.shape[1]
    for position, sample in cascade_steps(range(width), width, retries):
        model = steps_order[:, position]
        have = n_recorded[rows, model]
        tried = open_ & (sample < have)
        if not tried.any():
            continue
        at = (sample + rotate) % np.maximum(have, 1)
        seen = vis[rows, model, at]
        total += np.where(tried, per_call[rows, model], 0.0)
        took += np.where(tried, lat[rows, model], 0.0)
        np.add.at(calls, (rows[tried], model[tried]), 1)
        attempts += tried
        depth += tried & (sample == 0)
        accepted = tried & (np.isnan(seen) | (seen >= threshold))
        value = np.where(np.isnan(seen), -np.inf, seen)
        better = tried & (accepted | (value >= best))  # ties to the later attempt
        best = np.where(better, value, best)
        pick[better] = np.stack([model, at], axis=1)[better]
        open_ &= ~accepted
    if (attempts == 0).any():
        first = int(np.flatnonzero(attempts == 0)[0])
        raise CodynError(f"simulate_cascade: prompt {first} has no recorded answer to try")
    quality = hid[rows, pick[:, 0], pick[:, 1]]
    return CascadeOutcome(quality, total, took, pick[:, 0].copy(), depth, attempts, calls)
