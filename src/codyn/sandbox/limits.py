"""What a sandboxed run may use (`Limits`) and what became of it (`Outcome`)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from codyn.errors import CodynError

STATUSES = ("pass", "fail", "timeout", "memory", "crash", "output_limit", "refused")
"""Every `Outcome.status`: exit 0; non-zero exit or an exception; wall or CPU time limit;
memory limit; killed by a signal nobody sent on purpose (segfault, abort); stdout + stderr
past the output limit; not run (no usable sandbox)."""

TAIL_BYTES = 2048
"""How much of the end of stdout and stderr an `Outcome` keeps as its tails."""


class SandboxUnavailable(CodynError):
    """A real sandbox was needed and bubblewrap cannot run here (the message says why)."""


@dataclass(frozen=True)
class Limits:
    """Per run (per test for `run_tests`). Times in seconds, sizes in bytes unless named MB.

    ``processes`` counts the program's own processes and threads; ``open_files`` is the
    highest file descriptor number + 1; ``file_bytes`` bounds each file written and
    ``tmp_bytes`` the private /tmp (the working directory) as a whole; ``output_bytes``
    bounds stdout and stderr together.
    """

    cpu_s: float = 10.0
    wall_s: float = 20.0
    memory_mb: int = 512
    processes: int = 64
    open_files: int = 64
    output_bytes: int = 1_000_000
    file_bytes: int = 10_000_000
    tmp_bytes: int = 100_000_000

    def __post_init__(self) -> None:
        for name in ("cpu_s", "wall_s"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
                raise CodynError(
                    f"Limits.{name} must be a positive number of seconds, not {value!r}"
                )
        minimum = {"memory_mb": 16, "processes": 1, "open_files": 16, "output_bytes": 1}
        for name in ("memory_mb", "processes", "open_files", "output_bytes", "file_bytes"):
            value = getattr(self, name)
            if (
                isinstance(value, bool)
                or not isinstance(value, int)
                or value < minimum.get(name, 0)
            ):
                raise CodynError(
                    f"Limits.{name} must be an integer >= {minimum.get(name, 0)}, not {value!r}"
                )
        if isinstance(self.tmp_bytes, bool) or not isinstance(self.tmp_bytes, int):
            raise CodynError(f"Limits.tmp_bytes must be an integer, not {self.tmp_bytes!r}")
        if self.tmp_bytes < 1_000_000:
            raise CodynError(f"Limits.tmp_bytes must be at least 1000000, not {self.tmp_bytes}")


@dataclass(frozen=True)
class Outcome:
    """One program run (or one test of `run_tests`).

    ``stdout`` holds at most ``Limits.output_bytes``; the tails are its last ~2 KB and
    stderr's. ``detail`` says why a run was refused, which limit it hit, which signal killed
    it, or ``unsafe-local: ...`` when it ran without a sandbox. ``cpu_s`` is the CPU time the
    run's processes used; ``peak_processes`` and ``peak_memory_mb`` come from the run's
    cgroups where the system has them (None otherwise).
    """

    status: str
    exit_code: int | None
    wall_s: float
    stdout: str
    stdout_tail: str
    stderr_tail: str
    detail: str | None = None
    cpu_s: float | None = None
    peak_processes: int | None = None
    peak_memory_mb: float | None = None

    @property
    def passed(self) -> bool:
        return self.status == "pass"

    def as_dict(self, *, full_stdout: bool = False) -> dict[str, Any]:
        """JSON-ready fields; ``stdout`` itself only with ``full_stdout`` (the tail is kept)."""
        fields = asdict(self)
        if not full_stdout:
            fields.pop("stdout")
        return fields


def refused(reason: str, *, unsafe_hint: bool = True) -> Outcome:
    """The outcome of a run that did not happen because no usable sandbox exists here."""
    hint = " (pass unsafe_local=True, or --unsafe-local, to run it WITHOUT a sandbox)"
    return Outcome("refused", None, 0.0, "", "", "", reason + (hint if unsafe_hint else ""))
