"""`evaluate`: fit (or take) each router, sweep each policy's knob on the test split, measure.

Every (router, policy) lands on the same axes (ANCHORS.md conventions): the policy's knob sweep
on the cost-quality plane, scored by AIQ, cost to match the SBS and best quality within the
SBS's cost; and the router's strong/weak curve (`ThresholdPolicy` on the pair) scored by APGR
and CPT. Baselines: single models (points), the zero router (their hull), the SBS, the oracle
(`UtilityPolicy` on the true scores and the actual per-prompt costs) and a random router.
Every decision goes through `codyn.policy.decide`; every number through `codyn.metrics`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from codyn.data.routing import RoutingData
from codyn.errors import CodynError, DataError
from codyn.evaluate import cascades
from codyn.evaluate.baselines import random_baseline, zero_router
from codyn.evaluate.cascades import FIXED_CHAIN
from codyn.evaluate.context import NAN, Context, build_context
from codyn.evaluate.results import BASELINE_FAMILIES, EvaluationResult, RouterResult
from codyn.evaluate.sweeps import Sweep, default_choices, pair_curve, policy_sweep
from codyn.metrics.quality_cost import curve_points, selection_share
from codyn.metrics.stats import paired_bootstrap_aiq_cells
from codyn.policy import (
    CascadePolicy,
    FixedPolicy,
    Policy,
    UtilityPolicy,
    decide,
    make_policy,
    policy_param_names,
)
from codyn.policy.base import FloatArray
from codyn.routers.base import Router
from codyn.routers.registry import make_router

ORACLE_POINTS = 1000
"""The oracle's frontier keeps every lambda where a decision flips up to this many (then
quantiles of them): it is the bound every router is measured against, so it is drawn exactly."""
COLLAPSE_SHARE = 0.95
"""A learned router sending more than this share of test prompts to one model at its default
knob has collapsed onto it (its curve is nearly one point)."""

RouterSpecs = Sequence[str | Router] | Mapping[str, str | Router]
PolicySpecs = Sequence[str | Policy] | Mapping[str, str | Policy | Mapping[str, Any]]


@dataclass
class _Entry:
    """One name of the evaluation: a router spec (or router) or a policy spec (or policy)."""

    name: str
    spec: Any


def evaluate(
    train: RoutingData,
    test: RoutingData,
    routers: RouterSpecs,
    *,
    policies: PolicySpecs = ("utility",),
    params: Mapping[str, Mapping[str, Any]] | None = None,
    n_points: int = 50,
    seed: int = 0,
    n_boot: int = 1000,
    strong: str | None = None,
    weak: str | None = None,
    reference: str | None = None,
) -> EvaluationResult:
    """Evaluate every router under every policy on ``test`` (see the module docstring).

    ``routers``: specs for `make_router` (``"knn"``), aliases (``"knn40=knn"``, or a mapping
    ``{"knn40": "knn"}``) or `Router` objects: an unfitted one is fitted on ``train``, a
    fitted one (e.g. `load_router`) is evaluated as it is. ``policies`` likewise
    (``"utility"``, ``"tiers2=tiers"``, `Policy` objects); a pair policy's strong/weak default
    to the evaluation's pair. ``params`` maps a router or policy name to parameters
    (``{"knn40": {"k": 40}}``). With several policies a row is named ``router@policy``.

    ``strong`` / ``weak`` override the pair (default: strong = SBS by train mean, ties ->
    cheaper; weak = the cheapest other model with train q >= 70% of the strong's, cost ties
    -> higher train q). ``reference`` names one of the rows: every other row's AIQ is then
    compared with it by a paired bootstrap over test prompts (``aiq_diff_vs_reference``).
    Without known costs every call costs 1 and the cost metrics are NaN.
    """
    if train.model_names != test.model_names:
        raise DataError("train and test must hold the same models in the same order")
    if train.n_prompts == 0 or test.n_prompts == 0:
        raise DataError("evaluation needs prompts in both train and test")
    if n_points < 3:
        raise CodynError(f"n_points must be at least 3, got {n_points}")
    test = _complete_prompts(test)
    router_entries = _entries(routers, "router")
    policy_entries = _entries(policies, "policy")
    params = dict(params or {})
    _check_params(params, router_entries, policy_entries)
    ctx, models = build_context(
        train, test, strong=strong, weak=weak, n_points=n_points, n_boot=n_boot, seed=seed
    )
    names = test.model_names
    built = [(p.name, _policy(p, params, names, ctx)) for p in policy_entries]
    results: dict[str, RouterResult] = {}
    notes = list(test.notes)
    replayed = _Replayed(train, test, ctx)
    for entry in router_entries:
        if entry.spec == FIXED_CHAIN:
            results[entry.name] = replayed.fixed_chain(entry.name, params.get(entry.name, {}))
            continue
        if isinstance(entry.spec, Router) and hasattr(entry.spec, "model_names_"):
            notes.append(
                f"{entry.name} was fitted before this evaluation (not on its train split): "
                "its own training prompts must not be among these test prompts"
            )
        router = _router(entry, params, train)
        if router.model_names_ != names:
            raise CodynError(
                f"router {entry.name!r} predicts for models {router.model_names_}, the data has "
                f"{names}"
            )
        predicted, difficulty = router.predict_with_difficulty(test)
        pair = pair_curve(predicted, ctx)
        for alias, unbound in built:
            name = entry.name if len(built) == 1 else f"{entry.name}@{alias}"
            policy = unbound.with_difficulty(difficulty)
            if isinstance(policy, CascadePolicy):
                results[name] = replayed.router_led(name, router.family, alias, policy, predicted)
            else:
                results[name] = assess(name, router.family, alias, policy, predicted, ctx, pair)
                results[name].points = named_points(
                    router.named_knobs(policy.name), policy, predicted, ctx
                )
            results[name].description = f"{router!r} + {unbound!r}"
    if replayed.used:
        notes.append(
            "a cascade calls several models and runs each answer's visible tests, so it can pass "
            "the oracle, which picks one model per prompt (on its mean score) without calling it"
        )
    oracle_pair = pair_curve(test.score, ctx)
    oracle = assess(
        "oracle", "oracle", "utility", UtilityPolicy(), test.score, ctx, oracle_pair,
        costs=ctx.filled_cost, n_points=max(n_points, ORACLE_POINTS),
    )  # fmt: skip
    sbs_predicted = np.eye(len(names))[np.full(test.n_prompts, ctx.sbs)]
    sbs = assess("sbs", "sbs", "fixed", FixedPolicy(model=ctx.sbs), sbs_predicted, ctx, None)
    if reference is not None:
        _compare_with(results, reference, ctx, baselines=(oracle, sbs))
    return EvaluationResult(
        train=train,
        test=test,
        cost_known=ctx.cost_known,
        max_cost=ctx.max_cost,
        models=models,
        sbs={**models[ctx.sbs], "model": names[ctx.sbs]},
        sbs_result=sbs,
        strong=names[ctx.strong],
        weak=None if ctx.weak is None else names[ctx.weak],
        zero_router=zero_router(ctx),
        random=random_baseline(ctx),
        oracle=oracle,
        routers=results,
        policies=[alias for alias, _ in built],
        cost_note=test.describe_costs()
        + ("" if ctx.cost_known else "; every call counted as cost 1, cost metrics n/a"),
        notes=list(dict.fromkeys(notes)),
        warnings=_warnings(results, ctx),
        reference=reference,
        verifier=replayed.verifier(),
    )


def assess(
    name: str,
    family: str,
    policy_name: str,
    policy: Policy,
    predicted: FloatArray,
    ctx: Context,
    pair: Any,
    *,
    costs: FloatArray | None = None,
    n_points: int | None = None,
) -> RouterResult:
    """One (router, policy): its sweep, default decision and every metric of the table."""
    curve = policy_sweep(policy, predicted, ctx, costs=costs, n_points=n_points)
    chosen = default_choices(policy, predicted, ctx.model_costs if costs is None else costs)
    rows = np.arange(ctx.n_prompts)
    return _measured(
        RouterResult(
            name=name,
            family=family,
            policy=policy_name,
            learned=family not in BASELINE_FAMILIES,
            predicted=predicted,
            curve=curve,
            pair=pair,
            default_choices=chosen,
            default_cost=float(np.nanmean(ctx.cost[rows, chosen])),
            default_quality=float(ctx.score[rows, chosen].mean()),
            selection_share=selection_share(chosen, ctx.score.shape[1]),
            default_knob=policy.describe(),
        ),
        ctx,
    )


def named_points(
    knobs: dict[str, float], policy: Policy, predicted: FloatArray, ctx: Context
) -> list[dict[str, Any]]:
    """The policy's decision at each named knob, as a point of the cost-quality plane."""
    points = []
    for point, knob in knobs.items():
        choices = decide(predicted, ctx.model_costs, policy, knob)[None, :]
        costs, qualities = curve_points(choices, ctx.score, ctx.cost)
        cost = float(costs[0]) if ctx.cost_known else NAN
        points.append(
            {
                "name": point,
                "knob": knob,
                "quality": float(qualities[0]),
                "cost": cost,
                "norm_cost": cost / ctx.max_cost if ctx.cost_known else NAN,
            }
        )
    return points


