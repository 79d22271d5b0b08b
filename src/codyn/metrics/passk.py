"""pass@k: the chance that at least one of k samples passes, from n samples per problem.

Chen et al. 2021 (the HumanEval paper, section 2.1) draw n >= k samples per problem, count the
c that pass the unit tests, and estimate without bias::

    pass@k = E_problems[ 1 - C(n - c, k) / C(n, k) ]

computed as the product ``1 - prod_{i = n - c + 1}^{n} (1 - k / i)``, which never forms the
huge binomial coefficients (the paper's numerically stable form).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k of one problem with ``c`` of ``n`` samples passing (Chen et al. 2021):
    ``1 - C(n - c, k) / C(n, k)`` = ``1 - prod_{i=n-c+1}^{n} (1 - k / i)``; 1 when fewer than
    k samples fail, since every draw of k then holds a passing one."""
    n, c, k = int(n), int(c), int(k)
    if n < 1 or not 0 <= c <= n:
        raise ValueError(f"pass@k needs 0 <= c <= n and n >= 1 (got n={n}, c={c})")
    if not 1 <= k <= n:
        raise ValueError(f"pass@k needs 1 <= k <= n (got k={k}, n={n})")
    if n - c < k:
        return 1.0
    return float(1.0 - np.prod(1.0 - k / np.arange(n - c + 1, n + 1)))


def mean_pass_at_k(n: int | ArrayLike, c: ArrayLike, k: int) -> float:
    """pass@k over problems: the mean of `pass_at_k` (``n`` one count for all or one per
    problem, ``c`` the passing samples per problem)."""
    correct = np.asarray(c, dtype=np.int64).ravel()
    if correct.size == 0:
        raise ValueError("pass@k needs at least one problem")
    samples = np.broadcast_to(np.asarray(n, dtype=np.int64), correct.shape)
    return float(np.mean([pass_at_k(ni, ci, k) for ni, ci in zip(samples, correct, strict=True)]))


def sample_pass_at_k(scores: Sequence[float], k: int, threshold: float = 1.0) -> float:
    """pass@k of one problem from its samples' scores (a sample passes when its score, e.g.
    the hidden tests' pass fraction, is at least ``threshold``; NaN samples do not count)."""
    values = np.asarray(scores, dtype=np.float64)
    values = values[~np.isnan(values)]
    return pass_at_k(values.size, int(np.sum(values >= threshold)), k)
