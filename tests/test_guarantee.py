"""Calibration with a guarantee: hand-worked p-values, validity at the boundary null, fixed-sequence
testing, and the guarantee itself on 200 random calibration/test splits of real routing data."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray
from scipy.stats import binom

from codyn.data.importers import read
from codyn.data.splits import load_split_file
from codyn.errors import CodynError
from codyn.policy import UtilityPolicy, calibrate, calibrate_with_guarantee
from codyn.policy.guarantee import (
    bentkus_p_value,
    betting_p_value,
    hb_p_value,
    hoeffding_p_value,
    learn_then_test,
)
from codyn.routers import make_router

PValue = Callable[..., float]
METHODS: dict[str, PValue] = {"hb": hb_p_value, "betting": betting_p_value}


def binomial_ceiling(n: int, rate: float, quantile: float = 0.999) -> float:
    """Largest rejection (or violation) rate that ``n`` draws at ``rate`` exceed with
    probability at most ``1 - quantile``: the slack the rate tests allow."""
    return float(binom.ppf(quantile, n, rate)) / n


# -- hand-worked p-values ------------------------------------------------------------------------


def test_hb_p_value_by_hand_on_four_losses():
    # Losses -1, -1, 1, -1 on [-1, 1] map to x = 0, 0, 1, 0; E = 0 maps to level a = 1/2.
    # Rhat = 1/4, n = 4.
    # Hoeffding: exp(-n h1(1/4, 1/2)) = ((a/R)^R ((1-a)/(1-R))^(1-R))^n
    #          = (2^(1/4) (2/3)^(3/4))^4 = 2 * (2/3)^3 = 16/27 = 0.5926
    # Bentkus:   e P(Bin(4, 1/2) <= ceil(4 * 1/4) = 1) = e (1 + 4) / 16 = 5e/16 = 0.8495
    # HB = min = 16/27.
    assert hoeffding_p_value(0.25, 4, 0.5) == pytest.approx(16 / 27, rel=1e-12)
    assert bentkus_p_value(0.25, 4, 0.5) == pytest.approx(5 * math.e / 16, rel=1e-12)
    assert hb_p_value([-1.0, -1.0, 1.0, -1.0], 0.0) == pytest.approx(16 / 27, rel=1e-12)


def test_bentkus_wins_on_twenty_losses():
    # 2 losses of +1 and 18 of -1, E = 0: Rhat = 2/20 = 0.1, a = 0.5, n = 20.
    # Hoeffding: (0.1/0.5)^(-2) (0.9/0.5)^(-18) = 25 / 1.8^18 = 6.354e-4
    # Bentkus:   e P(Bin(20, 1/2) <= 2) = e (1 + 20 + 190) / 2^20 = 211 e / 2^20 = 5.470e-4
    hoeffding, bentkus = 25 / 1.8**18, 211 * math.e / 2**20
    assert bentkus < hoeffding
    assert hoeffding_p_value(0.1, 20, 0.5) == pytest.approx(hoeffding, rel=1e-12)
    assert bentkus_p_value(0.1, 20, 0.5) == pytest.approx(bentkus, rel=1e-12)
    losses = [1.0] * 2 + [-1.0] * 18
    assert hb_p_value(losses, 0.0) == pytest.approx(bentkus, rel=1e-12)


def test_hb_is_one_at_or_above_the_level_and_caps_bentkus_at_one():
    assert hb_p_value([0.5, 0.1, 0.3], 0.2) == 1.0  # mean 0.3 > 0.2
    assert bentkus_p_value(0.5, 3, 0.5) == 1.0  # e * P(Bin(3, .5) <= 2) = 7e/8 > 1, clipped
    assert hoeffding_p_value(0.0, 3, 0.5) == pytest.approx(0.125, rel=1e-12)  # (1 - a)^n


def test_p_values_depend_only_on_the_mapped_losses_and_accept_float32():
    rng = np.random.default_rng(3)
    x = rng.uniform(0.0, 1.0, 40)
    on_unit = hb_p_value(x, 0.6, low=0.0, high=1.0)
    on_wide = hb_p_value(2 * x - 1, 0.2, low=-1.0, high=1.0)  # the same losses on [-1, 1]
    assert on_unit == pytest.approx(on_wide, rel=1e-9)
    assert hb_p_value(x.astype(np.float32), 0.6, low=0.0, high=1.0) == pytest.approx(
        on_unit, rel=1e-5
    )
    assert betting_p_value(x, 0.6, low=0.0, high=1.0) == pytest.approx(
        betting_p_value(2 * x - 1, 0.2), rel=1e-9
    )


def test_betting_p_value_by_hand_on_two_losses():
    # Losses -1, -1 with E = 0: x = 0, 0 and level m = 1/2; delta = 0.1, n = 2.
    # Bet 1: sigma2_0 = 1/4, sqrt(2 ln 10 / (2 * 1/4)) = 3.03 > cap 0.5 / (1 - m) = 1 -> 1.
    #        K_1 = 1 + 1 * (1/2 - 0) = 3/2.
    # Bet 2: mu_1 = (1/2 + 0) / 2 = 1/4, sigma2_1 = (1/4 + (0 - 1/4)^2) / 2 = 0.15625,
    #        sqrt(2 ln 10 / (2 * 0.15625)) = 3.84 -> capped at 1; K_2 = 3/2 * 3/2 = 9/4.
    # p = 1 / max(K_1, K_2) = 4/9.
    assert betting_p_value([-1.0, -1.0], 0.0, delta=0.1) == pytest.approx(4 / 9, rel=1e-12)


def test_betting_p_value_is_one_when_no_loss_is_below_the_level():
    # Every factor 1 + lambda (m - x_t) is <= 1, so the wealth never rises above its start.
    # (With some losses below the level the running maximum can pass 1 early even when the
    # mean ends above it, so "mean above the level" alone does not force p = 1.)
    assert betting_p_value([0.5, 0.2, 0.9, 0.3], 0.2) == 1.0
    assert betting_p_value(np.full(50, 0.05), 0.02) == 1.0


def test_betting_is_reproducible_per_seed_and_the_seed_sets_the_order():
    rng = np.random.default_rng(5)
    losses = np.sort(rng.uniform(-0.3, 0.2, 60))  # sorted: the order the bets see matters
    assert betting_p_value(losses, 0.0, seed=1) == betting_p_value(losses, 0.0, seed=1)
    assert len({betting_p_value(losses, 0.0, seed=s) for s in range(5)}) > 1


def test_betting_adapts_to_a_small_variance_where_hb_cannot():
    # 200 losses around -0.1 (spread 0.02) against E = 0: a clear margin for the data, but HB
    # must also cover a Bernoulli on [-1, 1] with that mean (its p is about 0.24 here). Betting
    # soon bets its cap 0.5 / (1 - m) = 1 and gains a factor 1 + (0.5 - 0.45) per loss.
    losses = -0.1 + np.random.default_rng(0).uniform(-0.01, 0.01, 200)
    assert betting_p_value(losses, 0.0) < 1e-3
    assert hb_p_value(losses, 0.0) > 0.1


# -- validity on synthetic data: the boundary null ------------------------------------------------

N_DRAWS, N_LOSSES, DELTA, E_SYN = 2000, 50, 0.1, 0.02


def boundary_bernoulli(rng: np.random.Generator, mean: float) -> NDArray[np.float64]:
    """Losses in {-1, 1} with the given mean: the worst case for Hoeffding and Bentkus."""
    return np.where(rng.random((N_DRAWS, N_LOSSES)) < (mean + 1) / 2, 1.0, -1.0)


def boundary_narrow(rng: np.random.Generator, mean: float) -> NDArray[np.float64]:
    """Small symmetric noise around the mean: the case where betting bets hardest."""
    return mean + rng.uniform(-0.05, 0.05, (N_DRAWS, N_LOSSES))


def boundary_skewed(rng: np.random.Generator, mean: float) -> NDArray[np.float64]:
    """Mostly 0.02 below the mean, rarely the maximum loss 1: a sample of 50 usually looks
    safe although the mean is at the level (a CLT-based test would reject far too often)."""
    rare = 0.02 / (1.0 - mean + 0.02)
    return np.where(rng.random((N_DRAWS, N_LOSSES)) < rare, 1.0, mean - 0.02)


def test_the_skewed_null_looks_safe_in_most_samples():
    # 0.98^50 = 36% of the samples hold no loss of 1 and so a mean 0.02 below the level.
    means = boundary_skewed(np.random.default_rng(11), E_SYN).mean(axis=1)
    assert np.mean(means < E_SYN) > 0.3


@pytest.mark.parametrize("draw", [boundary_bernoulli, boundary_narrow, boundary_skewed])
@pytest.mark.parametrize("method", sorted(METHODS))
def test_rejection_rate_at_the_boundary_null_is_at_most_delta(
    method: str, draw: Callable[[np.random.Generator, float], NDArray[np.float64]]
):
    samples = draw(np.random.default_rng(11), E_SYN)
    assert abs(samples.mean() - E_SYN) < 0.01  # the draws really sit at the level
    p_value = METHODS[method]
    rejected = np.mean(
        [
            p_value(row, E_SYN, **({"seed": i} if method == "betting" else {})) <= DELTA
            for i, row in enumerate(samples)
        ]
    )
    assert rejected <= binomial_ceiling(N_DRAWS, DELTA)


@pytest.mark.parametrize("method", sorted(METHODS))
def test_both_p_values_reject_a_clearly_safe_risk(method: str):
    # Mean loss -0.6 against E = 0.02 with n = 50: both must reject nearly always, so the
    # validity test above does not pass merely because a p-value never gets small.
    samples = boundary_bernoulli(np.random.default_rng(12), -0.6)[:200]
    rejected = np.mean([METHODS[method](row, E_SYN) <= DELTA for row in samples])
    assert rejected >= 0.9


# -- Learn then Test: fixed-sequence testing ----------------------------------------------------

SAFE, UNSAFE = [-1.0] * 10, [1.0] * 10  # HB p = (1/2)^10 = 0.00098 and p = 1 at E = 0


def test_fixed_sequence_stops_at_the_first_failure_even_if_later_rows_pass():
    result = learn_then_test([SAFE, SAFE, UNSAFE, SAFE], 0.0, 0.9)
    assert result.chosen == 1
    assert len(result.p_values) == 3  # rows 0, 1 rejected; row 2 not; row 3 never tested
    assert result.p_values[0] == pytest.approx(0.5**10, rel=1e-12)
    assert result.p_values[2] == 1.0
    assert result.mean_loss == -1.0
    assert result.delta == pytest.approx(0.1)
    assert "row 1 certified" in result.summary()


def test_no_knob_when_row_zero_fails_and_the_last_when_every_row_passes():
    none = learn_then_test([UNSAFE, SAFE], 0.0, 0.9, method="betting")
    assert none.chosen is None and none.mean_loss is None and len(none.p_values) == 1
    assert "no knob" in none.summary()
    rows = [SAFE] * 70  # more rows than one block of p-values
    every = learn_then_test(rows, 0.0, 0.9)
    assert every.chosen == 69 and len(every.p_values) == 70


@pytest.mark.parametrize("method", sorted(METHODS))
def test_learn_then_test_p_values_are_the_per_row_p_values(method: str):
    rng = np.random.default_rng(2)
    losses = rng.uniform(-0.4, 0.1, (5, 80)) + np.linspace(0.0, 0.3, 5)[:, None]
    result = learn_then_test(losses, 0.0, 0.8, method=method, seed=7)
    extra = {"seed": 7, "delta": 0.2} if method == "betting" else {}
    expected = [METHODS[method](row, 0.0, **extra) for row in losses]
    tested = len(result.p_values)
    assert result.p_values == pytest.approx(expected[:tested], rel=1e-12)
    assert all(p <= 0.2 for p in expected[: tested - 1])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"confidence": 1.0}, "confidence must be in"),
        ({"confidence": 0.0}, "confidence must be in"),
        ({"confidence": float("nan")}, "confidence must be in"),
        ({"max_loss": 1.0}, "max_loss must lie strictly inside"),
        ({"max_loss": -1.5}, "max_loss must lie strictly inside"),
        ({"losses": [0.1, 0.2]}, "n_knobs x n_prompts"),
        ({"losses": np.zeros((0, 3))}, "n_knobs x n_prompts"),
        ({"losses": [[0.1, 0.2], [0.1, np.nan]]}, "row 1 (knob), prompt 1: NaN"),
        ({"losses": [[0.1, 1.5]]}, "row 0 (knob), prompt 1: value outside"),
        ({"method": "bonferroni"}, "method must be one of"),
        ({"low": 1.0, "high": -1.0}, "finite low < high"),
    ],
)
def test_learn_then_test_rejects_bad_inputs_in_one_line(kwargs: dict[str, object], message: str):
    args = {"losses": [[0.1, -0.2]], "max_loss": 0.05, "confidence": 0.9} | kwargs
    with pytest.raises(CodynError) as info:
        learn_then_test(**args)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_p_value_functions_reject_bad_inputs():
    with pytest.raises(CodynError, match="index 2: NaN"):
        hb_p_value([0.1, 0.2, np.nan], 0.0)
    with pytest.raises(CodynError, match="non-empty 1-D"):
        betting_p_value([], 0.0)
    with pytest.raises(CodynError, match="delta must be in"):
        betting_p_value([0.1], 0.0, delta=1.0)


# -- the guarantee on real routing data ---------------------------------------------------------

N_SPLITS, N_CAL, CONFIDENCE = 200, 250, 0.9
"""200 random halvings of the anchors' 500 LLMRouter test prompts: 250 to calibrate, 250 to test."""
E_TIGHT, E_LOOSE = 0.03, 0.10
"""At 0.03 betting certifies a knob cheaper than the SBS in about half the splits while HB, on
250 losses in [-1, 1], certifies none; HB needs about 0.10 before it certifies any."""
GRID_PROMPTS = 2000
"""Train prompts whose predictions set the knob grid (a fixed sample: the quantile grid of all
5,489 is the same to the eye, and predicting them all costs seconds)."""


