"""``codyn serve --check``: a config loaded as the proxy would load it, every route asked to
decide once and every backend sent one tiny request, so that a deployment's problems show up
before its first client does, each as one line.

The result is a table: route -> router model -> catalog model -> endpoint, the cost the route's
policy weighs for it, and whether the backend answered.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path

from codyn.errors import DataError
from codyn.serve.config import Config, load_config
from codyn.serve.routing import Route

PROBE_PROMPT = "Write a Python function that adds two numbers."
"""What each route's router reads once: a decision that fails here would fail every request."""
PROBE_BODY = {"messages": [{"role": "user", "content": "Say OK."}], "max_tokens": 1}


@dataclass(frozen=True)
class CheckRow:
    """One model as a route (or a pass-through request) reaches it."""

    route: str
    """The route's name; ``-`` for a catalog model no route offers (pass-through only)."""
    router_model: str
    """The router's name for it; ``(fallback)`` or ``-`` where no router column is behind it."""
    catalog_model: str
    endpoint: str
    cost: str
    """The cost the route's policy weighs, with its unit and source (``-`` off a router)."""
    reachable: bool


@dataclass(frozen=True)
class RouteSummary:
    """How a loaded route decides: policy, knob and where each came from."""

    name: str
    router: Path
    policy: str
    knob: str
    costs: str
    not_offered: list[str]
    """The router's models the route does not serve."""


@dataclass
class CheckReport:
    rows: list[CheckRow] = field(default_factory=list)
    routes: list[RouteSummary] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    """One line per problem, naming the file and the field; empty: the config is fine."""


def check_config(path: str | Path) -> CheckReport:
    """Validate the config at ``path``; a config that does not parse raises `DataError` (one
    line), every later problem is collected in the report."""
    config = load_config(path)
    report = CheckReport()
    reachable = _probe_backends(config, report)
    covered: set[str] = set()
    for name, spec in config.routes.items():
        try:
            route = Route(name, spec, config)
            route.rank(PROBE_PROMPT, route.knob)
        except DataError as exc:  # the config's own one-line error, naming file and field
            report.problems.append(str(exc))
            continue
        except Exception as exc:  # a router that fails on a prompt is the problem to report
            lines = str(exc).strip().splitlines()
            report.problems.append(
                f"{config.path}: routes.{name}: the router cannot decide "
                f"({type(exc).__name__}: {lines[0] if lines else ''})"
            )
            continue
        report.routes.append(_summary(route))
        for column, catalog in route.catalog_name.items():
            router_model = route.model_names[column]
            cost = _cost_cell(route, float(route.costs[column]))
            report.rows.append(_row(config, name, router_model, catalog, cost, reachable))
        for fallback in spec.fallbacks:
            report.rows.append(_row(config, name, "(fallback)", fallback, "-", reachable))
        covered.update(route.served.values(), spec.fallbacks)
    for catalog in config.models:
        if catalog not in covered:
            report.rows.append(_row(config, "-", "-", catalog, "-", reachable))
    return report


def _probe_backends(config: Config, report: CheckReport) -> dict[str, bool]:
    """One ``max_tokens: 1`` request per catalog model, in parallel (each within its own
    timeout), the way the proxy calls it (`Backends`: directly or through LiteLLM); a failure
    is a problem naming the model and the endpoint."""
    from codyn.serve.backends import Backends, BackendTimer, describe

    async def probe_all() -> list[str | None]:
        backends = Backends(config)

        async def probe(name: str) -> str | None:
            try:
                await backends.acompletion(name, dict(PROBE_BODY), False, BackendTimer())
            except Exception as exc:  # any failure means the proxy could not use this backend
                return describe(exc)
            return None

        try:
            return await asyncio.gather(*(probe(name) for name in config.models))
        finally:
            await backends.aclose()

    failures = dict(zip(config.models, asyncio.run(probe_all()), strict=True))
    for name, failure in failures.items():
        if failure is not None:
            report.problems.append(
                str(
                    config.error(
                        f"models.{name}: the backend at {endpoint(config, name)} did not answer "
                        f"a one-token request ({failure})"
                    )
                )
            )
    return {name: failure is None for name, failure in failures.items()}


def endpoint(config: Config, model: str) -> str:
    """Where a catalog model's calls go: its ``api_base``, else its LiteLLM model string."""
    entry = config.models[model]
    return entry.api_base or entry.litellm_model


def _row(
    config: Config,
    route: str,
    router_model: str,
    catalog: str,
    cost: str,
    reachable: dict[str, bool],
) -> CheckRow:
    return CheckRow(
        route, router_model, catalog, endpoint(config, catalog), cost, reachable[catalog]
    )


def _cost_cell(route: Route, cost: float) -> str:
    if route.cost_source == "catalog":
        return f"{cost:.4g} USD/1M in+out (catalog)"
    return f"{cost:.4g} USD/call (train)"


def _summary(route: Route) -> RouteSummary:
    policy = route.policy
    costs = (
        "catalog prices (price_in + price_out)"
        if route.cost_source == "catalog"
        else "the router's mean train cost per call"
    )
    return RouteSummary(
        name=route.name,
        router=route.spec.router,
        policy=policy.name,
        knob=f"{policy.knob_name}={route.knob:g} ({route.knob_source})",
        costs=costs,
        not_offered=[m for m in route.model_names if m not in route.served],
    )
