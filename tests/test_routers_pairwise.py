"""Pairwise routers (sw_ranking, mf, rorf) and their shared core: hand-checkable cases."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sklearn.ensemble import RandomForestClassifier

from codyn.data.routing import RoutingData
from codyn.errors import CodynError
from codyn.routers import load_router, make_router
from codyn.routers._pairs import (
    all_pairs,
    battles,
    bradley_terry,
    calibrated,
    fit_calibration,
    pair_signs,
)
from codyn.routers.embedding import EmbeddingRouter
from codyn.routers.mf import MFRouter, pairwise_loss
from codyn.routers.rorf import (
    Forest,
    RoRFRouter,
    close_pairs,
    joint_labels,
    walk_forest,
    win_probability,
)
from codyn.routers.sw_ranking import SWRankingRouter, nearest_other_similarity

FAST = {  # "structure" features: cheap, and no embedding table needed
    "sw_ranking": {"featuriser": "structure"},
    "mf": {"featuriser": "structure", "dim": 8, "max_epochs": 20},
    "rorf": {"featuriser": "structure", "n_estimators": 5, "max_depth": 4},
}


def routing_data(score: np.ndarray, texts: list[str] | None = None) -> RoutingData:
    n, m = score.shape
    return RoutingData(
        prompts=[{"id": f"p{i}", "text": texts[i] if texts else f"prompt {i}"} for i in range(n)],
        models=[f"m{j}" for j in range(m)],
        score=score,
    )


def fit_on_features(router: EmbeddingRouter, X: np.ndarray, data: RoutingData) -> None:
    """Fit the router's head on hand-made features (no featuriser involved)."""
    router.model_names_ = data.model_names
    router._fit_features(np.asarray(X, dtype=np.float32), data)


# -- battles and Bradley-Terry ------------------------------------------------------------------


def test_battles_outcomes_ties_and_missing_scores():
    score = np.array([[1.0, 0.0, 1.0], [0.5, 0.5, np.nan]])
    pairs = all_pairs(3)
    np.testing.assert_array_equal(pairs, [[0, 1], [0, 2], [1, 2]])
    outcome, counted = battles(score, pairs, "half")
    np.testing.assert_array_equal(outcome, [[1.0, 0.5, 0.0], [0.5, 0.0, 0.0]])
    np.testing.assert_array_equal(counted, [[1, 1, 1], [1, 0, 0]])
    outcome, counted = battles(score, pairs, "drop")
    np.testing.assert_array_equal(counted, [[1, 0, 1], [0, 0, 0]])
    with pytest.raises(CodynError, match="ties"):
        battles(score, pairs, "coin")


def test_bradley_terry_two_models_is_the_log_odds():
    xi = bradley_terry(np.array([[3.0]]), np.array([[4.0]]), all_pairs(2), 2, 0.0)
    np.testing.assert_allclose(xi, [[np.log(3) / 2, -np.log(3) / 2]], atol=1e-9)
    # a virtual tie: 3.5 wins of 5
    xi = bradley_terry(np.array([[3.0]]), np.array([[4.0]]), all_pairs(2), 2, 1.0)
    np.testing.assert_allclose(xi[0, 0] - xi[0, 1], np.log(3.5 / 1.5), atol=1e-9)


def test_bradley_terry_recovers_strengths_and_keeps_unbeaten_models_finite():
    pairs = all_pairs(4)
    truth = np.array([1.5, 0.5, -0.5, -1.5])
    diff = truth[pairs[:, 0]] - truth[pairs[:, 1]]
    wins = 100.0 / (1.0 + np.exp(-diff))
    xi = bradley_terry(np.stack([wins, 100.0 - wins]), np.full((2, 6), 100.0), pairs, 4, 0.0)
    np.testing.assert_allclose(xi[0], truth, atol=1e-6)
    np.testing.assert_allclose(xi[1], -truth, atol=1e-6)
    unbeaten = bradley_terry(np.full((1, 6), 5.0), np.full((1, 6), 5.0), pairs, 4, 0.5)
    assert np.isfinite(unbeaten).all() and (np.diff(unbeaten[0]) < 0).all()


