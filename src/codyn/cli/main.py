"""The one Typer app. Commands live in small modules that register themselves on `app`."""

from __future__ import annotations

import sys
from collections.abc import Sequence

import typer

from codyn.errors import CodynError

app = typer.Typer(
    help="codyn: LLM routing for coding tasks.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode=None,  # plain help: rendering it with rich would double `codyn --help`
)

from codyn.cli import (  # noqa: E402,F401  (each module registers its commands)
    collect_commands,
    data_commands,
    eval_command,
    import_command,
    profile_commands,
    router_commands,
    sandbox_commands,
    serve_commands,
    similarity_commands,
    tasks_commands,
)


def main(argv: Sequence[str] | None = None) -> None:
    """Console entry point: a `CodynError` becomes one line on stderr and exit code 1."""
    try:
        app(args=list(argv) if argv is not None else None, prog_name="codyn")
    except CodynError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(1) from None


if __name__ == "__main__":
    # As ``python -m codyn.cli.main`` this file runs as __main__, and the command modules
    # register on the app of the imported codyn.cli.main, not on this copy's.
    from codyn.cli.main import main as imported_main

    imported_main()
