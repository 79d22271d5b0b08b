"""The decision log: one database row per request, durable before its response, written to
the database off the request path.

With a journal (`codyn.serve.journal`, as the proxy runs it) each row is first appended to a
local file and fsync'd, group-committed with the other requests' rows, and the response waits
only for that; a SIGKILL at any moment then loses no row that a client got an answer for, and
start-up replays what the database lacks. Rows then go to a bounded in-memory buffer; one
writer thread inserts them in batches through SQLAlchemy (SQLite by default, PostgreSQL by
URL). While the database is unreachable the rows wait in the buffer and the writer retries with
backoff; once the buffer is full new rows are counted as dropped (``codyn_log_rows_dropped_total``)
and wait in the journal for the next start rather than slowing or failing requests. A row's
primary key is its request id and inserts skip ids that are already there, so a batch retried
after an ambiguous failure, or a journal replayed twice, is never written twice.
`DecisionLog.close` drains the buffer before returning: a graceful shutdown loses no row.
"""

from __future__ import annotations

import itertools
import json
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    Engine,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    event,
    func,
    inspect,
    select,
    text,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError

from codyn.serve.journal import Journal

FORMAT_VERSION = 3
"""2 adds ``verify`` and ``verify_ms`` to the decisions and the ``codyn_attempts`` table; 3
adds ``usage_estimated``."""
FLUSH_INTERVAL_S = 0.2
"""A row waits at most about this long before it is written: one transaction per interval (or
per full batch) instead of one per request, which a busy proxy would feel."""
logger = logging.getLogger("codyn.serve")

metadata = MetaData()
decisions = Table(
    "codyn_decisions",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("created_at", DateTime(timezone=True), nullable=False, index=True),
    Column("format_version", Integer, nullable=False),
    Column("key_name", String(200)),
    Column("requested", String(300)),
    Column("route", String(200), index=True),
    Column("chosen", String(200)),
    Column("model", String(200)),
    Column("predicted", Text),
    Column("knob", Float),
    Column("sticky", Boolean, nullable=False),
    Column("decision_ms", Float),
    Column("tokens_in", Integer),
    Column("tokens_out", Integer),
    Column("cost_usd", Float),
    Column("strongest_cost_usd", Float),
    Column("latency_ms", Float),
    Column("backend_ms", Float),
    Column("fallback", Boolean, nullable=False),
    Column("attempts", Text),
    Column("status", Integer, nullable=False, index=True),
    Column("error", Text),
    Column("stream", Boolean, nullable=False),
    Column("conversation", String(200)),
    Column("verify", String(20), index=True),
    Column("verify_ms", Float),
    Column("usage_estimated", Boolean),
)
attempts = Table(
    "codyn_attempts",
    metadata,
    Column("request_id", String(36), primary_key=True),
    Column("n", Integer, primary_key=True),
    Column("created_at", DateTime(timezone=True), nullable=False, index=True),
    Column("route", String(200)),
    Column("model", String(200), nullable=False),
    Column("outcome", String(20), nullable=False),
    Column("passed", Integer),
    Column("tests", Integer),
    Column("tokens_in", Integer),
    Column("tokens_out", Integer),
    Column("cost_usd", Float),
    Column("backend_ms", Float),
    Column("verify_ms", Float),
    Column("error", Text),
)
"""One row per answer a request asked for (verified attempts and failed fallbacks alike),
keyed by the request's id and the attempt's number: what each call cost and what its check
said."""
ADDED_COLUMNS = {"verify": "VARCHAR(20)", "verify_ms": "FLOAT", "usage_estimated": "BOOLEAN"}
"""Columns of formats 2 and 3 that an older decisions table gets on connect (all nullable)."""


