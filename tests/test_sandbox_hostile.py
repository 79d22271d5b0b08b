"""The hostile-code battery: programs that attack the machine, run in the real sandbox.

Each attack runs once (a module fixture) and is recorded: its `Outcome` and what the program
reported seeing, as JSON on its last line of stdout. Each test then checks containment from
BOTH sides: what the program could do from inside, and the host state the test can see (a
listener that got no connection, a file still there, no process of the run left). At the end
the test process and its files must be intact and every attack must have an Outcome.

These tests run only inside the sandbox: they skip where bubblewrap cannot run (never the
unsafe fallback). Network traffic goes only to a loopback listener the test opens; no
attack signals anything but its own sandbox (pid 1 and its parent there are bubblewrap's
init); limits are small so the battery takes seconds.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

import codyn
from codyn.sandbox import Limits, Outcome, run_program, sandbox_problem
from codyn.sandbox.cgroups import cgroup_support

PROJECT = Path(codyn.__file__).resolve().parents[2]
HOME = Path.home()
FAST = Limits(wall_s=10, cpu_s=5, memory_mb=128, processes=16, output_bytes=100_000)

REPORT = """
import json as _json
def report(**seen):
    print(_json.dumps(seen))
"""


@dataclass
class Host:
    """What the battery sets up on the host side, and checks afterwards."""

    token: str
    secret: str
    listener: socket.socket
    sentinel: Path
    sentinel_text: str
    pwned: Path
    marker: str
    project_digest: str
    results: dict[str, tuple[Outcome, dict]] = field(default_factory=dict)


def processes_with(marker: str) -> list[int]:
    """Host pids whose command line contains ``marker`` (read from /proc, no signal sent)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if marker.encode() in Path(f"/proc/{entry}/cmdline").read_bytes():
                    found.append(int(entry))
            except OSError:
                continue
    return found


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def attacks(host: Host) -> dict[str, tuple[str, Limits]]:
    """Attack name -> (program, limits). Each program ends with ``report(...)`` where it can."""
    port = host.listener.getsockname()[1]
    marked_bomb = (
        "import os, sys, time\n"
        f"if sys.argv[-1] != {host.marker!r}:\n"
        f"    os.execv(sys.executable, [sys.executable, sys.argv[0], {host.marker!r}])\n"
        "while True:\n"
        "    try:\n"
        "        os.fork()\n"
        "    except OSError:\n"
        "        time.sleep(0.01)\n"
    )
    daemon = (
        "import os, sys, time\n"
        "if os.fork() == 0:\n"
        "    os.setsid()\n"
        "    if os.fork() == 0:\n"
        "        os.execv(sys.executable, [sys.executable, '-c', 'import time; time.sleep(300)',\n"
        f"                                  {host.marker + '-daemon'!r}])\n"
        "    os._exit(0)\n"
        "os.wait()\n"
        "print('daemon started', flush=True)\n"
        "time.sleep(300)\n"
    )
    return {
        "fork bomb": (marked_bomb, Limits(wall_s=2, cpu_s=5, processes=16)),
        "memory bomb": (
            "blocks = []\nwhile True:\n    blocks.append(bytearray(16 * 2**20))\n",
            FAST,
        ),
        "memory bomb in 4 processes": (
            "import os, time\n"
            "for _ in range(4):\n"
            "    if os.fork() == 0:\n"
            "        block = bytearray(60 * 2**20)\n"
            "        for i in range(0, len(block), 4096):\n"
            "            block[i] = 1\n"
            "        time.sleep(1)\n"
            "        os._exit(0)\n"
            "for _ in range(4):\n"
            "    os.wait()\n",
            FAST,
        ),
        "fill RAM through tmpfs": (
            REPORT + "import os\n"
            "written = {}\n"
            "for folder in ['/tmp', '/dev/shm', '/dev', '/']:\n"
            "    written[folder] = 0\n"
            "    try:\n"
            "        for i in range(10_000):\n"
            "            with open(f'{folder}/fill{i}', 'wb') as fh:\n"
            "                fh.write(b'x' * 1_000_000)\n"
            "            written[folder] += 1\n"
            "    except OSError as exc:\n"
            "        written[folder + ' stopped by'] = type(exc).__name__\n"
            "report(**written)\n",
            Limits(wall_s=20, memory_mb=256, tmp_bytes=20_000_000),
        ),
        "infinite loop": ("while True:\n    pass\n", Limits(cpu_s=1, wall_s=20)),
        "1 GB of output": (
            "import sys\nchunk = 'x' * 2**20\nfor _ in range(1024):\n    sys.stdout.write(chunk)\n",
            FAST,
        ),
        "connect to host 127.0.0.1": (
            REPORT + "import socket\n"
            "try:\n"
            f"    socket.create_connection(('127.0.0.1', {port}), timeout=3).close()\n"
            "    report(connected=True, error=None)\n"
            "except OSError as exc:\n"
            "    report(connected=False, error=type(exc).__name__)\n",
            FAST,
        ),
        "list network interfaces": (
            REPORT + "import os, socket\n"
            "report(names=[n for _, n in socket.if_nameindex()],\n"
            "       netns=os.readlink('/proc/self/ns/net'),\n"
            "       routes=open('/proc/net/route').read().splitlines()[1:])\n",
            FAST,
        ),
        "read home, project, /work": (
            REPORT + "import os\n"
            "seen = {}\n"
            f"for path in [{str(HOME)!r}, {str(PROJECT)!r}, '/work', '/home', '/root']:\n"
            "    try:\n"
            "        seen[path] = sorted(os.listdir(path))\n"
            "    except OSError as exc:\n"
            "        seen[path] = type(exc).__name__\n"
            "try:\n"
            f"    pyproject = open({str(PROJECT / 'pyproject.toml')!r}).read()\n"
            "except OSError as exc:\n"
            "    pyproject = type(exc).__name__\n"
            "report(listed=seen, pyproject=pyproject)\n",
            FAST,
        ),
        "read the environment": (
            REPORT + "import os\n"
            "texts = {'environ': repr(dict(os.environ))}\n"
            "for path in ['/proc/self/environ', '/proc/1/environ', '/proc/2/environ']:\n"
            "    try:\n"
            "        texts[path] = open(path, 'rb').read().decode('utf-8', 'replace')\n"
            "    except OSError as exc:\n"
            "        texts[path] = type(exc).__name__\n"
            "report(**texts)\n",
            FAST,
        ),
        "write and delete outside": (
            REPORT + "import os\n"
            "tried = {}\n"
            f"for path in [{str(host.pwned)!r}, '/usr/pwned', '/etc/pwned', '/pwned',\n"
            f"             {str(host.sentinel)!r}]:\n"
            "    try:\n"
            "        with open(path, 'w') as fh:\n"
            "            fh.write('pwned')\n"
            "        tried['write ' + path] = 'written'\n"
            "    except OSError as exc:\n"
            "        tried['write ' + path] = type(exc).__name__\n"
            "try:\n"
            f"    os.remove({str(host.sentinel)!r})\n"
            "    tried['delete'] = 'deleted'\n"
            "except OSError as exc:\n"
            "    tried['delete'] = type(exc).__name__\n"
            "report(**tried)\n",
            FAST,
        ),
        "child outlives the timeout": (daemon, Limits(wall_s=2)),
        "kill parent and pid 1": (
            REPORT + "import os, signal\n"
            "done = {'pid': os.getpid(), 'ppid': os.getppid()}\n"
            "for what, target in [('parent', os.getppid()), ('pid 1', 1)]:\n"
            "    try:\n"
            "        os.kill(target, signal.SIGKILL)\n"
            "        done[what] = 'sent'\n"
            "    except OSError as exc:\n"
            "        done[what] = type(exc).__name__\n"
            "# Every process this one may signal: only inside its own pid namespace.\n"
            "if os.getpid() < 10 and len([p for p in os.listdir('/proc') if p.isdigit()]) < 10:\n"
            "    try:\n"
            "        os.kill(-1, signal.SIGKILL)\n"
            "        done['-1'] = 'sent'\n"
            "    except OSError as exc:\n"
            "        done['-1'] = type(exc).__name__\n"
            "done['alive'] = True\n"
            "report(**done)\n",
            FAST,
        ),
        "raise own limits": (
            REPORT + "import os, resource\n"
            "tried = {}\n"
            "for name in ['RLIMIT_AS', 'RLIMIT_CPU', 'RLIMIT_NOFILE', 'RLIMIT_FSIZE',\n"
            "             'RLIMIT_NPROC']:\n"
            "    which = getattr(resource, name)\n"
            "    soft, hard = resource.getrlimit(which)\n"
            "    if hard == resource.RLIM_INFINITY:\n"
            "        tried[name] = 'unlimited already'\n"
            "        continue\n"
            "    try:\n"
            "        resource.setrlimit(which, (hard + 1, hard + 1))\n"
            "        tried[name] = 'raised'\n"
            "    except (ValueError, OSError) as exc:\n"
            "        tried[name] = type(exc).__name__\n"
            "tried['cgroupfs visible'] = os.path.exists('/sys/fs/cgroup')\n"
            "report(**tried)\n",
            FAST,
        ),
        "write kernel sysctls": (
            REPORT + "tried = {}\n"
            "path = '/proc/sys/kernel/core_pattern'\n"
            "try:\n"
            "    current = open(path).read()\n"
            "    with open(path, 'w') as fh:  # the SAME value: harmless even if it worked\n"
            "        fh.write(current)\n"
            "    tried[path] = 'written'\n"
            "except OSError as exc:\n"
            "    tried[path] = type(exc).__name__\n"
            "try:\n"
            "    open('/proc/sysrq-trigger', 'w').close()\n"
            "    tried['sysrq'] = 'opened'\n"
            "except OSError as exc:\n"
            "    tried['sysrq'] = type(exc).__name__\n"
            "report(**tried)\n",
            FAST,
        ),
        "remount, mount, new namespaces": (
            REPORT + "import ctypes, os\n"
            "libc = ctypes.CDLL(None, use_errno=True)\n"
            "MS_REMOUNT, MS_BIND = 32, 4096\n"
            "tried = {}\n"
            "def errno_of(code):\n"
            "    return os.strerror(ctypes.get_errno()) if code != 0 else 'succeeded'\n"
            "tried['remount /usr rw'] = errno_of(\n"
            "    libc.mount(b'none', b'/usr', None, MS_REMOUNT | MS_BIND, None))\n"
            "tried['mount tmpfs'] = errno_of(libc.mount(b'none', b'/tmp', b'tmpfs', 0, None))\n"
            "tried['unshare user ns'] = errno_of(libc.unshare(0x10000000))\n"
            "tried['chroot'] = errno_of(libc.chroot(b'/tmp'))\n"
            "report(**tried)\n",
            FAST,
        ),
    }


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Host]:
    problem = sandbox_problem()
    if problem is not None:
        pytest.skip(f"hostile code runs only in the sandbox, and it cannot run here: {problem}")
    token = secrets.token_hex(8)
    folder = tmp_path_factory.mktemp("hostile")
    sentinel = folder / "keep-me.txt"
    sentinel_text = f"the test's own file {token}\n"
    sentinel.write_text(sentinel_text)
    secret = f"fake-secret-{token}"
    os.environ["CODYN_TEST_FAKE_SECRET"] = secret
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.setblocking(False)
    state = Host(
        token=token,
        secret=secret,
        listener=listener,
        sentinel=sentinel,
        sentinel_text=sentinel_text,
        pwned=PROJECT / f"pwned-{token}",
        marker=f"codyn-hostile-{token}",
        project_digest=digest(PROJECT / "pyproject.toml"),
    )
    try:
        for name, (source, limits) in attacks(state).items():
            outcome = run_program(source, limits=limits)
            seen: dict = {}
            lines = outcome.stdout.strip().splitlines()
            if lines and lines[-1].startswith("{"):
                seen = json.loads(lines[-1])
            state.results[name] = (outcome, seen)
        yield state
    finally:
        os.environ.pop("CODYN_TEST_FAKE_SECRET", None)
        listener.close()
        if state.pwned.exists():  # only if containment failed: do not leave it behind
            state.pwned.unlink()


