"""Calling catalog models, and telling which failures the next model may fix.

An OpenAI-compatible backend (``api_base``, no LiteLLM model string) is called over OpenAI's
HTTP protocol directly (`codyn.serve.wire`, one pooled aiohttp session); a model with a
LiteLLM model string, or ``sdk: litellm``, through LiteLLM, on a pooled httpx client per
``api_base``. Both time the exchange with the backend, from sending the request to its last
byte: the proxy's own overhead is end-to-end time minus that. Backends without an ``api_base``
are timed around the LiteLLM call. Both paths raise the openai package's exceptions (LiteLLM's
subclass them), so one classification covers them: a failure the next model may fix
(transport, timeout, outage, context overflow) falls back; a backend saying the request itself
is wrong does not.
"""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import aiohttp
import httpx
import openai
from openai import AsyncOpenAI

from codyn.catalog import CatalogModel
from codyn.serve.config import Config
from codyn.serve.wire import CONTEXT_HINTS, OpenAIWire, WireStream

# LiteLLM fetches a price list from the internet at import unless told not to; a proxy must
# start offline, and prices come from the catalog anyway.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
import litellm

litellm.suppress_debug_info = True
litellm.telemetry = False

CLIENT_FAULTS = (openai.BadRequestError, openai.UnprocessableEntityError)
REQUEST_FAULT_HINTS = (
    "validation error",
    "can only concatenate",
    "unsupported operand",
    "invalid request",
    "invalid_request_error",
)
"""What a 500's message says when the request, not the server, is at fault: llama.cpp's
server answers a request that fails its pydantic model, or that its chat template cannot
format, with 500 and the exception's text."""
USAGE_FIELDS = {
    "prompt_tokens": (),
    "completion_tokens": (),
    "total_tokens": (),
    "prompt_tokens_details": ("cached_tokens", "audio_tokens"),
    "completion_tokens_details": (
        "reasoning_tokens", "audio_tokens", "accepted_prediction_tokens",
        "rejected_prediction_tokens",
    ),
}  # fmt: skip
"""OpenAI's usage object: its fields, and those of its two details objects."""


@dataclass
class BackendTimer:
    """Start and end of one exchange with a backend (filled by the transport)."""

    start: float | None = None
    end: float | None = None
    around_call: bool = False
    """No timed transport: the proxy stamps the LiteLLM call and each chunk instead."""

    def touch(self) -> None:
        """A chunk arrived (only counts when no transport times the exchange)."""
        if self.around_call:
            self.end = time.perf_counter()

    @property
    def ms(self) -> float | None:
        if self.start is None or self.end is None:
            return None
        return (self.end - self.start) * 1000.0


_TIMER: ContextVar[BackendTimer | None] = ContextVar("codyn_backend_timer", default=None)


class _TimedStream(httpx.AsyncByteStream):
    def __init__(self, inner: httpx.AsyncByteStream, timer: BackendTimer) -> None:
        self.inner, self.timer = inner, timer

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self.inner:
            self.timer.end = time.perf_counter()
            yield chunk

    async def aclose(self) -> None:
        await self.inner.aclose()


class _TimedTransport(httpx.AsyncHTTPTransport):
    """Stamps the current request's `BackendTimer`: request sent, then every body chunk."""

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        timer = _TIMER.get()
        if timer is None:
            return await super().handle_async_request(request)
        timer.start = time.perf_counter()
        response = await super().handle_async_request(request)
        timer.end = time.perf_counter()
        assert isinstance(response.stream, httpx.AsyncByteStream)
        response.stream = _TimedStream(response.stream, timer)
        return response


