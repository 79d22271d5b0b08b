"""TF-IDF over word and punctuation n-grams, fitted on a router's training prompts.

A cheap lexical featuriser that needs no pretrained model: it sees the exact identifiers,
keywords and operators of code prompts, which a general sentence encoder blurs, and next to the
static embedding it recovered MiniLM's kNN routing quality. By default the rows are projected on
their top 256 singular directions (LSA): as good for kNN routing as the raw 4096 columns on our
benchmarks, and a 16x smaller, faster index. The fitted state is plain arrays (terms in column
order, idf weights, SVD components), saved without pickle.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Self

import numpy as np

from codyn.errors import NotFittedError
from codyn.features.base import (
    DEFAULT_MAX_CHARS,
    ClippingFeaturiser,
    FeaturiserError,
    arrays_digest,
    l2_normalise,
    register_featuriser,
)

TOKEN_PATTERN = r"(?u)\b\w+\b|[^\w\s]"
"""Words (single letters too) and each punctuation character: ``x``, ``==`` and ``(`` matter in
code, and scikit-learn's default pattern drops them."""


@register_featuriser("tfidf")
class TfidfFeaturiser(ClippingFeaturiser):
    """L2-normalised TF-IDF rows (sublinear tf) over up to ``max_features`` n-grams, projected
    on ``svd_dims`` singular directions (``None``: the raw columns), dense float32."""

    def __init__(
        self,
        *,
        max_features: int = 4096,
        ngram_max: int = 2,
        min_df: int = 2,
        svd_dims: int | None = 256,
        seed: int = 0,
        max_chars: int | None = DEFAULT_MAX_CHARS,
    ) -> None:
        self.max_features = max_features
        self.ngram_max = ngram_max
        self.min_df = min_df
        self.svd_dims = svd_dims
        self.seed = seed
        super().__init__(max_chars)
        self._vectorizer: Any = None
        self._components: np.ndarray | None = None
        self._state_sha1: str | None = None

    def _new_vectorizer(self, vocabulary: Sequence[str] | None = None) -> Any:
        try:
            from sklearn.feature_extraction.text import TfidfVectorizer
        except ImportError as exc:
            raise FeaturiserError(
                "the TF-IDF featuriser needs scikit-learn: pip install scikit-learn"
            ) from exc
        return TfidfVectorizer(
            lowercase=True,
            token_pattern=TOKEN_PATTERN,
            ngram_range=(1, self.ngram_max),
            min_df=1 if vocabulary is not None else self.min_df,
            max_features=None if vocabulary is not None else self.max_features,
            sublinear_tf=True,
            dtype=np.float32,
            vocabulary=vocabulary,
        )

    @property
    def fitted(self) -> bool:
        return self._vectorizer is not None

    @property
    def dim(self) -> int:
        vectorizer = self._require_fitted()
        if self._components is not None:
            return int(self._components.shape[0])
        return len(vectorizer.vocabulary_)

    def _require_fitted(self) -> Any:
        if self._vectorizer is None:
            raise NotFittedError("the TF-IDF featuriser is not fitted: call fit(texts) first")
        return self._vectorizer

    def fit(self, texts: Sequence[str]) -> Self:
        """Learn vocabulary, idf and (with ``svd_dims``) the SVD from the training prompts.

        The SVD keeps at most ``min(svd_dims, terms - 1, texts - 1)`` directions, so tiny
        training sets still fit (``dim`` tells the result).
        """
        clipped = self._clip(texts)
        vectorizer = self._new_vectorizer()
        try:
            matrix = vectorizer.fit_transform(clipped)
        except ValueError as exc:  # empty vocabulary: too few or too short texts for min_df
            raise FeaturiserError(f"cannot fit TF-IDF: {exc}") from exc
        components = None
        if self.svd_dims is not None:
            from sklearn.decomposition import TruncatedSVD

            k = min(self.svd_dims, matrix.shape[1] - 1, matrix.shape[0] - 1)
            if k < 1:
                raise FeaturiserError(
                    f"cannot fit a {self.svd_dims}-d SVD on a {matrix.shape} TF-IDF matrix: "
                    "too few prompts or terms (use svd_dims=None)"
                )
            svd = TruncatedSVD(n_components=k, random_state=self.seed).fit(matrix)
            components = svd.components_.astype(np.float32)
        self._set_fitted(vectorizer, components)
        return self

    def _set_fitted(self, vectorizer: Any, components: np.ndarray | None) -> None:
        self._vectorizer = vectorizer
        self._components = components
        self._state_sha1 = arrays_digest(self.state())

    def transform(self, texts: Sequence[str]) -> np.ndarray:
        """``(n, dim)`` float32; unseen terms are ignored, so an all-new prompt gives a zero row."""
        vectorizer = self._require_fitted()
        clipped = self._clip(texts)
        matrix = vectorizer.transform(clipped)
        if self._components is None:
            return np.asarray(matrix.toarray(), dtype=np.float32)
        return l2_normalise(np.asarray(matrix @ self._components.T, dtype=np.float32))

    def config(self) -> dict[str, Any]:
        """Parameters, plus a digest of the fitted state so caches never mix two fits."""
        config: dict[str, Any] = {
            "name": self.name,
            "max_features": self.max_features,
            "ngram_max": self.ngram_max,
            "min_df": self.min_df,
            "svd_dims": self.svd_dims,
            "seed": self.seed,
            "token_pattern": TOKEN_PATTERN,
            "max_chars": self._max_chars,
        }
        if self._state_sha1 is not None:
            config["state_sha1"] = self._state_sha1
        return config

    def state(self) -> dict[str, np.ndarray]:
        """Terms in column order (a unicode array, loadable without pickle), idf weights and,
        with an SVD, its components (``dim x terms``)."""
        if self._vectorizer is None:
            return {}
        terms = self._vectorizer.get_feature_names_out()
        state = {
            "vocabulary": np.asarray(terms.tolist(), dtype=np.str_),
            "idf": np.asarray(self._vectorizer.idf_, dtype=np.float64),
        }
        if self._components is not None:
            state["svd_components"] = self._components
        return state

    @classmethod
    def from_config(cls, config: dict[str, Any], state: dict[str, np.ndarray]) -> Self:
        """Rebuild; a fitted config needs its state, and the state must match its digest."""
        if config.get("token_pattern", TOKEN_PATTERN) != TOKEN_PATTERN:
            raise FeaturiserError("TF-IDF config was saved with a different token pattern")
        defaults = cls()
        featuriser = cls(
            max_features=int(config.get("max_features", defaults.max_features)),
            ngram_max=int(config.get("ngram_max", defaults.ngram_max)),
            min_df=int(config.get("min_df", defaults.min_df)),
            svd_dims=config.get("svd_dims", defaults.svd_dims),
            seed=int(config.get("seed", defaults.seed)),
            max_chars=config.get("max_chars", DEFAULT_MAX_CHARS),
        )
        if "vocabulary" in state:
            vectorizer = featuriser._new_vectorizer(vocabulary=state["vocabulary"].tolist())
            vectorizer.idf_ = np.asarray(state["idf"], dtype=np.float64)
            components = state.get("svd_components")
            featuriser._set_fitted(
                vectorizer, None if components is None else components.astype(np.float32)
            )
            if config.get("state_sha1", featuriser._state_sha1) != featuriser._state_sha1:
                raise FeaturiserError("TF-IDF state does not match its config (state_sha1 differs)")
        elif "state_sha1" in config:
            raise FeaturiserError("TF-IDF config is of a fitted featuriser but no state was given")
        return featuriser
