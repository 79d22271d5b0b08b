"""codyn.sandbox: every status, stdin and files, the limits, languages, `run_tests` one outcome
per test, refusal without bubblewrap and the unsafe fallback, and the CLI.

Everything runs for real: bubblewrap, cgroups, processes. "bubblewrap cannot run" is a real
failure too: ``CODYN_BWRAP`` pointing at a missing executable, or an interpreter the sandbox
cannot reach. Limits are small so that the file stays fast on two cores; no test asserts on
speed (``codyn bench sandbox`` prints it).
"""

from __future__ import annotations

import json
import os
import shutil
import threading
from pathlib import Path

import pytest

from codyn.errors import CodynError
from codyn.sandbox import (
    Limits,
    Outcome,
    SandboxUnavailable,
    available_languages,
    require_sandbox,
    run_program,
    run_tests,
    sandbox_problem,
)
from codyn.sandbox.cgroups import cgroup_support
from codyn.sandbox.settings import BWRAP_ENV, PYTHON_ENV
from tests.conftest import run_cli

SMALL = Limits(wall_s=10, cpu_s=5, memory_mb=128, output_bytes=100_000)


@pytest.fixture(scope="module", autouse=True)
def _bubblewrap() -> None:
    problem = sandbox_problem()
    if problem is not None:
        pytest.skip(f"bubblewrap cannot run here ({problem}); `make test` installs it")


def run(source: str, **kwargs: object) -> Outcome:
    kwargs.setdefault("limits", SMALL)
    return run_program(source, **kwargs)  # type: ignore[arg-type]


# --- statuses -------------------------------------------------------------------------------


def test_pass_reads_stdin_and_prints() -> None:
    out = run("import sys\nprint(sys.stdin.read().upper(), end='')", stdin="hello\nworld\n")
    assert (out.status, out.exit_code, out.detail) == ("pass", 0, None)
    assert out.stdout == "HELLO\nWORLD\n" == out.stdout_tail
    assert out.wall_s > 0


def test_nonzero_exit_and_exceptions_fail() -> None:
    out = run("import sys\nprint('before')\nsys.exit(3)")
    assert (out.status, out.exit_code, out.stdout) == ("fail", 3, "before\n")
    out = run("def f():\n    raise ValueError('boom')\nf()")
    assert (out.status, out.exit_code) == ("fail", 1)
    assert "ValueError: boom" in out.stderr_tail and "Traceback" in out.stderr_tail


def test_signals_nobody_sent_are_crashes() -> None:
    out = run("import os\nos.abort()")
    assert (out.status, out.exit_code, out.detail) == ("crash", None, "killed by SIGABRT")
    out = run("import ctypes\nctypes.string_at(0)")
    assert (out.status, out.detail) == ("crash", "killed by SIGSEGV")


def test_wall_time_limit_is_a_timeout() -> None:
    out = run("import time\nprint('start', flush=True)\ntime.sleep(60)", limits=Limits(wall_s=1))
    assert (out.status, out.exit_code, out.stdout) == ("timeout", None, "start\n")
    assert out.detail == "wall time limit of 1 s"


def test_cpu_time_limit_is_a_timeout() -> None:
    out = run("while True:\n    pass", limits=Limits(cpu_s=1, wall_s=30))
    assert out.status == "timeout"
    assert out.detail == "CPU time limit of 1 s"


def test_memory_limit() -> None:
    out = run("blocks = []\nwhile True:\n    blocks.append(bytearray(8 * 2**20))", limits=SMALL)
    assert out.status == "memory", out
    assert "128 MB" in str(out.detail)


