"""Errors that users see as one clear line, never a traceback."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path


def shown_list(values: Sequence[str], limit: int = 5) -> str:
    """At most ``limit`` values for a one-line message: ``a, b, c ... (12 in all)``."""
    head = ", ".join(str(v) for v in values[:limit])
    return head + (f" ... ({len(values)} in all)" if len(values) > limit else "")


class CodynError(Exception):
    """Base class for errors the CLI reports as a single line and a non-zero exit."""


class DataError(CodynError, ValueError):
    """Bad input data: says which file, which line or column, and what was expected.

    ``row`` is the line number a user sees in the file (the header of a CSV is line 1).
    """

    def __init__(
        self,
        message: str,
        *,
        path: str | Path | None = None,
        row: int | None = None,
        column: str | None = None,
    ) -> None:
        self.path = None if path is None else str(path)
        self.row = row
        self.column = column
        self.detail = message
        where = []
        if self.path:
            where.append(self.path)
        if row is not None:
            where.append(f"line {row}")
        if column is not None:
            where.append(f"column {column!r}")
        super().__init__(f"{': '.join([', '.join(where), message]) if where else message}")


class NotFittedError(CodynError, AttributeError):
    """An estimator (router, featuriser) used before ``fit``. An AttributeError as in
    scikit-learn, so ``hasattr(featuriser, "dim")`` is False until it is fitted."""
