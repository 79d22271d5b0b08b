"""`codyn.catalog`: a valid config loads with paths relative to the file; every mistake is one
line naming the YAML file and the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from codyn.errors import DataError
from codyn.serve.config import load_config

VALID = """
models:
  smollm2:
    api_base: http://127.0.0.1:8101/v1
    price_in: 0.1
    price_out: 0.2
    context_window: 2048
    tags: [local, weak]
  gpt-4o-mini:
    litellm: openai/gpt-4o-mini
    api_key_env: CODYN_TEST_OPENAI_KEY
    price_in: 0.15
    price_out: 0.6
routes:
  codyn-code:
    router: routers/knn
    knob: 0.3
    fallbacks: [gpt-4o-mini]
    sticky: true
    turns: 2
  pair:
    router: routers/knn
    policy: threshold
    strong: gpt-4o-mini
    weak: smollm2
    calibrate: {data: val.parquet, strong_share: 0.3}
keys:
  alice: {key_env: CODYN_TEST_KEY, budget_usd: 5}
database: {url: "sqlite:///logs/decisions.db", buffer_rows: 100}
limits: {max_body_bytes: 5000, timeout_s: 30}
"""


@pytest.fixture(autouse=True)
def env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CODYN_TEST_OPENAI_KEY", "sk-openai")
    monkeypatch.setenv("CODYN_TEST_KEY", "sk-alice")


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "codyn.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_valid_config_resolves_paths_against_the_file(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, VALID))
    smollm2, mini = config.models["smollm2"], config.models["gpt-4o-mini"]
    assert smollm2.litellm_model == "openai/smollm2" and smollm2.tags == ["local", "weak"]
    assert mini.litellm_model == "openai/gpt-4o-mini" and mini.api_key() == "sk-openai"
    assert smollm2.cost(1_000_000, 500_000) == pytest.approx(0.1 + 0.1)
    route = config.routes["codyn-code"]
    assert route.router == tmp_path.resolve() / "routers" / "knn"
    assert (route.knob, route.fallbacks, route.sticky, route.turns) == (
        0.3,
        ["gpt-4o-mini"],
        True,
        2,
    )
    pair = config.routes["pair"]
    assert pair.calibrate is not None and pair.calibrate.data == tmp_path.resolve() / "val.parquet"
    assert config.database.url == f"sqlite:///{tmp_path.resolve()}/logs/decisions.db"
    assert config.keys["alice"].budget_usd == 5 and config.limits.max_body_bytes == 5000
    assert config.path == tmp_path / "codyn.yaml"


def test_defaults_put_the_sqlite_log_beside_the_file(tmp_path: Path) -> None:
    config = load_config(
        write(tmp_path, "models:\n  m: {litellm: openai/m, price_in: 0, price_out: 0}\n")
    )
    assert config.database.url == f"sqlite:///{tmp_path.resolve()}/codyn-decisions.db"
    assert config.routes == {} and config.keys == {} and config.limits.timeout_s == 120


MISTAKES = [
    ("price_in: 0.1", "price_in: cheap", "models.smollm2.price_in: Input should be a valid number"),
    ("price_in: 0.1", "price_in: -1", "models.smollm2.price_in: Input should be greater than"),
    ("    price_out: 0.2\n", "", "models.smollm2.price_out: Field required"),
    ("tags:", "colour: red\n    tags:", "models.smollm2.colour: Extra inputs are not permitted"),
    ("    api_base: http://127.0.0.1:8101/v1\n", "", "models.smollm2: give `litellm`"),
    (
        "fallbacks: [gpt-4o-mini]",
        "fallbacks: [gpt-5]",
        "routes.codyn-code.fallbacks: unknown model",
    ),
    (
        "policy: threshold",
        "policy: utility",
        "routes.pair: `strong` / `weak` do not belong to policy 'utility'",
    ),
    ("knob: 0.3", "knob: 0.3\n    calibrate: {data: v, min_quality: 1}", "give `knob` or `calib"),
    (
        "strong_share: 0.3",
        "strong_share: 0.3, target_cost: 1",
        "routes.pair.calibrate: give exactly",
    ),
    ("turns: 2", "turns: 0", "routes.codyn-code.turns: Input should be greater than or equal to 1"),
    ("policy: threshold", "policy: magic", "routes.pair.policy: unknown policy 'magic'; known"),
    (
        "CODYN_TEST_KEY",
        "CODYN_TEST_UNSET",
        "keys.alice.key_env: environment variable CODYN_TEST_UNSET",
    ),
    ("  codyn-code:", "  smollm2:", "routes.smollm2: a route and a model are both named 'smollm2'"),
]


@pytest.mark.parametrize(("old", "new", "message"), MISTAKES)
def test_mistakes_are_one_line_naming_file_and_field(
    tmp_path: Path, old: str, new: str, message: str
) -> None:
    assert old in VALID
    path = write(tmp_path, VALID.replace(old, new, 1))
    with pytest.raises(DataError) as info:
        load_config(path)
    text = str(info.value)
    assert text.startswith(f"{path}: ") and message in text and "\n" not in text


def test_yaml_syntax_error_names_the_line(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"codyn.yaml, line 3: not valid YAML"):
        load_config(write(tmp_path, "models:\n  a: {price_in: 1\n  b: 2\n"))


def test_missing_file_and_wrong_shape(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="cannot read the config"):
        load_config(tmp_path / "nope.yaml")
    with pytest.raises(DataError, match="expected a mapping with `models:`"):
        load_config(write(tmp_path, "- a\n- b\n"))
    with pytest.raises(DataError, match="models: Field required"):
        load_config(write(tmp_path, "routes: {}\n"))