@pytest.mark.skipif(cgroup_support()["memory"] is None, reason="no memory cgroup here")
def test_memory_limit_holds_across_processes() -> None:
    # Each child stays under RLIMIT_AS; together they pass the run's memory cgroup.
    source = (
        "import os, time\n"
        "for _ in range(4):\n"
        "    if os.fork() == 0:\n"
        "        block = bytearray(60 * 2**20)\n"
        "        for i in range(0, len(block), 4096):\n"
        "            block[i] = 1\n"
        "        time.sleep(0.5)\n"
        "        os._exit(0)\n"
        "for _ in range(4):\n"
        "    os.wait()\n"
    )
    out = run(source)
    assert out.status == "memory", out
    assert "cgroup" in str(out.detail)
    assert out.peak_memory_mb is not None and out.peak_memory_mb <= 128 + 1


def test_output_limit_stops_a_flood() -> None:
    out = run("while True:\n    print('x' * 1000)", limits=Limits(output_bytes=10_000))
    assert out.status == "output_limit"
    assert len(out.stdout.encode()) <= 10_000
    assert out.stdout.startswith("x" * 1000)
    assert "10000 bytes" in str(out.detail)


def test_stderr_counts_towards_the_output_limit() -> None:
    out = run(
        "import sys\nwhile True:\n    sys.stderr.write('e' * 1000)",
        limits=Limits(output_bytes=5_000),
    )
    assert out.status == "output_limit"
    assert out.stdout == "" and out.stderr_tail.endswith("e" * 100)


def test_file_size_limit() -> None:
    source = "open('big.bin', 'wb').write(b'x' * 2_000_000)"
    out = run(source, limits=Limits(file_bytes=1_000_000))
    assert out.status == "fail"
    assert "File too large" in out.stderr_tail
    assert out.detail == "file size limit of 1000000 bytes"
    assert run(source, limits=Limits(file_bytes=3_000_000)).status == "pass"


def test_private_tmp_is_size_capped() -> None:
    source = (
        "import os\n"
        "for i in range(6):\n"
        "    with open(f'part{i}.bin', 'wb') as fh:\n"
        "        fh.write(b'x' * 1_000_000)\n"
    )
    out = run(source, limits=Limits(tmp_bytes=3_000_000, file_bytes=2_000_000))
    assert out.status == "fail"
    assert "No space left on device" in out.stderr_tail


def test_only_tmp_and_dev_shm_are_writable() -> None:
    source = (
        "import os\n"
        "for path in ['/tmp/a', '/dev/shm/b', '/dev/c', '/usr/d', '/e', '/proc/f']:\n"
        "    try:\n"
        "        open(path, 'w').close()\n"
        "        print(path, 'ok')\n"
        "    except OSError:\n"
        "        print(path, 'refused')\n"
    )
    out = run(source)
    said = dict(line.split() for line in out.stdout.splitlines())
    assert said == {"/tmp/a": "ok", "/dev/shm/b": "ok", "/dev/c": "refused"} | {
        p: "refused" for p in ("/usr/d", "/e", "/proc/f")
    }


def test_open_files_limit() -> None:
    source = "handles = [open('/dev/null') for _ in range(200)]"
    out = run(source, limits=Limits(open_files=32))
    assert out.status == "fail"
    assert "Too many open files" in out.stderr_tail


def test_process_limit() -> None:
    source = (
        "import os, time\n"
        "started = 0\n"
        "for _ in range(40):\n"
        "    try:\n"
        "        pid = os.fork()\n"
        "    except OSError:\n"
        "        break\n"
        "    if pid == 0:\n"
        "        time.sleep(5)\n"
        "        os._exit(0)\n"
        "    started += 1\n"
        "print(started)\n"
    )
    out = run(source, limits=Limits(processes=8, wall_s=10))
    assert out.status == "pass", out
    if cgroup_support()["pids"] is not None:
        # The program itself is one of the 8 processes.
        assert (int(out.stdout), out.peak_processes) == (7, 8)
    else:
        assert int(out.stdout) <= 7


# --- what the program sees -------------------------------------------------------------------


