"""Per-run cgroups (v1 ``pids``, ``memory``, ``cpuacct``): the limits rlimits cannot give, the
run's CPU time, and the list of every process a run started, so that all of them die at its
end.

As root, RLIMIT_NPROC does not hold and RLIMIT_AS is per process (a fork bomb or ten
processes of 100 MB each pass them); a cgroup bounds the run as a whole. Each run gets
``<controller mount>/<this process's cgroup>/codyn/<pid>-<n>-<random>`` (for pids here:
``/sys/fs/cgroup/pids/codyn/...``); the child joins it before it execs bubblewrap, so
everything the run forks is inside. At the end every process still in it is killed (through a
pidfd, after checking it is still in this run's cgroup, so a recycled pid is never signalled)
and the cgroup is removed. Where the controllers are missing or not writable (cgroup v2 only,
not root) runs fall back to rlimits alone.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import secrets
import select
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path

from codyn.sandbox.limits import Limits

CGROUP_MOUNT = Path("/sys/fs/cgroup")
CONTROLLERS = ("pids", "memory", "cpuacct")
"""``cpuacct`` sets no limit: it only counts the CPU time of the whole run."""
PARENT = "codyn"
EXTRA_PROCESSES = 2
"""bubblewrap's own two processes (outside, and its init inside) on top of the program's
(none for an unsandboxed run)."""

_counter = itertools.count()
_lock = threading.Lock()
_bases: dict[str, Path | None] = {}


def _own_path(controller: str) -> str | None:
    """This process's cgroup in ``controller``'s v1 hierarchy, from /proc/self/cgroup."""
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) == 3 and controller in parts[1].split(","):
            return parts[2]
    return None


def _base(controller: str) -> Path | None:
    """The folder this process creates run cgroups in, or None where it cannot."""
    with _lock:
        if controller in _bases:
            return _bases[controller]
        base = None
        mount = CGROUP_MOUNT / controller
        own = _own_path(controller)
        if own is not None and (mount / "cgroup.procs").exists():
            candidate = mount / own.lstrip("/") / PARENT
            try:
                candidate.mkdir(exist_ok=True)
                if os.access(candidate / "cgroup.procs", os.W_OK):
                    base = candidate
                    _remove_stale(candidate)
            except OSError:
                base = None
        _bases[controller] = base
        return base


def _remove_stale(base: Path) -> None:
    """Remove run cgroups left by codyn processes that no longer exist (empty ones only:
    rmdir refuses a cgroup that still holds a process)."""
    for entry in base.iterdir():
        owner = entry.name.partition("-")[0]
        if entry.is_dir() and owner.isdigit() and not Path(f"/proc/{owner}").exists():
            with contextlib.suppress(OSError):
                entry.rmdir()


def cgroup_support() -> dict[str, str | None]:
    """For each controller, the folder run cgroups go in (None: not available here)."""
    return {c: (str(b) if (b := _base(c)) else None) for c in CONTROLLERS}


class RunCgroups:
    """The cgroups of one run. ``procs_fds`` are open ``cgroup.procs`` files the child writes
    ``0`` to (meaning itself) before it execs; `close` kills what is left and removes them."""

    def __init__(self, limits: Limits, *, extra_processes: int = EXTRA_PROCESSES) -> None:
        self.extra = extra_processes
        self.name = f"{os.getpid()}-{next(_counter)}-{secrets.token_hex(3)}"
        self.dirs: dict[str, Path] = {}
        self.procs_fds: list[int] = []
        try:
            for controller in CONTROLLERS:
                base = _base(controller)
                if base is None:
                    continue
                folder = base / self.name
                folder.mkdir()
                self.dirs[controller] = folder
                if controller == "pids":
                    (folder / "pids.max").write_text(str(limits.processes + self.extra))
                elif controller == "memory":
                    self._limit_memory(folder, limits.memory_mb * 1024 * 1024)
                self.procs_fds.append(os.open(folder / "cgroup.procs", os.O_WRONLY | os.O_CLOEXEC))
        except BaseException:
            self.close()
            raise

    @staticmethod
    def _limit_memory(folder: Path, limit: int) -> None:
        (folder / "memory.limit_in_bytes").write_text(str(limit))
        swap = folder / "memory.memsw.limit_in_bytes"
        if swap.exists():
            with contextlib.suppress(OSError):  # swap accounting may be off
                swap.write_text(str(limit))

    @property
    def limits_processes(self) -> bool:
        return "pids" in self.dirs

    @property
    def limits_memory(self) -> bool:
        return "memory" in self.dirs

    def _read(self, controller: str, name: str) -> str | None:
        folder = self.dirs.get(controller)
        if folder is None:
            return None
        try:
            return (folder / name).read_text()
        except OSError:
            return None

    def members(self) -> set[int]:
        """Host pids of the processes in this run's cgroups now."""
        found: set[int] = set()
        for controller in self.dirs:
            text = self._read(controller, "cgroup.procs") or ""
            found.update(int(p) for p in text.split())
        return found

    def oom_killed(self) -> bool:
        """Whether the kernel killed a process of this run for the memory limit."""
        text = self._read("memory", "memory.oom_control")
        if text is None:
            return False
        fields = dict(line.split() for line in text.splitlines() if len(line.split()) == 2)
        if "oom_kill" in fields:
            return int(fields["oom_kill"]) > 0
        return int((self._read("memory", "memory.failcnt") or "0").strip() or 0) > 0

    def peak_processes(self) -> int | None:
        text = self._read("pids", "pids.peak")
        return None if text is None else max(0, int(text) - self.extra)

    def peak_memory_mb(self) -> float | None:
        text = self._read("memory", "memory.max_usage_in_bytes")
        return None if text is None else int(text) / (1024 * 1024)

    def cpu_s(self) -> float | None:
        """CPU seconds the run's processes used, all of them (None without cpuacct)."""
        text = self._read("cpuacct", "cpuacct.usage")
        return None if text is None else int(text) / 1e9

    def _holds(self, pid: int) -> bool:
        """Whether ``pid`` is in this run's cgroup now (read from the process's own view)."""
        try:
            text = Path(f"/proc/{pid}/cgroup").read_text()
        except OSError:
            return False
        return any(line.rstrip().endswith(f"/{PARENT}/{self.name}") for line in text.splitlines())

    def kill_all(self, timeout_s: float = 5.0) -> bool:
        """SIGKILL every process in the run's cgroups and wait for them to go, until none is
        left; False if some survived ``timeout_s``."""
        stop = time.monotonic() + timeout_s
        while True:
            pids = self.members()
            if not pids:
                return True
            if time.monotonic() > stop:
                return False
            pidfds = [fd for pid in pids if (fd := _kill_checked(pid, self._holds)) is not None]
            try:
                _wait_exited(pidfds, min(0.05, max(0.0, stop - time.monotonic())))
            finally:
                for fd in pidfds:
                    os.close(fd)
            if not pidfds:
                time.sleep(0.001)

    def close(self) -> bool:
        """Kill what is left, close the files and remove the cgroups; True when all went."""
        clean = self.kill_all() if self.dirs else True
        for fd in self.procs_fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        self.procs_fds = []
        for folder in self.dirs.values():
            for _ in range(100):
                try:
                    folder.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.01)
            else:
                clean = False
        self.dirs = {}
        return clean


def _kill_checked(pid: int, holds: Callable[[int], bool]) -> int | None:
    """SIGKILL ``pid`` only if it is (still) a process of this run: a pidfd pins the process,
    then its cgroup is checked, so a pid reused by another process is left alone. Returns the
    pidfd (the caller closes it), None when the pid was not signalled."""
    try:
        fd = os.pidfd_open(pid)
    except (OSError, AttributeError):
        return None
    try:
        if holds(pid):
            signal.pidfd_send_signal(fd, signal.SIGKILL)
            return fd
    except OSError:
        pass
    os.close(fd)
    return None


def _wait_exited(pidfds: list[int], timeout_s: float) -> None:
    """Wait until every pidfd says its process has exited, or ``timeout_s`` passes."""
    poller = select.poll()
    for fd in pidfds:
        poller.register(fd, select.POLLIN)
    waiting = set(pidfds)
    stop = time.monotonic() + timeout_s
    while waiting:
        left = stop - time.monotonic()
        if left <= 0:
            return
        for fd, _ in poller.poll(left * 1000):
            waiting.discard(fd)
            poller.unregister(fd)
