"""Importers: public routing data sets and your own long-format files -> `RoutingData`.

``read("routerbench", ["benchmarks/routerbench"])`` picks the reader by format name; each
module's docstring documents its files, ids, cleaning and options (``long`` is the format
for your own data). A module of this package registers its reader with
`register_importer`; the registry imports the modules on the first lookup, so adding a
format means adding a module, and this file never imports one by name.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from codyn.data.routing import RoutingData, mark_constant_costs_as_proxy
from codyn.errors import CodynError, DataError
from codyn.registry import Registry

Reader = Callable[..., RoutingData]
"""An importer: ``read(paths: list[str | Path], **options) -> RoutingData``."""

IMPORTERS: Registry[Reader] = Registry("format", "codyn.data.importers")
"""Every import format by name, with its ``description`` and ``options`` as metadata."""


def register_importer(
    name: str, *, description: str, options: dict[str, str]
) -> Callable[[Reader], Reader]:
    """Decorator for a module's ``read``: make it format ``name`` with a one-line
    description (for ``codyn import --help``) and its options (name -> description)."""
    return IMPORTERS.register(name, description=description, options=dict(options))


def formats() -> dict[str, str]:
    """Format name -> one-line description, sorted by name (the choices of ``codyn import``)."""
    return {name: IMPORTERS.meta(name)["description"] for name in sorted(IMPORTERS.names())}


def options(fmt: str) -> dict[str, str]:
    """The options a format accepts: name -> description."""
    _reader(fmt)
    return dict(IMPORTERS.meta(fmt)["options"])


def read(fmt: str, paths: Sequence[str | Path] | str | Path, **opts: Any) -> RoutingData:
    """Import ``paths`` (files or directories) in format ``fmt``; unknown options are errors.

    Costs that are constant per model across all prompts become ``price_proxy`` here, for
    every format (see `mark_constant_costs_as_proxy`).
    """
    reader = _reader(fmt)
    accepted = options(fmt)
    unknown = sorted(set(opts) - set(accepted))
    if unknown:
        shown = ", ".join(accepted) or "none"
        raise DataError(f"format {fmt!r} has no option {unknown[0]!r}; it accepts: {shown}")
    if isinstance(paths, (str, Path)):
        paths = [paths]
    data = reader(list(paths), **opts)
    mark_constant_costs_as_proxy(data)
    return data


def _reader(fmt: str) -> Reader:
    try:
        return IMPORTERS.get(fmt)
    except CodynError as exc:  # unknown format: a DataError like every other bad input
        raise DataError(str(exc)) from None


__all__ = ["IMPORTERS", "formats", "options", "read", "register_importer"]
