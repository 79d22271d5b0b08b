"""Task centring (`codyn.routers.tasks`) and the embedding cache used by routers."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from codyn.bench.routers import bench_router
from codyn.data.importers import read
from codyn.data.routing import RoutingData
from codyn.data.splits import load_split_file
from codyn.errors import CodynError
from codyn.evaluate import evaluate
from codyn.features.cache import EmbeddingCache
from codyn.routers import load_router, make_router
from codyn.routers.embedding import CACHE_SWITCH, featurise
from codyn.routers.tasks import PSEUDO_PROMPTS, fit_task_model

FAST = "structure+tfidf"


def two_task_data(n_big: int = 120, n_small: int = 30) -> RoutingData:
    """A big task where model "a" always passes and "b" fails, and a small task (worded
    differently) where it is the other way round: a plain kNN with many neighbours mostly sees
    the big task; a task-centred one does not."""
    rng = np.random.default_rng(0)
    big = [
        f"Write a Python function number {i} that sorts the list {rng.integers(99)}"
        for i in range(n_big)
    ]
    small = [
        f"Translate sentence {i} into French, please: the cat {rng.integers(99)}"
        for i in range(n_small)
    ]
    prompts = pd.DataFrame(
        {
            "id": [f"p{i}" for i in range(n_big + n_small)],
            "text": big + small,
            "task": ["code"] * n_big + ["translate"] * n_small,
        }
    )
    score = np.vstack([np.tile([1.0, 0.0], (n_big, 1)), np.tile([0.0, 1.0], (n_small, 1))])
    cost = np.ones_like(score)
    return RoutingData(prompts, ["a", "b"], score, cost, cost_basis="observed")


def test_task_model_hand_worked_means_and_residuals() -> None:
    data = two_task_data(n_big=6, n_small=4)
    X = np.vstack([np.tile([1.0, 0.0], (6, 1)), np.tile([0.0, 1.0], (4, 1))]).astype(np.float32)
    model = fit_task_model(X, data.tasks, data.score)
    assert model is not None and model.classes_ == ["code", "translate"]
    # Overall means: a = 6/10, b = 4/10; each task mean is shrunk by PSEUDO_PROMPTS of them.
    k = PSEUDO_PROMPTS
    code = [(6 + k * 0.6) / (6 + k), (0 + k * 0.4) / (6 + k)]
    translate = [(0 + k * 0.6) / (4 + k), (4 + k * 0.4) / (4 + k)]
    np.testing.assert_allclose(model.means_, [code, translate])
    residual = model.residuals(data.score, data.tasks)
    np.testing.assert_allclose(residual[0], [1 - code[0], 0 - code[1]])
    np.testing.assert_allclose(residual[-1], [0 - translate[0], 1 - translate[1]])
    # A task the model never saw is centred on the overall mean of the task means.
    other = model.residuals(np.array([[1.0, 1.0]]), np.array(["unseen"], dtype=object))
    np.testing.assert_allclose(other[0], 1 - model.means_.mean(axis=0))
    # Two tasks: the stored softmax rows reproduce scikit-learn's binary probabilities.
    posterior = model.posterior(X)
    np.testing.assert_allclose(posterior.sum(axis=1), 1.0)
    assert (posterior[:6, 0] > 0.5).all() and (posterior[6:, 1] > 0.5).all()
    np.testing.assert_allclose(model.prior(X), posterior @ model.means_)


def test_task_model_matches_scikit_learn_probabilities_for_many_tasks() -> None:
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(1)
    X = rng.normal(size=(90, 5)).astype(np.float32)
    tasks = np.array(["x", "y", "z"] * 30, dtype=object)
    X[tasks == "y", 0] += 2
    X[tasks == "z", 1] += 2
    model = fit_task_model(X, tasks, rng.random((90, 2)))
    assert model is not None
    reference = LogisticRegression(C=10.0, max_iter=500).fit(X, tasks.astype(str))
    np.testing.assert_allclose(model.posterior(X), reference.predict_proba(X), atol=1e-5)


def test_single_task_or_tiny_tasks_give_no_task_model() -> None:
    X = np.eye(4, dtype=np.float32)
    score = np.ones((4, 2))
    assert fit_task_model(X, np.array(["t"] * 4, dtype=object), score) is None
    # Only one task has two or more prompts: nothing to centre on.
    assert fit_task_model(X, np.array(["t", "t", "t", "u"], dtype=object), score) is None


def test_task_prior_routes_a_small_task_to_its_own_best_model() -> None:
    data = two_task_data()
    small = [i for i, task in enumerate(data.tasks) if task == "translate"]
    queries = [f"Translate sentence {i} into French, please: the dog" for i in range(10)]
    plain = make_router("knn", k=100, task_prior=False, featuriser=FAST).fit(data)
    centred = make_router("knn", k=100, featuriser=FAST).fit(data)
    assert centred.task_model_ is not None and plain.task_model_ is None
    # 100 neighbours of a translation prompt are mostly code prompts: the plain kNN picks "a".
    assert (plain.predict(queries).argmax(axis=1) == 0).all()
    assert (centred.predict(queries).argmax(axis=1) == 1).all()
    # On train prompts of the small task the centred estimate is close to the truth.
    predicted = centred.predict(data.take(small))
    assert np.abs(predicted - data.score[small]).max() < 0.2
    # Prior plus residual stays within the scores seen in training (here 0..1).
    between = centred.predict(["Translate the Python function that sorts into French"] * 2)
    assert (between >= 0).all() and (between <= 1).all()
    np.testing.assert_array_equal(centred.task_model_.low_, [0.0, 0.0])
    np.testing.assert_array_equal(centred.task_model_.high_, [1.0, 1.0])
    for family in ("linear", "mlp"):
        router = make_router(family, featuriser=FAST).fit(data)
        assert router.task_model_ is not None
        assert (router.predict(queries).argmax(axis=1) == 1).all(), family


def test_task_prior_is_a_no_op_on_single_task_data(benchmarks: Path) -> None:
    folder = benchmarks / "routerbench"
    data = read("routerbench", [folder / "mbpp_train.csv", folder / "mbpp_test.csv"])
    train, test = load_split_file(data, benchmarks / "anchors" / "splits" / "rb_mbpp.tsv")
    on = make_router("knn", featuriser=FAST).fit(train)
    off = make_router("knn", task_prior=False, featuriser=FAST).fit(train)
    assert on.task_model_ is None
    np.testing.assert_array_equal(on.predict(test), off.predict(test))


def test_task_model_survives_save_and_load(tmp_path) -> None:
    data = two_task_data()
    router = make_router("linear", featuriser=FAST).fit(data)
    router.save(tmp_path)
    state = json.loads((tmp_path / "router.json").read_text())
    assert "task_model" in json.dumps(state)
    loaded = load_router(tmp_path)
    assert loaded.task_model_ is not None and loaded.task_model_.classes_ == ["code", "translate"]
    np.testing.assert_array_equal(loaded.predict(data), router.predict(data))


def test_bad_task_prior_and_logistic_loss() -> None:
    data = two_task_data()
    with pytest.raises(CodynError, match="task_prior must be true or false"):
        make_router("knn", task_prior="yes", featuriser=FAST).fit(data)
    # The logistic loss models pass rates directly: it is documented to ignore task_prior.
    router = make_router("linear", loss="logistic", featuriser=FAST).fit(data)
    assert router.task_model_ is None


def test_task_prior_beats_plain_knn_on_mixed_tasks(benchmarks: Path) -> None:
    """LLMRouter's 14 tasks, anchors' split, default featuriser: centring on task means raises
    the AIQ of kNN from 0.500 to 0.512 (5 of 5 validation folds of the train set agree)."""
    data = read("llmrouter", [benchmarks / "llmrouter" / "data"])
    train, test = load_split_file(data, benchmarks / "anchors" / "splits" / "llmr_all.tsv")
    routers = [
        make_router("knn", task_prior=False),
        make_router("knn"),
    ]
    result = evaluate(train, test, routers, n_boot=10)
    plain, centred = result.routers["knn"].aiq, result.routers["knn#2"].aiq
    assert centred > plain + 0.008


class Slow:
    """A featuriser worth caching that counts the texts it computes."""

    name = "slow"
    dim = 2
    worth_caching = True

    def __init__(self, calls: list[int]) -> None:
        self.calls = calls

    def transform(self, texts):  # type: ignore[no-untyped-def]
        self.calls.append(len(texts))
        return np.array([[len(t), 1.0] for t in texts], dtype=np.float32)

    def config(self):  # type: ignore[no-untyped-def]
        return {"name": "slow"}

    def state(self):  # type: ignore[no-untyped-def]
        return {}


def test_slow_featurisers_go_through_the_cache_for_batches(tmp_path, monkeypatch) -> None:
    calls: list[int] = []
    monkeypatch.setenv("CODYN_CACHE_DIR", str(tmp_path))
    slow = Slow(calls)
    first = featurise(slow, ["ab", "abc", "ab"])
    again = featurise(slow, ["abc", "ab", "abcd"])
    np.testing.assert_array_equal(first[:, 0], [2, 3, 2])
    np.testing.assert_array_equal(again[:, 0], [3, 2, 4])
    assert calls == [2, 1]  # each distinct text computed once, across calls
    assert len(EmbeddingCache(tmp_path / "embeddings.sqlite")) == 3
    featurise(slow, ["one prompt"])  # a single decision skips the disk
    assert len(EmbeddingCache(tmp_path / "embeddings.sqlite")) == 3
    monkeypatch.setenv(CACHE_SWITCH, "off")
    featurise(slow, ["ab", "abc"])
    assert calls[-1] == 2


def test_bench_route_times_the_featuriser_not_the_cache(tmp_path, monkeypatch) -> None:
    """The batched pass repeats its prompts: through the cache it would time cache reads."""
    calls: list[int] = []
    slow = Slow(calls)

    class Featurising:
        model_names_ = ("a", "b")

        def predict_with_difficulty(self, prompts):  # type: ignore[no-untyped-def]
            return np.repeat(featurise(slow, prompts)[:, :1], 2, axis=1), None

    monkeypatch.setenv("CODYN_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv(CACHE_SWITCH, raising=False)
    texts = ["ab", "abc", "abcd", "x"]
    result = bench_router(Featurising(), texts, n_warmup=0, n=8, batch_size=4)  # type: ignore[arg-type]
    batched = [size for size in calls if size > 1]
    assert batched and all(size == 4 for size in batched)  # every batch computed whole
    assert result["throughput_per_s"] > 0
    assert not (tmp_path / "embeddings.sqlite").exists()
    assert CACHE_SWITCH not in os.environ  # switched back on afterwards
