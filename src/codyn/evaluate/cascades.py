"""Cascades on the same axes as routers: replay `simulate_cascade` on the recorded outcomes.

Two kinds of row. ``cascade`` among the routers is a fixed chain: every chain of up to
``max_depth`` models in order of train cost, with ``0..k-1`` retries per model and each
threshold, is replayed on the train split; the configurations on train's cost-quality
frontier (chosen there, never on test) are the operating points of its test curve. The
``cascade`` policy under a router is router-led: the router's utility ranking at each knob
says where each prompt starts and where it escalates.

A point's outcome per prompt is the hidden score of the answer returned and the cost of every
call made, averaged over which recorded sample comes first (with ``k`` samples per cell, each
of the ``k`` rotations is replayed once), so a one-model chain scores exactly that model's
mean. The verifier table says how far visible tests can be trusted: per model, how often the
visible verdict agrees with the hidden one.
"""

from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass
from typing import Any

import numpy as np

from codyn.data.routing import RoutingData
from codyn.errors import CodynError, DataError
from codyn.evaluate.context import NAN, Context
from codyn.evaluate.sweeps import Sweep
from codyn.policy import CascadePolicy, simulate_cascade
from codyn.policy.base import FloatArray, IntArray

FIXED_CHAIN = "cascade"
"""The router name that means a fixed-chain cascade (`fixed_chain_sweep`)."""


@dataclass(frozen=True)
class Recorded:
    """What the cascade replays on one split: per-sample visible and hidden pass fractions
    (``n x m x k``) and the cost and latency of one call (``n x m``)."""

    visible: FloatArray
    hidden: FloatArray
    cost: FloatArray
    latency: FloatArray | None

    @property
    def n_samples(self) -> int:
        return int(self.hidden.shape[2])


@dataclass(frozen=True)
class ChainSearch:
    """The fixed chains tried on train: chains of up to ``max_depth`` models (in order of
    train cost), ``max_retries`` extra samples per model at most (default: every recorded
    sample), each visible-pass ``thresholds``."""

    max_depth: int = 3
    max_retries: int | None = None
    thresholds: tuple[float, ...] = (1.0,)

    def __post_init__(self) -> None:
        if self.max_depth < 1:
            raise CodynError(f"cascade max_depth must be at least 1, got {self.max_depth}")
        if self.max_retries is not None and self.max_retries < 0:
            raise CodynError(f"cascade max_retries must be >= 0, got {self.max_retries}")
        thresholds = tuple(float(t) for t in np.atleast_1d(self.thresholds))
        if not thresholds or not all(0 < t <= 1 for t in thresholds):
            raise CodynError(f"cascade thresholds must lie in (0, 1], got {self.thresholds}")
        object.__setattr__(self, "thresholds", thresholds)

    def policies(self, model_costs: FloatArray, n_samples: int) -> list[CascadePolicy]:
        by_cost = [int(j) for j in np.argsort(model_costs, kind="stable")]
        top = n_samples - 1 if self.max_retries is None else min(self.max_retries, n_samples - 1)
        chains = [
            chain
            for length in range(1, min(self.max_depth, len(by_cost)) + 1)
            for chain in itertools.combinations(by_cost, length)
        ]
        return [
            CascadePolicy(chain=chain, threshold=t, retries=r)
            for chain in chains
            for r in range(top + 1)
            for t in (self.thresholds if len(chain) > 1 or r > 0 else self.thresholds[:1])
        ]


@dataclass
class CascadeReport:
    """What a cascade row did at its default point, for the report."""

    default: str
    """The default operating point, e.g. ``chain smollm2 > qwen-coder, retries 1``."""
    depth_share: list[float]
    """Share of prompts whose cascade called 1, 2, ... distinct models."""
    escalated: float
    """Share of prompts with more than one call."""
    attempts: float
    """Mean calls per prompt."""
    latency_s: float
    """Mean seconds of model calls per prompt (the sandbox's time is extra; NaN unknown)."""
    points: list[str]
    """Every operating point of the curve, cheap end first."""

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def recorded(data: RoutingData, cost: FloatArray, split: str) -> Recorded:
    """The cubes of one split; a one-line `DataError` when it has no visible scores."""
    if data.visible_score is None:
        raise DataError(
            f"a cascade needs visible_score (the pass fraction of each prompt's own tests) on "
            f"the {split} split, and this data has none: collect it with `codyn collect` on "
            "tasks with visible_tests"
        )
    hidden, visible = _cubes(data)
    if hidden.shape != visible.shape:
        raise DataError(
            f"the {split} split's samples {hidden.shape} and visible_samples {visible.shape} "
            "differ in shape"
        )
    return Recorded(visible, hidden, cost, data.latency)


