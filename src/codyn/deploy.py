"""A router ready to route: the fitted router plus what its policy needs, saved side by side.

A router only predicts quality; choosing a model also needs a policy, each model's cost and
the policy's knob. ``codyn train`` writes them to ``policy.json`` next to ``router.json``: the
policy's name and parameters, the models' mean cost per call on the train split (what the knob
trades quality against), the knob (the policy's default until ``codyn calibrate`` picks one),
the single best model of the train split and the policy's knob grid on the train prompts (the
candidates a guaranteed calibration tests, chosen without looking at validation data).
``codyn route``, `codyn.Client` and the proxy read it back with `load_deployed`; every decision
goes through `codyn.policy.decide`.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from codyn.data.routing import RoutingData
from codyn.errors import CodynError, DataError
from codyn.metrics.headroom import sbs_index
from codyn.policy import (
    BudgetPolicy,
    Calibration,
    FixedPolicy,
    GuaranteedCalibration,
    Policy,
    TiersPolicy,
    calibrate,
    calibrate_with_guarantee,
    decide,
    make_policy,
    policy_config,
)
from codyn.routers.base import Router
from codyn.routers.embedding import EmbeddingRouter
from codyn.routers.registry import load_router

POLICY_FILE = "policy.json"
FORMAT_VERSION = 2
"""2: the policy is a config (name and parameters), the knob may be null (the policy's
default), the train SBS and knob grid are kept. Version 1 files (utility only) still load."""
UNIFORM_COST_NOTE = "costs unknown in the train data: every model counts as 1 per call"
GRID_POINTS = 200
"""Knob values kept from the train prompts for a guaranteed calibration to test."""


@dataclass
class PolicySetup:
    """A router's policy, costs in the router's model order, and the knob it routes at."""

    model_names: list[str]
    model_costs: list[float]
    cost_note: str
    policy: dict[str, Any] = field(default_factory=lambda: {"name": "utility"})
    """`codyn.policy.policy_config` of the policy (models by name)."""
    knob: float | None = None
    """None: the policy's default knob (utility: lambda = 0, quality only)."""
    calibration: dict[str, Any] | None = None
    sbs: str | None = None
    """The single best model of the train split (best mean score, ties -> cheaper)."""
    knob_grid: list[float] | None = None
    """The policy's knob grid on the router's predictions for the train prompts."""

    @classmethod
    def from_train(
        cls,
        router: Router,
        train: RoutingData,
        policy: str | dict[str, Any] | Policy = "utility",
    ) -> PolicySetup:
        """Mean train cost per call of each of ``router``'s models (uniform when unknown), the
        train SBS and ``policy``'s knob grid on the train prompts."""
        data = train.subset(models=router.model_names_)
        names = list(router.model_names_)
        costs = data.mean_cost()
        known = not np.isnan(costs).any()
        model_costs = costs.tolist() if known else [1.0] * len(names)
        built = make_policy(policy, names)
        predicted, difficulty = router.predict_with_difficulty(data)
        grid = built.with_difficulty(difficulty).knob_grid(
            predicted, model_costs, n_points=GRID_POINTS
        )
        return cls(
            model_names=names,
            model_costs=model_costs,
            cost_note=data.describe_costs() if known else UNIFORM_COST_NOTE,
            policy=policy_config(built, names),
            sbs=names[sbs_index(data.score, data.cost if known else None)],
            knob_grid=[float(k) for k in grid if np.isfinite(k)],
        )

    def build_policy(self) -> Policy:
        """The saved policy, ready to decide."""
        return make_policy(self.policy, self.model_names)

    def save(self, directory: str | Path) -> Path:
        path = Path(directory) / POLICY_FILE
        payload = {"format_version": FORMAT_VERSION, **asdict(self)}
        path.write_text(json.dumps(payload, indent=2, allow_nan=False) + "\n", encoding="utf-8")
        return path

    @classmethod
    def read(cls, directory: str | Path) -> PolicySetup:
        """The saved setup; a missing, corrupted or newer file is a `DataError` naming it."""
        path = Path(directory) / POLICY_FILE
        if not path.is_file():
            raise DataError(
                "no such file: a router saved from Python needs PolicySetup.from_train(router, "
                "train).save(directory), which `codyn train` does",
                path=path,
            )
        try:
            payload = json.loads(path.read_text(encoding="utf-8"))
            version = payload.pop("format_version")
            if version > FORMAT_VERSION:
                raise DataError(
                    f"format version {version} is newer than this codyn reads", path=path
                )
            if version == 1:  # utility only, knob 0 until calibrated
                payload["policy"] = {"name": payload.pop("policy")}
            setup = cls(**payload)
        except (UnicodeDecodeError, json.JSONDecodeError, AttributeError, KeyError, TypeError):
            raise DataError("corrupted policy file", path=path) from None
        if len(setup.model_costs) != len(setup.model_names) or not isinstance(setup.policy, dict):
            raise DataError("corrupted policy file: one cost per model expected", path=path)
        try:
            setup.build_policy()
        except CodynError as exc:
            raise DataError(f"the saved policy cannot be built: {exc}", path=path) from None
        return setup


