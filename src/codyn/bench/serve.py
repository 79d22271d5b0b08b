"""``codyn bench serve``: what the proxy adds to a request, measured against real backends.

The proxy runs as its own process (uvicorn, as in production) so that the load generator does
not share its interpreter. Proxy overhead per request is the client's end-to-end time minus
the backend time the proxy measured on its HTTP transport (``x-codyn-backend-ms``: request
sent to last byte received); minus the routing decision (``x-codyn-decision-ms``) as well, it
is what the proxy costs beyond the decision itself (the mean wait for the decision journal is
read from the proxy's metrics). Two phases: ``n`` requests one at a time
(overhead percentiles), then ``concurrency`` clients for ``duration_s`` (sustained requests/s).
The load generator is aiohttp, the cheapest Python client here (`scripts/backend_call_overhead.py`),
since what the client spends on a request counts in this method's overhead.

Without a config the bench is self-contained: it starts the two local llama.cpp backends, a
kNN router trained on the bundled demo data (two of its models stand in for the local ones)
and a SQLite decision log in a temporary folder. It can restart a backend halfway through the
sustained phase and then checks the decision log against the responses: every request answered
and logged exactly once. Loopback only; bounded by ``n`` and ``duration_s``.

The self-contained setup then measures the proxy a second way, which needs no header and
subtracts the client's own work: each sample sends one prompt to the weak backend directly and
through codyn (the model by name: no routing decision), in an order that rotates, and the
proxy's overhead is its time minus the direct call's; one client, then ``concurrency`` clients
at once. With ``against_litellm`` (the ``litellm`` command of an install with
``litellm[proxy]``), LiteLLM's own proxy (no database) in front of the same backend is a third
way in each sample, measured the same. The prompt is always the same, so that the backend's
prompt cache makes its time short and steady (a new prompt costs SmolLM2 hundreds of
milliseconds here, whose jitter would swamp a few milliseconds of overhead). With several
clients the backend serves one request at a time, so each difference also holds a queueing
wait; their median stays centred, with a wider spread.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
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
JSON = {"content-type": "application/json"}


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


def _client(base_url: str, api_key: str | None, concurrency: int) -> aiohttp.ClientSession:
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    return aiohttp.ClientSession(
        base_url=base_url,
        headers=headers,
        timeout=aiohttp.ClientTimeout(total=120.0),
        connector=aiohttp.TCPConnector(limit=concurrency + 2),
    )


def _body(model: str, prompt: str, max_tokens: int) -> bytes:
    body = {"model": model, "max_tokens": max_tokens, "temperature": 0,
            "messages": [{"role": "user", "content": prompt}]}  # fmt: skip
    return json.dumps(body).encode()


async def _post(client: aiohttp.ClientSession, body: bytes) -> tuple[int, dict[str, str]]:
    """POST a chat completion and read its whole answer: the status and the headers (names
    in lower case)."""
    async with client.post("/v1/chat/completions", data=body, headers=JSON) as response:
        await response.read()
        return response.status, {k.lower(): v for k, v in response.headers.items()}


async def _one(client: aiohttp.ClientSession, route: str, prompt: str, max_tokens: int) -> _Sample:
    body = _body(route, prompt, max_tokens)
    start = time.perf_counter()
    try:
        status, headers = await _post(client, body)
    except (TimeoutError, aiohttp.ClientError):
        return _Sample(False, (time.perf_counter() - start) * 1000.0)
    e2e = (time.perf_counter() - start) * 1000.0

    def number(name: str) -> float | None:
        return float(headers[name]) if name in headers else None

    return _Sample(
        status == 200,
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
    async with _client(base_url, api_key, concurrency) as client:
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
    prices = {WEAK: (0.1, 0.2), STRONG: (1.0, 2.0)}
    config = {
        "models": {
            name: {
                "api_base": servers[name].api_base,
                "sdk": sdk,
                "price_in": price_in,
                "price_out": price_out,
                "context_window": servers[name].n_ctx,
            }
            for name, (price_in, price_out) in prices.items()
        },
        "routes": {ROUTE: {"router": str(_demo_router(folder / "router")), "knob": 0.3}},
        "database": {"url": f"sqlite:///{folder / 'decisions.db'}"},
    }
    path = folder / "codyn.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


@contextmanager
def server_process(
    command: list[str], env: dict[str, str], health_url: str, log: Path | None, what: str
) -> Iterator[None]:
    """A server child process, ready once ``health_url`` answers 200; stopped with SIGTERM (a
    graceful shutdown: codyn's drains the decision log)."""
    with child_output(log) as out:
        process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120.0
        while True:
            if process.poll() is not None:
                raise CodynError(f"{what} exited with {process.returncode}; see {log}")
            try:
                if httpx.get(health_url, timeout=2.0).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise CodynError(f"{what} did not become ready in 120 s; see {log}")
            time.sleep(0.2)
        yield
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()


@contextmanager
def proxy_process(config: Path, log: Path | None = None) -> Iterator[str]:
    """``uvicorn --factory codyn.serve.app:app_from_env`` on a free loopback port; yields its
    base URL."""
    port = free_port()
    env = {**os.environ, "CODYN_CONFIG": str(config)}
    command = [
        sys.executable, "-m", "uvicorn", "--factory", "codyn.serve.app:app_from_env",
        "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning", "--no-access-log",
    ]  # fmt: skip
    base_url = f"http://127.0.0.1:{port}"
    with server_process(command, env, f"{base_url}/healthz", log, "the proxy"):
        yield base_url


@contextmanager
def litellm_proxy(executable: str, server: LlamaServer, folder: Path) -> Iterator[str]:
    """LiteLLM's proxy (``executable --config``: one worker, no database, its logs at ERROR)
    in front of ``server`` under the model's name; yields its base URL."""
    config = {
        "model_list": [
            {
                "model_name": server.alias,
                "litellm_params": {
                    "model": f"openai/{server.alias}",
                    "api_base": server.api_base,
                    "api_key": "no-key",
                },
            }
        ]
    }
    path = folder / "litellm.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    port = free_port()
    env = {  # on loopback with no key, as codyn's side of the bench runs
        **os.environ,
        "LITELLM_LOG": "ERROR",
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "LITELLM_DANGEROUSLY_PERMIT_WEAK_OR_UNSET_MASTER_KEY": "true",
    }
    env.pop("DATABASE_URL", None)
    command = [executable, "--config", str(path), "--host", "127.0.0.1", "--port", str(port),
               "--num_workers", "1"]  # fmt: skip
    base_url = f"http://127.0.0.1:{port}"
    health = f"{base_url}/health/liveliness"
    with server_process(command, env, health, folder / "litellm.log", "LiteLLM's proxy"):
        yield base_url


async def _paired(
    bases: dict[str, str], model: str, n: int, concurrency: int, duration_s: float, max_tokens: int
) -> dict[str, Any]:
    """Each proxy's overhead as its end-to-end time minus the direct call's, per sample; ``n``
    samples one at a time, then ``concurrency`` clients for ``duration_s``."""
    names = list(bases)
    clients = {name: _client(url, None, concurrency) for name, url in bases.items()}
    body = _body(model, PROMPTS[1], max_tokens)
    codyn_ids: list[str] = []

    async def sample(k: int) -> dict[str, float] | None:
        times = {}
        for name in names[k % len(names) :] + names[: k % len(names)]:
            start = time.perf_counter()
            status, headers = await _post(clients[name], body)
            times[name] = (time.perf_counter() - start) * 1000.0
            if "x-codyn-request-id" in headers:
                codyn_ids.append(headers["x-codyn-request-id"])
            if status != 200:
                return None
        return {name: times[name] - times["direct"] for name in names if name != "direct"}

    def summary(samples: list[dict[str, float] | None]) -> dict[str, Any]:
        good = [s for s in samples if s is not None]
        out: dict[str, Any] = {"samples": len(samples), "failed": len(samples) - len(good)}
        for name in names[1:]:
            values = np.array([s[name] for s in good])
            out[name] = {
                "p50": float(np.percentile(values, 50)) if values.size else None,
                "p99": float(np.percentile(values, 99)) if values.size else None,
            }
        return out

    try:
        for k in range(2 * len(PROMPTS)):  # connections, caches
            await sample(k)
        sequential = [await sample(k) for k in range(n)]
        sustained: list[dict[str, float] | None] = []
        deadline = time.perf_counter() + duration_s

        async def worker(offset: int) -> None:
            k = offset
            while time.perf_counter() < deadline:
                sustained.append(await sample(k))
                k += concurrency

        await asyncio.gather(*(worker(k) for k in range(concurrency)))
    finally:
        for client in clients.values():
            await client.close()
    return {
        "sequential": summary(sequential),
        "sustained": summary(sustained),
        "codyn_request_ids": codyn_ids,
    }


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
    sdk: str = "auto",
    against_litellm: str | None = None,
) -> dict[str, Any]:
    """Run both phases and, on the self-contained setup (whose models are called through
    ``sdk``), check the decision log; with ``against_litellm``, compare with LiteLLM's proxy."""
    if config is not None and (
        restart_after_s is not None or sdk != "auto" or against_litellm is not None
    ):
        raise CodynError(
            "--restart-backend-after, --sdk and --against-litellm need the self-contained setup"
        )
    if sdk not in ("auto", "litellm", "openai"):
        raise CodynError(f"--sdk is auto, litellm or openai, not {sdk!r}")
    if against_litellm is not None:
        found = shutil.which(against_litellm)
        if found is None:
            raise CodynError(
                f"--against-litellm: no executable {against_litellm!r} "
                "(the `litellm` command of an install with litellm[proxy])"
            )
        against_litellm = found
    comparison: dict[str, Any] | None = None
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
                journal = _journal_wait(base_url, api_key)
                if servers:
                    direct = servers[WEAK].api_base.removesuffix("/v1")
                    bases = {"direct": direct, "codyn": base_url}
                    with ExitStack() as stack:
                        if against_litellm is not None:
                            bases["litellm"] = stack.enter_context(
                                litellm_proxy(against_litellm, servers[WEAK], folder)
                            )
                        comparison = asyncio.run(
                            _paired(bases, WEAK, n, concurrency, duration_s, max_tokens)
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
            "journal_wait": journal,
        }
        if servers:
            samples = warmup + sequential.samples + sustained.samples
            if comparison is not None:  # its requests through codyn are logged too
                ids = comparison.pop("codyn_request_ids")
                samples += [_Sample(True, 0.0, request_id=request_id) for request_id in ids]
            result["log_check"] = _check_log(config, samples)
        if comparison is not None:
            for phase in comparison.values():
                if "litellm" in phase:
                    codyn, litellm = phase["codyn"]["p50"], phase["litellm"]["p50"]
                    ratio = codyn / litellm if codyn is not None and litellm else None
                    phase["ratio_p50"] = ratio
            result["paired"] = comparison
        return result


def _journal_wait(base_url: str, api_key: str | None) -> dict[str, float] | None:
    """What responses waited for their journal records, from the proxy's metrics (the mean:
    its histogram's buckets are too coarse for percentiles); None when ``/metrics`` is closed
    to the key."""
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    response = httpx.get(f"{base_url}/metrics", headers=headers, timeout=10.0)
    if response.status_code != 200:
        return None
    from prometheus_client.parser import text_string_to_metric_families

    values = {
        sample.name: sample.value
        for family in text_string_to_metric_families(response.text)
        if family.name == "codyn_journal_wait_seconds"
        for sample in family.samples
    }
    count = values.get("codyn_journal_wait_seconds_count", 0.0)
    total = values.get("codyn_journal_wait_seconds_sum", 0.0)
    return {"waits": count, "mean_ms": total / count * 1000.0 if count else None}


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