def _cubes(data: RoutingData) -> tuple[FloatArray, FloatArray]:
    """Per-sample hidden and visible scores (``n x m x k``), or the cell means as one sample
    when the data kept no samples."""
    assert data.visible_score is not None
    if data.samples is not None and data.visible_samples is not None:
        return data.samples, data.visible_samples
    return data.score[:, :, None], data.visible_score[:, :, None]


def replay(policy: CascadePolicy, order: IntArray, data: Recorded) -> dict[str, FloatArray]:
    """`simulate_cascade` averaged over which recorded sample comes first: per prompt
    ``quality``, ``cost``, ``latency``, ``attempts``, ``escalated`` (share of rotations
    with more than one call), ``depth`` (``n x max_depth``: share of rotations calling 1, 2,
    ... models), ``answered_by`` (the model answering in most rotations) and ``calls``
    (``n x m``)."""
    runs = [
        simulate_cascade(
            order,
            data.visible,
            data.hidden,
            data.cost,
            threshold=policy.threshold,
            retries=policy.retries,
            latency=data.latency,
            rotate=r,
        )
        for r in range(data.n_samples)
    ]
    m = data.cost.shape[1]
    votes = sum(np.eye(m)[run.answered_by] for run in runs)
    return {
        "quality": np.mean([run.quality for run in runs], axis=0),
        "cost": np.mean([run.cost for run in runs], axis=0),
        "latency": np.mean([run.latency for run in runs], axis=0),
        "depth": np.mean([np.eye(order.shape[1])[run.depth - 1] for run in runs], axis=0),
        "attempts": np.mean([run.attempts for run in runs], axis=0),
        "escalated": np.mean([run.attempts > 1 for run in runs], axis=0),
        "answered_by": np.argmax(votes, axis=1),
        "calls": np.mean([run.calls for run in runs], axis=0),
    }


def _sweep(knobs: FloatArray, outcomes: list[dict[str, FloatArray]]) -> Sweep:
    quality = np.stack([o["quality"] for o in outcomes])
    cost = np.stack([o["cost"] for o in outcomes])
    with np.errstate(invalid="ignore"):
        mean_cost = np.array([np.nanmean(c) if np.isfinite(c).any() else NAN for c in cost])
    return Sweep(
        knobs=np.asarray(knobs, dtype=np.float64),
        choices=np.stack([o["answered_by"] for o in outcomes]).astype(np.int64),
        costs=mean_cost,
        qualities=quality.mean(axis=1),
        outcome_quality=quality,
        outcome_cost=cost,
        calls=np.stack([o["calls"].sum(axis=0) for o in outcomes]),
    )


def describe_chain(policy: CascadePolicy, names: list[str]) -> str:
    chain = " > ".join(names[j] for j in policy.chain or ())
    extra = [f"retries {policy.retries}"] if policy.retries else []
    if policy.threshold < 1 and len(policy.chain or ()) + policy.retries > 1:
        extra.append(f"threshold {policy.threshold:g}")
    return ", ".join([chain, *extra])


def report(policy_text: str, points: list[str], outcome: dict[str, FloatArray]) -> CascadeReport:
    latency = outcome["latency"]
    return CascadeReport(
        default=policy_text,
        depth_share=outcome["depth"].mean(axis=0).tolist(),
        escalated=float(outcome["escalated"].mean()),
        attempts=float(outcome["attempts"].mean()),
        latency_s=float(np.mean(latency)) if np.isfinite(latency).all() else NAN,
        points=points,
    )


