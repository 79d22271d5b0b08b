"""The test harness `run_tests` runs INSIDE the sandbox (stdlib only; never imported by codyn).

Usage: ``python harness.py SIDE_FD SPEC_JSON``. The spec holds the solution's source, the test
snippets, the first test to run and the limits. The solution runs once in a module called
``solution``; then each test runs in that module's namespace with its own wall-clock timer,
CPU-time soft limit and output cap, its prints captured. Each step reports on the side channel
as JSON lines: ``{"i": k, "event": "start"}`` before, ``{"i": k, "event": "end", "status":
..., ...}`` after (``i`` is -1 for the solution). A test that takes the interpreter down leaves
a start without an end; the parent then restarts this harness after it.

It shares the process with the code it tests, so code that sets out to forge its own results
can: the sandbox contains harm, not cheating.
"""

import faulthandler
import io
import json
import math
import os
import resource
import signal
import sys
import time
import traceback
import types

TAIL = 2048


class _Limit(BaseException):
    status = "timeout"


class _WallLimit(_Limit):
    pass


class _CpuLimit(_Limit):
    pass


class _OutputLimit(_Limit):
    status = "output_limit"


class _Capture(io.TextIOBase):
    """A text stream that keeps at most ``cap`` bytes and raises past them."""

    def __init__(self, cap):
        super().__init__()
        self.cap = cap
        self.size = 0
        self.parts = []
        self.exceeded = False

    def writable(self):
        return True

    def write(self, text):
        if not isinstance(text, str):
            raise TypeError("write() argument must be str, not " + type(text).__name__)
        data = text.encode("utf-8", "replace")
        room = self.cap - self.size
        if len(data) > room:
            self.parts.append(data[: max(0, room)])
            self.size = self.cap
            self.exceeded = True
            raise _OutputLimit()
        self.parts.append(data)
        self.size += len(data)
        return len(text)

    def text(self):
        return b"".join(self.parts).decode("utf-8", "replace")


class _State:
    in_step = False


def _on_alarm(signum, frame):
    if _State.in_step:
        raise _WallLimit()


def _on_xcpu(signum, frame):
    if _State.in_step:
        raise _CpuLimit()


def _cpu_used():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _tail(text):
    data = text.encode("utf-8", "replace")
    return text if len(data) <= TAIL else data[-TAIL:].decode("utf-8", "replace")


def _traceback():
    """The current exception's traceback without the harness's own frame."""
    kind, exc, tb = sys.exc_info()
    if tb is not None and tb.tb_frame.f_code.co_filename == __file__:
        tb = tb.tb_next
    return "".join(traceback.format_exception(kind, exc, tb))


def main():
    side = os.fdopen(int(sys.argv[1]), "w", encoding="utf-8")
    with open(sys.argv[2], encoding="utf-8") as fh:
        spec = json.load(fh)
    wall_s, cpu_s, cap = spec["wall_s"], spec["cpu_s"], spec["output_bytes"]
    hard_cpu = resource.getrlimit(resource.RLIMIT_CPU)[1]
    faulthandler.enable()  # a segfault leaves its traceback on the real stderr
    signal.signal(signal.SIGALRM, _on_alarm)
    signal.signal(signal.SIGXCPU, _on_xcpu)
    real_stdout, real_stderr = sys.stdout, sys.stderr
    module = types.ModuleType("solution")
    module.__file__ = "solution.py"
    sys.modules["solution"] = module

    def send(message):
        side.write(json.dumps(message) + "\n")
        side.flush()

    def step(index, code, filename):
        send({"i": index, "event": "start"})
        out, err = _Capture(cap), _Capture(cap)
        status, error = "pass", ""
        began = time.perf_counter()
        if hard_cpu != resource.RLIM_INFINITY:
            soft = min(hard_cpu, math.ceil(_cpu_used() + cpu_s))
            resource.setrlimit(resource.RLIMIT_CPU, (soft, hard_cpu))
        try:
            try:
                sys.stdout, sys.stderr = out, err
                signal.setitimer(signal.ITIMER_REAL, wall_s)
                _State.in_step = True
                exec(compile(code, filename, "exec"), module.__dict__)
            finally:
                _State.in_step = False
                signal.setitimer(signal.ITIMER_REAL, 0)
                sys.stdout, sys.stderr = real_stdout, real_stderr
        except _WallLimit:
            status, error = "timeout", f"wall time limit of {wall_s:g} s"
        except _CpuLimit:
            status, error = "timeout", f"CPU time limit of {cpu_s:g} s"
        except _OutputLimit:
            status, error = "output_limit", f"output limit of {cap} bytes"
        except MemoryError:
            status, error = "memory", _traceback()
        except SystemExit as exc:
            status, error = "fail", f"the code called exit({exc.code!r})\n"
        except BaseException:
            status, error = "fail", _traceback()
        finally:
            _State.in_step = False
        if hard_cpu != resource.RLIM_INFINITY:
            resource.setrlimit(resource.RLIMIT_CPU, (hard_cpu, hard_cpu))
        if status in ("pass", "fail") and (out.exceeded or err.exceeded):
            status, error = "output_limit", f"output limit of {cap} bytes"
        stdout = out.text()
        send(
            {
                "i": index,
                "event": "end",
                "status": status,
                "wall_s": time.perf_counter() - began,
                "stdout": stdout,
                "stdout_tail": _tail(stdout),
                "stderr_tail": _tail(err.text() + error),
                "error": error.strip().splitlines()[-1] if error.strip() else "",
            }
        )
        return status

    if step(-1, spec["source"], "solution.py") != "pass":
        return
    for index in range(spec["start"], len(spec["tests"])):
        step(index, spec["tests"][index], f"test_{index}.py")


if __name__ == "__main__":
    main()
