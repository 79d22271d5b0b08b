"""Router families by name: ``make_router("single:gpt-4o")`` and ``load_router(directory)``.

A family registers itself with ``@register_router("name")`` on `ROUTERS`, a
`codyn.registry.Registry`: a name not registered yet makes it import the other
``codyn.routers`` modules once, so a family defined there is found without anyone editing a
central list.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from codyn.errors import CodynError, DataError
from codyn.registry import Registry
from codyn.routers.base import CONFIG_FILE, Router, read_saved

R = TypeVar("R", bound=Router)

ROUTERS: Registry[type[Router]] = Registry("router", "codyn.routers")
"""The router families by name (``ROUTERS.names()``); each entry's ``arg`` metadata names the
parameter that a spec's ``name:<value>`` fills."""


def register_router(name: str, *, arg: str | None = None) -> Callable[[type[R]], type[R]]:
    """Class decorator: make a `Router` subclass known as family ``name`` (sets ``family``).

    ``arg`` names the ``__init__`` parameter that a spec's ``name:<value>`` fills, as ``model``
    does for ``single:<model>``.
    """
    register = ROUTERS.register(name, arg=arg)

    def decorate(cls: type[R]) -> type[R]:
        declared = cls.__dict__.get("family", name)
        if declared != name:
            raise ValueError(f"{cls.__qualname__}.family is {declared!r}, registered as {name!r}")
        if arg is not None and arg not in cls._param_names():
            raise ValueError(f"{cls.__qualname__} has no parameter {arg!r} for {name}:<{arg}>")
        register(cls)
        cls.family = name
        return cls

    return decorate


def router_class(family: str) -> type[Router]:
    """The class registered as ``family``; a `CodynError` listing the known names otherwise."""
    return ROUTERS.get(family)


def make_router(spec: str, **params: Any) -> Router:
    """A new, unfitted router from a spec such as ``random``, ``sbs`` or ``single:<model>``."""
    name, colon, value = spec.strip().partition(":")
    cls = router_class(name)
    if colon:
        arg = ROUTERS.meta(name)["arg"]
        if arg is None:
            raise CodynError(f"router {name!r} takes no ':' argument (got {spec!r})")
        if not value or arg in params:
            raise CodynError(f"router spec {spec!r}: give {arg} once, as {name}:<{arg}>")
        params[arg] = value
    return _build(cls, params, f"router spec {spec!r}")


def load_router(directory: str | Path) -> Router:
    """Read any router saved by `Router.save`.

    A missing or corrupted file, a newer format version, an unknown family or state that does
    not fit the family is a `DataError` naming the file.
    """
    config, arrays = read_saved(directory)
    path = Path(directory) / CONFIG_FILE
    try:
        cls = router_class(config["family"])
        router = _build(cls, config["params"], "saved params")
    except CodynError as exc:
        raise DataError(str(exc), path=path) from None
    router.model_names_ = list(config["model_names"])
    try:
        router._set_state(config["state"], arrays)
    except (CodynError, KeyError, IndexError, TypeError, ValueError) as exc:
        raise DataError(f"saved state does not fit a {cls.__name__} ({exc!r})", path=path) from None
    return router


def _build(cls: type[Router], params: dict[str, Any], where: str) -> Router:
    """``cls(**params)``, with a one-line error when the names do not fit ``__init__``."""
    try:
        inspect.signature(cls).bind(**params)
    except TypeError as exc:
        arg = ROUTERS.meta(cls.family)["arg"]
        usage = f"; use {cls.family}:<{arg}>" if arg else ""
        raise CodynError(
            f"{where}: {exc}; {cls.family!r} takes: {', '.join(cls._param_names()) or 'nothing'}"
            f"{usage}"
        ) from None
    return cls(**params)
