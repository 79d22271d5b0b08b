"""Evaluation: fit each router, sweep its policy knob on the test split, score the curves.

Every router lands on the same axes (ANCHORS.md conventions): the n-way curve of
`UtilityPolicy` (lambda from past the last flip down to 0) on the cost-quality plane, scored
by AIQ, cost to match the SBS and best quality within the SBS cost; and the strong/weak
curve of `ThresholdPolicy` on the share of strong calls, scored by APGR and CPT (read with
interpolation between sweep points, which a router realises by randomising between two
thresholds; tied margins make sparse curves). Baselines: single models (points), the zero
router (their hull), SBS, oracle and a random router. The metric formulas live in
`codyn.metrics`; this module only sweeps and assembles.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from codyn.data.routing import RoutingData
from codyn.errors import CodynError, DataError
from codyn.metrics.binary import apgr, cpt, pgr, strong_share_curve
from codyn.metrics.curves import aiq, upper_hull
from codyn.metrics.headroom import model_means, sbs_index
from codyn.metrics.quality_cost import (
    best_quality_within,
    cost_to_match,
    curve_points,
    normalised_cost,
    selection_entropy,
    selection_share,
)
from codyn.metrics.stats import paired_bootstrap_aiq, random_mixture_curve, random_router
from codyn.policy import UtilityPolicy
from codyn.policy.base import TIE_TOLERANCE, flip_grid
from codyn.routers.base import Router
from codyn.routers.registry import make_router

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]

BASELINE_FAMILIES = frozenset({"random", "oracle", "single", "cheapest", "sbs"})
"""Router families that learn nothing from prompts (no confidence examples in reports)."""
WEAK_FRACTION = 0.7
"""The weak model is the cheapest one whose train quality is at least this share of the
strong model's (ANCHORS.md; the strong model is the SBS unless overridden)."""
RANDOM_SEEDS = 20
ORACLE_POINTS = 1000
"""The oracle's frontier keeps every lambda where a decision flips up to this many (then
quantiles of them): it is the bound every router is measured against, so it is drawn exactly."""
SUMMARY_KEYS = (
    "aiq",
    "q_at_zero",
    "norm_cost_at_zero",
    "apgr",
    "apgr_integral",
    "cpt50",
    "cpt80",
    "cost_to_match_sbs",
    "codyn_cost_at_sbs_q",
    "best_quality_at_sbs_cost",
    "aiq_diff_vs_zero",
    "aiq_diff_vs_reference",
    "selection_entropy",
)
NAN = float("nan")


@dataclass
class Sweep:
    """One knob sweep on the test prompts: the choices and their mean cost and quality."""

    knobs: FloatArray
    choices: IntArray  # n_points x n_prompts
    costs: FloatArray
    qualities: FloatArray


@dataclass
class PairCurve:
    """The strong/weak threshold sweep read on the share of strong calls."""

    sweep: Sweep
    strong_share: FloatArray
    pgr: FloatArray  # NaN when the strong model is not better than the weak one on test
    margin: FloatArray  # per test prompt: the router's strong-minus-weak margin


@dataclass
class RouterResult:
    """A router's test predictions, its two sweeps and the metrics read off them."""

    name: str
    family: str
    learned: bool
    predicted: FloatArray
    curve: Sweep
    pair: PairCurve | None
    aiq: float = NAN
    q_at_zero: float = NAN
    cost_at_zero: float = NAN
    cost_to_match_sbs: float = NAN
    codyn_cost_at_sbs_q: float = NAN
    best_quality_at_sbs_cost: float = NAN
    apgr: float = NAN
    apgr_integral: float = NAN
    cpt50: float = NAN
    cpt80: float = NAN
    aiq_diff_vs_zero: tuple[float, float, float] = (NAN, NAN, NAN)
    aiq_diff_vs_reference: tuple[float, float, float] = (NAN, NAN, NAN)
    """AIQ minus the reference router's, with its paired 95% bootstrap interval."""
    selection_share: FloatArray = field(default_factory=lambda: np.empty(0))
    selection_entropy: float = NAN

    @property
    def choice_at_zero(self) -> IntArray:
        """The quality-only decision (lambda = 0, the last point of the n-way sweep)."""
        return self.curve.choices[-1]

    def confidence(self) -> FloatArray:
        """Per test prompt, the margin between the two best predicted qualities (MBPP paper)."""
        top2 = -np.sort(-np.nan_to_num(self.predicted, nan=-np.inf), axis=1)[:, :2]
        return top2[:, 0] - top2[:, 1] if top2.shape[1] == 2 else np.zeros(len(top2))


