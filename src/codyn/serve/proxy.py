"""One chat completion through the proxy: authenticate, check every field, check the budget,
decide, call the ranked models until one answers, and log the outcome, whatever it is.

HTTP-free: the FastAPI app reads the request and turns the returned `Answer` (or the raised
`ProxyError`) into a response, so every status a client can see is decided, and logged, here.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import Future
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from codyn.errors import CodynError
from codyn.serve import verify
from codyn.serve.auth import AuthError, BudgetExceeded, Keys, NotAdmin
from codyn.serve.backends import (
    Backends,
    BackendTimer,
    chunk_payload,
    describe,
    error_status,
    is_context_overflow,
    may_fall_back,
    response_payload,
    stream_usage_reported,
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
from codyn.serve.validate import PART_TAGS, ChatRequest, InvalidRequest, parse_chat_request

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
        param: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.kind, self.code = status, message, kind, code
        self.param = param

    def body(self) -> dict[str, Any]:
        return {
            "error": {
                "message": self.message,
                "type": self.kind,
                "param": self.param,
                "code": self.code,
            }
        }


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
    first_ms: float | None = None
    """A stream's time from sending the request to the backend's first chunk."""


def journal_folder(config: Config) -> Path:
    """Where the decision journal lives: beside a SQLite database file, else beside the
    config file, in a folder named after the database (so two configs in one folder that log
    to different databases never replay into each other's)."""
    url = config.database.resolved_url()
    prefix = "sqlite:///"
    database = url[len(prefix) :] if url.startswith(prefix) else ""
    if database and database != ":memory:":
        path = Path(database)
        return path.with_name(f"{path.name}.codyn-journal")
    digest = hashlib.sha256(url.encode()).hexdigest()[:12]
    base = config.path.resolve().parent if config.path is not None else Path.cwd()
    return base / f"codyn-journal-{digest}"


class Proxy:
    """Everything a proxy process holds: routes, keys, backends, decision log and metrics."""

    def __init__(self, config: Config) -> None:
        from threadpoolctl import threadpool_limits

        self.config = config
        self.gateway = Gateway(config)
        self._threads = threadpool_limits(limits=config.limits.decision_threads)
        """`Limits.decision_threads`, set once the routers' libraries are loaded; restored
        at `aclose`."""
        self.keys = Keys(config.keys)
        self.backends = Backends(config)
        self.log = DecisionLog(
            config.database.resolved_url(),
            capacity=config.database.buffer_rows,
            batch=config.database.batch_rows,
            on_connect=self._load_spent,
            journal=journal_folder(config),
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
        self._threads.restore_original_limits()
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
        """Serve one ``/v1/chat/completions`` request; every outcome leaves one log row, on
        disk (the journal) before the response.

        ``read_body`` raises `ProxyError` (413) past the size limit; it is only read once the
        key is known, so an anonymous client cannot make the proxy read a large body. Every
        field is checked (`codyn.serve.validate`) before any backend is called.
        """
        started = time.perf_counter()
        self.metrics.in_flight.inc()
        try:
            row.key_name = self.authenticate(authorization)
            parsed = _parsed(await read_body())
            request = parsed.body
            row.requested, row.stream = request["model"], parsed.stream
            self._check_budget(row.key_name)
            decision = self._capable(self._decide(request, row.conversation), parsed)
            row.route, row.chosen, row.knob = decision.route, decision.chosen, decision.knob
            row.predicted, row.sticky = decision.predicted, decision.sticky
            row.decision_ms = decision.decision_ms
            self.log.begin(row, commit=False)  # nothing reached the client yet
            route = self.gateway.routes.get(decision.route)
            tests = self._tests(route, parsed.extra, request)
            if route is not None and route.spec.verify is not None and not tests:
                row.verify = "unverifiable"
            if tests:
                assert route is not None
                return await self._verified(route, decision, parsed, row, tests, started)
            call = await self._call(decision, request, row)
        except ProxyError as exc:
            row.status, row.error = exc.status, exc.message
            await self._finish(row, started)
            raise
        except asyncio.CancelledError:
            row.status, row.error = CLIENT_CLOSED, "client disconnected"
            self._record(row, started)
            raise
        except Exception as exc:  # a bug (in a router, say) still answers, and leaves a row
            logger.exception("request %s failed", row.id)
            row.status, row.error = 500, f"internal error: {describe(exc)}"
            await self._finish(row, started)
            raise ProxyError(500, row.error, "server_error") from exc
        row.model = call.model
        self.gateway.answered(decision, row.conversation, call.model)
        if row.stream:
            headers = self.headers(row)
            if call.first_ms is not None:
                headers["x-codyn-backend-ms"] = f"{call.first_ms:.3f}"
            relay = _Relay(self, row, decision, call, parsed.include_usage, started)
            try:
                await self._durable(self.log.begin(row))  # the headers go out once on disk
            except asyncio.CancelledError:
                await relay.aclose()
                raise
            return Answer(headers, events=relay)
        body = response_payload(call.response, call.model)
        self._account(row, decision, call.model, body.get("usage"), estimated=False)
        row.backend_ms = call.timer.ms
        await self._finish(row, started)
        headers = self.headers(row)
        if row.backend_ms is not None:
            headers["x-codyn-backend-ms"] = f"{row.backend_ms:.3f}"
        return Answer(headers, body=body)

    def _capable(self, decision: Decision, parsed: ChatRequest) -> Decision:
        """The ranking without the models that cannot take the request: content parts other
        than text go to models tagged for them (`validate.PART_TAGS`), and ``max_tokens``
        must fit some model's context window; a 400 when no model is left."""
        ranking = decision.ranking
        if parsed.part_kinds:
            tags = {PART_TAGS[kind] for kind in parsed.part_kinds}
            ranking = [m for m in ranking if tags <= set(self.config.models[m].tags)]
            if not ranking:
                kinds, needed = ", ".join(sorted(parsed.part_kinds)), ", ".join(sorted(tags))
                raise ProxyError(
                    400,
                    f"the messages hold {kinds} content parts, which no model of "
                    f"{', '.join(decision.ranking)} takes (none is tagged {needed} in the "
                    "catalog)",
                    param="messages",
                )
        windows = {m: self.config.models[m].context_window for m in ranking}
        known = [w for w in windows.values() if w is not None]
        for name in ("max_tokens", "max_completion_tokens"):
            asked = parsed.body.get(name)
            if asked is not None and len(known) == len(windows) and asked > max(known):
                shown = ", ".join(f"{m}: {w}" for m, w in windows.items())
                raise ProxyError(
                    400,
                    f"{name} {asked} exceeds the context window of every model ({shown})",
                    param=name,
                )
        return decision if ranking == decision.ranking else replace(decision, ranking=ranking)

    def _tests(self, route: Route | None, extra: Any, request: dict[str, Any]) -> list[str]:
        """The request's tests when its route verifies (`codyn.serve.verify`), else []."""
        if route is None or route.spec.verify is None:
            return []
        try:
            return verify.request_tests(extra, routed_text(request["messages"], 1))
        except verify.BadTests as exc:
            raise ProxyError(400, str(exc), param="codyn.tests") from None

    async def _verified(
        self,
        route: Route,
        decision: Decision,
        parsed: ChatRequest,
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
        plain = {k: v for k, v in parsed.body.items() if k not in ("stream", "stream_options")}
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
                    raise _rejected(exc) from None
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
        row.usage_estimated = False
        self.gateway.answered(decision, row.conversation, verdict.model)
        await self._finish(row, started)
        headers = self.headers(row)
        headers["x-codyn-attempts"] = run.header
        headers["x-codyn-verify-ms"] = f"{row.verify_ms:.1f}"
        if row.stream:
            return Answer(headers, events=_replayed_events(body, parsed.include_usage))
        return Answer(headers, body=body)

    def authenticate(self, authorization: str | None) -> str | None:
        """The key's name (None for an open proxy); `ProxyError` 401 otherwise."""
        try:
            return self.keys.authenticate(authorization)
        except AuthError as exc:
            raise ProxyError(401, str(exc), code="invalid_api_key") from None

    def authenticate_admin(self, authorization: str | None) -> str | None:
        """The admin key's name (None for an open proxy); `ProxyError` 401 or 403 otherwise."""
        try:
            return self.keys.authenticate_admin(authorization)
        except AuthError as exc:
            raise ProxyError(401, str(exc), code="invalid_api_key") from None
        except NotAdmin as exc:
            raise ProxyError(403, str(exc), "permission_error", "not_admin") from None

    def _check_budget(self, key_name: str | None) -> None:
        try:
            self.keys.check_budget(key_name)
        except BudgetExceeded as exc:
            raise ProxyError(429, str(exc), "insufficient_quota", "insufficient_quota") from None

    def _decide(self, request: dict[str, Any], conversation: str | None) -> Decision:
        try:
            return self.gateway.decide(request["model"], request["messages"], conversation)
        except UnknownModel as exc:
            raise ProxyError(404, str(exc), code="model_not_found", param="model") from None
        except BadModelSpec as exc:
            raise ProxyError(400, str(exc), param="model") from None

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
                    raise _rejected(exc) from None
                last = exc
                continue
            return _Call(model, response, timer, first, timer.ms if stream else None)
        assert last is not None
        raise _all_failed(decision, last)

    def _account(
        self,
        row: DecisionRow,
        decision: Decision,
        model: str,
        usage: dict[str, Any] | None,
        *,
        estimated: bool,
    ) -> None:
        """Tokens and cost of the answer, and what the route's priciest model would have cost;
        ``estimated``: the counts are LiteLLM's, not the backend's."""
        if not usage:
            return
        row.tokens_in = int(usage.get("prompt_tokens") or 0)
        row.tokens_out = int(usage.get("completion_tokens") or 0)
        row.usage_estimated = estimated
        row.cost_usd = self.config.models[model].cost(row.tokens_in, row.tokens_out)
        strongest = self.strongest(decision)
        row.strongest_cost_usd = self.config.models[strongest].cost(row.tokens_in, row.tokens_out)

    def strongest(self, decision: Decision) -> str:
        """The priciest model the route offers (the model itself for a pass-through)."""
        if decision.route == PASSTHROUGH:
            return decision.chosen
        return self.gateway.routes[decision.route].strongest

    def _record(self, row: DecisionRow, started: float) -> Future[bool]:
        """Close a request's books (latency, budget, metrics) and log its row; the future is
        done once the row is on disk."""
        row.latency_ms = (time.perf_counter() - started) * 1000.0
        self.keys.charge(row.key_name, row.cost_usd or 0.0)
        self.metrics.record(row)
        self.metrics.in_flight.dec()
        return self.log.put(row)

    async def _finish(self, row: DecisionRow, started: float) -> None:
        """`_record`, then wait until the row is durable: the response follows it."""
        await self._durable(self._record(row, started))

    async def _durable(self, written: Future[Any]) -> None:
        """Wait for a journal write (timed for ``codyn_journal_wait_seconds``); a cancelled
        request stops waiting, the write goes on."""
        if written.done():
            return
        start = time.perf_counter()
        await asyncio.shield(asyncio.wrap_future(written))
        self.metrics.journal_wait.observe(time.perf_counter() - start)

    @staticmethod
    def headers(row: DecisionRow) -> dict[str, str]:
        """The ``x-codyn-*`` headers of a response (errors carry what is known so far; a
        stream's cost is known only at its end, so only its log row has it)."""
        headers = {"x-codyn-request-id": row.id}
        if row.model is not None:
            headers["x-codyn-model"] = row.model
        if row.route is not None:
            headers["x-codyn-route"] = row.route
        if row.decision_ms is not None:
            headers["x-codyn-decision-ms"] = f"{row.decision_ms:.3f}"
        if row.verify is not None:
            headers["x-codyn-verify"] = row.verify
        if row.cost_usd is not None and row.status < 400:
            headers["x-codyn-cost-usd"] = f"{row.cost_usd:.9f}"
        return headers


class _Relay:
    """A stream's server-sent events: the backend's chunks with the routed model's name.

    The usage-only chunk the proxy asked for is passed on only to clients that asked for it.
    The row is finished, and on disk, before ``[DONE]``. A backend failure mid-stream ends the
    stream with an OpenAI-style error event; a client that goes away (even before the first
    event) is logged as 499 and the backend stream is closed.
    """

    def __init__(
        self,
        proxy: Proxy,
        row: DecisionRow,
        decision: Decision,
        call: _Call,
        include_usage: bool,
        started: float,
    ) -> None:
        self.proxy, self.row, self.decision, self.call = proxy, row, decision, call
        self.include_usage, self.started = include_usage, started
        self.usage: dict[str, Any] | None = None
        self.finished = False
        self._events = self._run()

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._events

    async def aclose(self) -> None:
        await self._events.aclose()
        if not self.finished:  # closed before its first event: the generator never ran
            self.row.status, self.row.error = CLIENT_CLOSED, "client disconnected"
            await self._end()

    async def _end(self) -> None:
        if self.finished:
            return
        self.finished = True
        call = self.call
        await call.response.aclose()
        reported = stream_usage_reported(call.response)
        self.proxy._account(self.row, self.decision, call.model, self.usage, estimated=not reported)
        self.row.backend_ms = call.timer.ms
        await self.proxy._finish(self.row, self.started)

    async def _run(self) -> AsyncIterator[bytes]:
        call, row = self.call, self.row
        chunk = call.first
        try:
            while chunk is not None:
                call.timer.touch()
                payload, usage = chunk_payload(chunk, call.model, self.include_usage)
                self.usage = usage or self.usage
                if payload is not None:
                    yield _event(payload)
                chunk = await anext(call.response, None)
            await self._end()
            yield b"data: [DONE]\n\n"
        except (asyncio.CancelledError, GeneratorExit):
            if not self.finished:
                row.status, row.error = CLIENT_CLOSED, "client disconnected mid-stream"
            raise
        except Exception as exc:
            row.status, row.error = 502, f"backend failed mid-stream: {describe(exc)}"
            yield _event(ProxyError(502, row.error, "upstream_error").body())
        finally:
            await self._end()


def _event(payload: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(payload).encode() + b"\n\n"


async def _replayed_events(body: dict[str, Any], include_usage: bool) -> AsyncIterator[bytes]:
    """A verified answer's chunks (`verify.answer_chunks`) as server-sent events."""
    for chunk in verify.answer_chunks(body, include_usage):
        yield _event(chunk)
    yield b"data: [DONE]\n\n"


def _all_failed(decision: Decision, last: BaseException) -> ProxyError:
    """The error of a request whose every model failed: the last failure's status."""
    kind = "context_length_exceeded" if is_context_overflow(last) else "upstream_error"
    return ProxyError(
        error_status(last),
        f"every model failed ({', '.join(decision.ranking)}); last: {describe(last)}",
        kind,
    )


def _rejected(exc: BaseException) -> ProxyError:
    """A backend's answer that the request itself is wrong, which no other model is asked."""
    return ProxyError(error_status(exc), f"the backend rejected the request: {describe(exc)}")


def _parsed(raw: bytes) -> ChatRequest:
    try:
        return parse_chat_request(raw)
    except InvalidRequest as exc:
        raise ProxyError(400, str(exc), param=exc.param) from None
