"""``codyn bench serve``: what the proxy adds to a request, measured against real backends.

The proxy runs as its own process (uvicorn, as in production) so that the load generator does
not share its interpreter. Proxy overhead per request is the client's end-to-end time minus
the backend time the proxy measured on its HTTP transport (``x-codyn-backend-ms``: request
sent to last byte received); minus the routing decision (``x-codyn-decision-ms``) as well, it
is what the proxy costs beyond the decision itself. Two phases: ``n`` requests one at a time
(overhead percentiles), then ``concurrency`` clients for ``duration_s`` (sustained requests/s).

Without a config the bench is self-contained: it starts the two local llama.cpp backends, a
kNN router trained on the bundled demo data (two of its models stand in for the local ones)
and a SQLite decision log in a temporary folder. It can restart a backend halfway through the
sustained phase and then checks the decision log against the responses: every request answered
and logged exactly once. Loopback only; bounded by ``n`` and ``duration_s``.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import yaml

from codyn.bench.local import STRONG, WEAK, LlamaServer, child_output, free_port, local_servers
from codyn.data.demo import load_demo
from codyn.data.routing import Model, RoutingData
from codyn.deploy import PolicySetup
from codyn.errors import CodynError
from codyn.routers import make_router
from codyn.serve.config import load_config
from codyn.serve.log import DecisionLog

PROMPTS = [
    "Write a Python function that reverses a string.",
    "Say hello in French.",
    "Fix the bug: def add(a, b): return a - b",
    "What is the capital of Italy?",
    "Write a SQL query counting rows per customer.",
    "Name a colour.",
]
DEMO_STAND_INS = {WEAK: "mistral-7b-instruct-v0.3", STRONG: "llama-3.3-nemotron-super-49b-v1"}
"""Demo-data models whose real scores train the self-contained bench's router."""
ROUTE = "codyn-bench"


@dataclass
class _Sample:
    ok: bool
    e2e_ms: float
    backend_ms: float | None = None
    decision_ms: float | None = None
    request_id: str | None = None


@dataclass
class _Phase:
    samples: list[_Sample] = field(default_factory=list)
    elapsed_s: float = 0.0

    def report(self) -> dict[str, Any]:
        good = [s for s in self.samples if s.ok and s.backend_ms is not None]
        overhead = np.array([s.e2e_ms - (s.backend_ms or 0.0) for s in good])
        beyond = np.array([s.e2e_ms - (s.backend_ms or 0.0) - (s.decision_ms or 0.0) for s in good])
        decision = np.array([s.decision_ms or 0.0 for s in good])

        def pct(values: np.ndarray) -> dict[str, float | None]:
            if values.size == 0:
                return {"p50": None, "p99": None}
            return {
                "p50": float(np.percentile(values, 50)),
                "p99": float(np.percentile(values, 99)),
            }

        return {
            "requests": len(self.samples),
            "ok": sum(s.ok for s in self.samples),
            "elapsed_s": self.elapsed_s,
            "requests_per_s": len(self.samples) / self.elapsed_s if self.elapsed_s else None,
            "end_to_end_ms": pct(np.array([s.e2e_ms for s in good])),
            "overhead_ms": pct(overhead),
            "overhead_beyond_decision_ms": pct(beyond),
            "decision_ms": pct(decision),
        }


async def _one(client: httpx.AsyncClient, route: str, prompt: str, max_tokens: int) -> _Sample:
    body = {"model": route, "max_tokens": max_tokens, "temperature": 0,
            "messages": [{"role": "user", "content": prompt}]}  # fmt: skip
    start = time.perf_counter()
    try:
        response = await client.post("/v1/chat/completions", json=body)
    except httpx.HTTPError:
        return _Sample(False, (time.perf_counter() - start) * 1000.0)
    e2e = (time.perf_counter() - start) * 1000.0
    headers = response.headers

    def number(name: str) -> float | None:
        return float(headers[name]) if name in headers else None

    return _Sample(
        response.status_code == 200,
        e2e,
        number("x-codyn-backend-ms"),
        number("x-codyn-decision-ms"),
        headers.get("x-codyn-request-id"),
    )


async def _run(
    base_url: str,
    api_key: str | None,
    route: str,
    n: int,
    concurrency: int,
    duration_s: float,
    max_tokens: int,
    restart: tuple[float, LlamaServer] | None,
) -> tuple[list[_Sample], _Phase, _Phase]:
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    limits = httpx.Limits(max_connections=concurrency + 2)
    async with httpx.AsyncClient(
        base_url=base_url, headers=headers, timeout=120.0, limits=limits
    ) as client:
        warmup = [  # connections, caches, the backends' prompt caches
            await _one(client, route, prompt, max_tokens) for prompt in PROMPTS
        ]
        sequential = _Phase()
        start = time.perf_counter()
        for i in range(n):
            sequential.samples.append(
                await _one(client, route, PROMPTS[i % len(PROMPTS)], max_tokens)
            )
        sequential.elapsed_s = time.perf_counter() - start

        sustained = _Phase()
        deadline = time.perf_counter() + duration_s

        async def worker(offset: int) -> None:
            i = offset
            while time.perf_counter() < deadline:
                prompt = PROMPTS[i % len(PROMPTS)]
                sustained.samples.append(await _one(client, route, prompt, max_tokens))
                i += 1

        async def restarter(after_s: float, server: LlamaServer) -> None:
            await asyncio.sleep(after_s)
            await asyncio.to_thread(server.stop)
            await asyncio.sleep(1.0)
            await asyncio.to_thread(server.start)

        start = time.perf_counter()
        tasks = [worker(k) for k in range(concurrency)]
        if restart is not None:
            tasks.append(restarter(*restart))
        await asyncio.gather(*tasks)
        sustained.elapsed_s = time.perf_counter() - start
    return warmup, sequential, sustained


