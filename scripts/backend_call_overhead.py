"""What one chat completion call costs the caller, by client: aiohttp, an httpx transport,
the openai SDK and LiteLLM, each against a loopback server that answers at once (so that the
figures are the clients' own work). Behind `codyn.serve.wire`'s choice of aiohttp.

    python scripts/backend_call_overhead.py [--n 400]

The server is asyncio in a child process; it reads a request and writes a fixed answer.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

ANSWER = {
    "id": "x", "object": "chat.completion", "created": 1, "model": "m",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hi"},
                 "finish_reason": "length"}],
    "usage": {"prompt_tokens": 10, "completion_tokens": 1, "total_tokens": 11},
}  # fmt: skip
SERVER = """
import asyncio, sys
BODY = sys.argv[2].encode()
HEAD = b"HTTP/1.1 200 OK\\r\\ncontent-type: application/json\\r\\ncontent-length: %d\\r\\n\\r\\n"
async def handle(reader, writer):
    try:
        while True:
            head = await reader.readuntil(b"\\r\\n\\r\\n")
            size = 0
            for line in head.split(b"\\r\\n"):
                if line.lower().startswith(b"content-length:"):
                    size = int(line.split(b":")[1])
            await reader.readexactly(size)
            writer.write(HEAD % len(BODY) + BODY)
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        writer.close()
async def main():
    server = await asyncio.start_server(handle, "127.0.0.1", int(sys.argv[1]))
    print("ready", flush=True)
    await server.serve_forever()
asyncio.run(main())
"""


async def measure(port: int, n: int) -> dict[str, tuple[float, float]]:
    import aiohttp
    import httpx
    import litellm
    from openai import AsyncOpenAI

    base = f"http://127.0.0.1:{port}/v1"
    messages = [{"role": "user", "content": "Say hi"}]
    content = json.dumps({"model": "m", "messages": messages, "max_tokens": 1}).encode()
    headers = {"content-type": "application/json", "authorization": "Bearer k"}
    litellm.suppress_debug_info = True
    litellm.register_model(
        {"openai/m": {"input_cost_per_token": 1e-7, "output_cost_per_token": 2e-7,
                      "litellm_provider": "openai", "mode": "chat"}}
    )  # fmt: skip
    transport = httpx.AsyncHTTPTransport()
    session = aiohttp.ClientSession()
    sdk = AsyncOpenAI(base_url=base, api_key="k", max_retries=0)

    async def with_aiohttp() -> object:
        async with session.post(f"{base}/chat/completions", data=content, headers=headers) as r:
            return json.loads(await r.read())

    async def with_httpx_transport() -> object:
        url = f"{base}/chat/completions"
        request = httpx.Request("POST", url, content=content, headers=headers)
        response = await transport.handle_async_request(request)
        body = await response.aread()
        await response.aclose()
        return json.loads(body)

    async def with_openai_sdk() -> object:
        return await sdk.chat.completions.create(model="m", messages=messages, max_tokens=1)

    async def with_litellm() -> object:
        return await litellm.acompletion(
            model="openai/m", messages=messages, max_tokens=1, client=sdk
        )

    results = {}
    for call in (with_aiohttp, with_httpx_transport, with_openai_sdk, with_litellm):
        for _ in range(30):
            await call()
        times = []
        for _ in range(n):
            start = time.perf_counter()
            await call()
            times.append((time.perf_counter() - start) * 1000.0)
        times.sort()
        results[call.__name__] = (times[n // 2], times[int(n * 0.99)])
    await session.close()
    await sdk.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=400, help="timed calls per client")
    args = parser.parse_args()
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    from codyn.bench.local import free_port

    port = free_port()
    with instant_server(port):
        for name, (p50, p99) in asyncio.run(measure(port, args.n)).items():
            print(f"{name:22s} p50 {p50:6.3f} ms   p99 {p99:6.3f} ms")


@contextmanager
def instant_server(port: int) -> Iterator[None]:
    """`SERVER` on loopback ``port`` in a child process, ready, terminated at the end."""
    server = subprocess.Popen(
        [sys.executable, "-c", SERVER, str(port), json.dumps(ANSWER)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert server.stdout is not None and server.stdout.readline().strip() == "ready"
        yield
    finally:
        server.terminate()
        server.wait(timeout=10)


if __name__ == "__main__":
    main()
