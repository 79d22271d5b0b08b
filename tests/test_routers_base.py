"""The Router contract: baselines' predictions, the registry, and save/load without pickle."""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path

import numpy as np
import pytest

import codyn.errors
import codyn.routers
from codyn.data.routing import RoutingData
from codyn.errors import CodynError, DataError
from codyn.routers import (
    ROUTERS,
    CheapestRouter,
    NotFittedError,
    OracleRouter,
    RandomRouter,
    Router,
    SBSRouter,
    SingleModelRouter,
    load_router,
    make_router,
    register_router,
    registry,
    router_class,
)

# Four prompts, three models (cheap, mid, dear) at 1, 2 and 10 per call.
SCORE = np.array(
    [
        [1.0, 1.0, 1.0],
        [0.0, 1.0, 1.0],
        [0.0, np.nan, 1.0],
        [0.0, 0.0, 0.0],
    ]
)
COST = np.tile([1.0, 2.0, 10.0], (4, 1))
SPECS = ["random", "oracle", "single:mid", "cheapest", "sbs"]


def hand_data(score: np.ndarray = SCORE, cost: np.ndarray | None = COST) -> RoutingData:
    return RoutingData(
        prompts=[{"id": f"p{i}", "text": f"prompt {i}"} for i in range(len(score))],
        models=["cheap", "mid", "dear"],
        score=score,
        cost=cost,
        cost_basis="observed" if cost is not None else "unknown",
    )


@pytest.fixture
def isolated_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    """Let a test register families without leaking them into other tests; the copy has not
    looked for modules yet, so a module added to the package is found."""
    routers = copy.deepcopy(registry.ROUTERS)
    routers._discovered = False
    monkeypatch.setattr(registry, "ROUTERS", routers)


# -- baselines ----------------------------------------------------------------------------------


def test_random_is_seeded_uniform_and_independent_of_the_batch():
    router = RandomRouter(seed=7).fit(hand_data())
    batch = router.predict(["a", "b", "c"])
    assert batch.shape == (3, 3)
    assert ((batch >= 0) & (batch < 1)).all()
    np.testing.assert_array_equal(router.predict(["c", "a"]), batch[[2, 0]])
    np.testing.assert_array_equal(RandomRouter(seed=7).fit(hand_data()).predict(["b"]), batch[[1]])
    assert not np.array_equal(RandomRouter(seed=8).fit(hand_data()).predict(["a"]), batch[[0]])
    assert router.predict([]).shape == (0, 3)


def test_random_choices_are_roughly_uniform():
    prompts = [f"prompt {i}" for i in range(3000)]
    choices = RandomRouter().fit(hand_data()).predict(prompts).argmax(axis=1)
    assert np.allclose(np.bincount(choices, minlength=3) / 3000, 1 / 3, atol=0.04)


def test_oracle_returns_true_scores_with_missing_as_minus_inf():
    data = hand_data()
    predicted = OracleRouter().fit(data).predict(data)
    expected = np.where(np.isnan(SCORE), -np.inf, SCORE)
    np.testing.assert_array_equal(predicted, expected)


def test_oracle_maps_columns_by_model_name():
    data = hand_data()
    router = OracleRouter().fit(data)
    reordered = data.subset(models=["dear", "cheap", "mid"])
    np.testing.assert_array_equal(router.predict(reordered), router.predict(data))
    with pytest.raises(CodynError, match="no scores for mid"):
        router.predict(data.subset(models=["cheap", "dear"]))


def test_oracle_refuses_plain_strings():
    with pytest.raises(CodynError, match="pass the RoutingData"):
        OracleRouter().fit(hand_data()).predict(["prompt 0"])


def test_single_model_is_one_hot_and_checks_the_name():
    predicted = SingleModelRouter("mid").fit(hand_data()).predict(["x", "y"])
    np.testing.assert_array_equal(predicted, [[0, 1, 0], [0, 1, 0]])
    router = SingleModelRouter("gpt")
    with pytest.raises(CodynError, match="unknown model 'gpt'; the models are: cheap, mid, dear"):
        router.fit(hand_data())
    with pytest.raises(NotFittedError):  # a failed fit does not look fitted
        router.predict(["x"])


def test_cheapest_ranks_models_by_training_cost():
    router = CheapestRouter().fit(hand_data())
    np.testing.assert_allclose(router.predict(["x"]), [[0.9, 0.8, 0.0]])
    with pytest.raises(CodynError, match="needs training costs"):
        CheapestRouter().fit(hand_data(cost=None))


