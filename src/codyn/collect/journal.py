"""The collection journal: every finished job on disk the moment it finishes, so a run killed
at any point (``kill -9`` included) resumes without losing or repeating a finished call.

A SQLite file next to the output (``OUT.parquet.journal``), in WAL mode: each write is one
committed transaction, and a committed transaction survives the process dying (only a power
cut can lose the last ones, with ``synchronous=NORMAL``). One row per (task, model, sample)::

    jobs(task_id, model, sample,            -- the job (primary key)
         status,                            -- 'called' | 'scored' | 'failed'
         response, tokens_in, tokens_out, latency_s, cached, attempts, error,   -- the call
         score, visible, executions, outcomes, score_error,                      -- its score
         finished_at)
    meta(key, value)                        -- what the run was: kept to refuse a mismatch

A call is committed as ``called`` as soon as its answer arrives and updated to ``scored`` when
scoring ends, so a kill while the sandbox runs repeats the scoring, never the paid call. A
``failed`` call (retries used up, or a 4xx) is tried again by ``--resume``. An exclusive
``flock`` on the file keeps two processes from writing one journal.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import math
import os
import sqlite3
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from codyn.collect.calls import Call
from codyn.collect.kinds import CellScore
from codyn.errors import CodynError

FORMAT = "1"

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS jobs (
    task_id TEXT NOT NULL,
    model TEXT NOT NULL,
    sample INTEGER NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('called', 'scored', 'failed')),
    response TEXT,
    tokens_in INTEGER,
    tokens_out INTEGER,
    latency_s REAL,
    cached INTEGER NOT NULL DEFAULT 0,
    attempts INTEGER NOT NULL DEFAULT 0,
    error TEXT,
    score REAL,
    visible REAL,
    executions INTEGER NOT NULL DEFAULT 0,
    outcomes TEXT,
    score_error TEXT,
    finished_at REAL NOT NULL,
    PRIMARY KEY (task_id, model, sample)
);
"""

JobKey = tuple[str, str, int]
"""(task id, model name, sample index)."""

DESCRIBE = {
    "mode": "was written by `codyn {stored}`, not `codyn {given}`",
    "tasks": "was written for another task file (or the file changed since: its sha256 differs)",
    "data": "was written for another data file (or the file changed since: its sha256 differs)",
    "models": "was written for models {stored}; this run has {given}",
    "samples": "was written with --samples {stored}; this run has {given}",
    "temperature": "was written with --temperature {stored}; this run has {given}",
    "max_tokens": "was written with --max-tokens {stored}; this run has {given}",
}


@dataclass(frozen=True)
class JournalRow:
    """One job as the journal holds it."""

    status: str
    response: str | None = None
    tokens_in: int | None = None
    tokens_out: int | None = None
    latency_s: float | None = None
    cached: bool = False
    attempts: int = 0
    error: str | None = None
    score: float | None = None
    visible: float | None = None
    executions: int = 0
    outcomes: list[dict[str, Any]] | None = None
    score_error: str | None = None


def journal_path(output: Path) -> Path:
    """Where the journal of a run writing ``output`` lives."""
    return output.with_name(output.name + ".journal")


