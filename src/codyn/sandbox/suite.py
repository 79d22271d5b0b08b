"""`run_tests`: a solution and its test snippets, one `Outcome` per test, in one sandboxed
process where possible.

The harness (`codyn.sandbox.harness`) runs the solution once, then each test with its own
time budget, and reports each on a side channel. When a test takes the process down (hangs
past the harness's own timer, exhausts memory, crashes the interpreter, floods output), the
parent records that test from how the process ended and starts a fresh sandboxed process for
the tests after it, so no other test's outcome is lost.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Sequence
from pathlib import Path

from codyn.errors import CodynError
from codyn.sandbox.limits import Limits, Outcome
from codyn.sandbox.process import SIDE_FD, RawRun
from codyn.sandbox.program import classify, launch, tail, unsafe_detail
from codyn.sandbox.settings import sandbox_problem, sandbox_python

GRACE_S = 1.0
"""The parent kills a test this long after the harness's own timer should have stopped it."""
HARNESS = Path(__file__).with_name("harness.py")


def _from_event(event: dict, note: str | None) -> Outcome:
    status = str(event.get("status", "fail"))
    error = str(event.get("error") or "") or None
    detail = None if status == "pass" else error
    if note:
        detail = note if detail is None else f"{detail}; {note}"
    return Outcome(
        status=status,
        exit_code=0 if status == "pass" else (1 if status == "fail" else None),
        wall_s=float(event.get("wall_s", 0.0)),
        stdout=str(event.get("stdout", "")),
        stdout_tail=str(event.get("stdout_tail", "")),
        stderr_tail=str(event.get("stderr_tail", "")),
        detail=detail,
    )


def _from_raw(raw: RawRun, limits: Limits, began: float, note: str | None) -> Outcome:
    """The outcome of the test (or solution) that was running when the process ended."""
    status, detail = classify(raw, limits)
    if status == "pass":  # the process exited 0 in the middle of a test: os._exit(0)
        status, detail = "fail", "the interpreter exited (code 0) before the test finished"
    elif status == "fail" and detail is None:
        detail = f"the interpreter exited (code {raw.exit_code}) before the test finished"
    if note:
        detail = f"{detail}; {note}"
    stdout = raw.stdout.decode("utf-8", "replace")
    return Outcome(
        status=status,
        exit_code=None,
        wall_s=max(0.0, raw.wall_s - began),
        stdout=stdout,
        stdout_tail=tail(stdout),
        stderr_tail=raw.stderr_tail.decode("utf-8", "replace"),
        detail=detail,
    )


def _spread(outcome: Outcome, count: int, why: str) -> list[Outcome]:
    """The solution's own failure, given to each of ``count`` tests."""
    detail = f"{why}: {outcome.detail}" if outcome.detail else why
    return [dataclasses.replace(outcome, detail=detail) for _ in range(count)]


def run_tests(
    source: str,
    tests: Sequence[str],
    *,
    limits: Limits = Limits(),  # noqa: B008 (frozen, so one shared default is safe)
    unsafe_local: bool = False,
) -> list[Outcome]:
    """Run Python ``source`` and then each test snippet (``assert f(1) == 2``, or a ``def
    check(candidate): ...`` block and ``check(f)``); one `Outcome` per test, in order.

    A test passes when it raises nothing; any exception fails it (its traceback in
    ``stderr_tail``). Each test has ``limits.wall_s`` and ``limits.cpu_s`` of its own. If the
    solution itself fails (a SyntaxError, an exception at import, a hang), every test gets
    that status and error.
    """
    if not isinstance(source, str):
        raise CodynError(f"a solution's source must be text, not {type(source).__name__}")
    if isinstance(tests, str) or not all(isinstance(t, str) for t in tests):
        raise CodynError("tests must be a sequence of code snippets (strings)")
    tests = list(tests)
    results: list[Outcome | None] = [None] * len(tests)
    start = 0
    harness = HARNESS.read_bytes()
    argv = [sandbox_python().executable, "-B", "-s", "{data}/harness.py", SIDE_FD]
    argv.append("{data}/spec.json")
    while start < len(tests):
        remaining = len(tests) - start
        spec = {
            "source": source,
            "tests": tests,
            "start": start,
            "wall_s": limits.wall_s,
            "cpu_s": limits.cpu_s,
            "output_bytes": limits.output_bytes,
        }
        budget = dataclasses.replace(
            limits, cpu_s=float(math.ceil(limits.cpu_s) * (remaining + 1) + 1)
        )
        started_at: dict[int, float] = {}

        def on_event(
            event: dict, now: float, started_at: dict[int, float] = started_at
        ) -> float | None:
            if event.get("event") == "start" and isinstance(event.get("i"), int):
                started_at[event["i"]] = event["_t"]
                return now + limits.wall_s + GRACE_S
            return None

        ran = launch(
            argv,
            limits=budget,
            unsafe_local=unsafe_local,
            data={"harness.py": harness, "spec.json": json.dumps(spec).encode("utf-8")},
            side_channel=True,
            on_event=on_event,
        )
        if isinstance(ran, Outcome):  # refused: no sandbox
            results[start:] = [ran] * remaining
            break
        note = None if ran.sandboxed else unsafe_detail(sandbox_problem() or "no sandbox")
        ends = {
            e["i"]: e for e in ran.events if e.get("event") == "end" and isinstance(e.get("i"), int)
        }
        if -1 in ends and ends[-1].get("status") != "pass":
            failed = _from_event(ends[-1], note)
            results[start:] = _spread(failed, remaining, "the solution failed before the tests")
            break
        for index, event in ends.items():
            if 0 <= index < len(tests) and results[index] is None:
                results[index] = _from_event(event, note)
        running = [i for i in started_at if i not in ends]
        if not started_at or (running and running[-1] == -1):
            died = _from_raw(ran, limits, started_at.get(-1, 0.0), note)
            results[start:] = _spread(died, remaining, "the solution failed before the tests")
            break
        if running and 0 <= running[-1] < len(tests):
            index = running[-1]
            results[index] = _from_raw(ran, limits, started_at[index], note)
        if results[start] is None:  # the process ended between two tests: blame the next
            results[start] = _from_raw(ran, limits, ran.wall_s, note)
        missing = [i for i in range(start, len(tests)) if results[i] is None]
        if not missing:
            break
        start = missing[0]
    return [r for r in results if r is not None]
