"""codyn.metrics: hand-worked examples (arithmetic in the comments) and property tests."""

from __future__ import annotations

import math

import numpy as np
import pytest

from codyn.metrics.binary import (
    apgr,
    calibrated_performance_gap,
    cpt,
    performance_gap_at_cost_advantage,
    pgr,
    strong_share_curve,
)
from codyn.metrics.curves import aiq, hull_area, hull_quality_at, upper_hull
from codyn.metrics.quality_cost import (
    affordability,
    best_quality_within,
    cost_to_match,
    curve_points,
    models_above_share,
    normalised_cost,
    outcomes,
    ranking_score,
    selection_entropy,
    selection_share,
)
from codyn.metrics.stats import (
    bootstrap_interval,
    paired_bootstrap,
    paired_bootstrap_aiq,
    random_mixture_curve,
    random_router,
)

SCORE = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
COST = np.array([[1.0, 10.0], [1.0, 10.0], [2.0, 20.0]])


# ---------------------------------------------------------------- quality and cost


def test_outcomes_hand_example() -> None:
    # choices 0,0,1 -> scores 1,0,1 -> q = 2/3; costs 1,1,20 -> 22/3
    q, c = outcomes([0, 0, 1], SCORE, COST)
    assert q == pytest.approx(2 / 3)
    assert c == pytest.approx(22 / 3)


def test_outcomes_nan_rules() -> None:
    cost = COST.copy()
    cost[0, 0] = np.nan
    # known chosen costs 1 (prompt 1) and 20 (prompt 2): (1 + 20) / 2 = 10.5
    assert outcomes([0, 0, 1], SCORE, cost)[1] == pytest.approx(10.5)
    score = SCORE.copy()
    score[1, 0] = np.nan
    with pytest.raises(ValueError, match="no score"):
        outcomes([0, 0, 1], score, COST)
    with pytest.raises(ValueError):
        outcomes([0, 2, 1], SCORE, COST)  # model 2 does not exist
    with pytest.raises(ValueError):
        outcomes([0, -1, 1], SCORE, COST)  # unroutable prompts must be dropped first


def test_curve_points_matches_outcomes() -> None:
    # all-model-0: q (1+0+1)/3 = 2/3, cost (1+1+2)/3 = 4/3; all-model-1: q 2/3, cost 40/3
    costs, quals = curve_points([[0, 0, 0], [1, 1, 1], [0, 0, 1]], SCORE, COST)
    np.testing.assert_allclose(costs, [4 / 3, 40 / 3, 22 / 3])
    np.testing.assert_allclose(quals, [2 / 3, 2 / 3, 2 / 3])
    rng = np.random.default_rng(1)
    s, c = rng.random((40, 5)), rng.random((40, 5))
    ch = rng.integers(0, 5, (7, 40))
    costs, quals = curve_points(ch, s, c)
    for i in range(7):
        assert (costs[i], quals[i]) == pytest.approx(outcomes(ch[i], s, c)[::-1])


def test_normalised_cost_codyn_eq2() -> None:
    # shares 2/4, 1/4, 1/4 of calls; cbar 1, 5, 10: (0.5*1 + 0.25*5 + 0.25*10) / 10 = 0.425
    assert normalised_cost([2, 1, 1], [1, 5, 10]) == pytest.approx(0.425)
    assert normalised_cost([0.5, 0.25, 0.25], [1, 5, 10]) == pytest.approx(0.425)
    # CoDyn's Llama cost ratios 1, 1.6, 5, 16, 72: all calls to 405B -> 1, all to 8B -> 1/72
    ratios = [1, 1.6, 5, 16, 72]
    assert normalised_cost([0, 0, 0, 0, 1], ratios) == pytest.approx(1.0)
    assert normalised_cost([1, 0, 0, 0, 0], ratios) == pytest.approx(1 / 72)
    # an uncalled model may have no known cost, but the max still runs over the known ones
    assert normalised_cost([1, 0], [2.0, np.nan]) == pytest.approx(1.0)
    with pytest.raises(ValueError):
        normalised_cost([1, 1], [2.0, np.nan])


