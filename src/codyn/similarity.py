"""Benchmark-dataset similarity and contamination checks (RouteLLM, appendices B and C).

RouteLLM (Ong et al.) embeds the training prompts and the benchmark prompts and compares them by
cosine similarity:

* **Appendix C** (benchmark-dataset similarity): ``S(B, D) = 1/n sum_i max_j cos(b_i, d_j)``,
  the mean over benchmark prompts of the best cosine to any training prompt. A higher score means
  the benchmark is better represented in the training data (their Table 5).
* **Appendix B** (data contamination): a benchmark prompt whose best training match has cosine
  at or above 0.95 is contaminated and is dropped before reporting results.

RouteLLM used OpenAI's ``text-embedding-3-small``; here any codyn featuriser embeds the texts
(``static`` by default, fast; ``minilm`` for the exact MiniLM sentence embeddings).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from codyn.data.routing import RoutingData
from codyn.errors import DataError
from codyn.features.base import featuriser_from_config, l2_normalise

CONTAMINATION_THRESHOLD = 0.95
"""RouteLLM appendix B's cosine cut-off for a contaminated benchmark prompt."""

DEFAULT_FEATURISER = "static"
_CHUNK_BYTES = 64 * 2**20
"""Upper bound on one block of the benchmark x train cosine matrix (float32)."""
_ROUNDING = 1e-6
"""float32 slack: an exact duplicate's cosine can come out as 0.9999999, still >= threshold 1."""


def _unit_rows(x: np.ndarray, name: str) -> np.ndarray:
    """A float32 copy of a 2-D embedding matrix with unit-length rows (zero rows stay zero)."""
    a = np.asarray(x, dtype=np.float64)
    if a.ndim != 2:
        raise DataError(f"{name} embeddings must be a 2-D array, got shape {a.shape}")
    if a.shape[0] == 0:
        raise DataError(f"{name} embeddings are empty: need at least one prompt")
    if not np.isfinite(a).all():
        raise DataError(f"{name} embeddings contain NaN or infinite values")
    return l2_normalise(a.copy()).astype(np.float32)


def best_matches(
    train_embeddings: np.ndarray, bench_embeddings: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """For every benchmark row, the index of its most similar training row and that cosine.

    Rows are L2-normalised first; the cosine matrix is computed in blocks of benchmark rows so
    that large pairs (e.g. 14k MMLU x 10k train) stay within a few tens of MiB.
    """
    train = _unit_rows(train_embeddings, "train")
    bench = _unit_rows(bench_embeddings, "benchmark")
    if train.shape[1] != bench.shape[1]:
        raise DataError(
            f"embedding widths differ: train {train.shape[1]}, benchmark {bench.shape[1]}"
        )
    chunk = max(1, _CHUNK_BYTES // (4 * train.shape[0]))
    index = np.empty(bench.shape[0], dtype=np.int64)
    cosine = np.empty(bench.shape[0], dtype=np.float64)
    for start in range(0, bench.shape[0], chunk):
        block = bench[start : start + chunk] @ train.T
        best = block.argmax(axis=1)
        index[start : start + chunk] = best
        cosine[start : start + chunk] = block[np.arange(block.shape[0]), best]
    np.clip(cosine, -1.0, 1.0, out=cosine)  # float32 rounding can give 1.0000001
    return index, cosine


def benchmark_similarity(train_embeddings: np.ndarray, bench_embeddings: np.ndarray) -> float:
    """RouteLLM's benchmark-dataset similarity score (app. C, eq. 14): the mean over benchmark
    prompts of the maximum cosine similarity to any training prompt, in [-1, 1]."""
    _, cosine = best_matches(train_embeddings, bench_embeddings)
    return float(cosine.mean())


def near_duplicates(
    train_embeddings: np.ndarray,
    bench_embeddings: np.ndarray,
    threshold: float = CONTAMINATION_THRESHOLD,
) -> list[tuple[int, int, float]]:
    """Contaminated benchmark prompts (RouteLLM app. B): ``(bench_index, train_index, cosine)``
    for each benchmark prompt whose best training match has cosine >= ``threshold`` (less 1e-6
    of float32 slack), in benchmark order."""
    if not -1.0 <= threshold <= 1.0:
        raise DataError(f"threshold must be a cosine in [-1, 1], got {threshold}")
    index, cosine = best_matches(train_embeddings, bench_embeddings)
    hits = np.flatnonzero(cosine >= threshold - _ROUNDING)
    return [(int(i), int(index[i]), float(cosine[i])) for i in hits]


def embed_texts(
    train_texts: Sequence[str],
    bench_texts: Sequence[str],
    featuriser: str = DEFAULT_FEATURISER,
) -> tuple[np.ndarray, np.ndarray]:
    """Embed both sides with one featuriser, fitted on the training texts only."""
    if not train_texts or not bench_texts:
        raise DataError("need at least one training and one benchmark prompt")
    feat = featuriser_from_config({"name": featuriser})
    feat.fit(list(train_texts))
    return feat.transform(list(train_texts)), feat.transform(list(bench_texts))


def drop_contaminated(
    bench: RoutingData,
    pairs: Sequence[tuple[int, int, float]],
    threshold: float,
    train_label: str = "the training data",
) -> RoutingData:
    """``bench`` without the benchmark rows named in ``pairs``, with a note saying why."""
    flagged = {b for b, _, _ in pairs}
    keep = [i for i in range(bench.n_prompts) if i not in flagged]
    if not keep:
        raise DataError("every benchmark prompt is contaminated: nothing would be left to write")
    out = bench.take(keep)
    out.notes.append(
        f"dropped {len(flagged)} prompt(s) with cosine >= {threshold:g} to a prompt in "
        f"{train_label} (contamination check, RouteLLM app. B)"
    )
    return out
