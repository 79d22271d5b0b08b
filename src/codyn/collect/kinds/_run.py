"""Running an answer against a task's tests in `codyn.sandbox`, shared by the kinds that
execute code (``function``, ``stdio``, ``repair``).

Each distinct test runs once, in its own sandboxed process: a test that is both visible and
hidden (MBPP shows its first assert) is run once and counted in both sets, and a test that
hangs times out alone while the others are still scored.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from codyn.collect.kinds import CellScore, ScoringContext

if TYPE_CHECKING:
    from codyn.sandbox import Limits, Outcome

TAIL = 2000
"""Characters of stderr kept per outcome."""


def limits(context: ScoringContext) -> Limits:
    """The sandbox limits of one run: ``timeout_s`` of wall clock and of CPU, ``memory_mb``."""
    from codyn.sandbox import Limits

    return Limits(cpu_s=context.timeout_s, wall_s=context.timeout_s, memory_mb=context.memory_mb)


def is_io_test(test: Any) -> bool:
    """Whether ``test`` is an input/output pair (``{"input": str, "output": str}``)."""
    return (
        isinstance(test, dict)
        and set(test) == {"input", "output"}
        and all(isinstance(v, str) for v in test.values())
    )


def check_tests(visible: Sequence[Any], hidden: Sequence[Any], shape: str) -> None:
    """Raise ``ValueError`` naming the field unless there are hidden tests and every test has
    ``shape`` (``"assert"``: a Python snippet; ``"io"``: an input/output pair)."""
    if not hidden:
        raise ValueError("hidden_tests: give at least one test (the score is their pass rate)")
    for name, tests in (("visible_tests", visible), ("hidden_tests", hidden)):
        for i, test in enumerate(tests):
            if shape == "assert" and not (isinstance(test, str) and test.strip()):
                raise ValueError(f"{name}: test {i} must be a non-empty string of Python code")
            if shape == "io" and not is_io_test(test):
                raise ValueError(
                    f'{name}: test {i} must be {{"input": "...", "output": "..."}} (strings)'
                )


def test_shape(tests: Sequence[Any]) -> str | None:
    """``"assert"`` when every test is a string, ``"io"`` when every one is an input/output
    pair, None for a mixture or no tests."""
    if tests and all(isinstance(t, str) for t in tests):
        return "assert"
    if tests and all(is_io_test(t) for t in tests):
        return "io"
    return None


def same_output(actual: str, expected: str) -> bool:
    """APPS-style comparison: equal after dropping trailing spaces on each line, trailing
    blank lines and carriage returns."""
    return _normalised(actual) == _normalised(expected)


def _normalised(text: str) -> str:
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    return "\n".join(line.rstrip() for line in lines).rstrip("\n")


def no_code(visible: Sequence[Any], message: str = "no code in the reply") -> CellScore:
    """The score of an answer with nothing to run: 0, visible 0 when there are visible tests."""
    return CellScore(score=0.0, visible=0.0 if visible else None, error=message)


def score_asserts(
    source: str, visible: Sequence[str], hidden: Sequence[str], context: ScoringContext
) -> CellScore:
    """Run ``source`` followed by each test snippet (`codyn.sandbox.run_tests`); the score is
    the hidden tests' pass fraction, ``visible`` the visible ones'."""
    from codyn.sandbox import run_tests

    distinct = list(dict.fromkeys([*visible, *hidden]))
    outcomes = run_tests(
        source, distinct, limits=limits(context), unsafe_local=context.unsafe_local
    )
    by_test = dict(zip(distinct, outcomes, strict=True))
    return _cell(
        [(t, by_test[t].status == "pass", by_test[t]) for t in visible],
        [(t, by_test[t].status == "pass", by_test[t]) for t in hidden],
        executions=len(distinct),
    )


def score_io(
    code: str,
    visible: Sequence[dict[str, str]],
    hidden: Sequence[dict[str, str]],
    context: ScoringContext,
    language: str = "python",
) -> CellScore:
    """Run ``code`` once per distinct input (`codyn.sandbox.run_program`); a test passes when
    the program exits 0 and its stdout matches the expected output (`same_output`)."""
    from codyn.sandbox import run_program

    runs: dict[str, Outcome] = {}
    for stdin in dict.fromkeys(t["input"] for t in [*visible, *hidden]):
        runs[stdin] = run_program(
            code,
            language=language,
            stdin=stdin,
            limits=limits(context),
            unsafe_local=context.unsafe_local,
        )

    def judged(test: dict[str, str]) -> tuple[Any, bool, Outcome]:
        outcome = runs[test["input"]]
        return (
            test,
            outcome.status == "pass" and same_output(outcome.stdout, test["output"]),
            outcome,
        )

    return _cell([judged(t) for t in visible], [judged(t) for t in hidden], executions=len(runs))


def _cell(
    visible: list[tuple[Any, bool, Outcome]],
    hidden: list[tuple[Any, bool, Outcome]],
    executions: int,
) -> CellScore:
    outcomes = [
        _outcome(name, i, passed, outcome)
        for name, results in (("visible", visible), ("hidden", hidden))
        for i, (_, passed, outcome) in enumerate(results)
    ]
    return CellScore(
        score=_fraction([p for _, p, _ in hidden]),
        visible=_fraction([p for _, p, _ in visible]) if visible else None,
        executions=executions,
        outcomes=outcomes,
    )


def _outcome(name: str, index: int, passed: bool, outcome: Outcome) -> dict[str, Any]:
    status = "pass" if passed else ("fail" if outcome.status == "pass" else outcome.status)
    row: dict[str, Any] = {
        "set": name,
        "index": index,
        "status": status,
        "stderr_tail": (outcome.stderr_tail or "")[-TAIL:],
    }
    if outcome.status == "pass" and not passed:
        row["detail"] = "wrong output"
    elif outcome.detail:
        row["detail"] = outcome.detail
    return row


def _fraction(passed: list[bool]) -> float:
    return sum(passed) / len(passed) if passed else math.nan