@dataclass
class EvaluationResult:
    """Everything `evaluate` measured; `to_dict` is the JSON of ``codyn eval --json``."""

    train: RoutingData
    test: RoutingData
    cost_known: bool
    max_cost: float
    models: list[dict[str, Any]]
    sbs: dict[str, Any]
    strong: str | None
    weak: str | None
    zero_router: dict[str, Any]
    random: dict[str, Any]
    oracle: RouterResult
    routers: dict[str, RouterResult]
    cost_note: str
    notes: list[str]
    reference: str | None = None
    """The router every other one is compared with (``aiq_diff_vs_reference``), if any."""

    @property
    def model_names(self) -> list[str]:
        return self.test.model_names

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict (NaN stays NaN; `codyn.cli.output.print_json` nulls it)."""
        return {
            "n_train": self.train.n_prompts,
            "n_test": self.test.n_prompts,
            "cost_note": self.cost_note,
            "cost_known": self.cost_known,
            "max_cost": self.max_cost,
            "notes": self.notes,
            "models": self.models,
            "sbs": self.sbs,
            "strong": self.strong,
            "weak": self.weak,
            "zero_router": self.zero_router,
            "random": self.random,
            "oracle": self._router_dict(self.oracle),
            "reference": self.reference,
            "routers": {name: self._router_dict(r) for name, r in self.routers.items()},
        }

    def summary(self) -> list[dict[str, Any]]:
        """One row per baseline (oracle, random, zero router, SBS) and router: the columns of
        the ``codyn eval`` table and of the report's metrics table (NaN = n/a)."""
        keys = list(SUMMARY_KEYS)
        d = self.to_dict()
        no_interval = dict.fromkeys(("diff", "lo", "hi"), NAN)
        blank = dict.fromkeys(keys, NAN) | {
            "aiq_diff_vs_zero": no_interval,
            "aiq_diff_vs_reference": no_interval,
        }
        rnd, sbs = d["random"], d["sbs"]
        rows = [
            {**blank, **{k: d["oracle"][k] for k in keys}, "name": "oracle", "kind": "baseline"},
            {
                **blank,
                **{k: rnd.get(k, NAN) for k in ("aiq", "apgr", "apgr_integral", "cpt50", "cpt80")},
                "name": f"random ({rnd['n_seeds']} seeds)",
                "kind": "baseline",
                "q_at_zero": rnd["quality"],
                "norm_cost_at_zero": rnd["norm_cost"],
            },
            {**blank, "name": "zero router", "kind": "baseline", "aiq": d["zero_router"]["aiq"]},
            {
                **blank,
                "name": f"SBS {sbs['model']}",
                "kind": "baseline",
                "aiq": sbs["aiq"],
                "q_at_zero": sbs["test_q"],
                "norm_cost_at_zero": sbs["norm_cost"],
                "cost_to_match_sbs": 1.0 if self.cost_known else NAN,
                "best_quality_at_sbs_cost": sbs["test_q"] if self.cost_known else NAN,
            },
        ]
        rows += [
            {**{k: r[k] for k in keys}, "name": name, "kind": r["family"]}
            for name, r in d["routers"].items()
        ]
        return rows

    def _router_dict(self, r: RouterResult) -> dict[str, Any]:
        cost = r.curve.costs if self.cost_known else np.full(len(r.curve.costs), NAN)
        names = self.model_names
        out: dict[str, Any] = {
            "family": r.family,
            "learned": r.learned,
            "aiq": r.aiq,
            "q_at_zero": r.q_at_zero,
            "norm_cost_at_zero": r.cost_at_zero / self.max_cost,
            "apgr": r.apgr,
            "apgr_integral": r.apgr_integral,
            "cpt50": r.cpt50,
            "cpt80": r.cpt80,
            "cost_to_match_sbs": r.cost_to_match_sbs,
            "codyn_cost_at_sbs_q": r.codyn_cost_at_sbs_q,
            "best_quality_at_sbs_cost": r.best_quality_at_sbs_cost,
            "aiq_diff_vs_zero": dict(zip(("diff", "lo", "hi"), r.aiq_diff_vs_zero, strict=True)),
            "aiq_diff_vs_reference": dict(
                zip(("diff", "lo", "hi"), r.aiq_diff_vs_reference, strict=True)
            ),
            "selection_share": dict(zip(names, r.selection_share.tolist(), strict=True)),
            "selection_entropy": r.selection_entropy,
            "curve": [
                {"knob": float(k), "cost": float(c), "quality": float(q)}
                for k, c, q in zip(r.curve.knobs, cost, r.curve.qualities, strict=True)
            ],
            "binary_curve": [],
        }
        if r.pair is not None:
            p = r.pair
            out["binary_curve"] = [
                {"strong_share": float(s), "quality": float(q), "pgr": float(g)}
                for s, q, g in zip(p.strong_share, p.sweep.qualities, p.pgr, strict=True)
            ]
        return out


