"""The timing harness behind `codyn bench`: one-prompt latency, batched throughput, memory.

Routing sits in front of every LLM call, so what a user waits for is one prompt's time after
warm-up (p50 / p99); backfills and evaluations get prompts per second in batches. Numbers
depend on the machine and its load: benchmarks print them, tests never assert on them.
"""

from __future__ import annotations

import resource
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from codyn.errors import CodynError

MIN_BATCHED_S = 0.5
"""The batched pass repeats over the prompts until it has run this long (a stable rate)."""


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MiB (``ru_maxrss`` is KiB on Linux)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def time_calls(
    call: Callable[[list[str]], Any],
    texts: Sequence[str],
    n_warmup: int = 20,
    n: int = 200,
    *,
    batch_size: int = 256,
) -> dict[str, Any]:
    """Time ``n`` one-prompt calls (cycling through ``texts``) after ``n_warmup`` untimed ones,
    then the same prompts in batches of ``batch_size``.

    Returns ``p50_ms``, ``p99_ms``, ``mean_ms`` (one prompt), ``throughput_per_s`` (batched),
    ``rss_mb`` (peak), ``n``, ``n_warmup`` and ``batch_size``.
    """
    if not texts:
        raise CodynError("benchmarking needs at least one prompt")
    if n < 1 or n_warmup < 0 or batch_size < 1:
        raise CodynError("n and batch_size must be positive, n_warmup non-negative")
    prompts = [texts[i % len(texts)] for i in range(n)]
    for i in range(n_warmup):
        call([texts[i % len(texts)]])
    elapsed = np.empty(n)
    for i, prompt in enumerate(prompts):
        start = time.perf_counter()
        call([prompt])
        elapsed[i] = time.perf_counter() - start
    done, start = 0, time.perf_counter()
    while done == 0 or time.perf_counter() - start < MIN_BATCHED_S:
        for i in range(0, n, batch_size):
            call(prompts[i : i + batch_size])
        done += n
    batched = time.perf_counter() - start
    ms = elapsed * 1000.0
    return {
        "p50_ms": float(np.percentile(ms, 50)),
        "p99_ms": float(np.percentile(ms, 99)),
        "mean_ms": float(ms.mean()),
        "throughput_per_s": done / batched,
        "rss_mb": peak_rss_mb(),
        "n": n,
        "n_warmup": n_warmup,
        "batch_size": batch_size,
    }