def _measured(result: RouterResult, ctx: Context) -> RouterResult:
    result.measure(ctx)
    return result


class _Replayed:
    """Cascade rows of one evaluation: the recorded outcomes are read once, when a cascade
    is first asked for (data without visible scores fails only then, in one line)."""

    def __init__(self, train: RoutingData, test: RoutingData, ctx: Context) -> None:
        self.train_data, self.test_data, self.ctx = train, test, ctx
        self._test: cascades.Recorded | None = None
        self.used = False

    @property
    def test(self) -> cascades.Recorded:
        if self._test is None:
            self._test = cascades.recorded(self.test_data, self.ctx.cost, "test")
            self.used = True
        return self._test

    def fixed_chain(self, name: str, given: Mapping[str, Any]) -> RouterResult:
        """The fixed-chain cascade row: chains searched on train (`cascades.ChainSearch`)."""
        try:
            search = cascades.ChainSearch(**given)
        except TypeError as exc:
            raise CodynError(
                f"{name}: unknown parameter ({exc}); a fixed-chain cascade takes max_depth, "
                "max_retries, thresholds"
            ) from None
        test = self.test
        train = self.train_data
        complete = np.flatnonzero(~np.isnan(train.score).any(axis=1))
        if complete.size == 0:
            raise DataError("no train prompt has a score for every model: no chain to choose")
        train = train.take(complete)
        cost = train.cost if self.ctx.cost_known else np.ones(train.score.shape)
        recorded = cascades.recorded(train, cost, "train")
        sbs_q = float(train.score[:, self.ctx.sbs].mean())
        sweep, default, report = cascades.fixed_chain_sweep(recorded, test, self.ctx, search, sbs_q)
        result = self._result(name, "cascade", "", sweep, default, report)
        result.description = f"fixed-chain cascade, chains chosen on train ({search})"
        return result

    def router_led(
        self, name: str, family: str, alias: str, policy: CascadePolicy, predicted: FloatArray
    ) -> RouterResult:
        sweep, default, report = cascades.router_led_sweep(policy, predicted, self.test, self.ctx)
        return self._result(name, family, alias, sweep, default, report, predicted)

    def _result(
        self,
        name: str,
        family: str,
        policy_name: str,
        sweep: Sweep,
        default: int,
        report: cascades.CascadeReport,
        predicted: FloatArray | None = None,
    ) -> RouterResult:
        quality, cost = sweep.outcomes(self.ctx)
        chosen = sweep.choices[default]
        return _measured(
            RouterResult(
                name=name,
                family=family,
                policy=policy_name,
                learned=predicted is not None,  # router-led: the router learned from prompts
                predicted=np.full(self.ctx.score.shape, NAN) if predicted is None else predicted,
                curve=sweep,
                pair=None,
                default_choices=chosen,
                default_cost=float(np.nanmean(cost[default])),
                default_quality=float(quality[default].mean()),
                selection_share=selection_share(chosen, self.ctx.score.shape[1]),
                default_knob=report.default,
                cascade=report,
            ),
            self.ctx,
        )

    def verifier(self) -> list[dict[str, Any]]:
        """The visible/hidden agreement per model on test, when a cascade was evaluated."""
        if not self.used:
            return []
        return cascades.verifier_agreement(self.test_data, self.ctx.model_names)


