"""`codyn.Client` routes in-process against the real local llama.cpp backends and returns the
openai package's own types, like ``openai.OpenAI`` would. Marked ``backend``."""

from __future__ import annotations

from pathlib import Path

import pytest
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from codyn.bench.local import STRONG, WEAK, LlamaServer, free_port
from codyn.client import AllModelsFailed, Client
from tests.serve_support import (
    llama,  # noqa: F401  (fixture)
    model_entry,
    router_dir,
    write_config,
)

pytestmark = pytest.mark.backend

CODE_PROMPT = [{"role": "user", "content": "Write a Python function that checks for primes."}]
CHAT_PROMPT = [{"role": "user", "content": "Say hello to my friend."}]
DEAD = "dead"


@pytest.fixture(scope="module")
def client(
    llama: dict[str, LlamaServer],  # noqa: F811
    tmp_path_factory: pytest.TempPathFactory,
) -> Client:
    folder: Path = tmp_path_factory.mktemp("client")
    down = f"http://127.0.0.1:{free_port()}/v1"
    config = write_config(
        folder,
        models={
            WEAK: model_entry(llama[WEAK].api_base, 0.1, 0.2),
            STRONG: model_entry(llama[STRONG].api_base, 1.0, 2.0),
            DEAD: model_entry(down, 5.0, 5.0),
        },
        routes={
            "codyn-code": {
                "router": str(router_dir(folder / "knn", "knn", featuriser="tfidf", k=3)),
                "knob": 0.5,
            },
            "dead-first": {
                "router": str(router_dir(folder / "dead", f"single:{DEAD}", models=(WEAK, DEAD)))
            },
            "all-dead": {
                "router": str(router_dir(folder / "only", f"single:{DEAD}", models=(WEAK, DEAD))),
                "models": [DEAD],
            },
        },
    )
    return Client(config)


def test_routes_like_the_proxy_and_returns_openai_types(client: Client) -> None:
    code = client.chat.completions.create(model="codyn-code", messages=CODE_PROMPT, max_tokens=6)
    chat = client.chat.completions.create(model="codyn-code", messages=CHAT_PROMPT, max_tokens=6)
    assert isinstance(code, ChatCompletion) and code.model == STRONG
    assert chat.model == WEAK and chat.choices[0].message.content
    assert client.decide("codyn/codyn-code:5", CODE_PROMPT).chosen == WEAK
    assert [m.id for m in client.models.list()] == ["codyn-code", "dead-first", "all-dead",
                                                     WEAK, STRONG, DEAD]  # fmt: skip


def test_streams_chunks(client: Client) -> None:
    chunks = list(
        client.chat.completions.create(
            model="codyn-code", messages=CODE_PROMPT, max_tokens=6, stream=True
        )
    )
    assert chunks and all(isinstance(c, ChatCompletionChunk) for c in chunks)
    assert {c.model for c in chunks} == {STRONG}
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


def test_falls_back_when_the_chosen_backend_is_down(client: Client) -> None:
    reply = client.chat.completions.create(model="dead-first", messages=CHAT_PROMPT, max_tokens=2)
    assert reply.model == WEAK
    with pytest.raises(AllModelsFailed, match="every model failed: dead:"):
        client.chat.completions.create(model="all-dead", messages=CHAT_PROMPT, max_tokens=2)