@dataclass
class Routing:
    losses: NDArray[np.float64]
    """Knobs x pool prompts: SBS score minus chosen score, knobs from lambda = 0 up (cheaper)."""
    cost: NDArray[np.float64]
    """Knobs x pool prompts: model cost of the chosen model."""
    predicted: NDArray[np.float64]
    score: NDArray[np.float64]
    model_costs: NDArray[np.float64]
    sbs: int
    grid: NDArray[np.float64]
    """The policy's knob grid from the train predictions, cheap end first (as saved by train)."""


@pytest.fixture(scope="module")
def routing(benchmarks: Path) -> Routing:
    """kNN fitted once on the anchors' LLMRouter train split; decisions on the 500-prompt pool at
    every knob of a grid that comes from train predictions only, so it ignores calibration."""
    data = read("llmrouter", [benchmarks / "llmrouter" / "data"])
    train, pool = load_split_file(data, benchmarks / "anchors" / "splits" / "llmr_all.tsv")
    router = make_router("knn").fit(train)
    predicted = router.predict(pool)
    sample = np.random.default_rng(0).choice(train.n_prompts, GRID_PROMPTS, replace=False)
    costs = train.mean_cost()
    policy = UtilityPolicy()
    grid = policy.knob_grid(router.predict(train.take(sample)), costs, n_points=200)
    knobs = np.sort(grid[grid >= 0])  # lambda = 0 (quality only) first, then ever cheaper
    means = train.score.mean(axis=0)
    best = np.flatnonzero(means == means.max())
    sbs = int(best[np.argmin(costs[best])])
    chosen = np.stack([policy.decide(predicted, costs, float(k)) for k in knobs])
    score = pool.score
    losses = score[:, sbs][None, :] - score[np.arange(pool.n_prompts)[None, :], chosen]
    return Routing(losses, costs[chosen], predicted, score, costs, sbs, grid)


