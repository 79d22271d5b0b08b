"""The deployment's catalog: which models exist, how to call them, what they cost, and the
proxy's routes, API keys, decision-log database and limits, read from one YAML file.

Everything is validated when the file is read, so a typo fails at startup with one line naming
the file and the field (``codyn.yaml: routes.codyn-code.fallbacks: unknown model 'gpt5'``),
never at the first request. Relative paths (router directories, calibration data, a SQLite
file) are relative to the YAML file, so a config directory can be moved as a whole.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Literal, Self

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from codyn.errors import DataError

NonNegative = Annotated[float, Field(ge=0)]
Positive = Annotated[float, Field(gt=0)]


class _Strict(BaseModel):
    """Unknown fields are errors: a misspelt option must not be silently ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def _relative_to_config(value: Path, info: ValidationInfo) -> Path:
    base = (info.context or {}).get("base")
    return value if value.is_absolute() or base is None else Path(base) / value


class CatalogModel(_Strict):
    """One callable model: a LiteLLM model string or an OpenAI-compatible ``api_base``."""

    name: str
    litellm: str | None = None
    """LiteLLM model string, e.g. ``anthropic/claude-3-5-haiku-latest``; with ``api_base`` and
    no ``litellm``, ``openai/<name>`` (an OpenAI-compatible server serving ``name``)."""
    api_base: str | None = None
    api_key_env: str | None = None
    """Environment variable holding the backend's API key (never the key itself)."""
    price_in: NonNegative
    """USD per 1M input tokens."""
    price_out: NonNegative
    """USD per 1M output tokens."""
    context_window: Annotated[int, Field(gt=0)] | None = None
    tags: list[str] = Field(default_factory=list)
    timeout_s: Positive | None = None
    """Per-call timeout; default ``limits.timeout_s``."""
    sdk: Literal["litellm", "openai"] = "litellm"
    """``openai``: the proxy calls an ``api_base`` with the openai SDK directly, as LiteLLM does
    underneath for these, minus LiteLLM's few milliseconds of bookkeeping per call. Streams
    (and `codyn.Client`) still go through LiteLLM, which counts a stream's tokens when the
    backend does not report usage."""

    @model_validator(mode="after")
    def _has_endpoint(self) -> Self:
        if self.litellm is None and self.api_base is None:
            raise ValueError("give `litellm` (a LiteLLM model string) or `api_base`")
        if self.sdk == "openai" and (self.api_base is None or self.litellm is not None):
            raise ValueError("`sdk: openai` needs `api_base` and no `litellm` model string")
        return self

    @property
    def litellm_model(self) -> str:
        return self.litellm or f"openai/{self.name}"

    def api_key(self) -> str | None:
        """The key from ``api_key_env`` (None without one; checked to exist at load)."""
        return None if self.api_key_env is None else os.environ[self.api_key_env]

    def cost(self, tokens_in: int, tokens_out: int) -> float:
        """USD for one call from its token counts and the prices per 1M tokens."""
        return (tokens_in * self.price_in + tokens_out * self.price_out) / 1e6


