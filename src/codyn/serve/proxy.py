"""One chat completion through the proxy: authenticate, parse, check the budget, decide, call
the ranked models until one answers, and log the outcome, whatever it is.

HTTP-free: the FastAPI app reads the request and turns the returned `Answer` (or the raised
`ProxyError`) into a response, so every status a client can see is decided, and logged, here.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine

from codyn.errors import CodynError
from codyn.serve import verify
from codyn.serve.auth import AuthError, BudgetExceeded, Keys
from codyn.serve.backends import (
    Backends,
    BackendTimer,
    chunk_payload,
    describe,
    error_status,
    is_context_overflow,
    may_fall_back,
    response_payload,
)
from codyn.serve.config import Config
from codyn.serve.log import DecisionLog, DecisionRow
from codyn.serve.metrics import Metrics
from codyn.serve.routing import (
    PASSTHROUGH,
    BadModelSpec,
    Decision,
    Gateway,
    Route,
    UnknownModel,
    routed_text,
)

logger = logging.getLogger("codyn.serve")

CLIENT_CLOSED = 499
"""Status logged when the client went away mid-stream (nginx's convention; never sent)."""


class ProxyError(CodynError):
    """A request the proxy answers with an OpenAI-style error body and ``status``."""

    def __init__(
        self,
        status: int,
        message: str,
        kind: str = "invalid_request_error",
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.kind, self.code = status, message, kind, code

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.kind, "code": self.code}}


@dataclass
class Answer:
    """A successful answer: a JSON body, or server-sent event bytes when streaming."""

    headers: dict[str, str]
    body: dict[str, Any] | None = None
    events: AsyncIterator[bytes] | None = None


@dataclass
class _Call:
    """The model that answered and what the exchange took."""

    model: str
    response: Any
    timer: BackendTimer
    first: Any = None


