"""`codyn serve` and `codyn bench serve` through the real entry point.

`codyn serve` runs in a subprocess (uvicorn owns its signals) and stops on SIGTERM with every
row written. `codyn bench serve` starts its own llama.cpp backends and proxy, restarts the weak
backend halfway, and checks the decision log: marked ``backend``.
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

import codyn.cli.serve_commands  # noqa: F401  (registers the commands)
from codyn.bench.local import WEAK, LlamaServer, free_port
from codyn.bench.serve import PROMPTS, _paired
from codyn.serve.log import DecisionLog
from tests.conftest import run_cli
from tests.serve_support import llama, model_entry, serving, wait_for, write_config  # noqa: F401

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
    for phase in report["paired"].values():  # by name, minus the direct call
        assert phase["failed"] == 0 and phase["codyn"]["p50"] is not None
        assert "litellm" not in phase and "ratio_p50" not in phase
    wait = report["journal_wait"]  # a response that finds its record on disk does not wait
    assert 0 < wait["waits"] <= check["requests"] and wait["mean_ms"] > 0
    assert check["rows"] == check["requests"] == check["answered_200"]


def test_bench_against_litellm_without_the_command_is_one_line() -> None:
    result = run_cli("bench", "serve", "--against-litellm", "no-such-litellm-command")
    assert result.code == 1
    assert result.stderr.strip() == (
        "error: --against-litellm: no executable 'no-such-litellm-command' (the `litellm` "
        "command of an install with litellm[proxy])"
    )


@pytest.mark.backend
def test_paired_overhead_puts_each_proxy_against_direct_calls(
    llama: dict[str, LlamaServer],  # noqa: F811
    tmp_path: Path,
) -> None:
    """The measurement behind ``--against-litellm``, with a second codyn proxy where LiteLLM's
    would be (litellm[proxy] does not install from PyPI alone: it pins an unpublished
    ``litellm-proxy``): every sample reaches the backend three ways, and every request through
    a proxy is in that proxy's log."""
    configs = []
    for name in ("first", "second"):
        (tmp_path / name).mkdir()
        models = {WEAK: model_entry(llama[WEAK].api_base, 0.1, 0.2)}
        configs.append(write_config(tmp_path / name, models=models))
    with serving(configs[0]) as first, serving(configs[1]) as second:
        bases = {
            "direct": llama[WEAK].api_base.removesuffix("/v1"),
            "codyn": first.url,
            "litellm": second.url,
        }
        result = asyncio.run(_paired(bases, WEAK, n=6, concurrency=2, duration_s=2.0, max_tokens=1))
        sequential, sustained = result["sequential"], result["sustained"]
        assert sequential["samples"] == 6 and sequential["failed"] == sustained["failed"] == 0
        assert sustained["samples"] > 0
        for phase in (sequential, sustained):
            assert phase["codyn"]["p50"] is not None and phase["litellm"]["p99"] is not None
        ids = result["codyn_request_ids"]
        samples = 2 * len(PROMPTS) + sequential["samples"] + sustained["samples"]
        assert len(ids) == len(set(ids)) == 2 * samples  # both proxies here are codyn

        def logged() -> set[str]:
            return {row["id"] for served in (first, second) for row in served.rows()}

        wait_for(lambda: logged() == set(ids), what="every request's row")
