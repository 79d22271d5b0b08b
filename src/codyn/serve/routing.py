"""The routing decision: which models to try, in which order, for one chat request.

A request's ``model`` is a route of the config (``codyn-code``), a route with its knob set
(``codyn/codyn-code:0.3``, as RouteLLM's ``router-mf-0.116``), or a catalog model passed
through. For a route, the router predicts every model's quality on the latest user turns and
the policy ranks them: its choice first, then what it would choose with that model gone, and so
on; the route's fallbacks follow. Used by the HTTP proxy and by the in-process `codyn.Client`.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from codyn.data.routing import RoutingData
from codyn.deploy import load_deployed
from codyn.errors import CodynError
from codyn.policy import Policy, calibrate, make_policy, policy_config, rank
from codyn.policy.base import policy_class
from codyn.serve.config import Config, RouteSpec

ROUTER_PREFIX = "codyn/"
PASSTHROUGH = "passthrough"


class UnknownModel(CodynError):
    """The request names neither a route nor a catalog model (HTTP 404)."""


class BadModelSpec(CodynError):
    """``codyn/<route>:<knob>`` with a knob that is not a number (HTTP 400)."""


@dataclass(frozen=True)
class Decision:
    """The models to try in order, and what the decision was based on (for the log)."""

    route: str
    """The route's name, or ``passthrough``."""
    ranking: list[str]
    predicted: dict[str, float | None] | None
    """Predicted quality per offered model (None for a pass-through)."""
    knob: float | None
    decision_ms: float
    sticky: bool = False
    """The conversation's earlier model was kept."""

    @property
    def chosen(self) -> str:
        return self.ranking[0]