def test_affordability_and_ranking_score() -> None:
    # CS^-1 = 1 - (CS - 1) / (72 - 1): 1, 1 - 0.6/71, 1 - 4/71, 1 - 15/71, 0
    ratios = np.array([1, 1.6, 5, 16, 72])
    np.testing.assert_allclose(affordability(ratios), [1, 1 - 0.6 / 71, 1 - 4 / 71, 1 - 15 / 71, 0])
    # scale-free: raw prices give the same affordability as ratios to the cheapest
    np.testing.assert_allclose(affordability(ratios * 0.15), affordability(ratios))
    np.testing.assert_allclose(affordability([3, 3]), [1, 1])
    # RS = 1 * ES + 0.25 * CS^-1: model 0 0.2 + 0.25 = 0.45, model 4 0.6 + 0 = 0.6
    rs = ranking_score([0.2, 0.3, 0.4, 0.5, 0.6], ratios, 1.0, 0.25)
    assert rs[0] == pytest.approx(0.45) and rs[4] == pytest.approx(0.6)


def test_cost_to_match_and_best_quality_within() -> None:
    costs, quals = [3.0, 1.0, 2.0, 4.0], [0.7, 0.5, 0.7 - 1e-12, 0.8]
    # q >= 0.7 (float noise tolerated): points at cost 3, 2, 4 -> cheapest 2
    assert cost_to_match(costs, quals, 0.7) == 2.0
    assert math.isnan(cost_to_match(costs, quals, 0.9))
    # cost <= 2.5: points (1, 0.5) and (2, 0.7) -> best 0.7
    assert best_quality_within(costs, quals, 2.5) == pytest.approx(0.7)
    assert math.isnan(best_quality_within(costs, quals, 0.5))


def test_selection_share_and_entropy() -> None:
    # 5 prompts: model 0 once, model 1 once, model 2 three times, model 3 never
    shares = selection_share([0, 2, 2, 1, 2], 4)
    np.testing.assert_allclose(shares, [0.2, 0.2, 0.6, 0.0])
    assert selection_entropy([1, 1, 1, 1]) == pytest.approx(1.0)
    assert selection_entropy([1, 1, 1, 1], normalised=False) == pytest.approx(math.log(4))
    # half/half over 2 of 4 models: ln 2 / ln 4 = 0.5
    assert selection_entropy([0.5, 0.5, 0, 0]) == pytest.approx(0.5)
    assert selection_entropy([0, 1, 0]) == 0.0
    assert selection_entropy([7]) == 0.0
    # -(0.2 ln 0.2 * 2 + 0.6 ln 0.6) / ln 4
    h = -(2 * 0.2 * math.log(0.2) + 0.6 * math.log(0.6)) / math.log(4)
    assert selection_entropy(shares) == pytest.approx(h)
    # CoDyn A.3 style: "three models with more than 10%"
    assert models_above_share([0.38, 0.098, 0.2, 0.15, 0.172]) == 4
    assert models_above_share(shares, 0.3) == 1


# ---------------------------------------------------------------- hull and AIQ

POINTS_C = [0.0, 0.5, 0.2, 0.6, 1.0, 0.4]
POINTS_Q = [0.2, 0.3, 0.5, 0.9, 0.8, 0.6]


def test_upper_hull_hand_example() -> None:
    # sorted: (0,.2) (.2,.5) (.4,.6) (.5,.3) (.6,.9) (1,.8); stop at the max (.6,.9).
    # (.4,.6) lies under the chord (.2,.5)-(.6,.9) (0.7 at .4): dropped; (.5,.3) too.
    hx, hy = upper_hull(POINTS_C, POINTS_Q)
    np.testing.assert_allclose(hx, [0.0, 0.2, 0.6])
    np.testing.assert_allclose(hy, [0.2, 0.5, 0.9])
    # equal costs keep the best; collinear middle points go
    hx, hy = upper_hull([0, 0, 0.5, 1], [0.1, 0.3, 0.4, 0.5])
    np.testing.assert_allclose(hx, [0, 1])
    np.testing.assert_allclose(hy, [0.3, 0.5])


