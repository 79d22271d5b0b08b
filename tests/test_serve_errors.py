"""What a client gets for every bad request, and the log row each one leaves.

The proxy runs under uvicorn on loopback; the backends are ports where nothing listens (a
down backend, for real), so these tests need no LLM. Malformed JSON, a missing or wrong key,
an oversized body (declared and chunked), an unknown route, a bad knob, a spent budget and
every backend down: each gets its status code, an OpenAI-style error body and a row.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from codyn.bench.local import STRONG, WEAK, free_port
from tests.serve_support import KEY, Served, model_entry, router_dir, serving, write_config

CHAT = {"model": "codyn-code", "messages": [{"role": "user", "content": "Say hello."}]}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    folder = tmp_path_factory.mktemp("errors")
    pytest.MonkeyPatch().setenv("CODYN_TEST_KEY", KEY)
    pytest.MonkeyPatch().setenv("CODYN_TEST_BROKE_KEY", "sk-broke")
    down = {name: f"http://127.0.0.1:{free_port()}/v1" for name in (WEAK, STRONG)}
    config = write_config(
        folder,
        models={
            WEAK: model_entry(down[WEAK], 0.1, 0.2),
            STRONG: model_entry(down[STRONG], 1.0, 2.0),
        },
        routes={"codyn-code": {"router": str(router_dir(folder / "sbs"))}},
        keys={
            "alice": {"key_env": "CODYN_TEST_KEY", "budget_usd": 10.0, "role": "admin"},
            "broke": {"key_env": "CODYN_TEST_BROKE_KEY", "budget_usd": 0.0},
        },
        limits={"max_body_bytes": 4096},
    )
    with serving(config) as served:
        yield served


def post(served: Served, key: str | None = KEY, **kwargs: object) -> httpx.Response:
    headers = {} if key is None else {"Authorization": f"Bearer {key}"}
    return httpx.post(f"{served.url}/v1/chat/completions", headers=headers, timeout=30.0, **kwargs)


def check(served: Served, response: httpx.Response, status: int, message: str) -> dict:
    """The status, the OpenAI error shape, and the request's log row with the same status."""
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert message in error["message"] and {"type", "code"} <= set(error)
    row = served.row(response.headers["x-codyn-request-id"])
    assert row["status"] == status and message in row["error"]
    return row


def test_malformed_json_is_400(served: Served) -> None:
    response = post(served, content=b'{"model": "codyn-code", "messages": [')
    row = check(served, response, 400, "not valid JSON")
    assert row["key_name"] == "alice" and row["requested"] is None


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ([1, 2], "must be a JSON object"),
        ({"messages": CHAT["messages"]}, "`model` is required"),
        ({"model": "codyn-code", "messages": []}, "`messages` must be a non-empty list"),
        ({"model": "codyn-code", "messages": ["hi"]}, "every message must be an object"),
        ({**CHAT, "model": "codyn/codyn-code:high"}, "knob after ':' must be a number"),
    ],
)
def test_invalid_requests_are_400(served: Served, body: object, message: str) -> None:
    check(served, post(served, json=body), 400, message)


def test_missing_and_wrong_keys_are_401(served: Served) -> None:
    row = check(served, post(served, key=None, json=CHAT), 401, "missing API key")
    assert row["key_name"] is None
    check(served, post(served, key="sk-nobody", json=CHAT), 401, "invalid API key")
    assert httpx.get(f"{served.url}/v1/models").status_code == 401


def test_unknown_route_is_404(served: Served) -> None:
    row = check(served, post(served, json={**CHAT, "model": "gpt-9"}), 404, "'gpt-9' is neither")
    assert row["requested"] == "gpt-9" and row["route"] is None


def test_oversized_body_is_413_declared_or_chunked(served: Served) -> None:
    big = {**CHAT, "messages": [{"role": "user", "content": "x" * 5000}]}
    check(served, post(served, json=big), 413, "exceeds 4096 bytes")

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit counts what arrives
        yield b'{"model": "codyn-code", "messages": [{"role": "user", "content": "'
        for _ in range(10):
            yield b"y" * 1000
        yield b'"}]}'

    check(served, post(served, content=chunks()), 413, "exceeds 4096 bytes")


def test_spent_budget_is_429(served: Served) -> None:
    row = check(served, post(served, key="sk-broke", json=CHAT), 429, "budget of key 'broke'")
    assert row["key_name"] == "broke"


def test_every_backend_down_is_502_with_each_attempt_logged(served: Served) -> None:
    response = post(served, json=CHAT)
    row = check(served, response, 502, "every model failed")
    assert response.headers["x-codyn-route"] == "codyn-code"
    assert row["chosen"] == STRONG and row["model"] is None and row["fallback"] is False
    assert [a["model"] for a in row["attempts"]] == [STRONG, WEAK]
    assert row["predicted"] == {WEAK: 0.0, STRONG: 1.0}


def test_openai_sdk_sees_the_errors(served: Served) -> None:
    client = openai.OpenAI(base_url=f"{served.url}/v1", api_key=KEY, max_retries=0)
    with pytest.raises(openai.NotFoundError, match="neither a route"):
        client.chat.completions.create(model="gpt-9", messages=CHAT["messages"])
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=f"{served.url}/v1", api_key="bad", max_retries=0).models.list()
    assert [m.id for m in client.models.list()] == ["codyn-code", WEAK, STRONG]


def test_health_and_metrics_count_the_rejections(served: Served) -> None:
    post(served, json={**CHAT, "model": "gpt-9"})
    health = httpx.get(f"{served.url}/healthz").json()
    assert health["status"] == "ok" and health["log_rows_dropped"] == 0
    metrics = httpx.get(f"{served.url}/metrics", headers={"Authorization": f"Bearer {KEY}"}).text
    assert 'codyn_requests_total{model="",route="",status="404"}' in metrics
    assert "codyn_log_rows_written_total" in metrics


def test_graceful_stop_writes_every_row(tmp_path: Path) -> None:
    pytest.MonkeyPatch().setenv("CODYN_TEST_KEY", KEY)
    config = write_config(
        tmp_path,
        models={WEAK: model_entry(f"http://127.0.0.1:{free_port()}/v1", 0.1, 0.2)},
    )
    served = Served(config).start()
    ids = [
        post(served, key=None, json={**CHAT, "model": "nope"}).headers["x-codyn-request-id"]
        for _ in range(50)
    ]
    served.stop()
    assert served.proxy.log.buffered == 0
    from codyn.serve.log import DecisionLog

    reopened = DecisionLog(f"sqlite:///{tmp_path / 'decisions.db'}")
    assert {r["id"] for r in reopened.rows(limit=1000)} == set(ids)
    reopened.engine.dispose()