class Backends:
    """Each catalog model's way in: spoken to directly (`OpenAIWire`), or through LiteLLM with
    a pooled, timed HTTP client where it has an ``api_base``."""

    def __init__(self, config: Config) -> None:
        self.config = config
        register_prices(config)
        pooled = httpx.Limits(max_connections=256, max_keepalive_connections=64)
        self._wire: dict[str, OpenAIWire] = {}
        self._clients: dict[str, AsyncOpenAI] = {}
        for name, model in config.models.items():
            if model.api_base is None or not model.litellm_model.startswith("openai/"):
                continue
            if model.calls_directly:
                self._wire[name] = OpenAIWire(model, config.timeout_s(name), self._pool)
            else:
                self._clients[name] = AsyncOpenAI(
                    base_url=model.api_base,
                    api_key=model.api_key() or "no-key",
                    max_retries=0,
                    http_client=httpx.AsyncClient(transport=_TimedTransport(limits=pooled)),
                )
        self._session: aiohttp.ClientSession | None = None
        """The direct backends' connection pool, made in the event loop on first use."""
        for sdk_client in self._clients.values():
            _ = sdk_client.chat  # the SDK imports its resources on first use: now, not in a request

    def kwargs(self, name: str, body: dict[str, Any], stream: bool) -> dict[str, Any]:
        """`call_kwargs` with the model's pooled, timed client where it has one."""
        kwargs = call_kwargs(self.config, name, body, stream)
        if name in self._clients:
            kwargs["client"] = self._clients[name]
            kwargs.pop("api_base", None)
            kwargs.pop("api_key", None)
        return kwargs

    async def acompletion(
        self, name: str, body: dict[str, Any], stream: bool, timer: BackendTimer
    ) -> Any:
        """One call (no retries: the proxy's fallback is the retry): a response dict or
        `WireStream` from a direct backend, LiteLLM's objects otherwise."""
        token = _TIMER.set(timer)
        start = time.perf_counter()
        try:
            wire = self._wire.get(name)
            if wire is not None:
                return await (wire.stream if stream else wire.complete)(body, timer)
            return await litellm.acompletion(**self.kwargs(name, body, stream))
        finally:
            _TIMER.reset(token)
            if timer.start is None:
                timer.start, timer.end, timer.around_call = start, time.perf_counter(), True

    def _pool(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = aiohttp.TCPConnector(limit=256)
            self._session = aiohttp.ClientSession(connector=connector)
        return self._session

    async def aclose(self) -> None:
        for sdk_client in self._clients.values():
            await sdk_client.close()
        if self._session is not None:
            await self._session.close()


def register_prices(config: Config) -> None:
    """Tell LiteLLM the catalog's prices and windows. Besides keeping its own cost figures
    consistent with ours, a model it knows is found at once: for one it does not know, its cost
    lookups searched the whole price map on every call, milliseconds per request."""
    entries: dict[str, dict[str, Any]] = {}
    for model in config.models.values():
        entry: dict[str, Any] = {
            "input_cost_per_token": model.price_in / 1e6,
            "output_cost_per_token": model.price_out / 1e6,
            "cache_creation_input_token_cost": 0.0,
            "cache_read_input_token_cost": 0.0,
            "litellm_provider": model.litellm_model.partition("/")[0],
            "mode": "chat",
        }
        if model.context_window is not None:
            entry["max_input_tokens"] = model.context_window
        entries[model.litellm_model] = entry
    litellm.register_model(entries)


def call_kwargs(config: Config, name: str, body: dict[str, Any], stream: bool) -> dict[str, Any]:
    """LiteLLM ``completion`` arguments for the request ``body`` sent to catalog model ``name``.

    Streams ask the backend for usage, so that tokens and cost are known; the proxy hides that
    last chunk from clients that did not ask for it. No retries: falling back is the retry.
    """
    model: CatalogModel = config.models[name]
    kwargs = {key: value for key, value in body.items() if key != "model"}
    kwargs.update(model.completion_kwargs(config.timeout_s(name)), stream=stream)
    if stream:
        kwargs["stream_options"] = {**(body.get("stream_options") or {}), "include_usage": True}
    return kwargs


def openai_usage(usage: dict[str, Any]) -> dict[str, Any]:
    """A usage object with only OpenAI's fields (LiteLLM adds ``cost``, ``text_tokens``,
    ...; the proxy reports cost in a header and the log instead)."""
    shaped: dict[str, Any] = {}
    for name, details in USAGE_FIELDS.items():
        value = usage.get(name)
        if value is None:
            continue
        if details:
            if isinstance(value, dict):
                kept = {k: value[k] for k in details if value.get(k) is not None}
                if kept:
                    shaped[name] = kept
        else:
            shaped[name] = value
    return shaped


def _openai_shape(payload: dict[str, Any], model: str) -> dict[str, Any]:
    """LiteLLM's dump in OpenAI's shape: its ``provider_specific_fields`` dropped, usage with
    OpenAI's fields only, and the routed catalog model as ``model``."""
    payload.pop("provider_specific_fields", None)
    if isinstance(payload.get("usage"), dict):
        payload["usage"] = openai_usage(payload["usage"])
    for choice in payload.get("choices", []):
        choice.pop("provider_specific_fields", None)
        for part in ("message", "delta"):
            if isinstance(choice.get(part), dict):
                choice[part].pop("provider_specific_fields", None)
    payload["model"] = model
    return payload


def _as_dict(response: Any) -> dict[str, Any]:
    """A backend's JSON as it came (direct), or LiteLLM's object dumped."""
    return response if isinstance(response, dict) else response.model_dump(exclude_none=True)


def response_payload(response: Any, model: str) -> dict[str, Any]:
    """A non-streamed answer as the OpenAI JSON body."""
    return _openai_shape(_as_dict(response), model)


def chunk_payload(
    chunk: Any, model: str, include_usage: bool
) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """A streamed chunk as OpenAI sends it (None: not for this client), and its usage.

    LiteLLM reports usage on a chunk with an empty delta; OpenAI sends it, only to clients
    that set ``stream_options.include_usage``, on a chunk with no choices.
    """
    payload = _openai_shape(_as_dict(chunk), model)
    usage = payload.pop("usage", None)
    if usage is None:
        return payload, None
    empty = all(not c.get("delta") and not c.get("finish_reason") for c in payload["choices"])
    if include_usage:
        payload["usage"] = usage
        if empty:
            payload["choices"] = []
        return payload, usage
    return (None if empty else payload), usage


def is_context_overflow(exc: BaseException) -> bool:
    if isinstance(exc, litellm.ContextWindowExceededError):
        return True
    return isinstance(exc, CLIENT_FAULTS) and any(h in str(exc).lower() for h in CONTEXT_HINTS)


def is_request_fault(exc: BaseException) -> bool:
    """The backend says the request itself is wrong: HTTP 400/422 other than a context
    overflow, or a 500 whose message says so (`REQUEST_FAULT_HINTS`)."""
    if isinstance(exc, CLIENT_FAULTS):
        return not is_context_overflow(exc)
    if isinstance(exc, openai.InternalServerError):
        return any(hint in str(exc).lower() for hint in REQUEST_FAULT_HINTS)
    return False


def may_fall_back(exc: BaseException) -> bool:
    """Whether another model may succeed: after a transport error, a timeout, an outage or a
    context overflow (a larger window may take it), not when the request itself is wrong."""
    return not is_request_fault(exc)


def error_status(exc: BaseException) -> int:
    """The HTTP status the proxy answers with when ``exc`` was the last failure."""
    if isinstance(exc, openai.APITimeoutError):
        return 504
    if isinstance(exc, CLIENT_FAULTS):
        return int(getattr(exc, "status_code", 400))
    if is_request_fault(exc):
        return 400
    return 502


def stream_usage_reported(response: Any) -> bool:
    """Whether a finished stream's usage came from the backend: a `WireStream` and LiteLLM
    both count tokens themselves when no chunk carried usage (LiteLLM keeps the chunks)."""
    if isinstance(response, WireStream):
        return response.usage_reported
    return any(getattr(chunk, "usage", None) for chunk in getattr(response, "chunks", ()))


def describe(exc: BaseException) -> str:
    """One line for the log: the exception's type and the first line of its message."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:300] if text else ''}"
