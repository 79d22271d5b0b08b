"""Policies on hand-worked matrices, knob sweeps on random data, and calibration to targets."""

from __future__ import annotations

from itertools import pairwise

import numpy as np
import pytest

from codyn.data.routing import RoutingData
from codyn.errors import CodynError
from codyn.policy import (
    AffordabilityPolicy,
    BudgetPolicy,
    FixedPolicy,
    Policy,
    ThresholdPolicy,
    TiersPolicy,
    UtilityPolicy,
    calibrate,
    decide,
    make_policy,
    policy_config,
    rank,
)
from codyn.routers import OracleRouter

# -- hand-worked matrices ------------------------------------------------------------------------

# Three prompts, models at 10, 2 and 1 per call, so c = cost / max = 1, 0.2, 0.1.
PRED = np.array([[0.9, 0.5, 0.2], [0.3, 0.3, 0.1], [0.2, 0.6, 0.6]])
COSTS = np.array([10.0, 2.0, 1.0])


@pytest.mark.parametrize(
    ("lam", "expected"),
    [
        (0.0, [0, 1, 2]),  # quality only; rows 2 and 3 tie -> the cheaper model
        (0.5, [1, 1, 2]),  # row 1: 0.9 - 0.5 = 0.5 - 0.1 = 0.4, a tie -> model 1
        (2.0, [1, 2, 2]),  # row 2: 0.3 - 0.4 = 0.1 - 0.2, a tie -> model 2
        (3.0, [2, 2, 2]),  # row 1: 0.5 - 0.6 = 0.2 - 0.3, a tie -> model 2
        (100.0, [2, 2, 2]),
    ],
)
def test_utility_hand_worked(lam: float, expected: list[int]):
    np.testing.assert_array_equal(UtilityPolicy().decide(PRED, COSTS, lam), expected)


@pytest.mark.parametrize(
    ("lam", "expected"),
    [
        (-0.45, [0, 0, 1]),  # row 3: 0.2 + 0.45 = 0.65 < 0.6 + 0.09 = 0.69 -> model 1
        (-0.5, [0, 0, 1]),  # row 3: 0.2 + 0.5 = 0.6 + 0.1 = 0.7, a tie -> the cheaper model 1
        (-0.6, [0, 0, 0]),  # row 3 trades up to model 0: 0.8 > 0.72
    ],
)
def test_utility_negative_lambda_trades_up(lam: float, expected: list[int]):
    np.testing.assert_array_equal(UtilityPolicy().decide(PRED, COSTS, lam), expected)


def test_utility_grid_has_every_flip_in_both_directions_zero_and_both_ends():
    # From lambda = -inf (model 0 everywhere): row 1 flips at 0.4/0.8 = 0.5 and 0.3/0.1 = 3;
    # row 2 at 0/0.8 = 0 (a tie at lambda 0) and 0.2/0.1 = 2; row 3 at -0.4/0.8 = -0.5 (to model
    # 1) and 0/0.1 = 0 (to model 2).
    grid = UtilityPolicy().knob_grid(PRED, COSTS)
    np.testing.assert_allclose(grid, [3.03, 3.0, 2.0, 0.5, 0.0, -0.5, -0.505])
    assert (UtilityPolicy().decide(PRED, COSTS, grid[-1]) == 0).all()  # all priciest
    assert (UtilityPolicy().decide(PRED, COSTS, grid[0]) == 2).all()  # all cheapest
    # n_points bounds each side of lambda = 0: the lambda >= 0 half is the ANCHORS sweep
    thinned = UtilityPolicy().knob_grid(PRED, COSTS, n_points=4)
    np.testing.assert_allclose(thinned, [3.03, 3.0, 0.5, 0.0, -0.5, -0.505])
    with pytest.raises(CodynError, match="at least 2"):
        UtilityPolicy().knob_grid(PRED, COSTS, n_points=1)


