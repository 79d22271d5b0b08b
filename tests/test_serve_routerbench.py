"""End to end: a router trained on RouterBench's MBPP data (``codyn import routerbench``,
``codyn train knn`` on TF-IDF) served through the two local llama.cpp backends, its GPT-4
mapped onto Qwen2.5-Coder and its Mistral-7B onto SmolLM2. ``codyn serve --check`` passes on the
config, and real requests are answered by the model the router chose, under its catalog name
in the headers, the body and the decision log. Marked ``backend``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

import codyn.cli.serve_commands  # noqa: F401  (registers the commands)
from codyn.bench.local import STRONG, WEAK, LlamaServer
from codyn.deploy import load_deployed
from codyn.deploy import route as deploy_route
from tests.conftest import run_cli
from tests.serve_support import (
    Served,
    llama,  # noqa: F401  (fixture)
    model_entry,
    serving,
    write_config,
)

pytestmark = pytest.mark.backend

GPT4, MISTRAL = "gpt-4-1106-preview", "mistralai/mistral-7b-chat"
MAPPING = {GPT4: STRONG, MISTRAL: WEAK}
PROMPTS = [
    "Write a python function to identify non-prime numbers.",
    "Write a function to subtract two lists element-wise.",
]
"""Two MBPP test prompts: the router sends the first to GPT-4 and the second to Mistral-7B."""


@pytest.fixture(scope="module")
def config(
    benchmarks: Path,
    llama: dict[str, LlamaServer],  # noqa: F811
    tmp_path_factory: pytest.TempPathFactory,
) -> Path:
    folder = tmp_path_factory.mktemp("routerbench")
    data = folder / "mbpp_train.parquet"
    imported = run_cli(
        "import", "routerbench", benchmarks / "routerbench" / "mbpp_train.csv", "-o", data
    )
    assert imported.code == 0, imported.stderr
    trained = run_cli(
        "train", data, "--router", "knn", "--param", "featuriser=tfidf", "--param", "k=10",
        "-o", folder / "knn",
    )  # fmt: skip
    assert trained.code == 0, trained.stderr
    return write_config(
        folder,
        models={
            WEAK: model_entry(llama[WEAK].api_base, 0.1, 0.2),
            STRONG: model_entry(llama[STRONG].api_base, 1.0, 2.0),
        },
        routes={"rb-code": {"router": "knn", "models": MAPPING}},
    )


@pytest.fixture(scope="module")
def served(config: Path) -> Iterator[Served]:
    with serving(config) as served:
        yield served


def test_check_resolves_the_mapping_and_reaches_both_backends(
    config: Path,
    llama: dict[str, LlamaServer],  # noqa: F811
) -> None:
    result = run_cli("serve", "--check", config)
    assert result.code == 0, result.stderr
    assert result.stderr == ""
    rows = [line for line in result.stdout.splitlines() if line.startswith("│ rb-code ")]
    cells = [[cell.strip() for cell in row.strip("│").split("│")] for row in rows]
    assert cells == [
        ["rb-code", GPT4, STRONG, llama[STRONG].api_base, "3 USD/1M in+out (catalog)", "yes"],
        ["rb-code", MISTRAL, WEAK, llama[WEAK].api_base, "0.3 USD/1M in+out (catalog)", "yes"],
    ]


def test_requests_are_answered_by_the_mapped_model_the_router_chose(
    served: Served, config: Path
) -> None:
    router, setup = load_deployed(config.parent / "knn")
    answered = []
    for prompt in PROMPTS:
        chosen = deploy_route(router, setup, [prompt], offered=list(MAPPING)).models[0]
        body = {
            "model": "rb-code",
            "messages": [{"role": "user", "content": prompt}],
            "max_tokens": 16,
        }
        response = httpx.post(f"{served.url}/v1/chat/completions", json=body, timeout=300)
        assert response.status_code == 200, response.text
        headers = response.headers
        assert headers["x-codyn-route"] == "rb-code"
        assert headers["x-codyn-model"] == response.json()["model"] == MAPPING[chosen]
        assert response.json()["choices"][0]["message"]["content"]
        row = served.row(headers["x-codyn-request-id"])
        assert row["chosen"] == row["model"] == MAPPING[chosen] and row["status"] == 200
        assert set(row["predicted"]) == {STRONG, WEAK}
        answered.append(headers["x-codyn-model"])
    assert answered == [STRONG, WEAK]
