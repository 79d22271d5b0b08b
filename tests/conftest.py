"""Shared test helpers: the real benchmark data folder and an in-process CLI runner."""

from __future__ import annotations

import contextlib
import io
import os
from dataclasses import dataclass
from pathlib import Path

import pytest

# A test module that imports LiteLLM itself would otherwise have it fetch its price list from
# the internet first (three tries, seconds each, offline); codyn's own imports set this too.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from codyn.cli.main import main

BENCHMARKS = Path(__file__).resolve().parents[1].parent / "shared" / "benchmarks"


@dataclass
class CliResult:
    code: int
    stdout: str
    stderr: str


def run_cli(*args: str) -> CliResult:
    """Run `codyn ARGS...` in-process through the real entry point; capture output and exit code."""
    out, err = io.StringIO(), io.StringIO()
    code = 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main([str(a) for a in args])
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return CliResult(code, out.getvalue(), err.getvalue())


@pytest.fixture(scope="session")
def benchmarks() -> Path:
    """The real routing data in ../shared/benchmarks (read in place, never edited)."""
    if not BENCHMARKS.is_dir():
        pytest.fail(f"benchmark data not found at {BENCHMARKS}; clone the repo beside shared/")
    return BENCHMARKS