def test_utility_tie_at_lambda_zero_has_a_point_just_below_it():
    predicted, costs = np.array([[0.5, 0.5]]), np.array([1.0, 2.0])
    grid = UtilityPolicy().knob_grid(predicted, costs)
    choices = [UtilityPolicy().decide(predicted, costs, k)[0] for k in grid]
    assert choices == [0, 1]  # lambda = 0 (tie -> cheaper), then just below 0 the dear one


def test_utility_rejects_bad_inputs():
    with pytest.raises(CodynError, match="lambda must be a finite number"):
        UtilityPolicy().decide(PRED, COSTS, float("nan"))
    with pytest.raises(CodynError, match="one cost per column"):
        UtilityPolicy().decide(PRED, COSTS[:2], 0.0)
    with pytest.raises(CodynError, match="model index 1 has nan"):
        UtilityPolicy().decide(PRED, [1.0, np.nan, 1.0], 0.0)


def test_utility_per_prompt_costs_break_ties_by_each_prompts_cost():
    predicted = np.array([[0.5, 0.5], [0.5, 0.5]])
    costs = np.array([[1.0, 2.0], [2.0, 1.0]])  # the cheaper model differs per prompt
    np.testing.assert_array_equal(UtilityPolicy().decide(predicted, costs, 0.0), [0, 1])
    # lambda > 0 normalises by the largest mean cost (1.5): row 1 keeps the cheaper model 0
    np.testing.assert_array_equal(UtilityPolicy().decide(predicted, costs, -1.0), [1, 0])


def test_utility_never_prefers_a_missing_prediction():
    predicted = np.array([[np.nan, 0.1, np.nan], [np.nan, np.nan, np.nan]])
    np.testing.assert_array_equal(UtilityPolicy().decide(predicted, COSTS, 0.0), [1, 2])


def test_oracle_with_utility_at_zero_is_the_per_prompt_best_with_ties_to_the_cheapest():
    score = np.array([[1.0, 1.0, 1.0], [0.0, 1.0, 1.0], [0.0, np.nan, 1.0], [0.5, 0.0, 0.5]])
    data = RoutingData(
        prompts=[{"id": f"p{i}", "text": f"t{i}"} for i in range(4)],
        models=["cheap", "mid", "dear"],
        score=score,
        cost=np.tile([1.0, 2.0, 10.0], (4, 1)),
        cost_basis="observed",
    )
    predicted = OracleRouter().fit(data).predict(data)
    chosen = UtilityPolicy().decide(predicted, data.mean_cost(), 0.0)
    np.testing.assert_array_equal(chosen, [0, 1, 2, 0])


# Four prompts; strong = model 0 (10 per call), weak = model 1 (1), model 2 never used.
BINARY = np.array([[0.9, 0.5, 0.99], [0.3, 0.7, 0.0], [0.6, 0.6, 0.5], [0.2, 0.6, 0.9]])
BINARY_COSTS = np.array([10.0, 1.0, 0.5])  # margins 0.4, -0.4, 0, -0.4


@pytest.mark.parametrize(
    ("alpha", "expected"),
    [(0.5, [1, 1, 1, 1]), (0.4, [0, 1, 1, 1]), (0.0, [0, 1, 0, 1]), (-0.4, [0, 0, 0, 0])],
)
def test_threshold_hand_worked(alpha: float, expected: list[int]):
    policy = ThresholdPolicy(strong=0, weak=1)
    np.testing.assert_array_equal(policy.decide(BINARY, BINARY_COSTS, alpha), expected)


