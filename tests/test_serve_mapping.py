"""A route's ``models:`` mapping a router's model names onto catalog models, without backends.

The router is real: k-NN on TF-IDF trained on RouterBench's MBPP train split (eleven models),
served as two catalog models, as RouteLLM trains on one pair and serves another. Also the
costs rule, the one-line config errors, and ``codyn serve --check`` against dead endpoints.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import codyn.cli.serve_commands  # noqa: F401  (registers the commands)
from codyn.bench.local import STRONG, WEAK, free_port
from codyn.data.importers import read
from codyn.deploy import PolicySetup, load_deployed
from codyn.deploy import route as deploy_route
from codyn.errors import DataError
from codyn.routers import make_router
from codyn.serve.config import load_config
from codyn.serve.routing import Gateway
from tests.conftest import run_cli
from tests.serve_support import model_entry, router_dir, write_config

GPT4, MISTRAL = "gpt-4-1106-preview", "mistralai/mistral-7b-chat"
MAPPING = {GPT4: STRONG, MISTRAL: WEAK}
DEAD = "http://127.0.0.1:9/v1"
MODELS = {WEAK: model_entry(DEAD, 0.1, 0.2), STRONG: model_entry(DEAD, 1.0, 2.0)}


@pytest.fixture(scope="module")
def routerbench_knn(benchmarks: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """k-NN (TF-IDF) on RouterBench MBPP train, saved as `codyn train` saves it."""
    train = read("routerbench", benchmarks / "routerbench" / "mbpp_train.csv")
    path = tmp_path_factory.mktemp("routerbench") / "knn"
    router = make_router("knn", featuriser="tfidf", k=10).fit(train)
    router.save(path)
    PolicySetup.from_train(router, train).save(path)
    return path


@pytest.fixture(scope="module")
def mbpp_prompts(benchmarks: Path) -> list[str]:
    test = read("routerbench", benchmarks / "routerbench" / "mbpp_test.csv")
    return list(test.prompts["text"][:12])


def gateway(folder: Path, models: dict = MODELS, **routes: dict) -> Gateway:
    return Gateway(load_config(write_config(folder, models=models, routes=routes)))


def user(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def test_a_mapped_route_decides_as_codyn_route_under_catalog_names(
    routerbench_knn: Path, mbpp_prompts: list[str], tmp_path: Path
) -> None:
    routes = gateway(tmp_path, rb={"router": str(routerbench_knn), "models": MAPPING})
    route = routes.routes["rb"]
    assert route.served == {GPT4: STRONG, MISTRAL: WEAK} and int(route.offered.sum()) == 2
    router, setup = load_deployed(routerbench_knn)
    for text in mbpp_prompts:
        decision = routes.decide("rb", user(text))
        assert set(decision.ranking) == {STRONG, WEAK}
        assert set(decision.predicted) == {STRONG, WEAK}
        # at lambda 0 costs only break ties, and both cost rules call mistral the cheaper
        routed = deploy_route(router, setup, [text], offered=[GPT4, MISTRAL])
        assert decision.chosen == MAPPING[routed.models[0]]
        assert decision.predicted[decision.chosen] == max(decision.predicted.values())
    assert route.strongest == STRONG


def test_costs_are_the_catalogs_for_renamed_models_unless_free_or_overridden(
    routerbench_knn: Path, tmp_path: Path
) -> None:
    setup = PolicySetup.read(routerbench_knn)
    train = dict(zip(setup.model_names, setup.model_costs, strict=True))
    free = {name: model_entry(DEAD, 0.0, 0.0) for name in MODELS}
    router = str(routerbench_knn)
    priced = gateway(tmp_path, rb={"router": router, "models": MAPPING}).routes["rb"]
    unpriced = gateway(tmp_path, free, rb={"router": router, "models": MAPPING}).routes["rb"]
    forced = gateway(tmp_path, rb={"router": router, "models": MAPPING, "costs": "train"})

    def offered_costs(route: object) -> dict[str, float]:
        return {m: float(route.costs[route.model_names.index(m)]) for m in MAPPING}

    assert priced.cost_source == "catalog"
    assert offered_costs(priced) == {GPT4: 3.0, MISTRAL: pytest.approx(0.3)}
    # columns not offered sit inside the offered range, at the cheapest
    cheapest = priced.costs[priced.model_names.index(MISTRAL)]
    assert (priced.costs[~priced.offered] == cheapest).all()
    for route in (unpriced, forced.routes["rb"]):
        assert route.cost_source == "train"
        assert offered_costs(route) == {m: train[m] for m in MAPPING}
    same_names = router_dir(tmp_path / "same")
    assert gateway(tmp_path, same={"router": str(same_names)}).routes["same"].cost_source == (
        "train"
    )


def test_catalog_prices_drive_the_choice(
    routerbench_knn: Path, mbpp_prompts: list[str], tmp_path: Path
) -> None:
    """At a lambda where cost decides, the catalog-cheaper model wins; swap the catalog's
    prices and the other one does. With train costs the catalog's prices change nothing."""
    swapped = {WEAK: model_entry(DEAD, 1.0, 2.0), STRONG: model_entry(DEAD, 0.1, 0.2)}
    route = {"router": str(routerbench_knn), "models": MAPPING, "knob": 10.0}
    train = {**route, "costs": "train"}
    text = user(mbpp_prompts[0])
    assert gateway(tmp_path, rb=route).decide("rb", text).chosen == WEAK
    assert gateway(tmp_path, swapped, rb=route).decide("rb", text).chosen == STRONG
    assert gateway(tmp_path, rb=train).decide("rb", text).chosen == WEAK
    assert gateway(tmp_path, swapped, rb=train).decide("rb", text).chosen == WEAK