class Route:
    """A route ready to decide: its router, policy, model costs and knob, loaded once.

    The router predicts for its own models (``model_names``, its columns); the route offers
    those its ``models:`` serves, under their catalog names, which every ranking, header and
    log row uses.
    """

    def __init__(self, name: str, spec: RouteSpec, config: Config) -> None:
        where = f"routes.{name}.router"
        try:
            router, setup = load_deployed(spec.router)
        except CodynError as exc:
            raise config.error(f"{where}: {exc}") from None
        self.name, self.spec, self.router = name, spec, router
        self.model_names: list[str] = list(setup.model_names)
        self.served = self._served_models(config)
        """``{router model: catalog model}`` for the offered models, in router column order."""
        self.catalog_name = {
            column: self.served[model]
            for column, model in enumerate(self.model_names)
            if model in self.served
        }
        """The catalog model each offered column is served as."""
        self.offered = np.isin(self.model_names, list(self.served))
        self.strongest = max(self.served.values(), key=lambda m: catalog_price(config, m))
        """The priciest offered model: what "always the strongest" is measured against."""
        self.cost_source = self._cost_source(config)
        self.costs = model_costs(self, setup.model_costs, config)
        chosen = spec.policy_spec()
        policy_spec = setup.policy if chosen is None else self._router_policy(chosen, config)
        try:
            self.policy: Policy = make_policy(policy_spec, self.model_names)
        except CodynError as exc:
            raise config.error(f"routes.{name}.policy: {exc}") from None
        saved = chosen is None or policy_config(self.policy, self.model_names) == setup.policy
        if spec.verify is not None and not spec.verify.unsafe_local:
            from codyn.sandbox import sandbox_problem

            problem = sandbox_problem()
            if problem is not None:
                raise config.error(
                    f"routes.{name}.verify: no usable sandbox ({problem}); install bubblewrap, "
                    "or set verify.unsafe_local on a machine of your own"
                )
        self.knob, self.knob_source = self.policy.default_knob, "the policy's default"
        if spec.knob is not None:
            self.knob, self.knob_source = self._checked_knob(spec.knob, config), "the route's knob"
        elif spec.calibrate is not None:
            self.knob, self.knob_source = self._calibrate(config), "calibrated at startup"
        elif saved and setup.knob is not None and self.cost_source == "train":
            self.knob, self.knob_source = setup.knob, "the router's saved knob"

    def _served_models(self, config: Config) -> dict[str, str]:
        mapping = self.spec.model_map()
        if mapping is None:
            missing = [m for m in self.model_names if m not in config.models]
            if missing:
                raise config.error(
                    f"routes.{self.name}.router: the catalog has no model {', '.join(missing)} "
                    f"(router models: {', '.join(self.model_names)}); map router models onto "
                    f"catalog models with routes.{self.name}.models: "
                    "{router model: catalog model}"
                )
            return {m: m for m in self.model_names}
        unknown = [m for m in mapping if m not in self.model_names]
        if unknown:
            raise config.error(
                f"routes.{self.name}.models: the router was not trained on {', '.join(unknown)} "
                f"(router models: {', '.join(self.model_names)})"
            )
        return {m: mapping[m] for m in self.model_names if m in mapping}

    def _cost_source(self, config: Config) -> str:
        """`RouteSpec.costs`, else catalog prices when a router model is served under another
        name (its train cost is another model's) and the catalog prices them, else train costs
        (what a saved knob was calibrated on)."""
        if self.spec.costs is not None:
            return self.spec.costs
        renamed = any(router != catalog for router, catalog in self.served.items())
        priced = any(catalog_price(config, m) > 0 for m in self.served.values())
        return "catalog" if renamed and priced else "train"

    def _router_policy(self, spec: dict[str, Any], config: Config) -> dict[str, Any]:
        """The route's policy config, whose model parameters name catalog models, with the
        router's names for them (a policy's columns are the router's)."""
        router_model = {catalog: router for router, catalog in self.served.items()}
        translated = dict(spec)
        for field in policy_class(str(spec["name"])).model_params:
            value = spec.get(field)
            if value is None:
                continue
            for model in value if isinstance(value, list) else [value]:
                if isinstance(model, str) and model not in router_model:
                    top_level = field in ("strong", "weak") and getattr(self.spec, field)
                    where = field if top_level else f"policy.{field}"
                    raise config.error(
                        f"routes.{self.name}.{where}: {model!r} is not offered by this route "
                        f"(offered: {', '.join(router_model)})"
                    )
            translated[field] = (
                [router_model.get(m, m) for m in value]
                if isinstance(value, list)
                else router_model.get(value, value)
            )
        return translated

    def _checked_knob(self, knob: float, config: Config) -> float:
        try:
            return self.policy.check_knob(knob)
        except CodynError as exc:
            raise config.error(f"routes.{self.name}.knob: {exc}") from None

    def _calibrate(self, config: Config) -> float:
        target = self.spec.calibrate
        assert target is not None
        try:
            val = RoutingData.load(target.data).subset(models=self.model_names)
            predicted, difficulty = self.router.predict_with_difficulty(val)
            result = calibrate(
                self.policy.with_difficulty(difficulty),
                self._masked(predicted),
                self.costs,
                target_cost=target.target_cost,
                min_quality=target.min_quality,
                strong_share=target.strong_share,
                score_val=val.score,
                cost_val=val.cost if val.has_costs else None,
            )
        except CodynError as exc:
            raise config.error(f"routes.{self.name}.calibrate: {exc}") from None
        return result.knob

    def _masked(self, predicted: NDArray[np.float64]) -> NDArray[np.float64]:
        predicted[:, ~self.offered] = np.nan
        return predicted

    def rank(self, text: str, knob: float) -> tuple[list[str], dict[str, float | None]]:
        """Offered models best first by the policy, and the predicted quality of each (None
        where the router does not know: JSON has no NaN).

        The ranking is `codyn.policy.rank`: the policy's choice, then its choice with that model
        gone, and so on, so it follows the policy's own rule whatever it is. A blank text gives
        the router nothing to read: every prediction is unknown, and the policy's rule decides
        on that (utility: the cheapest offered model first).
        """
        difficulty = None
        if text.strip():
            predicted, difficulty = self.router.predict_with_difficulty([text])
            predicted = self._masked(predicted)
        else:
            predicted = self._masked(np.full((1, len(self.model_names)), np.nan))
        scores = {
            name: float(predicted[0, column]) if np.isfinite(predicted[0, column]) else None
            for column, name in self.catalog_name.items()
        }
        try:
            policy = self.policy.with_difficulty(difficulty)
            order = rank(predicted, self.costs, policy, knob, offered=self.offered)[0]
        except CodynError as exc:  # the knob, the one input a request sets, does not fit
            where = f"route {self.name!r} at {self.policy.knob_name} {knob:g}"
            raise BadModelSpec(f"{where}: {exc}") from None
        return [self.catalog_name[int(i)] for i in order], scores