def test_threshold_grid_runs_from_all_weak_to_all_strong():
    policy = ThresholdPolicy(strong=0, weak=1)
    grid = policy.knob_grid(BINARY, BINARY_COSTS)
    np.testing.assert_allclose(grid, [0.404, 0.4, 0.0, -0.4])
    assert (policy.decide(BINARY, BINARY_COSTS, grid[0]) == 1).all()
    assert (policy.decide(BINARY, BINARY_COSTS, grid[-1]) == 0).all()
    # a cheaper "strong" model reverses the grid so that cost still increases along it
    cheap_strong = policy.knob_grid(BINARY, np.array([1.0, 10.0, 0.5]))
    np.testing.assert_allclose(cheap_strong, [-0.4, 0.0, 0.4, 0.404])


def test_threshold_on_a_win_probability_is_routellm_alpha():
    p_strong_wins = np.array([[0.7, 0.0], [0.2, 0.0], [0.5, 0.0]])
    chosen = ThresholdPolicy(strong=0, weak=1).decide(p_strong_wins, [10.0, 1.0], 0.5)
    np.testing.assert_array_equal(chosen, [0, 1, 0])


def test_threshold_missing_predictions_and_bad_indices():
    predicted = np.array([[np.nan, 0.5], [0.5, np.nan], [np.nan, np.nan]])
    policy = ThresholdPolicy(strong=0, weak=1)
    np.testing.assert_array_equal(policy.decide(predicted, [10.0, 1.0], 0.0), [1, 0, 1])
    with pytest.raises(CodynError, match="must differ"):
        ThresholdPolicy(strong=1, weak=1)
    with pytest.raises(CodynError, match="strong model index 5 is out of range"):
        ThresholdPolicy(strong=5, weak=1).decide(predicted, [10.0, 1.0], 0.0)


def test_threshold_defaults_to_the_priciest_and_the_cheapest_model():
    policy = ThresholdPolicy()
    assert policy.pair(BINARY_COSTS) == (0, 2)
    np.testing.assert_array_equal(policy.decide(BINARY, BINARY_COSTS, 0.0), [2, 0, 0, 2])


# CoDyn's cost ratios (section 6.1.2): CS^-1 = 1 - (CS - 1) / 71.
CODYN_COSTS = np.array([1.0, 1.6, 5.0, 16.0, 72.0])
CODYN_ES = np.array([[0.5, 0.55, 0.7, 0.72, 0.9]])


@pytest.mark.parametrize(
    ("w", "expected"),
    [
        (0.0, 4),  # Setting 1: effectiveness only
        (0.25, 2),  # Setting 2: RS = .625, .660, .761, .737, .675
        (0.5, 2),  # Setting 3: RS = .750, .771, .822, .754, .450
        (0.9, 0),  # RS = .950, .947, .919, ...
        (1.0, 0),  # affordability only: the cheapest
    ],
)
def test_affordability_hand_worked(w: float, expected: int):
    assert AffordabilityPolicy().decide(CODYN_ES, CODYN_COSTS, w)[0] == expected


def test_affordability_knob_range_and_equal_costs():
    with pytest.raises(CodynError, match=r"in \[0, 1\]"):
        AffordabilityPolicy().decide(CODYN_ES, CODYN_COSTS, 1.5)
    same = np.full(5, 3.0)
    assert AffordabilityPolicy().decide(CODYN_ES, same, 0.9)[0] == 4
    np.testing.assert_array_equal(AffordabilityPolicy().knob_grid(CODYN_ES, same), [0.0])
    grid = AffordabilityPolicy().knob_grid(CODYN_ES, CODYN_COSTS)
    assert grid[-1] == 0.0 and (np.diff(grid) < 0).all() and grid[0] < 1.0
    assert AffordabilityPolicy().decide(CODYN_ES, CODYN_COSTS, grid[0])[0] == 0


# Six models at 1..6: cumulative cost tiers {0, 1}, {0..3}, {0..5}; difficulty = 1 - p(model 0).
TIERED = np.array(
    [
        [0.9, 0.95, 0.99, 0.5, 0.5, 1.0],  # d = 0.1 -> tier 0 -> model 1
        [0.5, 0.6, 0.8, 0.8, 0.9, 0.7],  # d = 0.5 -> tier 1 -> models 2 and 3 tie -> 2
        [0.1, 0.2, 0.3, 0.4, 0.9, 0.9],  # d = 0.9 -> tier 2 -> models 4 and 5 tie -> 4
    ]
)
TIER_COSTS = np.arange(1.0, 7.0)


