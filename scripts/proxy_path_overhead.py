"""What the proxy itself adds to a request, with a backend that answers at once (so that the
figures are the proxy's own work, not a model's): the app driven in-process over ASGI (no
client socket), then over real sockets, codyn and a bare uvicorn-plus-aiohttp relay each
minus a direct call to the backend, in rotating order. Behind the README's overhead notes;
`codyn bench serve` has the end-to-end figures against the llama.cpp backends.

    python scripts/proxy_path_overhead.py [--n 1000]

The backend is `backend_call_overhead.py`'s asyncio server in a child process; codyn logs to
SQLite (its journal included) in a temporary folder; both proxies run under uvicorn
(`codyn.bench.serve`'s process helpers).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from backend_call_overhead import instant_server

RELAY = """
import os, aiohttp
URL = os.environ["RELAY_BACKEND"] + "/chat/completions"
session = None
async def app(scope, receive, send):
    global session
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            else:
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["path"] == "/healthz":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})
        return
    if session is None:
        session = aiohttp.ClientSession()
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    async with session.post(URL, data=body, headers={"content-type": "application/json"}) as r:
        data = await r.read()
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(data))]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": data})
"""
BODY = json.dumps(
    {"model": "m", "max_tokens": 1, "messages": [{"role": "user", "content": "Say hi"}]}
).encode()


def percentiles(times: list[float]) -> str:
    p50, p99 = np.percentile(times, [50, 99])
    return f"p50 {p50:6.3f} ms   p99 {p99:6.3f} ms"


async def in_process(config: Path, n: int) -> list[float]:
    """The app's time per request, called as ASGI with the whole body at once."""
    from codyn.serve.app import create_app

    app = create_app(config)
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
        "scheme": "http", "path": "/v1/chat/completions", "raw_path": b"/v1/chat/completions",
        "query_string": b"", "root_path": "", "server": ("127.0.0.1", 1),
        "client": ("127.0.0.1", 2),
        "headers": [(b"content-type", b"application/json"),
                    (b"content-length", str(len(BODY)).encode())],
    }  # fmt: skip

    async def one() -> None:
        sent = False
        out: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": BODY, "more_body": False}
            await asyncio.Event().wait()  # never disconnects
            raise AssertionError

        async def send(message: dict[str, Any]) -> None:
            out.append(message)

        await app(scope, receive, send)
        assert out[0]["status"] == 200, out

    times = []
    async with app.router.lifespan_context(app):
        for _ in range(50):
            await one()
        for _ in range(n):
            start = time.perf_counter()
            await one()
            times.append((time.perf_counter() - start) * 1000.0)
    return times


async def over_sockets(bases: dict[str, str], n: int) -> dict[str, list[float]]:
    """Each proxy's time minus the direct call's, per sample, in rotating order."""
    import aiohttp

    names = list(bases)
    differences: dict[str, list[float]] = {name: [] for name in names if name != "direct"}
    async with aiohttp.ClientSession() as session:

        async def timed(name: str) -> float:
            start = time.perf_counter()
            url = bases[name] + "/v1/chat/completions"
            headers = {"content-type": "application/json"}
            async with session.post(url, data=BODY, headers=headers) as response:
                await response.read()
                assert response.status == 200, (name, response.status)
            return (time.perf_counter() - start) * 1000.0

        for k in range(20 + n):
            order = names[k % len(names) :] + names[: k % len(names)]
            times = {name: await timed(name) for name in order}
            if k >= 20:
                for name in differences:
                    differences[name].append(times[name] - times["direct"])
    return differences


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000, help="timed requests per measurement")
    args = parser.parse_args()
    import uvloop

    from codyn.bench.local import free_port
    from codyn.bench.serve import proxy_process, server_process

    folder = Path(tempfile.mkdtemp(prefix="codyn-path-"))
    port = free_port()
    with instant_server(port):
        backend = f"http://127.0.0.1:{port}/v1"
        config = folder / "codyn.yaml"
        models = {"m": {"api_base": backend, "price_in": 0.1, "price_out": 0.2}}
        database = {"url": f"sqlite:///{folder / 'decisions.db'}"}
        config.write_text(yaml.safe_dump({"models": models, "database": database}))
        print(f"in-process (ASGI)      {percentiles(uvloop.run(in_process(config, args.n)))}")

        (folder / "relay.py").write_text(RELAY)
        relay_port = free_port()
        relay = [sys.executable, "-m", "uvicorn", "--host", "127.0.0.1", "--port",
                 str(relay_port), "--log-level", "warning", "--no-access-log",
                 "--app-dir", str(folder), "relay:app"]  # fmt: skip
        relay_url = f"http://127.0.0.1:{relay_port}"
        env = {**os.environ, "RELAY_BACKEND": backend}
        with (
            proxy_process(config) as codyn_url,
            server_process(relay, env, f"{relay_url}/healthz", None, "the relay"),
        ):
            bases = {"direct": f"http://127.0.0.1:{port}", "codyn": codyn_url, "relay": relay_url}
            for name, times in asyncio.run(over_sockets(bases, args.n)).items():
                print(f"{name + ' minus direct':22s} {percentiles(times)}")


if __name__ == "__main__":
    main()