class Proxy:
    """Everything a proxy process holds: routes, keys, backends, decision log and metrics."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.gateway = Gateway(config)
        self.keys = Keys(config.keys)
        self.backends = Backends(config)
        self.log = DecisionLog(
            config.database.resolved_url(),
            capacity=config.database.buffer_rows,
            batch=config.database.batch_rows,
            on_connect=self._load_spent,
        )
        self.metrics = Metrics(self.log)

    def _load_spent(self, engine: Engine) -> None:
        if self.keys.enabled and not self.keys.loaded:
            self.keys.load_spent(self.log.spent_by_key(engine))

    def start(self) -> None:
        self.log.start()

    async def aclose(self) -> int:
        """Close backends and drain the decision log; returns rows that could not be written."""
        await self.backends.aclose()
        return await asyncio.to_thread(self.log.close)

    def new_row(self, conversation: str | None) -> DecisionRow:
        return DecisionRow(id=uuid.uuid4().hex, conversation=conversation)

    # -- one request ------------------------------------------------------------------------

    async def chat(
        self,
        row: DecisionRow,
        authorization: str | None,
        read_body: Callable[[], Awaitable[bytes]],
    ) -> Answer:
        """Serve one ``/v1/chat/completions`` request; every outcome leaves one log row.

        ``read_body`` raises `ProxyError` (413) past the size limit; it is only read once the
        key is known, so an anonymous client cannot make the proxy read a large body.
        """
        started = time.perf_counter()
        try:
            row.key_name = self.authenticate(authorization)
            request = parse_chat_request(await read_body())
            extra = request.pop("codyn", None)
            row.requested, row.stream = request["model"], bool(request.get("stream"))
            self._check_budget(row.key_name)
            decision = self._decide(request, row.conversation)
            row.route, row.chosen, row.knob = decision.route, decision.chosen, decision.knob
            row.predicted, row.sticky = decision.predicted, decision.sticky
            row.decision_ms = decision.decision_ms
            route = self.gateway.routes.get(decision.route)
            tests = self._tests(route, extra, request)
            if route is not None and route.spec.verify is not None and not tests:
                row.verify = "unverifiable"
            if tests:
                assert route is not None
                return await self._verified(route, decision, request, row, tests, started)
            call = await self._call(decision, request, row)
        except ProxyError as exc:
            row.status, row.error = exc.status, exc.message
            self._finish(row, started)
            raise
        except Exception as exc:  # a bug (in a router, say) still answers, and leaves a row
            logger.exception("request %s failed", row.id)
            row.status, row.error = 500, f"internal error: {describe(exc)}"
            self._finish(row, started)
            raise ProxyError(500, row.error, "server_error") from exc
        row.model = call.model
        self.gateway.answered(decision, row.conversation, call.model)
        headers = self.headers(row)
        if row.stream:
            include_usage = bool((request.get("stream_options") or {}).get("include_usage"))
            events = self._relay(row, decision, call, include_usage, started)
            return Answer(headers, events=events)
        body = response_payload(call.response, call.model)
        self._account(row, decision, call.model, body.get("usage"))
        row.backend_ms = call.timer.ms
        self._finish(row, started)
        if row.backend_ms is not None:
            headers["x-codyn-backend-ms"] = f"{row.backend_ms:.3f}"
        return Answer(headers, body=body)

    def _tests(self, route: Route | None, extra: Any, request: dict[str, Any]) -> list[str]:
        """The request's tests when its route verifies (`codyn.serve.verify`), else []."""
        if route is None or route.spec.verify is None:
            return []
        try:
            return verify.request_tests(extra, routed_text(request["messages"], 1))
        except verify.BadTests as exc:
            raise ProxyError(400, str(exc)) from None

    async def _verified(
        self,
        route: Route,
        decision: Decision,
        request: dict[str, Any],
        row: DecisionRow,
        tests: list[str],
        started: float,
    ) -> Answer:
        """Ask the ranked models in turn, check each answer against ``tests`` in the sandbox,
        and return the first accepted (else the best); every answer is paid for and logged.

        A streaming client gets the verified answer as events once it passed: nothing can be
        streamed before the check, so the first byte waits for generation plus the sandbox.
        """
        spec = route.spec.verify
        assert spec is not None
        plain = {k: v for k, v in request.items() if k not in ("stream", "stream_options")}
        run = verify.VerifiedRun(decision.ranking, route.policy, spec.max_attempts)
        checked: list[dict[str, Any]] = []
        last: BaseException | None = None
        for model in run:
            timer = BackendTimer()
            try:
                response = await self.backends.acompletion(model, plain, False, timer)
            except Exception as exc:
                row.attempts.append({"model": model, "error": describe(exc)})
                if not may_fall_back(exc):
                    raise ProxyError(error_status(exc), describe(exc)) from None
                last = exc
                continue
            body = response_payload(response, model)
            verdict = await asyncio.to_thread(
                verify.check_answer,
                model,
                verify.answer_text(body),
                tests,
                timeout_s=spec.timeout_s,
                unsafe_local=spec.unsafe_local,
            )
            usage = body.get("usage") or {}
            tokens_in = int(usage.get("prompt_tokens") or 0)
            tokens_out = int(usage.get("completion_tokens") or 0)
            checked.append(
                {
                    "model": model,
                    "outcome": verdict.status,
                    "passed": verdict.passed,
                    "tests": verdict.total,
                    "tokens_in": tokens_in,
                    "tokens_out": tokens_out,
                    "cost_usd": self.config.models[model].cost(tokens_in, tokens_out),
                    "backend_ms": timer.ms,
                    "verify_ms": verdict.ms,
                }
            )
            row.attempts.append(checked[-1])
            run.record(body, verdict)
        if not run.answers:
            assert last is not None
            raise _all_failed(decision, last)
        body, verdict = run.answer()
        row.model, row.verify, row.verify_ms = verdict.model, run.outcome, run.verify_ms
        row.tokens_in = sum(a["tokens_in"] for a in checked)
        row.tokens_out = sum(a["tokens_out"] for a in checked)
        row.cost_usd = sum(a["cost_usd"] for a in checked)
        final = checked[run.pick]
        strongest = self.config.models[self.strongest(decision)]
        row.strongest_cost_usd = strongest.cost(final["tokens_in"], final["tokens_out"])
        row.backend_ms = sum(a["backend_ms"] or 0.0 for a in checked)
        self.gateway.answered(decision, row.conversation, verdict.model)
        headers = self.headers(row)
        headers["x-codyn-attempts"] = run.header
        headers["x-codyn-verify-ms"] = f"{row.verify_ms:.1f}"
        self._finish(row, started)
        if row.stream:
            usage = bool((request.get("stream_options") or {}).get("include_usage"))
            return Answer(headers, events=_replayed_events(body, usage))
        return Answer(headers, body=body)

    def authenticate(self, authorization: str | None) -> str | None:
        """The key's name (None for an open proxy); `ProxyError` 401 otherwise."""
        try:
            return self.keys.authenticate(authorization)
        except AuthError as exc:
            raise ProxyError(401, str(exc), code="invalid_api_key") from None

    def _check_budget(self, key_name: str | None) -> None:
        try:
            self.keys.check_budget(key_name)
        except BudgetExceeded as exc:
            raise ProxyError(429, str(exc), "insufficient_quota", "insufficient_quota") from None

    def _decide(self, request: dict[str, Any], conversation: str | None) -> Decision:
        try:
            return self.gateway.decide(request["model"], request["messages"], conversation)
        except UnknownModel as exc:
            raise ProxyError(404, str(exc), code="model_not_found") from None
        except BadModelSpec as exc:
            raise ProxyError(400, str(exc)) from None

    async def _call(self, decision: Decision, request: dict[str, Any], row: DecisionRow) -> _Call:
        """Try the ranked models in order; a stream counts as answered at its first chunk."""
        stream = bool(request.get("stream"))
        last: BaseException | None = None
        for model in decision.ranking:
            timer = BackendTimer()
            response = None
            try:
                response = await self.backends.acompletion(model, request, stream, timer)
                first = await anext(response) if stream else None
            except Exception as exc:
                if response is not None:
                    await response.aclose()
                row.attempts.append({"model": model, "error": describe(exc)})
                if not may_fall_back(exc):
                    raise ProxyError(error_status(exc), describe(exc)) from None
                last = exc
                continue
            return _Call(model, response, timer, first)
        assert last is not None
        raise _all_failed(decision, last)

    async def _relay(
        self,
        row: DecisionRow,
        decision: Decision,
        call: _Call,
        include_usage: bool,
        started: float,
    ) -> AsyncIterator[bytes]:
        """Pass the backend's chunks on as server-sent events, with the routed model's name.

        The usage-only chunk the proxy asked for is passed on only to clients that asked for
        it. A backend failure mid-stream ends the stream with an OpenAI-style error event; a
        client that goes away is logged as 499 and the backend stream is closed.
        """
        chunk, usage = call.first, None
        try:
            while chunk is not None:
                call.timer.touch()
                payload, chunk_usage = chunk_payload(chunk, call.model, include_usage)
                usage = chunk_usage or usage
                if payload is not None:
                    yield b"data: " + json.dumps(payload).encode() + b"\n\n"
                chunk = await anext(call.response, None)
            yield b"data: [DONE]\n\n"
        except (asyncio.CancelledError, GeneratorExit):
            row.status, row.error = CLIENT_CLOSED, "client disconnected mid-stream"
            raise
        except Exception as exc:
            row.status, row.error = 502, f"backend failed mid-stream: {describe(exc)}"
            error = ProxyError(502, row.error, "upstream_error")
            yield b"data: " + json.dumps(error.body()).encode() + b"\n\n"
        finally:
            await call.response.aclose()
            self._account(row, decision, call.model, usage)
            row.backend_ms = call.timer.ms
            self._finish(row, started)

    def _account(
        self, row: DecisionRow, decision: Decision, model: str, usage: dict[str, Any] | None
    ) -> None:
        """Tokens and cost of the answer, and what the route's priciest model would have cost."""
        if not usage:
            return
        row.tokens_in = int(usage.get("prompt_tokens") or 0)
        row.tokens_out = int(usage.get("completion_tokens") or 0)
        row.cost_usd = self.config.models[model].cost(row.tokens_in, row.tokens_out)
        strongest = self.strongest(decision)
        row.strongest_cost_usd = self.config.models[strongest].cost(row.tokens_in, row.tokens_out)

    def strongest(self, decision: Decision) -> str:
        """The priciest model the route offers (the model itself for a pass-through)."""
        if decision.route == PASSTHROUGH:
            return decision.chosen
        return self.gateway.routes[decision.route].strongest

    def _finish(self, row: DecisionRow, started: float) -> None:
        row.latency_ms = (time.perf_counter() - started) * 1000.0
        self.keys.charge(row.key_name, row.cost_usd or 0.0)
        self.metrics.record(row)
        self.log.put(row)

    @staticmethod
    def headers(row: DecisionRow) -> dict[str, str]:
        """The ``x-codyn-*`` headers of a response (errors carry what is known so far)."""
        headers = {"x-codyn-request-id": row.id}
        if row.model is not None:
            headers["x-codyn-model"] = row.model
        if row.route is not None:
            headers["x-codyn-route"] = row.route
        if row.decision_ms is not None:
            headers["x-codyn-decision-ms"] = f"{row.decision_ms:.3f}"
        if row.verify is not None:
            headers["x-codyn-verify"] = row.verify
        return headers


