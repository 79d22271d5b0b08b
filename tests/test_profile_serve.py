"""DynaRoute behind the proxy: the table's models are catalog entries, a table model the
catalog lacks fails at start-up in one line, and the route decides by the profile's tier (the
knob of ``codyn/<route>:<knob>`` is the router mode)."""

from __future__ import annotations

from pathlib import Path

import pytest

from codyn.errors import DataError
from codyn.serve.config import load_config
from codyn.serve.routing import Gateway
from tests.conftest import run_cli
from tests.serve_support import model_entry, write_config
from tests.test_profile_router import CODE, make_data

TABLE_MODELS = ["Gemini 2.5 Flash", "o4-mini (high)", "Gemini 2.5 Pro"]
DEAD = "http://127.0.0.1:9/v1"  # never called: these tests only decide


@pytest.fixture(scope="module")
def dynaroute(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("dynaroute")
    data = folder / "labelled.parquet"
    make_data().save(data)
    out = folder / "router"
    built = run_cli(
        "profile", "build", "--train", data, "--models", ",".join(TABLE_MODELS), "-o", out,
        "--param", "featuriser=tfidf",
    )  # fmt: skip
    assert built.code == 0, built.stderr
    return out


def catalog(names: list[str]) -> dict[str, dict]:
    prices = {
        "Gemini 2.5 Flash": (0.15, 0.6),
        "o4-mini (high)": (1.1, 4.4),
        "Gemini 2.5 Pro": (1.25, 10.0),
    }
    return {name: model_entry(DEAD, *prices[name]) for name in names}


def test_a_table_model_missing_from_the_catalog_fails_at_start_up(
    dynaroute: Path, tmp_path: Path
) -> None:
    config = write_config(
        tmp_path, models=catalog(TABLE_MODELS[:2]), routes={"dyn": {"router": str(dynaroute)}}
    )
    with pytest.raises(DataError) as failure:
        Gateway(load_config(config))
    message = str(failure.value)
    assert "\n" not in message and "Gemini 2.5 Pro" in message


def test_the_proxy_routes_by_the_profiles_tier(dynaroute: Path, tmp_path: Path) -> None:
    config = write_config(
        tmp_path, models=catalog(TABLE_MODELS), routes={"dyn": {"router": str(dynaroute)}}
    )
    gateway = Gateway(load_config(config))
    hard = [{"role": "user", "content": CODE[3][0]}]
    easy = [{"role": "user", "content": CODE[1][0]}]
    # Code Generation over these three (mean Z on LiveCodeBench, SciCode, HumanEval,
    # Multilingual): level 1 -> the Low pick, level 3 -> the Best pick
    assert gateway.decide("codyn/dyn", easy).chosen == "Gemini 2.5 Flash"
    best = gateway.decide("codyn/dyn", hard).chosen
    assert best == gateway.decide("codyn/dyn:1", easy).chosen  # Best-Performance mode
    assert best != "Gemini 2.5 Flash"
    assert gateway.decide("codyn/dyn:-1", hard).chosen == "Gemini 2.5 Flash"  # Low-Cost mode