@dataclass
class _Context:
    """What every router's assessment shares: the test matrices and the reference points."""

    score: FloatArray
    cost: FloatArray
    model_costs: FloatArray
    mean_test_cost: FloatArray
    max_cost: float
    cost_known: bool
    sbs_q: float
    sbs_cost: float
    strong: int
    weak: int | None
    q_strong: float
    q_weak: float
    n_points: int
    n_boot: int
    seed: int

    @property
    def zero_choices(self) -> IntArray:
        """Every single model as one sweep point (the zero router's choices)."""
        n, m = self.score.shape
        return np.repeat(np.arange(m)[:, None], n, axis=1)


def evaluate(
    train: RoutingData,
    test: RoutingData,
    routers: Sequence[str | Router],
    *,
    n_points: int = 50,
    seed: int = 0,
    n_boot: int = 1000,
    strong: str | None = None,
    weak: str | None = None,
    reference: str | None = None,
) -> EvaluationResult:
    """Fit every router on ``train``, sweep and score it on ``test`` (see the module docstring).

    ``routers`` are specs for `make_router` or `Router` objects (fitted here). ``strong`` /
    ``weak`` override the pair (default: strong = SBS by train mean, ties -> cheaper; weak =
    the cheapest other model with train q >= 70% of the strong's, cost ties -> higher train q).
    ``reference`` names one of the routers (its spec, or its name in the result): every other
    router's AIQ is then compared with it by a paired bootstrap over test prompts
    (``aiq_diff_vs_reference``), e.g. a new router against a peer's predictions.
    Without known costs every call costs 1 and the cost metrics are NaN.
    """
    if train.model_names != test.model_names:
        raise DataError("train and test must hold the same models in the same order")
    if train.n_prompts == 0 or test.n_prompts == 0:
        raise DataError("evaluation needs prompts in both train and test")
    complete = ~np.isnan(test.score).any(axis=1)
    if not complete.any():
        raise DataError("no test prompt has a score for every model")
    if not complete.all():
        # A curve compares every model on the same prompts: a prompt missing any model's score
        # cannot be scored for every decision, so it leaves the test set, and the output says so.
        n_dropped = int((~complete).sum())
        test = test.take(np.flatnonzero(complete))
        test.notes = [
            *test.notes,
            f"{n_dropped} test prompt(s) without a score for every model were left out",
        ]
    if n_points < 2:
        raise CodynError(f"n_points must be at least 2, got {n_points}")
    ctx, models, sbs = _context(train, test, strong, weak, n_points, n_boot, seed)
    names = test.model_names
    zero = _zero_router(ctx)
    results: dict[str, RouterResult] = {}
    for spec in routers:
        router = make_router(spec) if isinstance(spec, str) else spec
        name = spec if isinstance(spec, str) else router.family
        name = _unique(name, results)
        router.fit(train)
        if router.model_names_ != names:
            raise CodynError(f"router {name!r} predicts for models {router.model_names_}")
        predicted = router.predict(test)
        results[name] = _assess(name, router.family, predicted, _utility_sweep(predicted, ctx), ctx)
    if reference is not None:
        _compare_with(results, reference, ctx)
    oracle = _assess("oracle", "oracle", test.score, _oracle_sweep(ctx), ctx)
    return EvaluationResult(
        train=train,
        test=test,
        cost_known=ctx.cost_known,
        max_cost=ctx.max_cost,
        models=models,
        sbs=sbs,
        strong=names[ctx.strong],
        weak=None if ctx.weak is None else names[ctx.weak],
        zero_router=zero,
        random=_random_baseline(ctx),
        oracle=oracle,
        routers=results,
        cost_note=test.describe_costs()
        + ("" if ctx.cost_known else "; every call counted as cost 1, cost metrics n/a"),
        notes=list(dict.fromkeys(test.notes)),
        reference=reference,
    )


