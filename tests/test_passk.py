"""pass@k (Chen et al. 2021) and CoDyn's bias penalty (paper 000, A.6): hand-worked numbers."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest

from codyn.metrics import (
    bias_penalty,
    mean_pass_at_k,
    pass_at_k,
    penalised_accuracy,
    penalised_scores,
    sample_pass_at_k,
)


def test_pass_at_k_by_hand() -> None:
    # n = 5 samples, c = 2 pass: 1 - C(3, k) / C(5, k)
    assert pass_at_k(5, 2, 1) == pytest.approx(1 - 3 / 5)  # 0.4
    assert pass_at_k(5, 2, 2) == pytest.approx(1 - 3 / 10)  # 0.7
    assert pass_at_k(5, 2, 3) == pytest.approx(1 - 1 / 10)  # 0.9
    assert pass_at_k(5, 2, 4) == 1.0  # only 3 fail: any 4 samples hold a pass
    assert pass_at_k(5, 0, 3) == 0.0
    assert pass_at_k(5, 5, 1) == 1.0


def test_pass_at_1_is_the_pass_rate() -> None:
    for n in range(1, 12):
        for c in range(n + 1):
            assert pass_at_k(n, c, 1) == pytest.approx(c / n)


def test_pass_at_k_matches_exact_binomials_where_they_are_huge() -> None:
    n, c, k = 200, 13, 50
    exact = 1 - Fraction(math.comb(n - c, k), math.comb(n, k))
    assert pass_at_k(n, c, k) == pytest.approx(float(exact), rel=1e-12)


def test_pass_at_k_over_problems_and_from_sample_scores() -> None:
    assert mean_pass_at_k(5, [2, 5], 1) == pytest.approx((0.4 + 1.0) / 2)
    assert mean_pass_at_k([5, 4], [2, 0], 2) == pytest.approx((0.7 + 0.0) / 2)
    # three scored samples (the NaN one failed to score), two fully pass
    assert sample_pass_at_k([1.0, 0.5, 1.0, math.nan], 1) == pytest.approx(2 / 3)
    assert sample_pass_at_k([0.5, 0.5], 1, threshold=0.5) == 1.0


def test_pass_at_k_rejects_impossible_counts() -> None:
    with pytest.raises(ValueError, match="1 <= k <= n"):
        pass_at_k(3, 1, 4)
    with pytest.raises(ValueError, match="0 <= c <= n"):
        pass_at_k(3, 4, 1)
    with pytest.raises(ValueError, match="at least one problem"):
        mean_pass_at_k(3, [], 1)


def test_bias_penalty_of_an_always_yes_model() -> None:
    # balanced data, every prediction positive: N_tp = 2, N_pp = 4, N_t = 4
    y_true, y_pred = [1, 1, 0, 0], [1, 1, 1, 1]
    assert bias_penalty(y_true, y_pred) == pytest.approx(abs(2 - 4) / 4)
    assert penalised_accuracy(y_true, y_pred) == pytest.approx(0.5 - 0.5)


def test_bias_penalty_by_hand() -> None:
    # as many positive predictions as positives: no penalty, plain accuracy 3/5
    assert bias_penalty([1, 0, 0, 0, 1], [1, 1, 0, 0, 0]) == 0.0
    assert penalised_accuracy([1, 0, 0, 0, 1], [1, 1, 0, 0, 0]) == pytest.approx(0.6)
    # biased to "No": N_tp = 1, N_pp = 0, N_t = 4 -> P = 0.25, each cell correct - 0.25
    y_true, y_pred = [True, False, False, False], [False, False, False, False]
    assert bias_penalty(y_true, y_pred) == pytest.approx(0.25)
    assert np.allclose(penalised_scores(y_true, y_pred), [-0.25, 0.75, 0.75, 0.75])
    assert penalised_accuracy(y_true, y_pred) == pytest.approx(0.75 - 0.25)


def test_bias_penalty_needs_matching_examples() -> None:
    with pytest.raises(ValueError, match="y_pred has 2"):
        bias_penalty([1, 0, 1], [1, 0])
    with pytest.raises(ValueError, match="non-empty"):
        bias_penalty([], [])
