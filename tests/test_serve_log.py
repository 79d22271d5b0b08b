"""The decision log on SQLite: rows reach the database off the request path, a retried id is
written once, an unreachable database buffers (bounded, counted) and `close` drains.

The outage is real: the SQLite file's folder does not exist until the test creates it, so
every connection attempt fails the way a missing volume would.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from codyn.serve.log import DecisionLog, DecisionRow
from tests.serve_support import wait_for


def row(i: int, **fields: object) -> DecisionRow:
    return DecisionRow(
        id=f"req-{i}",
        route="codyn-code",
        chosen="qwen-coder",
        model="smollm2",
        predicted={"smollm2": 0.4, "qwen-coder": 0.9},
        attempts=[{"model": "qwen-coder", "error": "APIConnectionError: refused"}],
        tokens_in=12,
        tokens_out=3,
        cost_usd=1.5e-6,
        **fields,  # type: ignore[arg-type]
    )


@pytest.fixture
def log(tmp_path: Path):
    log = DecisionLog(f"sqlite:///{tmp_path / 'log.db'}", capacity=100, batch=7)
    log.start()
    yield log
    log.close()


def test_rows_are_written_with_their_json_columns(log: DecisionLog) -> None:
    for i in range(20):
        assert log.put(row(i)).result()
    wait_for(lambda: log.stats.written == 20, what="20 rows written")
    rows = log.rows(limit=100)
    assert len(rows) == 20 and log.count() == 20 and log.stats.database_up
    first = rows[-1]
    assert first["predicted"] == {"smollm2": 0.4, "qwen-coder": 0.9}
    assert first["attempts"][0]["model"] == "qwen-coder" and first["fallback"] is True
    assert first["format_version"] == 3 and first["status"] == 200


def test_a_row_written_twice_is_stored_once(log: DecisionLog) -> None:
    log.put(row(1))
    log.put(row(1, status=502))
    wait_for(lambda: log.stats.written == 2, what="both puts processed")
    assert log.count() == 1


def test_unreachable_database_buffers_bounded_then_catches_up(tmp_path: Path) -> None:
    folder = tmp_path / "not-yet"
    log = DecisionLog(f"sqlite:///{folder / 'log.db'}", capacity=5, batch=2)
    log.start()
    try:
        accepted = [log.put(row(i)).result() for i in range(7)]
        assert accepted == [True] * 5 + [False] * 2
        wait_for(lambda: log.stats.write_errors >= 1, what="a failed write")
        assert log.buffered == 5 and log.stats.dropped == 2 and not log.stats.database_up
        folder.mkdir()  # the database comes back
        wait_for(lambda: log.buffered == 0, timeout_s=30, what="buffer drained")
        assert log.count() == 5 and log.stats.database_up
    finally:
        assert log.close() == 0


def test_close_drains_every_buffered_row(tmp_path: Path) -> None:
    log = DecisionLog(f"sqlite:///{tmp_path / 'log.db'}", capacity=5000, batch=100)
    log.start()
    for i in range(3000):
        log.put(row(i))
    assert log.close() == 0
    reopened = DecisionLog(f"sqlite:///{tmp_path / 'log.db'}")
    assert reopened.count() == 3000
    reopened.engine.dispose()


def test_close_reports_rows_it_could_not_write(tmp_path: Path) -> None:
    log = DecisionLog(f"sqlite:///{tmp_path / 'missing' / 'log.db'}", capacity=10)
    log.start()
    log.put(row(1))
    assert log.close(timeout_s=1.0) == 1
