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
    """A route ready to decide: its router, policy, model costs and knob, loaded once."""

    def __init__(self, name: str, spec: RouteSpec, config: Config) -> None:
        where = f"routes.{name}.router"
        try:
            router, setup = load_deployed(spec.router)
        except CodynError as exc:
            raise config.error(f"{where}: {exc}") from None
        self.name, self.spec, self.router = name, spec, router
        self.model_names: list[str] = list(setup.model_names)
        offered = spec.models if spec.models is not None else self.model_names
        missing = [m for m in offered if m not in config.models]
        unknown = [m for m in offered if m not in self.model_names]
        if missing or unknown:
            problem = (
                f"the catalog has no model {', '.join(missing)}"
                if missing
                else f"the router was not trained on {', '.join(unknown)}"
            )
            raise config.error(f"{where}: {problem} (router models: {', '.join(self.model_names)})")
        self.offered = np.isin(self.model_names, offered)
        self.strongest = max(
            offered, key=lambda m: config.models[m].price_in + config.models[m].price_out
        )
        """The priciest offered model: what "always the strongest" is measured against."""
        self.costs = np.asarray(setup.model_costs, dtype=np.float64)
        chosen = spec.policy_spec()
        try:
            self.policy: Policy = make_policy(
                setup.policy if chosen is None else chosen, self.model_names
            )
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
        self.knob = self.policy.default_knob
        if spec.knob is not None:
            self.knob = self._checked_knob(spec.knob, config)
        elif spec.calibrate is not None:
            self.knob = self._calibrate(config)
        elif saved and setup.knob is not None:
            self.knob = setup.knob

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
            result = calibrate(
                self.policy,
                self._masked(self.router.predict(val)),
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
        if text.strip():
            predicted = self._masked(self.router.predict([text]))
        else:
            predicted = self._masked(np.full((1, len(self.model_names)), np.nan))
        scores = {
            name: float(value) if np.isfinite(value) else None
            for name, value, offered in zip(
                self.model_names, predicted[0], self.offered, strict=True
            )
            if offered
        }
        try:
            order = rank(predicted, self.costs, self.policy, knob, offered=self.offered)[0]
        except CodynError as exc:  # the knob, the one input a request sets, does not fit
            where = f"route {self.name!r} at {self.policy.knob_name} {knob:g}"
            raise BadModelSpec(f"{where}: {exc}") from None
        return [self.model_names[int(i)] for i in order], scores


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


def model_ids(config: Config) -> list[str]:
    """What a client may ask for: the routes first, then the catalog's models."""
    return [*config.routes, *config.models]


def routed_text(messages: Sequence[Any], turns: int) -> str:
    """The text a router reads: the latest ``turns`` user messages, oldest first.

    Content given as parts (``[{"type": "text", "text": ...}]``) contributes its text parts.
    """
    texts: list[str] = []
    for message in reversed(messages):
        if len(texts) == turns:
            break
        if isinstance(message, dict) and message.get("role") == "user":
            texts.append(_content_text(message.get("content")))
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
