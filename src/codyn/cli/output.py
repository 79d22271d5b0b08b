"""Printing helpers shared by commands: JSON with NaN as null, and rich tables.

numpy and rich are imported only when something is printed, so ``codyn --help`` (plain
click help) loads neither.
"""

from __future__ import annotations

import json
import math
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table


class _LazyConsole:
    """rich's `Console`, built on first use (importing rich costs a tenth of a second)."""

    def __init__(self) -> None:
        self._console: Console | None = None

    def __getattr__(self, name: str) -> Any:
        if self._console is None:
            from rich.console import Console

            # Piped output (files, CI logs, tests) gets a wide fixed width: names never cut.
            self._console = Console(soft_wrap=True, width=None if sys.stdout.isatty() else 200)
        return getattr(self._console, name)


console = _LazyConsole()


def _clean(value: Any) -> Any:
    import numpy as np

    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, np.ndarray):
        return [_clean(v) for v in value.tolist()]
    if isinstance(value, (np.floating, float)):
        return None if math.isnan(float(value)) else float(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value


def print_json(payload: Any) -> None:
    """Strict JSON on stdout (NaN becomes null) so other tools can parse it."""
    print(json.dumps(_clean(payload), indent=2, allow_nan=False))


def fmt(value: Any, digits: int = 3) -> str:
    """A table cell: ``n/a`` for None and NaN, ``digits`` decimals (tiny numbers in e-notation)."""
    import numpy as np

    if value is None:
        return "n/a"
    if isinstance(value, (float, np.floating)):
        if math.isnan(float(value)):
            return "n/a"
        if value != 0 and abs(value) < 10 ** (-digits):
            return f"{value:.2e}"
        return f"{value:.{digits}f}"
    return str(value)


def table(title: str, columns: list[str], rows: list[list[Any]]) -> Table:
    from rich.table import Table

    out = Table(title=title, title_justify="left")
    for i, col in enumerate(columns):
        out.add_column(col, justify="left" if i == 0 else "right")
    for row in rows:
        out.add_row(*[fmt(v) for v in row])
    return out