@dataclass
class Outcome:
    violated: list[bool]
    cost_fraction: list[float]
    found: list[bool]

    def line(self, name: str) -> str:
        return (
            f"{name:<28} violation rate {np.mean(self.violated):.3f}   knob found "
            f"{np.mean(self.found):.2f}   mean cost / SBS cost {np.mean(self.cost_fraction):.3f}   "
            f"({len(self.violated)} splits)"
        )


@pytest.fixture(scope="module")
def outcomes(routing: Routing) -> dict[str, Outcome]:
    """Per split: Learn then Test (HB and betting, both E) and today's plain quality target."""
    started = time.perf_counter()
    r = routing
    sbs_cost = r.model_costs[r.sbs]
    names = [f"{m} E={e:g}" for e in (E_TIGHT, E_LOOSE) for m in ("hb", "betting")]
    names.append(f"plain E={E_TIGHT:g}")
    result = {name: Outcome([], [], []) for name in names}
    rng = np.random.default_rng(2026)
    policy = UtilityPolicy()
    for split in range(N_SPLITS):
        order = rng.permutation(r.losses.shape[1])
        cal, test = order[:N_CAL], order[N_CAL:]
        for e in (E_TIGHT, E_LOOSE):
            for method in ("hb", "betting"):
                ltt = learn_then_test(r.losses[:, cal], e, CONFIDENCE, method=method, seed=split)
                out = result[f"{method} E={e:g}"]
                out.found.append(ltt.chosen is not None)
                if ltt.chosen is None:  # route everything to the SBS: loss 0, never a violation
                    out.violated.append(False)
                    out.cost_fraction.append(1.0)
                else:
                    out.violated.append(bool(r.losses[ltt.chosen, test].mean() > e))
                    out.cost_fraction.append(float(r.cost[ltt.chosen, test].mean() / sbs_cost))
        # Today's `--target-quality`: validation quality within E of the SBS's, cheapest knob.
        target = float(r.score[cal, r.sbs].mean()) - E_TIGHT
        plain = calibrate(
            policy, r.predicted[cal], r.model_costs, min_quality=target, score_val=r.score[cal]
        )
        assert plain.quality is not None and plain.quality >= target - 1e-12
        routed = policy.decide(r.predicted[test], r.model_costs, plain.knob)
        loss = float((r.score[test, r.sbs] - r.score[test, routed]).mean())
        out = result[f"plain E={E_TIGHT:g}"]
        out.found.append(True)
        out.violated.append(loss > E_TIGHT)
        out.cost_fraction.append(float(r.model_costs[routed].mean() / sbs_cost))
    print(
        f"\nguarantee on real data: {N_SPLITS} splits, {N_CAL} calibration / "
        f"{r.losses.shape[1] - N_CAL} test prompts, C = {CONFIDENCE}, {r.losses.shape[0]} knobs, "
        f"allowed violation rate {binomial_ceiling(N_SPLITS, 1 - CONFIDENCE):.3f} "
        f"({time.perf_counter() - started:.1f} s)"
    )
    for name, out in result.items():
        print(out.line(name))
    return result


