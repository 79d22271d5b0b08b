"""Headroom figures (CoDyn eq. 1) against a hand-worked example."""

from __future__ import annotations

import json

import numpy as np
import pytest

from codyn.analysis import headroom
from codyn.cli.data_commands import cost_text
from codyn.data.routing import RoutingData
from codyn.metrics import headroom as hr
from tests.conftest import run_cli

# Five prompts, three models (cheap, mid, dear) with per-call costs 1, 2, 10.
SCORE = np.array(
    [
        [1.0, 1.0, 1.0],  # all pass: oracle picks cheap (tie -> cheapest)
        [0.0, 1.0, 1.0],  # mid and dear pass: oracle picks mid
        [0.0, 0.0, 1.0],  # only dear
        [0.0, 0.0, 0.0],  # none: oracle score 0, choice cheap
        [0.5, 0.0, 0.0],  # only cheap, partially
    ]
)
COST = np.tile([1.0, 2.0, 10.0], (5, 1))


def hand_data() -> RoutingData:
    return RoutingData(
        prompts=[{"id": f"p{i}", "text": f"t{i}", "task": "a" if i < 3 else "b"} for i in range(5)],
        models=["cheap", "mid", "dear"],
        score=SCORE,
        cost=COST,
        cost_basis="observed",
    )


def test_hand_worked_headroom():
    # model means: cheap (1+0+0+0+.5)/5 = 0.3, mid 2/5 = 0.4, dear 3/5 = 0.6 -> SBS = dear.
    assert hr.sbs_index(SCORE, COST) == 2
    # oracle: max per row = 1, 1, 1, 0, 0.5 -> mean 3.5/5 = 0.7; gap = 0.7 - 0.6 = 0.1.
    assert hr.oracle_mean(SCORE) == pytest.approx(0.7)
    assert hr.oracle_gap(SCORE) == pytest.approx(0.1)
    # dear is strictly beaten only on the last prompt -> WCR 1/5.
    assert hr.winner_change_rate(SCORE, 2) == pytest.approx(0.2)
    # oracle choices with ties to the cheapest: cheap, mid, dear, cheap, cheap.
    np.testing.assert_array_equal(hr.oracle_choice(SCORE, COST), [0, 1, 2, 0, 0])
    assert hr.cheapest_winner_change_rate(SCORE, 2, COST) == pytest.approx(0.8)
    np.testing.assert_allclose(hr.cheapest_best_share(SCORE, COST), [0.6, 0.2, 0.2])


def test_sbs_ties_go_to_the_cheaper_model():
    score = np.array([[1.0, 1.0], [0.0, 0.0]])
    assert hr.sbs_index(score, np.array([[5.0, 1.0], [5.0, 1.0]])) == 1
    assert hr.sbs_index(score) == 0  # no costs: first model


def test_missing_scores_are_skipped():
    score = np.array([[np.nan, np.nan], [1.0, np.nan], [0.0, 1.0]])
    assert hr.oracle_mean(score) == pytest.approx(1.0)
    np.testing.assert_array_equal(hr.oracle_choice(score), [-1, 0, 1])
    np.testing.assert_allclose(hr.model_means(score), [0.5, 1.0])


def test_report_by_task():
    report = headroom(hand_data(), by_task=True)
    assert report["sbs_model"] == "dear" and report["oracle_gap"] == pytest.approx(0.1)
    task_a = report["tasks"]["a"]
    # task a: means cheap 1/3, mid 2/3, dear 1 -> SBS dear, oracle 1, gap 0, WCR 0.
    assert task_a["sbs_model"] == "dear" and task_a["oracle_gap"] == pytest.approx(0.0)
    task_b = report["tasks"]["b"]
    # task b: cheap (0+.5)/2 = .25 is the SBS; oracle (0+.5)/2 = .25 -> gap 0.
    assert task_b["sbs_model"] == "cheap" and task_b["winner_change_rate"] == 0.0
    assert [m["mean_cost"] for m in report["models"]] == [1.0, 2.0, 10.0]


def test_cli_headroom_json_and_table(tmp_path):
    path = hand_data().save(tmp_path / "hand.parquet")
    result = run_cli("headroom", path, "--by-task", "--json")
    assert result.code == 0, result.stderr
    payload = json.loads(result.stdout)
    for key in (
        "sbs_model",
        "sbs_mean",
        "oracle_mean",
        "oracle_gap",
        "winner_change_rate",
        "models",
        "tasks",
    ):
        assert key in payload
    assert payload["oracle_mean"] == pytest.approx(0.7)
    text = run_cli("headroom", path)
    assert text.code == 0 and "dear" in text.stdout and "0.100" in text.stdout


def test_cli_reports_bad_file_in_one_line(tmp_path):
    bad = tmp_path / "broken.parquet"
    bad.write_text("not parquet")
    result = run_cli("headroom", bad)
    assert result.code != 0
    assert result.stderr.startswith("error: ") and "broken.parquet" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0.0055, "0.00550"),
        (0.009149, "0.00915"),
        (0.0099996, "0.0100"),  # rounds up into the next decade: still 3 digits
        (0.00099996, "0.00100"),
        (0.24, "0.240"),
        (24.7, "24.7"),
        (1234.5, "1230"),
        (8.1e-05, "8.10e-05"),
        (4.819e-04, "4.82e-04"),
        (2.5e07, "2.50e+07"),
        (0.0, "0"),
        (float("nan"), "n/a"),
    ],
)
def test_costs_have_three_significant_digits(value, text):
    assert cost_text(value) == text


def test_cli_headroom_prints_costs_with_three_significant_digits(tmp_path):
    data = hand_data()
    data.cost = np.tile([8.1e-05, 0.0055, 0.009149], (5, 1))
    text = run_cli("headroom", data.save(tmp_path / "costs.parquet"))
    assert text.code == 0, text.stderr
    cells = [[c.strip() for c in line.split("│")] for line in text.stdout.splitlines()]
    rows = {row[1]: row[3] for row in cells if len(row) == 6}  # model -> mean cost
    assert rows == {"cheap": "8.10e-05", "mid": "0.00550", "dear": "0.00915"}
