"""Every request field is checked before any backend is called, and what a backend says about
the request itself is not retried on other models.

The proxy runs as a process of its own (as ``codyn serve`` runs it) in front of the real
llama.cpp backends, whose server answers a malformed request with HTTP 500. Bad knobs, wrong
types, null content, content parts, a format llama.cpp does not know, and a seeded fuzz of a few
hundred malformed bodies: no 5xx, and no traceback in the proxy's output. Marked ``backend``;
run with ``-s`` for the fuzz's counts.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from codyn.bench.local import STRONG, WEAK, LlamaServer
from codyn.serve.log import DecisionLog
from tests.serve_support import (
    ProxyProcess,
    llama,  # noqa: F401  (fixture)
    model_entry,
    router_dir,
    wait_for,
    write_config,
)

pytestmark = pytest.mark.backend

HELLO = [{"role": "user", "content": "Say hello."}]
BASE = {"model": "codyn-code", "messages": HELLO, "max_tokens": 1}
FUZZ_BODIES = 300


@pytest.fixture(scope="module")
def proxy(
    llama: dict[str, LlamaServer],  # noqa: F811
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[ProxyProcess]:
    folder = tmp_path_factory.mktemp("validation")
    config = write_config(
        folder,
        models={
            WEAK: model_entry(llama[WEAK].api_base, 0.1, 0.2, context_window=256),
            STRONG: model_entry(llama[STRONG].api_base, 1.0, 2.0, context_window=2048),
        },
        routes={
            "codyn-code": {
                "router": str(router_dir(folder / "knn", "knn", featuriser="tfidf", k=3)),
                "knob": 0.5,
            },
            "afford": {"router": str(router_dir(folder / "sbs")), "policy": "affordability"},
        },
    )
    process = ProxyProcess(config, folder / "proxy.log")
    process.start()
    try:
        yield process
    finally:
        process.stop()


def post(proxy: ProxyProcess, body: Any = None, content: bytes | None = None) -> httpx.Response:
    return httpx.post(
        f"{proxy.url}/v1/chat/completions",
        json=None if content is not None else body,
        content=content,
        headers={"content-type": "application/json"},
        timeout=120,
    )


def rejected(response: httpx.Response, param: str | None, says: str) -> None:
    """A 400 in OpenAI's error shape, naming ``param``."""
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "invalid_request_error" and error["param"] == param
    assert says in error["message"] and "\n" not in error["message"]


def logged(proxy: ProxyProcess, request_id: str) -> dict[str, Any]:
    """The request's row, read from the proxy's database (it is on disk before the answer,
    in the database within the writer's flush interval)."""
    log = DecisionLog(f"sqlite:///{proxy.config.parent / 'decisions.db'}")
    found: list[dict[str, Any]] = []

    def written() -> bool:
        found[:] = [r for r in log.rows(limit=10_000) if r["id"] == request_id]
        return bool(found)

    try:
        wait_for(written, what=f"the row of {request_id}")
    finally:
        log.engine.dispose()
    return found[0]


@pytest.mark.parametrize(
    ("model", "says"),
    [
        ("codyn/codyn-code:nan", "finite"),
        ("codyn/codyn-code:inf", "finite"),
        ("codyn/codyn-code:-inf", "finite"),
        ("codyn/codyn-code:1e999", "finite"),
        ("codyn/codyn-code:", "must be a number"),
        ("codyn/codyn-code:high", "must be a number"),
        ("codyn/afford:5", "must be in [0, 1]"),
        ("codyn/afford:-0.1", "must be in [0, 1]"),
    ],
)
def test_a_knob_outside_its_range_is_400(proxy: ProxyProcess, model: str, says: str) -> None:
    response = post(proxy, {**BASE, "model": model})
    rejected(response, "model", says)
    assert logged(proxy, response.headers["x-codyn-request-id"])["attempts"] is None


def test_any_real_utility_knob_is_answered(proxy: ProxyProcess) -> None:
    response = post(proxy, {**BASE, "model": "codyn/codyn-code:-5"})
    assert response.status_code == 200 and response.headers["x-codyn-route"] == "codyn-code"


@pytest.mark.parametrize(
    ("change", "param", "says"),
    [
        ({"max_tokens": "lots"}, "max_tokens", "must be an integer"),
        ({"max_tokens": 10**6}, "max_tokens", "exceeds the context window of every model"),
        ({"messages": [{"role": "wizard", "content": "hi"}]}, "messages[0].role", "one of"),
        ({"messages": [{"role": "user", "content": None}]}, "messages[0].content", "string"),
        ({"temperature": 5}, "temperature", "must be in [0, 2]"),
        ({"stream": "yes"}, "stream", "true or false"),
        ({"stop": ["a", "b", "c", "d", "e"]}, "stop", "at most 4"),
        ({"n": 0}, "n", "must be in [1, 128]"),
        ({"logit_bias": {"the": 5}}, "logit_bias", "token ids"),
        ({"stream_options": {"include_usage": True}}, "stream_options", "only allowed"),
        ({"colour": "blue"}, "colour", "unrecognized request argument"),
        (
            {"messages": [{"role": "user", "content": [{"type": "video"}]}]},
            "messages[0].content[0].type",
            "not allowed",
        ),
    ],
)
def test_fields_are_checked_before_any_backend(
    proxy: ProxyProcess, change: dict[str, Any], param: str, says: str
) -> None:
    response = post(proxy, {**BASE, **change})
    rejected(response, param, says)
    row = logged(proxy, response.headers["x-codyn-request-id"])
    assert row["status"] == 400 and row["attempts"] is None  # no backend was called


