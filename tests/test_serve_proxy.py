"""The proxy against real local LLMs: llama.cpp serving SmolLM2-135M (weak) and
Qwen2.5-Coder-0.5B (strong), with the real openai SDK and LiteLLM as clients.

Routing with headers and the routed model in the body, knobs in the model name, pass-through,
streaming, stickiness, budgets, metrics, and every fallback for real: a backend killed with
SIGKILL, a timeout, a context-length overflow, a backend killed mid-stream (error event) and a
client that hangs up mid-stream (row 499). Usage as the backend reports it (an estimate
flagged as one), requests in flight, routing a request that has no user turn, and the
README's serving example as written. Marked
``backend``: needs llama-cpp-python[server] and the two model packages.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import litellm
import openai
import pytest
import yaml

from codyn.bench.local import STRONG, WEAK, LlamaServer
from tests.serve_support import (
    KEY,
    Served,
    ensure_running,
    llama,  # noqa: F401  (fixture)
    model_entry,
    router_dir,
    serving,
    wait_for,
    write_config,
)

pytestmark = pytest.mark.backend

CODE_PROMPT = "Write a Python function that checks whether a number is prime."
CHAT_PROMPT = "Say hello to my friend."
ADMIN = {"Authorization": f"Bearer {KEY}"}
SLOW = "qwen-slow"
VIA_LITELLM = "smollm2-litellm"


@pytest.fixture(scope="module")
def served(
    llama: dict[str, LlamaServer],  # noqa: F811
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Served]:
    folder = tmp_path_factory.mktemp("proxy")
    pytest.MonkeyPatch().setenv("CODYN_TEST_KEY", KEY)
    pytest.MonkeyPatch().setenv("CODYN_TEST_TINY_KEY", "sk-tiny")
    weak, strong = llama[WEAK].api_base, llama[STRONG].api_base
    config = write_config(
        folder,
        models={
            WEAK: model_entry(weak, 0.1, 0.2, context_window=256),
            STRONG: model_entry(strong, 1.0, 2.0, context_window=2048),
            SLOW: model_entry(strong, 1.0, 2.0, litellm=f"openai/{STRONG}", timeout_s=0.001),
            VIA_LITELLM: model_entry(weak, 0.1, 0.2, sdk="litellm"),
        },
        routes={
            "codyn-code": {
                "router": str(router_dir(folder / "knn", "knn", featuriser="tfidf", k=3)),
                "knob": 0.5,
                "sticky": True,
            },
            "sbs": {"router": str(router_dir(folder / "sbs"))},
            "weak-first": {"router": str(router_dir(folder / "weak", f"single:{WEAK}"))},
            "slow-first": {
                "router": str(router_dir(folder / "slow", f"single:{SLOW}", models=(WEAK, SLOW)))
            },
        },
        keys={
            "alice": {"key_env": "CODYN_TEST_KEY", "budget_usd": 100.0, "role": "admin"},
            "tiny": {"key_env": "CODYN_TEST_TINY_KEY", "budget_usd": 1e-9},
        },
    )
    with serving(config) as served:
        yield served


@pytest.fixture(scope="module")
def client(served: Served) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{served.url}/v1", api_key=KEY, max_retries=0, timeout=120)


def ask(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def test_route_picks_by_prompt_and_says_so(served: Served, client: openai.OpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="codyn-code", messages=ask(CODE_PROMPT), max_tokens=8, temperature=0
    )
    reply = raw.parse()
    assert raw.headers["x-codyn-model"] == STRONG == reply.model
    assert raw.headers["x-codyn-route"] == "codyn-code"
    assert float(raw.headers["x-codyn-decision-ms"]) >= 0
    assert reply.choices[0].message.content and reply.usage.completion_tokens > 0
    row = served.row(raw.headers["x-codyn-request-id"])
    assert (row["route"], row["chosen"], row["model"], row["status"]) == (
        "codyn-code", STRONG, STRONG, 200,
    )  # fmt: skip
    assert row["predicted"][STRONG] > row["predicted"][WEAK] and row["key_name"] == "alice"
    usage = reply.usage
    cost = (usage.prompt_tokens * 1.0 + usage.completion_tokens * 2.0) / 1e6
    assert row["cost_usd"] == pytest.approx(cost) == row["strongest_cost_usd"]
    assert row["latency_ms"] >= row["backend_ms"] > 0

    chat = client.chat.completions.with_raw_response.create(
        model="codyn-code", messages=ask(CHAT_PROMPT), max_tokens=8
    )
    assert chat.headers["x-codyn-model"] == WEAK == chat.parse().model
    row = served.row(chat.headers["x-codyn-request-id"])
    assert row["strongest_cost_usd"] > row["cost_usd"] > 0  # what routing saved


def test_knob_in_the_model_name(served: Served, client: openai.OpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="codyn/codyn-code:5", messages=ask(CODE_PROMPT), max_tokens=4
    )
    assert raw.parse().model == WEAK and raw.headers["x-codyn-route"] == "codyn-code"
    assert served.row(raw.headers["x-codyn-request-id"])["knob"] == 5


def test_catalog_model_passes_through(served: Served, client: openai.OpenAI) -> None:
    for model in (WEAK, VIA_LITELLM):  # OpenAI's protocol directly, then through LiteLLM
        raw = client.chat.completions.with_raw_response.create(
            model=model, messages=ask(CHAT_PROMPT), max_tokens=4
        )
        assert raw.parse().model == model and raw.headers["x-codyn-route"] == "passthrough"
        row = served.row(raw.headers["x-codyn-request-id"])
        assert row["predicted"] is None and row["tokens_out"] > 0 and row["backend_ms"] > 0


def test_streaming_passes_events_through(served: Served, client: openai.OpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="codyn-code", messages=ask(CODE_PROMPT), max_tokens=12, stream=True
    )
    assert raw.headers["x-codyn-model"] == STRONG
    assert raw.headers["content-type"].startswith("text/event-stream")
    chunks = list(raw.parse())
    assert {c.model for c in chunks} == {STRONG}
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert all(c.usage is None for c in chunks)  # the usage chunk is for those who ask
    row = served.row(raw.headers["x-codyn-request-id"])
    assert row["stream"] and row["status"] == 200 and row["tokens_out"] > 0

    with_usage = list(
        client.chat.completions.create(
            model=WEAK, messages=ask(CHAT_PROMPT), max_tokens=4, stream=True,
            stream_options={"include_usage": True},
        )
    )  # fmt: skip
    assert with_usage[-1].choices == [] and with_usage[-1].usage.completion_tokens > 0


def test_litellm_as_client(served: Served) -> None:
    reply = litellm.completion(
        model="openai/codyn-code", api_base=f"{served.url}/v1", api_key=KEY,
        messages=ask(CHAT_PROMPT), max_tokens=4,
    )  # fmt: skip
    assert reply.model.endswith(WEAK)
    stream = litellm.completion(
        model="openai/codyn-code", api_base=f"{served.url}/v1", api_key=KEY,
        messages=ask(CODE_PROMPT), max_tokens=4, stream=True,
    )  # fmt: skip
    assert "".join(chunk.choices[0].delta.content or "" for chunk in stream)


def test_killed_backend_falls_back_to_the_next_model(
    served: Served,
    client: openai.OpenAI,
    llama: dict[str, LlamaServer],  # noqa: F811
) -> None:
    llama[STRONG].kill()
    try:
        raw = client.chat.completions.with_raw_response.create(
            model="sbs", messages=ask(CODE_PROMPT), max_tokens=4
        )
        assert raw.parse().model == WEAK == raw.headers["x-codyn-model"]
        row = served.row(raw.headers["x-codyn-request-id"])
        assert row["chosen"] == STRONG and row["model"] == WEAK and row["fallback"] is True
        assert [a["model"] for a in row["attempts"]] == [STRONG]
        assert "Connection" in row["attempts"][0]["error"]
    finally:
        ensure_running(llama[STRONG])
    metrics = httpx.get(f"{served.url}/metrics", headers=ADMIN).text
    assert f'codyn_fallbacks_total{{model="{WEAK}",route="sbs"}} 1.0' in metrics


def test_timeout_falls_back(served: Served, client: openai.OpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="slow-first", messages=ask(CHAT_PROMPT), max_tokens=4
    )
    assert raw.parse().model == WEAK
    row = served.row(raw.headers["x-codyn-request-id"])
    assert row["attempts"][0]["model"] == SLOW and "Timeout" in row["attempts"][0]["error"]


def test_context_overflow_falls_back_to_a_larger_window(
    served: Served, client: openai.OpenAI
) -> None:
    long_prompt = "Summarise: " + "the cat sat on the mat. " * 45  # ~320 tokens > 256
    raw = client.chat.completions.with_raw_response.create(
        model="weak-first", messages=ask(long_prompt), max_tokens=1
    )
    assert raw.parse().model == STRONG
    row = served.row(raw.headers["x-codyn-request-id"])
    assert row["attempts"][0]["model"] == WEAK
    assert "ContextWindowExceeded" in row["attempts"][0]["error"]


def test_backend_dying_mid_stream_ends_with_an_error_event(
    served: Served,
    client: openai.OpenAI,
    llama: dict[str, LlamaServer],  # noqa: F811
) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="sbs", messages=ask(CODE_PROMPT), max_tokens=200, stream=True
    )
    stream = iter(raw.parse())
    try:
        assert next(stream).model == STRONG
        llama[STRONG].kill()
        with pytest.raises(openai.APIError, match="backend failed mid-stream"):
            for _ in stream:
                pass
    finally:
        ensure_running(llama[STRONG])
    row = served.row(raw.headers["x-codyn-request-id"])
    assert row["status"] == 502 and "mid-stream" in row["error"] and row["model"] == STRONG


def test_client_hanging_up_mid_stream_is_logged_499(served: Served) -> None:
    body = {"model": "sbs", "messages": ask(CODE_PROMPT), "max_tokens": 64, "stream": True}
    headers = {"Authorization": f"Bearer {KEY}"}
    with httpx.stream(
        "POST", f"{served.url}/v1/chat/completions", json=body, headers=headers, timeout=120
    ) as response:
        request_id = response.headers["x-codyn-request-id"]
        first = next(response.iter_lines())
        assert json.loads(first.removeprefix("data: "))["model"] == STRONG
    row = served.row(request_id, timeout_s=30)
    assert row["status"] == 499 and row["error"] == "client disconnected mid-stream"


def test_sticky_conversation_stays_on_its_model(client: openai.OpenAI) -> None:
    def model(text: str, conversation: str) -> str:
        reply = client.chat.completions.create(
            model="codyn-code", messages=ask(text), max_tokens=2,
            extra_headers={"x-codyn-conversation": conversation},
        )  # fmt: skip
        return reply.model

    assert model(CODE_PROMPT, "c-1") == STRONG
    assert model(CHAT_PROMPT, "c-1") == STRONG  # a chat turn would go to the weak model
    assert model(CHAT_PROMPT, "c-2") == WEAK


def test_spent_budget_is_refused(served: Served) -> None:
    tiny = openai.OpenAI(base_url=f"{served.url}/v1", api_key="sk-tiny", max_retries=0)
    tiny.chat.completions.create(model=WEAK, messages=ask(CHAT_PROMPT), max_tokens=2)
    with pytest.raises(openai.RateLimitError, match="budget of key 'tiny' is spent"):
        tiny.chat.completions.create(model=WEAK, messages=ask(CHAT_PROMPT), max_tokens=2)
    wait_for(lambda: any(r["status"] == 429 for r in served.rows()), what="the 429 row")


def test_metrics_count_models_costs_and_decisions(served: Served) -> None:
    text = httpx.get(f"{served.url}/metrics", headers=ADMIN).text
    assert f'codyn_requests_total{{model="{STRONG}",route="codyn-code",status="200"}}' in text
    assert f'codyn_chosen_total{{model="{WEAK}",route="codyn-code"}}' in text
    assert f'codyn_cost_usd_total{{model="{STRONG}",route="codyn-code"}}' in text
    assert 'codyn_decision_seconds_bucket{le="0.01",route="codyn-code"}' in text
    assert "codyn_log_database_up 1.0" in text


OPENAI_USAGE = {
    "prompt_tokens", "completion_tokens", "total_tokens", "prompt_tokens_details",
    "completion_tokens_details",
}  # fmt: skip


def test_usage_is_the_backends_and_an_estimate_says_so(
    served: Served, client: openai.OpenAI
) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model=WEAK, messages=ask(CHAT_PROMPT), max_tokens=4
    )
    usage = raw.parse().usage
    row = served.row(raw.headers["x-codyn-request-id"])
    assert (row["tokens_in"], row["tokens_out"]) == (usage.prompt_tokens, usage.completion_tokens)
    assert row["usage_estimated"] is False
    assert float(raw.headers["x-codyn-cost-usd"]) == pytest.approx(row["cost_usd"], abs=1e-9)

    # llama.cpp's server ignores stream_options: the proxy (or LiteLLM) counts, and says so
    for model in (WEAK, VIA_LITELLM):
        streamed = client.chat.completions.with_raw_response.create(
            model=model, messages=ask(CHAT_PROMPT), max_tokens=4, stream=True,
            stream_options={"include_usage": True},
        )  # fmt: skip
        assert float(streamed.headers["x-codyn-backend-ms"]) > 0  # time to the first chunk
        assert "x-codyn-cost-usd" not in streamed.headers  # known at the end: in the log
        chunks = list(streamed.parse())
        last = chunks[-1]
        assert last.choices == [] and set(last.usage.model_dump(exclude_none=True)) <= OPENAI_USAGE
        assert last.usage.model_extra in ({}, None)  # no `cost` or other extra field
        assert all(c.usage is None for c in chunks[:-1])
        row = served.row(streamed.headers["x-codyn-request-id"])
        assert row["usage_estimated"] is True and row["tokens_out"] == last.usage.completion_tokens
        assert row["tokens_in"] == last.usage.prompt_tokens > 0 and row["tokens_out"] > 0


def test_a_backend_reporting_stream_usage_is_logged_exactly(served: Served, tmp_path: Path) -> None:
    """A second proxy in front of this one: its backend (this proxy) answers
    ``stream_options.include_usage``, so its row has the reported counts, not an estimate."""
    back = f"{served.url}/v1"
    config = write_config(
        tmp_path,
        models={  # the back proxy's model by name (direct), and under another (LiteLLM)
            WEAK: model_entry(back, 0.1, 0.2, api_key_env="CODYN_TEST_KEY"),
            "via-litellm": model_entry(
                back, 0.1, 0.2, litellm=f"openai/{WEAK}", api_key_env="CODYN_TEST_KEY"
            ),
        },
    )
    with serving(config) as front:
        client = openai.OpenAI(base_url=f"{front.url}/v1", api_key="none", max_retries=0)
        for model in (WEAK, "via-litellm"):
            raw = client.chat.completions.with_raw_response.create(
                model=model, messages=ask(CHAT_PROMPT), max_tokens=4, stream=True,
                stream_options={"include_usage": True},
            )  # fmt: skip
            usage = list(raw.parse())[-1].usage
            row = front.row(raw.headers["x-codyn-request-id"])
            assert row["usage_estimated"] is False and row["model"] == model
            assert (row["tokens_in"], row["tokens_out"]) == (
                usage.prompt_tokens,
                usage.completion_tokens,
            )


def test_requests_in_flight_are_counted(served: Served) -> None:
    def in_flight() -> float:
        text = httpx.get(f"{served.url}/metrics", headers=ADMIN).text
        return float(text.split("\ncodyn_requests_in_flight ")[1].split()[0])

    body = {"model": "sbs", "messages": ask(CODE_PROMPT), "max_tokens": 64, "stream": True}
    with httpx.stream(
        "POST", f"{served.url}/v1/chat/completions", json=body, headers=ADMIN, timeout=120
    ) as response:
        lines = response.iter_lines()  # kept: a dropped iterator closes the response
        next(lines)
        assert in_flight() == 1
    wait_for(lambda: in_flight() == 0, what="the stream to end")


def test_a_request_without_a_user_turn_is_routed_on_its_last_message(
    served: Served, client: openai.OpenAI
) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="codyn-code", messages=[{"role": "system", "content": CODE_PROMPT}], max_tokens=2
    )
    row = served.row(raw.headers["x-codyn-request-id"])
    assert row["predicted"][STRONG] > row["predicted"][WEAK]  # the router read it
    assert raw.headers["x-codyn-model"] == STRONG


def test_the_readme_serving_example_works(
    llama: dict[str, LlamaServer],  # noqa: F811
    tmp_path: Path,
) -> None:
    """The README's config (its ports pointed at the local backends, its router trained
    here) with the verify route added, and every model name the section shows."""
    text = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    section = text[text.index("### `codyn serve") : text.index("### `codyn bench serve")]
    blocks = [yaml.safe_load(b) for b in re.findall(r"```yaml\n(.*?)```", section, re.S)]
    config, verified = blocks[0], blocks[-1]
    config["models"][WEAK]["api_base"] = llama[WEAK].api_base
    config["models"][STRONG]["api_base"] = llama[STRONG].api_base
    config["routes"].update(verified["routes"])
    router_dir(tmp_path / "routers" / "knn", "knn", featuriser="tfidf", k=3)
    for variable, key in (("CODYN_KEY_ALICE", KEY), ("CODYN_KEY_OPS", "sk-ops")):
        pytest.MonkeyPatch().setenv(variable, key)
    pytest.MonkeyPatch().setenv("OPENAI_API_KEY", "sk-never-called")
    path = tmp_path / "codyn.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    shown = set(re.findall(r"`(codyn/[\w-]+:[\d.]+)`", section))
    assert shown == {"codyn/codyn-code:0.3"}
    with serving(path) as served:
        client = openai.OpenAI(base_url=f"{served.url}/v1", api_key=KEY, max_retries=0)
        for model in ("codyn-code", *shown, WEAK, "code-verified"):
            raw = client.chat.completions.with_raw_response.create(
                model=model, messages=ask(CHAT_PROMPT), max_tokens=2
            )
            assert raw.parse().choices[0].message.content is not None, model
            assert client.models.retrieve(model).id == model
        metrics = f"{served.url}/metrics"
        assert httpx.get(metrics, headers={"Authorization": f"Bearer {KEY}"}).status_code == 403
        assert httpx.get(metrics, headers={"Authorization": "Bearer sk-ops"}).status_code == 200
