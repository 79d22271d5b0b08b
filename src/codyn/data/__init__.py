"""Routing data: the structure, importers, splits and the bundled demo data."""

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from codyn.data.routing import COST_BASES, FORMAT_VERSION, Model, RoutingData

__all__ = ["COST_BASES", "FORMAT_VERSION", "Model", "RoutingData"]


def __getattr__(name: str) -> Any:
    """`RoutingData` and friends on first use: importing `codyn.data.splits` or
    `codyn.data.importers` alone must not load pandas and pyarrow."""
    if name in __all__:
        from codyn.data import routing

        return getattr(routing, name)
    raise AttributeError(f"module 'codyn.data' has no attribute {name!r}")
