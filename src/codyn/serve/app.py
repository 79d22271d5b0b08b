"""The FastAPI app: OpenAI's ``/v1/chat/completions``, ``/v1/models`` and
``/v1/models/{id}``, plus ``/healthz``, ``/metrics`` and the ``/dashboard``. Handlers only
translate HTTP to `Proxy` calls and back; every error, an unknown path included, is in
OpenAI's shape.

With keys configured, ``/v1`` takes any key and monitoring (``/metrics``, the dashboard) an
admin key (`codyn.serve.auth`); ``metrics_public: true`` opens ``/metrics`` alone. ``/healthz``
is always open and shows no spending.

Run it with ``codyn serve --config codyn.yaml``, or with uvicorn as
``CODYN_CONFIG=codyn.yaml uvicorn --factory codyn.serve.app:app_from_env`` (several workers).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from sqlalchemy.exc import SQLAlchemyError
from starlette.exceptions import HTTPException
from starlette.types import Receive, Scope, Send

from codyn.serve.config import Config, load_config
from codyn.serve.dashboard import DASHBOARD_HTML, summary
from codyn.serve.proxy import Proxy, ProxyError
from codyn.serve.routing import BadModelSpec, UnknownModel, model_ids

CONVERSATION_HEADER = "x-codyn-conversation"
CONFIG_ENV = "CODYN_CONFIG"


class _EventStream(StreamingResponse):
    """Closes the event generator however the response ends, so that a client that went
    away is logged (and its backend stream closed) at once rather than at garbage collection."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            aclose = getattr(self.body_iterator, "aclose", None)
            if aclose is not None:
                await aclose()


async def _read_limited(request: Request, limit: int) -> bytes:
    """The body, refused with 413 past ``limit`` bytes (declared or actually sent)."""
    declared = request.headers.get("content-length")
    too_large = ProxyError(413, f"request body exceeds {limit} bytes", code="request_too_large")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise too_large
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


def create_app(config: Config | str | Path) -> FastAPI:
    """The proxy app for a config (or the path of its YAML file)."""
    loaded = config if isinstance(config, Config) else load_config(config)
    proxy = Proxy(loaded)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        proxy.start()
        yield
        await proxy.aclose()

    app = FastAPI(
        title="codyn proxy", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None
    )
    app.state.proxy = proxy

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> Response:
        """Starlette's own errors (no such path, wrong method) in OpenAI's shape."""
        message = f"Invalid URL ({request.method} {request.url.path})"
        if exc.status_code != 404:
            message = f"{exc.detail} ({request.method} {request.url.path})"
        error = ProxyError(
            exc.status_code, message, code="not_found" if exc.status_code == 404 else None
        )
        return JSONResponse(error.body(), status_code=exc.status_code)

    def monitoring(request: Request, *, metrics: bool = False) -> Response | None:
        """None when the caller may see monitoring, else the error response (401 asks a
        browser for HTTP Basic credentials: any user name, the admin key as password)."""
        if metrics and loaded.metrics_public:
            return None
        try:
            proxy.authenticate_admin(request.headers.get("authorization"))
        except ProxyError as exc:
            challenge = {"WWW-Authenticate": 'Basic realm="codyn"'} if exc.status == 401 else {}
            return JSONResponse(exc.body(), status_code=exc.status, headers=challenge)
        return None

    async def chat_completions(request: Request) -> Response:
        row = proxy.new_row(request.headers.get(CONVERSATION_HEADER))
        try:
            answer = await proxy.chat(
                row,
                request.headers.get("authorization"),
                lambda: _read_limited(request, loaded.limits.max_body_bytes),
            )
        except ProxyError as exc:
            return JSONResponse(exc.body(), status_code=exc.status, headers=proxy.headers(row))
        if answer.events is not None:
            return _EventStream(
                answer.events, media_type="text/event-stream", headers=answer.headers
            )
        return JSONResponse(answer.body, headers=answer.headers)

    # A plain Starlette route: FastAPI's dependency solving, which this handler does not use,
    # cost a tenth of the proxy's own time per request.
    app.add_route("/v1/chat/completions", chat_completions, methods=["POST"])

    @app.get("/v1/models")
    async def list_models(request: Request) -> Response:
        try:
            proxy.authenticate(request.headers.get("authorization"))
        except ProxyError as exc:
            return JSONResponse(exc.body(), status_code=exc.status)
        return JSONResponse(
            {"object": "list", "data": [_model(name) for name in model_ids(loaded)]}
        )

    @app.get("/v1/models/{model_id:path}")
    async def retrieve_model(request: Request, model_id: str) -> Response:
        """A route, ``codyn/<route>:<knob>`` or a catalog model (the openai SDK's
        ``models.retrieve``); 404 in OpenAI's shape for anything else."""
        try:
            proxy.authenticate(request.headers.get("authorization"))
            proxy.gateway.resolve(model_id)
        except ProxyError as exc:
            return JSONResponse(exc.body(), status_code=exc.status)
        except (UnknownModel, BadModelSpec) as exc:
            error = ProxyError(404, str(exc), code="model_not_found", param="model")
            return JSONResponse(error.body(), status_code=404)
        return JSONResponse(_model(model_id))

    @app.get("/healthz")
    async def healthz() -> dict[str, Any]:
        stats = proxy.log.stats
        return {
            "status": "ok",
            "database_up": stats.database_up,
            "log_buffered_rows": proxy.log.buffered,
            "log_rows_dropped": stats.dropped,
        }

    @app.get("/metrics")
    async def metrics(request: Request) -> Response:
        refused = monitoring(request, metrics=True)
        if refused is not None:
            return refused
        return Response(proxy.metrics.render(), media_type="text/plain; version=0.0.4")

    if loaded.dashboard:

        @app.get("/dashboard", response_class=HTMLResponse)
        async def dashboard(request: Request) -> Response:
            return monitoring(request) or HTMLResponse(DASHBOARD_HTML)

        @app.get("/dashboard/data")
        def dashboard_data(request: Request) -> Response:
            refused = monitoring(request)
            if refused is not None:
                return refused
            try:
                return JSONResponse(summary(proxy))
            except SQLAlchemyError as exc:
                message = f"database unavailable ({type(exc).__name__})"
                return JSONResponse({"error": message}, status_code=503)

    return app


def _model(name: str) -> dict[str, Any]:
    return {"id": name, "object": "model", "created": 0, "owned_by": "codyn"}


def app_from_env() -> FastAPI:
    """uvicorn ``--factory`` entry point: the app for the config named by ``CODYN_CONFIG``."""
    return create_app(os.environ[CONFIG_ENV])