@dataclass
class DecisionRow:
    """What one request did; `DecisionLog.put` takes it as it stands at the end."""

    id: str
    requested: str | None = None
    key_name: str | None = None
    route: str | None = None
    chosen: str | None = None
    """The policy's first choice."""
    model: str | None = None
    """The model that answered (differs from ``chosen`` after a fallback)."""
    predicted: dict[str, float | None] | None = None
    knob: float | None = None
    sticky: bool = False
    decision_ms: float | None = None
    tokens_in: int | None = None
    tokens_out: int | None = None
    cost_usd: float | None = None
    strongest_cost_usd: float | None = None
    """What the route's most expensive model would have cost for the same tokens."""
    latency_ms: float | None = None
    backend_ms: float | None = None
    attempts: list[dict[str, Any]] = field(default_factory=list)
    """Every answer asked for: a failed call ``{"model", "error"}``; with verification also
    each checked answer ``{"model", "outcome", "passed", "tests", "tokens_in", "tokens_out",
    "cost_usd", "backend_ms", "verify_ms"}``. Each is a row of ``codyn_attempts``."""
    status: int = 200
    error: str | None = None
    stream: bool = False
    conversation: str | None = None
    verify: str | None = None
    """``verified``, ``escalated``, ``unresolved`` or ``unverifiable`` (no tests); None when
    the route does not verify (`codyn.serve.verify.VerifiedRun.outcome`)."""
    verify_ms: float | None = None
    """Sandbox time over every checked answer."""
    usage_estimated: bool | None = None
    """The tokens are counted by LiteLLM, not reported by the backend (a stream from a
    server that ignores ``stream_options.include_usage``); None when no tokens are known."""
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def fallback(self) -> bool:
        """A later model of the ranking answered after a failed call."""
        return self.model is not None and any("error" in a for a in self.attempts)

    def attempt_rows(self) -> list[dict[str, Any]]:
        """The ``codyn_attempts`` rows of this request."""
        keys = ("passed", "tests", "tokens_in", "tokens_out", "cost_usd", "backend_ms")
        return [
            {
                "request_id": self.id,
                "n": n,
                "created_at": self.created_at,
                "route": self.route,
                "model": a["model"],
                "outcome": a.get("outcome", "error"),
                **{k: a.get(k) for k in keys},
                "verify_ms": a.get("verify_ms"),
                "error": a.get("error"),
            }
            for n, a in enumerate(self.attempts)
        ]

    def field_values(self) -> dict[str, Any]:
        """Every field by name, unconverted (`dataclasses.asdict` deep-copies them all, a
        tenth of a millisecond a row on the request path)."""
        return {name: getattr(self, name) for name in _ROW_FIELDS}

    def values(self) -> dict[str, Any]:
        values = self.field_values()
        values["predicted"] = None if self.predicted is None else json.dumps(self.predicted)
        values["attempts"] = json.dumps(self.attempts) if self.attempts else None
        values["fallback"] = self.fallback
        values["format_version"] = FORMAT_VERSION
        values["attempt_rows"] = self.attempt_rows()
        return values


_ROW_FIELDS = tuple(f.name for f in fields(DecisionRow))


def make_engine(url: str) -> Engine:
    """An engine that checks connections before use (a restarted PostgreSQL is reconnected);
    SQLite gets WAL so the dashboard reads while the writer writes."""
    engine = create_engine(url, pool_pre_ping=True)
    if engine.dialect.name == "sqlite":

        @event.listens_for(engine, "connect")
        def _wal(connection: Any, _record: Any) -> None:
            cursor = connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA busy_timeout=5000")
            cursor.close()

    return engine


def _insert(engine: Engine) -> Any:
    """INSERT that skips ids already written (SQLite and PostgreSQL both say it natively)."""
    dialect = {"sqlite": sqlite, "postgresql": postgresql}.get(engine.dialect.name)
    if dialect is None:
        raise ValueError(f"decision log supports SQLite and PostgreSQL, not {engine.dialect.name}")
    return dialect.insert(decisions).on_conflict_do_nothing(index_elements=["id"])


def _insert_attempts(engine: Engine) -> Any:
    dialect = {"sqlite": sqlite, "postgresql": postgresql}[engine.dialect.name]
    return dialect.insert(attempts).on_conflict_do_nothing(index_elements=["request_id", "n"])