def test_text_parts_reach_a_string_only_backend_as_a_string(proxy: ProxyProcess) -> None:
    parts = [{"type": "text", "text": "Say hello"}, {"type": "text", "text": "to my friend."}]
    response = post(proxy, {**BASE, "messages": [{"role": "user", "content": parts}]})
    assert response.status_code == 200, response.text
    assert response.json()["choices"][0]["message"]["content"]


def test_a_part_no_model_takes_is_400(proxy: ProxyProcess) -> None:
    image = {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}
    content = [{"type": "text", "text": "What is this?"}, image]
    response = post(proxy, {**BASE, "messages": [{"role": "user", "content": content}]})
    rejected(response, "messages", "none is tagged vision")


def test_what_the_backend_says_about_the_request_is_not_retried(proxy: ProxyProcess) -> None:
    """llama.cpp's server takes ``response_format`` ``text`` or ``json_object`` only, and
    answers OpenAI's ``json_schema`` with 500 and its validation error: a 400 for the client,
    and no second model asked."""
    schema = {"name": "greeting", "schema": {"type": "object"}}
    response_format = {"type": "json_schema", "json_schema": schema}
    response = post(proxy, {**BASE, "response_format": response_format})
    rejected(response, None, "the backend rejected the request")
    row = logged(proxy, response.headers["x-codyn-request-id"])
    assert row["status"] == 400 and len(row["attempts"]) == 1
    assert "validation error" in row["attempts"][0]["error"]


# -- fuzz ------------------------------------------------------------------------------------

JUNK: list[Any] = [
    None, True, False, 0, -1, 1.5, -1e308, 1e308, 2**64, -(2**70), "", "lots", "\u0000",
    "x" * 2000, [], [1, "two", None], {}, {"a": {"b": [None, {"c": []}]}}, [[[[[[]]]]]],
    {"role": "user"}, [{"type": "text"}], [{"type": "text", "text": 5}],
]  # fmt: skip
KNOBS = ["nan", "inf", "-inf", "1e999", "", "abc", "0x10", " 1", "1e-400", "5", "-5", "--1"]
RAW = [
    b"", b"null", b"[]", b'"text"', b"{", b'{"model": "codyn-code", "messages": [',
    b"\xff\xfe\x00", b'{"model": "codyn-code", "messages": NaN}',
    b'{"model": "codyn-code", "max_tokens": Infinity}', b"[" * 5000 + b"]" * 5000,
    b'{"max_tokens": ' + b"9" * 5000 + b"}", b'{"a": 1e99999}',
]  # fmt: skip
PARAMS = [
    "temperature", "top_p", "n", "stop", "stream", "stream_options", "presence_penalty",
    "frequency_penalty", "logit_bias", "logprobs", "top_logprobs", "seed", "user", "tools",
    "tool_choice", "response_format", "functions", "function_call", "metadata", "codyn",
    "max_completion_tokens", "modalities",
]  # fmt: skip


def fuzz_body(rng: random.Random) -> bytes:
    """One malformed request: a valid one with a field, a message, the model or the bytes
    themselves spoiled (max_tokens stays 1 or is spoiled, never removed)."""
    body: dict[str, Any] = json.loads(json.dumps(BASE))
    kind = rng.randrange(7)
    if kind == 0:
        return rng.choice(RAW)
    if kind == 1:
        body[rng.choice(PARAMS)] = rng.choice(JUNK)
    elif kind == 2:
        message = dict(HELLO[0])
        message[rng.choice(["role", "content", "name", "tool_calls", "tool_call_id"])] = rng.choice(
            JUNK
        )
        body["messages"] = [message]
    elif kind == 3:
        body["messages"] = rng.choice(JUNK)
    elif kind == 4:
        body["model"] = rng.choice([*JUNK, *(f"codyn/codyn-code:{k}" for k in KNOBS)])
    elif kind == 5:
        body["max_tokens"] = rng.choice([j for j in JUNK if j is not None])
    else:
        body.pop(rng.choice(["model", "messages"]))
        body[rng.choice(["junk", "Model", "messages "])] = rng.choice(JUNK)
    return json.dumps(body).encode()


def test_fuzzed_bodies_get_no_5xx_and_no_traceback(proxy: ProxyProcess) -> None:
    rng = random.Random(14)
    statuses: Counter[int] = Counter()
    for _ in range(FUZZ_BODIES):
        response = post(proxy, content=fuzz_body(rng))
        statuses[response.status_code] += 1
        assert response.status_code < 500, response.text
        if response.status_code >= 400:
            assert set(response.json()["error"]) == {"message", "type", "param", "code"}
    output = (proxy.config.parent / "proxy.log").read_text()
    print(f"\nfuzz: {FUZZ_BODIES} bodies, statuses {dict(sorted(statuses.items()))}, "
          f"5xx {sum(n for s, n in statuses.items() if s >= 500)}, "
          f"tracebacks {output.count('Traceback')}")  # fmt: skip
    assert statuses[400] > FUZZ_BODIES // 2 and "Traceback" not in output
