"""Embedding routers (knn, linear, mlp) on real RouterBench MBPP data: hand-checkable
predictions, closed forms, save/load without pickle, and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from codyn.bench.routers import bench_router
from codyn.data.importers import read
from codyn.data.routing import RoutingData
from codyn.data.splits import load_split_file
from codyn.errors import CodynError, DataError
from codyn.evaluate import evaluate
from codyn.features.base import l2_normalise
from codyn.routers import load_router, make_router
from codyn.routers.embedding import DEFAULT_FEATURISER, featuriser_names
from codyn.routers.knn import KNNRouter
from codyn.routers.linear import LinearRouter, weighted_ridge
from codyn.routers.mlp import MLPRouter

FAST = "structure+tfidf"  # fitted state (tfidf) and unnormalised columns (structure), no model


@pytest.fixture(scope="module")
def mbpp(benchmarks: Path) -> tuple[RoutingData, RoutingData]:
    folder = benchmarks / "routerbench"
    data = read("routerbench", [folder / "mbpp_train.csv", folder / "mbpp_test.csv"])
    return load_split_file(data, benchmarks / "anchors" / "splits" / "rb_mbpp.tsv")


def with_missing(data: RoutingData, column: int, every: int = 3) -> RoutingData:
    """``data`` with every ``every``-th score of one model missing."""
    score = data.score.copy()
    score[::every, column] = np.nan
    return RoutingData(data.prompts, data.models, score, data.cost, cost_basis=data.cost_basis)


def test_featuriser_names() -> None:
    assert featuriser_names("static+structure") == ["static", "structure"]
    for bad in ("", "static+", "tfidf+tfidf"):
        with pytest.raises(CodynError, match="featuriser"):
            featuriser_names(bad)


def test_knn_k1_returns_the_nearest_train_prompts_scores(mbpp) -> None:
    train, test = mbpp
    router = KNNRouter(k=1, featuriser=FAST).fit(train)
    similarity = (
        l2_normalise(router.transform(test.texts)) @ l2_normalise(router.transform(train.texts)).T
    )
    top2 = np.sort(similarity, axis=1)[:, -2:]
    clear = top2[:, 1] - top2[:, 0] > 1e-4  # a unique nearest neighbour
    assert clear.sum() > 100
    nearest = similarity.argmax(axis=1)
    np.testing.assert_array_equal(router.predict(test)[clear], train.score[nearest[clear]])
    # A train prompt's nearest neighbour is itself.
    np.testing.assert_array_equal(router.predict(train.texts[:20]), train.score[:20])


def test_knn_weighted_mean_skips_missing_scores(mbpp) -> None:
    train, test = mbpp
    train = with_missing(train, column=2)
    router = KNNRouter(k=5, weights="similarity", featuriser=FAST).fit(train)
    queries = l2_normalise(router.transform(test.texts[:10]))
    similarity = queries @ l2_normalise(router.transform(train.texts)).T
    predicted = router.predict(test.texts[:10])
    for i in range(10):
        nearest = np.argsort(-similarity[i], kind="stable")[:5]
        weight = np.clip(similarity[i, nearest], 0, None)
        for j in range(train.n_models):
            s = train.score[nearest, j]
            known = ~np.isnan(s)
            expected = (weight[known] @ s[known]) / weight[known].sum()
            assert predicted[i, j] == pytest.approx(expected, abs=1e-6)
    assert not np.isnan(predicted).any()


def test_ridge_matches_numpy_closed_form(mbpp) -> None:
    train, _ = mbpp
    train = with_missing(train, column=4)
    alpha = 2.5
    router = LinearRouter(alpha=alpha, featuriser="structure").fit(train)
    X = router.transform(train.texts).astype(np.float64)
    for j in (0, 4):
        known = ~np.isnan(train.score[:, j])
        A = np.hstack([X[known], np.ones((known.sum(), 1))])
        penalty = alpha * np.eye(A.shape[1])
        penalty[-1, -1] = 0.0  # the intercept is not penalised
        beta = np.linalg.solve(A.T @ A + penalty, A.T @ train.score[known, j])
        np.testing.assert_allclose(router.coef_[:, j], beta[:-1], rtol=1e-6, atol=1e-9)
        assert router.intercept_[j] == pytest.approx(beta[-1], rel=1e-6)


def test_weighted_ridge_dual_equals_primal() -> None:
    rng = np.random.default_rng(0)
    X, Y, w = rng.normal(size=(20, 50)), rng.normal(size=(20, 3)), rng.uniform(0.5, 2, 20)
    coef, intercept = weighted_ridge(X, Y, w, 0.7)  # 20 < 50: dual form
    big = np.vstack([X] * 3)  # 60 > 50: primal form, same problem with weights / 3
    coef3, intercept3 = weighted_ridge(big, np.vstack([Y] * 3), np.tile(w, 3) / 3, 0.7)
    np.testing.assert_allclose(coef, coef3, atol=1e-8)
    np.testing.assert_allclose(intercept, intercept3, atol=1e-8)


def test_logistic_matches_scikit_learn(mbpp) -> None:
    sklearn_linear = pytest.importorskip("sklearn.linear_model")
    train, _ = mbpp
    router = LinearRouter(alpha=3.0, loss="logistic", featuriser="structure").fit(train)
    X = router.transform(train.texts).astype(np.float64)
    reference = sklearn_linear.LogisticRegression(C=1 / 3.0, tol=1e-10, max_iter=10_000)
    reference.fit(X, train.score[:, 0])
    np.testing.assert_allclose(router.coef_[:, 0], reference.coef_[0], atol=1e-4)
    predicted = router.predict(train.texts[:5])[:, 0]
    np.testing.assert_allclose(predicted, reference.predict_proba(X[:5])[:, 1], atol=1e-5)


def test_logistic_refuses_scores_outside_unit_interval(mbpp) -> None:
    train, _ = mbpp
    scaled = RoutingData(train.prompts, train.models, train.score * 10)
    with pytest.raises(CodynError, match=r"\[0, 1\]"):
        LinearRouter(loss="logistic", featuriser="structure").fit(scaled)


def test_mlp_is_deterministic_and_masks_missing_scores(mbpp) -> None:
    train, test = mbpp
    train = with_missing(train, column=0, every=2)
    first = MLPRouter(hidden=16, epochs=30, featuriser="structure").fit(train).predict(test)
    again = MLPRouter(hidden=16, epochs=30, featuriser="structure").fit(train).predict(test)
    np.testing.assert_array_equal(first, again)
    assert first.shape == (test.n_prompts, test.n_models) and np.isfinite(first).all()


@pytest.mark.parametrize(
    "spec, params",
    [
        ("knn", {"k": 7, "weights": "similarity"}),
        ("linear", {"alpha": 3.0}),
        ("linear", {"loss": "logistic", "featuriser": "structure"}),
        ("mlp", {"hidden": 8, "epochs": 5}),
    ],
)
def test_save_load_round_trip_gives_identical_predictions(mbpp, tmp_path, spec, params) -> None:
    train, test = mbpp
    router = make_router(spec, **{"featuriser": FAST, **params}).fit(train)
    router.save(tmp_path)
    loaded = load_router(tmp_path)
    assert type(loaded) is type(router) and loaded.get_params() == router.get_params()
    np.testing.assert_array_equal(loaded.predict(test), router.predict(test))


def test_default_featuriser_routes_better_than_the_zero_router(mbpp) -> None:
    train, test = mbpp
    router = make_router("knn")
    assert router.get_params()["featuriser"] == DEFAULT_FEATURISER
    result = evaluate(train, test, [router], n_boot=10)
    assert result.routers["knn"].aiq > result.zero_router["aiq"]


def test_empty_prompt_is_a_clear_error(mbpp) -> None:
    router = KNNRouter(featuriser="structure").fit(mbpp[0])
    with pytest.raises(CodynError, match="empty prompt"):
        router.predict(["fine", "   "])


def test_a_one_megabyte_prompt_is_truncated_and_counted(mbpp) -> None:
    router = KNNRouter(featuriser=FAST).fit(mbpp[0])
    before = router.truncation
    predicted = router.predict(["def f(x):\n    return x\n" * 45_000])
    assert np.isfinite(predicted).all()
    after = router.truncation
    assert (after.seen - before.seen, after.truncated - before.truncated) == (1, 1)


def test_bad_hyper_parameters_fail_at_fit(mbpp) -> None:
    train, _ = mbpp
    for router in (
        KNNRouter(k=0, featuriser="structure"),
        KNNRouter(weights="distance", featuriser="structure"),
        LinearRouter(alpha=0, featuriser="structure"),
        LinearRouter(loss="hinge", featuriser="structure"),
        MLPRouter(hidden=0, featuriser="structure"),
        KNNRouter(featuriser="no-such-featuriser"),
    ):
        with pytest.raises(CodynError):
            router.fit(train)
        assert not hasattr(router, "model_names_")


def test_corrupted_router_directory_is_a_data_error(mbpp, tmp_path) -> None:
    KNNRouter(featuriser=FAST).fit(mbpp[0]).save(tmp_path)
    config_path = tmp_path / "router.json"
    config = json.loads(config_path.read_text())
    config["params"]["featuriser"] = "structure"  # no longer what the state holds
    config_path.write_text(json.dumps(config))
    with pytest.raises(DataError, match=r"router\.json"):
        load_router(tmp_path)
    (tmp_path / "weights.npz").write_bytes(b"not a zip file")
    with pytest.raises(DataError, match="weights"):
        load_router(tmp_path)


def test_subclass_state_must_not_use_the_featuriser_names(mbpp) -> None:
    class Clashing(KNNRouter):
        def _head_state(self):  # type: ignore[no-untyped-def]
            return {"featurisers": []}, {}

    router = Clashing(featuriser="structure").fit(mbpp[0])
    with pytest.raises(CodynError, match="reserved"):
        router.save("unused")


def test_bench_router_reports_latency_throughput_memory(mbpp) -> None:
    router = KNNRouter(featuriser="structure").fit(mbpp[0])
    result = bench_router(router, mbpp[1].texts, n_warmup=2, n=20)
    assert {"p50_ms", "p99_ms", "throughput_per_s", "rss_mb"} <= set(result)
    assert 0 < result["p50_ms"] <= result["p99_ms"] and result["throughput_per_s"] > 0


@pytest.mark.parametrize("spec", ["knn", "linear", "mlp"])
def test_a_model_never_scored_is_predicted_nan(mbpp, spec) -> None:
    train, test = mbpp
    score = train.score.copy()
    score[:, 3] = np.nan
    unscored = RoutingData(train.prompts, train.models, score)
    predicted = make_router(spec, featuriser="structure").fit(unscored).predict(test.texts[:5])
    assert np.isnan(predicted[:, 3]).all() and np.isfinite(np.delete(predicted, 3, axis=1)).all()