def _compare_with(results: dict[str, RouterResult], reference: str, ctx: _Context) -> None:
    """Set every other router's ``aiq_diff_vs_reference`` (paired bootstrap on test prompts)."""
    if reference not in results:
        raise CodynError(
            f"reference {reference!r} is not one of the routers evaluated: {', '.join(results)}"
        )
    if not ctx.cost_known:
        return  # no cost axis, no AIQ to compare
    base = results[reference].curve.choices
    for name, result in results.items():
        if name != reference:
            result.aiq_diff_vs_reference = _aiq_difference(result.curve.choices, base, ctx)


def _aiq_difference(choices: IntArray, base: IntArray, ctx: _Context) -> tuple[float, float, float]:
    """AIQ of one sweep minus another's on the test prompts, with the paired bootstrap."""
    return paired_bootstrap_aiq(
        choices, base, ctx.score, ctx.cost, ctx.max_cost, n_boot=ctx.n_boot, seed=ctx.seed
    )


def _unique(name: str, taken: dict[str, Any]) -> str:
    if name not in taken:
        return name
    k = 2
    while f"{name}#{k}" in taken:
        k += 1
    return f"{name}#{k}"


def _context(
    train: RoutingData,
    test: RoutingData,
    strong: str | None,
    weak: str | None,
    n_points: int,
    n_boot: int,
    seed: int,
) -> tuple[_Context, list[dict[str, Any]], dict[str, Any]]:
    """The shared context, the single-model rows and the SBS row (uniform cost 1 if unknown)."""
    cost_known = train.has_costs and test.has_costs
    shape = test.score.shape
    if cost_known:
        model_costs, mean_test_cost = train.mean_cost(), test.mean_cost()
        no_cost = np.isnan(model_costs) | np.isnan(mean_test_cost)
        unknown = [n for n, bad in zip(test.model_names, no_cost, strict=True) if bad]
        if unknown:
            raise DataError(f"no known cost in train or test for: {', '.join(unknown)}")
        cost = test.cost
    else:
        model_costs, mean_test_cost, cost = np.ones(shape[1]), np.ones(shape[1]), np.ones(shape)
    max_cost = float(mean_test_cost.max())
    train_q, test_q = model_means(train.score), model_means(test.score)
    sbs = sbs_index(train.score, train.cost if cost_known else None)
    s = sbs if strong is None else test.model_index(strong)
    w = _weak_index(train_q, model_costs, s) if weak is None else test.model_index(weak)
    if w == s:
        raise CodynError("the strong and weak models must differ")
    ctx = _Context(
        score=test.score,
        cost=cost,
        model_costs=model_costs,
        mean_test_cost=mean_test_cost,
        max_cost=max_cost,
        cost_known=cost_known,
        sbs_q=float(test_q[sbs]),
        sbs_cost=float(mean_test_cost[sbs]),
        strong=s,
        weak=w,
        q_strong=float(test_q[s]),
        q_weak=NAN if w is None else float(test_q[w]),
        n_points=n_points,
        n_boot=n_boot,
        seed=seed,
    )
    models = [
        {
            "name": name,
            "train_q": float(train_q[j]),
            "test_q": float(test_q[j]),
            "cost": float(mean_test_cost[j]) if cost_known else NAN,
            "norm_cost": float(mean_test_cost[j] / max_cost) if cost_known else NAN,
            "aiq": aiq([mean_test_cost[j]], [test_q[j]], max_cost) if cost_known else NAN,
        }
        for j, name in enumerate(test.model_names)
    ]
    sbs_row = {**models[sbs], "model": test.model_names[sbs]}
    del sbs_row["name"]
    return ctx, models, sbs_row


def _weak_index(train_q: FloatArray, model_costs: FloatArray, strong: int) -> int | None:
    """Cheapest model other than ``strong`` with train q >= 70% of the strong's (ANCHORS)."""
    ok = np.flatnonzero(np.nan_to_num(train_q, nan=-np.inf) >= WEAK_FRACTION * train_q[strong])
    ok = ok[ok != strong]
    if ok.size == 0:
        return None
    return int(ok[np.lexsort((-train_q[ok], model_costs[ok]))[0]])