@pytest.mark.parametrize("e", [E_TIGHT, E_LOOSE])
@pytest.mark.parametrize("method", ["hb", "betting"])
def test_guarantee_holds_on_new_prompts(outcomes: dict[str, Outcome], method: str, e: float):
    """With probability >= C the certified knob's loss against the SBS is <= E on new prompts:
    over 200 splits the violation rate stays within binomial slack of 1 - C."""
    violated = outcomes[f"{method} E={e:g}"].violated
    assert len(violated) == N_SPLITS
    assert np.mean(violated) <= binomial_ceiling(N_SPLITS, 1 - CONFIDENCE)


@pytest.mark.parametrize(("method", "e"), [("betting", E_TIGHT), ("hb", E_LOOSE)])
def test_guarantee_is_not_vacuous(outcomes: dict[str, Outcome], method: str, e: float):
    """The test above would pass trivially if no knob were ever certified: here a knob cheaper
    than always calling the SBS is certified in a good share of the splits."""
    out = outcomes[f"{method} E={e:g}"]
    assert np.mean(out.found) >= 0.1
    saved = [f for f, found in zip(out.cost_fraction, out.found, strict=True) if found]
    assert np.mean(saved) < 0.95


def test_plain_target_quality_runs_on_every_split(outcomes: dict[str, Outcome]):
    """The plain rule is only reported (printed next to the guarantee), not held to it."""
    plain = outcomes[f"plain E={E_TIGHT:g}"]
    assert len(plain.violated) == N_SPLITS
    assert 0.0 < np.mean(plain.cost_fraction) <= 1.0