def fixed_chain_sweep(
    train: Recorded,
    test: Recorded,
    ctx: Context,
    search: ChainSearch,
    train_sbs_quality: float,
) -> tuple[Sweep, int, CascadeReport]:
    """The fixed chains on train's frontier, replayed on test: the sweep (cheap end first),
    the default point (the cheapest reaching the SBS's train quality, else the best) and its
    report."""
    n_train, n_test = train.cost.shape[0], test.cost.shape[0]
    candidates = search.policies(ctx.model_costs, min(train.n_samples, test.n_samples))
    on_train = []
    for policy in candidates:
        out = replay(policy, _chain_order(policy, n_train, ctx), train)
        on_train.append((float(np.nanmean(out["cost"])), float(out["quality"].mean())))
    frontier = _frontier(on_train)
    chosen = [candidates[i] for i in frontier]
    outcomes = [replay(p, _chain_order(p, n_test, ctx), test) for p in chosen]
    sweep = _sweep(np.arange(len(chosen), dtype=np.float64), outcomes)
    reaching = [k for k, i in enumerate(frontier) if on_train[i][1] >= train_sbs_quality - 1e-12]
    default = reaching[0] if reaching else len(chosen) - 1
    points = [describe_chain(p, ctx.model_names) for p in chosen]
    return sweep, default, report(points[default], points, outcomes[default])


def router_led_sweep(
    policy: CascadePolicy, predicted: FloatArray, test: Recorded, ctx: Context
) -> tuple[Sweep, int, CascadeReport]:
    """The cascade policy's knob grid on a router's predictions at every depth up to the
    policy's (depth 1 is the router alone: the cheap end of the curve), replayed on test,
    by cost; the default point is the policy's default knob at its full depth."""
    knobs = np.asarray(policy.knob_grid(predicted, ctx.model_costs, ctx.n_points))
    if not np.any(knobs == policy.default_knob):
        knobs = np.sort(np.append(knobs, policy.default_knob))[::-1]
    configs = [
        (dataclasses.replace(policy, depth=d), k)
        for d in range(1, policy.max_depth + 1)
        for k in knobs
    ]
    replayed = [replay(p, p.order(predicted, ctx.model_costs, k), test) for p, k in configs]
    mean_cost = [float(np.nanmean(o["cost"])) for o in replayed]
    by_cost = sorted(range(len(configs)), key=lambda i: mean_cost[i])
    configs = [configs[i] for i in by_cost]
    outcomes = [replayed[i] for i in by_cost]
    sweep = _sweep(np.array([k for _, k in configs]), outcomes)
    points = [f"{p.describe(k)}, depth {p.max_depth}" for p, k in configs]
    default = next(
        j
        for j, (p, k) in enumerate(configs)
        if k == policy.default_knob and p.max_depth == policy.max_depth
    )
    return sweep, default, report(points[default], points, outcomes[default])


def _chain_order(policy: CascadePolicy, n: int, ctx: Context) -> IntArray:
    """A fixed chain's order for ``n`` prompts, through the policy's own `order` (a fixed
    chain ignores predictions)."""
    return policy.order(np.zeros((n, len(ctx.model_names))), ctx.model_costs, policy.default_knob)


def _frontier(points: list[tuple[float, float]]) -> list[int]:
    """Indices of the points no other point beats (cost no higher, quality higher), by cost;
    among equal (cost, quality) the first."""
    order = sorted(range(len(points)), key=lambda i: (points[i][0], -points[i][1], i))
    kept: list[int] = []
    best = -np.inf
    for i in order:
        if points[i][1] > best + 1e-12:
            kept.append(i)
            best = points[i][1]
    return kept


def verifier_agreement(
    data: RoutingData, names: list[str], threshold: float = 1.0
) -> list[dict[str, Any]]:
    """Per model, over recorded samples with visible tests: how often visible and hidden
    verdicts (pass fraction >= ``threshold``) agree, ``precision`` P(hidden pass | visible
    pass: how safe an accepted answer is) and ``recall`` P(visible pass | hidden pass)."""
    if data.visible_score is None:
        return []
    hidden, visible = _cubes(data)
    rows = []
    for j, name in enumerate(names):
        h, v = hidden[:, j].ravel(), visible[:, j].ravel()
        known = ~np.isnan(h)
        checked = known & ~np.isnan(v)
        hp, vp = h[checked] >= threshold, v[checked] >= threshold
        rows.append(
            {
                "model": name,
                "samples": int(known.sum()),
                "with_visible_tests": float(checked.sum() / max(known.sum(), 1)),
                "visible_pass": float(vp.mean()) if vp.size else NAN,
                "hidden_pass": float(hp.mean()) if hp.size else NAN,
                "agreement": float((hp == vp).mean()) if vp.size else NAN,
                "precision": float(hp[vp].mean()) if vp.any() else NAN,
                "recall": float(vp[hp].mean()) if hp.any() else NAN,
            }
        )
    return rows