def test_aiq_hand_examples() -> None:
    # hull (0,.2) (.2,.5) (.6,.9), flat .9 after: .2*(.2+.5)/2 + .4*(.5+.9)/2 + .4*.9
    # = 0.07 + 0.28 + 0.36 = 0.71
    assert aiq(POINTS_C, POINTS_Q, 1.0) == pytest.approx(0.71)
    # costs are divided by max_cost: same curve at double the cost scale
    assert aiq(np.array(POINTS_C) * 2, POINTS_Q, 2.0) == pytest.approx(0.71)
    # single point: q * (1 - c) = 0.8 * 0.7 = 0.56; 0 left of the point
    assert aiq([0.3], [0.8], 1.0) == pytest.approx(0.56)
    assert aiq([0.6], [0.8], 2.0) == pytest.approx(0.56)
    # point beyond the axis: hull (.5,.5)-(1.5,1) is 0.75 at 1: area .5*(.5+.75)/2 = 0.3125
    assert aiq([0.5, 1.5], [0.5, 1.0], 1.0) == pytest.approx(0.3125)
    assert aiq([1.2], [0.9], 1.0) == 0.0
    with pytest.raises(ValueError):
        aiq([0.1, np.nan], [0.5, 0.6], 1.0)


def test_hull_area_and_quality_at() -> None:
    # hull (.2,.4)-(.6,.8): 0 on [0,.2], .4*(.4+.8)/2 = .24, flat .8 on [.6,1] = .32
    assert hull_area([0.2, 0.6], [0.4, 0.8]) == pytest.approx(0.56)
    q = hull_quality_at([0.2, 0.6], [0.4, 0.8], [0.1, 0.4, 0.9])
    assert math.isnan(q[0])
    np.testing.assert_allclose(q[1:], [0.6, 0.8])


def _oracle_sweep(score: np.ndarray, cost: np.ndarray) -> np.ndarray:
    """All lambda-optimal choice vectors argmax_m(s - lambda c), ties -> cheaper (test helper)."""
    m = score.shape[1]
    lams = []
    for i in range(m):
        for j in range(m):
            dc = cost[:, i] - cost[:, j]
            ok = dc > 0
            lams.append((score[ok, i] - score[ok, j]) / dc[ok])
    crit = np.unique(np.concatenate([*lams, np.zeros(1)]))
    crit = crit[crit >= 0]
    mids = (crit[1:] + crit[:-1]) / 2 if crit.size > 1 else np.empty(0)
    grid = np.concatenate([crit, mids, [crit.max() + 1.0, 1e9]])
    rows = []
    for lam in grid:
        u = score - lam * cost
        best = u.max(axis=1, keepdims=True)
        rows.append(np.argmin(np.where(np.isclose(u, best), cost, np.inf), axis=1))
    return np.array(rows)


def test_aiq_properties_random() -> None:
    rng = np.random.default_rng(0)
    for _ in range(60):
        k = int(rng.integers(1, 12))
        c, q = rng.random(k), rng.random(k)
        a = aiq(c, q, 1.0)
        assert 0.0 <= a <= q.max() + 1e-12
        # the hull's own vertices give the same AIQ
        hx, hy = upper_hull(c, q)
        assert aiq(hx, hy, 1.0) == pytest.approx(a)
        # a dominated curve (the raw points joined in cost order) has no more area
        o = np.argsort(c)
        assert hull_area(c[o], q[o]) <= a + 1e-12
        # adding a point on or under the hull changes nothing; adding any point never hurts
        x = rng.uniform(hx[0], hx[-1]) if hx.size > 1 else hx[0]
        y = float(hull_quality_at(hx, hy, x)) - rng.uniform(0, 0.5)
        assert aiq(np.r_[c, x], np.r_[q, y], 1.0) == pytest.approx(a)
        assert aiq(np.r_[c, rng.random()], np.r_[q, rng.random()], 1.0) >= a - 1e-12


