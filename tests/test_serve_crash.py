"""The proxy killed with SIGKILL under load loses no logged request and logs none twice.

Four clients keep sending plain and streamed requests through a proxy process that the test
started (uvicorn, as ``codyn serve`` runs it) to the real llama.cpp backends. In each of three
rounds the test SIGKILLs that process, and only that one, at a seeded moment just after a
streamed chunk, starts it again on the same config and carries on. A last start replays
the journal and a SIGTERM stops it. Then every request a client got a response for (a body,
or a stream's headers) has exactly one row: a finished one with the status its client saw, a
stream the kill cut as interrupted (or as finished, when its row was on disk before the kill
reached the client). Marked ``backend``; run with ``-s`` for the counts.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from codyn.bench.local import STRONG, WEAK, LlamaServer
from codyn.serve.journal import INTERRUPTED
from codyn.serve.log import DecisionLog, decisions
from tests.serve_support import (
    CHAT,
    CODE,
    ProxyProcess,
    llama,  # noqa: F401  (fixture)
    model_entry,
    router_dir,
    write_config,
)

pytestmark = pytest.mark.backend

CLIENTS = 4
ROUNDS = 3
SEED = 14


@dataclass
class Traffic:
    """What the clients saw, per request id: the status, and whether the answer was whole."""

    statuses: dict[str, int] = field(default_factory=dict)
    complete: set[str] = field(default_factory=set)
    streaming: threading.Event = field(default_factory=threading.Event)
    """Set at each streamed chunk (the moment to kill)."""
    lock: threading.Lock = field(default_factory=threading.Lock)

    def saw(self, request_id: str, status: int, whole: bool) -> None:
        with self.lock:
            self.statuses[request_id] = status
            if whole:
                self.complete.add(request_id)


def client(url: str, traffic: Traffic, stop: threading.Event, seed: int) -> None:
    """Send requests until ``stop``; a refused connection (the proxy is down) is retried."""
    rng = random.Random(seed)
    with httpx.Client(base_url=url, timeout=120) as http:
        while not stop.is_set():
            stream = rng.random() < 0.5
            text = rng.choice(CODE + CHAT)
            body = {
                "model": "codyn-code",
                "messages": [{"role": "user", "content": text}],
                "max_tokens": 48 if stream else 4,
                "stream": stream,
            }
            request_id = None
            try:
                if not stream:
                    response = http.post("/v1/chat/completions", json=body)
                    traffic.saw(response.headers["x-codyn-request-id"], response.status_code, True)
                    continue
                with http.stream("POST", "/v1/chat/completions", json=body) as response:
                    request_id = response.headers["x-codyn-request-id"]
                    traffic.saw(request_id, response.status_code, False)
                    for line in response.iter_lines():
                        if line.startswith('data: {"error"'):  # logged as 502
                            traffic.saw(request_id, 502, True)  # (llama.cpp cut it short)
                        elif line.startswith("data: {"):
                            traffic.streaming.set()
                        elif line == "data: [DONE]":
                            traffic.saw(request_id, response.status_code, True)
            except httpx.TransportError:
                time.sleep(0.05)  # the proxy is down (killed, restarting)


@pytest.fixture
def config(
    llama: dict[str, LlamaServer],  # noqa: F811
    tmp_path: Path,
) -> Iterator[Path]:
    yield write_config(
        tmp_path,
        models={
            WEAK: model_entry(llama[WEAK].api_base, 0.1, 0.2),
            STRONG: model_entry(llama[STRONG].api_base, 1.0, 2.0),
        },
        routes={
            "codyn-code": {
                "router": str(router_dir(tmp_path / "knn", "knn", featuriser="tfidf", k=3)),
                "knob": 0.5,
            }
        },
    )


def test_sigkill_under_load_loses_no_answered_request(config: Path, tmp_path: Path) -> None:
    proxy = ProxyProcess(config, tmp_path / "proxy.log")
    traffic, stop = Traffic(), threading.Event()
    rng = random.Random(SEED)
    threads = [
        threading.Thread(target=client, args=(proxy.url, traffic, stop, SEED + n), daemon=True)
        for n in range(CLIENTS)
    ]
    proxy.start()
    for thread in threads:
        thread.start()
    try:
        for _ in range(ROUNDS):
            answered = len(traffic.complete)
            deadline = time.monotonic() + 120
            while len(traffic.complete) < answered + 6:  # some answers in this round first
                assert time.monotonic() < deadline, "no answers"
                time.sleep(0.05)
            traffic.streaming.clear()
            assert traffic.streaming.wait(120), "no stream started"
            time.sleep(rng.uniform(0.0, 0.2))
            proxy.kill()
            proxy.start()
    finally:
        stop.set()
        for thread in threads:
            thread.join(120)
        proxy.stop()
    proxy.start()  # one more start: a replay with nothing new, then a graceful stop
    proxy.stop()

    log = DecisionLog(f"sqlite:///{tmp_path / 'decisions.db'}")
    rows = {row["id"]: row for row in log.rows(limit=100_000)}
    with log.engine.connect() as connection:
        stored = connection.execute(select(func.count()).select_from(decisions)).scalar_one()
    log.engine.dispose()
    answered = set(traffic.statuses)
    missing = answered - set(rows)
    cut = answered - traffic.complete
    interrupted = [i for i in answered if rows.get(i, {}).get("status") == INTERRUPTED]
    print(
        json.dumps(
            {
                "rounds": ROUNDS,
                "responses": len(answered),
                "completed": len(traffic.complete),
                "cut_streams": len(cut),
                "rows": stored,
                "missing": len(missing),
                "duplicates": stored - len(rows),
                "interrupted_rows": len(interrupted),
            }
        )
    )
    assert not missing and stored == len(rows)
    assert all(rows[i]["status"] == traffic.statuses[i] for i in traffic.complete)
    assert all(rows[i]["status"] in (INTERRUPTED, traffic.statuses[i]) for i in cut)
    assert interrupted  # the kills cut streams (llama.cpp may have cut the one they followed)
    assert all(rows[i]["stream"] and rows[i]["model"] in (WEAK, STRONG) for i in interrupted)
    assert "Traceback" not in (tmp_path / "proxy.log").read_text()
    assert not list((tmp_path / "decisions.db.codyn-journal").glob("*.jsonl"))