@pytest.mark.parametrize(
    ("offset", "expected"),
    # offset 0.2: d + offset = 0.3 (tier 0), 0.7 and 1.1 (tier 2)
    [(-1.0, [1, 1, 1]), (0.0, [1, 2, 4]), (0.2, [1, 4, 4]), (1.0, [5, 4, 4])],
)
def test_tiers_hand_worked(offset: float, expected: list[int]):
    np.testing.assert_array_equal(TiersPolicy().decide(TIERED, TIER_COSTS, offset), expected)


def test_tiers_grid_and_difficulty_sources():
    grid = TiersPolicy().knob_grid(TIERED, TIER_COSTS)
    thresholds, difficulty = np.array([1 / 3, 2 / 3]), np.array([0.1, 0.5, 0.9])
    flips = np.sort((thresholds[None, :] - difficulty[:, None]).ravel())
    np.testing.assert_allclose(grid, [flips[0] - 0.01 * abs(flips[0]), *flips])
    policy = TiersPolicy(thresholds=[0.5], difficulty=lambda p: p[:, 5])
    np.testing.assert_array_equal(policy.decide(TIERED, TIER_COSTS, 0.0), [5, 4, 4])
    # difficulty 1 - p(model 3) = 0.5, 0.2, 0.6 -> tiers 1, 0, 1
    np.testing.assert_array_equal(
        TiersPolicy(difficulty=3).decide(TIERED, TIER_COSTS, 0.0), [2, 1, 3]
    )
    with pytest.raises(CodynError, match="increasing"):
        TiersPolicy(thresholds=[0.6, 0.2])
    with pytest.raises(CodynError, match="one value per prompt"):
        TiersPolicy(difficulty=lambda p: p).decide(TIERED, TIER_COSTS, 0.0)


def test_tiers_pool_the_known_models_and_read_the_routers_difficulty():
    """DynaRoute takes the cost quantiles over the models with a score in the category: a
    model the router knows nothing of (NaN) neither answers nor moves the cuts."""
    predicted = np.array([[0.5, 0.6, 0.9, np.nan]])
    costs = np.array([1.0, 2.0, 3.0, 10.0])
    # over costs 1, 2, 3 the cuts are 1 2/3, 2 1/3 and 3: tiers {0}, {0, 1}, {0, 1, 2}; over
    # all four (cuts 2, 3, 10) tier 0 would hold model 1 as well
    np.testing.assert_array_equal(TiersPolicy().choices_per_tier(predicted, costs), [[0, 1, 2]])
    for difficulty, expected in ((0.0, 0), (0.5, 1), (1.0, 2)):
        bound = TiersPolicy().with_difficulty([difficulty])
        assert bound.tiers(predicted, costs, 0.0)[0] == expected
        assert decide(predicted, costs, bound, 0.0)[0] == expected
    assert decide(predicted, costs, TiersPolicy().with_difficulty([1.0]), -1.0)[0] == 0
    explicit = TiersPolicy(difficulty=1)
    assert explicit.with_difficulty([1.0]) is explicit  # a configured difficulty wins
    assert TiersPolicy().with_difficulty(None) == TiersPolicy()
    assert UtilityPolicy().with_difficulty([1.0]) == UtilityPolicy()


# -- sweeps on random data -----------------------------------------------------------------------