def test_calibration_fits_a_logistic_and_never_reverses_a_ranking():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4000, 2))
    truth = 1.0 / (1.0 + np.exp(-(0.5 + 2.0 * x[:, 0])))
    y = np.stack([rng.random(4000) < truth, rng.random(4000) < 1 / (1 + np.exp(x[:, 1]))], 1)
    intercept, slope = fit_calibration(x, y.astype(float), l2=0.0)
    assert abs(intercept[0] - 0.5) < 0.15 and abs(slope[0] - 2.0) < 0.2
    assert slope[1] == 0.0  # anti-correlated: flat, at the model's mean score
    np.testing.assert_allclose(calibrated(x, intercept, slope)[:, 1], y[:, 1].mean(), atol=0.01)


# -- sw_ranking ---------------------------------------------------------------------------------


def test_sw_similarity_scale_excludes_the_prompt_itself():
    x = np.array([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0]], dtype=np.float32)
    np.testing.assert_allclose(nearest_other_similarity(x), [0.6, 0.8, 0.8], atol=1e-6)


def test_sw_gamma_makes_the_nearest_training_prompt_dominate():
    # m0 wins only on the first (isolated) training prompt; m1 wins on the three others.
    X = np.array([[1, 0, 0], [0, 1, 0], [0, 0.9, 0.1], [0, 0.1, 0.9]], dtype=float)
    data = routing_data(np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0], [0.0, 1.0]]))
    query = np.array([[1.0, 0.05, 0.0]], dtype=np.float32)
    local = SWRankingRouter(gamma=1e6)
    fit_on_features(local, X, data)
    assert local._strengths(query)[0].argmax() == 0
    broad = SWRankingRouter(gamma=1.001)
    fit_on_features(broad, X, data)
    assert broad._strengths(query)[0].argmax() == 1


def test_sw_predictions_are_expected_scores():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(60, 4))
    data = routing_data((rng.random((60, 3)) < [0.2, 0.5, 0.8]).astype(float))
    router = SWRankingRouter()
    fit_on_features(router, X, data)
    predicted = router._predict_features(X.astype(np.float32))
    assert ((predicted > 0) & (predicted < 1)).all()
    np.testing.assert_array_equal(np.median(predicted, axis=0).argsort(), [0, 1, 2])


# -- mf -----------------------------------------------------------------------------------------


def test_mf_gradients_match_finite_differences():
    rng = np.random.default_rng(2)
    sign = pair_signs(all_pairs(3), 3)
    X, outcome = rng.normal(size=(6, 4)), rng.choice([0.0, 0.5, 1.0], size=(6, 3))
    counted = (rng.random((6, 3)) < 0.8).astype(float)
    params = {"W1": rng.normal(size=(4, 2)), "b": rng.normal(size=2)}
    params |= {"v": rng.normal(size=(3, 2)), "w2": rng.normal(size=2)}
    loss, grads = pairwise_loss(params, X, outcome, counted, sign)
    for name, value in params.items():
        numeric = np.zeros_like(value)
        for index in np.ndindex(value.shape):
            bumped = {k: v.copy() for k, v in params.items()}
            bumped[name][index] += 1e-6
            numeric[index] = (pairwise_loss(bumped, X, outcome, counted, sign)[0] - loss) / 1e-6
        np.testing.assert_allclose(grads[name], numeric, atol=1e-5)


def separable_preference() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """m0 is right exactly when feature 0 is positive, m1 otherwise, m2 never: features, scores
    and the right model per prompt."""
    X = np.random.default_rng(3).normal(size=(400, 5))
    first = X[:, 0] > 0
    score = np.stack([first, ~first, np.zeros(400, bool)], axis=1).astype(float)
    return X, score, np.where(first, 0, 1)


@pytest.mark.parametrize(
    "router", [MFRouter(dim=8), RoRFRouter(n_estimators=20)], ids=["mf", "rorf"]
)
def test_learns_a_separable_preference(router: EmbeddingRouter):
    X, score, right = separable_preference()
    fit_on_features(router, X[:300], routing_data(score[:300]))
    choice = router._predict_features(X[300:].astype(np.float32)).argmax(axis=1)
    assert (choice == right[300:]).mean() > 0.9


