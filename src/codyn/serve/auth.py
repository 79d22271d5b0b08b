"""Bearer API keys, their roles and their budgets.

Keys are read from the environment variables the config names and kept only as SHA-256
digests. Spending is the database's total per key, read once when the decision log first
connects (before it writes any row of this process), plus what this process has charged; a key
whose spend reached its budget is refused before any backend is called. With several replicas
each counts the others' spending only as of its start, so a budget may be overrun by what they
spent since.

Monitoring (``/metrics``, the dashboard) shows every key's spending, so with keys configured
it takes an ``admin`` key, as a Bearer token or as the password of HTTP Basic authentication
(what a browser prompts for, and sends again with the dashboard's own requests).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import threading

from codyn.errors import CodynError
from codyn.serve.config import KeySpec


class AuthError(CodynError):
    """Missing or unknown API key (HTTP 401)."""


class BudgetExceeded(CodynError):
    """The key's budget is spent (HTTP 429)."""


class NotAdmin(CodynError):
    """A valid key without the admin role asked for monitoring (HTTP 403)."""


def _token(authorization: str | None, *, basic: bool) -> str:
    """The key in an ``Authorization`` header: ``Bearer <key>``, or with ``basic`` also
    ``Basic base64(<any user>:<key>)``; `AuthError` when there is none."""
    scheme, _, credentials = (authorization or "").partition(" ")
    token = ""
    if scheme.lower() == "bearer":
        token = credentials.strip()
    elif basic and scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(credentials.strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            decoded = ""
        token = decoded.partition(":")[2]
    if not token:
        how = "'Authorization: Bearer <key>'" + (" or HTTP Basic" if basic else "")
        raise AuthError(f"missing API key: send {how}")
    return token


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class Keys:
    """Who is calling (``authenticate``) and whether they may still spend (``check_budget``)."""

    def __init__(self, specs: dict[str, KeySpec]) -> None:
        self.specs = specs
        self._names = {_digest(os.environ[spec.key_env]): name for name, spec in specs.items()}
        self._stored: dict[str, float] = {}
        self._charged: dict[str, float] = {}
        self.loaded = False
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return bool(self.specs)

    def authenticate(self, authorization: str | None) -> str | None:
        """The key's name from an ``Authorization: Bearer ...`` header (None when the config
        has no keys: an open proxy)."""
        if not self.enabled:
            return None
        return self._name(_token(authorization, basic=False))

    def _name(self, token: str) -> str:
        name = self._names.get(_digest(token))
        if name is None:
            raise AuthError("invalid API key")
        return name

    def authenticate_admin(self, authorization: str | None) -> str | None:
        """The admin key's name (None for an open proxy); `AuthError` without a valid key,
        `NotAdmin` for a key of another role."""
        if not self.enabled:
            return None
        name = self._name(_token(authorization, basic=True))
        if self.specs[name].role != "admin":
            raise NotAdmin(f"key {name!r} is not an admin key (role: admin in the config)")
        return name

    def spent(self, name: str) -> float:
        with self._lock:
            return self._stored.get(name, 0.0) + self._charged.get(name, 0.0)

    def check_budget(self, name: str | None) -> None:
        if name is None:
            return
        budget = self.specs[name].budget_usd
        if budget is not None and self.spent(name) >= budget:
            raise BudgetExceeded(
                f"budget of key {name!r} is spent: {self.spent(name):.6f} of {budget:g} USD"
            )

    def charge(self, name: str | None, usd: float) -> None:
        if name is not None and usd:
            with self._lock:
                self._charged[name] = self._charged.get(name, 0.0) + usd

    def load_spent(self, stored: dict[str, float]) -> None:
        """The database's totals from before this process wrote anything."""
        with self._lock:
            self._stored = dict(stored)
            self.loaded = True