def test_no_router_beats_the_oracle_aiq() -> None:
    rng = np.random.default_rng(7)
    for _ in range(25):
        n, m = int(rng.integers(5, 30)), int(rng.integers(2, 5))
        score = (
            rng.integers(0, 2, (n, m)).astype(float) if rng.random() < 0.5 else rng.random((n, m))
        )
        cost = rng.uniform(0.1, 1.0, (n, m))
        max_cost = cost.mean(axis=0).max()
        oracle = aiq(*curve_points(_oracle_sweep(score, cost), score, cost), max_cost)
        for _ in range(5):
            # a noisy lambda-sweep router and a cloud of random operating points
            noisy = score + rng.normal(0, 0.5, score.shape)
            sweep = _oracle_sweep(noisy, cost)
            assert aiq(*curve_points(sweep, score, cost), max_cost) <= oracle + 1e-12
            ch = rng.integers(0, m, (8, n))
            assert aiq(*curve_points(ch, score, cost), max_cost) <= oracle + 1e-12


# ---------------------------------------------------------------- PGR, APGR, CPT

# 4 prompts; strong 1,1,1,0 and weak 0,0,1,1 -> q_s 0.75, q_w 0.5, gains 1,1,0,-1.
# Router scores .9,.1,.5,.3 send prompts 0,2,3,1 strong in that order: gains 1,0,-1,1,
# cumulative 0,1,1,0,1 -> q (2 + cum)/4 = .5,.75,.75,.5,.75 -> PGR 0,1,1,0,1.
S4 = np.array([1.0, 1.0, 1.0, 0.0])
W4 = np.array([0.0, 0.0, 1.0, 1.0])
R4 = np.array([0.9, 0.1, 0.5, 0.3])


def test_strong_share_curve_hand_example() -> None:
    shares, q = strong_share_curve(R4, S4, W4)
    np.testing.assert_allclose(shares, [0, 0.25, 0.5, 0.75, 1])
    np.testing.assert_allclose(q, [0.5, 0.75, 0.75, 0.5, 0.75])
    np.testing.assert_allclose(pgr(q, 0.5, 0.75), [0, 1, 1, 0, 1])


def test_pgr_scalar_and_undefined() -> None:
    # (0.6 - 0.5) / (0.7 - 0.5) = 0.5
    assert pgr(0.6, 0.5, 0.7) == pytest.approx(0.5)
    assert math.isnan(pgr(0.6, 0.7, 0.7))
    assert np.isnan(pgr([0.6, 0.8], 0.8, 0.7)).all()


def test_apgr_hand_example() -> None:
    shares, q = strong_share_curve(R4, S4, W4)
    # default, nearest listed share (ANCHORS): .1->0, .2,.3->.25, .4,.5,.6->.5, .7,.8->.75,
    # .9,1->1: PGR 0 1 1 1 1 1 0 0 1 1 -> 0.7; trapezoid over 0,.1..1: 0.1*(7 - 1/2) = 0.65
    assert apgr(shares, q, 0.5, 0.75) == pytest.approx(0.7)
    assert apgr(shares, q, 0.5, 0.75, "integral") == pytest.approx(0.65)
    # interpolated PGR at .1..1: .4 .8 1 1 1 .6 .2 .2 .6 1 -> sum 6.8 -> 0.68
    assert apgr(shares, q, 0.5, 0.75, interpolate=True) == pytest.approx(0.68)
    # exact integral: triangle .125 + 1*.25 + triangle .125 + triangle .125 = 0.625
    assert apgr(shares, q, 0.5, 0.75, "integral", interpolate=True) == pytest.approx(0.625)
    assert math.isnan(apgr(shares, q, 0.75, 0.75))
    with pytest.raises(ValueError):
        apgr(shares, q, 0.5, 0.75, "trapz")  # type: ignore[arg-type]


