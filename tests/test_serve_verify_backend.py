"""Verify, then escalate, end to end: the proxy and `codyn.Client` against the real local
llama.cpp models, answers run in the bubblewrap sandbox, attempts in the SQLite log.

Tests a model passes or fails whatever it writes (``assert True`` / ``assert False``) make the
walk deterministic; a real coding prompt with asserts checks the invariants that hold for any
answer (the verdict in the header is what the sandbox says of the returned code). Marked
``backend`` and ``browser`` (the dashboard's verification card in headless Chromium).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator

import httpx
import openai
import pytest

from codyn import Client
from codyn.bench.local import STRONG, WEAK, LlamaServer
from codyn.serve import verify
from tests.serve_support import (
    KEY,
    Served,
    browser,  # noqa: F401  (fixture)
    llama,  # noqa: F401  (fixture)
    model_entry,
    router_dir,
    serving,
    write_config,
)

pytestmark = [pytest.mark.backend, pytest.mark.browser]

PROMPT = """Write a Python function add(a, b) that returns the sum of a and b.

assert add(2, 3) == 5
assert add(-1, 1) == 0
"""
PASS, FAIL = ["assert True"], ["assert False"]


@pytest.fixture(scope="module")
def config(
    llama: dict[str, LlamaServer],  # noqa: F811
    tmp_path_factory: pytest.TempPathFactory,
):
    folder = tmp_path_factory.mktemp("verify")
    pytest.MonkeyPatch().setenv("CODYN_TEST_KEY", KEY)
    weak_first = str(router_dir(folder / "weak", f"single:{WEAK}"))
    return write_config(
        folder,
        models={
            WEAK: model_entry(llama[WEAK].api_base, 0.1, 0.2, context_window=256),
            STRONG: model_entry(llama[STRONG].api_base, 1.0, 2.0, context_window=2048),
        },
        routes={
            "verified": {"router": weak_first, "verify": {"max_attempts": 3, "timeout_s": 5}},
            "retrying": {
                "router": weak_first,
                "policy": {"name": "cascade", "chain": [WEAK, STRONG], "retries": 1},
                "verify": {"max_attempts": 4},
            },
            "plain": {"router": weak_first},
        },
        keys={"alice": {"key_env": "CODYN_TEST_KEY", "budget_usd": 100.0, "role": "admin"}},
    )


@pytest.fixture(scope="module")
def served(config) -> Iterator[Served]:
    with serving(config) as served:
        yield served


@pytest.fixture(scope="module")
def client(served: Served) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{served.url}/v1", api_key=KEY, max_retries=0, timeout=300)


def ask(client: openai.OpenAI, route: str, text: str, tests: list[str] | None = None):
    extra = None if tests is None else {"codyn": {"tests": tests}}
    return client.chat.completions.with_raw_response.create(
        model=route,
        messages=[{"role": "user", "content": text}],
        max_tokens=48,
        temperature=0,
        extra_body=extra,
    )


def test_an_answer_passing_its_tests_is_taken_from_the_cheap_model(
    served: Served, client: openai.OpenAI
) -> None:
    raw = ask(client, "verified", "Write a Python function add(a, b).", PASS)
    assert raw.headers["x-codyn-attempts"] == f"{WEAK}:pass"
    assert raw.headers["x-codyn-verify"] == "verified"
    assert float(raw.headers["x-codyn-verify-ms"]) > 0
    assert raw.parse().model == WEAK
    row = served.row(raw.headers["x-codyn-request-id"])
    assert row["verify"] == "verified" and row["model"] == WEAK and not row["fallback"]
    tried = served.proxy.log.attempt_rows(row["id"])
    assert [(a["model"], a["outcome"]) for a in tried] == [(WEAK, "pass")]
    assert tried[0]["cost_usd"] == pytest.approx(row["cost_usd"]) and row["cost_usd"] > 0


def test_failing_answers_escalate_and_every_attempt_is_paid_for(
    served: Served, client: openai.OpenAI
) -> None:
    spent = served.proxy.keys.spent("alice")
    raw = ask(client, "verified", "Write a Python function add(a, b).", FAIL)
    assert raw.headers["x-codyn-attempts"] == f"{WEAK}:fail,{STRONG}:fail"
    assert raw.headers["x-codyn-verify"] == "unresolved"
    assert raw.parse().model == STRONG  # nothing passed: ties go to the later, pricier model
    row = served.row(raw.headers["x-codyn-request-id"])
    tried = served.proxy.log.attempt_rows(row["id"])
    assert [a["model"] for a in tried] == [WEAK, STRONG]
    assert row["cost_usd"] == pytest.approx(sum(a["cost_usd"] for a in tried))
    assert all(a["cost_usd"] > 0 and a["tests"] == 1 and a["passed"] == 0 for a in tried)
    assert served.proxy.keys.spent("alice") - spent == pytest.approx(row["cost_usd"])


def test_a_cascade_policy_retries_before_escalating(served: Served, client: openai.OpenAI) -> None:
    raw = ask(client, "retrying", "Write a Python function add(a, b).", FAIL)
    expected = [WEAK, WEAK, STRONG, STRONG]
    assert raw.headers["x-codyn-attempts"] == ",".join(f"{m}:fail" for m in expected)
    row = served.row(raw.headers["x-codyn-request-id"])
    assert [a["model"] for a in served.proxy.log.attempt_rows(row["id"])] == expected


def test_a_prompt_without_tests_is_routed_as_usual(served: Served, client: openai.OpenAI) -> None:
    raw = ask(client, "verified", "Say hello.")
    assert raw.headers["x-codyn-verify"] == "unverifiable"
    assert "x-codyn-attempts" not in raw.headers
    row = served.row(raw.headers["x-codyn-request-id"])
    assert row["verify"] == "unverifiable" and served.proxy.log.attempt_rows(row["id"]) == []
    plain = ask(client, "plain", PROMPT)  # a route without verify never checks
    assert "x-codyn-verify" not in plain.headers


def test_asserts_in_the_prompt_are_run_on_the_returned_code(
    served: Served, client: openai.OpenAI
) -> None:
    raw = ask(client, "verified", PROMPT)
    reply = raw.parse()
    steps = [part.split(":") for part in raw.headers["x-codyn-attempts"].split(",")]
    assert [m for m, _ in steps] == [WEAK, STRONG][: len(steps)]
    assert all(label == "fail" for _, label in steps[:-1])
    outcome = raw.headers["x-codyn-verify"]
    assert outcome == {
        (1, "pass"): "verified",
        (2, "pass"): "escalated",
    }.get((len(steps), steps[-1][1]), "unresolved")
    tests = verify.request_tests(None, PROMPT)
    again = verify.check_answer(
        reply.model, reply.choices[0].message.content, tests, timeout_s=5, unsafe_local=False
    )
    answered = dict(steps)[reply.model] if outcome != "unresolved" else "fail"
    assert again.label == answered  # the header says what the sandbox says of this answer


def test_a_verified_stream_arrives_after_the_check(served: Served) -> None:
    body = {
        "model": "verified",
        "messages": [{"role": "user", "content": "Write a Python function add(a, b)."}],
        "max_tokens": 32,
        "stream": True,
        "stream_options": {"include_usage": True},
        "codyn": {"tests": PASS},
    }
    headers = {"authorization": f"Bearer {KEY}"}
    with httpx.stream(
        "POST", f"{served.url}/v1/chat/completions", json=body, headers=headers, timeout=300
    ) as response:
        assert response.status_code == 200
        assert response.headers["x-codyn-attempts"] == f"{WEAK}:pass"
        events = [line[6:] for line in response.iter_lines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert chunks[-1]["usage"]["completion_tokens"] > 0
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    row = served.row(response.headers["x-codyn-request-id"])
    assert text and row["stream"] and row["verify"] == "verified"


def test_bad_tests_are_a_400(served: Served) -> None:
    response = httpx.post(
        f"{served.url}/v1/chat/completions",
        json={
            "model": "verified",
            "messages": [{"role": "user", "content": "x"}],
            "codyn": {"tests": "assert True"},
        },
        headers={"authorization": f"Bearer {KEY}"},
        timeout=60,
    )
    assert response.status_code == 400
    assert "codyn.tests" in response.json()["error"]["message"]


def test_dashboard_counts_verification_outcomes(served: Served, client: openai.OpenAI) -> None:
    ask(client, "verified", "Write a Python function add(a, b).", PASS)
    served.row(ask(client, "verified", "Say hi.").headers["x-codyn-request-id"])
    data = httpx.get(f"{served.url}/dashboard/data", auth=("admin", KEY), timeout=30).json()
    shares = data["verify"]
    assert shares["verified"] >= 1 and shares["unverifiable"] >= 1
    assert sum(shares["share"].values()) == pytest.approx(1.0)


def test_dashboard_shows_the_verification_shares_in_chromium(
    served: Served,
    browser,  # noqa: F811
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    served.row(ask_plain(served, "Say hello again."))  # at least one request is logged
    data = httpx.get(f"{served.url}/dashboard/data", auth=("admin", KEY), timeout=30)
    shares = data.json()["verify"]
    browser.get(f"http://admin:{KEY}@127.0.0.1:{served.port}/dashboard")  # the admin key
    WebDriverWait(browser, 30).until(
        lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-loaded") == "1"
    )
    card = browser.find_element(By.ID, "verify").text
    shown = math.floor(100 * shares["share"]["verified"] + 0.5)  # JS toFixed(0) rounds half up
    assert card.count("%") == 3 and card.startswith(f"{shown}%")
    assert "verifying requests" in browser.find_element(By.ID, "verify-note").text
    assert "verified" in browser.find_element(By.ID, "latest").text


def ask_plain(served: Served, text: str) -> str:
    """One request without tests on the verifying route; its request id."""
    response = httpx.post(
        f"{served.url}/v1/chat/completions",
        json={
            "model": "verified",
            "messages": [{"role": "user", "content": text}],
            "max_tokens": 8,
        },
        headers={"authorization": f"Bearer {KEY}"},
        timeout=300,
    )
    assert response.status_code == 200
    return response.headers["x-codyn-request-id"]


def test_the_client_verifies_the_same_way(config) -> None:
    codyn_client = Client(config)
    reply = codyn_client.chat.completions.create(
        model="verified",
        messages=[{"role": "user", "content": "Write a Python function add(a, b)."}],
        max_tokens=32,
        extra_body={"codyn": {"tests": FAIL}},
    )
    assert reply.model == STRONG
    assert codyn_client.last_verification["attempts"] == f"{WEAK}:fail,{STRONG}:fail"
    assert codyn_client.last_verification["outcome"] == "unresolved"
    chunks = list(
        codyn_client.chat.completions.create(
            model="verified",
            messages=[{"role": "user", "content": "Write a Python function add(a, b)."}],
            max_tokens=32,
            stream=True,
            extra_body={"codyn": {"tests": PASS}},
        )
    )
    assert {c.model for c in chunks} == {WEAK} and chunks[-1].choices[0].finish_reason
    assert "".join(c.choices[0].delta.content or "" for c in chunks)
    assert codyn_client.last_verification["attempts"] == f"{WEAK}:pass"
