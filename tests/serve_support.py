"""Real parts for the proxy's tests: small trained routers, configs, the app served by uvicorn
on a loopback port, the local llama.cpp backends and a throwaway PostgreSQL cluster.

Fixtures here are module-scoped and imported by the test modules that need them. A missing
dependency of a marked suite (llama-cpp-python, PostgreSQL, Chromium) is a test failure that
says what to install, never a skip.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
import uvicorn
import yaml

from codyn.bench.local import STRONG, WEAK, LlamaServer, free_port, local_servers
from codyn.data.routing import Model, RoutingData
from codyn.deploy import PolicySetup
from codyn.routers import make_router
from codyn.serve import create_app

CODE = [
    "Write a Python function that reverses a linked list.",
    "Fix the bug in this code: def add(a, b): return a - b",
    "Implement binary search in Python and explain its complexity.",
    "Write a SQL query that counts orders per customer.",
    "Refactor this Python class to use dataclasses.",
    "Write a unit test for a function that parses dates.",
]
CHAT = [
    "Say hello.",
    "What colour is the sky?",
    "Name a fruit.",
    "Say thank you in French.",
    "What is two plus two?",
    "Give me a one-word greeting.",
]
KEY = "sk-test-alice"


def routing_data(models: tuple[str, str] = (WEAK, STRONG)) -> RoutingData:
    """Twelve prompts: the second model is needed for code, both do chat; the first is cheap."""
    texts = CODE + CHAT
    prompts = pd.DataFrame(
        {
            "id": [f"p{i}" for i in range(len(texts))],
            "text": texts,
            "task": ["code"] * len(CODE) + ["chat"] * len(CHAT),
        }
    )
    score = np.array([[0.0, 1.0]] * len(CODE) + [[1.0, 1.0]] * len(CHAT))
    cost = np.tile([1e-5, 1e-4], (len(texts), 1))
    weak, strong = models
    return RoutingData(
        prompts,
        [Model(weak, 0.1, 0.2), Model(strong, 1.0, 2.0)],
        score=score,
        cost=cost,
        cost_basis="observed",
    )


def router_dir(
    path: Path, spec: str = "sbs", models: tuple[str, str] = (WEAK, STRONG), **params: Any
) -> Path:
    """A fitted router saved as ``codyn train`` saves one (router + policy.json)."""
    data = routing_data(models)
    router = make_router(spec, **params).fit(data)
    router.save(path)
    PolicySetup.from_train(router, data).save(path)
    return path


def model_entry(api_base: str, price_in: float, price_out: float, **extra: Any) -> dict[str, Any]:
    return {"api_base": api_base, "price_in": price_in, "price_out": price_out, **extra}


def write_config(folder: Path, **sections: Any) -> Path:
    """``codyn.yaml`` in ``folder`` with a SQLite log there unless ``database`` is given."""
    sections.setdefault("database", {"url": f"sqlite:///{folder / 'decisions.db'}"})
    path = folder / "codyn.yaml"
    path.write_text(yaml.safe_dump(sections, sort_keys=False), encoding="utf-8")
    return path


class Served:
    """The app for a config served by uvicorn in a thread; `stop` is a graceful shutdown."""

    def __init__(self, config: Path) -> None:
        self.app = create_app(config)
        self.proxy = self.app.state.proxy
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(
            uvicorn.Config(self.app, host="127.0.0.1", port=self.port, log_level="warning")
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self) -> Served:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(60)

    def rows(self) -> list[dict[str, Any]]:
        return self.proxy.log.rows(limit=10_000)

    def row(self, request_id: str, timeout_s: float = 10.0) -> dict[str, Any]:
        """The logged row of one request, waiting for the background writer."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for row in self.rows():
                if row["id"] == request_id:
                    return row
            time.sleep(0.05)
        raise AssertionError(f"no log row for request {request_id}")


