"""The ``/dashboard`` in a real headless Chromium, after real traffic through the local
llama.cpp backends: share per model, spend against always-strongest, latency, fallbacks and
the latest decisions with their predicted scores. Marked ``browser`` and ``backend``.

Keys are configured, so the page and its data need the admin key: the browser sends it as HTTP
Basic credentials (in the URL here, as a person would type them into the browser's prompt).

The screenshot is written to the test's folder, and copied to ``$CODYN_TEST_ARTIFACTS`` when
that is set, so that a person can look at it.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from codyn.bench.local import STRONG, WEAK, LlamaServer, free_port
from tests.serve_support import (
    CHAT,
    CODE,
    KEY,
    Served,
    browser,  # noqa: F401  (fixture)
    llama,  # noqa: F401  (fixture)
    model_entry,
    router_dir,
    serving,
    wait_for,
    write_config,
)

pytestmark = [pytest.mark.browser, pytest.mark.backend]

DEAD = "dead"


@pytest.fixture(scope="module")
def served(
    llama: dict[str, LlamaServer],  # noqa: F811
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Served]:
    """A proxy after a dozen real requests: routed, passed through, one fallback, one 404."""
    folder = tmp_path_factory.mktemp("dashboard")
    pytest.MonkeyPatch().setenv("CODYN_TEST_KEY", KEY)
    config = write_config(
        folder,
        models={
            WEAK: model_entry(llama[WEAK].api_base, 0.1, 0.2),
            STRONG: model_entry(llama[STRONG].api_base, 1.0, 2.0),
            DEAD: model_entry(f"http://127.0.0.1:{free_port()}/v1", 0.5, 1.0),
        },
        routes={
            "codyn-code": {
                "router": str(router_dir(folder / "knn", "knn", featuriser="tfidf", k=3)),
                "knob": 0.5,
                "fallbacks": [WEAK],
            },
            "dead-first": {
                "router": str(router_dir(folder / "dead", f"single:{DEAD}", models=(WEAK, DEAD)))
            },
        },
        keys={"alice": {"key_env": "CODYN_TEST_KEY", "role": "admin"}},
    )
    with serving(config) as served:
        client = openai.OpenAI(base_url=f"{served.url}/v1", api_key=KEY, max_retries=0)
        for text in CODE[:3] + CHAT[:5]:
            client.chat.completions.create(
                model="codyn-code", messages=[{"role": "user", "content": text}], max_tokens=4
            )
        client.chat.completions.create(
            model="dead-first", messages=[{"role": "user", "content": CHAT[0]}], max_tokens=2
        )
        with pytest.raises(openai.NotFoundError):
            client.chat.completions.create(
                model="gpt-9", messages=[{"role": "user", "content": "x"}]
            )
        wait_for(lambda: len(served.rows()) == 10, what="10 rows")
        yield served


def test_dashboard_data_summarises_the_log(served: Served) -> None:
    assert httpx.get(f"{served.url}/dashboard/data").status_code == 401
    data = httpx.get(f"{served.url}/dashboard/data", auth=("admin", KEY)).json()
    totals = data["totals"]
    assert totals["requests"] == 10 and totals["errors"] == 1 and totals["fallbacks"] == 1
    assert 0 < totals["spend_usd"] < totals["strongest_usd"] and 0 < totals["savings_share"] < 1
    shares = {m["model"]: m["share"] for m in data["models"]}
    assert set(shares) == {WEAK, STRONG} and sum(shares.values()) == pytest.approx(1)
    assert data["latency_ms"]["decision"]["p50"] > 0 and data["latency_ms"]["n"] == 10
    assert len(data["latest"]) == 10 and data["log"]["database_up"] is True


def test_dashboard_renders_in_chromium(
    served: Served,
    browser,  # noqa: F811
    tmp_path: Path,
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(f"http://admin:{KEY}@127.0.0.1:{served.port}/dashboard")
    WebDriverWait(browser, 30).until(
        lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-loaded") == "1"
    )
    text = browser.find_element(By.TAG_NAME, "body").text
    assert browser.find_element(By.ID, "requests").text == "10"
    assert browser.find_element(By.ID, "savings").text.endswith("%")
    assert browser.find_element(By.ID, "fallbacks").text == "1"
    assert browser.find_element(By.ID, "verify").text == "-"  # no route verifies here
    assert WEAK in text and STRONG in text and "fallback from dead" in text
    assert "database up" in browser.find_element(By.ID, "db").text
    rows = browser.find_elements(By.CSS_SELECTOR, "#latest tr")
    scores = browser.find_elements(By.CSS_SELECTOR, "#latest .score")
    assert len(rows) == 10 and len(scores) >= 16  # two predicted scores per routed request
    assert browser.find_element(By.ID, "error").text == ""
    shot = tmp_path / "dashboard.png"
    browser.save_screenshot(str(shot))
    assert shot.stat().st_size > 10_000
    if os.environ.get("CODYN_TEST_ARTIFACTS"):
        shutil.copy(shot, Path(os.environ["CODYN_TEST_ARTIFACTS"]) / "dashboard.png")
