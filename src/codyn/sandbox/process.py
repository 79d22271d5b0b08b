"""Start one program under bubblewrap (or, unsafely, without it) and supervise it.

The parent does everything a limit needs from outside: it reads stdout and stderr with a cap,
holds the wall-clock deadline, and at the end (or at any limit) kills the whole tree: the
bubblewrap process group, which takes the sandbox's pid namespace with it, then every process
still in the run's cgroups. The child sets the rlimits, joins the cgroups and (as root) drops
to uid 65534 between fork and exec. What the sandbox sees is built from memfds: stdin, the
program and its files are copied into a private tmpfs, helper files are bound read-only.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import re
import resource
import selectors
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from codyn.sandbox.cgroups import RunCgroups
from codyn.sandbox.limits import TAIL_BYTES, Limits
from codyn.sandbox.settings import SANDBOX_UID, Interpreter, drops_to_nobody

logger = logging.getLogger("codyn.sandbox")
SANDBOX_WORK = "/tmp"
SANDBOX_DATA = "/codyn"
SIDE_FD = "{side_fd}"
"""Placeholder in a command for the file descriptor of the side channel (JSON lines)."""
PATH = "/usr/local/bin:/usr/bin:/bin"
DRAIN_S = 2.0
"""After the program ends, how long to go on reading output a leftover process holds open."""
PASSWD = b"root:x:0:0:root:/root:/bin/sh\nsandbox:x:65534:65534:sandbox:/tmp:/bin/sh\n"
GROUP = b"root:x:0:\nsandbox:x:65534:\n"


@dataclass
class RawRun:
    """What the supervisor saw; `codyn.sandbox.program.outcome_of` turns it into an Outcome."""

    started: bool
    exit_code: int | None
    signal: int | None
    killed: str | None
    wall_s: float
    cpu_s: float
    stdout: bytes
    stdout_tail: bytes
    stderr_tail: bytes
    oom: bool = False
    setup_error: str | None = None
    peak_processes: int | None = None
    peak_memory_mb: float | None = None
    events: list[dict] = field(default_factory=list)
    sandboxed: bool = True


class _Tail:
    """The last ``size`` bytes of a stream."""

    def __init__(self, size: int = TAIL_BYTES) -> None:
        self.size = size
        self.data = bytearray()

    def add(self, chunk: bytes) -> None:
        self.data += chunk
        if len(self.data) > 2 * self.size:
            del self.data[: -self.size]

    def value(self) -> bytes:
        return bytes(self.data[-self.size :])


def _memfd(name: str, content: bytes) -> int:
    fd = os.memfd_create(f"codyn-{name}", 0)
    view = memoryview(content)
    while view:
        view = view[os.write(fd, view) :]
    os.lseek(fd, 0, os.SEEK_SET)
    return fd


def _rlimits(limits: Limits, *, address_space: bool, nproc: int | None) -> list[tuple]:
    cpu = max(1, math.ceil(limits.cpu_s))
    out = [
        (resource.RLIMIT_CPU, cpu, cpu + 1),
        (resource.RLIMIT_NOFILE, limits.open_files, limits.open_files),
        (resource.RLIMIT_FSIZE, limits.file_bytes, limits.file_bytes),
        (resource.RLIMIT_CORE, 0, 0),
    ]
    if address_space:
        size = limits.memory_mb * 1024 * 1024
        out.append((resource.RLIMIT_AS, size, size))
    if nproc is not None:
        out.append((resource.RLIMIT_NPROC, nproc, nproc))
    return out


def _processes_of(uid: int) -> int:
    """How many processes ``uid`` runs now (RLIMIT_NPROC counts them all)."""
    count = 0
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if os.stat(entry.path).st_uid == uid:
                    count += 1
    return count


def _child_setup(
    procs_fds: Sequence[int], rlimits: Sequence[tuple], uid: int | None
) -> Callable[[], None]:
    """What the child does between fork and exec: join the cgroups, set the limits, drop to
    ``uid``. Only system calls on values prepared here (no imports, no locks), so it is safe
    in a process with threads."""

    def setup() -> None:
        for fd in procs_fds:
            os.write(fd, b"0")
        for which, soft, hard in rlimits:
            resource.setrlimit(which, (soft, hard))
        if uid is not None:
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)

    return setup


def shm_bytes(limits: Limits) -> int:
    """The size of the sandbox's /dev/shm: a quarter of its /tmp."""
    return max(1_000_000, limits.tmp_bytes // 4)


def _bwrap_options(
    *,
    version: tuple[int, ...],
    python: Interpreter,
    limits: Limits,
    files: Mapping[str, int],
    data: Mapping[str, int],
    status_fd: int,
    passwd_fds: tuple[int, int],
) -> list[str]:
    """bubblewrap's options: every namespace, no capability, the system read-only, a private
    tmpfs as /tmp and the working directory, a clean environment."""
    opts = ["--unshare-all", "--unshare-user", "--die-with-parent", "--new-session"]
    if version >= (0, 8):
        opts += ["--disable-userns"]
    opts += ["--cap-drop", "ALL", "--hostname", "sandbox"]
    opts += ["--ro-bind", "/usr", "/usr"]
    for top in ("bin", "sbin", "lib", "lib32", "lib64", "libx32"):
        host = Path("/") / top
        if host.is_symlink():
            opts += ["--symlink", os.readlink(host), f"/{top}"]
        elif host.is_dir():
            opts += ["--ro-bind", str(host), f"/{top}"]
    for etc in ("ld.so.cache", "localtime", "alternatives"):
        opts += ["--ro-bind-try", f"/etc/{etc}", f"/etc/{etc}"]
    opts += ["--ro-bind-data", str(passwd_fds[0]), "/etc/passwd"]
    opts += ["--ro-bind-data", str(passwd_fds[1]), "/etc/group"]
    if python.prefix:
        opts += ["--ro-bind", python.prefix, python.prefix]
    # /dev is a tmpfs of bubblewrap's: read-only but for a small /dev/shm (multiprocessing).
    opts += ["--proc", "/proc", "--dev", "/dev"]
    opts += ["--size", str(shm_bytes(limits)), "--tmpfs", "/dev/shm", "--remount-ro", "/dev"]
    opts += ["--size", str(limits.tmp_bytes), "--tmpfs", SANDBOX_WORK]
    made: set[str] = set()
    for name, fd in files.items():
        parent = os.path.dirname(name)
        chain = []
        while parent and parent not in made:
            chain.append(parent)
            made.add(parent)
            parent = os.path.dirname(parent)
        for folder in reversed(chain):
            opts += ["--dir", f"{SANDBOX_WORK}/{folder}"]
        opts += ["--file", str(fd), f"{SANDBOX_WORK}/{name}"]
    for name, fd in data.items():
        opts += ["--ro-bind-data", str(fd), f"{SANDBOX_DATA}/{name}"]
    opts += ["--remount-ro", "/", "--chdir", SANDBOX_WORK]
    opts += ["--clearenv", "--setenv", "PATH", PATH, "--setenv", "HOME", SANDBOX_WORK]
    opts += ["--setenv", "LANG", "C.UTF-8", "--setenv", "TMPDIR", SANDBOX_WORK]
    opts += ["--json-status-fd", str(status_fd)]
    return opts


class _Supervisor:
    """Reads a started child's output and side channel until it exits or hits a limit."""

    def __init__(
        self,
        proc: subprocess.Popen,
        limits: Limits,
        side_fd: int | None,
        on_event: Callable[[dict, float], float | None] | None,
    ) -> None:
        self.proc = proc
        self.limits = limits
        self.on_event = on_event
        self.start = time.monotonic()
        self.deadline = self.start + limits.wall_s
        self.stdout = bytearray()
        self.tails = {"stdout": _Tail(), "stderr": _Tail()}
        self.total = 0
        self.killed: str | None = None
        self.events: list[dict] = []
        self._line = bytearray()
        self.side_cap = 4 * limits.output_bytes + 65536
        self.selector = selectors.DefaultSelector()
        assert proc.stdout is not None and proc.stderr is not None
        self.selector.register(proc.stdout, selectors.EVENT_READ, "stdout")
        self.selector.register(proc.stderr, selectors.EVENT_READ, "stderr")
        if side_fd is not None:
            self.selector.register(side_fd, selectors.EVENT_READ, "side")
        self.pidfd = os.pidfd_open(proc.pid)
        self.selector.register(self.pidfd, selectors.EVENT_READ, "exit")
        self.end: float | None = None

    def _take(self, name: str, chunk: bytes) -> None:
        if name == "side":
            self._line += chunk
            while b"\n" in self._line:
                line, _, rest = bytes(self._line).partition(b"\n")
                self._line = bytearray(rest)
                self._event(line)
            if len(self._line) > self.side_cap:
                self.killed = self.killed or "output_limit"
            return
        room = self.limits.output_bytes - self.total
        self.total += len(chunk)
        if name == "stdout" and room > 0:
            self.stdout += chunk[:room]
        self.tails[name].add(chunk)
        if self.total > self.limits.output_bytes:
            self.killed = self.killed or "output_limit"

    def _event(self, line: bytes) -> None:
        try:
            event = json.loads(line)
        except ValueError:
            return
        if not isinstance(event, dict):
            return
        now = time.monotonic()
        event["_t"] = now - self.start
        self.events.append(event)
        if self.on_event is not None:
            deadline = self.on_event(event, now)
            if deadline is not None:
                self.deadline = deadline

    def _read_ready(self, timeout: float) -> bool:
        """One select round; True once the child has exited."""
        exited = False
        for key, _ in self.selector.select(max(0.0, timeout)):
            if key.data == "exit":
                exited = True
                continue
            try:
                chunk = os.read(key.fd, 65536)
            except BlockingIOError:
                continue
            if not chunk:
                self.selector.unregister(key.fileobj)
                continue
            self._take(key.data, chunk)
        return exited

    def watch(self) -> None:
        """Until the child exits, its time is up or its output passes the cap."""
        while self.killed is None:
            remaining = self.deadline - time.monotonic()
            if remaining <= 0:
                self.killed = "timeout"
                break
            if self._read_ready(remaining):
                break
        self.end = time.monotonic()

    def drain(self) -> None:
        """Read what is left in the pipes (the child has exited or been killed)."""
        with contextlib.suppress(ValueError, KeyError):
            self.selector.unregister(self.pidfd)
        stop = time.monotonic() + DRAIN_S
        while len(self.selector.get_map()) and time.monotonic() < stop:
            self._read_ready(stop - time.monotonic())
        self.selector.close()
        os.close(self.pidfd)


def _kill_tree(proc: subprocess.Popen, cgroups: RunCgroups | None) -> None:
    """SIGKILL the child's process group (the child is not reaped yet, so the group id cannot
    have been reused), then everything in the run's cgroups."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    if cgroups is not None:
        cgroups.kill_all()


def _reap(proc: subprocess.Popen) -> tuple[int, float]:
    """Wait for the child; its exit code as subprocess gives it and the CPU seconds it and its
    waited-for descendants used."""
    while True:
        try:
            _, status, usage = os.wait4(proc.pid, 0)
            break
        except ChildProcessError:
            return (proc.returncode if proc.returncode is not None else -signal.SIGKILL), 0.0
        except InterruptedError:
            continue
    code = os.waitstatus_to_exitcode(status)
    proc.returncode = code
    return code, usage.ru_utime + usage.ru_stime


def _supervise(
    argv: Sequence[str],
    *,
    limits: Limits,
    stdin_fd: int,
    pass_fds: Sequence[int],
    close_after_start: Sequence[int],
    side: tuple[int, int] | None,
    on_event: Callable[[dict, float], float | None] | None,
    cwd: str,
    env: Mapping[str, str],
    address_space: bool,
    sandboxed: bool,
) -> tuple[_Supervisor, _CgroupStats, int, float]:
    try:
        cgroups: RunCgroups | None = RunCgroups(limits, extra_processes=2 if sandboxed else 0)
    except OSError:
        cgroups = None
    uid = SANDBOX_UID if drops_to_nobody() else None
    nproc = None
    if cgroups is None or not cgroups.limits_processes:
        extra = 2 if sandboxed else 0
        nproc = limits.processes + _processes_of(uid if uid is not None else os.geteuid()) + extra
    setup = _child_setup(
        cgroups.procs_fds if cgroups else [],
        _rlimits(limits, address_space=address_space, nproc=nproc),
        uid,
    )
    try:
        proc = subprocess.Popen(
            list(argv),
            stdin=stdin_fd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            pass_fds=tuple(pass_fds),
            cwd=cwd,
            env=dict(env),
            start_new_session=True,
            preexec_fn=setup,
        )
    except BaseException:
        if cgroups is not None:
            cgroups.close()
        if side is not None:
            os.close(side[0])
        raise
    finally:
        for fd in close_after_start:
            with contextlib.suppress(OSError):
                os.close(fd)
    supervisor: _Supervisor | None = None
    watched = False
    try:
        supervisor = _Supervisor(proc, limits, side[0] if side else None, on_event)
        supervisor.watch()
        watched = True
    finally:
        if not watched or (supervisor is not None and supervisor.killed is not None):
            _kill_tree(proc, cgroups)
        code, cpu = _reap(proc)
        stats = _CgroupStats.of(cgroups)  # also kills whatever outlived the program
        if supervisor is not None:
            supervisor.drain()
        assert proc.stdout is not None and proc.stderr is not None
        proc.stdout.close()
        proc.stderr.close()
        if side is not None:
            os.close(side[0])
    if stats.cpu_s is not None:
        cpu = stats.cpu_s  # rusage misses what bubblewrap's init reaped
    return supervisor, stats, code, cpu


@dataclass
class _CgroupStats:
    oom: bool = False
    cpu_s: float | None = None
    peak_processes: int | None = None
    peak_memory_mb: float | None = None

    @classmethod
    def of(cls, cgroups: RunCgroups | None) -> _CgroupStats:
        """Kill what is left in the run's cgroups, read their figures, remove them."""
        if cgroups is None:
            return cls()
        try:
            cgroups.kill_all()  # a setsid'd daemon that outlived the program, say
            return cls(
                cgroups.oom_killed(),
                cgroups.cpu_s(),
                cgroups.peak_processes(),
                cgroups.peak_memory_mb(),
            )
        finally:
            if not cgroups.close():
                logger.warning("codyn.sandbox: could not kill or remove cgroup %s", cgroups.name)


def _finish(
    supervisor: _Supervisor,
    stats: _CgroupStats,
    code: int,
    cpu: float,
    *,
    started: bool,
    setup_error: str | None,
    sandboxed: bool,
) -> RawRun:
    killed = supervisor.killed
    if killed is None and supervisor.total > supervisor.limits.output_bytes:
        killed = "output_limit"  # flooded and exited before the cap was noticed
    exit_code: int | None = code if code >= 0 else None
    sig = -code if code < 0 else None
    if sandboxed and code > 128 and code - 128 < signal.NSIG:
        sig = code - 128  # bubblewrap passes a signal on as 128 + its number
    end = supervisor.end if supervisor.end is not None else time.monotonic()
    return RawRun(
        started=started,
        exit_code=exit_code,
        signal=sig,
        killed=killed,
        wall_s=end - supervisor.start,
        cpu_s=cpu,
        stdout=bytes(supervisor.stdout),
        stdout_tail=supervisor.tails["stdout"].value(),
        stderr_tail=supervisor.tails["stderr"].value(),
        oom=stats.oom,
        setup_error=setup_error,
        peak_processes=stats.peak_processes,
        peak_memory_mb=stats.peak_memory_mb,
        events=supervisor.events,
        sandboxed=sandboxed,
    )


def _fill(argv: Sequence[str], work: str, data_dir: str, side_fd: int | None) -> list[str]:
    out = []
    for arg in argv:
        arg = arg.replace("{work}", work).replace("{data}", data_dir)
        if side_fd is not None:
            arg = arg.replace(SIDE_FD, str(side_fd))
        out.append(arg)
    return out


def spawn_sandboxed(
    argv: Sequence[str],
    *,
    limits: Limits,
    bwrap: str,
    bwrap_version: tuple[int, ...],
    python: Interpreter,
    stdin: bytes = b"",
    files: Mapping[str, bytes] | None = None,
    data: Mapping[str, bytes] | None = None,
    side_channel: bool = False,
    on_event: Callable[[dict, float], float | None] | None = None,
    address_space: bool = True,
) -> RawRun:
    """Run ``argv`` under bubblewrap. ``files`` land (writable) in the working directory,
    ``data`` read-only under /codyn; ``{work}``, ``{data}`` and ``{side_fd}`` in ``argv`` name
    them and the side channel's descriptor (JSON lines the sandbox writes; ``on_event`` sees
    each and may return a new wall-clock deadline)."""
    opened: list[int] = []
    try:
        stdin_fd = _memfd("stdin", stdin)
        opened.append(stdin_fd)
        file_fds = {}
        for name, content in (files or {}).items():
            file_fds[name] = _memfd("file", content)
            opened.append(file_fds[name])
        data_fds = {}
        for name, content in (data or {}).items():
            data_fds[name] = _memfd("data", content)
            opened.append(data_fds[name])
        passwd_fds = (_memfd("passwd", PASSWD), _memfd("group", GROUP))
        opened += passwd_fds
        status_r, status_w = os.pipe()
        opened += [status_r, status_w]
        os.set_blocking(status_r, False)
        side = os.pipe() if side_channel else None
        if side is not None:
            opened.append(side[1])
        opts = _bwrap_options(
            version=bwrap_version,
            python=python,
            limits=limits,
            files=file_fds,
            data=data_fds,
            status_fd=status_w,
            passwd_fds=passwd_fds,
        )
        command = _fill(argv, SANDBOX_WORK, SANDBOX_DATA, side[1] if side else None)
        pass_fds = [fd for fd in opened if fd not in (stdin_fd, status_r)]
        opened.remove(status_r)
        supervisor, stats, code, cpu = _supervise(
            [bwrap, *opts, "--", *command],
            limits=limits,
            stdin_fd=stdin_fd,
            pass_fds=pass_fds,
            close_after_start=opened,
            side=side,
            on_event=on_event,
            cwd="/",
            env={"PATH": PATH},
            address_space=address_space,
            sandboxed=True,
        )
        opened = []
    finally:
        for fd in opened:
            with contextlib.suppress(OSError):
                os.close(fd)
    status = _read_all(status_r)
    started = re.search(rb'"child-pid"\s*:\s*\d+', status) is not None
    setup_error = None
    if not started:
        said = supervisor.tails["stderr"].value().decode("utf-8", "replace").strip()
        setup_error = said or f"bubblewrap exited with code {code} before starting the program"
    return _finish(
        supervisor, stats, code, cpu, started=started, setup_error=setup_error, sandboxed=True
    )


def _read_all(fd: int) -> bytes:
    chunks = []
    try:
        while True:
            try:
                chunk = os.read(fd, 65536)
            except BlockingIOError:
                break
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(fd)
    return b"".join(chunks)


def spawn_local(
    argv: Sequence[str],
    *,
    limits: Limits,
    stdin: bytes = b"",
    files: Mapping[str, bytes] | None = None,
    data: Mapping[str, bytes] | None = None,
    side_channel: bool = False,
    on_event: Callable[[dict, float], float | None] | None = None,
    address_space: bool = True,
) -> RawRun:
    """Run ``argv`` WITHOUT a sandbox: rlimits, a new session (process group), a temporary
    working directory and a clean environment only (plus the cgroups where they exist). The
    program can read and write whatever its user can and reach the network."""
    import shutil

    work = tempfile.mkdtemp(prefix="codyn-unsafe-")
    uid = SANDBOX_UID if drops_to_nobody() else None
    try:
        data_dir = os.path.join(work, ".codyn")
        os.mkdir(data_dir)
        for name, content in (files or {}).items():
            target = Path(work, name)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(content)
        for name, content in (data or {}).items():
            Path(data_dir, name).write_bytes(content)
        if uid is not None:
            for root, dirs, names in os.walk(work):
                for entry in [root, *(os.path.join(root, n) for n in dirs + names)]:
                    os.chown(entry, uid, uid)
        stdin_fd = _memfd("stdin", stdin)
        side = os.pipe() if side_channel else None
        opened = [stdin_fd] + ([side[1]] if side else [])
        supervisor, stats, code, cpu = _supervise(
            _fill(argv, work, data_dir, side[1] if side else None),
            limits=limits,
            stdin_fd=stdin_fd,
            pass_fds=[side[1]] if side else [],
            close_after_start=opened,
            side=side,
            on_event=on_event,
            cwd=work,
            env={"PATH": PATH, "HOME": work, "LANG": "C.UTF-8", "TMPDIR": work},
            address_space=address_space,
            sandboxed=False,
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return _finish(supervisor, stats, code, cpu, started=True, setup_error=None, sandboxed=False)
