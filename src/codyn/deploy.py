"""A router ready to route: the fitted router plus what its policy needs, saved side by side.

A router only predicts quality; choosing a model also needs each model's cost and the policy's
knob. ``codyn train`` writes them to ``policy.json`` next to ``router.json``: the models' mean
cost per call on the train split (what lambda trades quality against) and lambda (0, quality
only, until ``codyn calibrate`` picks one on validation data). ``codyn route`` and the proxy
read both back with `load_deployed` and decide with `route`.
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
from codyn.policy import Calibration, UtilityPolicy, calibrate
from codyn.routers.base import Router
from codyn.routers.embedding import EmbeddingRouter
from codyn.routers.registry import load_router

POLICY_FILE = "policy.json"
FORMAT_VERSION = 1
UNIFORM_COST_NOTE = "costs unknown in the train data: every model counts as 1 per call"


@dataclass
class PolicySetup:
    """`UtilityPolicy` inputs for one router: costs in the router's model order, and lambda."""

    model_names: list[str]
    model_costs: list[float]
    cost_note: str
    knob: float = 0.0
    calibration: dict[str, Any] | None = field(default=None)

    @classmethod
    def from_train(cls, router: Router, train: RoutingData) -> PolicySetup:
        """Mean train cost per call of each of ``router``'s models (uniform when unknown)."""
        costs = train.subset(models=router.model_names_).mean_cost()
        if np.isnan(costs).any():
            return cls(list(router.model_names_), [1.0] * len(costs), UNIFORM_COST_NOTE)
        return cls(list(router.model_names_), costs.tolist(), train.describe_costs())

    def save(self, directory: str | Path) -> Path:
        path = Path(directory) / POLICY_FILE
        payload = {"format_version": FORMAT_VERSION, "policy": "utility", **asdict(self)}
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
            payload.pop("policy")
            setup = cls(**payload)
        except (UnicodeDecodeError, json.JSONDecodeError, AttributeError, KeyError, TypeError):
            raise DataError("corrupted policy file", path=path) from None
        if version > FORMAT_VERSION:
            raise DataError(f"format version {version} is newer than this codyn reads", path=path)
        if len(setup.model_costs) != len(setup.model_names):
            raise DataError("corrupted policy file: one cost per model expected", path=path)
        return setup


@dataclass
class Routed:
    """Decisions for a batch of prompts: the chosen column per prompt and what it came from."""

    model_names: list[str]
    predicted: NDArray[np.float64]
    """``n_prompts x n_models`` predicted quality (NaN for models not offered)."""
    model_costs: NDArray[np.float64]
    chosen: NDArray[np.int64]
    knob: float
    knob_source: str
    """Where the knob came from: given, max cost, calibrated, or default (quality only)."""
    truncated: int
    """How many of the prompts a featuriser had to cut (too long)."""

    @property
    def models(self) -> list[str]:
        return [self.model_names[i] for i in self.chosen]


def load_deployed(directory: str | Path) -> tuple[Router, PolicySetup]:
    """The router in ``directory`` and its policy setup, checked to cover the same models."""
    router = load_router(directory)
    setup = PolicySetup.read(directory)
    if setup.model_names != router.model_names_:
        raise DataError(
            "policy file lists other models than the router", path=Path(directory) / POLICY_FILE
        )
    return router, setup


def route(
    router: Router,
    setup: PolicySetup,
    prompts: list[str],
    *,
    knob: float | None = None,
    max_cost: float | None = None,
    offered: list[str] | None = None,
) -> Routed:
    """Choose a model per prompt by `UtilityPolicy` at ``knob`` (default: the saved one).

    ``max_cost`` instead picks the best predicted model among those whose mean cost per call is
    at most it. ``offered`` restricts the choice to the models a deployment offers now; a name
    the router was not trained on is a `CodynError`.
    """
    if knob is not None and max_cost is not None:
        raise CodynError("give a knob or a maximum cost per call, not both")
    costs = np.asarray(setup.model_costs, dtype=np.float64)
    allowed = np.ones(len(costs), dtype=bool)
    if offered is not None:
        unknown = sorted(set(offered) - set(setup.model_names))
        if unknown:
            raise CodynError(
                f"the router was not trained on {', '.join(unknown)}; it knows: "
                f"{', '.join(setup.model_names)} (retrain it on data for the models offered)"
            )
        allowed = np.isin(setup.model_names, offered)
        if not allowed.any():
            raise CodynError("no model offered: give at least one of the router's models")
    if max_cost is not None:
        within = allowed & (costs <= max_cost)
        if not within.any():
            raise CodynError(
                f"no offered model costs at most {max_cost:g} per call; the cheapest costs "
                f"{costs[allowed].min():g}"
            )
        allowed, used, source = within, 0.0, "best within the max cost"
    elif knob is not None:
        used, source = float(knob), "given"
    else:
        used = setup.knob
        source = "calibrated" if setup.calibration else "default: quality only"
    before = _truncated(router)
    predicted = router.predict(prompts)
    predicted[:, ~allowed] = np.nan
    chosen = UtilityPolicy().decide(predicted, costs, used)
    return Routed(
        list(setup.model_names), predicted, costs, chosen, used, source, _truncated(router) - before
    )


def _truncated(router: Router) -> int:
    """Prompts cut so far by an embedding router's featurisers (0 for other routers)."""
    return router.truncation.truncated if isinstance(router, EmbeddingRouter) else 0


def calibrate_deployed(
    router: Router,
    setup: PolicySetup,
    val: RoutingData,
    *,
    target_cost: float | None = None,
    min_quality: float | None = None,
    strong_share: float | None = None,
) -> Calibration:
    """Pick lambda on validation data for one target and store it (and what it achieved) in
    ``setup``; save the setup to keep it. ``val`` must score every model of the router."""
    val = val.subset(models=setup.model_names)
    result = calibrate(
        UtilityPolicy(),
        router.predict(val),
        setup.model_costs,
        target_cost=target_cost,
        min_quality=min_quality,
        strong_share=strong_share,
        score_val=val.score,
        cost_val=val.cost if val.has_costs else None,
    )
    setup.knob = result.knob
    setup.calibration = {**asdict(result), "n_prompts": val.n_prompts}
    return result
