"""The decision log's journal on real files and real SQLite: a process killed with SIGKILL
leaves segments the next start replays (a finished row as it was, a request under way as
interrupted), a live process's segments are left alone, rows already in the database are not
written twice, a segment goes once its rows are in the database, and rows a graceful stop could
not write wait for the next start.

The dying writers are child processes of the test that SIGKILL themselves once their records
are on disk, as a proxy killed mid-request would. Run with ``-s`` for the journal's commit wait
under 4 concurrent writers (printed, never asserted: the machine's disk sets it).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

from codyn.serve.journal import INTERRUPTED, SEGMENT_BYTES, Journal
from codyn.serve.log import DecisionLog, DecisionRow
from tests.serve_support import wait_for

DYING_WRITER = """
import os, signal, sys
from pathlib import Path
from codyn.serve.log import DecisionLog, DecisionRow
folder, wait = Path(sys.argv[1]), sys.argv[4]
finished, under_way = int(sys.argv[2]), int(sys.argv[3])
log = DecisionLog(f"sqlite:///{folder / 'absent' / 'log.db'}", journal=folder / "journal")
log.start()
for i in range(under_way):
    log.begin(DecisionRow(id=f"open-{i}", route="r", chosen="m", stream=True)).result()
for i in range(finished):
    row = DecisionRow(id=f"done-{i}", route="r", model="m", tokens_in=i, cost_usd=1e-6,
                      attempts=[{"model": "x", "error": "APIConnectionError: refused"}])
    log.begin(row)
    log.put(row).result()
print("written", flush=True)
if wait == "wait":
    sys.stdin.readline()
os.kill(os.getpid(), signal.SIGKILL)
"""


def writer(folder: Path, finished: int, under_way: int, wait: bool = False) -> subprocess.Popen:
    """A child that journals rows (its database unreachable), then SIGKILLs itself (after a
    line on stdin with ``wait``)."""
    process = subprocess.Popen(
        [sys.executable, "-c", DYING_WRITER, str(folder), str(finished), str(under_way),
         "wait" if wait else "go"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert process.stdout is not None and process.stdout.readline().strip() == "written"
    return process


def reopened(folder: Path) -> DecisionLog:
    (folder / "absent").mkdir(exist_ok=True)
    log = DecisionLog(f"sqlite:///{folder / 'absent' / 'log.db'}", journal=folder / "journal")
    log.start()
    return log


def test_a_killed_writer_is_replayed_at_the_next_start(tmp_path: Path) -> None:
    process = writer(tmp_path, finished=30, under_way=3)
    assert process.wait(timeout=60) == -signal.SIGKILL
    dead = list((tmp_path / "journal").glob("*.jsonl"))
    assert dead
    log = reopened(tmp_path)
    try:
        wait_for(lambda: log.stats.database_up, what="the replay")
        rows = {row["id"]: row for row in log.rows(limit=100)}
        assert len(rows) == 33 and log.stats.replayed == 33
        assert rows["done-7"]["status"] == 200 and rows["done-7"]["tokens_in"] == 7
        assert rows["done-7"]["fallback"] is True and len(log.attempt_rows("done-7")) == 1
        assert {rows[f"open-{i}"]["status"] for i in range(3)} == {INTERRUPTED}
        assert "interrupted" in rows["open-0"]["error"] and rows["open-0"]["stream"]
        assert not any(path.exists() for path in dead)  # replayed, then removed
    finally:
        log.close()


def test_a_torn_last_record_is_skipped(tmp_path: Path) -> None:
    """A process killed in the middle of a write leaves half a line; nothing else makes one on
    demand, so the test appends it to the dead writer's segment."""
    writer(tmp_path, finished=5, under_way=0).wait(timeout=60)
    segment = next((tmp_path / "journal").glob("*.jsonl"))
    records = segment.read_bytes()
    assert len(records) == SEGMENT_BYTES and records.count(b"\n") == 10  # allocated whole
    with open(segment, "r+b") as fh:  # where the killed writer's next record would have gone
        fh.seek(records.index(b"\0"))
        fh.write(b'{"kind":"end","row":{"id":"torn","sta')
    log = reopened(tmp_path)
    try:
        wait_for(lambda: log.stats.database_up, what="the replay")
        assert sorted(row["id"] for row in log.rows()) == [f"done-{i}" for i in range(5)]
    finally:
        log.close()