def test_files_land_in_the_private_working_directory() -> None:
    source = (
        "import os\n"
        "print(os.getcwd(), sorted(os.listdir('.')))\n"
        "print(open('data/input.txt').read())\n"
        "open('data/out.txt', 'w').write('written')\n"
        "print(open('data/out.txt').read())\n"
    )
    out = run(source, files={"data/input.txt": "42", "notes.md": "# hi"})
    assert out.status == "pass", out
    lines = out.stdout.splitlines()
    assert lines[0] == "/tmp ['data', 'main.py', 'notes.md']"
    assert lines[1:] == ["42", "written"]


@pytest.mark.parametrize("name", ["../escape.txt", "/etc/passwd", "a//b", "", "main.py", "d"])
def test_bad_file_names_are_refused(name: str) -> None:
    with pytest.raises(CodynError, match="sandbox file name"):
        run("pass", files={name: "x", "d/inner.txt": "y"})


def test_environment_is_clean() -> None:
    source = "import json, os\nprint(json.dumps(dict(os.environ)))"
    env = json.loads(run(source).stdout)
    assert set(env) <= {"PATH", "HOME", "LANG", "TMPDIR", "PWD"}
    assert env["HOME"] == "/tmp" and env["PATH"].startswith("/usr/local/bin:/usr/bin")


def test_languages() -> None:
    assert {"python", "sh", "bash"} <= set(available_languages())
    out = run('read line\necho "got $line"\nexit 4', language="sh", stdin="abc\n")
    assert (out.status, out.exit_code, out.stdout) == ("fail", 4, "got abc\n")
    out = run("declare -A seen=([a]=1)\necho ${seen[a]}", language="bash")
    assert (out.status, out.stdout) == ("pass", "1\n")
    if "javascript" in available_languages():
        out = run("console.log([1, 2, 3].map(x => x * 2).join(','))", language="js")
        assert (out.status, out.stdout) == ("pass", "2,4,6\n")
    if "c" in available_languages():
        c_source = '#include <stdio.h>\nint main(void) { printf("%d\\n", 6 * 7); return 0; }\n'
        out = run(c_source, language="c", limits=Limits(wall_s=30))
        assert (out.status, out.stdout) == ("pass", "42\n")
        out = run("int main(void) { return undefined; }", language="c", limits=Limits(wall_s=30))
        assert out.status == "fail" and "undefined" in out.stderr_tail


def test_unknown_language_is_refused_clearly() -> None:
    with pytest.raises(CodynError, match="'cobol' is not supported by the sandbox; it runs python"):
        run("DISPLAY 'HI'.", language="cobol")


def test_limits_are_checked() -> None:
    with pytest.raises(CodynError, match="wall_s"):
        Limits(wall_s=0)
    with pytest.raises(CodynError, match="memory_mb"):
        Limits(memory_mb=1)