class CalibrationTarget(_Strict):
    """Pick the route's knob at startup on validation data for exactly one target."""

    data: Path
    """Routing data (.parquet) scoring the router's models."""
    target_cost: NonNegative | None = None
    min_quality: float | None = None
    strong_share: Annotated[float, Field(ge=0, le=1)] | None = None

    _resolve = field_validator("data")(_relative_to_config)

    @model_validator(mode="after")
    def _one_target(self) -> Self:
        targets = ("target_cost", "min_quality", "strong_share")
        given = [t for t in targets if getattr(self, t) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of target_cost, min_quality, strong_share")
        return self


class RouteSpec(_Strict):
    """A named route: a trained router, the policy that decides on its predictions, and what
    happens when the chosen model fails."""

    router: Path
    """Directory written by ``codyn train`` (router.json, weights.npz, policy.json)."""
    policy: Literal["utility", "threshold"] = "utility"
    knob: float | None = None
    """lambda for ``utility``, alpha for ``threshold``; default: the router's calibrated knob."""
    calibrate: CalibrationTarget | None = None
    strong: str | None = None
    weak: str | None = None
    """The two models a ``threshold`` policy chooses between."""
    models: list[str] | None = None
    """Offer only these of the router's models (default: all of them)."""
    fallbacks: list[str] = Field(default_factory=list)
    """Tried, in order, after every model of the policy's ranking failed."""
    sticky: bool = False
    """Keep one conversation (header ``x-codyn-conversation``) on the model that answered it."""
    turns: Annotated[int, Field(ge=1)] = 1
    """How many of the latest user messages the router reads."""

    _resolve = field_validator("router")(_relative_to_config)

    @model_validator(mode="after")
    def _policy_fields(self) -> Self:
        if self.knob is not None and self.calibrate is not None:
            raise ValueError("give `knob` or `calibrate`, not both")
        pair = self.strong is not None and self.weak is not None
        if self.policy == "threshold" and not pair:
            raise ValueError("policy `threshold` needs `strong` and `weak`")
        if self.policy == "utility" and (self.strong or self.weak):
            raise ValueError("`strong` / `weak` belong to policy `threshold`")
        return self


class KeySpec(_Strict):
    """A client API key (read from an environment variable) and its spending budget."""

    key_env: str
    budget_usd: NonNegative | None = None


class DatabaseSpec(_Strict):
    """Where the decision log goes, and how many rows may wait while it is unreachable."""

    url: str = Field(default="sqlite:///codyn-decisions.db", validate_default=True)
    url_env: str | None = None
    """Environment variable holding the URL (for a password); overrides ``url``."""
    buffer_rows: Annotated[int, Field(gt=0)] = 10_000
    batch_rows: Annotated[int, Field(gt=0)] = 500

    @field_validator("url")
    @classmethod
    def _sqlite_relative_to_config(cls, value: str, info: ValidationInfo) -> str:
        prefix = "sqlite:///"
        rest = value[len(prefix) :]
        if not value.startswith(prefix) or rest.startswith("/") or rest in ("", ":memory:"):
            return value
        return prefix + str(_relative_to_config(Path(rest), info))

    def resolved_url(self) -> str:
        return self.url if self.url_env is None else os.environ[self.url_env]


class Limits(_Strict):
    max_body_bytes: Annotated[int, Field(gt=0)] = 1_000_000
    timeout_s: Positive = 120.0
    """Per backend call, unless the model sets its own."""


class Config(_Strict):
    """The whole YAML file."""

    version: Literal[1] = 1
    """The config format's version; a later codyn reads version 1 files."""
    models: dict[str, CatalogModel]
    routes: dict[str, RouteSpec] = Field(default_factory=dict)
    keys: dict[str, KeySpec] = Field(default_factory=dict)
    database: DatabaseSpec
    limits: Limits = Field(default_factory=Limits)
    dashboard: bool = True
    path: Path | None = Field(default=None, exclude=True)
    """The file it was read from (None when built in Python)."""

    @model_validator(mode="before")
    @classmethod
    def _names_from_keys(cls, data: Any) -> Any:
        """``models: {smollm2: {...}}``: the mapping key is the model's name. The database
        section is always validated, so that a default SQLite path is relative to the file."""
        if isinstance(data, dict):
            data = {"database": {}, **data}
        if isinstance(data, dict) and isinstance(data.get("models"), dict):
            data["models"] = {
                name: {"name": name, **spec} if isinstance(spec, dict) else spec
                for name, spec in data["models"].items()
            }
        return data

    @model_validator(mode="after")
    def _references(self) -> Self:
        for name, route in self.routes.items():
            if name in self.models:
                raise ValueError(f"routes.{name}: a route and a model are both named {name!r}")
            for field in ("fallbacks", "models"):
                for model in getattr(route, field) or []:
                    self._check_model(f"routes.{name}.{field}", model)
            for field in ("strong", "weak"):
                if getattr(route, field) is not None:
                    self._check_model(f"routes.{name}.{field}", getattr(route, field))
        env = [(f"models.{n}.api_key_env", m.api_key_env) for n, m in self.models.items()]
        env += [(f"keys.{n}.key_env", k.key_env) for n, k in self.keys.items()]
        env.append(("database.url_env", self.database.url_env))
        for where, variable in env:
            if variable is not None and variable not in os.environ:
                raise ValueError(f"{where}: environment variable {variable} is not set")
        return self

    def _check_model(self, where: str, model: str) -> None:
        if model not in self.models:
            raise ValueError(
                f"{where}: unknown model {model!r}; the catalog has {', '.join(self.models)}"
            )

    def timeout_s(self, model: str) -> float:
        """Seconds one call to ``model`` may take."""
        return self.models[model].timeout_s or self.limits.timeout_s

    def error(self, message: str) -> DataError:
        """A `DataError` naming this config's file, for problems found after reading it."""
        return DataError(message, path=self.path)


def parse_config(data: Any, *, path: str | Path | None = None) -> Config:
    """Validate a parsed YAML document; errors name ``path`` and the field, on one line."""
    base = None if path is None else Path(path).resolve().parent
    try:
        config = Config.model_validate(data, context={"base": base})
    except ValidationError as exc:
        raise DataError(_one_line(exc), path=path) from None
    return config.model_copy(update={"path": None if path is None else Path(path)})


def load_config(path: str | Path) -> Config:
    """Read and validate a codyn YAML config."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise DataError(f"cannot read the config ({exc.strerror})", path=path) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc)
        row = None if mark is None else mark.line + 1
        raise DataError(f"not valid YAML: {problem}", path=path, row=row) from None
    if not isinstance(data, dict):
        raise DataError("expected a mapping with `models:` at the top", path=path)
    return parse_config(data, path=path)


def _one_line(exc: ValidationError) -> str:
    """pydantic's multi-line report as ``field.path: message (got value)`` for the first error."""
    errors = exc.errors(include_url=False)
    first = errors[0]
    where = ".".join(str(part) for part in first["loc"] if part != "__root__")
    message = first["msg"].removeprefix("Value error, ")
    if first["type"] not in ("missing", "value_error") and "input" in first:
        shown = repr(first["input"])
        message += f" (got {shown if len(shown) <= 60 else shown[:57] + '...'})"
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{where + ': ' if where else ''}{message}{more}"
