"""Who may see what: with keys configured, ``/metrics`` and the dashboard need an admin key
(Bearer, or HTTP Basic as a browser sends it), ``metrics_public`` opens ``/metrics`` alone,
``/healthz`` stays open and shows no spending; without keys everything is open. Also the
OpenAI shape of ``/v1/models/{id}`` and of unknown paths.

The proxy runs under uvicorn on loopback; its backends are ports where nothing listens, so
these tests need no LLM.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from codyn.bench.local import STRONG, WEAK, free_port
from tests.serve_support import KEY, Served, model_entry, router_dir, serving, write_config

ADMIN_KEY = "sk-test-admin"
MONITORING = ("/metrics", "/dashboard", "/dashboard/data")


def config(folder: Path, **sections: object) -> Path:
    pytest.MonkeyPatch().setenv("CODYN_TEST_KEY", KEY)
    pytest.MonkeyPatch().setenv("CODYN_TEST_ADMIN_KEY", ADMIN_KEY)
    down = f"http://127.0.0.1:{free_port()}/v1"
    return write_config(
        folder,
        models={WEAK: model_entry(down, 0.1, 0.2), STRONG: model_entry(down, 1.0, 2.0)},
        routes={"codyn-code": {"router": str(router_dir(folder / "sbs"))}},
        **sections,
    )


KEYS = {
    "alice": {"key_env": "CODYN_TEST_KEY", "budget_usd": 5.0},
    "ops": {"key_env": "CODYN_TEST_ADMIN_KEY", "role": "admin"},
}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    with serving(config(tmp_path_factory.mktemp("monitoring"), keys=KEYS)) as served:
        yield served


def get(served: Served, path: str, **kwargs: object) -> httpx.Response:
    return httpx.get(f"{served.url}{path}", timeout=30, **kwargs)


@pytest.mark.parametrize("path", MONITORING)
def test_monitoring_needs_an_admin_key(served: Served, path: str) -> None:
    anonymous = get(served, path)
    assert anonymous.status_code == 401 and "missing API key" in anonymous.text
    assert anonymous.headers["www-authenticate"] == 'Basic realm="codyn"'
    assert set(anonymous.json()["error"]) == {"message", "type", "param", "code"}
    assert get(served, path, headers={"Authorization": "Bearer sk-nobody"}).status_code == 401
    user = get(served, path, headers={"Authorization": f"Bearer {KEY}"})
    assert user.status_code == 403 and "'alice' is not an admin key" in user.text
    assert user.json()["error"]["type"] == "permission_error"
    bearer = get(served, path, headers={"Authorization": f"Bearer {ADMIN_KEY}"})
    basic = get(served, path, auth=("anyone", ADMIN_KEY))
    assert bearer.status_code == basic.status_code == 200
    assert get(served, path, auth=("anyone", KEY)).status_code == 403


def test_an_admin_key_also_routes(served: Served) -> None:
    client = openai.OpenAI(base_url=f"{served.url}/v1", api_key=ADMIN_KEY, max_retries=0)
    with pytest.raises(openai.APIStatusError) as raised:  # the backends are down: 502
        client.chat.completions.create(
            model="codyn-code", messages=[{"role": "user", "content": "hi"}]
        )
    assert raised.value.status_code == 502


def test_health_is_open_and_shows_no_spending(served: Served) -> None:
    health = get(served, "/healthz")
    assert health.status_code == 200 and health.json()["status"] == "ok"
    text = health.text.lower()
    assert not any(word in text for word in ("usd", "spen", "cost", "budget", "alice"))


def test_metrics_public_opens_metrics_alone(tmp_path: Path) -> None:
    with serving(config(tmp_path, keys=KEYS, metrics_public=True)) as served:
        assert get(served, "/metrics").status_code == 200
        assert get(served, "/dashboard").status_code == 401
        assert get(served, "/dashboard/data").status_code == 401


def test_without_keys_monitoring_is_open(tmp_path: Path) -> None:
    with serving(config(tmp_path)) as served:
        assert [get(served, path).status_code for path in MONITORING] == [200, 200, 200]


def test_models_retrieve_answers_a_model_or_an_openai_404(served: Served) -> None:
    client = openai.OpenAI(base_url=f"{served.url}/v1", api_key=KEY, max_retries=0)
    assert client.models.retrieve("codyn-code").id == "codyn-code"
    assert client.models.retrieve(WEAK).owned_by == "codyn"
    assert client.models.retrieve("codyn/codyn-code:0.3").id == "codyn/codyn-code:0.3"
    with pytest.raises(openai.NotFoundError) as raised:
        client.models.retrieve("gpt-9")
    error = raised.value.body
    assert isinstance(error, dict) and error["code"] == "model_not_found"
    assert error["param"] == "model" and "'gpt-9' is neither" in error["message"]
    assert get(served, "/v1/models/codyn-code").status_code == 401


def test_unknown_paths_and_methods_answer_in_openai_shape(served: Served) -> None:
    missing = get(served, "/v1/embeddings")
    assert missing.status_code == 404
    assert missing.json()["error"]["message"] == "Invalid URL (GET /v1/embeddings)"
    wrong = httpx.delete(f"{served.url}/v1/chat/completions")
    assert wrong.status_code == 405 and wrong.json()["error"]["type"] == "invalid_request_error"