class ProxyProcess:
    """The proxy in a process of its own, as ``codyn serve`` runs it (``uvicorn --factory
    codyn.serve.app:app_from_env``), on one port across restarts, its output in ``log``: a
    test may SIGKILL it (`kill`), and read what it printed."""

    def __init__(self, config: Path, log: Path) -> None:
        self.config, self.log, self.port = config, log, free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {**os.environ, "CODYN_CONFIG": str(self.config)}
        command = [
            sys.executable, "-m", "uvicorn", "--factory", "codyn.serve.app:app_from_env",
            "--host", "127.0.0.1", "--port", str(self.port), "--log-level", "warning",
        ]  # fmt: skip
        with open(self.log, "ab") as out:
            self.process = subprocess.Popen(command, env=env, stdout=out, stderr=out)
        deadline = time.monotonic() + 120
        while True:
            assert self.process.poll() is None, self.log.read_text()
            try:
                if httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the proxy did not start"
            time.sleep(0.1)

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        assert self.process.wait(timeout=30) == -signal.SIGKILL

    def stop(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=120)


@contextmanager
def serving(config: Path) -> Iterator[Served]:
    served = Served(config).start()
    try:
        yield served
    finally:
        served.stop()


def wait_for(check: Callable[[], bool], timeout_s: float = 15.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


# -- local llama.cpp backends ------------------------------------------------------------------


@pytest.fixture(scope="module")
def llama(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, LlamaServer]]:
    """SmolLM2 (weak, 256-token window so that long prompts overflow it) and Qwen-Coder
    (strong, 2048) served by llama.cpp; tests that kill one restart it."""
    if importlib.util.find_spec("llama_cpp") is None:
        pytest.fail(
            "llama-cpp-python is not installed: pip install --find-links ~/.cache/codyn-wheels "
            "'llama-cpp-python[server]==0.3.36'"
        )
    servers = local_servers(tmp_path_factory.mktemp("llama-logs"))
    servers[WEAK].n_ctx = 256
    try:
        for server in servers.values():
            server.start()
        yield servers
    finally:
        for server in servers.values():
            server.stop()


def ensure_running(server: LlamaServer) -> None:
    if server.process is None or server.process.poll() is not None:
        server.start()


# -- headless Chromium ---------------------------------------------------------------------------

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        pytest.fail("Chromium is not installed: apt-get install -y chromium chromium-driver")
    from selenium import webdriver

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--window-size=1400,1000", f"--user-data-dir={tmp_path_factory.mktemp('chromium')}",
    ):  # fmt: skip
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(CHROMEDRIVER))
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


# -- PostgreSQL ----------------------------------------------------------------------------------


def _pg_bin(name: str) -> str:
    found = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"))
    if not found:
        pytest.fail("PostgreSQL is not installed: apt-get install -y postgresql")
    return str(found[-1])


class Postgres:
    """A throwaway cluster in a temporary folder, run as the ``postgres`` user on a loopback
    port with trust authentication; `stop` and `start` make a real database outage."""

    def __init__(self, folder: Path) -> None:
        self.folder, self.port = folder, free_port()
        self.data = folder / "data"
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _as_postgres(self, *command: str) -> None:
        runner = ["runuser", "-u", "postgres", "--"] if shutil.which("runuser") else []
        subprocess.run([*runner, *command], check=True, capture_output=True, timeout=120)

    def init(self) -> Postgres:
        shutil.chown(self.folder, "postgres", "postgres")
        self._as_postgres(_pg_bin("initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust")
        return self.start()

    def start(self) -> Postgres:
        options = f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1"
        self._as_postgres(
            _pg_bin("pg_ctl"), "-D", str(self.data), "-o", options, "-l",
            str(self.folder / "postgres.log"), "-w", "start",
        )  # fmt: skip
        return self

    def stop(self) -> None:
        self._as_postgres(_pg_bin("pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")


@pytest.fixture(scope="module")
def postgres() -> Iterator[Postgres]:
    """A cluster in its own folder under /tmp (pytest's are private to root, and PostgreSQL
    refuses to run as root), removed afterwards."""
    folder = Path(tempfile.mkdtemp(prefix="codyn-pg-"))
    folder.chmod(0o755)
    cluster = Postgres(folder).init()
    try:
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(folder, ignore_errors=True)