def test_sbs_picks_the_best_mean_score_with_ties_to_the_cheaper():
    router = SBSRouter().fit(hand_data())  # means: cheap 0.25, mid 2/3, dear 0.75
    assert router.best_model_ == "dear"
    np.testing.assert_allclose(router.mean_score_, [0.25, 2 / 3, 0.75])
    np.testing.assert_array_equal(router.predict(["x"]), [[0, 0, 1]])
    tied = np.array([[0.0, 1.0, 1.0], [1.0, 0.0, 0.0]])  # all three tie at 0.5
    assert SBSRouter().fit(hand_data(tied, COST[:2])).best_model_ == "cheap"
    reversed_costs = np.tile([10.0, 2.0, 1.0], (2, 1))
    assert SBSRouter().fit(hand_data(tied, reversed_costs)).best_model_ == "dear"


# -- the contract --------------------------------------------------------------------------------


@pytest.mark.parametrize("spec", SPECS)
def test_predict_and_save_before_fit_raise(spec: str, tmp_path: Path):
    router = make_router(spec)
    with pytest.raises(NotFittedError, match="call fit"):
        router.predict(["x"])
    with pytest.raises(CodynError, match="not fitted"):
        router.save(tmp_path)


def test_not_fitted_is_the_one_codyn_error():
    assert NotFittedError is codyn.errors.NotFittedError
    with pytest.raises(AttributeError, match="RandomRouter is not fitted"):
        RandomRouter().predict(["x"])


def test_predict_refuses_a_bare_string():
    with pytest.raises(CodynError, match="list of prompt strings"):
        RandomRouter().fit(hand_data()).predict("one prompt")


def test_get_params_and_repr_are_scikit_learn_like():
    assert RandomRouter(seed=3).get_params() == {"seed": 3}
    assert SingleModelRouter("mid").get_params() == {"model": "mid"}
    assert OracleRouter().get_params() == {}
    assert repr(SingleModelRouter("mid")) == "SingleModelRouter(model='mid')"


# -- registry ------------------------------------------------------------------------------------


def test_make_router_parses_specs():
    assert {"random", "oracle", "single", "cheapest", "sbs"} <= set(ROUTERS.names())
    assert isinstance(make_router("random"), RandomRouter)
    assert make_router(" random ", seed=5).seed == 5
    assert make_router("single:vendor/model:8b").model == "vendor/model:8b"
    assert isinstance(make_router("sbs"), SBSRouter)
    assert router_class("cheapest") is CheapestRouter


@pytest.mark.parametrize(
    ("spec", "params", "message"),
    [
        ("nope", {}, "unknown router 'nope'; known routers: random, oracle, single"),
        ("random:3", {}, "takes no ':' argument"),
        ("single", {}, "use single:<model>"),
        ("single:", {}, "as single:<model>"),
        ("single:a", {"model": "b"}, "give model once"),
        ("random", {"sed": 1}, "'random' takes: seed"),
    ],
)
def test_make_router_errors_are_clear(spec: str, params: dict, message: str):
    with pytest.raises(CodynError, match=message):
        make_router(spec, **params)


class ScaledRouter(Router):
    """A minimal learned family: mean train score per model, times a hyper-parameter."""

    def __init__(self, scale: float = 1.0) -> None:
        self.scale = scale

    def _fit(self, train: RoutingData) -> None:
        self.means_ = np.nanmean(train.score, axis=0)
        self.n_train_ = train.n_prompts

    def _state(self):
        return {"n_train": self.n_train_}, {"means": self.means_}

    def _set_state(self, state, arrays):
        self.n_train_ = state["n_train"]
        self.means_ = arrays["means"]

    def _predict(self, texts, data):
        return np.tile(self.scale * self.means_, (len(texts), 1))


