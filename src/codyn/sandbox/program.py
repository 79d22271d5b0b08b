"""`run_program`: one program, one `Outcome`; and the choice between sandbox, refusal and the
unsafe local fallback that every run goes through."""

from __future__ import annotations

import logging
import math
import signal
from collections.abc import Callable, Mapping, Sequence

from codyn.errors import CodynError
from codyn.sandbox.languages import get_language
from codyn.sandbox.limits import TAIL_BYTES, Limits, Outcome, refused
from codyn.sandbox.process import RawRun, spawn_local, spawn_sandboxed
from codyn.sandbox.settings import bwrap_path, bwrap_version, sandbox_problem, sandbox_python

logger = logging.getLogger("codyn.sandbox")
_warned: set[str] = set()


def unsafe_detail(reason: str) -> str:
    return (
        f"unsafe-local: ran WITHOUT a sandbox ({reason}); only rlimits, a process group and a "
        "temporary directory contained it"
    )


def launch(
    argv: Sequence[str],
    *,
    limits: Limits,
    unsafe_local: bool,
    stdin: bytes = b"",
    files: Mapping[str, bytes] | None = None,
    data: Mapping[str, bytes] | None = None,
    side_channel: bool = False,
    on_event: Callable[[dict, float], float | None] | None = None,
    address_space: bool = True,
) -> RawRun | Outcome:
    """Run ``argv`` in the sandbox; without one, a refusal, or (``unsafe_local``) an unsandboxed
    run after a logged warning. Returns the raw run, or the refused `Outcome`."""
    problem = sandbox_problem()
    common = {
        "limits": limits,
        "stdin": stdin,
        "files": files,
        "data": data,
        "side_channel": side_channel,
        "on_event": on_event,
        "address_space": address_space,
    }
    if problem is None:
        path = bwrap_path()
        assert path is not None
        version = bwrap_version(path) or (0, 0)
        return spawn_sandboxed(
            argv, bwrap=path, bwrap_version=version, python=sandbox_python(), **common
        )  # type: ignore[arg-type]
    if not unsafe_local:
        return refused(problem)
    if problem not in _warned:
        _warned.add(problem)
        logger.warning(
            "codyn.sandbox: running untrusted code WITHOUT a sandbox (unsafe_local=True): %s",
            problem,
        )
    return spawn_local(argv, **common)  # type: ignore[arg-type]


def _text(data: bytes) -> str:
    return data.decode("utf-8", "replace")


def tail(text: str, size: int = TAIL_BYTES) -> str:
    """The last ~``size`` bytes of ``text``."""
    data = text.encode("utf-8", "replace")
    return text if len(data) <= size else _text(data[-size:])


def classify(raw: RawRun, limits: Limits) -> tuple[str, str | None]:
    """A finished run's status and the detail that explains it."""
    cpu_limit = max(1, math.ceil(limits.cpu_s))
    if raw.killed == "timeout":
        return "timeout", f"wall time limit of {limits.wall_s:g} s"
    if raw.killed == "output_limit":
        return "output_limit", f"output limit of {limits.output_bytes} bytes (stdout + stderr)"
    if raw.oom:
        return "memory", f"memory limit of {limits.memory_mb} MB (the run's memory cgroup)"
    sig = raw.signal
    if sig == signal.SIGXCPU or (sig == signal.SIGKILL and raw.cpu_s >= cpu_limit - 0.05):
        return "timeout", f"CPU time limit of {cpu_limit} s"
    if sig == signal.SIGXFSZ:
        return "fail", f"file size limit of {limits.file_bytes} bytes"
    if sig is not None:
        try:
            name = signal.Signals(sig).name
        except ValueError:
            name = f"signal {sig}"
        return "crash", f"killed by {name}"
    if raw.exit_code == 0:
        return "pass", None
    err = _text(raw.stderr_tail).strip()
    last = err.splitlines()[-1] if err else ""
    if last.startswith("MemoryError"):
        return "memory", f"memory limit of {limits.memory_mb} MB (MemoryError)"
    if "File too large" in last:
        return "fail", f"file size limit of {limits.file_bytes} bytes"
    return "fail", None


def outcome_of(raw: RawRun, limits: Limits, *, problem: str | None = None) -> Outcome:
    """The `Outcome` of a raw run (``problem``: why it ran unsandboxed, for its detail)."""
    if raw.sandboxed and not raw.started:
        return Outcome(
            "refused",
            None,
            raw.wall_s,
            "",
            "",
            tail(_text(raw.stderr_tail)),
            f"bubblewrap could not start the program: {raw.setup_error}",
        )
    status, detail = classify(raw, limits)
    if not raw.sandboxed:
        note = unsafe_detail(problem or "no sandbox")
        detail = note if detail is None else f"{detail}; {note}"
    exited = raw.signal is None and raw.killed is None
    return Outcome(
        status=status,
        exit_code=raw.exit_code if exited else None,
        wall_s=raw.wall_s,
        stdout=_text(raw.stdout),
        stdout_tail=_text(raw.stdout_tail),
        stderr_tail=_text(raw.stderr_tail),
        detail=detail,
        cpu_s=raw.cpu_s,
        peak_processes=raw.peak_processes,
        peak_memory_mb=raw.peak_memory_mb,
    )


def _check_files(
    files: Mapping[str, str | bytes] | None, reserved: str, limits: Limits
) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    for name, content in (files or {}).items():
        parts = str(name).split("/")
        if not name or str(name).startswith("/") or any(p in ("", ".", "..") for p in parts):
            raise CodynError(
                f"sandbox file name {name!r} must be a relative path inside the working "
                "directory (no '..', no leading '/')"
            )
        if name == reserved:
            raise CodynError(f"sandbox file name {name!r} is where the program itself goes")
        data = content.encode("utf-8") if isinstance(content, str) else bytes(content)
        if len(data) > limits.file_bytes:
            raise CodynError(
                f"sandbox file {name!r} is {len(data)} bytes, over file_bytes={limits.file_bytes}"
            )
        out[name] = data
    folders = {"/".join(n.split("/")[:i]) for n in out for i in range(1, n.count("/") + 1)}
    if clash := sorted(folders & set(out)):
        raise CodynError(f"sandbox file name {clash[0]!r} is both a file and a folder")
    if sum(map(len, out.values())) > limits.tmp_bytes:
        raise CodynError(f"sandbox files are over tmp_bytes={limits.tmp_bytes} in all")
    return out


def run_program(
    source: str,
    *,
    language: str = "python",
    stdin: str = "",
    limits: Limits = Limits(),  # noqa: B008 (frozen, so one shared default is safe)
    unsafe_local: bool = False,
    files: Mapping[str, str] | None = None,
) -> Outcome:
    """Run one program in the sandbox and say how it ended.

    ``files`` (relative name -> text) are written into the working directory first;
    ``stdin`` is its standard input. Without a usable bubblewrap the outcome is ``refused``
    unless ``unsafe_local`` allows an unsandboxed run (its detail says so).
    """
    lang = get_language(language)
    if not isinstance(source, str):
        raise CodynError(f"a program's source must be text, not {type(source).__name__}")
    payload = _check_files(files, lang.filename, limits)
    payload[lang.filename] = source.encode("utf-8")
    ran = launch(
        lang.command(limits),
        limits=limits,
        unsafe_local=unsafe_local,
        stdin=stdin.encode("utf-8"),
        files=payload,
        address_space=lang.address_space_limit,
    )
    if isinstance(ran, Outcome):
        return ran
    return outcome_of(ran, limits, problem=None if ran.sandboxed else sandbox_problem())