# -- rorf ---------------------------------------------------------------------------------------


def test_rorf_joint_labels_on_a_hand_made_matrix():
    score = np.array([[1, 0, 1], [0, 0, 1], [1, 1, 0], [0, 1, 0], [0.7, 0.7, 0.2]])
    pairs = all_pairs(3)
    labels = np.stack([joint_labels(score[:, a], score[:, b], 0.5) for a, b in pairs], axis=1)
    # columns: (m0, m1), (m0, m2), (m1, m2); 0 both fail, 1 only a, 2 only b, 3 both pass
    np.testing.assert_array_equal(labels, [[1, 3, 2], [0, 2, 2], [3, 1, 1], [2, 0, 1], [3, 1, 1]])
    proba = np.array([0.1, 0.4, 0.2, 0.3])
    assert win_probability(proba) == pytest.approx(0.4 + 0.5 * 0.4)


def test_rorf_close_pairs_keeps_neighbours_in_the_ranking():
    assert len(close_pairs(np.arange(11.0), 55)) == 55
    pairs = close_pairs(np.array([0.9, 0.1, 0.5, 0.7, 0.3]), 7)
    # ranking m0 > m3 > m2 > m4 > m1: neighbours only (k = 1 gives 4 pairs, k = 2 gives 7)
    assert {tuple(p) for p in pairs} == {(0, 3), (2, 3), (2, 4), (1, 4), (0, 2), (3, 4), (1, 2)}
    assert len(close_pairs(np.arange(5.0), 2)) == 4  # never fewer than a chain


def test_tree_walker_equals_sklearn_predict_proba():
    rng = np.random.default_rng(4)
    X = rng.normal(size=(400, 6)).astype(np.float32)
    y = np.where(X[:, 0] > 0, 3, rng.choice([0, 1], size=400))  # labels 0, 1, 3: no 2
    forest = RandomForestClassifier(n_estimators=15, max_depth=7, random_state=0).fit(X, y)
    flat = Forest.from_estimators(forest.estimators_, [forest.classes_] * 15)
    queries = np.concatenate([X[:100], rng.normal(size=(200, 6)).astype(np.float32)])
    expected = np.zeros((300, 4))
    expected[:, forest.classes_] = forest.predict_proba(queries)
    np.testing.assert_allclose(walk_forest(flat, queries).mean(axis=1), expected, atol=1e-6)


# -- the router contract ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def small_data() -> RoutingData:
    rng = np.random.default_rng(5)
    topics = ["sort a list in python", "prove the integral converges", "translate to french"]
    texts = [f"{topics[i % 3]} case {i}" for i in range(45)]
    score = (rng.random((45, 3)) < 0.5).astype(float)
    score[::3, 0] = 1.0
    score[1::3, 2] = 1.0
    score[5, 1] = np.nan  # a missing score makes no battle
    return routing_data(score, texts)


@pytest.mark.parametrize("family", sorted(FAST))
def test_make_save_load_round_trip(family: str, small_data: RoutingData, tmp_path: Path):
    router = make_router(family, **FAST[family]).fit(small_data)
    predicted = router.predict(small_data)
    assert predicted.shape == (45, 3) and np.isfinite(predicted).all()
    loaded = load_router(router.save(tmp_path / family))
    assert type(loaded) is type(router) and loaded.get_params() == router.get_params()
    np.testing.assert_array_equal(
        loaded.predict(["sort a list in python please"]),
        router.predict(["sort a list in python please"]),
    )
    np.testing.assert_array_equal(loaded.predict(small_data), predicted)


def test_bad_parameters_are_one_line_errors(small_data: RoutingData):
    with pytest.raises(CodynError, match="ties"):
        make_router("mf", featuriser="structure", ties="coin").fit(small_data)
    with pytest.raises(CodynError, match="gamma"):
        make_router("sw_ranking", featuriser="structure", gamma=0.5).fit(small_data)
    with pytest.raises(CodynError, match="max_pairs"):
        make_router("rorf", featuriser="structure", max_pairs=0).fit(small_data)
