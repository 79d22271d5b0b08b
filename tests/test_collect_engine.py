"""The collection engine: calls, retries, limits, cache, journal, kill -9 and resume, Ray, and
`codyn collect` / `codyn score`, against the real local llama.cpp servers.

Requests are counted by a real TCP proxy in front of each llama server (`CountingProxy`): it
sees every chat-completion request as it arrives, before the backend answers, so a request
whose client was SIGKILLed mid-call is counted too. Faults are real: a port nobody listens
on, a tiny HTTP server that answers a fixed status, a llama server SIGKILLed and restarted, a
prompt longer than SmolLM2's 256-token window, and a `codyn collect` process SIGKILLed.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

import tests.test_collect_engine_kinds  # noqa: F401  (registers the label-match kind)
from codyn.bench.local import STRONG, WEAK, LlamaServer, free_port
from codyn.catalog import CatalogModel, load_catalog
from codyn.collect.cache import ResponseCache, cache_key
from codyn.collect.calls import Call, CallFailed, RateLimiter, RetryPolicy, complete
from codyn.collect.engine import CollectOptions, collect, collect_files, select_models
from codyn.collect.journal import Journal, journal_path
from codyn.collect.tasks import read_tasks
from codyn.data.routing import RoutingData
from codyn.errors import CodynError, DataError
from tests.conftest import run_cli
from tests.serve_support import ensure_running, llama  # noqa: F401  (fixture)

REPO = Path(__file__).resolve().parents[1]
QUESTIONS = [
    ("What is 2+2? Answer with a number.", "4"),
    ("What is the capital of France? One word.", "Paris"),
    ("What colour is the sky on a clear day? One word.", "blue"),
    ("What is 3*3? Answer with a number.", "9"),
    ("What is the opposite of hot? One word.", "cold"),
    ("Say hello.", "hello"),
]
PRICES = {WEAK: (0.1, 0.2), STRONG: (1.0, 2.0)}
CLI = (
    "import sys, tests.test_collect_engine_kinds; from codyn.cli.main import main; "
    "main(sys.argv[1:])"
)
"""`codyn` with the test kind registered, as a process of its own (the kill test SIGKILLs it)."""


@pytest.fixture(autouse=True)
def private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test its own response cache (never the user's)."""
    folder = tmp_path / "codyn-cache"
    monkeypatch.setenv("CODYN_CACHE_DIR", str(folder))
    return folder


# -- real parts ----------------------------------------------------------------------------------


class CountingProxy:
    """A TCP proxy on loopback in front of one backend. It counts chat-completion requests as
    they arrive (before the backend sees them), the most in flight at once, and connections it
    could not pass on because nothing listened behind it."""

    REQUEST = b"POST /v1/chat/completions "
    RESPONSE = b"HTTP/1.1 "

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.server.getsockname()[1])
        self.requests = self.refused = self.in_flight = self.max_in_flight = 0
        self.arrivals: list[float] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def api_base(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        try:
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port), timeout=5)
        except OSError:
            with self._lock:
                self.refused += 1
            client.close()
            return
        upstream.settimeout(None)
        back = threading.Thread(
            target=self._pump, args=(upstream, client, self.RESPONSE, self._answered), daemon=True
        )
        back.start()
        self._pump(client, upstream, self.REQUEST, self._asked)

    def _asked(self, n: int) -> None:
        with self._lock:
            self.arrivals += [time.monotonic()] * n
            self.requests += n
            self.in_flight += n
            self.max_in_flight = max(self.max_in_flight, self.in_flight)

    def _answered(self, n: int) -> None:
        with self._lock:
            self.in_flight -= n

    @staticmethod
    def _pump(
        src: socket.socket, dst: socket.socket, marker: bytes, seen: Callable[[int], None]
    ) -> None:
        tail = b""
        try:
            while data := src.recv(65536):
                window = tail + data  # a marker split across two reads is still seen once
                if (n := window.count(marker)) > 0:
                    seen(n)
                tail = window[-(len(marker) - 1) :]
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()


@pytest.fixture(scope="module")
def proxies(llama: dict[str, LlamaServer]) -> Iterator[dict[str, CountingProxy]]:  # noqa: F811
    made = {name: CountingProxy(server.port) for name, server in llama.items()}
    yield made
    for proxy in made.values():
        proxy.server.close()


