"""Evaluation: baselines equal direct computations, metric properties, JSON, CLI, anchors."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

import codyn.cli.eval_command  # noqa: F401  (registers `codyn eval`)
from codyn.data.routing import RoutingData
from codyn.errors import CodynError, DataError
from codyn.evaluate import EvaluationResult, evaluate
from codyn.metrics.curves import aiq
from codyn.routers.base import Router
from tests.conftest import run_cli

MODELS = ["tiny", "small", "mid", "large"]
PRICE = np.array([0.1, 0.3, 1.0, 4.0])
SKILL = np.array([0.35, 0.55, 0.65, 0.75])
ROUTER_KEYS = {
    "aiq",
    "apgr",
    "apgr_integral",
    "cpt50",
    "cpt80",
    "cost_to_match_sbs",
    "codyn_cost_at_sbs_q",
    "best_quality_at_sbs_cost",
    "aiq_diff_vs_zero",
    "curve",
    "binary_curve",
    "selection_share",
    "selection_entropy",
    "q_at_default",
    "norm_cost_at_default",
    "family",
    "policy",
    "learned",
    "warnings",
}


def make_data(n: int = 240, seed: int = 1, costs: bool = True) -> RoutingData:
    """0/1 scores from a latent difficulty (bigger models pass harder prompts), noisy costs."""
    rng = np.random.default_rng(seed)
    difficulty = rng.random(n)
    score = (rng.random((n, 4)) * 0.5 + SKILL[None, :] > difficulty[:, None] + 0.25).astype(float)
    cost = PRICE[None, :] * rng.uniform(0.8, 1.2, size=(n, 4)) if costs else None
    return RoutingData(
        prompts=[
            {"id": f"q{i}", "text": f"task {i}: difficulty {d:.3f}"}
            for i, d in enumerate(difficulty)
        ],
        models=MODELS,
        score=score,
        cost=cost,
        cost_basis="observed" if costs else "unknown",
    )


class NoisyOracle(Router):
    """A 'learned' router for tests: the true scores plus Gaussian noise."""

    family = "noisy-oracle"

    def __init__(self, noise: float = 0.6, seed: int = 0) -> None:
        self.noise = noise
        self.seed = seed

    def _predict(self, texts: list[str], data: RoutingData | None) -> np.ndarray:
        assert data is not None
        rng = np.random.default_rng(self.seed)
        return data.score + self.noise * rng.standard_normal(data.score.shape)


@pytest.fixture(scope="module")
def split() -> tuple[RoutingData, RoutingData]:
    return make_data().split(0.5, seed=0)


@pytest.fixture(scope="module")
def result(split: tuple[RoutingData, RoutingData]) -> EvaluationResult:
    train, test = split
    return evaluate(train, test, ["random", "sbs", "cheapest", NoisyOracle()], n_boot=200)


def test_oracle_bounds_every_router(result: EvaluationResult) -> None:
    for r in result.routers.values():
        assert result.oracle.aiq >= r.aiq
        assert result.oracle.default_quality >= r.default_quality
    assert result.oracle.aiq >= result.zero_router["aiq"]
    # the noisy oracle is a useful router: above the zero router's hull on this data
    assert result.routers["noisy-oracle"].aiq > result.routers["random"].aiq


def test_sbs_and_oracle_rows_equal_direct_computation(
    split: tuple[RoutingData, RoutingData], result: EvaluationResult
) -> None:
    train, test = split
    sbs = int(np.argmax(train.score.mean(axis=0)))
    assert result.sbs["model"] == MODELS[sbs] == result.strong
    assert result.sbs["test_q"] == pytest.approx(test.score[:, sbs].mean())
    mean_cost = test.cost.mean(axis=0)
    assert result.max_cost == pytest.approx(mean_cost.max())
    assert result.sbs["cost"] == pytest.approx(mean_cost[sbs])
    q = test.score.mean(axis=0)
    assert result.zero_router["aiq"] == pytest.approx(aiq(mean_cost, q, mean_cost.max()))
    for j, row in enumerate(result.models):
        assert row["aiq"] == pytest.approx(q[j] * (1 - mean_cost[j] / mean_cost.max()))
    # oracle at lambda = 0: the best score per prompt, the cheapest (per-prompt cost) among ties
    best = test.score.max(axis=1, keepdims=True)
    chosen = np.argmin(np.where(test.score == best, test.cost, np.inf), axis=1)
    rows = np.arange(test.n_prompts)
    assert result.oracle.q_at_default == pytest.approx(best.mean())
    assert result.oracle.default_cost == pytest.approx(test.cost[rows, chosen].mean())


def test_random_baseline_apgr_is_half_within_its_interval(result: EvaluationResult) -> None:
    rnd = result.random
    assert rnd["apgr_integral_lo"] <= 0.5 <= rnd["apgr_integral_hi"]
    assert rnd["apgr_integral"] == pytest.approx(0.5, abs=0.06)
    assert rnd["apgr"] == pytest.approx(0.55, abs=0.06)  # RouteLLM eq. 8 grid starts at 10%
    assert rnd["quality_lo"] <= rnd["quality"] <= rnd["quality_hi"]
    assert rnd["n_seeds"] == 20


def test_sweeps_and_pair(result: EvaluationResult) -> None:
    noisy = result.routers["noisy-oracle"]
    assert (noisy.curve.knobs >= 0).sum() == 50  # continuous predictions: a full ANCHORS sweep
    assert (noisy.curve.knobs <= 0).sum() == 50  # ... and as many points trading up
    assert 0.0 in noisy.curve.knobs  # lambda = 0, the default, is always a point
    assert noisy.curve.knobs[0] > 0 > noisy.curve.knobs[-1]  # both directions
    assert (noisy.curve.choices[-1] == 3).all()  # past the first flip: the priciest everywhere
    assert noisy.learned and not result.routers["sbs"].learned
    assert noisy.pair is not None
    assert noisy.pair.strong_share[0] == 0.0 and noisy.pair.strong_share[-1] == 1.0
    assert noisy.pair.pgr[0] == 0.0 and noisy.pair.pgr[-1] == pytest.approx(1.0)
    assert result.weak == "small"  # cheapest with train q >= 70% of the SBS's
    assert noisy.apgr > result.random["apgr"]
    assert 0 < noisy.cpt50 <= noisy.cpt80 <= 1
    assert noisy.selection_share.sum() == pytest.approx(1.0)
    lo, diff, hi = noisy.aiq_diff_vs_zero[1], noisy.aiq_diff_vs_zero[0], noisy.aiq_diff_vs_zero[2]
    assert lo <= diff <= hi
    assert diff == pytest.approx(noisy.aiq - result.zero_router["aiq"])


def test_json_schema(result: EvaluationResult) -> None:
    d = json.loads(json.dumps(result.to_dict()))  # plain JSON types only
    top = {
        "sbs",
        "oracle",
        "random",
        "zero_router",
        "models",
        "strong",
        "weak",
        "cost_note",
        "routers",
        "n_train",
        "n_test",
        "max_cost",
        "cost_known",
        "notes",
        "warnings",
        "policies",
    }
    assert top <= set(d)
    assert set(d["routers"]) == {"random", "sbs", "cheapest", "noisy-oracle"}
    for r in [d["oracle"], *d["routers"].values()]:
        assert set(r) >= ROUTER_KEYS
        assert set(r["aiq_diff_vs_zero"]) == {"diff", "lo", "hi"}
        assert set(r["curve"][0]) == {"knob", "cost", "quality"}
        assert set(r["binary_curve"][0]) == {"strong_share", "quality", "pgr"}
        assert set(r["selection_share"]) == set(MODELS)
    assert d["cost_note"] == "costs: observed USD per call"


def test_seeded_and_reproducible(split: tuple[RoutingData, RoutingData]) -> None:
    train, test = split
    a = evaluate(train, test, ["random"], n_boot=50, seed=3).to_dict()
    b = evaluate(train, test, ["random"], n_boot=50, seed=3).to_dict()
    assert json.dumps(a) == json.dumps(b)


def test_unknown_costs_mark_cost_metrics_na() -> None:
    train, test = make_data(costs=False).split(0.5, seed=0)
    res = evaluate(train, test, ["random", NoisyOracle()], n_boot=20)
    d = res.to_dict()
    assert not d["cost_known"] and "cost metrics n/a" in d["cost_note"]
    for r in [d["oracle"], *d["routers"].values()]:
        assert math.isnan(r["aiq"]) and math.isnan(r["cost_to_match_sbs"])
        assert math.isnan(r["aiq_diff_vs_zero"]["diff"])
        assert all(math.isnan(p["cost"]) for p in r["curve"])
    assert math.isnan(d["zero_router"]["aiq"])
    # with uniform costs the weak model is the best model other than the strong one
    train_q = train.score.mean(axis=0)
    assert d["weak"] == MODELS[int(np.argsort(-train_q)[1])]
    assert np.isfinite(d["routers"]["noisy-oracle"]["apgr"])


def test_strong_weak_overrides_and_no_pair() -> None:
    train, test = make_data(n=120).split(0.5, seed=0)
    res = evaluate(train, test, ["sbs"], strong="mid", weak="tiny", n_boot=20)
    assert (res.strong, res.weak) == ("mid", "tiny")
    with pytest.raises(CodynError, match="must differ"):
        evaluate(train, test, ["sbs"], strong="mid", weak="mid")
    lonely = train.subset(models=["tiny", "large"])  # tiny < 70% of large: no weak model
    res = evaluate(lonely, test.subset(models=["tiny", "large"]), ["sbs"], n_boot=20)
    assert res.weak is None and math.isnan(res.routers["sbs"].apgr)


def test_bad_inputs_are_clear_errors(split: tuple[RoutingData, RoutingData]) -> None:
    train, test = split
    with pytest.raises(DataError, match="same models"):
        evaluate(train, test.subset(models=MODELS[::-1]), ["random"])
    empty = RoutingData(
        test.prompts,
        MODELS,
        np.full(test.score.shape, np.nan),
        cost=test.cost,
        cost_basis="observed",
    )
    with pytest.raises(DataError, match="no test prompt has a score for every model"):
        evaluate(train, empty, ["random"])
    with pytest.raises(CodynError, match="unknown router"):
        evaluate(train, test, ["no-such-router"])


# -- CLI ---------------------------------------------------------------------------------------


def test_reference_gives_paired_differences(split: tuple[RoutingData, RoutingData]) -> None:
    train, test = split
    result = evaluate(train, test, ["cheapest", "sbs", NoisyOracle()], n_boot=200, reference="sbs")
    assert result.reference == "sbs"
    sbs = result.routers["sbs"]
    assert all(math.isnan(v) for v in sbs.aiq_diff_vs_reference)
    for name in ("cheapest", "noisy-oracle"):
        r = result.routers[name]
        diff, lo, hi = r.aiq_diff_vs_reference
        assert diff == pytest.approx(r.aiq - sbs.aiq, abs=1e-12)
        assert lo <= diff <= hi
    # The noisy oracle is far above the SBS: its whole interval is above zero.
    assert result.routers["noisy-oracle"].aiq_diff_vs_reference[1] > 0
    d = result.to_dict()
    assert d["reference"] == "sbs" and "aiq_diff_vs_reference" in d["routers"]["cheapest"]
    with pytest.raises(CodynError, match="reference 'knn' is not one of the routers"):
        evaluate(train, test, ["sbs"], n_boot=10, reference="knn")


@pytest.fixture(scope="module")
def data_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_data(n=160).save(tmp_path_factory.mktemp("eval") / "toy.parquet")


def test_cli_table(data_file: Path) -> None:
    out = run_cli("eval", data_file, "--routers", "random,sbs", "--test-size", "0.4")
    assert out.code == 0, out.stderr
    for text in ("zero router", "SBS large", "oracle", "AIQ − zero [95%]", "observed USD"):
        assert text in out.stdout


def test_cli_reference_column(data_file: Path) -> None:
    out = run_cli(
        "eval", data_file, "--routers", "random,sbs", "--reference", "sbs", "--test-size", "0.4"
    )
    assert out.code == 0, out.stderr
    assert "AIQ − sbs [95%]" in out.stdout
    bad = run_cli("eval", data_file, "--routers", "random", "--reference", "sbs")
    assert bad.code == 1 and "reference 'sbs' is not one of the routers" in bad.stderr


def test_cli_json_and_split_options(data_file: Path, tmp_path: Path) -> None:
    out = run_cli("eval", data_file, "--routers", "random", "--json", "--points", "10")
    assert out.code == 0, out.stderr
    d = json.loads(out.stdout)
    assert d["n_test"] == 48 and d["report"] is None  # default test size 0.3
    assert sum(p["knob"] >= 0 for p in d["routers"]["random"]["curve"]) <= 10
    bad = run_cli(
        "eval", data_file, "--routers", "random", "--test-size", "0.3", "--test", data_file
    )
    assert bad.code == 1 and "at most one of" in bad.stderr


# -- anchors: RouterBench MBPP on the fixed split ----------------------------------------------


def test_cli_reproduces_anchor_baselines_on_rb_mbpp(benchmarks: Path, tmp_path: Path) -> None:
    from codyn.data.importers import read

    rb = benchmarks / "routerbench"
    data = read("routerbench", [rb / "mbpp_train.csv", rb / "mbpp_test.csv"])
    path = data.save(tmp_path / "rb_mbpp.parquet")
    split_file = benchmarks / "anchors" / "splits" / "rb_mbpp.tsv"
    out = run_cli("eval", path, "--routers", "sbs", "--split-file", split_file, "--json")
    assert out.code == 0, out.stderr
    d = json.loads(out.stdout)
    assert (d["n_train"], d["n_test"]) == (297, 128)
    assert d["sbs"]["model"] == d["strong"] == "gpt-4-1106-preview"
    assert d["weak"] == "meta/code-llama-instruct-34b-chat"
    assert d["sbs"]["test_q"] == pytest.approx(0.688, abs=5e-4)
    assert d["oracle"]["aiq"] == pytest.approx(0.861, abs=5e-4)
    assert d["oracle"]["q_at_default"] == pytest.approx(0.867, abs=5e-4)
    assert d["oracle"]["norm_cost_at_default"] == pytest.approx(0.054, abs=5e-4)
    assert d["oracle"]["cost_to_match_sbs"] == pytest.approx(0.007, abs=5e-4)
    assert d["oracle"]["cpt50"] == pytest.approx(0.086, abs=5e-4)
    assert d["zero_router"]["aiq"] == pytest.approx(0.680, abs=5e-4)
    by_name = {m["name"]: m for m in d["models"]}
    assert by_name["gpt-3.5-turbo-1106"]["aiq"] == pytest.approx(0.663, abs=5e-4)
    assert by_name["claude-v2"]["norm_cost"] == pytest.approx(0.616, abs=5e-4)
    assert d["cost_note"] == "costs: observed USD per call"
    assert any("0 prompt(s) not in the file dropped" in n for n in d["notes"])


def test_eval_on_rllm_gsm8k_matches_anchors_and_headroom(benchmarks: Path, tmp_path: Path) -> None:
    from codyn.analysis import headroom
    from codyn.data.importers import read
    from codyn.data.splits import load_split_file

    data = read("routellm", [benchmarks / "routellm" / "gsm8k"], keep_contaminated=True)
    path = data.save(tmp_path / "gsm8k.parquet")
    split_file = benchmarks / "anchors" / "splits" / "rllm_gsm8k.tsv"
    out = run_cli("eval", path, "--routers", "random", "--split-file", split_file, "--json")
    assert out.code == 0, out.stderr
    d = json.loads(out.stdout)
    assert (d["n_train"], d["n_test"]) == (923, 396)
    assert d["oracle"]["aiq"] == pytest.approx(0.891, abs=5e-4)
    assert d["oracle"]["apgr"] == pytest.approx(1.174, abs=5e-4)
    assert d["zero_router"]["aiq"] == pytest.approx(0.750, abs=5e-4)
    assert d["sbs"]["model"] == "gpt-4-1106-preview"
    assert d["random"]["quality_lo"] <= 0.760 <= d["random"]["quality_hi"]  # anchors' random q
    # The same test split through `headroom`: SBS by test mean and the oracle agree.
    room = headroom(load_split_file(data, split_file)[1])
    assert d["sbs"]["test_q"] == pytest.approx(room["sbs_mean"])
    assert d["oracle"]["q_at_default"] == pytest.approx(room["oracle_mean"])


def test_test_prompts_missing_a_score_are_left_out_and_noted():
    train, test = make_data().split(test_size=0.3, seed=0)
    score = test.score.copy()
    score[[0, 3], 1] = np.nan
    holey = RoutingData(
        prompts=test.prompts,
        models=test.models,
        score=score,
        cost=test.cost,
        cost_basis=test.cost_basis,
    )
    result = evaluate(train, holey, ["sbs"], n_boot=10)
    kept = test.take([i for i in range(test.n_prompts) if i not in (0, 3)])
    complete = evaluate(train, kept, ["sbs"], n_boot=10)
    assert result.to_dict()["n_test"] == test.n_prompts - 2
    assert any("2 test prompt(s) without a score" in note for note in result.notes)
    assert result.oracle.aiq == pytest.approx(complete.oracle.aiq)


# -- the decision core on real data -------------------------------------------------------------


def test_two_model_utility_curve_over_all_lambda_is_the_threshold_curve(benchmarks: Path) -> None:
    """For two models ``u_s - u_w = dq - lambda * dc``: the utility policy over every real lambda
    makes exactly the decisions of the threshold policy on the margin ``dq``, point for point."""
    from codyn.data.importers import read
    from codyn.data.splits import load_split_file
    from codyn.policy import ThresholdPolicy, UtilityPolicy, sweep_choices
    from codyn.routers import make_router

    data = read("routellm", [benchmarks / "routellm" / "gsm8k"], keep_contaminated=True)
    train, test = load_split_file(data, benchmarks / "anchors" / "splits" / "rllm_gsm8k.tsv")
    router = make_router("knn", featuriser="tfidf").fit(train)
    predicted, costs = router.predict(test), train.mean_cost()
    strong = int(np.argmax(costs))
    policies = (UtilityPolicy(), ThresholdPolicy(strong=strong, weak=1 - strong))
    decisions = []
    for policy in policies:
        grid = policy.knob_grid(predicted, costs, n_points=None)
        choices = sweep_choices(predicted, costs, policy, grid)
        decisions.append({tuple(row) for row in choices.tolist()})
    utility, threshold = decisions
    assert len(threshold) > 100  # a real curve: many distinct strong sets
    assert utility == threshold
    # ... and so every operating point and the AIQ of the two curves agree in `evaluate`
    result = evaluate(
        train, test, {"knn": router}, policies=["utility", "threshold"], n_points=2000, n_boot=10
    )
    by_policy = {r.policy: r for r in result.routers.values()}
    points = {
        name: set(zip(r.curve.costs.round(12), r.curve.qualities.round(12), strict=True))
        for name, r in by_policy.items()
    }
    assert points["utility"] == points["threshold"]
    assert by_policy["utility"].aiq == pytest.approx(by_policy["threshold"].aiq, abs=1e-12)


def test_negative_lambda_lifts_a_router_collapsed_on_a_cheap_best_model() -> None:
    """When the best model on average is also the cheapest, the quality-only decision sends
    every prompt there; lambda < 0 trades up to the pricier model where it is predicted close,
    so the curve is no longer one point and AIQ rises above the zero router's."""
    n = 400
    rng = np.random.default_rng(4)
    hard = rng.random(n) < 0.25  # the dear model is better on hard prompts only
    p_pass = np.column_stack([np.where(hard, 0.1, 0.95), np.where(hard, 0.9, 0.6)])
    score = (rng.random((n, 2)) < p_pass).astype(float)
    texts = [f"{'hard' if h else 'easy'} prompt {i}" for i, h in enumerate(hard)]
    data = RoutingData(
        [{"id": f"p{i}", "text": t} for i, t in enumerate(texts)],
        ["cheap", "dear"],
        score,
        cost=np.tile([1.0, 10.0], (n, 1)),
        cost_basis="observed",
    )
    train, test = data.split(0.5, seed=0)
    assert np.argmax(train.score.mean(axis=0)) == 0  # the SBS is the cheap model
    result = evaluate(train, test, [CheapAhead()], n_boot=50)
    router = result.routers["cheap-ahead"]
    assert router.selection_share[0] == 1.0  # lambda = 0: everything to the cheap model
    assert any("cheap-ahead: collapsed onto model cheap" in w for w in result.warnings)
    assert router.warnings and router.warnings[0] in result.to_dict()["warnings"]
    only_cheap = result.models[0]["aiq"]  # what the lambda >= 0 sweep alone reached
    assert router.aiq > result.zero_router["aiq"] > only_cheap
    assert router.curve.qualities.max() > result.sbs["test_q"]  # trading up beats the SBS


