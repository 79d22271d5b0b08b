"""`codyn collect` and `codyn score`: thin wrappers over `codyn.collect.engine` that parse,
run (with a progress bar on stderr) and print a per-model summary."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from codyn.cli.main import app
from codyn.cli.output import console, fmt, print_json, table
from codyn.errors import CodynError

AsJson = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON (no progress).")]
TasksFile = Annotated[Path, typer.Option("--tasks", help="Task file (JSONL, see codyn.collect).")]
Out = Annotated[Path, typer.Option("-o", "--out", help="Routing data to write (.parquet).")]
Resume = Annotated[
    bool,
    typer.Option("--resume", help="Go on from OUT.journal: keep its finished jobs, do the rest."),
]
ExecutorName = Annotated[
    str,
    typer.Option(
        "--executor",
        help="local: calls in threads, scoring in a process pool; ray: Ray tasks on the "
        "cluster in RAY_ADDRESS, or a local Ray.",
    ),
]
TestTimeout = Annotated[
    float, typer.Option("--test-timeout", help="Seconds per program run when scoring.")
]
Judge = Annotated[
    str | None,
    typer.Option("--judge", help="Catalog model that judges answers of `judge` tasks."),
]
UnsafeLocal = Annotated[
    bool,
    typer.Option(
        "--unsafe-local", help="Run answers' code without bubblewrap where it is unavailable."
    ),
]


@app.command("collect")
def collect_command(
    tasks: TasksFile,
    models: Annotated[
        Path, typer.Option("--models", help="codyn YAML file whose `models:` are called.")
    ],
    out: Out,
    only: Annotated[
        str | None, typer.Option("--only", help="Comma-separated catalog models to use.")
    ] = None,
    samples: Annotated[int, typer.Option("--samples", help="Answers per (task, model).")] = 1,
    temperature: Annotated[
        float | None,
        typer.Option("--temperature", help="Sampling temperature (default 0, or 0.8 with K>1)."),
    ] = None,
    max_tokens: Annotated[int, typer.Option("--max-tokens", help="Tokens per answer.")] = 512,
    concurrency: Annotated[
        int, typer.Option("--concurrency", help="Calls in flight at once, over all models.")
    ] = 8,
    retries: Annotated[
        int,
        typer.Option(
            "--retries",
            help="Retries per call on rate limits, timeouts, lost connections and 5xx "
            "(exponential backoff with jitter; 4xx errors are not retried).",
        ),
    ] = 5,
    resume: Resume = False,
    no_cache: Annotated[
        bool,
        typer.Option(
            "--no-cache", help="Call every model anew (the cache is neither read nor written)."
        ),
    ] = False,
    executor: ExecutorName = "local",
    timeout: Annotated[
        float,
        typer.Option("--timeout", help="Seconds per call, for models without their timeout_s."),
    ] = 120.0,
    test_timeout: TestTimeout = 10.0,
    unsafe_local: UnsafeLocal = False,
    judge: Judge = None,
    as_json: AsJson = False,
) -> None:
    """Ask every catalog model every task of TASKS (K samples each), score the answers, and
    write one routing data set to OUT. Resumable (--resume) and cached."""
    from codyn.collect.calls import RetryPolicy
    from codyn.collect.engine import CollectOptions, collect_files
    from codyn.collect.kinds import ScoringContext

    if retries < 0:
        raise CodynError(f"--retries must not be negative, got {retries}")
    retry = RetryPolicy(attempts=retries + 1)
    judge_call = _judge(models, judge, timeout, retry)
    options = CollectOptions(
        samples=samples,
        temperature=temperature,
        max_tokens=max_tokens,
        concurrency=concurrency,
        timeout_s=timeout,
        cache=not no_cache,
        resume=resume,
        executor=executor,
        retry=retry,
        scoring=ScoringContext(timeout_s=test_timeout, unsafe_local=unsafe_local, judge=judge_call),
        progress=not as_json,
    )
    names = None if only is None else [n.strip() for n in only.split(",") if n.strip()]
    result = collect_files(tasks, models, out, only=names, options=options)
    _report(result.summary, result.data.notes, as_json)


@app.command("score")
def score_command(
    data: Annotated[Path, typer.Argument(help="Routing data with stored answers (.parquet).")],
    tasks: TasksFile,
    out: Out,
    resume: Resume = False,
    executor: ExecutorName = "local",
    test_timeout: TestTimeout = 10.0,
    unsafe_local: UnsafeLocal = False,
    models: Annotated[
        Path | None, typer.Option("--models", help="codyn YAML file holding the --judge model.")
    ] = None,
    judge: Judge = None,
    as_json: AsJson = False,
) -> None:
    """Score DATA's stored answers again with the tests of TASKS (after fixing a test, say),
    calling no model; tokens, costs and latencies are kept. Writes OUT."""
    from codyn.collect.calls import RetryPolicy
    from codyn.collect.engine import CollectOptions, rescore
    from codyn.collect.kinds import ScoringContext

    if judge is not None and models is None:
        raise CodynError("--judge needs --models: the catalog that has the judge model")
    judge_call = None if models is None else _judge(models, judge, 120.0, RetryPolicy())
    options = CollectOptions(
        resume=resume,
        executor=executor,
        scoring=ScoringContext(timeout_s=test_timeout, unsafe_local=unsafe_local, judge=judge_call),
        progress=not as_json,
    )
    result = rescore(data, tasks, out, options)
    _report(result.summary, result.data.notes, as_json)


def _judge(models: Path, name: str | None, timeout_s: float, retry: Any) -> Any:
    """The `JudgeCall` for catalog model ``name`` (None without one)."""
    if name is None:
        return None
    from codyn.catalog import load_catalog
    from codyn.collect.executors import JudgeCall

    catalog = load_catalog(models)
    if name not in catalog.models:
        raise catalog.error(
            f"unknown model {name!r} in --judge; the catalog has {', '.join(catalog.models)}"
        )
    return JudgeCall(catalog.models[name], timeout_s=timeout_s, retry=retry)


def _report(summary: dict[str, Any], notes: list[str], as_json: bool) -> None:
    if as_json:
        print_json(summary)
        return
    per_model = summary["per_model"]
    columns = ["model", "score", "visible", "missing", "$ per call"]
    several = "pass_at_k" in summary
    if several:
        columns += ["pass@1", f"pass@{summary['k']}"]
    rows = []
    for name, entry in per_model.items():
        row = [
            name,
            fmt(entry["score"]),
            fmt(entry["visible_score"]),
            entry["missing"],
            fmt(entry["cost_per_call_usd"], 6),
        ]
        if several:
            row += [fmt(summary["pass_at_1"][name]), fmt(summary["pass_at_k"][name])]
        rows.append(row)
    console.print(table(f"{summary['n_prompts']} prompts -> {summary['output']}", columns, rows))
    console.print(
        f"{summary['calls']} calls, {summary['cached']} cached, {summary['resumed']} resumed, "
        f"{summary['failures']} failed, {summary['executions']} sandbox runs, "
        f"{summary['tokens']:,} tokens, ${summary['cost_usd']:.4f}, "
        f"{summary['elapsed_s']:.1f} s ({summary['calls_per_s']:.2f} calls/s)"
    )
    for note in notes:
        console.print(f"note: {note}")
    if summary.get("journal"):
        console.print(
            f"the journal {summary['journal']} is kept: --resume retries the failed calls"
        )