def test_apgr_adds_end_points() -> None:
    # curve (.5, .7) only; ends (0, .4) and (1, .8) added -> PGR 0, .75, 1
    # integral .5*.75/2 + .5*(.75+1)/2 = .1875 + .4375 = 0.625
    assert apgr([0.5], [0.7], 0.4, 0.8, "integral", interpolate=True) == pytest.approx(0.625)
    # discrete: .15 .3 .45 .6 .75 | .8 .85 .9 .95 1 -> 6.75 / 10
    assert apgr([0.5], [0.7], 0.4, 0.8, interpolate=True) == pytest.approx(0.675)
    # nearest of 0, .5, 1: .1,.2->0; .3...7->.5; .8,.9,1->1: 0 0 .75*5 1*3 -> 6.75 / 10 too
    assert apgr([0.5], [0.7], 0.4, 0.8) == pytest.approx(0.675)
    # grid trapezoid: 0.1 * (6.75 - (0 + 1) / 2) = 0.625
    assert apgr([0.5], [0.7], 0.4, 0.8, "integral") == pytest.approx(0.625)


def test_cpt_hand_example() -> None:
    shares, q = strong_share_curve(R4, S4, W4)
    # PGR 0 -> 1 on [0, .25]: first listed share with PGR >= .5 is .25; interpolated .125
    assert cpt(shares, q, 0.5, 0.75, 0.5) == pytest.approx(0.25)
    assert cpt(shares, q, 0.5, 0.75, 0.5, interpolate=True) == pytest.approx(0.125)
    assert cpt(shares, q, 0.5, 0.75, 1.0) == pytest.approx(0.25)
    assert cpt(shares, q, 0.5, 0.75, 0.0) == 0.0
    assert math.isnan(cpt(shares, q, 0.5, 0.75, 1.1))
    assert math.isnan(cpt(shares, q, 0.75, 0.5, 0.5))


def test_cpt_tolerates_float_noise() -> None:
    # GSM8K test split: weak 256/396, strong 344/396; 44 extra solves -> PGR 44/88 = 0.5,
    # which floats compute as 0.49999999999999994
    qw, qs, q = 256 / 396, 344 / 396, 300 / 396
    assert (q - qw) / (qs - qw) < 0.5
    assert cpt([0, 44 / 396, 1], [qw, q, qs], qw, qs, 0.5, interpolate=False) == 44 / 396


def test_oracle_pair_curve_property() -> None:
    rng = np.random.default_rng(3)
    for _ in range(30):
        n = int(rng.integers(10, 200))
        s = (rng.random(n) < 0.7).astype(float)
        w = s * (rng.random(n) < 0.6)  # nested: weak solves a subset of what strong solves
        if s.sum() == w.sum():
            continue
        only_strong = float(np.mean((s == 1) & (w == 0)))
        shares, q = strong_share_curve(s - w, s, w)  # oracle: only-strong prompts first
        p = pgr(q, w.mean(), s.mean())
        assert cpt(shares, q, w.mean(), s.mean(), 1.0) == pytest.approx(only_strong)
        assert p.max() == pytest.approx(1.0)
        # with prompts that only the weak model solves, PGR peaks above 1 at the same share
        w2 = w.copy()
        w2[np.flatnonzero(s == 0)[:2]] = 1.0
        if s.mean() <= w2.mean():
            continue
        shares, q = strong_share_curve(s - w2, s, w2)
        p = pgr(q, w2.mean(), s.mean())
        k_only = int(np.sum((s == 1) & (w2 == 0)))
        k_only_weak = int(np.sum((s == 0) & (w2 == 1)))
        assert shares[int(np.argmax(p))] == pytest.approx(k_only / n)
        assert p.max() == pytest.approx(k_only / (k_only - k_only_weak))
        # PGR first reaches 1 at (only-strong - only-weak) / n
        assert cpt(shares, q, w2.mean(), s.mean(), 1.0) == pytest.approx((k_only - k_only_weak) / n)