def _demo_router(directory: Path) -> Path:
    """A kNN router over the demo prompts, two demo models' real scores renamed to the local
    backends' names (the routing pattern is real; which local model it picks is what counts)."""
    demo = load_demo()
    columns = [demo.model_index(DEMO_STAND_INS[name]) for name in (WEAK, STRONG)]
    data = RoutingData(
        demo.prompts,
        [Model(WEAK), Model(STRONG)],
        score=demo.score[:, columns],
        cost=np.asarray(demo.cost)[:, columns],
        cost_basis=demo.cost_basis,
    )
    router = make_router("knn", k=20).fit(data)
    router.save(directory)
    PolicySetup.from_train(router, data).save(directory)
    return directory


def _write_config(folder: Path, servers: dict[str, LlamaServer], sdk: str) -> Path:
    config = {
        "models": {
            WEAK: {
                "api_base": servers[WEAK].api_base,
                "sdk": sdk,
                "price_in": 0.1,
                "price_out": 0.2,
                "context_window": servers[WEAK].n_ctx,
            },
            STRONG: {
                "api_base": servers[STRONG].api_base,
                "sdk": sdk,
                "price_in": 1.0,
                "price_out": 2.0,
                "context_window": servers[STRONG].n_ctx,
            },
        },
        "routes": {ROUTE: {"router": str(_demo_router(folder / "router")), "knob": 0.3}},
        "database": {"url": f"sqlite:///{folder / 'decisions.db'}"},
    }
    path = folder / "codyn.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


@contextmanager
def proxy_process(config: Path, log: Path | None = None) -> Iterator[str]:
    """``uvicorn --factory codyn.serve.app:app_from_env`` on a free loopback port; yields its
    base URL and stops it with SIGTERM (a graceful shutdown that drains the decision log)."""
    port = free_port()
    env = {**os.environ, "CODYN_CONFIG": str(config)}
    command = [
        sys.executable, "-m", "uvicorn", "--factory", "codyn.serve.app:app_from_env",
        "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning", "--no-access-log",
    ]  # fmt: skip
    with child_output(log) as out:
        process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120.0
        while True:
            if process.poll() is not None:
                raise CodynError(f"the proxy exited with {process.returncode}; see {log}")
            try:
                if httpx.get(f"{base_url}/healthz", timeout=2.0).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise CodynError("the proxy did not become ready in 120 s")
            time.sleep(0.2)
        yield base_url
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()


def bench_serve(
    config: Path | None = None,
    route: str | None = None,
    *,
    api_key: str | None = None,
    n: int = 200,
    concurrency: int = 4,
    duration_s: float = 20.0,
    max_tokens: int = 1,
    restart_after_s: float | None = None,
    sdk: str = "litellm",
) -> dict[str, Any]:
    """Run both phases and, on the self-contained setup (whose models are called through
    ``sdk``), check the decision log."""
    if config is not None and (restart_after_s is not None or sdk != "litellm"):
        raise CodynError("--restart-backend-after and --sdk need the self-contained setup")
    if sdk not in ("litellm", "openai"):
        raise CodynError(f"--sdk is litellm or openai, not {sdk!r}")
    with tempfile.TemporaryDirectory(prefix="codyn-bench-") as tmp:
        folder = Path(tmp)
        servers: dict[str, LlamaServer] = {}
        try:
            if config is None:
                servers = local_servers(folder)
                for server in servers.values():
                    server.start()
                config, route = _write_config(folder, servers, sdk), ROUTE
            if route is None:
                raise CodynError("give --model: the route (or model) to send requests to")
            restart = None if restart_after_s is None else (restart_after_s, servers[WEAK])
            with proxy_process(config, folder / "proxy.log") as base_url:
                warmup, sequential, sustained = asyncio.run(
                    _run(base_url, api_key, route, n, concurrency, duration_s, max_tokens, restart)
                )
        finally:
            for server in servers.values():
                server.stop()
        result: dict[str, Any] = {
            "route": route,
            "sdk": sdk if servers else None,
            "max_tokens": max_tokens,
            "concurrency": concurrency,
            "sequential": sequential.report(),
            "sustained": sustained.report(),
        }
        if servers:
            samples = warmup + sequential.samples + sustained.samples
            result["log_check"] = _check_log(config, samples)
        return result


def _check_log(config: Path, samples: list[_Sample]) -> dict[str, int]:
    """Responses against decision rows: every request logged once, none missing."""
    ids = [s.request_id for s in samples if s.request_id is not None]
    log = DecisionLog(load_config(config).database.resolved_url())
    rows = log.rows(limit=10**9)
    log.engine.dispose()
    logged = [row["id"] for row in rows]
    return {
        "requests": len(samples),
        "answered_200": sum(s.ok for s in samples),
        "unanswered": len(samples) - len(ids),
        "rows": len(logged),
        "missing_rows": len(set(ids) - set(logged)),
        "duplicate_rows": len(logged) - len(set(logged)),
        "fallback_rows": sum(bool(row["fallback"]) for row in rows),
    }