def _complete_prompts(test: RoutingData) -> RoutingData:
    """The test prompts scored for every model (a curve compares every model on the same
    prompts); how many were left out goes into the notes."""
    complete = ~np.isnan(test.score).any(axis=1)
    if not complete.any():
        raise DataError("no test prompt has a score for every model")
    if complete.all():
        return test
    n_dropped = int((~complete).sum())
    kept = test.take(np.flatnonzero(complete))
    kept.notes = [
        *kept.notes,
        f"{n_dropped} test prompt(s) without a score for every model were left out",
    ]
    return kept


def _entries(specs: RouterSpecs | PolicySpecs, kind: str) -> list[_Entry]:
    """``[spec | "alias=spec" | object]`` or ``{alias: spec}`` -> unique names and specs."""
    if isinstance(specs, Mapping):
        pairs = [(str(k), v) for k, v in specs.items()]
    else:
        pairs = []
        for spec in specs:
            if isinstance(spec, str):
                alias, eq, target = spec.partition("=")
                pairs.append(
                    (alias.strip(), target.strip()) if eq else (spec.strip(), spec.strip())
                )
            else:
                pairs.append((str(getattr(spec, "family", None) or spec.name), spec))
    if not pairs:
        raise CodynError(f"give at least one {kind}")
    entries: list[_Entry] = []
    taken: set[str] = set()
    for alias, spec in pairs:
        if not alias or (isinstance(spec, str) and not spec):
            raise CodynError(f"empty {kind} name in {alias!r}={spec!r}")
        name = alias
        if name in taken:
            if isinstance(spec, str) and alias == spec and not isinstance(specs, Mapping):
                raise CodynError(
                    f"{kind} {alias!r} is given twice; name the second one, e.g. {alias}2={alias}"
                )
            k = 2
            while f"{alias}#{k}" in taken:
                k += 1
            name = f"{alias}#{k}"
        taken.add(name)
        entries.append(_Entry(name, spec))
    return entries


