"""`codyn sandbox run`, `codyn sandbox check` and `codyn bench sandbox`: thin wrappers over
`codyn.sandbox` and `codyn.bench.sandbox` that parse, call the library and print."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from codyn.cli.main import app
from codyn.cli.output import console, print_json
from codyn.cli.router_commands import bench
from codyn.errors import CodynError

sandbox = typer.Typer(
    help="Run untrusted code under bubblewrap, with limits.",
    no_args_is_help=True,
    rich_markup_mode=None,
)
app.add_typer(sandbox, name="sandbox")

AsJson = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]


def _read_text(path: Path, what: str) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CodynError(f"{what} {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise CodynError(f"cannot read {what} {path}: {exc}") from None


@sandbox.command("run")
def sandbox_run_command(
    file: Annotated[Path, typer.Argument(help="The program: .py, .sh, .bash, .js or .c.")],
    stdin: Annotated[
        Path | None, typer.Option("--stdin", help="A file to feed the program as stdin.")
    ] = None,
    timeout: Annotated[
        float | None,
        typer.Option("--timeout", help="Wall-clock and CPU time limit in seconds [20 / 10]."),
    ] = None,
    memory_mb: Annotated[
        int | None, typer.Option("--memory-mb", help="Memory limit in MB [512].")
    ] = None,
    language: Annotated[
        str | None,
        typer.Option("--language", help="python, sh, bash, javascript, c [from the suffix]."),
    ] = None,
    unsafe_local: Annotated[
        bool,
        typer.Option(
            "--unsafe-local",
            help="Where bubblewrap cannot run, run the program WITHOUT a sandbox (rlimits, a "
            "process group and a temporary directory only).",
        ),
    ] = False,
    as_json: AsJson = False,
) -> None:
    """Run FILE in the sandbox and print how it ended: status, exit code, time, the tails of
    stdout and stderr. Exits 0 when the program passed (exit 0), 1 otherwise."""
    from codyn.sandbox import Limits, run_program
    from codyn.sandbox.languages import language_for_path

    source = _read_text(file, "program")
    given = _read_text(stdin, "stdin file") if stdin is not None else ""
    chosen = language or language_for_path(file.name)
    if chosen is None:
        raise CodynError(f"cannot tell the language of {file.name}; pass --language")
    settings: dict[str, float | int] = {}
    if timeout is not None:
        settings["wall_s"] = timeout
        settings["cpu_s"] = timeout
    if memory_mb is not None:
        settings["memory_mb"] = memory_mb
    outcome = run_program(
        source, language=chosen, stdin=given, limits=Limits(**settings), unsafe_local=unsafe_local
    )
    if as_json:
        print_json(outcome.as_dict())
    else:
        code = "none" if outcome.exit_code is None else str(outcome.exit_code)
        line = f"{outcome.status} (exit code {code}, {outcome.wall_s:.3f} s)"
        console.print(line + (f": {outcome.detail}" if outcome.detail else ""), markup=False)
        for name, text in (("stdout", outcome.stdout_tail), ("stderr", outcome.stderr_tail)):
            if text:
                console.print(f"--- {name} (last 2 KB) ---", markup=False)
                console.print(text.rstrip("\n"), markup=False, highlight=False)
    if outcome.status != "pass":
        raise typer.Exit(1)


@sandbox.command("check")
def sandbox_check_command(as_json: AsJson = False) -> None:
    """Say whether bubblewrap works here (a real probe run) and, if not, why. Exits 1 when it
    does not."""
    from codyn.sandbox.languages import available_languages
    from codyn.sandbox.settings import describe

    report = describe()
    report["languages"] = available_languages()
    if as_json:
        print_json(report)
    else:
        if report["works"]:
            console.print(
                f"bubblewrap {report['bwrap_version']} ({report['bwrap']}) works here: programs "
                f"run as uid {report['runs_as_uid']} in their own namespaces, Python "
                f"{report['python']}",
                markup=False,
            )
        else:
            console.print(f"bubblewrap cannot be used here: {report['problem']}", markup=False)
            console.print(
                "runs are refused unless --unsafe-local / unsafe_local=True allows them "
                "WITHOUT a sandbox",
                markup=False,
            )
        cgroups = report["cgroups"]
        assert isinstance(cgroups, dict)
        for controller, folder in cgroups.items():
            where = folder or "not available (rlimits only)"
            console.print(f"{controller} cgroup: {where}", markup=False)
        console.print(f"languages: {', '.join(report['languages'])}", markup=False)  # type: ignore[arg-type]
    if not report["works"]:
        raise typer.Exit(1)


@bench.command("sandbox")
def bench_sandbox_command(
    n: Annotated[int, typer.Option("--n", help="Runs of the trivial program to time.")] = 50,
    warmup: Annotated[int, typer.Option("--warmup", help="Untimed runs first.")] = 3,
    as_json: AsJson = False,
) -> None:
    """Sandboxed runs of a trivial Python program per second, and the start-up overhead of one
    run (p50 / p99) against a plain subprocess running the same program."""
    from codyn.bench.sandbox import bench_sandbox

    result = bench_sandbox(n=n, n_warmup=warmup)
    if as_json:
        print_json(result)
        return
    console.print(
        f"sandboxed: {result['executions_per_s']:.1f} runs/s, one run p50 "
        f"{result['sandbox_p50_ms']:.1f} ms, p99 {result['sandbox_p99_ms']:.1f} ms; plain "
        f"subprocess p50 {result['plain_p50_ms']:.1f} ms, p99 {result['plain_p99_ms']:.1f} ms; "
        f"overhead p50 {result['overhead_p50_ms']:.1f} ms, p99 {result['overhead_p99_ms']:.1f} "
        f"ms (n={n}, {result['python']})",
        markup=False,
    )
    console.print(
        f"one verified attempt (extract the code, 3 asserts): p50 {result['verify_p50_ms']:.1f} "
        f"ms, p99 {result['verify_p99_ms']:.1f} ms",
        markup=False,
    )