def _sweep(knobs: FloatArray, choices: IntArray, ctx: _Context) -> Sweep:
    costs, qualities = curve_points(choices, ctx.score, ctx.cost)
    return Sweep(knobs=knobs, choices=choices, costs=costs, qualities=qualities)


def _utility_sweep(predicted: FloatArray, ctx: _Context) -> Sweep:
    policy = UtilityPolicy()
    knobs = policy.knob_grid(predicted, ctx.model_costs, ctx.n_points)
    choices = np.stack([policy.decide(predicted, ctx.model_costs, k) for k in knobs])
    return _sweep(knobs, choices, ctx)


def _pair_curve(predicted: FloatArray, ctx: _Context) -> PairCurve | None:
    """The strong/weak sweep of ANCHORS.md: the top-k prompts by strong-minus-weak margin go
    strong (ties in a seeded random order), k/N from 0 to 1 in ``n_points`` steps."""
    if ctx.weak is None:
        return None
    margin = np.nan_to_num(predicted[:, ctx.strong] - predicted[:, ctx.weak], nan=-np.inf)
    n = len(margin)
    order = np.lexsort((np.random.default_rng(ctx.seed).permutation(n), -margin))
    ks = np.unique(np.round(np.linspace(0, n, ctx.n_points + 1)).astype(np.int64))
    choices = np.full((len(ks), n), ctx.weak, dtype=np.int64)
    for row, k in enumerate(ks):
        choices[row, order[:k]] = ctx.strong
    sweep = _sweep(ks / n, choices, ctx)
    gained = np.atleast_1d(pgr(sweep.qualities, ctx.q_weak, ctx.q_strong))
    return PairCurve(sweep, ks / n, gained, np.clip(margin, -1e300, 1e300))


def _oracle_sweep(ctx: _Context) -> Sweep:
    """The oracle's frontier: per prompt ``argmax score - lambda * cost / max_cost`` on the
    actual per-prompt costs (ties -> cheaper), lambda from past the last flip down to 0."""
    score = ctx.score
    cost = np.where(np.isnan(ctx.cost), ctx.mean_test_cost[None, :], ctx.cost) / ctx.max_cost
    rows = np.arange(score.shape[0])

    def decide(knob: float) -> IntArray:
        value = score - knob * cost
        best = value.max(axis=1, keepdims=True)
        near = value >= best - TIE_TOLERANCE * np.maximum(1.0, np.abs(best))
        return np.argmin(np.where(near, cost, np.inf), axis=1)

    current, flips = decide(0.0), []
    for _ in range(score.shape[1] - 1):  # walk each prompt's envelope towards cheaper models
        gain = score[rows, current][:, None] - score
        saving = cost[rows, current][:, None] - cost
        with np.errstate(invalid="ignore", divide="ignore"):
            cross = np.where(saving > 0, gain / saving, np.inf)
        nearest = cross.min(axis=1)
        moving = np.isfinite(nearest)
        if not moving.any():
            break
        flips.append(nearest[moving])
        tied = cross <= (nearest + TIE_TOLERANCE * np.maximum(1.0, np.abs(nearest)))[:, None]
        current = np.where(moving, np.argmin(np.where(tied, cost, np.inf), axis=1), current)
    all_flips = np.concatenate(flips) if flips else np.empty(0)
    unique = np.unique(all_flips)
    knobs = flip_grid(unique, max(ctx.n_points, ORACLE_POINTS), past="above", end=0.0)[::-1].copy()
    return _sweep(knobs, np.stack([decide(k) for k in knobs]), ctx)