class CheapAhead(Router):
    """Predicts the cheap model ahead on every prompt, the dear one close behind on hard ones."""

    family = "cheap-ahead"

    def _predict(self, texts: list[str], data: RoutingData | None) -> np.ndarray:
        hard = np.array([t.startswith("hard") for t in texts])
        return np.column_stack([np.full(len(texts), 0.8), np.where(hard, 0.75, 0.3)])


def test_cli_evaluates_saved_routers_aliases_params_and_policies(
    data_file: Path, tmp_path: Path
) -> None:
    saved = tmp_path / "saved"
    trained = run_cli(
        "train", data_file, "--router", "knn", "--param", "featuriser=tfidf", "-o", saved
    )
    assert trained.code == 0, trained.stderr
    out = run_cli(
        "eval", data_file, "--router", saved, "--routers", "sbs,knn5=knn",
        "--param", "knn5.featuriser=tfidf", "--param", "knn5.k=5",
        "--policy", "utility,pair=threshold", "--param", "pair.weak=tiny", "--json",
    )  # fmt: skip
    assert out.code == 0, out.stderr
    d = json.loads(out.stdout)
    assert d["policies"] == ["utility", "pair"]
    assert set(d["routers"]) == {
        f"{r}@{p}" for r in ("sbs", "knn5", "saved") for p in ("utility", "pair")
    }
    assert "k=5" in d["routers"]["knn5@pair"]["description"]
    assert "weak=0" in d["routers"]["knn5@pair"]["description"]  # tiny, the param
    assert "strong=3" in d["routers"]["knn5@pair"]["description"]  # the pair's strong: large
    assert any("saved was fitted before this evaluation" in n for n in d["notes"])
    table = run_cli("eval", data_file, "--router", saved, "--policy", "utility,threshold")
    assert table.code == 0 and "saved@threshold" in table.stdout and "policy" in table.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--routers", "knn,knn"], "names 'knn' twice"),
        (["--routers", "sbs", "--param", "nope.k=1"], "'nope', which is neither a router nor"),
        (["--routers", "sbs", "--param", "k=1"], "--param takes ROUTER.KEY=VALUE"),
        (["--routers", "sbs", "--policy", "utilty"], "unknown policy 'utilty'"),
        (["--routers", "sbs", "--policy", "tiers", "--param", "tiers.q=1"], "has no parameter"),
        (["--routers", "knn", "--param", "knn.k=0"], "k must be a positive integer"),
        ([], "give routers to evaluate"),
    ],
)
def test_cli_eval_bad_options_are_one_line(data_file: Path, args: list[str], message: str) -> None:
    out = run_cli("eval", data_file, *args)
    assert out.code == 1 and message in out.stderr, out.stderr
    assert "Traceback" not in out.stderr and out.stderr.count("\n") == 1
