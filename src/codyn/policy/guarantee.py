"""Calibration with a guarantee: the cheapest knob whose quality loss is controlled on new prompts.

What is guaranteed. Given per-prompt losses ``l_i = s_i(SBS) - s_i(chosen)`` on ``n`` calibration
prompts at each knob of a grid, `learn_then_test` returns a knob such that, with probability at
least ``C`` over the draw of the calibration sample, that knob's *expected* loss on new prompts
from the same distribution is at most ``E``. (Or no knob, when the data cannot support one: then
route everything to the SBS, whose loss is 0.) The guarantee is on the expected loss; the mean
over a finite set of new prompts still scatters around it.

Assumptions. The calibration prompts are i.i.d. draws from the deployment distribution (a random
split of one pool is fine; a split by time or by task is not); the knob grid and its order are
fixed before the calibration scores are looked at (e.g. taken from predictions on the *train*
prompts); losses lie in a known range ``[low, high]`` (``[-1, 1]`` for scores in ``[0, 1]``).

How. Learn then Test (Angelopoulos, Bates, Candès, Jordan, Lei, 2021, arXiv 2110.01052): one
p-value per knob for the null "expected loss > E", then fixed-sequence testing at level
``delta = 1 - C`` from the safest knob to the cheapest, stopping at the first knob not rejected;
fixed-sequence testing controls the family-wise error with no multiplicity penalty, so a fine
grid is free, but testing ends at the first knob that fails: order it by expected loss. The
losses are mapped affinely to ``[0, 1]`` (``x = (l - low) / (high - low)``, level ``(E - low) /
(high - low)``), where both p-values live:

- ``"hb"``: Hoeffding-Bentkus (Bates, Angelopoulos, Lei, Malik, Jordan, "Distribution-free,
  risk-controlling prediction sets", 2021, arXiv 2101.02703): valid for every
  ``[0, 1]`` distribution, hence tuned to the worst one (a Bernoulli); it cannot exploit a small
  variance.
- ``"betting"``: a test martingale (Waudby-Smith and Ramdas, "Estimating means of bounded random
  variables by betting", JRSS-B 2023) with predictable plug-in bets: variance-adaptive, so much
  tighter when the losses vary less than a Bernoulli's would, as routing losses do (0 wherever
  the chosen model is the SBS).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.special import xlogy
from scipy.stats import binom

from codyn.errors import CodynError

FloatArray = NDArray[np.float64]
Method = Literal["hb", "betting"]
METHODS: tuple[str, ...] = ("hb", "betting")

BET_TRUNCATION = 0.5
"""Largest bet as a fraction of the one that could bankrupt the bettor (WSR's ``c = 1/2``): a
single loss at ``high`` then costs at most half the wealth."""

_RANGE_SLACK = 1e-9
"""Losses this far (relative to ``high - low``) outside the range count as rounding, not errors."""

_CHUNK = 64
"""Knobs whose p-values are computed together in `learn_then_test` (fixed-sequence testing
usually stops long before the end of a fine grid)."""


# -- the two halves of Hoeffding-Bentkus, on [0, 1] -----------------------------------------------


def hoeffding_p_value(mean: float, n: int, level: float) -> float:
    """Hoeffding's p-value for "expected loss > level" from ``n`` losses in ``[0, 1]``.

    ``p = exp(-n h1(min(mean, level), level))`` with ``h1(a, b) = a log(a / b) + (1 - a)
    log((1 - a) / (1 - b))`` (Bates et al. 2021, arXiv 2101.02703; the KL form of
    Hoeffding's 1963 inequality). 1 when the empirical mean is at or above the level.
    """
    return float(_hoeffding(np.array([mean], dtype=np.float64), n, level)[0])


def bentkus_p_value(mean: float, n: int, level: float) -> float:
    """Bentkus's p-value for "expected loss > level" from ``n`` losses in ``[0, 1]``.

    ``p = e * P(Binomial(n, level) <= ceil(n * mean))`` (Bentkus 2004; Bates et al. 2021, arXiv
    2101.02703), clipped to 1. Tighter than Hoeffding for larger ``n`` and small p.
    """
    return float(_bentkus(np.array([mean], dtype=np.float64), n, level)[0])


def _hoeffding(mean: FloatArray, n: int, level: float) -> FloatArray:
    a = np.minimum(mean, level)
    h1 = xlogy(a, a / level) + xlogy(1.0 - a, (1.0 - a) / (1.0 - level))
    return np.clip(np.exp(-n * np.maximum(h1, 0.0)), 0.0, 1.0)


def _bentkus(mean: FloatArray, n: int, level: float) -> FloatArray:
    # ceil of the loss sum, forgiving rounding: 2 losses of 0.1 + ... summing to 2.0000000001 is 2.
    k = np.ceil(n * mean - 1e-9 * max(1, n))
    return np.clip(math.e * binom.cdf(k, n, level), 0.0, 1.0)


def _betting(x: FloatArray, level: float, delta: float) -> FloatArray:
    """``min(1, 1 / max_t K_t)`` per row of ``x`` (rows x prompts in ``[0, 1]``, in bet order)."""
    n = x.shape[1]
    t = np.arange(1, n + 1, dtype=np.float64)
    # WSR's regularised running mean and variance (one fake observation at mean 1/2, variance
    # 1/4); the bet on prompt t uses only prompts 1..t-1 (predictable).
    mu = (0.5 + np.cumsum(x, axis=1)) / (t + 1.0)
    var = (0.25 + np.cumsum((x - mu) ** 2, axis=1)) / (t + 1.0)
    var_before = np.concatenate([np.full((x.shape[0], 1), 0.25), var[:, :-1]], axis=1)
    bets = np.minimum(
        np.sqrt(2.0 * math.log(1.0 / delta) / (n * var_before)), BET_TRUNCATION / (1.0 - level)
    )
    log_wealth = np.cumsum(np.log1p(bets * (level - x)), axis=1)
    return np.minimum(1.0, np.exp(-np.maximum(log_wealth.max(axis=1), 0.0)))


# -- public p-values on the loss scale ------------------------------------------------------------


def hb_p_value(
    losses: ArrayLike, max_loss: float, *, low: float = -1.0, high: float = 1.0
) -> float:
    """Hoeffding-Bentkus p-value for the null "expected loss > max_loss" (small p: the risk is
    at most ``max_loss``), from i.i.d. ``losses`` in ``[low, high]``.

    ``p = min(p_Hoeffding, p_Bentkus)`` on the losses mapped to ``[0, 1]`` (`hoeffding_p_value`,
    `bentkus_p_value`; Bates et al. 2021, arXiv 2101.02703): valid, i.e.
    ``P(p <= delta) <= delta`` under the null, for every distribution on ``[low, high]``.
    """
    x, level = _unit(_vector(losses), max_loss, low, high)
    mean = x.mean(axis=1)
    return float(
        np.minimum(_hoeffding(mean, x.shape[1], level), _bentkus(mean, x.shape[1], level))[0]
    )


def betting_p_value(
    losses: ArrayLike,
    max_loss: float,
    *,
    low: float = -1.0,
    high: float = 1.0,
    seed: int = 0,
    delta: float = 0.1,
) -> float:
    """Betting p-value for the null "expected loss > max_loss" from i.i.d. ``losses`` in
    ``[low, high]`` (Waudby-Smith and Ramdas 2023).

    On ``x = (l - low) / (high - low)`` and level ``m = (max_loss - low) / (high - low)`` a
    bettor starts with wealth 1 and multiplies it by ``1 + lambda_t (m - x_t)`` per prompt. The
    bets are WSR's fixed-n predictable plug-in, ``lambda_t = sqrt(2 log(1 / delta) / (n
    sigma2_{t-1}))`` with their regularised running variance, capped at ``BET_TRUNCATION / (1 -
    m)`` so the wealth stays positive. Under the null each factor has mean at most 1, so the
    wealth is a nonnegative supermartingale and by Ville's inequality ``p = min(1, 1 / max_t
    K_t)`` is valid for any bounded losses. ``delta`` only tunes the bets (for the level one
    will test at); validity does not depend on it.

    The losses are bet on in a random order drawn from ``seed``: prompts the caller sorted (by
    task, say) are not bet on in that order, and the same seed gives the same p-value.
    """
    delta = _fraction(delta, "delta")
    x, level = _unit(_vector(losses), max_loss, low, high)
    order = np.random.default_rng(seed).permutation(x.shape[1])
    return float(_betting(x[:, order], level, delta)[0])


# -- Learn then Test -------------------------------------------------------------------------------


@dataclass(frozen=True)
class LTTResult:
    """The outcome of fixed-sequence testing over the knobs, enough to explain the choice."""

    p_values: tuple[float, ...]
    """p-values of the rows tested, in test order: every rejected row and the first one that
    was not (all rows when every one was rejected)."""
    chosen: int | None
    """Index of the last rejected row (the cheapest certified knob); None if row 0 failed."""
    mean_loss: float | None
    """Empirical mean loss of the chosen row on the calibration prompts (None without one)."""
    max_loss: float
    """E: the expected-loss bound certified."""
    confidence: float
    """C: the probability, over the calibration sample, that the bound holds."""
    method: str
    n_prompts: int

    @property
    def delta(self) -> float:
        """The test level ``1 - confidence``."""
        return 1.0 - self.confidence

    def summary(self) -> str:
        """One line for logs and reports."""
        head = f"{self.method} on {self.n_prompts} prompts at delta={self.delta:g}"
        if self.chosen is None:
            p0 = self.p_values[0]
            return f"{head}: no knob certified (row 0: p={p0:.3g} > {self.delta:g})"
        stop = (
            f"row {self.chosen + 1} p={self.p_values[self.chosen + 1]:.3g}"
            if len(self.p_values) > self.chosen + 1
            else "every row rejected"
        )
        return (
            f"{head}: row {self.chosen} certified, expected loss <= {self.max_loss:g} with "
            f"probability >= {self.confidence:g} (calibration mean loss {self.mean_loss:.4g}; "
            f"stopped at {stop})"
        )


def learn_then_test(
    losses: ArrayLike,
    max_loss: float,
    confidence: float,
    *,
    method: Method = "hb",
    low: float = -1.0,
    high: float = 1.0,
    seed: int = 0,
) -> LTTResult:
    """Fixed-sequence Learn then Test (Angelopoulos et al. 2021, arXiv 2110.01052).

    ``losses`` is ``n_knobs x n_prompts``, rows in the order to test: row 0 first, from the
    caller's safest knob towards its cheapest. Rows 0, 1, ... are rejected while their p-value
    (``method``: `hb_p_value` or `betting_p_value`, one permutation ``seed`` for every row) is
    at most ``delta = 1 - confidence``; testing stops at the first row that is not. With
    probability at least ``confidence``, every rejected row, the chosen (last) one included,
    has expected loss at most ``max_loss``.
    """
    delta = 1.0 - _fraction(confidence, "confidence")
    if method not in METHODS:
        raise CodynError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    matrix = np.array(losses, dtype=np.float64)
    if matrix.ndim != 2 or matrix.shape[0] == 0 or matrix.shape[1] == 0:
        raise CodynError(
            f"losses must be a non-empty n_knobs x n_prompts array, got shape {matrix.shape}"
        )
    x, level = _unit(matrix, max_loss, low, high, rows=True)
    n = x.shape[1]
    if method == "betting":
        x = x[:, np.random.default_rng(seed).permutation(n)]
    p_values: list[float] = []
    chosen: int | None = None
    for start in range(0, x.shape[0], _CHUNK):
        block = x[start : start + _CHUNK]
        if method == "hb":
            mean = block.mean(axis=1)
            p = np.minimum(_hoeffding(mean, n, level), _bentkus(mean, n, level))
        else:
            p = _betting(block, level, delta)
        for offset, value in enumerate(p.tolist()):
            p_values.append(value)
            if value > delta:
                return _result(p_values, chosen, matrix, max_loss, confidence, method)
            chosen = start + offset
    return _result(p_values, chosen, matrix, max_loss, confidence, method)


def _result(
    p_values: list[float],
    chosen: int | None,
    matrix: FloatArray,
    max_loss: float,
    confidence: float,
    method: str,
) -> LTTResult:
    return LTTResult(
        p_values=tuple(p_values),
        chosen=chosen,
        mean_loss=None if chosen is None else float(matrix[chosen].mean()),
        max_loss=float(max_loss),
        confidence=float(confidence),
        method=method,
        n_prompts=matrix.shape[1],
    )


# -- validation ------------------------------------------------------------------------------------


def _vector(losses: ArrayLike) -> FloatArray:
    array = np.array(losses, dtype=np.float64)
    if array.ndim != 1 or array.size == 0:
        raise CodynError(f"losses must be a non-empty 1-D array, got shape {array.shape}")
    return array[None, :]


def _fraction(value: float, name: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise CodynError(f"{name} must be a number in (0, 1), got {value!r}") from None
    if not 0.0 < number < 1.0:  # also refuses NaN
        raise CodynError(f"{name} must be in (0, 1), got {value}")
    return number


def _unit(
    matrix: FloatArray, max_loss: float, low: float, high: float, *, rows: bool = False
) -> tuple[FloatArray, float]:
    """Rows of losses mapped to ``[0, 1]`` and the level there, after checking every input."""
    if not (math.isfinite(low) and math.isfinite(high) and low < high):
        raise CodynError(f"the loss range needs finite low < high, got [{low}, {high}]")
    if not (math.isfinite(max_loss) and low < max_loss < high):
        raise CodynError(f"max_loss must lie strictly inside ({low:g}, {high:g}), got {max_loss}")
    width = high - low
    slack = _RANGE_SLACK * width
    for bad, what in (
        (np.isnan(matrix), "NaN"),
        ((matrix < low - slack) | (matrix > high + slack), f"value outside [{low:g}, {high:g}]"),
    ):
        if bad.any():
            row, col = (int(i) for i in np.argwhere(bad)[0])
            where = f"row {row} (knob), prompt {col}" if rows else f"index {col}"
            raise CodynError(f"losses {where}: {what} ({matrix[row, col]:g})")
    x = np.clip((matrix - low) / width, 0.0, 1.0)
    return x, (max_loss - low) / width
