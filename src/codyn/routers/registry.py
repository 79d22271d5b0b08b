"""Router families by name: ``make_router("single:gpt-4o")`` and ``load_router(directory)``.

A family registers itself with ``@register_router("name")``. Names not registered yet make the
registry import the other ``codyn.routers`` modules once, so a family defined there is found
without anyone editing a central list.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from codyn.errors import CodynError, DataError
from codyn.routers.base import CONFIG_FILE, Router, read_saved

R = TypeVar("R", bound=Router)

ROUTERS: list[str] = []
"""Names of the registered router families (updated in place as families register)."""

_FAMILIES: dict[str, type[Router]] = {}
_SPEC_ARGS: dict[str, str | None] = {}
_IMPORT_ERRORS: dict[str, str] = {}


def register_router(name: str, *, arg: str | None = None) -> Callable[[type[R]], type[R]]:
    """Class decorator: make a `Router` subclass known as family ``name`` (sets ``family``).

    ``arg`` names the ``__init__`` parameter that a spec's ``name:<value>`` fills, as ``model``
    does for ``single:<model>``.
    """
    if not name or ":" in name or name != name.strip():
        raise ValueError(f"invalid router family name {name!r}")

    def decorate(cls: type[R]) -> type[R]:
        known = _FAMILIES.get(name)
        if known is not None and (known.__module__, known.__qualname__) != (
            cls.__module__,
            cls.__qualname__,
        ):
            raise ValueError(
                f"router family {name!r} is already registered by {known.__qualname__}"
            )
        declared = cls.__dict__.get("family", name)
        if declared != name:
            raise ValueError(f"{cls.__qualname__}.family is {declared!r}, registered as {name!r}")
        if arg is not None and arg not in cls._param_names():
            raise ValueError(f"{cls.__qualname__} has no parameter {arg!r} for {name}:<{arg}>")
        cls.family = name
        _FAMILIES[name] = cls
        _SPEC_ARGS[name] = arg
        if name not in ROUTERS:
            ROUTERS.append(name)
        return cls

    return decorate


def router_class(family: str) -> type[Router]:
    """The class registered as ``family``; a `CodynError` listing the known names otherwise."""
    if family not in _FAMILIES:
        _discover()
    if family not in _FAMILIES:
        message = f"unknown router {family!r}; known routers: {', '.join(ROUTERS)}"
        if _IMPORT_ERRORS:
            failed = "; ".join(f"{module}: {error}" for module, error in _IMPORT_ERRORS.items())
            message += f" (could not import {failed})"
        raise CodynError(message)
    return _FAMILIES[family]


def make_router(spec: str, **params: Any) -> Router:
    """A new, unfitted router from a spec such as ``random``, ``sbs`` or ``single:<model>``."""
    name, colon, value = spec.strip().partition(":")
    cls = router_class(name)
    if colon:
        arg = _SPEC_ARGS[name]
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
        arg = _SPEC_ARGS.get(cls.family)
        usage = f"; use {cls.family}:<{arg}>" if arg else ""
        raise CodynError(
            f"{where}: {exc}; {cls.family!r} takes: {', '.join(cls._param_names()) or 'nothing'}"
            f"{usage}"
        ) from None
    return cls(**params)


def _discover() -> None:
    """Import every public ``codyn.routers`` module once so that its families register.

    A module whose optional dependency is missing is remembered, and named when a family is
    not found, instead of failing every lookup.
    """
    package = sys.modules[__name__.rpartition(".")[0]]
    for info in pkgutil.iter_modules(package.__path__):
        module = f"{package.__name__}.{info.name}"
        if info.name.startswith("_") or module in sys.modules or module in _IMPORT_ERRORS:
            continue
        try:
            importlib.import_module(module)
        except ImportError as exc:
            _IMPORT_ERRORS[module] = str(exc)