@pytest.mark.parametrize("method", ["hb", "betting"])
def test_calibrate_with_guarantee_is_learn_then_test_on_the_train_grid(
    routing: Routing, method: str
):
    """The library call `codyn calibrate --max-quality-loss` makes gives the knob that fixed-
    sequence testing from lambda = 0 towards the cheap end certifies on the same losses."""
    r = routing
    cal = np.random.default_rng(5).permutation(r.losses.shape[1])[:N_CAL]
    e = E_TIGHT if method == "betting" else E_LOOSE
    result = calibrate_with_guarantee(
        UtilityPolicy(),
        r.predicted[cal],
        r.model_costs,
        r.score[cal],
        sbs=r.sbs,
        max_quality_loss=e,
        confidence=CONFIDENCE,
        knobs=r.grid,
        method=method,
        seed=3,
    )
    ltt = learn_then_test(r.losses[:, cal], e, CONFIDENCE, method=method, seed=3)
    knobs = np.sort(r.grid[r.grid >= 0])
    assert result.knobs_tested == len(ltt.p_values)
    if ltt.chosen is None:
        assert result.knob is None and result.cost == pytest.approx(r.model_costs[r.sbs])
    else:
        assert result.knob == knobs[ltt.chosen]
        assert result.loss == pytest.approx(r.losses[ltt.chosen, cal].mean())
        assert result.cost == pytest.approx(r.cost[ltt.chosen, cal].mean())
        assert result.cost < result.sbs_cost


def test_calibrate_with_guarantee_refuses_scores_it_cannot_bound():
    predicted = np.array([[0.2, 0.8], [0.6, 0.4]])
    common = {"sbs": 1, "max_quality_loss": 0.1, "confidence": 0.9}
    with pytest.raises(CodynError, match=r"scores in \[0, 1\]"):
        calibrate_with_guarantee(UtilityPolicy(), predicted, [1.0, 2.0], [[0, 7], [1, 1]], **common)
    with pytest.raises(CodynError, match="every model's score"):
        calibrate_with_guarantee(
            UtilityPolicy(), predicted, [1.0, 2.0], [[0, np.nan], [1, 1]], **common
        )
