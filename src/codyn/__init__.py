"""codyn: LLM routing for coding tasks."""

from typing import Any

from codyn.data.routing import Model, RoutingData

__version__ = "0.1.0"
__all__ = ["Client", "Model", "RoutingData", "__version__"]


def __getattr__(name: str) -> Any:
    """`codyn.Client` without importing LiteLLM (seconds) on every `import codyn`."""
    if name == "Client":
        from codyn.client import Client

        return Client
    raise AttributeError(f"module 'codyn' has no attribute {name!r}")
