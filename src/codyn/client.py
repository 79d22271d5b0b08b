"""`codyn.Client`: routes in-process, for users without a proxy (like RouteLLM's Controller).

A drop-in for ``openai.OpenAI`` where chat completions are concerned::

    client = codyn.Client("codyn.yaml")
    reply = client.chat.completions.create(model="codyn-code", messages=[...])
    reply.model  # the model the route chose (and that answered)

``model`` is a route, ``codyn/<route>:<knob>`` or a catalog model, exactly as for ``codyn
serve``; the same decision and the same fallbacks run, and answers come back as the openai
package's own ``ChatCompletion`` / ``ChatCompletionChunk`` objects. A route with ``verify``
checks each answer against the request's tests and escalates as the proxy does
(``extra_body={"codyn": {"tests": [...]}}`` passes tests explicitly;
`Client.last_verification` says what happened). No decision log, keys or budgets: those
belong to the proxy.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from openai.types import Model
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from codyn.errors import CodynError
from codyn.serve import verify
from codyn.serve.backends import (
    call_kwargs,
    chunk_payload,
    describe,
    may_fall_back,
    response_payload,
)
from codyn.serve.backends import litellm as _litellm
from codyn.serve.config import Config, load_config
from codyn.serve.routing import Decision, Gateway, Route, model_ids, routed_text


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
        self.last_verification: dict[str, Any] | None = None
        """What the latest verified request did: ``outcome``, ``attempts``
        (``smollm2:fail,qwen-coder:pass``) and ``verify_ms`` (the proxy's headers)."""

    def decide(
        self, model: str, messages: list[dict[str, Any]], conversation: str | None = None
    ) -> Decision:
        """The ranking a request would get, without calling any model."""
        return self.gateway.decide(model, messages, conversation)

    def _complete(self, body: dict[str, Any], conversation: str | None) -> Any:
        self.last_verification = None
        extra = body.pop("codyn", None)
        decision = self.decide(body["model"], body["messages"], conversation)
        route = self.gateway.routes.get(decision.route)
        if route is not None and route.spec.verify is not None:
            tests = verify.request_tests(extra, routed_text(body["messages"], 1))
            if tests:
                return self._verified(route, decision, body, tests, conversation)
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

    def _verified(
        self,
        route: Route,
        decision: Decision,
        body: dict[str, Any],
        tests: list[str],
        conversation: str | None,
    ) -> Any:
        """The proxy's verify-then-escalate walk (`codyn.serve.verify.VerifiedRun`), blocking.
        A stream gets the verified answer's chunks once it passed."""
        spec = route.spec.verify
        assert spec is not None
        plain = {k: v for k, v in body.items() if k not in ("stream", "stream_options")}
        run = verify.VerifiedRun(decision.ranking, route.policy, spec.max_attempts)
        errors: list[tuple[str, BaseException]] = []
        for name in run:
            try:
                response = _litellm.completion(**call_kwargs(self.config, name, plain, False))
            except Exception as exc:
                if not may_fall_back(exc):
                    raise
                errors.append((name, exc))
                continue
            payload = response_payload(response, name)
            run.record(
                payload,
                verify.check_answer(
                    name,
                    verify.answer_text(payload),
                    tests,
                    timeout_s=spec.timeout_s,
                    unsafe_local=spec.unsafe_local,
                ),
            )
        if not run.answers:
            raise AllModelsFailed(errors)
        payload, verdict = run.answer()
        self.gateway.answered(decision, conversation, verdict.model)
        self.last_verification = {
            "outcome": run.outcome,
            "attempts": run.header,
            "verify_ms": run.verify_ms,
        }
        if body.get("stream"):
            usage = bool((body.get("stream_options") or {}).get("include_usage"))
            chunks = verify.answer_chunks(payload, usage)
            return iter([ChatCompletionChunk.model_validate(c) for c in chunks])
        return ChatCompletion.model_validate(payload)


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
        extra_body: dict[str, Any] | None = None,
        **params: Any,
    ) -> Any:
        """Like ``openai.OpenAI().chat.completions.create``; ``conversation`` keeps a sticky
        route's conversation on one model. Streams return an iterator of chunks."""
        return self._client._complete(
            {"model": model, "messages": messages, **params, **(extra_body or {})}, conversation
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