@dataclass
class Routed:
    """Decisions for a batch of prompts: the chosen column per prompt and what it came from."""

    model_names: list[str]
    predicted: NDArray[np.float64]
    """``n_prompts x n_models`` predicted quality (NaN for models not offered)."""
    model_costs: NDArray[np.float64]
    chosen: NDArray[np.int64]
    policy: Policy
    knob: float
    knob_source: str
    """Where the knob came from: given, max cost, calibrated, or the policy's default."""
    truncated: int
    """How many of the prompts a featuriser had to cut (too long)."""
    explanation: list[dict[str, Any]] | None = None
    """Per prompt, what the router read beyond its predictions (`Router.explain`: the
    `profile` router's category and level) and, under the ``tiers`` policy, the tier used and
    the model of every tier."""

    @property
    def models(self) -> list[str]:
        return [self.model_names[i] for i in self.chosen]


def build_profile_router(
    train: RoutingData,
    *,
    models: list[str] | None = None,
    params: dict[str, Any] | None = None,
) -> tuple[Router, PolicySetup]:
    """DynaRoute as the paper builds it: a `profile` router on public benchmark scores
    (``table="benchmarks"``), its profiler trained on ``train`` (or an LLM), routing between
    the table's ``models`` [all] under the ``tiers`` policy, each model's cost its total
    price per 1M tokens.

    The knob grid covers every (category, level) row, so it needs no call to the profiler.
    """
    from codyn.profile.table import load_benchmark_table
    from codyn.routers.profile import ProfileRouter, level_difficulty

    chosen = None if models is None else ",".join(models)
    router = ProfileRouter(**{**(params or {}), "table": "benchmarks", "models": chosen})
    router.fit(train)
    table = load_benchmark_table(router.benchmarks_file).subset(router.model_names_)
    unpriced = [m for m, c in zip(table.models, table.total_cost, strict=True) if np.isnan(c)]
    if unpriced:
        raise DataError(
            f"{unpriced[0]!r} has no input or output price in the table: give --models without "
            "it, or add its prices",
            path=table.source,
        )
    policy = TiersPolicy()
    levels = [1, 2, 3] * len(router.categories_)
    rows = np.repeat(router.quality_, 3, axis=0)
    grid = policy.with_difficulty(level_difficulty(levels)).knob_grid(
        rows, table.total_cost, n_points=None
    )
    names = list(router.model_names_)
    setup = PolicySetup(
        model_names=names,
        model_costs=table.total_cost.tolist(),
        cost_note=f"cost = input + output price per 1M tokens from {Path(table.source).name} "
        "(DynaRoute's total cost; ratios only)",
        policy=policy_config(policy, names),
        knob_grid=[float(k) for k in grid],
    )
    return router, setup


def load_deployed(directory: str | Path) -> tuple[Router, PolicySetup]:
    """The router in ``directory`` and its policy setup, checked to cover the same models."""
    router = load_router(directory)
    setup = PolicySetup.read(directory)
    if setup.model_names != router.model_names_:
        raise DataError(
            "policy file lists other models than the router", path=Path(directory) / POLICY_FILE
        )
    return router, setup


def offered_mask(setup: PolicySetup, offered: list[str] | None) -> NDArray[np.bool_]:
    """The router's models a deployment offers now; a name it was not trained on is an error."""
    if offered is None:
        return np.ones(len(setup.model_names), dtype=bool)
    unknown = sorted(set(offered) - set(setup.model_names))
    if unknown:
        raise CodynError(
            f"the router was not trained on {', '.join(unknown)}; it knows: "
            f"{', '.join(setup.model_names)} (retrain it on data for the models offered)"
        )
    mask = np.isin(setup.model_names, offered)
    if not mask.any():
        raise CodynError("no model offered: give at least one of the router's models")
    return mask


