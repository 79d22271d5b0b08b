"""Verify, then escalate, live: the tests a request carries, the check of one answer in the
sandbox, and the attempts a route makes (shared by ``codyn serve`` and `codyn.Client`).

The steps and their rules are the cascade policy's (`codyn.policy.cascade`): a route whose
policy is ``cascade`` walks its ``depth`` models with its ``retries`` and ``threshold``; any
other policy's ranking is walked one answer per model. ``max_attempts`` caps the answers.
An answer is accepted when its visible pass fraction reaches the threshold; when none is,
the best one tried is returned (ties to the later, pricier model).

Tests, in order of precedence: ``codyn.tests`` in the request body (the openai SDK's
``extra_body={"codyn": {"tests": [...]}}``), else the assert lines of the latest user
message, else its doctest examples whose output is a Python literal (``>>> f(2)`` / ``4``
becomes ``assert f(2) == 4``). A request with none is routed as without verification.
"""

from __future__ import annotations

import ast
import builtins
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from codyn.errors import CodynError
from codyn.policy import CascadePolicy, Policy
from codyn.policy.cascade import accepts, cascade_steps, final_step

MAX_TESTS = 50
"""Tests taken from one request at most (the sandbox runs each on its own)."""


class BadTests(CodynError):
    """``codyn.tests`` in a request body is not a list of code strings (HTTP 400)."""


@dataclass(frozen=True)
class Verdict:
    """One answer checked against the request's tests."""

    model: str
    passed: int
    total: int
    ms: float
    status: str
    """``pass`` (every test), ``fail``, or the sandbox's status when the code did not run
    (``timeout``, ``memory``, ``error``, ...)."""

    @property
    def fraction(self) -> float:
        return self.passed / self.total if self.total else 0.0

    @property
    def label(self) -> str:
        """``pass`` / ``fail`` for the ``x-codyn-attempts`` header."""
        return "pass" if self.status == "pass" else "fail"


def request_tests(extra: Any, text: str) -> list[str]:
    """The tests a request carries (see the module docstring); ``[]`` when none. ``extra`` is
    the body's ``codyn`` object (None when absent), ``text`` the latest user message."""
    if extra is not None:
        if not isinstance(extra, dict):
            raise BadTests("`codyn` in the request body must be an object")
        tests = extra.get("tests")
        if tests is not None:
            if not isinstance(tests, list) or not all(isinstance(t, str) for t in tests):
                raise BadTests("`codyn.tests` must be a list of test code strings")
            if len(tests) > MAX_TESTS:
                raise BadTests(f"`codyn.tests` holds {len(tests)} tests; at most {MAX_TESTS}")
            return [t for t in tests if t.strip()]
    asserts = [line.strip() for line in text.splitlines() if _is_assert(line.strip())]
    if asserts:
        return list(dict.fromkeys(asserts))[:MAX_TESTS]
    from codyn.collect.converters import docstring_examples

    doctests = [
        test
        for source, want in docstring_examples(text)
        if (test := _doctest_assert(source, want.split('"""')[0].split("'''")[0].strip()))
    ]
    return list(dict.fromkeys(doctests))[:MAX_TESTS]


def entry_point(tests: Sequence[str]) -> str | None:
    """The function the tests call first (to pick the answer's code block defining it)."""
    for test in tests:
        try:
            tree = ast.parse(test)
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            called = isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
            if called and not hasattr(builtins, node.func.id):
                return node.func.id
    return None


def check_answer(
    model: str, answer: str, tests: Sequence[str], *, timeout_s: float, unsafe_local: bool
) -> Verdict:
    """Extract the code of ``answer`` and run it against ``tests`` in the sandbox (blocking:
    the proxy calls it in a thread)."""
    from codyn.collect.extract import extract_code
    from codyn.sandbox import Limits, run_tests

    started = time.perf_counter()
    code = extract_code(answer, language="python", entry_point=entry_point(tests))
    limits = Limits(cpu_s=timeout_s, wall_s=timeout_s)
    outcomes = run_tests(code, list(tests), limits=limits, unsafe_local=unsafe_local)
    passed = sum(o.status == "pass" for o in outcomes)
    statuses = {o.status for o in outcomes if o.status != "pass"}
    status = "pass" if passed == len(outcomes) else "fail"
    if passed == 0 and len(statuses) == 1 and statuses != {"fail"}:
        status = statuses.pop()  # the code did not run at all: say why
    return Verdict(model, passed, len(outcomes), (time.perf_counter() - started) * 1e3, status)


