"""On-disk embedding cache: one SQLite file, key = sha1(featuriser config, text).

Training and evaluating many routers re-embeds the same prompts again and again; with MiniLM
that is minutes each time. SQLite in WAL mode lets several processes read while one writes, needs
no server, and survives crashes. Keys include the featuriser's full config (and so its fitted
state digest), so two featurisers, or two fits of one, never share entries.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Iterator, Mapping, Sequence
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any, Self

import numpy as np

from codyn.features.base import Featuriser, TruncationStats, cache_dir, config_digest

_BATCH = 500
"""Keys per SELECT: below SQLite's bound-parameter limit on every build."""


def default_cache_path() -> Path:
    """``<cache_dir()>/embeddings.sqlite``."""
    return cache_dir() / "embeddings.sqlite"


def cache_key(config: Mapping[str, Any], text: str) -> bytes:
    """sha1 over the featuriser's canonical config digest and the raw (unclipped) text."""
    return hashlib.sha1(f"{config_digest(config)}\0{text}".encode()).digest()


class EmbeddingCache:
    """Maps cache keys to float32 vectors in one SQLite file; safe for concurrent processes."""

    def __init__(self, path: str | Path | None = None, *, timeout_s: float = 30.0) -> None:
        self.path = Path(path) if path is not None else default_cache_path()
        self.timeout_s = timeout_s
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute(
                "CREATE TABLE IF NOT EXISTS vectors "
                "(key BLOB PRIMARY KEY, dim INTEGER NOT NULL, data BLOB NOT NULL) WITHOUT ROWID"
            )

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        """A short-lived connection per operation: no sharing across threads or forks."""
        with closing(sqlite3.connect(self.path, timeout=self.timeout_s)) as db, db:
            yield db

    def get_many(self, keys: Sequence[bytes]) -> dict[bytes, np.ndarray]:
        """The cached vectors among ``keys`` (missing keys are simply absent)."""
        found: dict[bytes, np.ndarray] = {}
        with self._connect() as db:
            for start in range(0, len(keys), _BATCH):
                chunk = list(keys[start : start + _BATCH])
                marks = ",".join("?" * len(chunk))
                rows = db.execute(
                    f"SELECT key, dim, data FROM vectors WHERE key IN ({marks})", chunk
                )
                for key, dim, data in rows:
                    found[key] = np.frombuffer(data, dtype=np.float32, count=dim)
        return found

    def put_many(self, items: Mapping[bytes, np.ndarray]) -> None:
        """Store vectors as float32; a key already present keeps its first value."""
        rows = [
            (key, int(vec.size), np.ascontiguousarray(vec, dtype=np.float32).tobytes())
            for key, vec in items.items()
        ]
        with self._connect() as db:
            db.executemany("INSERT OR IGNORE INTO vectors (key, dim, data) VALUES (?, ?, ?)", rows)

    def __len__(self) -> int:
        with self._connect() as db:
            return int(db.execute("SELECT COUNT(*) FROM vectors").fetchone()[0])


class CachedFeaturiser:
    """Wraps a featuriser: looks texts up in the cache, computes and stores only the misses.

    Transparent to routers: same name, dim, config and state as the wrapped featuriser. Its
    ``stats`` are the wrapped featuriser's, so they count only the texts actually computed.
    """

    def __init__(self, featuriser: Featuriser, cache: EmbeddingCache | None = None) -> None:
        self.featuriser = featuriser
        self.cache = cache if cache is not None else EmbeddingCache()
        self.hits = 0
        """Texts answered from the cache."""
        self.misses = 0
        """Texts that had to be computed (duplicates within one call are computed once)."""

    @property
    def name(self) -> str:
        return self.featuriser.name

    @property
    def dim(self) -> int:
        return self.featuriser.dim

    @property
    def max_chars(self) -> int | None:
        return self.featuriser.max_chars

    @property
    def stats(self) -> TruncationStats:
        return self.featuriser.stats

    def fit(self, texts: Sequence[str]) -> Self:
        """Fit the wrapped featuriser; a new fit has a new config, hence new cache keys."""
        self.featuriser.fit(texts)
        return self

    def transform(self, texts: Sequence[str]) -> np.ndarray:
        """Same result as the wrapped ``transform``; computes each distinct missing text once."""
        texts = list(texts)
        config = self.featuriser.config()
        keys = [cache_key(config, text) for text in texts]
        found = self.cache.get_many(keys)
        missing = {key: text for key, text in zip(keys, texts, strict=True) if key not in found}
        if missing:
            vectors = self.featuriser.transform(list(missing.values()))
            computed = dict(zip(missing, vectors, strict=True))
            self.cache.put_many(computed)
            found.update(computed)
        served = sum(key not in missing for key in keys)
        self.hits += served
        self.misses += len(keys) - served
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, key in enumerate(keys):
            out[i] = found[key]
        return out

    def config(self) -> dict[str, Any]:
        return self.featuriser.config()

    def state(self) -> dict[str, np.ndarray]:
        return self.featuriser.state()