def _check_params(
    params: Mapping[str, Mapping[str, Any]], routers: list[_Entry], policies: list[_Entry]
) -> None:
    known = {e.name for e in routers} | {e.name for e in policies}
    clash = {e.name for e in routers} & {e.name for e in policies}
    for name in params:
        if name not in known:
            raise CodynError(
                f"parameters for {name!r}, which is neither a router nor a policy of this "
                f"evaluation ({', '.join(sorted(known))})"
            )
        if name in clash:
            raise CodynError(f"{name!r} names both a router and a policy; alias one of them")


def _router(entry: _Entry, params: Mapping[str, Mapping[str, Any]], train: RoutingData) -> Router:
    """A router ready to predict: built and fitted from a spec, fitted if unfitted, or as is."""
    given = dict(params.get(entry.name, {}))
    if isinstance(entry.spec, Router):
        if given:
            raise CodynError(f"router {entry.name!r} is an object: set its parameters in Python")
        router = entry.spec
        return router if hasattr(router, "model_names_") else router.fit(train)
    return make_router(str(entry.spec), **given).fit(train)


def _policy(
    entry: _Entry, params: Mapping[str, Mapping[str, Any]], names: list[str], ctx: Context
) -> Policy:
    """The policy, a pair policy's strong/weak defaulting to the evaluation's pair."""
    given = dict(params.get(entry.name, {}))
    if isinstance(entry.spec, Policy):
        if given:
            raise CodynError(f"policy {entry.name!r} is an object: set its parameters in Python")
        return entry.spec
    spec = entry.spec if isinstance(entry.spec, Mapping) else str(entry.spec)
    base = spec["name"] if isinstance(spec, Mapping) else spec
    accepted = policy_param_names(str(base))
    pair = {"strong": ctx.strong, "weak": ctx.weak}
    defaults = {k: v for k, v in pair.items() if k in accepted and v is not None}
    configured = set(spec) if isinstance(spec, Mapping) else set()
    defaults = {k: v for k, v in defaults.items() if k not in configured}
    return make_policy(spec, names, **{**defaults, **given})


def _compare_with(
    results: dict[str, RouterResult],
    reference: str,
    ctx: Context,
    baselines: Sequence[RouterResult] = (),
) -> None:
    """Set every other row's ``aiq_diff_vs_reference`` (paired bootstrap on test prompts),
    the oracle's and the SBS's too."""
    if reference not in results:
        raise CodynError(
            f"reference {reference!r} is not one of the routers evaluated: {', '.join(results)}"
        )
    if not ctx.cost_known:
        return  # no cost axis, no AIQ to compare
    base = results[reference].curve.outcomes(ctx)
    for result in [*results.values(), *baselines]:
        if result is not results[reference]:
            result.metrics["aiq_diff_vs_reference"] = paired_bootstrap_aiq_cells(
                *result.curve.outcomes(ctx),
                *base,
                ctx.max_cost,
                n_boot=ctx.n_boot,
                seed=ctx.seed,
            )


def _warnings(results: dict[str, RouterResult], ctx: Context) -> list[str]:
    """What a reader must know before trusting a number, also kept on each router's result."""
    warnings = [] if ctx.pair_note is None else [ctx.pair_note]
    names = ctx.model_names
    for name, r in results.items():
        if r.learned and r.selection_share.max() > COLLAPSE_SHARE:
            top = int(np.argmax(r.selection_share))
            r.warnings.append(
                f"{name}: collapsed onto model {names[top]}: at its default knob "
                f"({r.default_knob}) it sends "
                f"{r.selection_share[top]:.0%} of test prompts there; its other operating "
                "points are on the curve, and `codyn calibrate` picks one"
            )
        if r.pair is not None and r.pair.constant and ctx.pair_note is None:
            r.warnings.append(
                f"{name}: the same strong-weak margin for every prompt: its APGR and CPT "
                "would only measure a random tie order, n/a"
            )
        warnings += r.warnings
    return warnings
