"""codyn: LLM routing for coding tasks."""

from codyn.data.routing import Model, RoutingData

__version__ = "0.1.0"
__all__ = ["Model", "RoutingData", "__version__"]
