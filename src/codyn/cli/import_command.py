"""`codyn import FORMAT PATH... -o OUT.parquet`: public benchmarks or your own data -> codyn.

The command only parses and prints; `codyn.data.importers.read` does the work, and nothing
is written unless the whole import succeeded.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from codyn.cli.main import app
from codyn.cli.output import print_json
from codyn.errors import DataError

MAX_TASKS_SHOWN = 15


def _list_formats(value: bool) -> None:
    """``--formats``: every registered format and what it reads, then exit."""
    if value:
        from codyn.data import importers

        for name, description in importers.formats().items():
            print(f"{name}: {description}")
        raise typer.Exit()


@app.command("import")
def import_data(
    fmt: Annotated[
        str,
        typer.Argument(
            metavar="FORMAT", help="The data's format (`--formats` lists them).", show_default=False
        ),
    ],
    paths: Annotated[
        list[Path],
        typer.Argument(metavar="PATH...", help="Input files or directories of that format."),
    ],
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Parquet file to write (OUT.parquet).")
    ],
    option: Annotated[
        list[str] | None,
        typer.Option(
            "--option",
            metavar="KEY=VALUE",
            help="Format option, repeatable (e.g. keep_contaminated=true, models=a,b).",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
    formats: Annotated[
        bool,
        typer.Option(
            "--formats", callback=_list_formats, is_eager=True, help="List the formats and exit."
        ),
    ] = False,
) -> None:
    """Import routing data (prompts x models -> score, cost) into one codyn Parquet file."""
    from codyn.data import importers

    options = parse_options(option or [])
    if output.suffix != ".parquet":
        raise DataError("the output file must end in .parquet", path=output)
    if output.is_dir():
        raise DataError("the output path is a directory; name a .parquet file", path=output)
    if any(output.resolve() == Path(p).resolve() for p in paths):
        raise DataError("the output file is one of the inputs", path=output)
    data = importers.read(fmt, paths, **options)
    try:
        data.save(output)
    except OSError as exc:
        raise DataError(f"cannot write the output ({exc.strerror or exc})", path=output) from None
    summary = {"output": str(output), "format": fmt, **data.summary()}
    if as_json:
        print_json(summary)
    else:
        print_summary(summary)


def parse_options(items: list[str]) -> dict[str, str]:
    """``["a=1", "b-c=x,y"]`` -> ``{"a": "1", "b_c": "x,y"}``; malformed or repeated keys fail."""
    options: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key:
            raise DataError(f"--option expects KEY=VALUE, got {item!r}")
        if key in options:
            raise DataError(f"--option {key} given twice")
        options[key] = value.strip()
    return options


def print_summary(summary: dict[str, Any]) -> None:
    tasks: dict[str, int] = summary["tasks"]
    shown = sorted(tasks.items(), key=lambda kv: (-kv[1], kv[0]))[:MAX_TASKS_SHOWN]
    more = len(tasks) - len(shown)
    print(
        f"imported {summary['n_prompts']} prompts x {len(summary['models'])} models "
        f"({summary['format']}) -> {summary['output']}"
    )
    print("models: " + ", ".join(m["name"] for m in summary["models"]))
    print(
        f"tasks ({len(tasks)}): "
        + ", ".join(f"{task} {n}" for task, n in shown)
        + (f", ... {more} more" if more > 0 else "")
    )
    print(summary["cost_note"])
    for note in summary["notes"]:
        print(f"note: {note}")
