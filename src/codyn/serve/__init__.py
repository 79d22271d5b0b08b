"""The OpenAI-compatible routing proxy: `create_app` builds it from a config (see
`codyn.catalog`); `codyn serve --config codyn.yaml` runs it."""

from codyn.serve.app import create_app

__all__ = ["create_app"]
