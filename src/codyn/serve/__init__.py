"""The OpenAI-compatible routing proxy and its configuration (`codyn.serve.config`):
`create_app` builds it from a config; `codyn serve --config codyn.yaml` runs it."""

from typing import Any

__all__ = ["create_app"]


def __getattr__(name: str) -> Any:
    """`create_app` without importing FastAPI and LiteLLM for `codyn.serve.config` alone."""
    if name == "create_app":
        from codyn.serve.app import create_app

        return create_app
    raise AttributeError(f"module 'codyn.serve' has no attribute {name!r}")
