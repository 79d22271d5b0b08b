"""codyn.metrics against ANCHORS.md: our numbers must reproduce the anchor table's.

The first tests use only numbers printed in the table (3 decimals, so 1e-3 tolerances). The
last ones recompute exact values from the real data in ../shared/benchmarks and compare them
with the full-precision values of anchors/results.json (pasted here).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from codyn.metrics.binary import apgr, cpt, strong_share_curve
from codyn.metrics.curves import aiq
from codyn.metrics.quality_cost import normalised_cost

# rb_mbpp single models: (test q, mean cost/call (test), norm cost, AIQ (single point))
RB_MBPP = {
    "WizardLM/WizardLM-13B-V1.2": (0.391, 8.19e-05, 0.009, 0.387),
    "claude-instant-v1": (0.625, 0.0004851, 0.052, 0.593),
    "claude-v1": (0.609, 0.004084, 0.435, 0.344),
    "claude-v2": (0.641, 0.005777, 0.616, 0.246),
    "gpt-3.5-turbo-1106": (0.688, 0.0003361, 0.036, 0.663),
    "gpt-4-1106-preview": (0.688, 0.009382, 1.000, 0.000),
    "meta/code-llama-instruct-34b-chat": (0.516, 0.0001583, 0.017, 0.507),
    "meta/llama-2-70b-chat": (0.375, 0.0002899, 0.031, 0.363),
    "mistralai/mistral-7b-chat": (0.383, 4.853e-05, 0.005, 0.381),
    "mistralai/mixtral-8x7b-chat": (0.539, 0.0001713, 0.018, 0.529),
    "zero-one-ai/Yi-34B-Chat": (0.414, 0.0002399, 0.026, 0.403),
}


def test_single_point_aiq_column() -> None:
    # e.g. gpt-3.5: 0.688 * (1 - 0.036) = 0.663
    for q, _, norm, expected in RB_MBPP.values():
        assert aiq([norm], [q], 1.0) == pytest.approx(expected, abs=1.5e-3)


def test_zero_router_rb_mbpp() -> None:
    q = [v[0] for v in RB_MBPP.values()]
    cost = [v[1] for v in RB_MBPP.values()]
    # hull of the 11 single models on the USD axis / max cost -> 0.680
    assert aiq(cost, q, max(cost)) == pytest.approx(0.680, abs=1e-3)
    assert aiq([v[2] for v in RB_MBPP.values()], q, 1.0) == pytest.approx(0.680, abs=1e-3)


@pytest.mark.parametrize(
    ("costs", "qualities", "expected"),
    [
        # llmr_all: 9 models, USD per 1M tokens (0.1 .. 0.9)
        (
            [0.2, 0.2, 0.9, 0.9, 0.2, 0.1, 0.2, 0.2, 0.9],
            [0.154, 0.423, 0.267, 0.563, 0.277, 0.450, 0.508, 0.235, 0.503],
            0.469,
        ),
        # llmr_code
        (
            [0.2, 0.2, 0.9, 0.9, 0.2, 0.1, 0.2, 0.2, 0.9],
            [0.210, 0.660, 0.450, 0.680, 0.070, 0.290, 0.620, 0.550, 0.650],
            0.574,
        ),
        # rllm_gsm8k and rllm_mmlu: Mixtral 0.24 vs GPT-4 24.7
        ([0.24, 24.7], [0.646, 0.869], 0.750),
        ([0.24, 24.7], [0.677, 0.808], 0.735),
    ],
)
def test_zero_router_other_datasets(costs: list, qualities: list, expected: float) -> None:
    assert aiq(costs, qualities, max(costs)) == pytest.approx(expected, abs=1e-3)


def test_random_and_oracle_aiq_rows() -> None:
    # random row is one point: 0.521 * (1 - 0.201) = 0.416 ~ 0.417 (rb_mbpp)
    assert aiq([0.201], [0.521], 1.0) == pytest.approx(0.417, abs=1.5e-3)
    # gsm8k oracle sweep: all weak (0.010, 0.646) .. oracle (0.305, 0.944), flat after:
    # 0.295 * (0.646 + 0.944) / 2 + 0.695 * 0.944 = 0.2346 + 0.6561 = 0.891
    assert aiq([0.010, 0.305, 1.0], [0.646, 0.944, 0.869], 1.0) == pytest.approx(0.891, abs=1e-3)
    assert aiq([0.010, 0.190, 1.0], [0.677, 0.859, 0.808], 1.0) == pytest.approx(0.834, abs=1e-3)


def test_codyn_cost_column() -> None:
    # routerbench-knn40 at lambda = 0 (results.json calls_lam0): sum share * cbar / max cbar
    calls = {
        "claude-instant-v1": 0.046875,
        "claude-v1": 0.046875,
        "claude-v2": 0.15625,
        "gpt-3.5-turbo-1106": 0.171875,
        "gpt-4-1106-preview": 0.4765625,
        "meta/code-llama-instruct-34b-chat": 0.09375,
        "mistralai/mixtral-8x7b-chat": 0.0078125,
    }
    shares = [calls.get(name, 0.0) for name in RB_MBPP]
    cbar = [v[1] for v in RB_MBPP.values()]
    assert normalised_cost(shares, cbar) == pytest.approx(0.6034991789601447, abs=1e-4)


def test_apgr_trapz_is_apgr_minus_005_on_grid() -> None:
    # ANCHORS: APGR_trapz = APGR - 0.05 (trapezoid over 0, 10%, ..., 100% with PGR 0 and 1
    # at the ends): holds for any per-prompt curve with interpolate=False
    rng = np.random.default_rng(0)
    s, w = (rng.random(137) < 0.7).astype(float), (rng.random(137) < 0.5).astype(float)
    sh, q = strong_share_curve(rng.random(137), s, w)
    d = apgr(sh, q, w.mean(), s.mean(), interpolate=False)
    t = apgr(sh, q, w.mean(), s.mean(), "integral", interpolate=False)
    assert d - t == pytest.approx(0.05)


# ---------------------------------------------------------------- exact, from the real data


def _rb_mbpp_test(benchmarks: Path) -> tuple[np.ndarray, np.ndarray]:
    df = pd.read_csv(benchmarks / "routerbench" / "mbpp_test.csv")
    names = list(RB_MBPP)
    score = df[names].to_numpy(dtype=np.float64)
    cost = df[[f"{m}|total_cost" for m in names]].to_numpy(dtype=np.float64)
    return score, cost


def test_rb_mbpp_exact(benchmarks: Path) -> None:
    score, cost = _rb_mbpp_test(benchmarks)
    assert score.shape == (128, 11)
    cbar = cost.mean(axis=0)
    assert aiq(cbar, score.mean(axis=0), cbar.max()) == pytest.approx(0.6796754309743597, abs=1e-12)
    names = list(RB_MBPP)
    knn_shares = [0, 0.046875, 0.046875, 0.15625, 0.171875, 0.4765625, 0.09375, 0, 0, 0.0078125, 0]
    assert normalised_cost(knn_shares, cbar) == pytest.approx(0.6034991789601447, abs=1e-12)
    # oracle strong/weak curve: prompts only the strong model solves go strong first
    s = score[:, names.index("gpt-4-1106-preview")]
    w = score[:, names.index("meta/code-llama-instruct-34b-chat")]
    sh, q = strong_share_curve(s - w, s, w)
    args = (sh, q, w.mean(), s.mean())
    assert apgr(*args, interpolate=False) == pytest.approx(1.2954545454545454, abs=1e-12)
    assert apgr(*args, "integral", interpolate=False) == pytest.approx(
        1.2454545454545456, abs=1e-12
    )
    assert cpt(*args, 0.5, interpolate=False) == pytest.approx(0.0859375, abs=1e-12)
    assert cpt(*args, 0.8, interpolate=False) == pytest.approx(0.140625, abs=1e-12)
    # q @ 50% strong calls = 0.765625
    assert np.interp(0.5, sh, q) == pytest.approx(0.765625)
    # the interpolated reading differs by less than one prompt's worth
    assert abs(apgr(*args) - 1.2954545454545454) < 1 / (128 * (s.mean() - w.mean()))


def test_rllm_gsm8k_oracle_exact(benchmarks: Path) -> None:
    split = pd.read_csv(benchmarks / "anchors" / "splits" / "rllm_gsm8k.tsv", sep="\t")
    rows = split.loc[split["split"] == "test", "id"].str.split(":").str[1].astype(int)
    df = pd.read_csv(benchmarks / "routellm" / "gsm8k" / "gsm8k_responses.csv")
    s = df["gpt-4-1106-preview"].to_numpy(dtype=np.float64)[rows.to_numpy()]
    w = df["mistralai/Mixtral-8x7B-Instruct-v0.1"].to_numpy(dtype=np.float64)[rows.to_numpy()]
    assert s.size == 396
    sh, q = strong_share_curve(s - w, s, w)
    args = (sh, q, w.mean(), s.mean())
    assert apgr(*args, interpolate=False) == pytest.approx(1.1738636363636359, abs=1e-12)
    # PGR hits exactly 0.5 at 44/396 (0.49999999999999994 in floats): still counts
    assert cpt(*args, 0.5, interpolate=False) == pytest.approx(0.1111111111111111, abs=1e-12)
    assert cpt(*args, 0.8, interpolate=False) == pytest.approx(0.17929292929292928, abs=1e-12)