def result(host: Host, name: str) -> tuple[Outcome, dict]:
    return host.results[name]


def no_run_cgroups_left() -> bool:
    for folder in cgroup_support().values():
        if folder is not None and any(
            p.name.startswith(f"{os.getpid()}-") for p in Path(folder).iterdir()
        ):
            return False
    return True


def test_fork_bomb(host: Host) -> None:
    outcome, _ = result(host, "fork bomb")
    assert outcome.status == "timeout"
    if cgroup_support()["pids"] is not None:
        assert outcome.peak_processes == 16  # held at the limit
    assert processes_with(host.marker) == []
    assert no_run_cgroups_left()


def test_memory_bombs(host: Host) -> None:
    outcome, _ = result(host, "memory bomb")
    assert outcome.status == "memory"
    outcome, _ = result(host, "memory bomb in 4 processes")
    if cgroup_support()["memory"] is not None:
        assert outcome.status == "memory" and "cgroup" in str(outcome.detail)
        assert outcome.peak_memory_mb is not None and outcome.peak_memory_mb <= 129


def test_tmpfs_cannot_fill_ram(host: Host) -> None:
    outcome, seen = result(host, "fill RAM through tmpfs")
    assert outcome.status == "pass", outcome
    assert seen["/tmp"] <= 20 and seen["/tmp stopped by"] == "OSError"  # ENOSPC
    assert seen["/dev/shm"] <= 5  # a quarter of /tmp
    assert seen["/dev"] == seen["/"] == 0  # read-only


