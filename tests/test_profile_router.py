"""The `profile` router (DynaRoute): trained profiles, the table built from the user's data,
the three modes as knobs of the tiers policy, overrides, saving, `codyn route`'s account of a
decision, `codyn eval`'s mode points, `codyn profile eval` and `codyn profile build`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from codyn.data.routing import RoutingData
from codyn.evaluate import evaluate
from codyn.policy import TiersPolicy, decide
from codyn.routers.profile import MODES, ProfileRouter
from codyn.routers.registry import load_router
from tests.conftest import run_cli

MODELS = ["cheap", "mid", "pricey"]
COSTS = np.array([1.0, 2.0, 5.0])
CODE = {  # mbpp prompts by difficulty: who passes (cheap, mid, pricey)
    1: ("write a python function to add two numbers", (1, 1, 1)),
    2: ("write a python function to sort a list with merge sort", (0, 1, 1)),
    3: ("write a python function implementing a red black tree with deletion", (0, 0, 1)),
}
FACTS = {  # trivia prompts: mid and pricey always pass, cheap only the easy ones
    1: ("which city is the capital of france", (1, 1, 1)),
    2: ("which river flows through the ancient city of baghdad", (0, 1, 1)),
}


def make_data(repeats: int = 8) -> RoutingData:
    prompts, scores = [], []
    for task, kinds in (("mbpp", CODE), ("trivia_qa", FACTS)):
        for level, (text, passed) in kinds.items():
            for i in range(repeats):
                prompts.append(
                    {"id": f"{task}-{level}-{i}", "text": f"{text} case {i}", "task": task}
                )
                scores.append(passed)
    score = np.array(scores, dtype=float)
    return RoutingData(
        prompts=prompts,
        models=MODELS,
        score=score,
        cost=np.broadcast_to(COSTS, score.shape).copy(),
        cost_basis="observed",
    )


@pytest.fixture(scope="module")
def data() -> RoutingData:
    return make_data()


@pytest.fixture(scope="module")
def router(data: RoutingData) -> ProfileRouter:
    return ProfileRouter(featuriser="tfidf").fit(data)


def test_profiles_learn_categories_from_tasks_and_levels_from_scores(
    router: ProfileRouter, data: RoutingData
) -> None:
    profiles = router.profiles(data)
    categories = {"mbpp": "Code Generation", "trivia_qa": "Facts"}  # data/task_categories.yaml
    assert [p.category for p in profiles] == [categories[t] for t in data.tasks]
    # levels: the share of the three models failing: 0 -> 1, 1/3 -> 2, 2/3 -> 3
    want = [int(i.split("-")[1]) for i in data.prompts["id"]]
    assert [p.level for p in profiles] == want
    assert all(0.5 < p.confidence <= 1.0 for p in profiles)
    assert router.categories_ == ["Code Generation", "Facts"]


def test_bad_prompts_are_one_line_errors(router: ProfileRouter) -> None:
    from codyn.errors import CodynError

    for bad in (["fine", "  "], "a bare string"):
        with pytest.raises(CodynError):
            router.predict_with_difficulty(bad)  # type: ignore[arg-type]
    predicted, _ = router.predict_with_difficulty([CODE[1][0]])
    np.testing.assert_array_equal(predicted, router.predict([CODE[1][0]]))


def test_rows_are_mean_z_scores_of_each_categorys_tasks(router: ProfileRouter) -> None:
    # mbpp mean scores 1/3, 2/3, 1 -> Z -sqrt(1.5), 0, sqrt(1.5); trivia 1/2, 1, 1
    root = np.sqrt(1.5)
    np.testing.assert_allclose(router.quality_[0], [-root, 0.0, root])
    np.testing.assert_allclose(router.quality_[1], [-np.sqrt(2), 1 / np.sqrt(2), 1 / np.sqrt(2)])


def test_modes_are_knobs_of_the_tiers_policy(router: ProfileRouter) -> None:
    texts = [CODE[1][0], CODE[2][0], CODE[3][0], FACTS[1][0], FACTS[2][0]]
    predicted, difficulty = router.predict_with_difficulty(texts)
    np.testing.assert_allclose(difficulty, [0.0, 0.5, 1.0, 0.0, 0.5])
    policy = TiersPolicy().with_difficulty(difficulty)

    def models(mode: str) -> list[str]:
        return [MODELS[i] for i in decide(predicted, COSTS, policy, MODES[mode])]

    # tiers over costs 1, 2, 5: {cheap}, {cheap, mid}, all; Facts ties mid/pricey -> mid
    assert models("optimum") == ["cheap", "mid", "pricey", "cheap", "mid"]
    assert models("low-cost") == ["cheap"] * 5
    assert models("best") == ["pricey", "pricey", "pricey", "mid", "mid"]
    # the policy's own grid holds all three: its cheap end is low-cost, its top end best
    grid = policy.knob_grid(predicted, COSTS)
    assert [MODELS[i] for i in decide(predicted, COSTS, policy, grid[0])] == models("low-cost")
    assert [MODELS[i] for i in decide(predicted, COSTS, policy, grid[-1])] == models("best")


def test_overrides_shift_a_categorys_levels(data: RoutingData, tmp_path: Path) -> None:
    overrides = tmp_path / "overrides.yaml"
    overrides.write_text("facts: 1\n")  # "shift chemistry up one level", section 3.2.1
    shifted = ProfileRouter(featuriser="tfidf", overrides=str(overrides)).fit(data)
    routed = shifted.routed_profiles([FACTS[1][0], FACTS[2][0], CODE[3][0]])
    assert [(p.category, p.level) for p in routed] == [
        ("Facts", 2), ("Facts", 3), ("Code Generation", 3),
    ]  # fmt: skip
    explained = shifted.explain([FACTS[2][0]])[0]
    assert explained["profiled"]["level"] == 2 and explained["level"] == 3
    overrides.write_text("Alchemy: 1\n")
    with pytest.raises(Exception, match="'Alchemy' is not a domain"):
        ProfileRouter(featuriser="tfidf", overrides=str(overrides)).fit(data)


def test_save_and_load_keep_every_decision(
    router: ProfileRouter, data: RoutingData, tmp_path: Path
) -> None:
    router.save(tmp_path / "r")
    loaded = load_router(tmp_path / "r")
    assert isinstance(loaded, ProfileRouter)
    pairs = zip(
        router.predict_with_difficulty(data), loaded.predict_with_difficulty(data), strict=True
    )
    for a, b in pairs:
        np.testing.assert_array_equal(a, b)
    assert not list((tmp_path / "r").glob("*.pkl"))


def test_route_explains_category_level_tier_and_row(data: RoutingData, tmp_path: Path) -> None:
    data_file = tmp_path / "data.parquet"
    data.save(data_file)
    out = tmp_path / "profile"
    trained = run_cli(
        "train", data_file, "--router", "profile", "--param", "featuriser=tfidf",
        "--policy", "tiers", "-o", out,
    )  # fmt: skip
    assert trained.code == 0, trained.stderr
    routed = run_cli("route", CODE[2][0], "--router", out, "--json")
    assert routed.code == 0, routed.stderr
    answer = json.loads(routed.stdout)
    assert answer["model"] == "mid"
    explanation = answer["explanation"]
    assert explanation["category"] == "Code Generation"
    assert explanation["main_category"] == "Code-related"
    assert (explanation["level"], explanation["tier"]) == (2, 1)
    assert explanation["tier_models"] == ["cheap", "mid", "pricey"]
    best = json.loads(run_cli("route", CODE[2][0], "--router", out, "--knob", "1", "--json").stdout)
    assert (best["model"], best["explanation"]["tier"]) == ("pricey", 2)
    text = run_cli("route", CODE[2][0], "--router", out)
    assert "profile: Code Generation (Code-related), level 2" in text.stdout
    assert "tier moderate; the category's row: low: cheap, moderate: mid, best: pricey" in (
        " ".join(text.stdout.split())
    )


def test_eval_reports_the_three_modes_as_points(data: RoutingData) -> None:
    train, test = data, make_data(repeats=3)
    result = evaluate(
        train, test, {"profile": ProfileRouter(featuriser="tfidf")}, policies={"tiers": "tiers"}
    )
    points = {p["name"]: p for p in result.routers["profile"].points}
    assert list(points) == ["low-cost", "optimum", "best"]
    # low-cost: all cheap; optimum: the level's tier; best: every code prompt to pricey
    assert points["low-cost"]["cost"] == pytest.approx(1.0)
    assert points["optimum"]["quality"] == pytest.approx(1.0)  # each prompt to a model passing it
    assert points["low-cost"]["cost"] < points["optimum"]["cost"] < points["best"]["cost"]
    assert points["best"]["quality"] == pytest.approx(1.0)
    assert result.to_dict()["routers"]["profile"]["points"][1]["name"] == "optimum"
    from codyn.report.figures import cost_quality_figure

    axes = cost_quality_figure(result).axes[0]
    marked = [line for line in axes.get_lines() if line.get_marker() == "P"]
    assert len(marked) == 3
    assert {t.get_text() for t in axes.texts} >= {"low-cost", "optimum", "best"}


def test_profile_eval_cli(data: RoutingData, tmp_path: Path) -> None:
    data_file = tmp_path / "data.parquet"
    make_data(repeats=10).save(data_file)
    result = run_cli(
        "profile", "eval", data_file, "--param", "featuriser=tfidf", "--test-size", "0.5",
        "--json",
    )  # fmt: skip
    assert result.code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["n_prompts"] == 25 and report["category_accuracy"] == 1.0
    assert report["level_accuracy"] == 1.0
    assert report["confusion"]["labels"] == ["Code Generation", "Facts"]
    assert sum(map(sum, report["confusion"]["matrix"])) == 25
    assert sum(map(sum, report["level_confusion"]["matrix"])) == 25
    assert report["latency_ms"]["p50"] > 0
    first = run_cli(
        "profile", "eval", data_file, "--param", "featuriser=tfidf", "--n", "6", "--json"
    )  # fmt: skip
    assert first.code == 0, first.stderr
    sample = json.loads(first.stdout)
    assert sample["n_prompts"] == 6 and set(sample["per_task"]) == {"mbpp", "trivia_qa"}
    shown = run_cli("profile", "eval", data_file, "--param", "featuriser=tfidf")
    assert shown.code == 0 and "trained profiler" in shown.stdout and "p99" in shown.stdout


def test_profile_build_routes_between_table_models(data: RoutingData, tmp_path: Path) -> None:
    data_file = tmp_path / "data.parquet"
    data.save(data_file)
    out = tmp_path / "dynaroute"
    models = "Gemini 2.5 Flash,o4-mini (high),Gemini 2.5 Pro"
    built = run_cli(
        "profile", "build", "--train", data_file, "--models", models, "-o", out,
        "--param", "featuriser=tfidf", "--json",
    )  # fmt: skip
    assert built.code == 0, built.stderr
    assert json.loads(built.stdout)["model_costs"] == [0.75, 5.5, 11.25]
    hard = json.loads(run_cli("route", CODE[3][0], "--router", out, "--json").stdout)
    # Code Generation over these three: level 3 -> the best mean Z whatever it costs
    assert hard["explanation"]["level"] == 3
    assert hard["model"] == hard["explanation"]["tier_models"][2]
    cheap = json.loads(
        run_cli("route", CODE[3][0], "--router", out, "--knob", "-1", "--json").stdout
    )
    assert cheap["model"] == "Gemini 2.5 Flash"
    unpriced = run_cli(
        "profile", "build", "--train", data_file, "--models", "DeepSeek V3", "-o", out,
        "--param", "featuriser=tfidf",
    )  # fmt: skip
    assert unpriced.code == 1 and "'DeepSeek V3' has no input or output price" in unpriced.stderr