class Gateway:
    """Every route of a config, loaded at startup; `decide` answers one request."""

    def __init__(self, config: Config, *, sticky_capacity: int = 100_000) -> None:
        self.config = config
        self.routes = {name: Route(name, spec, config) for name, spec in config.routes.items()}
        self._sticky: OrderedDict[tuple[str, str], str] = OrderedDict()
        self._sticky_capacity = sticky_capacity

    def resolve(self, requested: str) -> tuple[Route | None, float | None]:
        """The route (None for a catalog model) and knob override a ``model`` field names."""
        if requested in self.routes:
            return self.routes[requested], None
        if requested.startswith(ROUTER_PREFIX):
            name, colon, knob = requested.removeprefix(ROUTER_PREFIX).rpartition(":")
            name = name if colon else knob
            if name in self.routes:
                if not colon:
                    return self.routes[name], None
                route = self.routes[name]
                try:
                    return route, route.policy.check_knob(float(knob))
                except ValueError:
                    raise BadModelSpec(
                        f"model {requested!r}: the knob after ':' must be a number"
                    ) from None
                except CodynError as exc:
                    raise BadModelSpec(f"model {requested!r}: {exc}") from None
        if requested in self.config.models:
            return None, None
        raise UnknownModel(
            f"model {requested!r} is neither a route ({', '.join(self.routes) or 'none'}) nor a "
            f"catalog model ({', '.join(self.config.models)})"
        )

    def decide(
        self, requested: str, messages: Sequence[Any], conversation: str | None = None
    ) -> Decision:
        """Rank the models for one request; raises `UnknownModel` or `BadModelSpec`."""
        start = time.perf_counter()
        route, knob = self.resolve(requested)
        if route is None:
            return Decision(PASSTHROUGH, [requested], None, None, _ms_since(start))
        knob = route.knob if knob is None else knob
        ranking, scores = route.rank(routed_text(messages, route.spec.turns), knob)
        ranking += [m for m in route.spec.fallbacks if m not in ranking]
        kept = self._sticky_model(route, conversation)
        if kept is not None and kept in ranking:
            ranking = [kept] + [m for m in ranking if m != kept]
        return Decision(
            route.name, ranking, scores, knob, _ms_since(start), sticky=kept == ranking[0]
        )

    def _sticky_model(self, route: Route, conversation: str | None) -> str | None:
        if not route.spec.sticky or conversation is None:
            return None
        key = (route.name, conversation)
        if key in self._sticky:
            self._sticky.move_to_end(key)
        return self._sticky.get(key)

    def answered(self, decision: Decision, conversation: str | None, model: str) -> None:
        """Remember which model answered a sticky route's conversation (least recent dropped
        beyond capacity; memory only, so each replica keeps its own)."""
        route = self.routes.get(decision.route)
        if route is None or not route.spec.sticky or conversation is None:
            return
        self._sticky[(route.name, conversation)] = model
        self._sticky.move_to_end((route.name, conversation))
        while len(self._sticky) > self._sticky_capacity:
            self._sticky.popitem(last=False)


def catalog_price(config: Config, model: str) -> float:
    """``price_in + price_out`` (USD per 1M tokens): how a route compares catalog models."""
    return config.models[model].price_in + config.models[model].price_out


def model_costs(route: Route, train_costs: Sequence[float], config: Config) -> NDArray[np.float64]:
    """The cost per router column the route's policy weighs against quality.

    ``route.cost_source`` ``train``: the router's saved mean train cost per call; ``catalog``:
    the catalog price of the model each column is served as (a price proxy). Columns not
    offered cost what the cheapest offered one does, inside the offered range, so a policy that
    normalises costs over every column (affordability's min-max) sees the offered models' range.
    """
    if route.cost_source == "catalog":
        offered = {c: catalog_price(config, m) for c, m in route.catalog_name.items()}
    else:
        offered = {c: float(train_costs[c]) for c in route.catalog_name}
    floor = min(offered.values())
    return np.array([offered.get(c, floor) for c in range(len(route.model_names))])


def model_ids(config: Config) -> list[str]:
    """What a client may ask for: the routes first, then the catalog's models."""
    return [*config.routes, *config.models]


def routed_text(messages: Sequence[Any], turns: int) -> str:
    """The text a router reads: the latest ``turns`` user messages, oldest first, or the last
    message of any role when there is no user turn (a system prompt alone, say).

    Content given as parts (``[{"type": "text", "text": ...}]``) contributes its text parts.
    """
    texts: list[str] = []
    for message in reversed(messages):
        if len(texts) == turns:
            break
        if isinstance(message, dict) and message.get("role") == "user":
            texts.append(_content_text(message.get("content")))
    if not texts and messages and isinstance(messages[-1], dict):
        texts.append(_content_text(messages[-1].get("content")))
    return "\n\n".join(reversed(texts))


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(
            str(part.get("text", ""))
            for part in content
            if isinstance(part, dict) and part.get("type") == "text"
        )
    return ""


def _ms_since(start: float) -> float:
    return (time.perf_counter() - start) * 1000.0