def test_infinite_loop(host: Host) -> None:
    outcome, _ = result(host, "infinite loop")
    assert (outcome.status, outcome.detail) == ("timeout", "CPU time limit of 1 s")


def test_output_flood(host: Host) -> None:
    outcome, _ = result(host, "1 GB of output")
    assert outcome.status == "output_limit"
    assert 0 < len(outcome.stdout.encode()) <= FAST.output_bytes


def test_no_connection_reaches_the_host(host: Host) -> None:
    outcome, seen = result(host, "connect to host 127.0.0.1")
    assert outcome.status == "pass", outcome
    assert seen == {"connected": False, "error": "ConnectionRefusedError"}
    with pytest.raises(BlockingIOError):
        host.listener.accept()  # nothing ever connected
    # The same listener does accept from the host: the check above could fail.
    probe = socket.create_connection(host.listener.getsockname(), timeout=5)
    deadline = time.monotonic() + 5
    while True:
        try:
            accepted, _ = host.listener.accept()
            break
        except BlockingIOError:
            assert time.monotonic() < deadline
            time.sleep(0.01)
    accepted.close()
    probe.close()


def test_only_its_own_loopback(host: Host) -> None:
    outcome, seen = result(host, "list network interfaces")
    assert outcome.status == "pass", outcome
    assert seen["names"] == ["lo"]
    assert seen["routes"] == []
    assert seen["netns"] != os.readlink("/proc/self/ns/net")
    host_names = {n for _, n in socket.if_nameindex()}
    assert not (set(seen["names"]) - {"lo"}) & host_names