def test_concurrent_runs_stay_apart() -> None:
    results: dict[int, Outcome] = {}

    def one(i: int) -> None:
        results[i] = run(f"import time\ntime.sleep(0.2)\nprint({i})")

    threads = [threading.Thread(target=one, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert {i: (o.status, o.stdout) for i, o in results.items()} == {
        i: ("pass", f"{i}\n") for i in range(4)
    }


def test_run_cgroups_are_removed() -> None:
    run("import os\nos.fork()\nprint('x')")
    for folder in cgroup_support().values():
        if folder is not None:
            mine = [p for p in Path(folder).iterdir() if p.name.startswith(f"{os.getpid()}-")]
            assert mine == []


# --- run_tests ----------------------------------------------------------------------------------

SOLUTION = "def f(x):\n    return x + 1\nprint('solution loaded')\n"


def test_run_tests_one_outcome_per_test_in_order() -> None:
    tests = [
        "assert f(1) == 2",
        "assert f(1) == 3, 'off by one'",
        "def check(candidate):\n    assert candidate(2) == 3\n    assert candidate(-1) == 0\n"
        "check(f)",
        "print('checking'); assert f(0) == 1",
        "raise KeyError('missing')",
        "import sys\nsys.exit(0)",
    ]
    outs = run_tests(SOLUTION, tests, limits=SMALL)
    assert [o.status for o in outs] == ["pass", "fail", "pass", "pass", "fail", "fail"]
    assert outs[1].detail == "AssertionError: off by one"
    assert "test_1.py" in outs[1].stderr_tail and "harness" not in outs[1].stderr_tail
    assert outs[3].stdout == "checking\n"
    assert outs[4].detail == "KeyError: 'missing'"
    assert "exit(0)" in outs[5].stderr_tail
    assert [o.exit_code for o in outs[:2]] == [0, 1]


def test_a_test_that_kills_the_interpreter_loses_no_other_outcome() -> None:
    tests = [
        "assert f(1) == 2",
        "import os\nos.abort()",
        "assert f(2) == 3",
        "import time\ntime.sleep(60)",
        "assert f(3) == 4",
        "import os\nos._exit(7)",
        "blocks = [bytearray(2**30) for _ in range(10)]",
        "import os\nos.write(1, b'y' * 500_000)",
        "print('z' * 500_000)",
        # Swallows the harness's own timer: the parent kills the process instead.
        "import time\nwhile True:\n    try:\n        time.sleep(60)\n    except BaseException:\n"
        "        pass",
        "assert f(4) == 5",
    ]
    limits = Limits(wall_s=1, cpu_s=2, memory_mb=128, output_bytes=100_000)
    outs = run_tests(SOLUTION, tests, limits=limits)
    assert [o.status for o in outs] == [
        "pass",
        "crash",
        "pass",
        "timeout",
        "pass",
        "fail",
        "memory",
        "output_limit",
        "output_limit",
        "timeout",
        "pass",
    ]
    assert outs[1].detail == "killed by SIGABRT"
    assert "code 7" in str(outs[5].detail)
    assert len(outs[8].stdout.encode()) <= 100_000


def test_a_failing_solution_fails_every_test() -> None:
    outs = run_tests("def f(x:\n    return x", ["assert f(1) == 1", "assert True"])
    assert [o.status for o in outs] == ["fail", "fail"]
    assert all("SyntaxError" in o.stderr_tail for o in outs)
    assert all(str(o.detail).startswith("the solution failed before the tests") for o in outs)
    outs = run_tests("import no_such_module_here", ["assert True"])
    assert outs[0].status == "fail" and "ModuleNotFoundError" in outs[0].stderr_tail


def test_a_hanging_solution_times_out_every_test() -> None:
    outs = run_tests("while True:\n    pass", ["assert True"] * 3, limits=Limits(wall_s=1))
    assert [o.status for o in outs] == ["timeout"] * 3


def test_run_tests_edge_cases() -> None:
    assert run_tests(SOLUTION, []) == []
    with pytest.raises(CodynError, match="sequence of code snippets"):
        run_tests(SOLUTION, "assert f(1) == 2")


# --- no usable bubblewrap -------------------------------------------------------------------


def test_refused_without_bubblewrap(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    missing = tmp_path / "no-such-bwrap"
    monkeypatch.setenv(BWRAP_ENV, str(missing))
    problem = sandbox_problem()
    assert problem is not None and str(missing) in problem
    out = run_program("print('hi')")
    assert (out.status, out.exit_code, out.stdout) == ("refused", None, "")
    assert str(missing) in str(out.detail) and "unsafe_local=True" in str(out.detail)
    assert [o.status for o in run_tests(SOLUTION, ["assert True"] * 2)] == ["refused"] * 2
    with pytest.raises(SandboxUnavailable, match="no-such-bwrap"):
        require_sandbox()
    with caplog.at_level("WARNING", logger="codyn.sandbox"):
        out = run_program("import os\nprint(os.getcwd())", unsafe_local=True, limits=SMALL)
    assert out.status == "pass"
    assert str(out.detail).startswith("unsafe-local: ran WITHOUT a sandbox")
    assert out.stdout.startswith(tempfile_root()) and "codyn-unsafe-" in out.stdout
    assert not Path(out.stdout.strip()).exists()  # the temporary directory is gone
    assert "WITHOUT a sandbox" in caplog.text
    outs = run_tests(SOLUTION, ["assert f(1) == 2", "assert f(1) == 0"], unsafe_local=True)
    assert [o.status for o in outs] == ["pass", "fail"]
    assert all("unsafe-local" in str(o.detail) for o in outs)
    # Limits still hold without the sandbox.
    out = run_program("import time\ntime.sleep(30)", unsafe_local=True, limits=Limits(wall_s=1))
    assert out.status == "timeout"


def tempfile_root() -> str:
    import tempfile

    return tempfile.gettempdir()


def test_a_failing_probe_refuses(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # A real interpreter in a folder the sandbox cannot bind (private to root, or without
    # its standard library): bubblewrap itself fails the probe run.
    prefix = tmp_path / "private-python"
    (prefix / "bin").mkdir(parents=True)
    prefix.chmod(0o700)
    shutil.copy2(os.path.realpath("/usr/bin/python3"), prefix / "bin" / "python3")
    monkeypatch.setenv(PYTHON_ENV, str(prefix / "bin" / "python3"))
    problem = sandbox_problem()
    assert problem is not None and "failed a probe run" in problem
    assert run_program("print(1)").status == "refused"


# --- CLI ------------------------------------------------------------------------------------


def test_cli_sandbox_run(tmp_path: Path) -> None:
    program = tmp_path / "upper.py"
    program.write_text("import sys\nprint(sys.stdin.read().upper())\n")
    given = tmp_path / "in.txt"
    given.write_text("abc")
    done = run_cli("sandbox", "run", program, "--stdin", given, "--json", "--timeout", "10")
    assert done.code == 0, done.stderr
    payload = json.loads(done.stdout)
    assert {"status", "exit_code", "wall_s", "stdout_tail", "stderr_tail", "detail"} <= set(payload)
    assert (payload["status"], payload["stdout_tail"]) == ("pass", "ABC\n")
    failing = tmp_path / "fail.sh"
    failing.write_text("echo oops >&2\nexit 5\n")
    done = run_cli("sandbox", "run", failing, "--memory-mb", "64")
    assert done.code == 1
    assert done.stdout.startswith("fail (exit code 5,") and "oops" in done.stdout
    done = run_cli("sandbox", "run", tmp_path / "missing.py")
    assert (
        done.code == 1
        and done.stderr.startswith("error: program")
        and "Traceback" not in done.stderr
    )
    odd = tmp_path / "prog.xyz"
    odd.write_text("x")
    assert "pass --language" in run_cli("sandbox", "run", odd).stderr


def test_cli_sandbox_check(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    done = run_cli("sandbox", "check")
    assert done.code == 0 and "works here" in done.stdout
    report = json.loads(run_cli("sandbox", "check", "--json").stdout)
    assert report["works"] is True and "python" in report["languages"]
    monkeypatch.setenv(BWRAP_ENV, str(tmp_path / "gone"))
    done = run_cli("sandbox", "check")
    assert done.code == 1 and "cannot be used here" in done.stdout and "gone" in done.stdout
    program = tmp_path / "p.py"
    program.write_text("print('unsafe ok')\n")
    done = run_cli("sandbox", "run", program, "--json")
    assert done.code == 1 and json.loads(done.stdout)["status"] == "refused"
    done = run_cli("sandbox", "run", program, "--json", "--unsafe-local")
    payload = json.loads(done.stdout)
    assert done.code == 0 and payload["stdout_tail"] == "unsafe ok\n"
    assert payload["detail"].startswith("unsafe-local")


def test_cli_bench_sandbox() -> None:
    done = run_cli("bench", "sandbox", "--n", "3", "--warmup", "1", "--json")
    assert done.code == 0, done.stderr
    result = json.loads(done.stdout)
    for key in ("executions_per_s", "sandbox_p50_ms", "overhead_p99_ms", "verify_p50_ms"):
        assert isinstance(result[key], float)
    assert result["executions_per_s"] > 0 and result["n"] == 3
