"""The proxy's configuration: routes, API keys, the decision-log database and limits, on top
of the catalog's models, read from one YAML file.

Everything is validated when the file is read, so a typo fails at startup with one line naming
the file and the field (``codyn.yaml: routes.codyn-code.fallbacks: unknown model 'gpt5'``),
never at the first request. Relative paths (router directories, calibration data, a SQLite
file) are relative to the YAML file, so a config directory can be moved as a whole.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Literal, Self

from pydantic import Field, ValidationInfo, field_validator, model_validator

from codyn.catalog import (
    Catalog,
    NonNegative,
    Positive,
    _Strict,
    parse_yaml_model,
    read_yaml,
    relative_to_config,
)
from codyn.errors import CodynError
from codyn.policy.base import policy_param_names


class CalibrationTarget(_Strict):
    """Pick the route's knob at startup on validation data for exactly one target."""

    data: Path
    """Routing data (.parquet) scoring the router's models."""
    target_cost: NonNegative | None = None
    min_quality: float | None = None
    strong_share: Annotated[float, Field(ge=0, le=1)] | None = None

    _resolve = field_validator("data")(relative_to_config)

    @model_validator(mode="after")
    def _one_target(self) -> Self:
        targets = ("target_cost", "min_quality", "strong_share")
        given = [t for t in targets if getattr(self, t) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of target_cost, min_quality, strong_share")
        return self


class VerifySpec(_Strict):
    """Run each answer's code against the request's own tests before returning it, and
    escalate along the policy's ranking when it fails (`codyn.serve.verify`)."""

    tests: Literal["auto"] = "auto"
    """``auto``: the tests the request carries (``codyn.tests`` in the body, else assert lines
    and doctest examples in the latest user message); a request without any is routed as
    without verification."""
    max_attempts: Annotated[int, Field(ge=1)] = 3
    """Answers generated at most, over every model (and a cascade policy's retries)."""
    timeout_s: Positive = 5.0
    """CPU and wall seconds per test in the sandbox."""
    unsafe_local: bool = False
    """Run the code without bubblewrap where it is unavailable (never on a shared machine)."""


class RouteSpec(_Strict):
    """A named route: a trained router, the policy that decides on its predictions, and what
    happens when the chosen model fails."""

    router: Path
    """Directory written by ``codyn train`` (router.json, weights.npz, policy.json)."""
    policy: str | dict[str, Any] | None = None
    """A policy name (``utility``, ``threshold``, ``affordability``, ``tiers``, ``budget``,
    ``fixed``, ``cascade``) or ``{name: ..., <parameter>: ...}``; default: the router's saved
    policy."""
    knob: float | None = None
    """The policy's knob (lambda for ``utility``, alpha for ``threshold``, ...); default: the
    router's saved (calibrated) knob when the route uses the saved policy, else the policy's
    default."""
    calibrate: CalibrationTarget | None = None
    strong: str | None = None
    weak: str | None = None
    """The two models a ``threshold`` policy chooses between (default: the priciest and the
    cheapest offered)."""
    models: list[str] | dict[str, str] | None = None
    """Which of the router's models the route offers, and as which catalog model: a list of
    names the router and the catalog share, or ``{router model: catalog model}``, so that a
    router trained on other models (RouterBench's ``gpt-4-1106-preview``) routes between this
    deployment's (``qwen-coder``). Router models left out are not offered. Default: every
    router model, each under its own name."""
    costs: Literal["catalog", "train"] | None = None
    """What the policy weighs against quality: ``catalog`` (each catalog model's ``price_in +
    price_out``, USD per 1M tokens) or ``train`` (the router's saved mean train cost per call).
    Default: ``catalog`` when ``models`` serves a router model under another name and the
    offered catalog models are not all free, else ``train``
    (`codyn.serve.routing.model_costs`)."""
    fallbacks: list[str] = Field(default_factory=list)
    """Tried, in order, after every model of the policy's ranking failed."""
    sticky: bool = False
    """Keep one conversation (header ``x-codyn-conversation``) on the model that answered it."""
    turns: Annotated[int, Field(ge=1)] = 1
    """How many of the latest user messages the router reads."""
    verify: VerifySpec | None = None
    """Verify answers against the request's tests, escalating on failure (None: never)."""

    _resolve = field_validator("router")(relative_to_config)

    @field_validator("models", mode="before")
    @classmethod
    def _models_shape(cls, value: Any) -> Any:
        if isinstance(value, list):
            shaped = all(isinstance(v, str) for v in value)
        elif isinstance(value, dict):
            shaped = all(isinstance(k, str) and isinstance(v, str) for k, v in value.items())
        else:
            shaped = value is None
        if not shaped:
            raise ValueError(
                "give a list of model names or a mapping {router model: catalog model}"
            )
        return value

    @field_validator("policy")
    @classmethod
    def _known_policy(cls, value: str | dict[str, Any] | None) -> str | dict[str, Any] | None:
        if value is not None:
            name = value if isinstance(value, str) else value.get("name")
            try:
                policy_param_names(str(name))
            except CodynError as exc:
                raise ValueError(str(exc)) from None
        return value

    @model_validator(mode="after")
    def _policy_fields(self) -> Self:
        if self.knob is not None and self.calibrate is not None:
            raise ValueError("give `knob` or `calibrate`, not both")
        if not (self.strong or self.weak):
            return self
        if self.policy is None:
            raise ValueError("`strong` / `weak` need `policy: threshold`")
        name = self.policy if isinstance(self.policy, str) else self.policy.get("name")
        if "strong" not in policy_param_names(str(name)):
            raise ValueError(f"`strong` / `weak` do not belong to policy {name!r}")
        return self

    def model_map(self) -> dict[str, str] | None:
        """``{router model: catalog model}`` for the offered models (None: every router model
        under its own name)."""
        if self.models is None:
            return None
        return dict(self.models) if isinstance(self.models, dict) else {m: m for m in self.models}

    def policy_spec(self) -> dict[str, Any] | None:
        """The route's policy config with `strong` / `weak` folded in (None: the saved one)."""
        if self.policy is None:
            return None
        spec = {"name": self.policy} if isinstance(self.policy, str) else dict(self.policy)
        for field in ("strong", "weak"):
            if getattr(self, field) is not None:
                spec[field] = getattr(self, field)
        return spec


class KeySpec(_Strict):
    """A client API key (read from an environment variable), its spending budget and role."""

    key_env: str
    budget_usd: NonNegative | None = None
    role: Literal["user", "admin"] = "user"
    """``admin`` keys also open ``/metrics`` and the dashboard (which show every key's spend)."""


class DatabaseSpec(_Strict):
    """Where the decision log goes, and how many rows may wait while it is unreachable."""

    url: str = Field(default="sqlite:///codyn-decisions.db", validate_default=True)
    url_env: str | None = None
    """Environment variable holding the URL (for a password); overrides ``url``."""
    buffer_rows: Annotated[int, Field(gt=0)] = 10_000
    batch_rows: Annotated[int, Field(gt=0)] = 500

    @field_validator("url")
    @classmethod
    def _sqliterelative_to_config(cls, value: str, info: ValidationInfo) -> str:
        prefix = "sqlite:///"
        rest = value[len(prefix) :]
        if not value.startswith(prefix) or rest.startswith("/") or rest in ("", ":memory:"):
            return value
        return prefix + str(relative_to_config(Path(rest), info))

    def resolved_url(self) -> str:
        return self.url if self.url_env is None else os.environ[self.url_env]


class Limits(_Strict):
    max_body_bytes: Annotated[int, Field(gt=0)] = 1_000_000
    timeout_s: Positive = 120.0
    """Per backend call, unless the model sets its own."""
    decision_threads: Annotated[int, Field(gt=0)] = 1
    """Threads of the BLAS and OpenMP pools a router's decision runs on. One prompt is a
    small product: a second thread gains it little, and its spinning after each call takes
    the CPU the event loop needs (on 2 cores: 0.9 ms more per request beyond a kNN decision,
    and the decision itself 0.4 ms slower)."""


class Config(Catalog):
    """The whole YAML file: the catalog's models plus the proxy's routes, keys, database and
    limits."""

    version: Literal[1] = 1
    """The config format's version; a later codyn reads version 1 files."""
    routes: dict[str, RouteSpec] = Field(default_factory=dict)
    keys: dict[str, KeySpec] = Field(default_factory=dict)
    database: DatabaseSpec
    limits: Limits = Field(default_factory=Limits)
    dashboard: bool = True
    metrics_public: bool = False
    """With keys configured, ``/metrics`` needs an admin key unless this is true (a scraper on
    a private network); the dashboard always does."""

    @model_validator(mode="before")
    @classmethod
    def _default_database(cls, data: Any) -> Any:
        """The database section is always validated, so that a default SQLite path is relative
        to the file."""
        return {"database": {}, **data} if isinstance(data, dict) else data

    @model_validator(mode="after")
    def _references(self) -> Self:
        for name, route in self.routes.items():
            if name in self.models:
                raise ValueError(f"routes.{name}: a route and a model are both named {name!r}")
            self._check_model_map(f"routes.{name}.models", route.models)
            for model in route.fallbacks:
                self.check_model(f"routes.{name}.fallbacks", model)
            for field in ("strong", "weak"):
                if getattr(route, field) is not None:
                    self.check_model(f"routes.{name}.{field}", getattr(route, field))
        for name, key in self.keys.items():
            self.check_env(f"keys.{name}.key_env", key.key_env)
        self.check_env("database.url_env", self.database.url_env)
        return self

    def _check_model_map(self, where: str, models: list[str] | dict[str, str] | None) -> None:
        """Catalog names known, none offered twice, at least one (router names are checked when
        the router loads)."""
        if models is None:
            return
        pairs = models.items() if isinstance(models, dict) else [(m, m) for m in models]
        if not pairs:
            raise ValueError(f"{where}: empty; offer at least one of the router's models")
        mapped_from: dict[str, str] = {}
        for router_model, catalog_model in pairs:
            field = f"{where}.{router_model}" if isinstance(models, dict) else where
            self.check_model(field, catalog_model)
            if catalog_model in mapped_from:
                twice = (
                    f"catalog model {catalog_model!r} is mapped from both "
                    f"{mapped_from[catalog_model]!r} and {router_model!r}"
                    if isinstance(models, dict)
                    else f"{catalog_model!r} is listed twice"
                )
                raise ValueError(f"{where}: {twice}")
            mapped_from[catalog_model] = router_model

    def timeout_s(self, model: str) -> float:
        """Seconds one call to ``model`` may take."""
        return self.models[model].timeout_s or self.limits.timeout_s


def parse_config(data: Any, *, path: str | Path | None = None) -> Config:
    """Validate a parsed YAML document; errors name ``path`` and the field, on one line."""
    return parse_yaml_model(Config, data, path=path)


def load_config(path: str | Path) -> Config:
    """Read and validate a codyn YAML config."""
    return parse_config(read_yaml(path), path=path)