class Journal:
    """Open with `Journal.open`; every ``record_*`` is one committed transaction."""

    def __init__(self, path: Path, db: sqlite3.Connection, lock_fd: int) -> None:
        self.path, self._db, self._lock_fd = path, db, lock_fd
        self._lock = threading.Lock()

    @classmethod
    def open(cls, path: Path, meta: Mapping[str, Any], *, resume: bool) -> Journal:
        """The journal at ``path``: new, or (``resume``) the existing one after checking it was
        written for the same run (``meta``); anything else is a one-line `CodynError`."""
        existed = path.exists()
        if existed and not resume:
            raise CodynError(f"{path} exists: pass --resume, or delete it")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(path, check_same_thread=False, timeout=30.0)
            lock_fd = os.open(path, os.O_RDWR)
        except (OSError, sqlite3.Error) as exc:
            raise CodynError(f"cannot open the journal {path} ({exc})") from None
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            db.close()
            os.close(lock_fd)
            raise CodynError(f"{path} is in use by another codyn process") from None
        journal = cls(path, db, lock_fd)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            found = db.execute("SELECT 1 FROM sqlite_master WHERE name = 'meta'").fetchone()
            if found:
                journal._check(meta)
            else:  # new, or killed before its first commit: nothing was recorded
                journal._create(meta)
        except sqlite3.DatabaseError as exc:
            journal.close()
            raise CodynError(f"{path} is not a codyn journal ({exc}); delete it") from None
        except CodynError:
            journal.close()
            raise
        return journal

    def _create(self, meta: Mapping[str, Any]) -> None:
        """Tables and meta in one transaction: a journal is whole or has nothing."""
        self._db.execute("BEGIN")
        for statement in filter(str.strip, SCHEMA.split(";")):
            self._db.execute(statement)
        self._db.executemany(
            "INSERT INTO meta VALUES (?, ?)",
            [(k, json.dumps(v)) for k, v in {"format": FORMAT, **meta}.items()],
        )
        self._db.commit()

    def _check(self, meta: Mapping[str, Any]) -> None:
        stored = {k: json.loads(v) for k, v in self._db.execute("SELECT key, value FROM meta")}
        if stored.get("format") != FORMAT:
            raise CodynError(
                f"{self.path} has journal format {stored.get('format')!r}, this codyn writes "
                f"{FORMAT!r}; delete it"
            )
        for key, given in meta.items():
            if stored.get(key) != given:
                reason = DESCRIBE.get(key, "was written with another " + key + " ({stored})")
                shown = reason.format(stored=_shown(stored.get(key)), given=_shown(given))
                raise CodynError(f"{self.path} {shown}: rerun with the same inputs, or delete it")

    def rows(self) -> dict[JobKey, JournalRow]:
        """Every job recorded so far."""
        with self._lock:
            cursor = self._db.execute(
                "SELECT task_id, model, sample, status, response, tokens_in, tokens_out, "
                "latency_s, cached, attempts, error, score, visible, executions, outcomes, "
                "score_error FROM jobs"
            )
            found = cursor.fetchall()
        return {
            (r[0], r[1], int(r[2])): JournalRow(
                status=r[3],
                response=r[4],
                tokens_in=r[5],
                tokens_out=r[6],
                latency_s=r[7],
                cached=bool(r[8]),
                attempts=int(r[9]),
                error=r[10],
                score=r[11],
                visible=r[12],
                executions=int(r[13]),
                outcomes=None if r[14] is None else json.loads(r[14]),
                score_error=r[15],
            )
            for r in found
        }

    def record_call(self, key: JobKey, call: Call, *, cached: bool, attempts: int) -> None:
        """An answer arrived (not scored yet)."""
        self._write(
            "INSERT OR REPLACE INTO jobs (task_id, model, sample, status, response, tokens_in, "
            "tokens_out, latency_s, cached, attempts, finished_at) "
            "VALUES (?, ?, ?, 'called', ?, ?, ?, ?, ?, ?, ?)",
            (
                *key,
                call.text,
                call.tokens_in,
                call.tokens_out,
                call.latency_s,
                int(cached),
                attempts,
                time.time(),
            ),
        )

    def record_failure(self, key: JobKey, error: str, *, attempts: int) -> None:
        """A call that gave up (``--resume`` tries it again)."""
        self._write(
            "INSERT OR REPLACE INTO jobs (task_id, model, sample, status, attempts, error, "
            "finished_at) VALUES (?, ?, ?, 'failed', ?, ?, ?)",
            (*key, attempts, error, time.time()),
        )

    def record_score(self, key: JobKey, score: CellScore, response: str | None = None) -> None:
        """Scoring of a recorded answer ended (or, with ``response``, of an answer that came
        from elsewhere: `codyn score` re-scoring stored responses)."""
        values = (
            _number(score.score),
            _number(score.visible),
            int(score.executions),
            json.dumps(score.outcomes, default=str),
            score.error,
            time.time(),
        )
        self._write(
            "INSERT INTO jobs (task_id, model, sample, status, response, score, visible, "
            "executions, outcomes, score_error, finished_at) "
            "VALUES (?, ?, ?, 'scored', ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (task_id, model, sample) DO UPDATE SET status = 'scored', "
            "score = excluded.score, visible = excluded.visible, "
            "executions = excluded.executions, outcomes = excluded.outcomes, "
            "score_error = excluded.score_error, finished_at = excluded.finished_at",
            (*key, response, *values),
        )

    def _write(self, sql: str, params: tuple[Any, ...]) -> None:
        with self._lock, self._db:
            self._db.execute(sql, params)

    def close(self) -> None:
        """Close the database, then release the lock (closing a descriptor of the file drops
        this process's POSIX locks on it, SQLite's too: so the lock's descriptor goes last)."""
        with self._lock:
            with contextlib.suppress(sqlite3.Error):
                self._db.close()
            if self._lock_fd >= 0:
                os.close(self._lock_fd)
                self._lock_fd = -1

    def remove(self) -> None:
        """Close and delete the journal (with SQLite's -wal and -shm files)."""
        self.close()
        for suffix in ("", "-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                Path(str(self.path) + suffix).unlink()


def _number(value: float | None) -> float | None:
    return None if value is None or math.isnan(value) else float(value)


def _shown(value: Any) -> str:
    if isinstance(value, list):
        return ", ".join(str(v) for v in value) or "(none)"
    return str(value)
