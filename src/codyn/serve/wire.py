"""Chat completions over OpenAI's HTTP protocol, with no SDK in between.

For an OpenAI-compatible backend (an ``api_base``) the proxy has nothing to translate: the
request it validated is the body to send, and the backend's JSON is the answer to relay. An
SDK only adds work per call: against a loopback server that answers at once, p50 per call
here aiohttp with ``json`` 0.43 ms, an httpx transport 1.32 ms, the openai SDK 4.31 ms,
LiteLLM 11.15 ms (its logging object, cost calculation and response conversion;
``scripts/backend_call_overhead.py``; `codyn bench serve` has the end-to-end figures).
Failures are raised as the openai package's exceptions (LiteLLM's subclass them), so that
`codyn.serve.backends` classifies every path's failures alike. The caller's `BackendTimer` is
stamped from sending the request to its last byte.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

import aiohttp
import httpx
import openai

if TYPE_CHECKING:
    from codyn.catalog import CatalogModel
    from codyn.serve.backends import BackendTimer

CONTEXT_HINTS = ("context window", "context length", "context_length", "maximum context")
"""What an error's message says when the prompt does not fit the model's context window."""
STATUS_ERRORS: dict[int, type[openai.APIStatusError]] = {
    400: openai.BadRequestError,
    401: openai.AuthenticationError,
    403: openai.PermissionDeniedError,
    404: openai.NotFoundError,
    409: openai.ConflictError,
    422: openai.UnprocessableEntityError,
    429: openai.RateLimitError,
}
TRANSPORT_ERRORS = (aiohttp.ClientError, asyncio.TimeoutError, OSError)


def status_error(status: int, text: str, request: httpx.Request, model: str) -> openai.APIError:
    """The openai package's exception for an HTTP error answer (a 400 about the context window
    as LiteLLM's `ContextWindowExceededError`, which subclasses it)."""
    try:
        body: Any = json.loads(text)
    except ValueError:
        body = None
    error = body.get("error") if isinstance(body, dict) else None
    detail = error.get("message") if isinstance(error, dict) else None
    message = f"Error code: {status} - {detail or text[:2000]}"
    response = httpx.Response(status, text=text, request=request)
    if status == 400 and any(h in message.lower() for h in CONTEXT_HINTS):
        import litellm

        return litellm.ContextWindowExceededError(message, model, "openai", response, body=body)
    kind = STATUS_ERRORS.get(status)
    if kind is None:
        kind = openai.InternalServerError if status >= 500 else openai.APIStatusError
    return kind(message, response=response, body=body)


def transport_error(exc: BaseException, request: httpx.Request) -> openai.APIError:
    if isinstance(exc, asyncio.TimeoutError):
        return openai.APITimeoutError(request=request)
    return openai.APIConnectionError(message=f"Connection error: {exc!r}", request=request)


