"""Price files for ``--option prices=FILE``: codyn's, LiteLLM's and RouterArena's layouts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from codyn.cli import import_command  # noqa: F401  (registers `codyn import` on the app)
from codyn.data.importers import read
from codyn.data.routing import RoutingData
from codyn.errors import DataError
from tests.conftest import run_cli

# A slice of LiteLLM's model_prices_and_context_window.json as it ships: USD per token, a
# documentation entry, and entries priced per image or per second instead of per token.
LITELLM = {
    "sample_spec": {
        "input_cost_per_token": 0.0,
        "litellm_provider": "one of https://docs.litellm.ai/docs/providers",
        "max_input_tokens": "max input tokens, if the provider specifies it",
        "mode": "one of: chat, embedding, completion, image_generation, audio_transcription",
        "output_cost_per_token": 0.0,
        "supports_function_calling": True,
    },
    "gpt-4o": {
        "cache_read_input_token_cost": 1.25e-06,
        "input_cost_per_token": 2.5e-06,
        "input_cost_per_token_batches": 1.25e-06,
        "litellm_provider": "openai",
        "max_input_tokens": 128000,
        "max_output_tokens": 16384,
        "mode": "chat",
        "output_cost_per_token": 1e-05,
        "supports_vision": True,
    },
    "gpt-4o-mini": {
        "input_cost_per_token": 1.5e-07,
        "litellm_provider": "openai",
        "mode": "chat",
        "output_cost_per_token": 6e-07,
    },
    "claude-3-5-haiku-20241022": {
        "input_cost_per_token": 8e-07,
        "litellm_provider": "anthropic",
        "mode": "chat",
        "output_cost_per_token": 4e-06,
    },
    "text-embedding-3-small": {
        "input_cost_per_token": 2e-08,
        "litellm_provider": "openai",
        "mode": "embedding",
        "output_cost_per_token": 0.0,
        "output_vector_size": 1536,
    },
    "aiml/dall-e-3": {
        "litellm_provider": "aiml",
        "mode": "image_generation",
        "output_cost_per_image": 0.04,
    },
    "whisper-1": {
        "input_cost_per_second": 0.0001,
        "litellm_provider": "openai",
        "mode": "audio_transcription",
        "output_cost_per_second": 0.0001,
    },
}

# RouterArena's model_cost/model_cost.json layout: USD per 1M tokens.
ROUTERARENA = {
    "gpt-4o-mini": {"input_token_price_per_million": 0.15, "output_token_price_per_million": 0.6},
    "claude-3-haiku-20240307": {
        "input_token_price_per_million": 0.25,
        "output_token_price_per_million": 1.25,
    },
    "gemini-2.5-flash": {
        "input_token_price_per_million": 0.3,
        "output_token_price_per_million": 2.5,
    },
}


def write_json(path: Path, content: Any) -> Path:
    path.write_text(json.dumps(content, indent=2), encoding="utf-8")
    return path


def long_file(path: Path, models: list[str], tokens: bool = True) -> Path:
    """Two prompts answered by each model; with tokens, prompt p1 uses 1000 in / 500 out."""
    header = "prompt_id,prompt,model,score" + (",tokens_in,tokens_out" if tokens else "")
    lines = [header]
    for model in models:
        lines.append(f"p1,Reverse a string.,{model},1" + (",1000,500" if tokens else ""))
        lines.append(f"p2,Sum a list.,{model},0" + (",10,20" if tokens else ""))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def prices_of(data: RoutingData) -> dict[str, tuple[float | None, float | None]]:
    return {m.name: (m.input_price, m.output_price) for m in data.models}


def test_litellm_file_gives_usd_per_million_tokens(tmp_path: Path) -> None:
    prices = write_json(tmp_path / "model_prices_and_context_window.json", LITELLM)
    data = read("long", [long_file(tmp_path / "d.csv", ["gpt-4o", "gpt-4o-mini"])], prices=prices)
    # USD per token x 1e6, without binary noise (6e-07 * 1e6 is 0.6 here, not 0.6000000000000001)
    assert prices_of(data) == {"gpt-4o": (2.5, 10.0), "gpt-4o-mini": (0.15, 0.6)}
    assert data.cost_basis == "tokens_x_price"
    # p1 on gpt-4o: 1000 x 2.5e-6 + 500 x 1e-5 = 0.0075 USD
    np.testing.assert_allclose(data.cost[0], [0.0075, 1000 * 1.5e-7 + 500 * 6e-7], rtol=1e-12)


def test_litellm_entries_without_token_prices_only_matter_when_used(tmp_path: Path) -> None:
    prices = write_json(tmp_path / "litellm.json", LITELLM)
    data = read(
        "long",
        [long_file(tmp_path / "d.csv", ["claude-3-5-haiku-20241022", "text-embedding-3-small"])],
        prices=prices,
    )
    assert prices_of(data) == {
        "claude-3-5-haiku-20241022": (0.8, 4.0),
        "text-embedding-3-small": (0.02, 0.0),
    }
    with pytest.raises(DataError) as info:
        read("long", [long_file(tmp_path / "img.csv", ["gpt-4o", "aiml/dall-e-3"])], prices=prices)
    message = str(info.value)
    assert message.startswith(f"{prices}, column 'aiml/dall-e-3': ")
    assert "no per-token price for model 'aiml/dall-e-3'" in message
    assert "input_cost_per_token/output_cost_per_token" in message
    assert "mode is 'image_generation'" in message and "\n" not in message


def test_model_missing_from_the_price_file_gets_nan_costs_and_a_note(tmp_path: Path) -> None:
    prices = write_json(tmp_path / "litellm.json", LITELLM)
    data = read(
        "long", [long_file(tmp_path / "d.csv", ["gpt-4o", "my-local-model"])], prices=prices
    )
    assert prices_of(data)["my-local-model"] == (None, None)
    assert np.isnan(data.cost[:, 1]).all() and not np.isnan(data.cost[:, 0]).any()
    assert any("no price for model(s) my-local-model" in note for note in data.notes)


def test_routerarena_file(tmp_path: Path) -> None:
    prices = write_json(tmp_path / "model_cost.json", ROUTERARENA)
    data = read(
        "long",
        [long_file(tmp_path / "d.csv", ["gpt-4o-mini", "claude-3-haiku-20240307"], tokens=False)],
        prices=prices,
    )
    assert prices_of(data) == {"gpt-4o-mini": (0.15, 0.6), "claude-3-haiku-20240307": (0.25, 1.25)}
    assert data.cost_basis == "price_proxy"
    assert data.cost[0].tolist() == pytest.approx([0.375, 0.75])  # blended (input + output) / 2


def test_list_of_objects_naming_their_model(tmp_path: Path) -> None:
    prices = write_json(
        tmp_path / "prices.json",
        [
            {"model": "a", "input_price": 1.0, "output_price": 3.0, "size": "7B"},
            {"model_name": "b", "input_token_price_per_million": 0.5},  # one price: both
            {"name": "c", "input_cost_per_token": 2e-06, "output_cost_per_token": 0},
        ],
    )
    data = read("long", [long_file(tmp_path / "d.csv", ["a", "b", "c"])], prices=prices)
    assert prices_of(data) == {"a": (1.0, 3.0), "b": (0.5, 0.5), "c": (2.0, 0.0)}


@pytest.mark.parametrize(
    ("content", "phrase"),
    [
        ([{"model": "a", "input_price": 1}, {"price": 2}], "no model name in entry 1 (0-based)"),
        ([{"model": "a", "input_price": 1}, {"model": "a", "input_price": 2}], "listed twice"),
        (["a"], "expected an object naming a model in entry 0"),
        ({"a": {"input_cost_per_token": "cheap"}}, "price input_cost_per_token for model 'a'"),
        ({"a": {"input_token_price_per_million": -1}}, "must be a finite number >= 0"),
        ({}, "the price file lists no models"),
        ("a", "expected a JSON object of model -> prices or a list"),
    ],
)
def test_bad_price_files_are_one_line_errors(tmp_path: Path, content: Any, phrase: str) -> None:
    prices = write_json(tmp_path / "prices.json", content)
    with pytest.raises(DataError) as info:
        read("long", [long_file(tmp_path / "d.csv", ["a"])], prices=prices)
    assert phrase in str(info.value) and str(prices) in str(info.value)
    assert "\n" not in str(info.value)


def test_cli_import_with_a_litellm_price_file(tmp_path: Path) -> None:
    prices = write_json(tmp_path / "litellm.json", LITELLM)
    source = long_file(tmp_path / "mine.csv", ["gpt-4o", "gpt-4o-mini"])
    out = tmp_path / "mine.parquet"
    result = run_cli("import", "long", source, "-o", out, "--option", f"prices={prices}")
    assert result.code == 0, result.stderr
    assert "costs: USD per call from tokens x price" in result.stdout
    assert prices_of(RoutingData.load(out)) == {"gpt-4o": (2.5, 10.0), "gpt-4o-mini": (0.15, 0.6)}
    source = long_file(tmp_path / "img.csv", ["whisper-1"])
    result = run_cli("import", "long", source, "-o", out, "--option", f"prices={prices}")
    assert result.code == 1 and result.stderr.count("\n") == 1
    assert "no per-token price for model 'whisper-1'" in result.stderr
