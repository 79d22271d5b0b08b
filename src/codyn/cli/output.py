"""Printing helpers shared by commands: JSON with NaN as null, and rich tables.

numpy is imported only when a value is printed, so ``codyn --help`` does not load it; rich
stays at the top, as Typer's help output loads it anyway.
"""

from __future__ import annotations

import json
import math
import sys
from typing import Any

from rich.console import Console
from rich.table import Table

# Piped output (files, CI logs, tests) gets a wide fixed width so model names are never cut.
console = Console(soft_wrap=True, width=None if sys.stdout.isatty() else 200)


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
    out = Table(title=title, title_justify="left")
    for i, col in enumerate(columns):
        out.add_column(col, justify="left" if i == 0 else "right")
    for row in rows:
        out.add_row(*[fmt(v) for v in row])
    return out