def test_a_saved_knob_is_kept_only_with_the_train_costs_it_was_tuned_on(
    routerbench_knn: Path, tmp_path: Path
) -> None:
    saved = tmp_path / "saved"
    for file in routerbench_knn.iterdir():
        (saved / file.name).parent.mkdir(exist_ok=True)
        (saved / file.name).write_bytes(file.read_bytes())
    policy = json.loads((saved / "policy.json").read_text())
    (saved / "policy.json").write_text(json.dumps({**policy, "knob": 0.5}))
    catalog = gateway(tmp_path, rb={"router": str(saved), "models": MAPPING}).routes["rb"]
    train = gateway(tmp_path, rb={"router": str(saved), "models": MAPPING, "costs": "train"})
    assert (catalog.knob, catalog.knob_source) == (0.0, "the policy's default")
    assert (train.routes["rb"].knob, train.routes["rb"].knob_source) == (
        0.5,
        "the router's saved knob",
    )


def test_policy_models_are_named_by_catalog_name(
    routerbench_knn: Path, mbpp_prompts: list[str], tmp_path: Path
) -> None:
    pair = {"router": str(routerbench_knn), "models": MAPPING, "policy": "threshold"}
    routes = gateway(tmp_path, pair={**pair, "strong": STRONG, "weak": WEAK})
    route = routes.routes["pair"]
    assert route.policy.strong == route.model_names.index(GPT4)
    assert route.policy.weak == route.model_names.index(MISTRAL)
    assert routes.decide("codyn/pair:-1", user(mbpp_prompts[0])).ranking == [STRONG, WEAK]
    fixed = {**pair, "policy": {"name": "fixed", "model": WEAK}}
    assert gateway(tmp_path, fixed=fixed).decide("fixed", user("hi")).chosen == WEAK


def config_error(folder: Path, route: dict, models: dict = MODELS) -> str:
    """The one-line error a route gets, from reading the file or loading the routers."""
    path = write_config(folder, models=models, routes={"r": route})
    with pytest.raises(DataError) as info:
        Gateway(load_config(path))
    message = str(info.value)
    assert message.startswith(f"{path}: ") and "\n" not in message
    return message.removeprefix(f"{path}: ")


@pytest.mark.parametrize(
    ("models", "expected"),
    [
        (
            {GPT4: "gpt-5"},
            f"routes.r.models.{GPT4}: unknown model 'gpt-5'; the catalog has {WEAK}, {STRONG}",
        ),
        (
            {GPT4: WEAK, MISTRAL: WEAK},
            f"routes.r.models: catalog model '{WEAK}' is mapped from both '{GPT4}' and '{MISTRAL}'",
        ),
        ([WEAK, WEAK], f"routes.r.models: '{WEAK}' is listed twice"),
        ({}, "routes.r.models: empty; offer at least one of the router's models"),
        (
            {GPT4: [STRONG]},
            "routes.r.models: give a list of model names or a mapping {router model: catalog "
            "model}",
        ),
        (
            {"gpt-5": STRONG},
            "routes.r.models: the router was not trained on gpt-5 (router models: "
            "WizardLM/WizardLM-13B-V1.2, claude-instant-v1",
        ),
        ([STRONG], "routes.r.models: the router was not trained on qwen-coder"),
    ],
)
def test_mapping_mistakes_are_one_line_naming_the_field(
    routerbench_knn: Path, tmp_path: Path, models: object, expected: str
) -> None:
    assert config_error(tmp_path, {"router": str(routerbench_knn), "models": models}).startswith(
        expected
    )