def _assess(
    name: str, family: str, predicted: FloatArray, curve: Sweep, ctx: _Context
) -> RouterResult:
    """Read every metric off a router's n-way sweep and its strong/weak sweep."""
    n_models = ctx.score.shape[1]
    shares = selection_share(curve.choices[-1], n_models)
    result = RouterResult(
        name=name,
        family=family,
        learned=family not in BASELINE_FAMILIES,
        predicted=predicted,
        curve=curve,
        pair=None,
        q_at_zero=float(curve.qualities[-1]),
        cost_at_zero=float(curve.costs[-1]),
        selection_share=shares,
        selection_entropy=selection_entropy(shares),
    )
    if ctx.cost_known:
        result.aiq = aiq(curve.costs, curve.qualities, ctx.max_cost)
        match = cost_to_match(curve.costs, curve.qualities, ctx.sbs_q)
        if np.isfinite(match):
            at = np.flatnonzero(curve.costs == match)
            point = at[np.argmax(curve.qualities[at])]
            calls = np.bincount(curve.choices[point], minlength=n_models)
            result.cost_to_match_sbs = match / ctx.sbs_cost
            result.codyn_cost_at_sbs_q = normalised_cost(calls, ctx.mean_test_cost)
        result.best_quality_at_sbs_cost = best_quality_within(
            curve.costs, curve.qualities, ctx.sbs_cost
        )
        result.aiq_diff_vs_zero = _aiq_difference(curve.choices, ctx.zero_choices, ctx)
    result.pair = _pair_curve(predicted, ctx)
    if result.pair is not None:
        # APGR and CPT are read on the exact per-prompt curve, as ANCHORS.md does.
        share, quality = strong_share_curve(
            result.pair.margin, ctx.score[:, ctx.strong], ctx.score[:, ctx.weak], seed=ctx.seed
        )
        metrics = _pair_metrics(share, quality, ctx.q_weak, ctx.q_strong, interpolate=False)
        result.apgr, result.apgr_integral, result.cpt50, result.cpt80 = metrics
    return result


def _pair_metrics(
    share: FloatArray, quality: FloatArray, q_weak: float, q_strong: float, *, interpolate: bool
) -> tuple[float, float, float, float]:
    """APGR (discrete, integral), CPT(50%) and CPT(80%) of a strong-share curve."""
    args = (share, quality, q_weak, q_strong)
    return (
        apgr(*args, method="discrete", interpolate=interpolate),
        apgr(*args, method="integral", interpolate=interpolate),
        cpt(*args, 0.5, interpolate=interpolate),
        cpt(*args, 0.8, interpolate=interpolate),
    )


def _zero_router(ctx: _Context) -> dict[str, Any]:
    """The hull of the single models (RouterBench's "zero router"), on normalised cost."""
    if not ctx.cost_known:
        return {"aiq": NAN, "hull": []}
    q = ctx.score.mean(axis=0)
    hull_c, hull_q = upper_hull(ctx.mean_test_cost / ctx.max_cost, q)
    return {
        "aiq": aiq(ctx.mean_test_cost, q, ctx.max_cost),
        "hull": [
            {"norm_cost": float(c), "quality": float(v)}
            for c, v in zip(hull_c, hull_q, strict=True)
        ],
    }


def _random_baseline(ctx: _Context) -> dict[str, Any]:
    """Uniform random model per prompt (one point), and a random strong/weak mixture swept
    over the strong share (RouteLLM's random baseline) with the band over seeds."""
    point = random_router(ctx.score, ctx.cost, n_seeds=RANDOM_SEEDS, seed=ctx.seed)
    out: dict[str, Any] = dict(point)
    out["norm_cost"] = point["cost"] / ctx.max_cost if ctx.cost_known else NAN
    out["aiq"] = aiq([point["cost"]], [point["quality"]], ctx.max_cost) if ctx.cost_known else NAN
    if not ctx.cost_known:
        out.update(cost=NAN, cost_lo=NAN, cost_hi=NAN)
    out["binary_curve"] = []
    if ctx.weak is None:
        return out
    s, w = ctx.strong, ctx.weak
    mix = random_mixture_curve(
        ctx.score[:, s],
        ctx.score[:, w],
        ctx.cost[:, s],
        ctx.cost[:, w],
        shares=np.linspace(0.0, 1.0, ctx.n_points + 1),
        n_seeds=RANDOM_SEEDS,
        seed=ctx.seed,
    )
    pair = (ctx.q_weak, ctx.q_strong)
    out["apgr"], out["apgr_integral"], out["cpt50"], out["cpt80"] = _pair_metrics(
        mix["shares"], mix["quality"], *pair, interpolate=True
    )
    for end in ("lo", "hi"):  # APGR of the band's edges
        band = _pair_metrics(mix["shares"], mix[f"quality_{end}"], *pair, interpolate=True)
        out[f"apgr_{end}"], out[f"apgr_integral_{end}"] = band[:2]
    out["binary_curve"] = [
        {
            "strong_share": float(sh),
            "quality": float(q),
            "quality_lo": float(lo),
            "quality_hi": float(hi),
            "cost": float(c) if ctx.cost_known else NAN,
        }
        for sh, q, lo, hi, c in zip(
            mix["shares"],
            mix["quality"],
            mix["quality_lo"],
            mix["quality_hi"],
            mix["cost"],
            strict=True,
        )
    ]
    return out
