"""``python -m codyn.bench.local``, the launcher of the two real llama.cpp backends, run as a
user runs it: its help and argument errors, fixed ports, catalog lines printed while it runs
(not at exit), a stop on SIGTERM that takes both servers with it, and a non-zero exit naming
the backend that died. The servers are found as children of the launcher started here: nothing
else is ever signalled. Starting the servers needs the model packages: marked ``backend``.
"""

from __future__ import annotations

import os
import queue
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import pytest

from codyn.bench.local import STRONG, WEAK, free_port

LAUNCHER = [sys.executable, "-m", "codyn.bench.local"]
READY = "(add price_in / price_out; Ctrl-C stops both)"


def children(pid: int) -> dict[str, int]:
    """The llama.cpp servers whose parent is ``pid``, by model alias."""
    found = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            command = (stat.parent / "cmdline").read_bytes().split(b"\0")
        except (OSError, IndexError, ValueError):
            continue  # the process ended while being read
        if parent == pid and b"llama_cpp.server" in command:
            found[command[command.index(b"--model_alias") + 1].decode()] = int(stat.parent.name)
    return found


class Launcher:
    """The launcher in a subprocess, its stdout read line by line as it comes."""

    def __init__(self, *args: str) -> None:
        self.process = subprocess.Popen(
            [*LAUNCHER, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        self.lines: queue.Queue[str] = queue.Queue()
        assert self.process.stdout is not None
        threading.Thread(target=self._read, args=(self.process.stdout,), daemon=True).start()

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            self.lines.put(line.rstrip("\n"))

    def until_ready(self, timeout_s: float = 300.0) -> list[str]:
        """Lines up to the ready line, read while the launcher still runs."""
        printed = []
        while not printed or printed[-1] != READY:
            try:
                printed.append(self.lines.get(timeout=timeout_s))
            except queue.Empty:
                raise AssertionError(f"no ready line while running; printed {printed}") from None
        assert self.process.poll() is None, "the lines came only at exit"
        return printed

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()  # the launcher started here; its servers stop with its own
        self.process.wait(timeout=60)


@pytest.fixture
def launcher() -> Iterator[list[Launcher]]:
    started: list[Launcher] = []
    yield started
    for one in started:  # after a failure: the servers this launcher started, then it
        for pid in children(one.process.pid).values():
            os.kill(pid, signal.SIGKILL)
        one.stop()


def test_help_says_what_it_does_and_bad_ports_are_one_line() -> None:
    shown = subprocess.run([*LAUNCHER, "--help"], capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0 and "--port NAME=PORT" in shown.stdout
    assert "Exits 1, naming it, when a backend dies" in " ".join(shown.stdout.split())
    for value, reason in (
        ("gpt-4=8101", f"expected NAME=PORT with NAME one of {WEAK}, {STRONG}, got 'gpt-4=8101'"),
        (f"{WEAK}=99999", f"{WEAK}: the port must be 1-65535, got '99999'"),
    ):
        bad = subprocess.run(
            [*LAUNCHER, "--port", value], capture_output=True, text=True, timeout=60
        )
        assert (bad.returncode, bad.stdout) == (2, "")
        assert bad.stderr == f"python -m codyn.bench.local: error: argument --port: {reason}\n"


@pytest.mark.backend
def test_a_port_in_use_is_refused_before_anything_starts() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [*LAUNCHER, "--port", f"{STRONG}={port}"], capture_output=True, text=True, timeout=60
        )
    assert result.returncode == 1
    assert result.stderr == f"error: --port {STRONG}={port}: the port is in use\n"


@pytest.mark.backend
def test_lines_come_at_once_and_sigterm_stops_both(launcher: list[Launcher]) -> None:
    launcher.append(one := Launcher())
    printed = one.until_ready()
    assert printed[0] == "models:" and len(printed) == 4
    for line, name in zip(printed[1:3], (WEAK, STRONG), strict=True):
        assert line.startswith(f"  {name}: {{api_base: http://127.0.0.1:")
    servers = children(one.process.pid)
    assert set(servers) == {WEAK, STRONG}
    one.process.send_signal(signal.SIGTERM)
    assert one.process.wait(timeout=60) == 0
    assert not any(Path(f"/proc/{pid}").exists() for pid in servers.values())


@pytest.mark.backend
def test_a_dead_backend_ends_the_launcher_naming_it(launcher: list[Launcher]) -> None:
    port = free_port()
    launcher.append(one := Launcher("--port", f"{WEAK}={port}"))
    api_base = f"http://127.0.0.1:{port}/v1"
    assert one.until_ready()[1] == f"  {WEAK}: {{api_base: {api_base}, context_window: 2048}}"
    servers = children(one.process.pid)
    os.kill(servers[WEAK], signal.SIGKILL)
    assert one.process.wait(timeout=60) == 1
    assert one.process.stderr is not None
    assert one.process.stderr.read() == (
        f"error: backend {WEAK} ({api_base}) was killed by SIGKILL; stopping the others\n"
    )
    assert not Path(f"/proc/{servers[STRONG]}").exists()