def test_random_mixture_apgr_is_half() -> None:
    rng = np.random.default_rng(11)
    n = 400
    s = (rng.random(n) < 0.8).astype(float)
    w = (rng.random(n) < 0.5).astype(float)
    shares = np.arange(n + 1) / n
    cur = random_mixture_curve(s, w, 10.0, 1.0, shares, n_seeds=40, seed=0)
    qw, qs = w.mean(), s.mean()
    assert cur["quality"][0] == pytest.approx(qw) and cur["quality"][-1] == pytest.approx(qs)
    assert np.all(cur["quality_lo"] <= cur["quality"] + 1e-12)
    assert np.all(cur["quality"] <= cur["quality_hi"] + 1e-12)
    # cost is exact: k strong calls at 10, the rest at 1 -> 1 + 9 * share
    np.testing.assert_allclose(cur["cost"], 1 + 9 * shares)
    for method, expected in (("discrete", 0.55), ("integral", 0.5)):
        mean = apgr(shares, cur["quality"], qw, qs, method)
        lo = apgr(shares, cur["quality_lo"], qw, qs, method)
        hi = apgr(shares, cur["quality_hi"], qw, qs, method)
        assert lo <= expected <= hi
        assert mean == pytest.approx(expected, abs=0.03)


# ---------------------------------------------------------------- MBPP paper (001)


def test_performance_gap_from_paper_table1() -> None:
    # Bai, Table 1, 1B-8B random routing: TPR 63.7 60.6 56.7 52.6 49.4 45.2 at cost
    # advantage 0, 20, ..., 100% (strong share = 1 - cost advantage)
    ca = np.array([0, 0.2, 0.4, 0.6, 0.8, 1.0])
    tpr = np.array([63.7, 60.6, 56.7, 52.6, 49.4, 45.2]) / 100
    gaps = performance_gap_at_cost_advantage(1 - ca, tpr, cost_advantage=[0.2, 0.4, 0.6, 0.8])
    # 60.6-63.7 = -3.1, 56.7-63.7 = -7.0, 52.6-63.7 = -11.1, 49.4-63.7 = -14.3 points
    np.testing.assert_allclose(np.asarray(gaps) * 100, [-3.1, -7.0, -11.1, -14.3], atol=1e-9)
    # 10% lies halfway between 0% and 20%: (63.7 + 60.6)/2 - 63.7 = -1.55 points
    gap = performance_gap_at_cost_advantage(1 - ca, tpr, 0.637, 0.1, interpolate=True)
    assert gap == pytest.approx(-0.0155)
    assert math.isnan(performance_gap_at_cost_advantage([0.5, 1.0], [0.6, 0.6], None, 0.8))


def test_calibrated_performance_gap_hand_example() -> None:
    # validation p = .1, .2, ..., 1.0; target 20%: tau = 80th percentile = .8 + .2 * .1 = .82,
    # so 2 of 10 validation prompts (.9, 1.0) go small. Test p .85 .5 .95 .2 -> prompts 0, 2
    # go small: scores small[0]=1, large[1]=1, small[2]=0, large[3]=0 -> 0.5; all-large 0.75
    val = np.arange(1, 11) / 10
    gaps, actual = calibrated_performance_gap(
        val, [0.85, 0.5, 0.95, 0.2], [1, 0, 0, 1], [1, 1, 1, 0], [0.0, 0.2, 1.0]
    )
    # target 0: all large (gap 0); target 1: all small, mean(small) .5 - .75
    np.testing.assert_allclose(gaps, [0.0, -0.25, -0.25])
    np.testing.assert_allclose(actual, [0.0, 0.5, 1.0])


# ---------------------------------------------------------------- random routers, bootstrap


def test_random_router_hand_examples() -> None:
    # every model scores the same on each prompt: q = (1 + 0) / 2 whatever the choice
    score = np.array([[1.0, 1.0, 1.0], [0.0, 0.0, 0.0]])
    cost = np.array([[1.0, 2.0, 3.0], [1.0, 2.0, 3.0]])
    r = random_router(score, cost, n_seeds=50)
    assert r["quality"] == r["quality_lo"] == r["quality_hi"] == pytest.approx(0.5)
    assert r["cost_lo"] <= r["cost"] <= r["cost_hi"]
    assert r["cost"] == pytest.approx(2.0, abs=0.2)
    # a NaN score is never chosen: only model 0 is available on the single prompt
    r = random_router([[1.0, np.nan]], [[4.0, 9.0]], n_seeds=5)
    assert (r["quality"], r["cost"]) == (1.0, 4.0)


