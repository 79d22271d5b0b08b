"""``codyn bench sandbox``: what running code in the sandbox costs.

A trivial Python program runs ``n`` times in the sandbox, each run paired with a plain
``subprocess`` run of the same file by the same interpreter; the difference is the sandbox's
start-up overhead (bubblewrap, namespaces, cgroups, the supervisor). Also reported: sandboxed
runs per second one after another, and the tests per second `run_tests` gets when one process
runs many tests, and what one verified attempt of the proxy costs (`codyn.serve.verify.
check_answer`: the code extracted from a model-style answer, three asserts run in one sandboxed
process). Numbers depend on the machine and its load: printed, never asserted.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from typing import Any

from codyn.errors import CodynError

PROGRAM = "print('ok')\n"
ANSWER = "Here is the function:\n```python\ndef add(a, b):\n    return a + b\n```\n"
ANSWER_TESTS = ["assert add(2, 3) == 5", "assert add(-1, 1) == 0", "assert add(0, 0) == 0"]
TESTS = 50
"""Trivial tests in the `run_tests` timing (one sandboxed process runs them all)."""


def bench_sandbox(n: int = 50, n_warmup: int = 3) -> dict[str, Any]:
    """Time ``n`` sandboxed and ``n`` plain runs of a trivial program after ``n_warmup``
    untimed ones. Raises `SandboxUnavailable` where bubblewrap cannot run."""
    import numpy as np

    from codyn.sandbox import Limits, require_sandbox, run_program, run_tests
    from codyn.sandbox.settings import sandbox_python
    from codyn.serve.verify import check_answer

    if n < 1 or n_warmup < 0:
        raise CodynError("n must be positive and n_warmup non-negative")
    require_sandbox()
    python = sandbox_python().executable
    limits = Limits()
    with tempfile.TemporaryDirectory(prefix="codyn-bench-") as folder:
        path = os.path.join(folder, "main.py")
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(PROGRAM)

        def plain() -> None:
            done = subprocess.run(
                [python, "-B", "-s", path],
                stdin=subprocess.DEVNULL,
                capture_output=True,
                cwd=folder,
                check=False,
            )
            if done.returncode != 0:
                raise CodynError(f"the plain run failed: {done.stderr[-200:]!r}")

        def sandboxed() -> None:
            outcome = run_program(PROGRAM, limits=limits)
            if outcome.status != "pass":
                raise CodynError(f"the sandboxed run did not pass: {outcome}")

        def verified() -> None:
            verdict = check_answer("bench", ANSWER, ANSWER_TESTS, timeout_s=5, unsafe_local=False)
            if verdict.status != "pass":
                raise CodynError(f"the verified attempt did not pass: {verdict}")

        for _ in range(n_warmup):
            sandboxed()
            plain()
            verified()
        boxed_s, plain_s, verify_s = np.empty(n), np.empty(n), np.empty(n)
        for i in range(n):
            start = time.perf_counter()
            verified()
            verify_s[i] = time.perf_counter() - start
            start = time.perf_counter()
            sandboxed()
            boxed_s[i] = time.perf_counter() - start
            start = time.perf_counter()
            plain()
            plain_s[i] = time.perf_counter() - start
    start = time.perf_counter()
    outcomes = run_tests(
        "def f(x):\n    return x + 1\n", [f"assert f({i}) == {i + 1}" for i in range(TESTS)]
    )
    tests_s = time.perf_counter() - start
    if any(o.status != "pass" for o in outcomes):
        raise CodynError("the run_tests timing did not pass")
    boxed_ms, plain_ms, over_ms = boxed_s * 1000, plain_s * 1000, (boxed_s - plain_s) * 1000
    return {
        "n": n,
        "n_warmup": n_warmup,
        "python": python,
        "executions_per_s": n / float(boxed_s.sum()),
        "plain_executions_per_s": n / float(plain_s.sum()),
        "sandbox_p50_ms": float(np.percentile(boxed_ms, 50)),
        "sandbox_p99_ms": float(np.percentile(boxed_ms, 99)),
        "plain_p50_ms": float(np.percentile(plain_ms, 50)),
        "plain_p99_ms": float(np.percentile(plain_ms, 99)),
        "overhead_p50_ms": float(np.percentile(over_ms, 50)),
        "overhead_p99_ms": float(np.percentile(over_ms, 99)),
        "verify_p50_ms": float(np.percentile(verify_s * 1000, 50)),
        "verify_p99_ms": float(np.percentile(verify_s * 1000, 99)),
        "run_tests_tests": TESTS,
        "run_tests_per_s": TESTS / tests_s,
    }
