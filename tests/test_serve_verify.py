"""Verify, then escalate, live: tests found in requests, answers run in the real sandbox, the
attempt walk, and the decision log's attempt rows (SQLite; a format-1 table is migrated)."""

from __future__ import annotations

import sqlite3

import pytest

from codyn.policy import CascadePolicy, UtilityPolicy
from codyn.serve import verify
from codyn.serve.log import DecisionLog, DecisionRow
from codyn.serve.verify import BadTests, Verdict, VerifiedRun

PROMPT = """Write a Python function add(a, b) that returns the sum.

assert add(2, 3) == 5
assert add(-1, 1) == 0
"""
DOCTEST_PROMPT = '''Complete this function:

def double(x):
    """Twice x.
    >>> double(2)
    4
    >>> print(double(3))
    6
    """
'''


def test_tests_come_from_the_body_then_asserts_then_doctests() -> None:
    assert verify.request_tests(None, PROMPT) == ["assert add(2, 3) == 5", "assert add(-1, 1) == 0"]
    explicit = verify.request_tests({"tests": ["assert add(1, 1) == 2"]}, PROMPT)
    assert explicit == ["assert add(1, 1) == 2"]
    # examples whose source is one expression and whose output a literal (or printed)
    assert verify.request_tests(None, DOCTEST_PROMPT) == [
        "assert (double(2)) == (4)",
        "assert str(double(3)) == '6'",
    ]
    assert verify.request_tests(None, "Write a function that adds two numbers.") == []
    assert verify.request_tests(None, "assert that the list is sorted.") == []
    with pytest.raises(BadTests, match="list of test code strings"):
        verify.request_tests({"tests": "assert True"}, "")
    with pytest.raises(BadTests, match="must be an object"):
        verify.request_tests(["assert True"], "")
    assert verify.entry_point(["assert len(add(1, 2)) == 1"]) == "add"


def test_answers_run_in_the_sandbox() -> None:
    tests = verify.request_tests(None, PROMPT)
    good = "Here you go:\n```python\ndef add(a, b):\n    return a + b\n```"
    wrong = "```python\ndef add(a, b):\n    return abs(a) + b\n```"
    passed = verify.check_answer("m", good, tests, timeout_s=5, unsafe_local=False)
    assert (passed.status, passed.passed, passed.total, passed.label) == ("pass", 2, 2, "pass")
    failed = verify.check_answer("m", wrong, tests, timeout_s=5, unsafe_local=False)
    assert (failed.status, failed.passed, failed.fraction) == ("fail", 1, 0.5)
    hang = "```python\ndef add(a, b):\n    while True:\n        pass\n```"
    stuck = verify.check_answer("m", hang, tests, timeout_s=1, unsafe_local=False)
    assert stuck.status == "timeout" and stuck.label == "fail"
    prose = verify.check_answer(
        "m", "I cannot help with that.", tests, timeout_s=5, unsafe_local=False
    )
    assert prose.passed == 0 and prose.label == "fail"


def _verdict(model: str, passed: int, total: int = 2) -> Verdict:
    return Verdict(model, passed, total, 1.0, "pass" if passed == total else "fail")


def test_the_walk_follows_the_cascade_rules() -> None:
    ranking = ["cheap", "mid", "strong"]
    assert verify.attempts(ranking, UtilityPolicy(), 3) == ranking
    assert verify.attempts(ranking, UtilityPolicy(), 2) == ["cheap", "mid"]
    retried = CascadePolicy(chain=(0, 2), retries=1)
    assert verify.attempts(ranking, retried, 9) == ["cheap", "cheap", "mid", "mid"]
    run = VerifiedRun(ranking, UtilityPolicy(), 3)
    asked = []
    for model in run:
        asked.append(model)
        run.record({"from": model}, _verdict(model, 2 if model == "mid" else 1))
    assert asked == ["cheap", "mid"] and run.outcome == "escalated"
    assert run.answer()[0] == {"from": "mid"} and run.header == "cheap:fail,mid:pass"
    none_pass = VerifiedRun(ranking, UtilityPolicy(), 3)
    for model in none_pass:
        none_pass.record(model, _verdict(model, {"cheap": 1, "mid": 0, "strong": 1}[model]))
    assert none_pass.outcome == "unresolved" and none_pass.answer()[0] == "strong"  # ties later
    first = VerifiedRun(ranking, CascadePolicy(threshold=0.5), 3)
    for model in first:
        first.record(model, _verdict(model, 1))
    assert first.outcome == "verified" and first.header == "cheap:fail"  # 1/2 reaches 0.5


def test_attempt_rows_are_logged_and_an_old_table_is_migrated(tmp_path) -> None:
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as db:  # the format-1 decisions table, with one row
        db.execute(
            "CREATE TABLE codyn_decisions (id VARCHAR(36) PRIMARY KEY, created_at DATETIME NOT "
            "NULL, format_version INTEGER NOT NULL, key_name VARCHAR(200), requested "
            "VARCHAR(300), route VARCHAR(200), chosen VARCHAR(200), model VARCHAR(200), "
            "predicted TEXT, knob FLOAT, sticky BOOLEAN NOT NULL, decision_ms FLOAT, tokens_in "
            "INTEGER, tokens_out INTEGER, cost_usd FLOAT, strongest_cost_usd FLOAT, latency_ms "
            "FLOAT, backend_ms FLOAT, fallback BOOLEAN NOT NULL, attempts TEXT, status INTEGER "
            "NOT NULL, error TEXT, stream BOOLEAN NOT NULL, conversation VARCHAR(200))"
        )
        db.execute(
            "INSERT INTO codyn_decisions (id, created_at, format_version, sticky, fallback, "
            "status, stream) VALUES ('old', '2026-01-01 00:00:00', 1, 0, 0, 200, 0)"
        )
    log = DecisionLog(f"sqlite:///{path}")
    log.start()
    row = DecisionRow(id="new", route="r", model="strong", verify="escalated", verify_ms=12.5)
    row.attempts = [
        {"model": "cheap", "error": "connection refused"},
        {"model": "mid", "outcome": "fail", "passed": 0, "tests": 2, "cost_usd": 0.001},
        {"model": "strong", "outcome": "pass", "passed": 2, "tests": 2, "cost_usd": 0.01},
    ]
    assert row.fallback
    log.put(row)
    assert log.close() == 0
    reread = DecisionLog(f"sqlite:///{path}")
    rows = {r["id"]: r for r in reread.rows()}
    assert rows["old"]["verify"] is None and rows["new"]["verify"] == "escalated"
    tried = reread.attempt_rows("new")
    assert [(a["n"], a["model"], a["outcome"]) for a in tried] == [
        (0, "cheap", "error"),
        (1, "mid", "fail"),
        (2, "strong", "pass"),
    ]
    assert tried[2]["cost_usd"] == pytest.approx(0.01) and tried[0]["error"] == "connection refused"
    reread.engine.dispose()