class OpenAIWire:
    """One catalog model's ``/chat/completions`` at its ``api_base``, on the proxy's pooled
    aiohttp session (``session``: made in the event loop on first use)."""

    def __init__(
        self,
        model: CatalogModel,
        timeout_s: float,
        session: Callable[[], aiohttp.ClientSession],
    ) -> None:
        assert model.api_base is not None
        self.name, self.litellm_model, self.session = model.name, model.litellm_model, session
        self.url = model.api_base.rstrip("/") + "/chat/completions"
        self.headers = {"content-type": "application/json", "accept": "application/json"}
        api_key = model.api_key()
        if api_key:
            self.headers["authorization"] = f"Bearer {api_key}"
        self.timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=timeout_s, sock_read=timeout_s
        )
        """Connecting and each read, as httpx's timeout bounds them, not a whole stream."""
        self.request = httpx.Request("POST", self.url)
        """What the openai package's exceptions name as the failed request."""

    async def _send(self, body: dict[str, Any], timer: BackendTimer) -> aiohttp.ClientResponse:
        """The response, its body still to read; an error answer raised, read and released."""
        content = json.dumps({**body, "model": self.name}, separators=(",", ":")).encode()
        timer.start = time.perf_counter()
        try:
            response = await self.session().post(
                self.url, data=content, headers=self.headers, timeout=self.timeout
            )
            if response.status >= 400:
                text = await response.text(errors="replace")
                response.release()
                timer.end = time.perf_counter()
                raise status_error(response.status, text, self.request, self.name)
        except TRANSPORT_ERRORS as exc:
            timer.end = time.perf_counter()
            raise transport_error(exc, self.request) from exc
        return response

    async def complete(self, body: dict[str, Any], timer: BackendTimer) -> dict[str, Any]:
        """A non-streamed answer as the backend's JSON."""
        plain = {k: v for k, v in body.items() if k not in ("stream", "stream_options")}
        response = await self._send(plain, timer)
        try:
            content = await response.read()
        except TRANSPORT_ERRORS as exc:
            raise transport_error(exc, self.request) from exc
        finally:
            timer.end = time.perf_counter()
            response.release()
        try:
            return json.loads(content)
        except ValueError as exc:
            raise openai.APIConnectionError(
                message=f"the backend's answer is not JSON: {exc}", request=self.request
            ) from exc

    async def stream(self, body: dict[str, Any], timer: BackendTimer) -> WireStream:
        """A streamed answer, its usage asked for (``stream_options.include_usage``)."""
        options = {**(body.get("stream_options") or {}), "include_usage": True}
        response = await self._send({**body, "stream": True, "stream_options": options}, timer)
        messages = body.get("messages") or []
        return WireStream(response, self.request, timer, messages, self.litellm_model)


class WireStream:
    """A backend's server-sent events as chunk dicts. A backend that reports no usage (llama.cpp's
    server ignores ``stream_options``) gets a last chunk with LiteLLM's token counts of the
    messages and the streamed text, and ``usage_reported`` False, as LiteLLM's streams do."""

    def __init__(
        self,
        response: aiohttp.ClientResponse,
        request: httpx.Request,
        timer: BackendTimer,
        messages: list[dict[str, Any]],
        litellm_model: str,
    ) -> None:
        self.response, self.request, self.timer = response, request, timer
        self.messages, self.litellm_model = messages, litellm_model
        self.usage_reported = False
        self._text: list[str] = []
        self._last: dict[str, Any] | None = None
        self._done = False

    def __aiter__(self) -> AsyncIterator[dict[str, Any]]:
        return self

    async def __anext__(self) -> dict[str, Any]:
        if self._done:
            raise StopAsyncIteration
        try:
            async for line in self.response.content:
                self.timer.end = time.perf_counter()
                if not line.startswith(b"data:"):
                    continue
                data = line[5:].strip()
                if data == b"[DONE]":
                    break
                chunk = json.loads(data)
                if "error" in chunk:
                    message = f"backend error: {chunk['error']}"
                    raise openai.APIError(message, self.request, body=chunk)
                self._note(chunk)
                return chunk
        except TRANSPORT_ERRORS as exc:
            raise transport_error(exc, self.request) from exc
        self._done = True
        if self.usage_reported or self._last is None:
            raise StopAsyncIteration
        return self._estimated_usage_chunk(self._last)

    def _note(self, chunk: dict[str, Any]) -> None:
        self._last = chunk
        if chunk.get("usage"):
            self.usage_reported = True
        for choice in chunk.get("choices") or ():
            content = (choice.get("delta") or {}).get("content")
            if content:
                self._text.append(content)

    def _estimated_usage_chunk(self, last: dict[str, Any]) -> dict[str, Any]:
        import litellm

        prompt = litellm.token_counter(model=self.litellm_model, messages=self.messages)
        completion = litellm.token_counter(model=self.litellm_model, text="".join(self._text))
        usage = {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        }
        return {
            "id": last.get("id"),
            "object": "chat.completion.chunk",
            "created": last.get("created", int(time.time())),
            "model": last.get("model"),
            "choices": [],
            "usage": usage,
        }

    async def aclose(self) -> None:
        """Give the connection back once the stream was read to its end, else drop it."""
        if self._done:
            self.response.release()
        else:
            self.response.close()
