"""The FastAPI app: OpenAI's ``/v1/chat/completions`` and ``/v1/models``, plus ``/healthz``,
``/metrics`` and the ``/dashboard``. Handlers only translate HTTP to `Proxy` calls and back.

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
from starlette.types import Receive, Scope, Send

from codyn.serve.config import Config, load_config
from codyn.serve.dashboard import DASHBOARD_HTML, summary
from codyn.serve.proxy import Proxy, ProxyError
from codyn.serve.routing import model_ids

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

    app = FastAPI(title="codyn proxy", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.proxy = proxy

    @app.post("/v1/chat/completions")
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

    @app.get("/v1/models")
    async def list_models(request: Request) -> Response:
        try:
            proxy.authenticate(request.headers.get("authorization"))
        except ProxyError as exc:
            return JSONResponse(exc.body(), status_code=exc.status)
        data = [
            {"id": name, "object": "model", "created": 0, "owned_by": "codyn"}
            for name in model_ids(loaded)
        ]
        return JSONResponse({"object": "list", "data": data})

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
    async def metrics() -> Response:
        return Response(proxy.metrics.render(), media_type="text/plain; version=0.0.4")

    if loaded.dashboard:

        @app.get("/dashboard", response_class=HTMLResponse)
        async def dashboard() -> str:
            return DASHBOARD_HTML

        @app.get("/dashboard/data")
        def dashboard_data() -> Response:
            try:
                return JSONResponse(summary(proxy))
            except SQLAlchemyError as exc:
                message = f"database unavailable ({type(exc).__name__})"
                return JSONResponse({"error": message}, status_code=503)

    return app


def app_from_env() -> FastAPI:
    """uvicorn ``--factory`` entry point: the app for the config named by ``CODYN_CONFIG``."""
    return create_app(os.environ[CONFIG_ENV])