class VerifiedRun:
    """One request's attempts: iterate for the next model to ask (stops once an answer is
    accepted), `record` each checked answer, then `answer` is the one to return. The same
    walk for the proxy (async calls) and `codyn.Client` (blocking ones)."""

    def __init__(self, ranking: Sequence[str], policy: Policy, max_attempts: int) -> None:
        self.models = attempts(ranking, policy, max_attempts)
        self.accept_at = threshold(policy)
        self.answers: list[tuple[Any, Verdict]] = []
        self.accepted = False

    def __iter__(self) -> Iterator[str]:
        for model in self.models:
            if self.accepted:
                return
            yield model

    def record(self, answer: Any, verdict: Verdict) -> None:
        self.answers.append((answer, verdict))
        self.accepted = accepts(verdict.fraction, self.accept_at)

    @property
    def verdicts(self) -> list[Verdict]:
        return [v for _, v in self.answers]

    @property
    def pick(self) -> int:
        """The attempt returned: the accepted one, else the best (`final_step`)."""
        if not self.answers:
            raise CodynError("no answer was checked")
        if self.accepted:
            return len(self.answers) - 1
        return final_step([v.fraction for v in self.verdicts])

    def answer(self) -> tuple[Any, Verdict]:
        return self.answers[self.pick]

    @property
    def outcome(self) -> str:
        """For the log and the dashboard: ``verified`` (the first answer passed),
        ``escalated`` (a later one did), ``unresolved`` (none did)."""
        if not self.accepted:
            return "unresolved"
        return "verified" if len(self.answers) == 1 else "escalated"

    @property
    def header(self) -> str:
        """``smollm2:fail,qwen-coder:pass``."""
        return ",".join(f"{v.model}:{v.label}" for v in self.verdicts)

    @property
    def verify_ms(self) -> float:
        return sum(v.ms for v in self.verdicts)


def attempts(ranking: Sequence[str], policy: Policy, max_attempts: int) -> list[str]:
    """The models to ask in order, one entry per answer (a cascade policy's retries repeat a
    model), capped at ``max_attempts``."""
    if isinstance(policy, CascadePolicy):
        steps = cascade_steps(list(ranking), policy.max_depth, policy.retries)
    else:
        steps = cascade_steps(list(ranking), len(ranking), 0)
    return [model for model, _ in steps][:max_attempts]


def threshold(policy: Policy) -> float:
    """The visible pass fraction that accepts an answer (all tests, unless a cascade says)."""
    return policy.threshold if isinstance(policy, CascadePolicy) else 1.0


def answer_text(body: dict[str, Any]) -> str:
    """The first choice's message content of an OpenAI-shaped answer."""
    choices = body.get("choices") or [{}]
    return str((choices[0].get("message") or {}).get("content") or "")


def answer_chunks(body: dict[str, Any], include_usage: bool) -> list[dict[str, Any]]:
    """A verified (complete) answer as the chunks of a stream: the content in one, the finish
    reason, and the usage-only chunk when asked for (the proxy sends them as events, the
    Client as ``ChatCompletionChunk``s)."""
    base = {
        "id": body.get("id", ""),
        "object": "chat.completion.chunk",
        "created": body.get("created", int(time.time())),
        "model": body.get("model"),
    }
    choice = (body.get("choices") or [{}])[0]
    first = {"index": 0, "delta": {"role": "assistant", "content": answer_text(body)}}
    last = {"index": 0, "delta": {}, "finish_reason": choice.get("finish_reason") or "stop"}
    chunks = [{**base, "choices": [first]}, {**base, "choices": [last]}]
    if include_usage and body.get("usage"):
        chunks.append({**base, "choices": [], "usage": body["usage"]})
    return chunks


def _doctest_assert(source: str, want: str) -> str | None:
    """``>>> f(2)`` / ``4`` as ``assert (f(2)) == (4)``; ``>>> print(x)`` / ``a b`` as
    ``assert str(x) == 'a b'``; None for anything else (statements, prose outputs)."""
    if not want or not _parses(source, "eval"):
        return None
    call = ast.parse(source, mode="eval").body
    printed = (
        isinstance(call, ast.Call)
        and isinstance(call.func, ast.Name)
        and call.func.id == "print"
        and len(call.args) == 1
        and not call.keywords
    )
    from codyn.collect.converters import is_literal

    if printed and "\n" not in want:
        return f"assert str({ast.unparse(call.args[0])}) == {want!r}"
    return f"assert ({source}) == ({want})" if is_literal(want) else None


def _is_assert(line: str) -> bool:
    return line.startswith("assert ") and _parses(line, "exec")


def _parses(source: str, mode: str) -> bool:
    try:
        ast.parse(source, mode=mode)
    except SyntaxError:
        return False
    return True