def test_home_and_project_are_invisible(host: Host) -> None:
    outcome, seen = result(host, "read home, project, /work")
    assert outcome.status == "pass", outcome
    assert set(seen["listed"].values()) == {"FileNotFoundError"}, seen
    assert seen["pyproject"] == "FileNotFoundError"
    assert (PROJECT / "pyproject.toml").is_file()  # it is there, on the host


def test_environment_holds_no_secret(host: Host) -> None:
    outcome, seen = result(host, "read the environment")
    assert outcome.status == "pass", outcome
    assert os.environ["CODYN_TEST_FAKE_SECRET"] == host.secret  # the host has it
    assert host.secret not in outcome.stdout
    assert seen["/proc/2/environ"].split("\0")[0].startswith(("PATH=", "HOME=", "LANG="))


def test_nothing_outside_is_written_or_deleted(host: Host) -> None:
    outcome, seen = result(host, "write and delete outside")
    assert outcome.status == "pass", outcome
    assert "written" not in seen.values() and seen["delete"] != "deleted"
    assert not host.pwned.exists()
    assert host.sentinel.read_text() == host.sentinel_text


def test_a_setsid_grandchild_dies_with_the_run(host: Host) -> None:
    outcome, _ = result(host, "child outlives the timeout")
    assert outcome.status == "timeout" and "daemon started" in outcome.stdout
    assert processes_with(host.marker + "-daemon") == []
    assert no_run_cgroups_left()
    # The scan does see such a process when one exists: one the test starts (and stops).
    own = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)", host.marker + "-control"]
    )
    try:
        deadline = time.monotonic() + 10
        while own.pid not in processes_with(host.marker + "-control"):
            assert time.monotonic() < deadline
            time.sleep(0.01)
    finally:
        own.kill()
        own.wait()


