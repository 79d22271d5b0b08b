"""The cascade policy: its steps, the recorded replay, and its rows in `evaluate`."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from codyn.data.routing import Model, RoutingData
from codyn.errors import CodynError, DataError
from codyn.evaluate import evaluate
from codyn.evaluate.cascades import ChainSearch
from codyn.policy import CascadePolicy, decide, make_policy, policy_config, rank, simulate_cascade
from codyn.policy.cascade import accepts, cascade_steps, final_step
from tests.conftest import run_cli

NAN = float("nan")


def test_steps_accept_and_final_rules() -> None:
    assert cascade_steps([2, 0, 1], depth=2, retries=1) == [(2, 0), (2, 1), (0, 0), (0, 1)]
    assert accepts(1.0, 1.0) and accepts(None, 1.0) and accepts(NAN, 1.0)
    assert not accepts(0.99, 1.0) and accepts(0.5, 0.5)
    assert final_step([0.5, 0.0, 0.5]) == 2  # ties to the later attempt
    assert final_step([NAN, 0.0]) == 1  # no visible tests counts as the worst


def test_simulate_cascade_by_hand() -> None:
    """Four prompts, two models (costs 1 and 10), two samples each, chain 0 > 1."""
    visible = np.array(
        [
            [[1.0, 1.0], [1.0, 1.0]],  # cheap passes its visible tests: accepted
            [[0.5, 0.5], [0.0, 0.0]],  # both fail: the best visible (cheap, 0.5) answers
            [[NAN, NAN], [1.0, 1.0]],  # no visible tests: the first answer is taken
            [[0.0, 1.0], [1.0, 1.0]],  # cheap fails, then strong passes
        ]
    )
    hidden = np.array(
        [
            [[0.0, 0.0], [1.0, 1.0]],  # a false accept: hidden fails
            [[1.0, 1.0], [0.0, 0.0]],
            [[0.3, 0.3], [1.0, 1.0]],
            [[0.0, 1.0], [0.8, 0.8]],
        ]
    )
    cost = np.array([[1.0, 10.0]] * 4)
    order = np.array([[0, 1]] * 4)
    out = simulate_cascade(order, visible, hidden, cost)
    np.testing.assert_allclose(out.quality, [0.0, 1.0, 0.3, 0.8])
    np.testing.assert_allclose(out.cost, [1, 11, 1, 11])
    assert out.answered_by.tolist() == [0, 0, 0, 1]
    assert out.depth.tolist() == [1, 2, 1, 2]
    assert out.calls.tolist() == [[1, 0], [1, 1], [1, 0], [1, 1]]
    # one retry of the cheap model first: prompt 3's second cheap sample passes
    retried = simulate_cascade(order, visible, hidden, cost, retries=1)
    np.testing.assert_allclose(retried.quality, [0.0, 1.0, 0.3, 1.0])
    np.testing.assert_allclose(retried.cost, [1, 22, 1, 2])
    assert retried.attempts.tolist() == [1, 4, 1, 2]
    # rotated: the cheap model's second sample comes first, and passes at once
    rotated = simulate_cascade(order, visible, hidden, cost, rotate=1)
    assert rotated.quality[3] == 1.0 and rotated.cost[3] == 1.0
    # the strong model alone is a one-step cascade: its first sample's score
    alone = simulate_cascade(np.array([[1]] * 4), visible, hidden, cost)
    np.testing.assert_allclose(alone.quality, hidden[:, 1, 0])


def _loop_cascade(order, visible, hidden, cost, threshold, retries, rotate):
    """The cascade by its step rules, one prompt at a time (what the proxy does live)."""
    quality, total = [], []
    for i in range(len(order)):
        seen, tried = [], []
        for model, sample in cascade_steps(order[i], len(order[i]), retries):
            recorded = np.flatnonzero(~np.isnan(hidden[i, model]))
            if sample >= len(recorded):
                continue
            s = recorded[(sample + rotate) % len(recorded)]
            tried.append((model, s))
            seen.append(visible[i, model, s])
            if accepts(seen[-1], threshold):
                break
        last = len(tried) - 1 if accepts(seen[-1], threshold) else final_step(seen)
        quality.append(hidden[i, tried[last][0], tried[last][1]])
        total.append(sum(cost[i, m] for m, _ in tried))
    return np.array(quality), np.array(total)


@pytest.mark.parametrize("seed", range(5))
def test_vectorised_replay_follows_the_step_rules(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n, m, k = 60, 4, 3
    hidden = rng.choice([0.0, 0.5, 1.0], size=(n, m, k))
    visible = np.where(rng.random((n, m, k)) < 0.8, hidden, rng.choice([0.0, 1.0], (n, m, k)))
    visible[rng.random(n) < 0.2] = NAN  # prompts without visible tests
    padded = rng.random((n, m)) < 0.2  # cells with one sample fewer
    hidden[padded, 2] = NAN
    visible[padded, 2] = NAN
    cost = rng.random((n, m)) + 0.1
    order = np.array([rng.permutation(m)[:3] for _ in range(n)])
    for threshold, retries, rotate in [(1.0, 0, 0), (0.5, 1, 1), (1.0, 2, 2)]:
        out = simulate_cascade(
            order, visible, hidden, cost, threshold=threshold, retries=retries, rotate=rotate
        )
        q, c = _loop_cascade(order, visible, hidden, cost, threshold, retries, rotate)
        np.testing.assert_allclose(out.quality, q)
        np.testing.assert_allclose(out.cost, c)


def test_cascade_policy_order_and_names() -> None:
    names = ["cheap", "mid", "strong"]
    policy = make_policy({"name": "cascade", "chain": ["strong", "cheap"]}, names)
    assert policy.chain == (2, 0) and policy.max_depth == 2
    assert policy_config(policy, names)["chain"] == ["strong", "cheap"]
    pred = np.array([[0.9, 0.5, 0.1], [0.1, 0.2, 0.3]])
    costs = np.array([1.0, 2.0, 3.0])
    assert decide(pred, costs, policy).tolist() == [2, 2]
    # a fixed chain ranks its own models first, the rest by cost; not offered = skipped
    assert rank(pred, costs, policy).tolist() == [[2, 0, 1], [2, 0, 1]]
    offered = np.array([True, True, False])
    assert decide(pred, costs, policy, offered=offered).tolist() == [0, 0]
    led = CascadePolicy(depth=2)  # router-led: the utility ranking at the knob
    assert led.order(pred, costs, 0.0).tolist() == [[0, 1], [2, 1]]
    assert led.order(pred, costs, 100.0)[:, 0].tolist() == [0, 0]  # pricey lambda: cheap first
    with pytest.raises(CodynError, match="threshold"):
        CascadePolicy(threshold=0.0)
    with pytest.raises(CodynError, match="distinct"):
        CascadePolicy(chain=(1, 1))


def _coding_data(n: int = 400, seed: int = 0, *, noisy: bool = False) -> RoutingData:
    """Two models (cost 1 and 10), three samples per cell: the cheap one solves the easy
    prompts, the strong one most prompts; visible tests tell the truth (or mostly)."""
    rng = np.random.default_rng(seed)
    hard = rng.random(n) < 0.5
    p_cheap = np.where(hard, 0.1, 0.8)
    p_strong = np.where(hard, 0.6, 0.9)
    hidden = np.stack(
        [rng.random((n, 3)) < p_cheap[:, None], rng.random((n, 3)) < p_strong[:, None]], axis=1
    ).astype(float)
    visible = hidden.copy()
    if noisy:
        flip = rng.random(hidden.shape) < 0.1
        visible[flip] = 1.0 - visible[flip]
    words = np.where(hard, "prove the recursive dynamic graph", "add two numbers")
    prompts = pd.DataFrame(
        {"id": [f"p{i}" for i in range(n)], "text": [f"{w} {i}" for i, w in enumerate(words)]}
    )
    return RoutingData(
        prompts=prompts,
        models=[Model("cheap"), Model("strong")],
        score=hidden.mean(axis=2),
        cost=np.tile([1.0, 10.0], (n, 1)),
        cost_basis="observed",
        samples=hidden,
        visible_samples=visible,
        visible_score=visible.mean(axis=2),
    )


def test_fixed_chain_cascade_in_evaluate() -> None:
    data = _coding_data()
    train, test = data.take(np.arange(200)), data.take(np.arange(200, 400))
    result = evaluate(train, test, ["cascade"], n_boot=50, reference="cascade")
    row = result.routers["cascade"]
    assert row.family == "cascade" and row.cascade is not None
    sweep = row.curve
    q_cheap, q_strong = test.score.mean(axis=0)
    # the one-model chains are on the curve at exactly the models' means (every rotation)
    assert np.isclose(sweep.qualities[0], q_cheap) and np.isclose(sweep.costs[0], 1.0)
    # a truthful verifier: cheap > strong pays 1 + P(cheap fails) * 10 and loses nothing
    s = test.samples
    fails = 1.0 - s[:, 0].mean()
    expect_q = (s[:, 0] + (1 - s[:, 0]) * s[:, 1]).mean()
    points = row.cascade.points
    at = points.index("cheap > strong")
    assert np.isclose(sweep.costs[at], 1 + 10 * fails)
    assert np.isclose(sweep.qualities[at], expect_q)
    assert sweep.qualities[at] > q_strong and sweep.costs[at] < 10
    assert row.cost_to_match_sbs < 1.0 and row.best_quality_at_sbs_cost > q_strong
    assert row.metrics["aiq_diff_vs_zero"][1] > 0  # paired interval above the zero router
    diff, lo, hi = result.oracle.metrics["aiq_diff_vs_reference"]  # the oracle against it
    assert lo <= diff <= hi and np.isclose(diff, result.oracle.aiq - row.aiq)
    assert sum(row.cascade.depth_share) == pytest.approx(1.0)
    verifier = {v["model"]: v for v in result.verifier}
    assert verifier["cheap"]["agreement"] == 1.0 and verifier["strong"]["precision"] == 1.0
    blob = json.dumps(result.to_dict(), default=str)
    assert '"cascade": {' in blob and '"verifier": [' in blob


def test_router_led_cascade_and_errors() -> None:
    data = _coding_data(noisy=True)
    train, test = data.take(np.arange(200)), data.take(np.arange(200, 400))
    result = evaluate(
        train, test, ["knn"], policies=["utility", "cascade"], n_boot=50, reference="knn@utility"
    )
    led = result.routers["knn@cascade"]
    assert led.cascade is not None and led.pair is None
    plain = result.routers["knn@utility"]
    assert led.aiq > plain.aiq  # verifying before escalating beats trusting the text alone
    diff, lo, hi = led.metrics["aiq_diff_vs_reference"]
    assert lo <= diff <= hi
    verifier = {v["model"]: v for v in result.verifier}
    assert 0.8 < verifier["cheap"]["agreement"] < 1.0
    with pytest.raises(CodynError, match="max_depth"):
        evaluate(train, test, ["cascade"], params={"cascade": {"depth": 2}}, n_boot=10)
    bare = RoutingData(prompts=test.prompts, models=test.models, score=test.score)
    with pytest.raises(DataError, match="visible_score"):
        evaluate(bare, bare, ["cascade"], n_boot=10)
    assert ChainSearch(max_depth=1).policies(np.array([1.0, 5.0]), 1) == [
        CascadePolicy(chain=(0,)),
        CascadePolicy(chain=(1,)),
    ]


def test_cli_cascade_without_visible_scores_is_one_line(tmp_path) -> None:
    data = _coding_data(n=60)
    bare = RoutingData(prompts=data.prompts, models=data.models, score=data.score)
    path = bare.save(tmp_path / "bare.parquet")
    result = run_cli("eval", str(path), "--routers", "cascade")
    assert result.code != 0
    assert "visible_score" in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    good = data.save(tmp_path / "good.parquet")
    shown = run_cli("eval", str(good), "--routers", "cascade,sbs", "--json")
    assert shown.code == 0, shown.stderr
    out = json.loads(shown.stdout)
    assert out["routers"]["cascade"]["cascade"]["points"][0] == "cheap"


def test_report_shows_depths_and_the_verifier(tmp_path) -> None:
    from codyn.report import write_report

    data = _coding_data(n=120, noisy=True)
    result = evaluate(data.take(np.arange(60)), data.take(np.arange(60, 120)), ["cascade"])
    page = write_report(result, tmp_path, title="cascade").read_text()
    cascade_table = page[page.index('id="cascades"') : page.index('id="verifier"')]
    assert "cheap &gt; strong" in cascade_table or "cheap" in cascade_table
    verifier_table = page[page.index('id="verifier"') :]
    agreement = result.verifier[0]["agreement"]
    assert f"{agreement:.3f}" in verifier_table