def create_tables(engine: Engine) -> None:
    """Create the tables, and add format 2's columns to a format-1 decisions table."""
    metadata.create_all(engine)
    present = {c["name"] for c in inspect(engine).get_columns(decisions.name)}
    missing = [name for name in ADDED_COLUMNS if name not in present]
    if missing:
        with engine.begin() as connection:
            for name in missing:
                connection.execute(
                    text(f"ALTER TABLE {decisions.name} ADD COLUMN {name} {ADDED_COLUMNS[name]}")
                )


@dataclass
class LogStats:
    """Counters the metrics endpoint reads."""

    written: int = 0
    dropped: int = 0
    write_errors: int = 0
    replayed: int = 0
    """Rows read back from dead processes' journals at start-up (written or already there)."""
    database_up: bool = False


def _done(value: Any) -> Future[Any]:
    done: Future[Any] = Future()
    done.set_result(value)
    return done


class DecisionLog:
    """Journal, bounded buffer and one writer thread in front of the decisions table.

    ``journal`` is the folder of the journal (None: rows are kept in memory only until
    written). ``on_connect`` runs in the writer thread each time the database becomes
    reachable, after the journal's replay and before any row of this process is written (the
    proxy reloads the keys' spending there).
    """

    def __init__(
        self,
        url: str,
        *,
        capacity: int = 10_000,
        batch: int = 500,
        on_connect: Callable[[Engine], None] | None = None,
        journal: Path | None = None,
    ) -> None:
        self.engine = make_engine(url)
        self.capacity, self.batch = capacity, batch
        self.stats = LogStats()
        self.journal = None if journal is None else Journal(journal)
        self._on_connect = on_connect
        self._rows: deque[dict[str, Any]] = deque()
        self._cond = threading.Condition()
        self._stopping = False
        self._deadline = float("inf")
        self._thread = threading.Thread(target=self._run, name="codyn-decision-log", daemon=True)

    @property
    def buffered(self) -> int:
        return len(self._rows)

    def start(self) -> None:
        if self.journal is not None:
            self.journal.open()
        self._thread.start()

    def begin(self, row: DecisionRow, *, commit: bool = True) -> Future[None]:
        """Journal a request under way: if the proxy dies before its `put`, the next start
        logs it as interrupted. Done once on disk (at once without a journal); with
        ``commit=False``, written with the next record that commits (`Journal.append`)."""
        if self.journal is None:
            return _done(None)
        return self.journal.append("begin", row, commit=commit)

    def put(self, row: DecisionRow) -> Future[bool]:
        """Log a finished row: done once it is in the journal and queued for the database;
        False (and counted) when the buffer was full. Never blocks on the database."""
        values = row.values()
        if self.journal is None:
            return _done(self._queue(values))
        queued: Future[bool] = Future()
        durable = self.journal.append("end", row)
        durable.add_done_callback(lambda _: queued.set_result(self._queue(values)))
        return queued

    def _queue(self, values: dict[str, Any]) -> bool:
        with self._cond:
            if len(self._rows) >= self.capacity:
                self.stats.dropped += 1
                kept = "kept in the journal for the next start" if self.journal else "dropped"
                logger.warning(
                    "decision log buffer full (%d rows): row %s %s",
                    self.capacity,
                    values["id"],
                    kept,
                )
                return False
            self._rows.append(values)
            if len(self._rows) >= self.batch:
                self._cond.notify()
        return True

    def close(self, timeout_s: float = 30.0) -> int:
        """Write every buffered row (waiting up to ``timeout_s`` for the database); returns the
        number of rows that could not be written."""
        with self._cond:
            self._stopping = True
            self._deadline = time.monotonic() + timeout_s
            self._cond.notify()
        if self._thread.is_alive():
            self._thread.join(timeout_s + 10.0)
        left = len(self._rows)
        if left:
            kept = "; the journal keeps them for the next start" if self.journal else ""
            logger.error("decision log: %d row(s) not written at shutdown%s", left, kept)
        if self.journal is not None:
            self.journal.close()
        self.engine.dispose()
        return left

    def _run(self) -> None:
        """Connect (creating the table) at once, then write batches as rows arrive."""
        backoff = 0.2
        connected = False
        next_write = 0.0
        while True:
            with self._cond:
                while (
                    connected
                    and not self._stopping
                    and len(self._rows) < self.batch
                    and (not self._rows or time.monotonic() < next_write)
                ):
                    self._cond.wait(timeout=FLUSH_INTERVAL_S)
                if self._stopping and (not self._rows or time.monotonic() > self._deadline):
                    return
                rows = list(itertools.islice(self._rows, self.batch))
            try:
                if not connected:
                    create_tables(self.engine)
                    self._replay()
                    if self._on_connect is not None:
                        self._on_connect(self.engine)
                    connected = True
                if rows:
                    self._write(rows)
            except (SQLAlchemyError, OSError) as exc:
                connected = False
                self.stats.database_up = False
                self.stats.write_errors += 1
                logger.warning(
                    "decision log: database unreachable (%s); %d row(s) buffered",
                    type(exc).__name__,
                    len(self._rows),
                )
                time.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            backoff = 0.2
            next_write = time.monotonic() + FLUSH_INTERVAL_S
            self.stats.database_up = True
            with self._cond:
                for _ in rows:
                    self._rows.popleft()
                self.stats.written += len(rows)
            if self.journal is not None:
                self.journal.written(row["id"] for row in rows)

    def _write(self, rows: list[dict[str, Any]]) -> None:
        """Insert rows and their attempts in one transaction, skipping ids already there."""
        tried = [a for row in rows for a in row["attempt_rows"]]
        plain = [{k: v for k, v in r.items() if k != "attempt_rows"} for r in rows]
        with self.engine.begin() as connection:
            connection.execute(_insert(self.engine), plain)
            if tried:
                connection.execute(_insert_attempts(self.engine), tried)

    def _replay(self) -> None:
        """Write the rows of dead processes' journals (`Journal.orphans`), then drop them."""
        if self.journal is None:
            return
        with self.journal.orphans() as replayed:
            values = [row.values() for row in replayed]
            for start in range(0, len(values), self.batch):
                self._write(values[start : start + self.batch])
        if replayed:
            self.stats.replayed += len(replayed)
            logger.warning("decision log: %d row(s) replayed from the journal", len(replayed))

    # -- reading (dashboard, budgets, tests) -------------------------------------------------

    def spent_by_key(self, engine: Engine | None = None) -> dict[str, float]:
        """Total cost per API key name over every row in the database."""
        query = (
            select(decisions.c.key_name, func.sum(decisions.c.cost_usd))
            .where(decisions.c.key_name.is_not(None))
            .group_by(decisions.c.key_name)
        )
        with (engine or self.engine).connect() as connection:
            return {name: float(total or 0.0) for name, total in connection.execute(query)}

    def rows(self, limit: int = 100) -> list[dict[str, Any]]:
        """The latest rows, newest first, with JSON columns decoded."""
        query = select(decisions).order_by(decisions.c.created_at.desc()).limit(limit)
        with self.engine.connect() as connection:
            result = [dict(row._mapping) for row in connection.execute(query)]
        for row in result:
            for column in ("predicted", "attempts"):
                row[column] = None if row[column] is None else json.loads(row[column])
        return result

    def attempt_rows(self, request_id: str) -> list[dict[str, Any]]:
        """The ``codyn_attempts`` rows of one request, in order."""
        query = select(attempts).where(attempts.c.request_id == request_id).order_by(attempts.c.n)
        with self.engine.connect() as connection:
            return [dict(row._mapping) for row in connection.execute(query)]

    def count(self) -> int:
        with self.engine.connect() as connection:
            return int(connection.execute(select(func.count()).select_from(decisions)).scalar_one())
