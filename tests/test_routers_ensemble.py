"""The `ensemble` router on real RouterBench MBPP data: the mean of its members, one shared
featuriser, weights and z-normalisation by hand, save/load without pickle, bad parameters."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from codyn.data.importers import read
from codyn.data.routing import RoutingData
from codyn.data.splits import load_split_file
from codyn.errors import CodynError, DataError
from codyn.routers import load_router, make_router
from codyn.routers.ensemble import EnsembleRouter, member_names
from codyn.routers.knn import KNNRouter
from codyn.routers.linear import LinearRouter

FAST = "structure"  # no model to load, no fitted vocabulary: fast


@pytest.fixture(scope="module")
def mbpp(benchmarks: Path) -> tuple[RoutingData, RoutingData]:
    folder = benchmarks / "routerbench"
    data = read("routerbench", [folder / "mbpp_train.csv", folder / "mbpp_test.csv"])
    return load_split_file(data, benchmarks / "anchors" / "splits" / "rb_mbpp.tsv")


def test_prediction_is_the_mean_of_the_members_fitted_alone(mbpp) -> None:
    train, test = mbpp
    ensemble = EnsembleRouter(members="knn,linear", featuriser=FAST).fit(train)
    knn = KNNRouter(featuriser=FAST).fit(train)
    linear = LinearRouter(featuriser=FAST).fit(train)
    expected = (knn.predict(test) + linear.predict(test)) / 2
    np.testing.assert_allclose(ensemble.predict(test), expected, rtol=1e-10, atol=1e-12)
    # The members saw the ensemble's one feature matrix, identical to their own.
    np.testing.assert_array_equal(ensemble.transform(test.texts), knn.transform(test.texts))
    assert [type(m) for m in ensemble.members_] == [KNNRouter, LinearRouter]


def test_weights_and_normalisation_by_hand(mbpp) -> None:
    train, test = mbpp
    weighted = EnsembleRouter(members="knn,linear", weights="3,1", featuriser=FAST).fit(train)
    X = weighted.transform(test.texts)
    knn_p, linear_p = weighted.member_predictions(X)
    np.testing.assert_allclose(weighted.predict(test), 0.75 * knn_p + 0.25 * linear_p)

    z = EnsembleRouter(members="knn,linear", normalise=True, featuriser=FAST).fit(train)
    on_train = z.member_predictions(z.transform(train.texts))
    mean = np.array([p.mean(axis=0) for p in on_train])
    std = np.array([p.std(axis=0) for p in on_train])
    members = z.member_predictions(X)
    expected = sum((p - m) / s for p, m, s in zip(members, mean, std, strict=True)) / 2
    expected = expected * std.mean(axis=0) + mean.mean(axis=0)
    np.testing.assert_allclose(z.predict(test), expected, rtol=1e-9, atol=1e-12)


def test_save_load_round_trip_without_pickle(mbpp, tmp_path: Path) -> None:
    train, test = mbpp
    router = make_router(
        "ensemble", members="knn,linear,sw_ranking", normalise=True, featuriser="structure+tfidf"
    ).fit(train)
    router.save(tmp_path)
    with np.load(tmp_path / "weights.npz", allow_pickle=False) as npz:
        names = set(npz.files)
    assert {"member0.X", "member1.coef", "member2.features", "norm_mean", "norm_std"} <= names
    assert any(name.startswith("featuriser.tfidf.") for name in names)
    loaded = load_router(tmp_path)
    assert isinstance(loaded, EnsembleRouter)
    assert loaded.get_params() == router.get_params()
    np.testing.assert_array_equal(loaded.predict(test), router.predict(test))
    # A saved state for other members does not load silently.
    config = json.loads((tmp_path / "router.json").read_text())
    config["params"]["members"] = "knn,linear"
    (tmp_path / "router.json").write_text(json.dumps(config))
    with pytest.raises(DataError, match="members"):
        load_router(tmp_path)


def test_make_router_spec(mbpp) -> None:
    train, test = mbpp
    router = make_router("ensemble", members="knn,linear")
    assert isinstance(router, EnsembleRouter)
    assert router.get_params()["members"] == "knn,linear"
    router.featuriser = FAST
    assert router.fit(train).predict(test.texts[:3]).shape == (3, train.n_models)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"members": "knn,nosuch"}, "bad member 'nosuch'.*unknown router"),
        ({"members": "knn,sbs"}, "member 'sbs' does not learn on prompt features"),
        ({"members": "knn,,linear"}, "distinct router names"),
        ({"members": "knn,knn"}, "distinct router names"),
        ({"members": "knn,ensemble"}, "cannot be a member"),
        ({"members": "knn,linear", "weights": "1"}, "weights"),
        ({"members": "knn,linear", "weights": "1,x"}, "weights"),
        ({"members": "knn,linear", "weights": "0,0"}, "not all be 0"),
        ({"members": "knn,linear", "weights": "-1,2"}, "non-negative"),
    ],
)
def test_bad_parameters_are_clear_errors(mbpp, params, message) -> None:
    train, _ = mbpp
    with pytest.raises(CodynError, match=message):
        make_router("ensemble", featuriser=FAST, **params).fit(train)
    assert member_names(" knn , linear ") == ["knn", "linear"]