def realistic(n: int = 300, m: int = 4, seed: int = 0) -> dict[str, np.ndarray]:
    """Pass/fail scores from a difficulty model, noisy predictions, costs rising with skill."""
    rng = np.random.default_rng(seed)
    skill = np.linspace(-0.5, 1.5, m)
    p_pass = 1.0 / (1.0 + np.exp(-(skill[None, :] - rng.normal(size=(n, 1)))))
    costs = np.geomspace(1e-4, 1e-2, m)
    return {
        "predicted": np.clip(p_pass + rng.normal(0.0, 0.15, (n, m)), 0.0, 1.0),
        "model_costs": costs,
        "score": (rng.random((n, m)) < p_pass).astype(float),
        "cost": costs * rng.lognormal(0.0, 0.2, (n, m)),
    }


POLICIES: list[Policy] = [
    ThresholdPolicy(strong=3, weak=0),
    ThresholdPolicy(strong=0, weak=3),
    UtilityPolicy(),
    AffordabilityPolicy(),
    TiersPolicy(),
    TiersPolicy(thresholds=(0.2, 0.4, 0.6), difficulty=1),
    BudgetPolicy(),
]


@pytest.mark.parametrize("policy", POLICIES, ids=repr)
@pytest.mark.parametrize("seed", [0, 1])
def test_grid_cost_increases_and_misses_no_flip(policy: Policy, seed: int):
    data = realistic(n=80, seed=seed)
    predicted, costs = data["predicted"], data["model_costs"]
    grid = policy.knob_grid(predicted, costs, n_points=None)
    choices = [policy.decide(predicted, costs, k) for k in grid]
    mean_cost = np.array([costs[c].mean() for c in choices])
    assert (np.diff(mean_cost) >= -1e-15).all()
    assert len({tuple(c) for c in choices}) >= len(grid) - 1  # only one end may repeat
    for (a, b), low, high in zip(pairwise(grid), choices[:-1], choices[1:], strict=True):
        middle = policy.decide(predicted, costs, (a + b) / 2)
        assert np.array_equal(middle, low) or np.array_equal(middle, high)


@pytest.mark.parametrize("policy", POLICIES[:-1], ids=repr)  # budget: one flip per model
def test_thinned_grid_keeps_both_ends(policy: Policy):
    data = realistic(n=200)
    full = policy.knob_grid(data["predicted"], data["model_costs"], n_points=None)
    thin = policy.knob_grid(data["predicted"], data["model_costs"], n_points=10)
    sides = 2 if isinstance(policy, UtilityPolicy) else 1  # utility: 10 on each side of 0
    assert len(full) > 10 * sides >= len(thin) > 10 * (sides - 1)
    assert thin[0] == full[0] and thin[-1] == full[-1]
    assert np.all(np.diff(thin) > 0) or np.all(np.diff(thin) < 0)


# -- calibration ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def val() -> dict[str, np.ndarray]:
    return realistic(n=300, seed=3)


def outcome(policy: Policy, val: dict[str, np.ndarray], knob: float) -> tuple[float, float]:
    chosen = policy.decide(val["predicted"], val["model_costs"], knob)
    rows = np.arange(len(chosen))
    return float(val["cost"][rows, chosen].mean()), float(val["score"][rows, chosen].mean())


@pytest.mark.parametrize(
    "policy", [UtilityPolicy(), AffordabilityPolicy(), TiersPolicy()], ids=repr
)
def test_calibrate_to_a_cost_budget_gives_the_best_quality_within_it(policy: Policy, val):
    common = {"score_val": val["score"], "cost_val": val["cost"]}
    previous = -np.inf
    for budget in (5e-4, 1e-3, 3e-3, 6e-3):
        result = calibrate(
            policy, val["predicted"], val["model_costs"], target_cost=budget, **common
        )
        assert result.cost <= budget
        assert (result.cost, result.quality) == pytest.approx(outcome(policy, val, result.knob))
        assert result.quality >= previous  # a larger budget never buys less
        previous = result.quality
        grid = policy.knob_grid(val["predicted"], val["model_costs"], n_points=None)
        within = [q for c, q in (outcome(policy, val, k) for k in grid) if c <= budget]
        assert result.quality == pytest.approx(max(within))