def test_signals_stay_inside(host: Host) -> None:
    outcome, seen = result(host, "kill parent and pid 1")
    assert outcome.status == "pass", outcome
    assert seen["alive"] is True
    assert seen["ppid"] == 1  # its parent is the sandbox's init, not anything on the host
    assert os.getppid() != 1  # and this test's own parent is still there


def test_limits_cannot_be_raised(host: Host) -> None:
    outcome, seen = result(host, "raise own limits")
    assert outcome.status == "pass", outcome
    assert "raised" not in seen.values()
    assert seen["RLIMIT_AS"] == seen["RLIMIT_CPU"] == "ValueError"
    assert seen["cgroupfs visible"] is False


def test_kernel_settings_are_out_of_reach(host: Host) -> None:
    outcome, seen = result(host, "write kernel sysctls")
    assert outcome.status == "pass", outcome
    assert seen["/proc/sys/kernel/core_pattern"] in ("PermissionError", "OSError")
    assert seen["sysrq"] != "opened"


def test_no_mounts_or_new_namespaces(host: Host) -> None:
    outcome, seen = result(host, "remount, mount, new namespaces")
    assert outcome.status == "pass", outcome
    assert "succeeded" not in seen.values(), seen


def test_battery_recorded_and_harness_unharmed(host: Host) -> None:
    assert set(host.results) == set(attacks(host))
    assert all(isinstance(o, Outcome) and o.status != "refused" for o, _ in host.results.values())
    assert digest(PROJECT / "pyproject.toml") == host.project_digest
    assert host.sentinel.read_text() == host.sentinel_text
    assert not host.pwned.exists()
    assert Path(f"/proc/{os.getpid()}").exists()
    assert no_run_cgroups_left()
    rows = [("attack", "status", "detail / what it saw")]
    for name, (outcome, seen) in host.results.items():
        said = outcome.detail or (json.dumps(seen)[:70] if seen else "")
        rows.append((name, outcome.status, said))
    width = [max(len(r[i]) for r in rows) for i in range(2)]
    print()
    for row in rows:
        print(f"{row[0]:<{width[0]}}  {row[1]:<{width[1]}}  {row[2]}")
