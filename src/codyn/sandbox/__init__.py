"""Run untrusted generated code: bubblewrap, rlimits and cgroups, one `Outcome` per run.

Every run gets its own user, pid, network, mount, IPC, UTS and cgroup namespaces, no
capability, a read-only system (/usr and the sandbox's Python only: no /root, /home, /work or
host /tmp), a private size-capped tmpfs as /tmp and working directory, and a clean
environment. The parent enforces CPU, wall, memory, process, open-file, file-size and output
limits and kills the whole process tree at any of them. Without a usable bubblewrap runs are
``refused`` unless the caller passes ``unsafe_local=True`` (see `run_program`).

Settings: ``CODYN_BWRAP`` (the bubblewrap executable) and ``CODYN_SANDBOX_PYTHON`` (the
interpreter); see `codyn.sandbox.settings`.
"""

from __future__ import annotations

from codyn.sandbox.languages import available_languages
from codyn.sandbox.limits import STATUSES, Limits, Outcome, SandboxUnavailable
from codyn.sandbox.program import run_program
from codyn.sandbox.settings import sandbox_problem
from codyn.sandbox.suite import run_tests

__all__ = [
    "STATUSES",
    "Limits",
    "Outcome",
    "SandboxUnavailable",
    "available_languages",
    "require_sandbox",
    "run_program",
    "run_tests",
    "sandbox_problem",
]


def require_sandbox() -> None:
    """Raise `SandboxUnavailable` (with the reason) unless bubblewrap works here."""
    problem = sandbox_problem()
    if problem is not None:
        raise SandboxUnavailable(f"no usable sandbox: {problem}")
