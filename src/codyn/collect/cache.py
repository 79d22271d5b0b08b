"""The response cache: a model's answer to the same request is paid for once.

A SQLite file under `codyn.features.base.cache_dir()` (``collect/responses.sqlite``), shared by
every collection on the machine (WAL, so several processes may read and write it). The key
is a hash of what determines the answer: the model's endpoint (LiteLLM model string and
``api_base``), the messages, temperature, max_tokens and the sample index (so the k samples
of one prompt are k entries, and sample 0 at temperature 0 is the same entry whatever k).
Prices are not in it: cost is computed from the cached token counts at the current price.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from pathlib import Path

from codyn.catalog import CatalogModel
from codyn.collect.calls import Call
from codyn.errors import CodynError

SCHEMA = """
CREATE TABLE IF NOT EXISTS responses (
    key TEXT PRIMARY KEY,
    model TEXT NOT NULL,
    text TEXT NOT NULL,
    tokens_in INTEGER,
    tokens_out INTEGER,
    latency_s REAL NOT NULL,
    created_at REAL NOT NULL
)
"""


def default_path() -> Path:
    from codyn.features.base import cache_dir

    return cache_dir() / "collect" / "responses.sqlite"


def cache_key(
    model: CatalogModel,
    messages: list[dict[str, str]],
    temperature: float,
    max_tokens: int,
    sample: int,
) -> str:
    """sha256 of the request as the backend sees it, plus the sample index."""
    request = {
        "model": model.litellm_model,
        "api_base": model.api_base,
        "messages": messages,
        "temperature": float(temperature),
        "max_tokens": int(max_tokens),
        "sample": int(sample),
    }
    return hashlib.sha256(json.dumps(request, sort_keys=True).encode("utf-8")).hexdigest()


class ResponseCache:
    """Thread-safe get/put of `Call` results by `cache_key`."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or default_path()
        self._lock = threading.Lock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, check_same_thread=False, timeout=30.0)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute(SCHEMA)
            self._db.commit()
        except (OSError, sqlite3.Error) as exc:
            raise CodynError(
                f"cannot open the response cache {self.path} ({exc}); pass --no-cache, or set "
                "CODYN_CACHE_DIR to a writable folder"
            ) from None

    def get(self, key: str) -> Call | None:
        with self._lock:
            row = self._db.execute(
                "SELECT text, tokens_in, tokens_out, latency_s FROM responses WHERE key = ?",
                (key,),
            ).fetchone()
        return None if row is None else Call(row[0], row[1], row[2], row[3])

    def put(self, key: str, model: str, call: Call) -> None:
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO responses VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    key,
                    model,
                    call.text,
                    call.tokens_in,
                    call.tokens_out,
                    call.latency_s,
                    time.time(),
                ),
            )
            self._db.commit()

    def close(self) -> None:
        with self._lock:
            self._db.close()
