"""Latency and throughput of a featuriser, as ``codyn bench`` reports them.

Routing sits in front of every LLM call, so what matters is the time to featurise one prompt
(p50 and p99 after warm-up) and, for offline training and evaluation, prompts per second in
batches. Not a test: numbers depend on the machine and its load.
"""

from __future__ import annotations

import os
import resource
import sys
import time
from collections.abc import Sequence

import numpy as np

from codyn.features.base import Featuriser


def _rss_mb() -> float:
    """Resident set size of this process now (Linux ``/proc``), else the peak so far."""
    try:
        with open("/proc/self/statm") as fh:
            pages = int(fh.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return _peak_rss_mb()


def _peak_rss_mb() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10


def bench_featuriser(
    featuriser: Featuriser,
    texts: Sequence[str],
    n_warmup: int = 20,
    n: int = 200,
    *,
    batch_size: int = 256,
    threads: int | None = None,
) -> dict[str, float]:
    """Time ``n`` one-prompt calls (after ``n_warmup``) and one batched pass over ``texts``.

    Prompts are taken from ``texts`` in order, cycling. ``threads`` sets torch's intra-op
    threads for the timed part when the featuriser uses torch (``1`` models a single-core
    serving worker); torch is never imported just for that. Returns milliseconds, prompts per
    second and megabytes.
    """
    texts = list(texts)
    if not texts:
        raise ValueError("bench_featuriser needs at least one text")
    for i in range(n_warmup):
        featuriser.transform([texts[i % len(texts)]])
    featuriser.transform(texts[:batch_size])
    torch = sys.modules.get("torch")
    previous_threads = torch.get_num_threads() if torch is not None else None
    if torch is not None and threads is not None:
        torch.set_num_threads(threads)
    try:
        latencies = np.empty(n, dtype=np.float64)
        for i in range(n):
            text = [texts[i % len(texts)]]
            start = time.perf_counter()
            featuriser.transform(text)
            latencies[i] = time.perf_counter() - start
        start = time.perf_counter()
        for offset in range(0, len(texts), batch_size):
            featuriser.transform(texts[offset : offset + batch_size])
        batched_s = time.perf_counter() - start
    finally:
        if torch is not None and previous_threads is not None:
            torch.set_num_threads(previous_threads)
    return {
        "p50_ms": float(np.percentile(latencies, 50) * 1e3) if n else float("nan"),
        "p99_ms": float(np.percentile(latencies, 99) * 1e3) if n else float("nan"),
        "mean_ms": float(latencies.mean() * 1e3) if n else float("nan"),
        "throughput_per_s": len(texts) / batched_s if batched_s > 0 else float("inf"),
        "rss_mb": _rss_mb(),
        "peak_rss_mb": _peak_rss_mb(),
        "n": float(n),
        "n_texts": float(len(texts)),
    }