def test_calibrate_strong_share_is_the_validation_percentile(val):
    policy = ThresholdPolicy(strong=3, weak=0)
    result = calibrate(policy, val["predicted"], val["model_costs"], strong_share=0.3)
    margins = np.sort(val["predicted"][:, 3] - val["predicted"][:, 0])
    assert result.strong_share == pytest.approx(0.3)
    assert result.knob == margins[-90]  # the 70th percentile: 90 of 300 prompts above it
    assert result.quality is None and result.strong_model == 3
    scored = calibrate(
        policy, val["predicted"], val["model_costs"], strong_share=0.3, score_val=val["score"]
    )
    assert scored.strong_share <= 0.3 and scored.quality is not None


def test_calibrate_to_a_fraction_of_the_strongest_models_cost(val):
    result = calibrate(
        UtilityPolicy(),
        val["predicted"],
        val["model_costs"],
        target_cost_fraction=0.5,
        score_val=val["score"],
        cost_val=val["cost"],
    )
    strongest = int(np.argmax(val["score"].mean(axis=0)))
    assert result.strong_model == strongest
    assert result.cost <= 0.5 * val["cost"][:, strongest].mean()
    assert result.target.startswith("cost <= ")


def test_calibrate_to_a_minimum_quality_gives_the_cheapest_knob_reaching_it(val):
    policy = UtilityPolicy()
    result = calibrate(
        policy, val["predicted"], val["model_costs"], min_quality=0.6, score_val=val["score"]
    )
    assert result.quality >= 0.6
    grid = policy.knob_grid(val["predicted"], val["model_costs"], n_points=None)
    costs = val["model_costs"]
    for knob in grid:
        chosen = policy.decide(val["predicted"], costs, knob)
        if costs[chosen].mean() < result.cost - 1e-15:
            assert val["score"][np.arange(300), chosen].mean() < 0.6


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"target_cost": 1e-5}, r"target cost <= 1e-05 is not reachable on validation: it ranges"),
        ({"min_quality": 0.99, "score_val": True}, r"quality >= 0.99 is not reachable"),
        ({}, "exactly one calibration target"),
        ({"target_cost": 1.0, "strong_share": 0.5}, "got target_cost, strong_share"),
        ({"min_quality": 0.5}, "needs the validation scores"),
        ({"strong_share": 1.5}, r"must be in \[0, 1\]"),
        ({"target_cost_fraction": 0.0}, "must be > 0"),
    ],
)
def test_calibrate_errors_say_what_is_reachable(val, kwargs: dict, message: str):
    if kwargs.get("score_val") is True:
        kwargs = {**kwargs, "score_val": val["score"]}
    with pytest.raises(CodynError, match=message):
        calibrate(UtilityPolicy(), val["predicted"], val["model_costs"], **kwargs)


# -- budget, fixed, the registry and the one decision function -----------------------------------


def test_budget_is_the_best_predicted_model_within_the_cap():
    policy = BudgetPolicy()
    # within 2: models 1 and 2; row 3 ties them -> the cheaper model 2
    np.testing.assert_array_equal(policy.decide(PRED, COSTS, 2.0), [1, 1, 2])
    np.testing.assert_array_equal(policy.decide(PRED, COSTS, float("inf")), [0, 1, 2])
    np.testing.assert_array_equal(policy.knob_grid(PRED, COSTS), [1.0, 2.0, 10.0])
    assert decide(PRED, COSTS, policy).tolist() == [0, 1, 2]  # default: no cap
    with pytest.raises(
        CodynError, match=r"no model costs at most 0\.5 per call; the cheapest costs 1"
    ):
        policy.decide(PRED, COSTS, 0.5)


def test_fixed_always_answers_with_its_model():
    assert FixedPolicy(model=1).decide(PRED, COSTS, 0.0).tolist() == [1, 1, 1]
    assert make_policy("fixed", ["a", "b", "c"], model="c").model == 2