def route(
    router: Router,
    setup: PolicySetup,
    prompts: list[str],
    *,
    knob: float | None = None,
    max_cost: float | None = None,
    offered: list[str] | None = None,
) -> Routed:
    """Choose a model per prompt with the saved policy at ``knob`` (default: the saved one).

    ``max_cost`` instead routes by `BudgetPolicy`: the best predicted model costing at most it
    per call. ``offered`` restricts the choice to the models a deployment offers now.
    """
    if knob is not None and max_cost is not None:
        raise CodynError("give a knob or a maximum cost per call, not both")
    costs = np.asarray(setup.model_costs, dtype=np.float64)
    allowed = offered_mask(setup, offered)
    policy: Policy
    if max_cost is not None:
        policy, used, source = BudgetPolicy(), float(max_cost), "best within the max cost"
        if not (costs[allowed] <= max_cost).any():
            raise CodynError(
                f"no offered model costs at most {max_cost:g} per call; the cheapest costs "
                f"{costs[allowed].min():g}"
            )
    else:
        policy = setup.build_policy()
        if knob is not None:
            used, source = float(knob), "given"
        elif setup.knob is not None:
            used, source = setup.knob, "calibrated" if setup.calibration else "saved"
        else:
            used, source = policy.default_knob, "the policy's default"
    used = policy.check_knob(used)
    before = _truncated(router)
    predicted, difficulty = router.predict_with_difficulty(prompts)
    predicted[:, ~allowed] = np.nan
    bound = policy.with_difficulty(difficulty)
    chosen = decide(predicted, costs, bound, used, offered=allowed)
    explanation = router.explain(prompts)
    if explanation is not None and isinstance(bound, TiersPolicy):
        tiers = bound.tiers(predicted, costs, used)
        per_tier = bound.choices_per_tier(predicted, costs)
        names = setup.model_names
        for i, entry in enumerate(explanation):
            entry["tier"] = int(tiers[i])
            entry["tier_models"] = [names[j] for j in per_tier[i]]
    return Routed(
        list(setup.model_names),
        predicted,
        costs,
        chosen,
        policy,
        used,
        source,
        _truncated(router) - before,
        explanation,
    )


def _truncated(router: Router) -> int:
    """Prompts cut so far by an embedding router's featurisers (0 for other routers)."""
    return router.truncation.truncated if isinstance(router, EmbeddingRouter) else 0


def _validation(setup: PolicySetup, val: RoutingData) -> RoutingData:
    missing = [m for m in setup.model_names if m not in val.model_names]
    if missing:
        raise CodynError(
            f"the validation data has no scores for {', '.join(missing)} (the router's models)"
        )
    return val.subset(models=setup.model_names)


def _calibrated_policy(setup: PolicySetup) -> Policy:
    """The policy a calibration tunes: the user's, even after an earlier calibration fell back
    to the SBS."""
    base = (setup.calibration or {}).get("policy", setup.policy)
    return make_policy(base, setup.model_names)


def calibrate_deployed(
    router: Router,
    setup: PolicySetup,
    val: RoutingData,
    *,
    target_cost: float | None = None,
    min_quality: float | None = None,
    strong_share: float | None = None,
) -> Calibration:
    """Pick the knob on validation data for one target and store it (and what it achieved) in
    ``setup``; save the setup to keep it. ``val`` must score every model of the router."""
    val = _validation(setup, val)
    policy = _calibrated_policy(setup)
    predicted, difficulty = router.predict_with_difficulty(val)
    result = calibrate(
        policy.with_difficulty(difficulty),
        predicted,
        setup.model_costs,
        target_cost=target_cost,
        min_quality=min_quality,
        strong_share=strong_share,
        score_val=val.score,
        cost_val=val.cost if val.has_costs else None,
    )
    setup.policy = policy_config(policy, setup.model_names)
    setup.knob = result.knob
    setup.calibration = {**asdict(result), "n_prompts": val.n_prompts}
    return result


def calibrate_deployed_with_guarantee(
    router: Router,
    setup: PolicySetup,
    val: RoutingData,
    *,
    max_quality_loss: float,
    confidence: float,
    method: str = "betting",
) -> GuaranteedCalibration:
    """The cheapest knob whose quality loss against always-SBS on new prompts is at most
    ``max_quality_loss`` with probability ``confidence`` (`calibrate_with_guarantee`), stored
    in ``setup``; when none qualifies the setup routes every prompt to the SBS (`FixedPolicy`)."""
    val = _validation(setup, val)
    policy = _calibrated_policy(setup)
    names = setup.model_names
    sbs = setup.sbs if setup.sbs is not None else names[sbs_index(val.score, None)]
    predicted, difficulty = router.predict_with_difficulty(val)
    result = calibrate_with_guarantee(
        policy.with_difficulty(difficulty),
        predicted,
        setup.model_costs,
        val.score,
        sbs=names.index(sbs),
        max_quality_loss=max_quality_loss,
        confidence=confidence,
        knobs=setup.knob_grid,
        cost_val=val.cost if val.has_costs else None,
        method=method,
    )
    base = policy_config(policy, names)
    if result.knob is None:
        setup.policy, setup.knob = policy_config(FixedPolicy(model=names.index(sbs)), names), None
    else:
        setup.policy, setup.knob = base, result.knob
    setup.calibration = {
        **asdict(result),
        "sbs": sbs,
        "policy": base,
        "n_prompts": val.n_prompts,
        "grid": "train" if setup.knob_grid else "validation",
    }
    return result