def test_random_router_expectation() -> None:
    rng = np.random.default_rng(5)
    score, cost = rng.random((300, 6)), rng.random((300, 6))
    r = random_router(score, cost, n_seeds=100, seed=1)
    # E[q] = mean over prompts of the row mean
    assert r["quality_lo"] < score.mean() < r["quality_hi"]
    assert r["quality"] == pytest.approx(score.mean(), abs=0.01)
    assert random_router(score, cost, seed=3) == random_router(score, cost, seed=3)


def test_bootstrap_interval() -> None:
    assert bootstrap_interval([2.0] * 10) == (2.0, 2.0, 2.0)
    rng = np.random.default_rng(0)
    x = rng.normal(1.0, 1.0, 400)
    point, lo, hi = bootstrap_interval(x, n_boot=500)
    assert point == pytest.approx(x.mean())
    # standard error ~ 1/sqrt(400) = 0.05: the 95% interval is about +-0.1 wide
    assert lo < point < hi and 0.12 < hi - lo < 0.28
    assert bootstrap_interval(x, np.median, n_boot=50, seed=4) == bootstrap_interval(
        x, np.median, n_boot=50, seed=4
    )


def test_paired_bootstrap() -> None:
    x = np.arange(20.0)
    assert paired_bootstrap(x, x) == (0.0, 0.0, 0.0)
    # b = a - 1 on every prompt: the difference is exactly 1 in every resample
    assert paired_bootstrap(x, x - 1) == pytest.approx((1.0, 1.0, 1.0))


def test_paired_bootstrap_aiq_matches_naive_resampling() -> None:
    rng = np.random.default_rng(2)
    n, m = 60, 4
    score = (rng.random((n, m)) < np.linspace(0.3, 0.8, m)).astype(float)
    cost = np.tile(np.array([1.0, 2.0, 5.0, 10.0]), (n, 1)) * rng.uniform(0.8, 1.2, (n, m))
    max_cost = cost.mean(axis=0).max()
    ch_a, ch_b = _oracle_sweep(score, cost), rng.integers(0, m, (6, n))
    diff, lo, hi = paired_bootstrap_aiq(ch_a, ch_b, score, cost, max_cost, n_boot=50, seed=9)
    full = aiq(*curve_points(ch_a, score, cost), max_cost) - aiq(
        *curve_points(ch_b, score, cost), max_cost
    )
    assert diff == pytest.approx(full)
    # same draws, done the slow way: resample prompts, recompute both sweeps and AIQs
    idx = np.random.default_rng(9).integers(0, n, size=(50, n))
    naive = [
        aiq(*curve_points(ch_a[:, i], score[i], cost[i]), max_cost)
        - aiq(*curve_points(ch_b[:, i], score[i], cost[i]), max_cost)
        for i in idx
    ]
    assert (lo, hi) == pytest.approx(tuple(np.quantile(naive, [0.025, 0.975])))
    assert diff > 0 and lo > 0  # the oracle sweep clearly beats random points
    assert paired_bootstrap_aiq(ch_a, ch_a, score, cost, max_cost, n_boot=20) == (0.0, 0.0, 0.0)


def test_paired_bootstrap_aiq_is_fast_enough() -> None:
    # 1000 resamples x 50 sweep points x 5000 prompts (the size), two routers
    import time

    rng = np.random.default_rng(0)
    n, m = 5000, 11
    score, cost = rng.random((n, m)), rng.random((n, m))
    ch_a, ch_b = rng.integers(0, m, (50, n)), rng.integers(0, m, (50, n))
    t0 = time.perf_counter()
    _, lo, hi = paired_bootstrap_aiq(ch_a, ch_b, score, cost, cost.mean(0).max())
    assert lo <= hi
    assert time.perf_counter() - t0 < 30  # ~1 s on one core; generous for shared CI


def test_selection_entropy_of_one_model_is_positive_zero():
    assert math.copysign(1.0, selection_entropy([0.0, 1.0, 0.0])) == 1.0