def test_make_policy_from_names_and_configs_round_trips():
    names = ["dear", "mid", "cheap"]
    policy = make_policy({"name": "threshold", "strong": "dear", "weak": "cheap"}, names)
    assert policy == ThresholdPolicy(strong=0, weak=2)
    config = policy_config(policy, names)
    assert config == {"name": "threshold", "strong": "dear", "weak": "cheap"}
    assert make_policy(config, list(reversed(names))) == ThresholdPolicy(strong=2, weak=0)
    tiers = make_policy("tiers", names, thresholds=[0.2, 0.5], difficulty="mid")
    assert tiers == TiersPolicy(thresholds=(0.2, 0.5), difficulty=1)
    assert make_policy(policy_config(tiers, names), names) == tiers
    assert policy_config(UtilityPolicy(), names) == {"name": "utility"}


@pytest.mark.parametrize(
    ("spec", "params", "message"),
    [
        ("utilty", {}, "unknown policy 'utilty'; known policies: affordability, budget"),
        ("utility", {"lam": 1}, "policy 'utility' has no parameter 'lam'; it takes: nothing"),
        ("threshold", {"strong": "gpt5"}, "threshold.strong: unknown model 'gpt5'"),
        ({"strong": "a"}, {}, "a policy config needs a `name`"),
        ("tiers", {"thresholds": [0.5, 0.1]}, "thresholds must be one or more increasing"),
    ],
)
def test_make_policy_errors_are_one_line(spec, params: dict, message: str):
    with pytest.raises(CodynError, match=message) as info:
        make_policy(spec, ["a", "b"], **params)
    assert "\n" not in str(info.value)


def test_policy_config_refuses_a_difficulty_function():
    with pytest.raises(CodynError, match="difficulty is a function"):
        policy_config(TiersPolicy(difficulty=lambda p: p[:, 0]), ["a", "b"])


def test_decide_never_chooses_a_model_not_offered():
    offered = np.array([False, True, True])
    np.testing.assert_array_equal(decide(PRED, COSTS, UtilityPolicy(), offered=offered), [1, 1, 2])
    unknown = np.full((2, 3), np.nan)  # nothing known: the cheapest offered model
    np.testing.assert_array_equal(
        decide(unknown, COSTS, UtilityPolicy(), offered=np.array([True, True, False])), [1, 1]
    )
    pair = ThresholdPolicy(strong=0, weak=2)  # the weak model is not offered
    assert decide(PRED, COSTS, pair, 10.0, offered=np.array([True, True, False])).tolist() == [
        0,
        0,
        0,
    ]
    with pytest.raises(CodynError, match="no model offered"):
        decide(PRED, COSTS, UtilityPolicy(), offered=np.zeros(3, dtype=bool))
    with pytest.raises(CodynError, match="boolean mask"):
        decide(PRED, COSTS, UtilityPolicy(), offered=[1, 0, 1])


def test_rank_is_the_policys_choice_then_its_choice_without_it():
    order = rank(PRED, COSTS, UtilityPolicy(), 0.5)
    # row 1 at lambda 0.5: utilities 0.4, 0.4, 0.15 -> 1 (tie, cheaper), then 0, then 2
    np.testing.assert_array_equal(order, [[1, 0, 2], [1, 2, 0], [2, 1, 0]])
    offered = rank(PRED, COSTS, UtilityPolicy(), 0.0, offered=np.array([True, False, True]))
    np.testing.assert_array_equal(offered, [[0, 2], [0, 2], [2, 0]])
    pair = rank(BINARY, BINARY_COSTS, ThresholdPolicy(strong=0, weak=1), 0.0)
    np.testing.assert_array_equal(pair[:, :2], [[0, 1], [1, 0], [0, 1], [1, 0]])
    assert (pair[:, 2] == 2).all()  # then every other model, cheapest first
