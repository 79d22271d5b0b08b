"""Decision latency and throughput of a fitted router, the way a proxy would call it.

One prompt at a time (featurising included) after a warm-up, for the p50 / p99 a user waits,
and batched for the prompts per second a backfill or an evaluation gets. A decision is the
router's prediction plus the policy's choice on it, through `codyn.policy.decide`. The on-disk
embedding cache is off meanwhile: the batched pass repeats its prompts, and would otherwise
time cache reads instead of the featuriser.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from codyn.bench.timing import time_calls
from codyn.policy import Policy, UtilityPolicy, decide
from codyn.routers.base import Router
from codyn.routers.embedding import CACHE_SWITCH


def bench_router(
    router: Router,
    texts: Sequence[str],
    n_warmup: int = 20,
    n: int = 200,
    *,
    batch_size: int = 256,
    model_costs: ArrayLike | None = None,
    policy: Policy | None = None,
    knob: float | None = None,
) -> dict[str, Any]:
    """`time_calls` on one decision: the router's prediction and ``policy``'s choice (default
    `UtilityPolicy`) at ``knob`` (default: the policy's; ``model_costs`` default to 1)."""
    costs = np.ones(len(router.model_names_)) if model_costs is None else model_costs
    rule = UtilityPolicy() if policy is None else policy

    def one_decision(batch: list[str]) -> None:
        predicted, difficulty = router.predict_with_difficulty(batch)
        decide(predicted, costs, rule.with_difficulty(difficulty), knob)

    with _embedding_cache_off():
        return time_calls(one_decision, texts, n_warmup, n, batch_size=batch_size)


@contextmanager
def _embedding_cache_off() -> Iterator[None]:
    before = os.environ.get(CACHE_SWITCH)
    os.environ[CACHE_SWITCH] = "off"
    try:
        yield
    finally:
        if before is None:
            del os.environ[CACHE_SWITCH]
        else:
            os.environ[CACHE_SWITCH] = before
