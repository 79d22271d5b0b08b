"""The decision log on a real PostgreSQL (installed by apt, started here as a throwaway
cluster): rows arrive, a database outage fails no request (rows wait in the bounded buffer,
counted in the metrics) and they are written when it returns, rows the full buffer could not
hold wait in the journal for the next start, a graceful stop drains the buffer, and key
budgets count what earlier processes spent. Marked ``postgres``.

Requests that need no LLM (an unknown model, a refused key) make the rows, so the suite runs
without the llama.cpp backends.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from codyn.bench.local import WEAK, free_port
from codyn.serve.log import DecisionLog, DecisionRow
from tests.serve_support import (
    KEY,
    Postgres,
    Served,
    model_entry,
    postgres,  # noqa: F401  (fixture)
    serving,
    wait_for,
    write_config,
)

pytestmark = pytest.mark.postgres

BODY = {"model": "no-such-route", "messages": [{"role": "user", "content": "hi"}]}


def config(folder: Path, url: str, **database: object) -> Path:
    pytest.MonkeyPatch().setenv("CODYN_TEST_KEY", KEY)
    return write_config(
        folder,
        models={WEAK: model_entry(f"http://127.0.0.1:{free_port()}/v1", 0.1, 0.2)},
        keys={"alice": {"key_env": "CODYN_TEST_KEY", "budget_usd": 1.0, "role": "admin"}},
        database={"url": url, **database},
    )


def send(served: Served, n: int, key: str = KEY) -> list[str]:
    ids = []
    for _ in range(n):
        response = httpx.post(
            f"{served.url}/v1/chat/completions", json=BODY, timeout=10,
            headers={"Authorization": f"Bearer {key}"},
        )  # fmt: skip
        assert response.status_code in (401, 404)
        ids.append(response.headers["x-codyn-request-id"])
    return ids


def logged(url: str) -> set[str]:
    log = DecisionLog(url)
    try:
        return {row["id"] for row in log.rows(limit=100_000)}
    finally:
        log.engine.dispose()


def test_rows_reach_postgres(postgres: Postgres, tmp_path: Path) -> None:  # noqa: F811
    with serving(config(tmp_path, postgres.url)) as served:
        ids = send(served, 5) + send(served, 2, key="sk-wrong")
        wait_for(lambda: set(ids) <= logged(postgres.url), what="rows in PostgreSQL")
        rows = {r["id"]: r for r in served.rows()}
    assert sorted(rows[i]["status"] for i in ids) == [401, 401, 404, 404, 404, 404, 404]


def test_outage_buffers_and_fails_no_request(postgres: Postgres, tmp_path: Path) -> None:  # noqa: F811
    settings = config(tmp_path, postgres.url, buffer_rows=8)
    with serving(settings) as served:
        wait_for(lambda: served.proxy.log.stats.database_up, what="first connection")
        postgres.stop()
        try:
            ids = send(served, 10)  # every request still answered
            wait_for(lambda: not served.proxy.log.stats.database_up, what="outage noticed")
            health = httpx.get(f"{served.url}/healthz").json()
            assert health["database_up"] is False and health["log_buffered_rows"] == 8
            assert health["log_rows_dropped"] == 2
            admin = {"Authorization": f"Bearer {KEY}"}
            metrics = httpx.get(f"{served.url}/metrics", headers=admin).text
            assert "codyn_log_rows_dropped_total 2.0" in metrics
            assert "codyn_log_buffered_rows 8.0" in metrics
            dashboard = httpx.get(f"{served.url}/dashboard/data", headers=admin)
            assert dashboard.status_code == 503 and "database unavailable" in dashboard.text
        finally:
            postgres.start()
        wait_for(lambda: served.proxy.log.buffered == 0, timeout_s=60, what="buffer drained")
        assert set(ids[:8]) <= logged(postgres.url)
        assert not set(ids[8:]) & logged(postgres.url)
    with serving(settings) as restarted:  # the journal kept the two the buffer could not
        wait_for(lambda: set(ids) <= logged(postgres.url), what="the journal replayed")
        assert restarted.proxy.log.stats.replayed >= 2


def test_graceful_stop_drains_into_postgres(postgres: Postgres, tmp_path: Path) -> None:  # noqa: F811
    with serving(config(tmp_path, postgres.url)) as served:
        ids = send(served, 40)
    assert set(ids) <= logged(postgres.url)


def test_budgets_count_earlier_spending(postgres: Postgres, tmp_path: Path) -> None:  # noqa: F811
    earlier = DecisionLog(postgres.url)
    earlier.start()
    earlier.put(DecisionRow(id="spent-before", key_name="alice", cost_usd=1.5, model=WEAK))
    assert earlier.close() == 0
    with serving(config(tmp_path, postgres.url)) as served:
        wait_for(lambda: served.proxy.keys.loaded, what="spending loaded")
        response = httpx.post(
            f"{served.url}/v1/chat/completions", json={**BODY, "model": WEAK}, timeout=10,
            headers={"Authorization": f"Bearer {KEY}"},
        )  # fmt: skip
    assert response.status_code == 429 and "1.500000 of 1 USD" in response.text
