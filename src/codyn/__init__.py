"""codyn: LLM routing for coding tasks."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from codyn.client import Client
    from codyn.data.routing import Model, RoutingData

__version__ = "0.1.0"
__all__ = ["Client", "Model", "RoutingData", "__version__"]


def __getattr__(name: str) -> Any:
    """Public names imported on first use, so ``import codyn`` (and every CLI command) starts
    fast: `RoutingData` and `Model` need pandas and pyarrow, `Client` needs LiteLLM (seconds)."""
    if name == "Client":
        from codyn.client import Client

        return Client
    if name in ("Model", "RoutingData"):
        from codyn.data import routing

        return getattr(routing, name)
    raise AttributeError(f"module 'codyn' has no attribute {name!r}")
