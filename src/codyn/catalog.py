"""The deployment's catalog: which models exist, how to call them and what they cost.

The ``models:`` section of a codyn YAML file. The proxy's routes, keys, database and limits
extend it in `codyn.serve.config`. Everything is validated when the file is read, so a typo
fails at startup with one line naming the file and the field, never at the first request.
Relative paths are relative to the YAML file, so a config directory can be moved as a whole.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Literal, Self, TypeVar

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    model_validator,
)

from codyn.errors import DataError

NonNegative = Annotated[float, Field(ge=0)]
Positive = Annotated[float, Field(gt=0)]


class _Strict(BaseModel):
    """Unknown fields are errors: a misspelt option must not be silently ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def relative_to_config(value: Path, info: ValidationInfo) -> Path:
    """A field validator: a relative path read from a config file is relative to that file."""
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
    max_rpm: Annotated[int, Field(gt=0)] | None = None
    """Calls per minute `codyn collect` sends to this model at most (spaced evenly)."""
    max_concurrency: Annotated[int, Field(gt=0)] | None = None
    """Calls `codyn collect` keeps in flight to this model at most (below ``--concurrency``)."""
    sdk: Literal["auto", "litellm", "openai"] = "auto"
    """How the proxy calls the model: ``openai`` speaks OpenAI's HTTP protocol to ``api_base``
    directly (`codyn.serve.wire`: no SDK, milliseconds less per call), ``litellm`` goes
    through LiteLLM; ``auto``, ``openai`` for an ``api_base`` without a ``litellm`` model
    string. `codyn collect` and `codyn.Client` call through LiteLLM either way."""

    @model_validator(mode="after")
    def _has_endpoint(self) -> Self:
        if self.litellm is None and self.api_base is None:
            raise ValueError("give `litellm` (a LiteLLM model string) or `api_base`")
        if self.sdk == "openai" and (self.api_base is None or self.litellm is not None):
            raise ValueError("`sdk: openai` needs `api_base` and no `litellm` model string")
        return self

    @property
    def calls_directly(self) -> bool:
        """The proxy speaks OpenAI's protocol to ``api_base`` itself (``sdk``)."""
        return self.sdk != "litellm" and self.api_base is not None and self.litellm is None

    @property
    def litellm_model(self) -> str:
        return self.litellm or f"openai/{self.name}"

    def api_key(self) -> str | None:
        """The key from ``api_key_env`` (None without one; checked to exist at load)."""
        return None if self.api_key_env is None else os.environ[self.api_key_env]

    def completion_kwargs(self, default_timeout_s: float) -> dict[str, Any]:
        """The `litellm.completion` arguments that reach this model (model string, endpoint,
        key, timeout: ``timeout_s``, else ``default_timeout_s``), for the proxy and collection
        alike. No LiteLLM retries: the proxy falls back, collection retries itself."""
        kwargs: dict[str, Any] = {
            "model": self.litellm_model,
            "timeout": self.timeout_s or default_timeout_s,
            "num_retries": 0,
        }
        if self.api_base is not None:
            kwargs["api_base"] = self.api_base
            kwargs["api_key"] = self.api_key() or "no-key"
        elif self.api_key_env is not None:
            kwargs["api_key"] = self.api_key()
        return kwargs

    def cost(self, tokens_in: int, tokens_out: int) -> float:
        """USD for one call from its token counts and the prices per 1M tokens."""
        return (tokens_in * self.price_in + tokens_out * self.price_out) / 1e6


class Catalog(_Strict):
    """The models a deployment can use, keyed by name (``models: {smollm2: {...}}``)."""

    models: dict[str, CatalogModel]
    path: Path | None = Field(default=None, exclude=True)
    """The file it was read from (None when built in Python)."""

    @model_validator(mode="before")
    @classmethod
    def _names_from_keys(cls, data: Any) -> Any:
        """``models: {smollm2: {...}}``: the mapping key is the model's name."""
        if isinstance(data, dict) and isinstance(data.get("models"), dict):
            data = dict(data)
            data["models"] = {
                name: {"name": name, **spec} if isinstance(spec, dict) else spec
                for name, spec in data["models"].items()
            }
        return data

    @model_validator(mode="after")
    def _environment(self) -> Self:
        for name, model in self.models.items():
            self.check_env(f"models.{name}.api_key_env", model.api_key_env)
        return self

    @staticmethod
    def check_env(where: str, variable: str | None) -> None:
        """A field naming an environment variable needs it set (checked when the file is read)."""
        if variable is not None and variable not in os.environ:
            raise ValueError(f"{where}: environment variable {variable} is not set")

    def check_model(self, where: str, model: str) -> None:
        if model not in self.models:
            raise ValueError(
                f"{where}: unknown model {model!r}; the catalog has {', '.join(self.models)}"
            )

    def error(self, message: str) -> DataError:
        """A `DataError` naming this file, for problems found after reading it."""
        return DataError(message, path=self.path)


C = TypeVar("C", bound=Catalog)


def parse_yaml_model(kind: type[C], data: Any, *, path: str | Path | None = None) -> C:
    """Validate a parsed YAML document as ``kind``; errors name ``path`` and the field, on one
    line; relative paths resolve against the file's folder."""
    base = None if path is None else Path(path).resolve().parent
    try:
        parsed = kind.model_validate(data, context={"base": base})
    except ValidationError as exc:
        raise DataError(one_line(exc), path=path) from None
    return parsed.model_copy(update={"path": None if path is None else Path(path)})


def read_yaml(path: str | Path) -> dict[str, Any]:
    """A YAML file's top-level mapping; unreadable or invalid YAML is one line naming the line."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise DataError(f"cannot read the config ({reason})", path=path) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc)
        row = None if mark is None else mark.line + 1
        raise DataError(f"not valid YAML: {problem}", path=path, row=row) from None
    if not isinstance(data, dict):
        raise DataError("expected a mapping with `models:` at the top", path=path)
    return data


def load_catalog(path: str | Path) -> Catalog:
    """The ``models:`` of a codyn YAML file (other sections are the proxy's, and ignored here)."""
    data = read_yaml(path)
    return parse_yaml_model(Catalog, {"models": data.get("models")}, path=path)


def one_line(exc: ValidationError) -> str:
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