def test_other_route_mistakes_name_their_field(routerbench_knn: Path, tmp_path: Path) -> None:
    router = str(routerbench_knn)
    unmapped = config_error(tmp_path, {"router": router})
    assert unmapped.startswith("routes.r.router: the catalog has no model WizardLM")
    assert unmapped.endswith("map router models onto catalog models with routes.r.models: "
                             "{router model: catalog model}")  # fmt: skip
    three = {**MODELS, "spare": model_entry(DEAD, 0.5, 0.5)}
    pair = {"router": router, "models": MAPPING, "policy": "threshold"}
    assert config_error(tmp_path, {**pair, "strong": "spare"}, three) == (
        f"routes.r.strong: 'spare' is not offered by this route (offered: {STRONG}, {WEAK})"
    )
    assert config_error(tmp_path, {**pair, "costs": "cheap"}).startswith(
        "routes.r.costs: Input should be 'catalog' or 'train'"
    )


def test_check_prints_the_table_and_one_line_per_problem(
    routerbench_knn: Path, tmp_path: Path
) -> None:
    down = f"http://127.0.0.1:{free_port()}/v1"
    config = write_config(
        tmp_path,
        models={
            WEAK: model_entry(down, 0.1, 0.2),
            STRONG: model_entry(down, 1.0, 2.0),
            "spare": model_entry(down, 0.5, 0.5),
        },
        routes={
            "rb": {"router": str(routerbench_knn), "models": MAPPING, "fallbacks": [WEAK]},
            "broken": {"router": str(routerbench_knn), "models": {"gpt-5": STRONG}},
        },
    )
    result = run_cli("serve", "--check", config)
    assert result.code == 1
    problems = result.stderr.strip().splitlines()
    assert len(problems) == 4, problems
    for problem, model in zip(problems[:3], (WEAK, STRONG, "spare"), strict=True):
        assert problem.startswith(f"problem: {config}: models.{model}: the backend at {down} did")
    assert problems[3].startswith(f"problem: {config}: routes.broken.models: the router was not")
    assert "route rb: router" in result.stdout and "costs: catalog prices" in result.stdout
    rows = [line for line in result.stdout.splitlines() if line.startswith(("│ rb ", "│ - "))]
    cells = [[cell.strip() for cell in row.strip("│").split("│")] for row in rows]
    assert cells == [
        ["rb", GPT4, STRONG, down, "3 USD/1M in+out (catalog)", "no"],
        ["rb", MISTRAL, WEAK, down, "0.3 USD/1M in+out (catalog)", "no"],
        ["rb", "(fallback)", WEAK, down, "-", "no"],
        ["-", "-", "spare", down, "-", "no"],
    ]


def test_check_of_a_config_that_does_not_parse_is_one_line(
    routerbench_knn: Path, tmp_path: Path
) -> None:
    route = {"router": str(routerbench_knn), "models": {GPT4: "gpt-5"}}
    config = write_config(tmp_path, models=MODELS, routes={"rb": route})
    result = run_cli("serve", "--check", config)
    assert (result.code, result.stdout) == (1, "")
    assert result.stderr == (
        f"error: {config}: routes.rb.models.{GPT4}: unknown model 'gpt-5'; the catalog has "
        f"{WEAK}, {STRONG}\n"
    )


def test_serve_takes_exactly_one_of_config_and_check(tmp_path: Path) -> None:
    config = write_config(tmp_path, models=MODELS)
    for args in ((), ("--config", config, "--check", config)):
        result = run_cli("serve", *args)
        assert (result.code, result.stderr.strip()) == (
            1,
            "error: give --config CONFIG to serve it, or --check CONFIG to validate it",
        )
