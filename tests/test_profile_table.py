"""DynaRoute's offline table (paper 002, section 2.2 and Tables 4-7): the shipped data files,
the Z-score and tier arithmetic on hand-worked numbers, and Table 6 reproduced from Table 7."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from codyn.errors import DataError
from codyn.profile.table import (
    category_scores,
    load_benchmark_map,
    load_benchmark_table,
    recommend,
    tier_picks,
    z_scores,
)
from codyn.profile.taxonomy import load_taxonomy
from tests.conftest import run_cli

# Table 6 as printed: category -> (Low, Moderate, Best), each (model, "Avg Z-Score", total cost).
TABLE6 = {
    "Law": (
        ("Gemini 2.5 Flash", 80.20, 0.75),
        ("Claude 3 Haiku", 68.30, 1.5),
        ("Gemini 2.5 Flash", 80.20, 0.75),
    ),
    "Business": (
        ("Gemini 2.5 Flash", 80.20, 0.75),
        ("o4-mini (high)", 50.35, 5.5),
        ("Gemini 2.5 Flash", 80.20, 0.75),
    ),
    "Economics": (
        ("Gemini 2.5 Flash", 80.20, 0.75),
        ("o4-mini (high)", 50.35, 5.5),
        ("Gemini 2.5 Flash", 80.20, 0.75),
    ),
    "Biology": (
        ("Gemini 2.5 Flash", 57.07, 0.75),
        ("o4-mini (high)", 56.40, 5.5),
        ("GPT-4.5", 71.40, 225),
    ),
    "Chemistry": (
        ("Gemini 2.5 Flash", 57.07, 0.75),
        ("o4-mini (high)", 56.40, 5.5),
        ("GPT-4.5", 71.40, 225),
    ),
    "Engineering": (
        ("Gemini 2.5 Flash", 80.20, 0.75),
        ("o4-mini (high)", 50.35, 5.5),
        ("Gemini 2.5 Flash", 80.20, 0.75),
    ),
    "Physics": (
        ("Gemini 2.5 Flash", 57.07, 0.75),
        ("o4-mini (high)", 56.40, 5.5),
        ("GPT-4.5", 71.40, 225),
    ),
    "Computer Science": (
        ("Gemini 2.5 Flash", 50.85, 0.75),
        ("o4-mini (high)", 65.32, 5.5),
        ("GPT-4", 88.40, 90),
    ),
    "Mathematics": (
        ("Llama 4 Maverick", 55.77, 0.8),
        ("o4-mini (high)", 73.18, 5.5),
        ("GPT-4", 88.40, 90),
    ),
    "Syntax Check": (
        ("Gemini 1.5 Flash", 55.55, 0.9),
        ("o4-mini (high)", 75.30, 5.5),
        ("GPT-4", 88.40, 90),
    ),
    "Code Generation": (
        ("Gemini 1.5 Flash", 63.93, 0.9),
        ("o4-mini (high)", 75.30, 5.5),
        ("GPT-4", 88.40, 90),
    ),
    "Debugging Assistance": (
        ("Llama 4 Maverick", 39.70, 0.8),
        ("o4-mini (high)", 80.40, 5.5),
        ("o4-mini (high)", 80.40, 5.5),
    ),
    "Algorithm": (
        ("Gemini 1.5 Flash", 55.55, 0.9),
        ("o4-mini (high)", 75.30, 5.5),
        ("GPT-4", 88.40, 90),
    ),
    "System Design": (
        ("Llama 4 Maverick", 36.40, 0.8),
        ("o4-mini (high)", 63.45, 5.5),
        ("o4-mini (high)", 63.45, 5.5),
    ),
    "Language Translation": (
        ("Gemini 1.5 Flash", 80.70, 0.9),
        ("Llama 3.3 70b", 83.90, 1.44),
        ("Claude 3.5 Sonnet", 88.40, 18),
    ),
    "Summarization": (
        ("Gemini 1.5 Flash", 80.70, 0.9),
        ("Llama 3.3 70b", 83.90, 1.44),
        ("Claude 3.5 Sonnet", 88.40, 18),
    ),
    "Creative Writing": (
        ("Gemini 1.5 Flash", 80.70, 0.9),
        ("Llama 3.3 70b", 83.90, 1.44),
        ("Claude 3.5 Sonnet", 88.40, 18),
    ),
    "General Knowledge": (
        ("Gemini 2.5 Flash", 74.85, 0.75),
        ("Claude 3 Haiku", 68.30, 1.5),
        ("Gemini 2.5 Flash", 74.85, 0.75),
    ),
    "History": (
        ("Gemini 2.5 Flash", 80.20, 0.75),
        ("o4-mini (high)", 50.35, 5.5),
        ("Gemini 2.5 Flash", 80.20, 0.75),
    ),
    "Geography": (
        ("Gemini 2.0 Flash", 5.30, 0.75),
        ("o4-mini (high)", 17.50, 5.5),
        ("o4-mini (high)", 17.50, 5.5),
    ),
    "Philosophy": (
        ("Gemini 2.5 Flash", 80.20, 0.75),
        ("o4-mini (high)", 50.35, 5.5),
        ("Gemini 2.5 Flash", 80.20, 0.75),
    ),
    "Sociology": (
        ("Gemini 2.0 Flash", 5.30, 0.75),
        ("o4-mini (high)", 17.50, 5.5),
        ("o4-mini (high)", 17.50, 5.5),
    ),
    "Health": (
        ("Gemini 2.5 Flash", 80.20, 0.75),
        ("o4-mini (high)", 50.35, 5.5),
        ("Gemini 2.5 Flash", 80.20, 0.75),
    ),
    "Facts": (
        ("Gemini 2.5 Flash", 74.85, 0.75),
        ("o4-mini (high)", 59.70, 5.5),
        ("Gemini 2.5 Flash", 74.85, 0.75),
    ),
    "Logic": (
        ("Gemini 2.5 Flash", 64.33, 0.75),
        ("o4-mini (high)", 78.77, 5.5),
        ("GPT-4", 88.40, 90),
    ),
    "Miscellaneous": (
        ("Llama 4 Maverick", 80.90, 0.8),
        ("o4-mini (high)", 83.20, 5.5),
        ("Gemini 2.5 Pro", 85.80, 11.25),
    ),
}
SINGLE_BENCHMARK = [
    "Debugging Assistance",
    "Language Translation",
    "Summarization",
    "Creative Writing",
    "Geography",
    "Sociology",
    "Miscellaneous",
]  # fmt: skip


@pytest.fixture(scope="module")
def shipped() -> tuple:
    table = load_benchmark_table()
    mapping = load_benchmark_map(taxonomy=load_taxonomy(), benchmarks=table.benchmarks)
    return table, mapping


def test_shipped_files_hold_the_papers_tables(shipped: tuple) -> None:
    table, mapping = shipped
    taxonomy = load_taxonomy()
    assert len(taxonomy.categories) == 6 and len(taxonomy.domains) == 29  # Table 4
    assert taxonomy.main_category("Debugging Assistance") == "Code-related"
    assert set(mapping) == set(taxonomy.domains)  # Table 5 covers every domain
    assert [d for d, names in mapping.items() if not names] == [
        "Code Explanation", "Text Formatting", "Astrology",
    ]  # fmt: skip
    assert len(table.models) == 38 and len(table.benchmarks) == 9  # Table 7
    o4 = table.models.index("o4-mini (high)")
    assert table.scores[o4, table.benchmarks.index("AIME 2024")] == 94.0
    assert table.total_cost[o4] == pytest.approx(5.5)
    gpt4 = table.models.index("GPT-4")  # a row with one cell: the rest stay missing
    assert np.isnan(table.scores[gpt4]).sum() == 8
    assert np.isnan(table.total_cost[table.models.index("DeepSeek V3")])


def test_z_scores_by_hand() -> None:
    scores = np.array([[1.0, 5.0], [2.0, 5.0], [3.0, np.nan], [np.nan, 5.0]])
    z = z_scores(scores)
    root = np.sqrt(1.5)  # (x - 2) / sqrt(2/3) for 1, 2, 3
    np.testing.assert_allclose(z[:3, 0], [-root, 0.0, root])
    assert np.isnan(z[3, 0]) and np.isnan(z[2, 1])
    np.testing.assert_array_equal(z[[0, 1, 3], 1], 0.0)  # no spread: no differentiation


def test_category_scores_by_hand() -> None:
    scores = np.array([[1.0, np.nan], [2.0, 10.0], [3.0, 20.0]])
    mapping = {"Both": ["A", "B"], "None": []}
    paper = category_scores(scores, ["A", "B"], mapping, "paper")
    root = np.sqrt(1.5)
    # a missing Z counts as 0 and the mean runs over both benchmarks
    np.testing.assert_allclose(paper["Both"], [-root / 2, (0 - 1) / 2, (root + 1) / 2])
    assert "None" not in paper
    raw = category_scores(scores, ["A", "B"], mapping, "table6")
    np.testing.assert_allclose(raw["Both"], [1.0, 6.0, 11.5])  # mean over the cells present


def test_tier_picks_by_hand() -> None:
    cost = np.array([1.0, 2.0, 3.0, 0.5])
    # cuts over the three models with a score: 1 2/3 and 2 1/3
    assert tier_picks(np.array([1.0, 2.0, 3.0, np.nan]), cost, "paper") == (0, 1, 2)
    best_is_cheap = np.array([3.0, 1.0, 2.0, np.nan])
    assert tier_picks(best_is_cheap, cost, "paper") == (0, 0, 0)  # cumulative tiers
    assert tier_picks(best_is_cheap, cost, "table6") == (0, 1, 0)  # a Moderate band
    assert tier_picks(np.full(4, np.nan), cost) is None


def test_table6_reproduced_cell_for_cell(shipped: tuple) -> None:
    """Table 6 follows from Table 7 with mean raw scores over the cells present, Low strictly
    below the 1/3 cost quantile and Moderate the band up to the 2/3 quantile: all 26 rows."""
    table, mapping = shipped
    rows = recommend(table, mapping, "table6")
    assert [r.category for r in rows] == list(TABLE6)
    for row in rows:
        for pick, (model, score, cost) in zip(row.picks, TABLE6[row.category], strict=True):
            assert (row.category, pick.model) == (row.category, model)
            assert pick.avg_z == pytest.approx(score, abs=0.006)
            assert pick.total_cost == pytest.approx(cost)


def test_paper_method_agrees_with_table6_where_the_data_decides(shipped: tuple) -> None:
    """With one benchmark per category, Z-scores rank models as raw scores do, so the Best
    pick cannot depend on the method; Low and Moderate still differ where the tiers do."""
    table, mapping = shipped
    rows = {r.category: r for r in recommend(table, mapping, "paper")}
    for category in SINGLE_BENCHMARK:
        assert rows[category].best.model == TABLE6[category][2][0], category
    for row in rows.values():  # cumulative tiers: a pricier tier never picks worse
        assert row.low.avg_z <= row.moderate.avg_z <= row.best.avg_z
        assert row.low.total_cost <= row.moderate.total_cost


def test_cli_table_json(shipped: tuple) -> None:
    result = run_cli("profile", "table", "--json", "--method", "table6")
    assert result.code == 0, result.stderr
    import json

    rows = json.loads(result.stdout)
    assert rows[0] == {
        "category": "Law",
        "low": {"model": "Gemini 2.5 Flash", "avg_z": pytest.approx(80.2), "total_cost": 0.75},
        "moderate": {"model": "Claude 3 Haiku", "avg_z": pytest.approx(68.3), "total_cost": 1.5},
        "best": {"model": "Gemini 2.5 Flash", "avg_z": pytest.approx(80.2), "total_cost": 0.75},
    }
    subset = run_cli("profile", "table", "--models", "GPT-4o mini,o4-mini (high),GPT-4.1")
    assert subset.code == 0 and "o4-mini (high)" in subset.stdout


def test_bad_files_are_one_line_errors(tmp_path: Path) -> None:
    bad = tmp_path / "models.csv"
    bad.write_text("# comment\nmodel,A,input_price,output_price\nm1,50,1,2\nm2,lots,1,2\n")
    with pytest.raises(DataError, match=r"models.csv, line 4, A: 'lots' is not a number"):
        load_benchmark_table(bad)
    bad.write_text("model,A,input_price,output_price\nm1,50,1\n")
    with pytest.raises(DataError, match=r"line 2: 3 cells, the header has 4"):
        load_benchmark_table(bad)
    mapping = tmp_path / "map.yaml"
    mapping.write_text("Law: [MMLU-Pro, Bar Exam]\n")
    with pytest.raises(DataError, match=r"Law: benchmark 'Bar Exam' is not a column"):
        load_benchmark_map(mapping, benchmarks=load_benchmark_table().benchmarks)
    mapping.write_text("Lawyering: [MMLU-Pro]\n")
    with pytest.raises(DataError, match=r"'Lawyering' is not a domain"):
        load_benchmark_map(mapping, taxonomy=load_taxonomy())
    result = run_cli("profile", "table", "--table", str(tmp_path / "missing.csv"))
    assert result.code == 1 and result.stderr.count("\n") == 1
    assert "cannot read the model table" in result.stderr
