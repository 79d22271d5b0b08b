"""Latency and throughput of a featuriser alone (the embedding part of a routing decision)."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

from codyn.bench.timing import time_calls
from codyn.features.base import Featuriser


def bench_featuriser(
    featuriser: Featuriser,
    texts: Sequence[str],
    n_warmup: int = 20,
    n: int = 200,
    *,
    batch_size: int = 256,
    threads: int | None = None,
) -> dict[str, Any]:
    """`time_calls` on ``featuriser.transform``.

    ``threads`` sets torch's intra-op threads for the timed part when the featuriser uses
    torch (``1`` models a single-core serving worker); torch is never imported just for that.
    """
    torch = sys.modules.get("torch")
    previous = torch.get_num_threads() if torch is not None else None
    if torch is not None and threads is not None:
        torch.set_num_threads(threads)
    try:
        return time_calls(featuriser.transform, texts, n_warmup, n, batch_size=batch_size)
    finally:
        if torch is not None and previous is not None:
            torch.set_num_threads(previous)
