"""One registration style for everything codyn looks up by name: routers, policies,
featurisers and importers.

A family registers itself where it is defined, with the registry's decorator::

    ROUTERS = Registry("router", "codyn.routers")

    @ROUTERS.register("knn")
    class KNNRouter(Router): ...

A name not registered yet makes the registry import the other public modules of its package
once, so a family defined there is found without anyone editing a central list, and heavy
dependencies load only with the module that needs them.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from codyn.errors import CodynError

T = TypeVar("T")


class Registry(Generic[T]):
    """Named entries of one kind (``kind`` names it in messages), found in ``package``."""

    def __init__(self, kind: str, package: str, *, plural: str | None = None) -> None:
        self.kind = kind
        self.plural = plural or f"{kind}s"
        self.package = package
        self._entries: dict[str, T] = {}
        self._meta: dict[str, dict[str, Any]] = {}
        self._import_errors: dict[str, str] = {}
        self._discovered = False

    def register(self, name: str, **meta: Any) -> Callable[[T], T]:
        """Decorator: make the class or function known as ``name``, with optional metadata
        (read back with `meta`). Registering another object under a taken name is an error;
        the same definition again (a module re-imported) is not."""
        if not name or ":" in name or "=" in name or name != name.strip():
            raise ValueError(f"invalid {self.kind} name {name!r}")

        def decorate(obj: T) -> T:
            known = self._entries.get(name)
            if known is not None and _identity(known) != _identity(obj):
                raise ValueError(
                    f"{self.kind} {name!r} is already registered by {_identity(known)[1]}"
                )
            self._entries[name] = obj
            self._meta[name] = dict(meta)
            return obj

        return decorate

    def get(self, name: str) -> T:
        """The entry registered as ``name``; a `CodynError` listing the known names otherwise."""
        if name not in self._entries:
            self.discover()
        if name not in self._entries:
            message = (
                f"unknown {self.kind} {name!r}; known {self.plural}: {', '.join(self.names())}"
            )
            if self._import_errors:
                failed = "; ".join(f"{m}: {e}" for m, e in self._import_errors.items())
                message += f" (could not import {failed})"
            raise CodynError(message)
        return self._entries[name]

    def meta(self, name: str) -> dict[str, Any]:
        """The metadata given to `register` for ``name``."""
        self.get(name)
        return dict(self._meta[name])

    def names(self) -> list[str]:
        """Every registered name, in registration order (after discovering the package)."""
        self.discover()
        return list(self._entries)

    def __contains__(self, name: object) -> bool:
        if name not in self._entries:
            self.discover()
        return name in self._entries

    def discover(self) -> None:
        """Import every public module of the package once so that its entries register.

        A module whose optional dependency is missing is remembered and named when a lookup
        fails, instead of failing every lookup.
        """
        if self._discovered:
            return
        self._discovered = True
        package = importlib.import_module(self.package)
        for info in pkgutil.iter_modules(package.__path__):
            if info.name.startswith("_"):
                continue
            module = f"{self.package}.{info.name}"
            try:
                importlib.import_module(module)
            except ImportError as exc:
                self._import_errors[module] = str(exc)


def _identity(obj: object) -> tuple[str, str]:
    return getattr(obj, "__module__", ""), getattr(obj, "__qualname__", repr(obj))