def test_a_live_writer_is_left_alone_and_a_second_replay_writes_nothing_twice(
    tmp_path: Path,
) -> None:
    alive = writer(tmp_path, finished=4, under_way=1, wait=True)
    try:
        log = reopened(tmp_path)
        wait_for(lambda: log.stats.database_up, what="the first connection")
        assert log.count() == 0 and log.stats.replayed == 0  # its segments are locked
        log.close()
    finally:
        assert alive.stdin is not None
        alive.stdin.write("\n")
        alive.stdin.flush()
        alive.wait(timeout=60)
    log = reopened(tmp_path)
    try:
        wait_for(lambda: log.stats.database_up, what="the replay")
        assert log.count() == 5
    finally:
        log.close()
    writer(tmp_path, finished=4, under_way=1).wait(timeout=60)  # the same ids once more
    log = reopened(tmp_path)
    try:
        wait_for(lambda: log.stats.replayed == 5, what="the second replay")
        assert log.count() == 5
    finally:
        log.close()


def test_segments_go_once_their_rows_are_in_the_database(tmp_path: Path) -> None:
    journal = Journal(tmp_path, segment_bytes=2_000)
    journal.open()
    rows = [DecisionRow(id=f"r{i}", route="r", model="m") for i in range(40)]
    for row in rows:
        journal.append("end", row).result()
    before = len(list(tmp_path.glob("*.jsonl")))
    assert before > 3
    journal.written(row.id for row in rows[:20])
    left = list(tmp_path.glob("*.jsonl"))
    assert 1 < len(left) < before  # the first segments went; those holding r20.. stay
    later = [f'"id":"r{i}"'.encode() for i in range(20, 40)]
    kept = [path.read_bytes().rstrip(b"\0") for path in left]  # each allocated whole
    assert all(any(i in records for i in later) for records in kept if records)
    journal.written(row.id for row in rows[20:])
    assert len(list(tmp_path.glob("*.jsonl"))) == 1  # the current segment, empty of pending
    journal.close()
    assert not list(tmp_path.glob("*.jsonl"))


def test_a_record_without_commit_goes_with_the_next_commit(tmp_path: Path) -> None:
    """A request's first ``begin`` starts no fsync of its own: it is on disk with the next
    record that commits (here its ``end``), and never on disk before a commit."""
    journal = Journal(tmp_path)
    journal.open()
    row = DecisionRow(id="lazy", route="r", chosen="m")
    begun = journal.append("begin", row, commit=False)
    time.sleep(0.2)  # the writer is idle: nothing may write the record meanwhile
    (segment,) = tmp_path.glob("*.jsonl")
    assert not begun.done() and b'"id":"lazy"' not in segment.read_bytes()
    journal.append("end", row).result()
    assert begun.done()
    records = segment.read_bytes().rstrip(b"\0").splitlines()
    assert [r.split(b",")[0] for r in records] == [b'{"kind":"begin"', b'{"kind":"end"']
    journal.close()


def test_rows_a_stop_could_not_write_wait_in_the_journal(tmp_path: Path) -> None:
    log = DecisionLog(f"sqlite:///{tmp_path / 'absent' / 'log.db'}", journal=tmp_path / "j")
    log.start()
    for i in range(3):
        log.put(DecisionRow(id=f"r{i}", route="r")).result()
    assert log.close(timeout_s=0.5) == 3
    log = DecisionLog(f"sqlite:///{tmp_path / 'absent' / 'log.db'}", journal=tmp_path / "j")
    (tmp_path / "absent").mkdir()
    log.start()
    try:
        wait_for(lambda: log.stats.database_up, what="the replay")
        assert log.count() == 3 and log.stats.replayed == 3
        assert {row["status"] for row in log.rows()} == {200}
    finally:
        log.close()


def test_commit_wait_under_four_writers(tmp_path: Path) -> None:
    """What the journal adds to a response: the wait from appending a row to its fsync, with
    four writers at once (each waits for its own record, as a request does)."""
    journal = Journal(tmp_path)
    journal.open()
    waits: list[float] = []
    lock = threading.Lock()

    def write(n: int) -> None:
        for i in range(150):
            predicted = {"smollm2": 0.4, "qwen-coder": 0.9}
            row = DecisionRow(id=f"w{n}-{i}", route="r", model="m", predicted=predicted)
            start = time.perf_counter()
            journal.append("end", row).result()
            with lock:
                waits.append((time.perf_counter() - start) * 1000.0)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    journal.close()
    assert len(waits) == 600 and journal.errors == 0
    p50, p99 = np.percentile(waits, [50, 99])
    print(f"\njournal wait, 4 writers, {len(waits)} rows: p50 {p50:.3f} ms, p99 {p99:.3f} ms")
    assert len(os.listdir(tmp_path)) == 1  # no database took the rows: kept for a replay
