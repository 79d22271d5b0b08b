"""`codyn.Client`: routes in-process, for users without a proxy (like RouteLLM's Controller).

A drop-in for ``openai.OpenAI`` where chat completions are concerned::

    client = codyn.Client("codyn.yaml")
    reply = client.chat.completions.create(model="codyn-code", messages=[...])
    reply.model  # the model the route chose (and that answered)

``model`` is a route, ``codyn/<route>:<knob>`` or a catalog model, exactly as for ``codyn
serve``; the same decision and the same fallbacks run, and answers come back as the openai
package's own ``ChatCompletion`` / ``ChatCompletionChunk`` objects. No decision log, keys or
budgets: those belong to the proxy.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from openai.types import Model
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from codyn.errors import CodynError
from codyn.serve.backends import (
    call_kwargs,
    chunk_payload,
    describe,
    may_fall_back,
    response_payload,
)
from codyn.serve.backends import litellm as _litellm
from codyn.serve.config import Config, load_config
from codyn.serve.routing import Decision, Gateway, model_ids


class AllModelsFailed(CodynError):
    """Every model of the ranking failed; ``errors`` holds each one's failure."""

    def __init__(self, errors: list[tuple[str, BaseException]]) -> None:
        self.errors = errors
        tried = "; ".join(f"{model}: {describe(exc)}" for model, exc in errors)
        super().__init__(f"every model failed: {tried}")


class Client:
    """Chat completions routed by a codyn config, called directly through LiteLLM."""

    def __init__(self, config: Config | str | Path) -> None:
        self.config = config if isinstance(config, Config) else load_config(config)
        self.gateway = Gateway(self.config)
        self.chat = _Chat(self)
        self.models = _Models(self.config)

    def decide(
        self, model: str, messages: list[dict[str, Any]], conversation: str | None = None
    ) -> Decision:
        """The ranking a request would get, without calling any model."""
        return self.gateway.decide(model, messages, conversation)

    def _complete(self, body: dict[str, Any], conversation: str | None) -> Any:
        decision = self.decide(body["model"], body["messages"], conversation)
        stream = bool(body.get("stream"))
        errors: list[tuple[str, BaseException]] = []
        for name in decision.ranking:
            try:
                response = _litellm.completion(**call_kwargs(self.config, name, body, stream))
                first = next(response) if stream else None
            except Exception as exc:
                if not may_fall_back(exc):
                    raise
                errors.append((name, exc))
                continue
            self.gateway.answered(decision, conversation, name)
            if stream:
                usage = bool((body.get("stream_options") or {}).get("include_usage"))
                return _chunks(name, first, response, usage)
            return ChatCompletion.model_validate(response_payload(response, name))
        raise AllModelsFailed(errors)


def _chunks(model: str, first: Any, rest: Iterator[Any], usage: bool) -> Iterator[Any]:
    """The backend's chunks as openai ``ChatCompletionChunk``s named after the routed model;
    the usage-only chunk only when the caller asked for it (``stream_options``)."""
    chunk = first
    while chunk is not None:
        payload, _ = chunk_payload(chunk, model, usage)
        if payload is not None:
            yield ChatCompletionChunk.model_validate(payload)
        chunk = next(rest, None)


class _Completions:
    def __init__(self, client: Client) -> None:
        self._client = client

    def create(
        self,
        *,
        model: str,
        messages: list[dict[str, Any]],
        conversation: str | None = None,
        **params: Any,
    ) -> Any:
        """Like ``openai.OpenAI().chat.completions.create``; ``conversation`` keeps a sticky
        route's conversation on one model. Streams return an iterator of chunks."""
        return self._client._complete(
            {"model": model, "messages": messages, **params}, conversation
        )


class _Chat:
    def __init__(self, client: Client) -> None:
        self.completions = _Completions(client)


class _Models:
    def __init__(self, config: Config) -> None:
        self._config = config

    def list(self) -> list[Model]:
        """Routes, then catalog models, as the proxy's ``/v1/models`` lists them."""
        return [
            Model(id=n, object="model", created=0, owned_by="codyn")
            for n in model_ids(self._config)
        ]