def test_a_registered_family_round_trips_its_state(isolated_registry, tmp_path: Path):
    register_router("scaled", arg="scale")(ScaledRouter)
    assert ScaledRouter.family == "scaled" and "scaled" in registry.ROUTERS
    assert registry.ROUTERS.meta("scaled") == {"arg": "scale"}
    router = make_router("scaled", scale=2.0).fit(hand_data())
    loaded = load_router(router.save(tmp_path))
    assert isinstance(loaded, ScaledRouter) and loaded.scale == 2.0 and loaded.n_train_ == 4
    np.testing.assert_array_equal(loaded.predict(["x"]), router.predict(["x"]))
    with pytest.raises(ValueError, match="'random' is already registered by RandomRouter"):
        register_router("random")(type("OtherRouter", (ScaledRouter,), {}))
    with pytest.raises(ValueError, match=r"ScaledRouter\.family is 'scaled', registered as 'x'"):
        register_router("x")(ScaledRouter)
    with pytest.raises(ValueError, match="no parameter 'size'"):
        register_router("sized", arg="size")(type("SizedRouter", (ScaledRouter,), {}))
    assert "x" not in registry.ROUTERS and "sized" not in registry.ROUTERS


def test_unknown_names_import_the_other_router_modules(
    isolated_registry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    (tmp_path / "extra_family.py").write_text(
        "from codyn.routers.baselines import OracleRouter\n"
        "from codyn.routers.registry import register_router\n"
        "@register_router('extra')\n"
        "class ExtraRouter(OracleRouter):\n"
        "    pass\n"
    )
    (tmp_path / "needs_gpu.py").write_text("import a_package_that_is_not_installed\n")
    monkeypatch.setattr(codyn.routers, "__path__", [*codyn.routers.__path__, str(tmp_path)])
    for name in ("codyn.routers.extra_family", "codyn.routers.needs_gpu"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    assert make_router("extra").family == "extra"
    with pytest.raises(CodynError, match=r"could not import codyn\.routers\.needs_gpu"):
        make_router("still-unknown")


# -- save / load ---------------------------------------------------------------------------------


@pytest.mark.parametrize("spec", SPECS)
def test_save_load_round_trip_gives_identical_predictions(spec: str, tmp_path: Path):
    data = hand_data()
    router = make_router(spec).fit(data)
    directory = router.save(tmp_path / "saved")
    config = json.loads((directory / "router.json").read_text())
    assert config["format_version"] == 1
    assert config["family"] == router.family
    assert config["params"] == router.get_params()
    assert config["model_names"] == ["cheap", "mid", "dear"]
    loaded = load_router(directory)
    assert type(loaded) is type(router)
    assert loaded.get_params() == router.get_params()
    np.testing.assert_array_equal(loaded.predict(data), router.predict(data))
    assert type(router).load(directory).get_params() == router.get_params()


def test_load_refuses_a_router_of_another_class(tmp_path: Path):
    SBSRouter().fit(hand_data()).save(tmp_path)
    with pytest.raises(DataError, match="holds a SBSRouter"):
        RandomRouter.load(tmp_path)


@pytest.fixture
def saved(tmp_path: Path) -> Path:
    return CheapestRouter().fit(hand_data()).save(tmp_path / "cheapest")


def edit_config(directory: Path, **changes: object) -> None:
    path = directory / "router.json"
    config = json.loads(path.read_text())
    config.update(changes)
    path.write_text(json.dumps(config))


@pytest.mark.parametrize(
    ("damage", "file", "message"),
    [
        (lambda d: (d / "router.json").write_text("{not json"), "router.json", "not valid JSON"),
        (lambda d: (d / "router.json").write_bytes(b"\xff\xfe"), "router.json", "not valid JSON"),
        (lambda d: (d / "router.json").write_text("[]"), "router.json", "corrupted router file"),
        (lambda d: (d / "router.json").unlink(), "router.json", "no such file"),
        (lambda d: edit_config(d, format_version=2), "router.json", "newer than this codyn"),
        (lambda d: edit_config(d, family="mystery"), "router.json", "unknown router 'mystery'"),
        (lambda d: edit_config(d, params={"x": 1}), "router.json", "'cheapest' takes: nothing"),
        (lambda d: edit_config(d, model_names=["a"]), "router.json", "does not fit"),
        (lambda d: (d / "weights.npz").write_bytes(b"garbage"), "weights.npz", "corrupted"),
        (lambda d: (d / "weights.npz").unlink(), "weights.npz", "no such file"),
    ],
)
def test_damaged_saves_give_a_clear_error_naming_the_file(saved: Path, damage, file, message):
    damage(saved)
    with pytest.raises(DataError, match=message) as info:
        load_router(saved)
    assert info.value.path == str(saved / file)


def test_pickled_weights_are_refused(saved: Path):
    np.savez(saved / "weights.npz", mean_cost=np.array([object()], dtype=object))
    with pytest.raises(DataError, match=r"weights\.npz: corrupted weights file"):
        load_router(saved)
