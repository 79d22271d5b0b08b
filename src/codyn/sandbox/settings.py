"""Where bubblewrap and the sandbox's Python live, and whether bubblewrap works here.

Two environment variables change them (read on every call, so a test or a deployment can
point them elsewhere without code):

- ``CODYN_BWRAP``: the bubblewrap executable (default: ``bwrap`` on PATH). A path that does
  not exist, or a program that is not bubblewrap, makes `sandbox_problem` say so.
- ``CODYN_SANDBOX_PYTHON``: the interpreter that runs Python programs (default: the system's
  ``/usr/bin/python3``, else the base interpreter of the running Python). Its installation is
  bound read-only into the sandbox; a venv's packages are not (no project directory inside).
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

BWRAP_ENV = "CODYN_BWRAP"
PYTHON_ENV = "CODYN_SANDBOX_PYTHON"
SANDBOX_UID = 65534
"""When codyn runs as root, bubblewrap runs as this uid (``nobody``) in a user namespace:
code running as root, even with every capability dropped, could still write the kernel's
global sysctls under /proc/sys (core_pattern, for one), as no unprivileged user can."""


@dataclass(frozen=True)
class Interpreter:
    """The sandbox's Python: the executable and the folder bound read-only to run it."""

    executable: str
    prefix: str | None
    """Its installation root when outside the system folders bound anyway (/usr), else None."""


def bwrap_path() -> str | None:
    """The bubblewrap executable to use, or None when there is none."""
    configured = os.environ.get(BWRAP_ENV)
    if configured:
        return configured
    return shutil.which("bwrap")


def sandbox_python() -> Interpreter:
    """The interpreter Python programs run with, inside the sandbox and out."""
    configured = os.environ.get(PYTHON_ENV)
    if configured:
        exe = configured
    elif Path("/usr/bin/python3").exists():
        exe = "/usr/bin/python3"
    else:
        exe = getattr(sys, "_base_executable", None) or sys.executable
    real = os.path.realpath(exe)
    system = ("/usr/", "/bin/", "/lib/", "/lib64/", "/sbin/")
    if real.startswith(system):
        return Interpreter(exe, None)
    # <prefix>/bin/python3.X: bind <prefix> (it holds lib/python3.X and any libpython).
    return Interpreter(exe, str(Path(real).parent.parent))


def drops_to_nobody() -> bool:
    """Whether runs switch to `SANDBOX_UID` (they do when codyn runs as root)."""
    return os.geteuid() == 0


@functools.lru_cache(maxsize=16)
def bwrap_version(path: str) -> tuple[int, ...] | None:
    """bubblewrap's version as a tuple, None when ``path`` does not answer ``--version``."""
    try:
        done = subprocess.run(
            [path, "--version"], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    found = re.search(r"bubblewrap\s+(\d+(?:\.\d+)*)", done.stdout)
    return tuple(int(p) for p in found.group(1).split(".")) if found else None


def sandbox_problem() -> str | None:
    """Why bubblewrap cannot be used here, or None when it can.

    The answer comes from a real probe run (a trivial program under the same options as every
    run), cached per bubblewrap path and interpreter.
    """
    return _probe(bwrap_path(), sandbox_python())


@functools.lru_cache(maxsize=16)
def _probe(path: str | None, python: Interpreter) -> str | None:
    from codyn.sandbox.limits import Limits
    from codyn.sandbox.process import spawn_sandboxed

    if path is None:
        return (
            "bubblewrap is not installed (no 'bwrap' on PATH; install it with "
            f"`apt-get install bubblewrap`, or set {BWRAP_ENV})"
        )
    if not os.path.exists(path):
        return f"bubblewrap not found at {path} (set by {BWRAP_ENV})"
    if not os.access(path, os.X_OK):
        return f"{path} is not executable"
    version = bwrap_version(path)
    if version is None:
        return f"{path} does not answer `--version` as bubblewrap does"
    if version < (0, 5):
        return f"bubblewrap {'.'.join(map(str, version))} is too old (0.5 or newer needed)"
    if not os.path.exists(python.executable):
        return f"the sandbox's Python {python.executable} does not exist (set {PYTHON_ENV})"
    run = spawn_sandboxed(
        [python.executable, "-c", "print('codyn-probe-ok')"],
        limits=Limits(cpu_s=10, wall_s=30, memory_mb=256),
        bwrap=path,
        bwrap_version=version,
        python=python,
    )
    if run.started and run.exit_code == 0 and run.stdout.strip() == b"codyn-probe-ok":
        return None
    said = (run.setup_error or run.stderr_tail.decode("utf-8", "replace")).strip()
    said = said.splitlines()[-1] if said else f"exit code {run.exit_code}, no message"
    who = f" as uid {SANDBOX_UID}" if drops_to_nobody() else ""
    return f"bubblewrap ({path}) failed a probe run{who}: {said}"


def describe() -> dict[str, object]:
    """What `codyn sandbox check` reports: the probe's verdict and the setup it used."""
    from codyn.sandbox.cgroups import cgroup_support

    path = bwrap_path()
    python = sandbox_python()
    version = bwrap_version(path) if path and os.path.exists(path) else None
    return {
        "works": sandbox_problem() is None,
        "problem": sandbox_problem(),
        "bwrap": path,
        "bwrap_version": ".".join(map(str, version)) if version else None,
        "python": python.executable,
        "python_prefix_bound": python.prefix,
        "runs_as_uid": SANDBOX_UID if drops_to_nobody() else os.geteuid(),
        "cgroups": cgroup_support(),
    }