class StatusServer:
    """A real HTTP server that answers every POST with one status (for fault classification)."""

    def __init__(self, status: int) -> None:
        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                body = json.dumps({"error": {"message": f"status {status}"}}).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def __enter__(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def write_tasks(path: Path, questions: list[tuple[str, str]], **extra: Any) -> Path:
    lines = [
        json.dumps(
            {"id": f"q{i}", "kind": "label-match", "task": "qa", "prompt": q, "label": a, **extra}
        )
        for i, (q, a) in enumerate(questions)
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def write_catalog(folder: Path, bases: dict[str, str], **extra: Any) -> Path:
    models = {
        name: {
            "api_base": base,
            "price_in": PRICES[name][0],
            "price_out": PRICES[name][1],
            **extra.get(name, {}),
        }
        for name, base in bases.items()
    }
    path = folder / "catalog.yaml"
    path.write_text(yaml.safe_dump({"models": models}, sort_keys=False), encoding="utf-8")
    return path


def via(proxies: dict[str, CountingProxy], *names: str) -> dict[str, str]:
    return {name: proxies[name].api_base for name in names or (WEAK, STRONG)}


def requests(proxies: dict[str, CountingProxy]) -> int:
    return sum(proxy.requests for proxy in proxies.values())


def quiet(**values: Any) -> CollectOptions:
    values.setdefault("max_tokens", 12)
    return CollectOptions(progress=False, **values)


def assert_same_outcomes(a: RoutingData, b: RoutingData) -> None:
    """Everything but latency (a wall-clock measurement) is equal."""
    assert a.prompt_ids == b.prompt_ids and a.texts == b.texts
    assert a.models == b.models
    for name in ("score", "samples", "cost", "tokens_in", "tokens_out", "visible_score"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    assert a.sample_responses.tolist() == b.sample_responses.tolist()
    assert a.responses.tolist() == b.responses.tolist()


def journal_rows(path: Path) -> dict[tuple[str, str, int], tuple[str, str | None]]:
    """(task, model, sample) -> (status, response), read as another process would."""
    if not path.exists():
        return {}
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    try:
        rows = db.execute("SELECT task_id, model, sample, status, response FROM jobs").fetchall()
    except sqlite3.OperationalError:  # created, schema not written yet
        return {}
    finally:
        db.close()
    return {(t, m, int(s)): (status, text) for t, m, s, status, text in rows}


def descendants(pid: int) -> set[int]:
    """Live (not zombie) descendants of process ``pid``, read from /proc."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            state, ppid = stat.read_text().rsplit(")", 1)[1].split()[:2]
        except (OSError, IndexError):
            continue
        if state != "Z":
            children.setdefault(int(ppid), []).append(int(stat.parent.name))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def running(pids: set[int]) -> set[int]:
    """Those of ``pids`` still running (a zombie waiting for its reaper has exited)."""
    alive = set()
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if state != "Z":
            alive.add(pid)
    return alive


def wait_until(check: Callable[[], bool], what: str, timeout_s: float = 300.0) -> None:
    """Poll ``check`` (a deadline only against hanging, never a speed requirement)."""
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


# -- without a backend ---------------------------------------------------------------------------


def test_retry_policy_retries_only_what_may_succeed() -> None:
    waits: list[float] = []
    outcomes = iter([CallFailed("rate limited", True), CallFailed("reset", True)])

    def flaky() -> str:
        failure = next(outcomes, None)
        if failure is not None:
            raise failure
        return "answer"

    policy = RetryPolicy(attempts=5, base_s=1.0, cap_s=3.0)
    assert policy.run(flaky, sleep=waits.append) == ("answer", 3)
    assert 0.5 <= waits[0] <= 1.0 and 1.0 <= waits[1] <= 2.0  # half to all of 1, 2 s

    def invalid() -> str:
        raise CallFailed("BadRequestError: bad", False)

    with pytest.raises(CallFailed) as failed:
        policy.run(invalid, sleep=waits.append)
    assert failed.value.attempts == 1 and len(waits) == 2  # no retry, no wait

    def down() -> str:
        raise CallFailed("refused", True)

    with pytest.raises(CallFailed) as failed:
        policy.run(down, sleep=waits.append)
    assert failed.value.attempts == 5
    assert all(1.5 <= w <= 3.0 for w in waits[-2:])  # capped at 3 s


def test_rate_limiter_spaces_calls_evenly() -> None:
    limiter = RateLimiter(per_minute=1200)  # one start every 50 ms
    slots: list[float] = []
    threads = [threading.Thread(target=lambda: slots.append(limiter.wait())) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    gaps = np.diff(sorted(slots))
    assert len(gaps) == 5 and (gaps >= 0.05 - 1e-9).all()


def test_real_faults_are_classified(tmp_path: Path) -> None:
    def model(base: str) -> CatalogModel:
        return CatalogModel(name="m", api_base=base, price_in=0, price_out=0)

    messages = [{"role": "user", "content": "hi"}]
    nobody = f"http://127.0.0.1:{free_port()}/v1"
    with pytest.raises(CallFailed) as refused:
        complete(model(nobody), messages, temperature=0, max_tokens=4, timeout_s=10)
    assert refused.value.retriable, refused.value.message
    for status, retriable in ((400, False), (401, False), (404, False), (429, True), (503, True)):
        with StatusServer(status) as base, pytest.raises(CallFailed) as failed:
            complete(model(base), messages, temperature=0, max_tokens=4, timeout_s=10)
        assert failed.value.retriable is retriable, (status, failed.value.message)


def test_cache_key_covers_the_request_and_survives_reopening(tmp_path: Path) -> None:
    model = CatalogModel(name="m", api_base="http://127.0.0.1:1/v1", price_in=1, price_out=1)
    other = model.model_copy(update={"api_base": "http://127.0.0.1:2/v1"})
    messages = [{"role": "user", "content": "hi"}]
    key = cache_key(model, messages, 0.0, 16, 0)
    variants = {
        cache_key(other, messages, 0.0, 16, 0),
        cache_key(model, [{"role": "user", "content": "hi!"}], 0.0, 16, 0),
        cache_key(model, messages, 0.8, 16, 0),
        cache_key(model, messages, 0.0, 17, 0),
        cache_key(model, messages, 0.0, 16, 1),
    }
    assert key not in variants and len(variants) == 5
    cache = ResponseCache(tmp_path / "c.sqlite")
    cache.put(key, "m", Call("hello", 3, 1, 0.25))
    cache.close()
    again = ResponseCache(tmp_path / "c.sqlite")
    assert again.get(key) == Call("hello", 3, 1, 0.25)
    assert again.get(cache_key(model, messages, 0.0, 16, 1)) is None


def test_catalog_limits_are_validated_and_kwargs_shared(tmp_path: Path) -> None:
    base = {"api_base": "http://127.0.0.1:1/v1", "price_in": 1, "price_out": 2}
    for field, value in (("max_rpm", 0), ("max_concurrency", -1), ("max_concurrency", "x")):
        path = tmp_path / "bad.yaml"
        path.write_text(yaml.safe_dump({"models": {"m": {**base, field: value}}}))
        with pytest.raises(DataError, match=rf"bad.yaml: models.m.{field}:"):
            load_catalog(path)
    path = tmp_path / "ok.yaml"
    spec = {**base, "max_rpm": 30, "max_concurrency": 2, "timeout_s": 7}
    path.write_text(yaml.safe_dump({"models": {"m": spec}}))
    model = load_catalog(path).models["m"]
    assert (model.max_rpm, model.max_concurrency) == (30, 2)
    assert model.completion_kwargs(120.0) == {
        "model": "openai/m",
        "timeout": 7,
        "num_retries": 0,
        "api_base": "http://127.0.0.1:1/v1",
        "api_key": "no-key",
    }


def one_line_error(*args: Any) -> str:
    result = run_cli(*args)
    assert result.code == 1, result
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def test_bad_inputs_are_one_line_errors_and_keep_the_journal(tmp_path: Path) -> None:
    tasks = write_tasks(tmp_path / "tasks.jsonl", QUESTIONS[:2])
    nobody = f"http://127.0.0.1:{free_port()}/v1"
    catalog = write_catalog(tmp_path, {WEAK: nobody, STRONG: nobody})
    out = tmp_path / "out.parquet"
    common = ["--tasks", tasks, "--models", catalog, "-o", out]
    error = one_line_error("collect", *common, "--only", "gpt-9")
    assert str(catalog) in error and "unknown model 'gpt-9'" in error
    bad = tmp_path / "bad.jsonl"
    bad.write_text(tasks.read_text() + '{"id": "x", "kind": "label-match", "prompt": 3}\n')
    error = one_line_error("collect", "--tasks", bad, "--models", catalog, "-o", out)
    assert f"{bad}, line 3, column 'prompt': prompt must be a string" in error
    typo = tmp_path / "typo.yaml"
    typo.write_text(catalog.read_text().replace("price_in", "prise_in", 1))
    error = one_line_error("collect", "--tasks", tasks, "--models", typo, "-o", out)
    assert f"{typo}: models.smollm2.price_in: Field required" in error

    # Nothing listens: every call fails (refused, no retries asked), the cells are NaN and
    # counted, and the journal is kept so that --resume can try them again.
    result = run_cli("collect", *common, "--retries", "0", "--json")
    assert result.code == 0, result.stderr
    summary = json.loads(result.stdout)
    assert (summary["failures"], summary["calls"]) == (4, 0)
    assert summary["journal"] == str(journal_path(out))
    data = RoutingData.load(out)
    assert np.isnan(data.score).all() and data.sample_responses.tolist() == [[[None]] * 2] * 2
    assert any(
        note.startswith("4 of 4 calls failed (qwen-coder: 2, smollm2: 2)") for note in data.notes
    )

    error = one_line_error("collect", *common)
    assert error == f"error: {journal_path(out)} exists: pass --resume, or delete it"
    error = one_line_error("collect", *common, "--resume", "--only", WEAK)
    assert "was written for models smollm2, qwen-coder; this run has smollm2" in error
    other = write_tasks(tmp_path / "other.jsonl", QUESTIONS[2:4])
    error = one_line_error("collect", "--tasks", other, "--models", catalog, "-o", out, "--resume")
    assert "was written for another task file" in error
    error = one_line_error("collect", *common, "--resume", "--samples", "2")
    assert "was written with --samples 1; this run has 2" in error
    assert journal_path(out).exists()  # refusing touched nothing
    assert "must be at least 1" in one_line_error("collect", *common, "--concurrency", "0")
    error = one_line_error("score", tmp_path / "missing.parquet", "--tasks", tasks, "-o", out)
    assert "missing.parquet: no such file" in error
    judged = tmp_path / "judged.jsonl"
    judged.write_text(
        json.dumps({"id": "j", "kind": "judge", "prompt": "Hi", "reference": "Hello"})
    )
    error = one_line_error("collect", "--tasks", judged, "--models", catalog, "-o", tmp_path / "j")
    assert error == "error: 1 judge task(s) (j) need a judge: pass --judge MODEL"
    error = one_line_error(
        "collect", "--tasks", judged, "--models", catalog, "-o", out, "--judge", "x"
    )
    assert f"{catalog}: unknown model 'x' in --judge" in error


def test_resume_scores_journaled_answers_without_calling_again(tmp_path: Path) -> None:
    """A run killed after answers arrived but before they were scored: the journal holds them
    as ``called``, and --resume scores them with no call (here nothing even listens)."""
    tasks = write_tasks(tmp_path / "tasks.jsonl", QUESTIONS[:2])
    nobody = f"http://127.0.0.1:{free_port()}/v1"
    catalog = write_catalog(tmp_path, {WEAK: nobody})
    out = tmp_path / "out.parquet"
    options = quiet(retry=RetryPolicy(attempts=1))
    assert collect_files(tasks, catalog, out, options=options).summary["failures"] == 2
    db = sqlite3.connect(journal_path(out))
    meta = {k: json.loads(v) for k, v in db.execute("SELECT key, value FROM meta")}
    db.close()
    meta.pop("format")
    journal = Journal.open(journal_path(out), meta, resume=True)
    for i, answer in enumerate(["It is 4.", "Lyon"]):
        journal.record_call((f"q{i}", WEAK, 0), Call(answer, 20, 3, 0.5), cached=False, attempts=1)
    journal.close()
    result = collect_files(tasks, catalog, out, options=quiet(resume=True))
    assert (result.summary["calls"], result.summary["failures"]) == (0, 0)
    assert result.data.responses[:, 0].tolist() == ["It is 4.", "Lyon"]
    assert result.data.score[:, 0].tolist() == [1.0, 0.0]  # "Paris" is not in "Lyon"
    assert result.data.tokens_in[:, 0].tolist() == [20, 20] and not journal_path(out).exists()


def test_select_models_keeps_the_order_of_only(tmp_path: Path) -> None:
    catalog = write_catalog(tmp_path, {WEAK: "http://a/v1", STRONG: "http://b/v1"})
    assert [m.name for m in select_models(catalog, [STRONG, WEAK])] == [STRONG, WEAK]
    with pytest.raises(CodynError, match="more than once"):
        select_models(catalog, [WEAK, WEAK])


# -- against the local llama.cpp servers -----------------------------------------------------------


@pytest.mark.backend
def test_collect_then_cache_then_rescore(proxies: dict[str, CountingProxy], tmp_path: Path) -> None:
    tasks = write_tasks(tmp_path / "tasks.jsonl", QUESTIONS[:4])
    catalog = write_catalog(tmp_path, via(proxies))
    before = requests(proxies)
    first = collect_files(tasks, catalog, tmp_path / "a.parquet", options=quiet(concurrency=4))
    assert requests(proxies) - before == 8  # 4 tasks x 2 models, one call each
    data = RoutingData.load(tmp_path / "a.parquet")
    assert (data.n_prompts, data.model_names, data.samples.shape) == (4, [WEAK, STRONG], (4, 2, 1))
    assert data.texts == [q for q, _ in QUESTIONS[:4]]
    assert set(data.tasks) == {"qa"} and data.prompts["metadata"][0]["kind"] == "label-match"
    assert data.cost_basis == "tokens_x_price" and not journal_path(tmp_path / "a.parquet").exists()
    for i, (_, label) in enumerate(QUESTIONS[:4]):
        for j, model in enumerate(data.models):
            answer = data.responses[i, j]
            assert isinstance(answer, str) and answer == data.sample_responses[i, j, 0]
            assert data.score[i, j] == float(label.casefold() in answer.casefold())
            assert data.visible_score[i, j] == float(len(answer) <= 80)
            assert 0 < data.tokens_out[i, j] <= 12 and data.tokens_in[i, j] > 5
            expected = (
                data.tokens_in[i, j] * model.input_price
                + data.tokens_out[i, j] * model.output_price
            ) / 1e6
            assert data.cost[i, j] == pytest.approx(expected)
            assert data.latency[i, j] > 0
    summary = first.summary
    assert (summary["calls"], summary["cached"], summary["failures"]) == (8, 0, 0)
    assert summary["executions"] == 8 and summary["tokens"] == int(
        (data.tokens_in + data.tokens_out).sum()
    )
    assert summary["cost_usd"] == pytest.approx(float(data.cost.sum()))

    # Collected again: every answer comes from the cache, no request reaches a backend.
    before = requests(proxies)
    again = collect_files(tasks, catalog, tmp_path / "b.parquet", options=quiet(concurrency=4))
    assert requests(proxies) == before
    assert (again.summary["calls"], again.summary["cached"], again.summary["cost_usd"]) == (
        0,
        8,
        0.0,
    )
    assert_same_outcomes(again.data, data)
    np.testing.assert_array_equal(again.data.latency, data.latency)  # the recorded latency

    # `codyn score` with edited tests re-scores the stored answers and calls nothing.
    edited = write_tasks(
        tmp_path / "edited.jsonl", [(q, "zebra-never-said") for q, _ in QUESTIONS[:4]]
    )
    result = run_cli(
        "score", tmp_path / "a.parquet", "--tasks", edited, "-o", tmp_path / "c.parquet", "--json"
    )
    assert result.code == 0, result.stderr
    assert requests(proxies) == before
    rescored = RoutingData.load(tmp_path / "c.parquet")
    assert (rescored.score == 0).all() and json.loads(result.stdout)["rescored"] == 8
    for name in ("tokens_in", "tokens_out", "cost", "latency"):
        np.testing.assert_array_equal(getattr(rescored, name), getattr(data, name))
    assert rescored.sample_responses.tolist() == data.sample_responses.tolist()
    result = run_cli(
        "score", tmp_path / "c.parquet", "--tasks", tasks, "-o", tmp_path / "d.parquet", "--json"
    )
    assert result.code == 0, result.stderr
    np.testing.assert_array_equal(RoutingData.load(tmp_path / "d.parquet").score, data.score)


@pytest.mark.backend
def test_samples_give_pass_at_k(proxies: dict[str, CountingProxy], tmp_path: Path) -> None:
    tasks = write_tasks(tmp_path / "tasks.jsonl", QUESTIONS[:2])
    catalog = write_catalog(tmp_path, via(proxies, WEAK))
    before = requests(proxies)
    result = run_cli(
        "collect",
        "--tasks",
        tasks,
        "--models",
        catalog,
        "-o",
        tmp_path / "k.parquet",
        "--samples",
        "3",
        "--max-tokens",
        "8",
        "--json",
    )
    assert result.code == 0, result.stderr
    assert requests(proxies) - before == 6  # a call per sample
    summary = json.loads(result.stdout)
    data = RoutingData.load(tmp_path / "k.parquet")
    assert data.samples.shape == (2, 1, 3) and data.sample_responses.shape == (2, 1, 3)
    assert "temperature 0.8" in data.notes[0]
    np.testing.assert_allclose(data.score, data.samples.mean(axis=2))
    assert summary["k"] == 3
    assert summary["pass_at_1"][WEAK] == pytest.approx(float(data.score.mean()))
    expected = float(np.mean(data.samples[:, 0, :].max(axis=1)))  # pass@3 of 3 samples: any
    assert summary["pass_at_k"][WEAK] == pytest.approx(expected)
    for key in (
        "n_prompts",
        "models",
        "calls",
        "cached",
        "failures",
        "executions",
        "tokens",
        "cost_usd",
        "elapsed_s",
        "calls_per_s",
        "output",
    ):
        assert key in summary


@pytest.mark.backend
def test_a_backend_killed_mid_run_is_retried_until_it_is_back(
    llama: dict[str, LlamaServer],  # noqa: F811
    proxies: dict[str, CountingProxy],
    tmp_path: Path,
) -> None:
    tasks = read_tasks(write_tasks(tmp_path / "tasks.jsonl", QUESTIONS[:4]))
    models = list(load_catalog(write_catalog(tmp_path, via(proxies, STRONG))).models.values())
    proxy, server = proxies[STRONG], llama[STRONG]
    start, refused = proxy.requests, proxy.refused
    # Generous on purpose: at least ~36 s of backoff in all, while a restart takes seconds.
    options = quiet(concurrency=1, retry=RetryPolicy(attempts=40, base_s=0.1, cap_s=2.0))
    outcome: list[Any] = []

    def run() -> None:
        try:
            outcome.append(collect(tasks, models, tmp_path / "r.parquet", options))
        except BaseException as exc:
            outcome.append(exc)

    worker = threading.Thread(target=run)
    worker.start()
    try:
        wait_until(lambda: proxy.requests - start >= 2, "the second call")
        server.kill()
        wait_until(lambda: proxy.refused > refused, "a call refused while the backend is down")
        server.start()
    finally:
        ensure_running(server)
        worker.join(600)
    result = outcome[0]
    assert not isinstance(result, BaseException), result
    assert result.summary["failures"] == 0 and result.summary["retries"] >= 1
    assert not np.isnan(result.data.score).any()
    assert all(isinstance(a, str) for a in result.data.responses[:, 0])


@pytest.mark.backend
def test_a_context_overflow_fails_once_and_resume_retries_only_it(
    proxies: dict[str, CountingProxy], tmp_path: Path
) -> None:
    long = "Repeat after me: " + " ".join(f"word{i}" for i in range(400))
    tasks = write_tasks(tmp_path / "tasks.jsonl", [QUESTIONS[0], (long, "word0")])
    catalog = write_catalog(tmp_path, via(proxies, WEAK))
    out = tmp_path / "o.parquet"
    before = requests(proxies)
    result = collect_files(tasks, catalog, out, options=quiet())
    assert requests(proxies) - before == 2  # a 400 is not retried
    assert result.summary["failures"] == 1 and result.summary["retries"] == 0
    assert not np.isnan(result.data.score[0, 0]) and np.isnan(result.data.score[1, 0])
    assert result.data.responses[1, 0] is None
    assert "1 of 2 calls failed (smollm2: 1)" in result.data.notes[1]
    assert "ContextWindowExceeded" in result.data.notes[1] or "context" in result.data.notes[1]
    assert journal_path(out).exists()
    before = requests(proxies)
    resumed = collect_files(tasks, catalog, out, options=quiet(resume=True))
    assert requests(proxies) - before == 1  # only the failed call is tried again
    assert (resumed.summary["resumed"], resumed.summary["failures"]) == (1, 1)
    assert resumed.data.responses[0, 0] == result.data.responses[0, 0]


@pytest.mark.backend
def test_per_model_limits_cap_calls_in_flight_and_space_them(
    proxies: dict[str, CountingProxy], tmp_path: Path
) -> None:
    tasks = write_tasks(tmp_path / "tasks.jsonl", QUESTIONS[:3])
    limits = {WEAK: {"max_concurrency": 1, "max_rpm": 30}}  # one at a time, one per 2 s
    catalog = write_catalog(tmp_path, via(proxies, WEAK), **limits)
    proxy = proxies[WEAK]
    proxy.max_in_flight, first = proxy.in_flight, len(proxy.arrivals)
    result = collect_files(
        tasks, catalog, tmp_path / "c.parquet", options=quiet(concurrency=4, cache=False)
    )
    assert result.summary["calls"] == 3 and proxy.max_in_flight == 1
    # Starts 2 s apart (a second of slack for the client between its slot and the send; a
    # slow machine only widens the gaps). Unlimited, they follow each call, ~0.5 s apart.
    assert (np.diff(proxy.arrivals[first:]) >= 1.0).all()


@pytest.mark.backend
def test_kill_9_then_resume_loses_no_finished_call_and_repeats_none(
    proxies: dict[str, CountingProxy], tmp_path: Path
) -> None:
    tasks = write_tasks(tmp_path / "tasks.jsonl", QUESTIONS)
    catalog = write_catalog(tmp_path, via(proxies))
    out = tmp_path / "k.parquet"
    journal = journal_path(out)
    total = len(QUESTIONS) * 2
    command = [
        sys.executable,
        "-c",
        CLI,
        "collect",
        "--tasks",
        str(tasks),
        "--models",
        str(catalog),
        "-o",
        str(out),
        "--max-tokens",
        "12",
        "--concurrency",
        "2",
        "--no-cache",
        "--json",
    ]
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE"}
    before = requests(proxies)
    process = subprocess.Popen(
        command, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        wait_until(
            lambda: (
                process.poll() is not None
                or sum(s != "failed" for s, _ in journal_rows(journal).values()) >= 4
            ),
            "four finished calls in the journal",
        )
        assert process.poll() is None, process.stderr.read().decode() if process.stderr else ""
        helpers = descendants(process.pid)  # the forkserver and the scoring processes
        process.send_signal(signal.SIGKILL)
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()
    assert process.returncode == -signal.SIGKILL
    assert len(helpers) >= 2
    wait_until(lambda: not running(helpers), "the killed run's helper processes to exit", 60)
    finished = {key: row for key, row in journal_rows(journal).items() if row[0] != "failed"}
    asked_before_kill = requests(proxies) - before
    assert 4 <= len(finished) < total and asked_before_kill >= len(finished)

    resumed = subprocess.run(
        [*command, "--resume"], cwd=REPO, env=env, capture_output=True, text=True, timeout=600
    )
    assert resumed.returncode == 0, resumed.stderr
    asked_on_resume = requests(proxies) - before - asked_before_kill
    # Every unfinished job asked exactly once more; no finished one asked again.
    assert asked_on_resume == total - len(finished)
    summary = json.loads(resumed.stdout)
    assert summary["calls"] == total - len(finished)
    assert summary["resumed"] == sum(status == "scored" for status, _ in finished.values())
    data = RoutingData.load(out)
    assert not np.isnan(data.score).any() and not journal.exists()
    for (task_id, model, sample), (_, response) in finished.items():
        i, j = data.prompt_ids.index(task_id), data.model_index(model)
        assert data.sample_responses[i, j, sample] == response  # kept, not asked again

    # The same collection never killed gives the same data.
    reference = collect_files(
        tasks, catalog, tmp_path / "ref.parquet", options=quiet(concurrency=2, cache=False)
    )
    assert_same_outcomes(data, reference.data)
    print(
        f"kill -9: {len(finished)} of {total} calls journaled at the kill "
        f"({summary['resumed']} scored), {asked_before_kill} requests before it, "
        f"{asked_on_resume} on resume"
    )


@pytest.mark.backend
def test_ray_executor_collects_the_same_data(
    proxies: dict[str, CountingProxy], tmp_path: Path
) -> None:
    try:
        import ray
    except ImportError:
        pytest.fail("Ray is not installed: pip install 'codyn[ray]'")
    tasks = write_tasks(tmp_path / "tasks.jsonl", QUESTIONS[:2])
    catalog = write_catalog(tmp_path, via(proxies, WEAK))
    options = quiet(concurrency=2, cache=False)
    local = collect_files(tasks, catalog, tmp_path / "local.parquet", options=options)
    # A local Ray; its workers find the test kind as a cluster finds user code: PYTHONPATH.
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": str(REPO)}})  # fmt: skip
    try:
        before = requests(proxies)
        ray_options = quiet(concurrency=2, cache=False, executor="ray")
        on_ray = collect_files(tasks, catalog, tmp_path / "ray.parquet", options=ray_options)
        assert requests(proxies) - before == 2
    finally:
        ray.shutdown()
    assert on_ray.summary["calls"] == 2 and on_ray.summary["executions"] == 2
    assert_same_outcomes(on_ray.data, local.data)


@pytest.mark.backend
def test_real_kinds_function_and_classify_run_in_the_sandbox(
    proxies: dict[str, CountingProxy], tmp_path: Path
) -> None:
    from codyn.collect.kinds import ScoringContext, kind_of

    add = {
        "id": "add", "kind": "function", "entry_point": "add",
        "prompt": "Write a Python function add(a, b) that returns the sum of a and b.",
        "visible_tests": ["assert add(1, 2) == 3"],
        "hidden_tests": ["assert add(1, 2) == 3", "assert add(-1, 1) == 0",
                         "assert add(2, 5) == 7"],
    }  # fmt: skip
    injection = {
        "id": "sql", "kind": "classify", "label": "Yes",
        "fields": {"code": "def find(cursor, name):\n    cursor.execute(\"SELECT * FROM t "
                           "WHERE name = '\" + name + \"'\")\n"},
    }  # fmt: skip
    tasks = tmp_path / "tasks.jsonl"
    tasks.write_text("".join(json.dumps(t) + "\n" for t in (add, injection)), encoding="utf-8")
    catalog = write_catalog(tmp_path, via(proxies))
    out = tmp_path / "real.parquet"
    result = run_cli("collect", "--tasks", tasks, "--models", catalog, "-o", out,
                     "--max-tokens", "64", "--json")  # fmt: skip
    assert result.code == 0, result.stderr
    summary = json.loads(result.stdout)
    data = RoutingData.load(out)
    assert summary["failures"] == 0 and summary["executions"] > 0
    assert not np.isnan(data.visible_score[0]).any() and np.isnan(data.visible_score[1]).all()
    assert data.prompts["metadata"][0] == {"kind": "function", "entry_point": "add"}
    executions = 0
    for i, task in enumerate(read_tasks(tasks)):
        for j in range(2):
            again = kind_of(task).score(task, data.responses[i, j], ScoringContext())
            assert data.score[i, j] == again.score  # the pool scored as the kind does
            executions += again.executions
    assert summary["executions"] == executions  # each distinct test a sandboxed run

    # A broken hidden test fails every answer: `codyn score` sees it without calling a model.
    broken = {**add, "hidden_tests": ["assert add(1, 2) == 4"]}
    edited = tmp_path / "broken.jsonl"
    edited.write_text("".join(json.dumps(t) + "\n" for t in (broken, injection)), encoding="utf-8")
    before = requests(proxies)
    result = run_cli("score", out, "--tasks", edited, "-o", tmp_path / "re.parquet", "--json")
    assert result.code == 0, result.stderr
    assert requests(proxies) == before and json.loads(result.stdout)["executions"] > 0
    rescored = RoutingData.load(tmp_path / "re.parquet")
    assert (rescored.score[0] == 0).all()
    np.testing.assert_array_equal(rescored.score[1], data.score[1])


@pytest.mark.backend
def test_a_catalog_judge_scores_judge_tasks_from_the_scoring_processes(
    proxies: dict[str, CountingProxy], tmp_path: Path
) -> None:
    from codyn.collect.executors import JudgeCall
    from codyn.collect.kinds import ScoringContext

    line = {"id": "j", "kind": "judge", "prompt": "Name a primary colour.", "reference": "Red."}
    path = tmp_path / "judge.jsonl"
    path.write_text(json.dumps(line) + "\n", encoding="utf-8")
    catalog = load_catalog(write_catalog(tmp_path, via(proxies)))
    judge = JudgeCall(catalog.models[STRONG], max_tokens=16)
    options = quiet(cache=False, scoring=ScoringContext(judge=judge))
    weak_before, strong_before = proxies[WEAK].requests, proxies[STRONG].requests
    result = collect(read_tasks(path), [catalog.models[WEAK]], tmp_path / "j.parquet", options)
    assert proxies[WEAK].requests - weak_before == 1  # the answer
    assert proxies[STRONG].requests - strong_before == 2  # the judge, in both orders
    assert result.data.score[0, 0] in (0.0, 0.25, 0.5, 0.75, 1.0)