async def _replayed_events(body: dict[str, Any], include_usage: bool) -> AsyncIterator[bytes]:
    """A verified answer's chunks (`verify.answer_chunks`) as server-sent events."""
    for chunk in verify.answer_chunks(body, include_usage):
        yield b"data: " + json.dumps(chunk).encode() + b"\n\n"
    yield b"data: [DONE]\n\n"


def _all_failed(decision: Decision, last: BaseException) -> ProxyError:
    """The error of a request whose every model failed: the last failure's status."""
    kind = "context_length_exceeded" if is_context_overflow(last) else "upstream_error"
    return ProxyError(
        error_status(last),
        f"every model failed ({', '.join(decision.ranking)}); last: {describe(last)}",
        kind,
    )


def parse_chat_request(raw: bytes) -> dict[str, Any]:
    """The JSON body of a chat completion request, checked for what the proxy relies on."""
    try:
        request = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ProxyError(400, f"request body is not valid JSON ({exc})") from None
    if not isinstance(request, dict):
        raise ProxyError(400, "request body must be a JSON object")
    if not isinstance(request.get("model"), str) or not request["model"]:
        raise ProxyError(400, "`model` is required: a route, codyn/<route>:<knob> or a model")
    messages = request.get("messages")
    if not isinstance(messages, list) or not messages:
        raise ProxyError(400, "`messages` must be a non-empty list")
    if not all(isinstance(m, dict) and isinstance(m.get("role"), str) for m in messages):
        raise ProxyError(400, "every message must be an object with a `role`")
    return request
