"""`codyn serve` and `codyn bench serve` through the real entry point.

`codyn serve` runs in a subprocess (uvicorn owns its signals) and stops on SIGTERM with every
row written. `codyn bench serve` starts its own llama.cpp backends and proxy, restarts the weak
backend halfway, and checks the decision log: marked ``backend``.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

import codyn.cli.serve_commands  # noqa: F401  (registers the commands)
from codyn.bench.local import WEAK, free_port
from codyn.serve.log import DecisionLog
from tests.conftest import run_cli
from tests.serve_support import model_entry, write_config

ENTRY = "import codyn.cli.serve_commands; from codyn.cli.main import main; main()"


def test_serve_with_a_bad_config_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "codyn.yaml"
    path.write_text("models:\n  m: {litellm: openai/m, price_in: free, price_out: 0}\n")
    result = run_cli("serve", "--config", path)
    assert result.code == 1
    assert result.stderr.strip() == (
        f"error: {path}: models.m.price_in: Input should be a valid number, unable to parse "
        "string as a number (got 'free')"
    )


def test_serve_runs_until_sigterm_and_writes_every_row(tmp_path: Path) -> None:
    config = write_config(
        tmp_path, models={WEAK: model_entry(f"http://127.0.0.1:{free_port()}/v1", 0.1, 0.2)}
    )
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-c", ENTRY, "serve", "--config", str(config), "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/healthz", timeout=1).json()["status"] == "ok":
                    break
            except httpx.TransportError:
                assert process.poll() is None and time.monotonic() < deadline
                time.sleep(0.2)
        body = {"model": "nope", "messages": [{"role": "user", "content": "hi"}]}
        ids = [
            httpx.post(f"{url}/v1/chat/completions", json=body).headers["x-codyn-request-id"]
            for _ in range(20)
        ]
    finally:
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=60)
    assert process.returncode == -signal.SIGTERM  # uvicorn re-raises it after shutting down
    assert f"codyn proxy on {url}: routes none; models {WEAK}; keys not required" in output
    log = DecisionLog(f"sqlite:///{tmp_path / 'decisions.db'}")
    assert {row["id"] for row in log.rows(limit=100)} == set(ids)
    log.engine.dispose()


@pytest.mark.backend
def test_bench_serve_measures_overhead_and_checks_the_log() -> None:
    result = run_cli(
        "bench", "serve", "--n", "10", "--duration", "6", "--concurrency", "2",
        "--restart-backend-after", "2", "--json",
    )  # fmt: skip
    assert result.code == 0, result.stderr
    report = json.loads(result.stdout)
    sequential, sustained = report["sequential"], report["sustained"]
    assert sequential["requests"] == sequential["ok"] == 10
    assert 0 < sequential["overhead_ms"]["p50"] < sequential["end_to_end_ms"]["p50"]
    assert sustained["requests"] == sustained["ok"] > 0 and sustained["requests_per_s"] > 0
    check = report["log_check"]
    assert check["missing_rows"] == check["duplicate_rows"] == check["unanswered"] == 0
    assert check["rows"] == check["requests"] == check["answered_200"]
