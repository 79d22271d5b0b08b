"""Option parsing shared by commands: ``NAME=VALUE`` parameters and comma-separated lists."""

from __future__ import annotations

import json
from typing import Any

from codyn.errors import CodynError


def parse_value(text: str) -> Any:
    """A parameter value: JSON when it parses (numbers, true/false, lists), else the string."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def parse_params(pairs: list[str], option: str = "--param") -> dict[str, Any]:
    """``["k=40", "weights=similarity"]`` -> ``{"k": 40, "weights": "similarity"}``."""
    params: dict[str, Any] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise CodynError(f"{option} takes NAME=VALUE, got {pair!r}")
        params[name.strip()] = parse_value(value)
    return params


def parse_scoped_params(pairs: list[str], option: str = "--param") -> dict[str, dict[str, Any]]:
    """``["knn40.k=40", "tiers.thresholds=[0.2,0.5]"]`` -> ``{"knn40": {"k": 40}, ...}``: the
    part before the first dot names a router or policy of the command."""
    scoped: dict[str, dict[str, Any]] = {}
    for name, value in parse_params(pairs, option).items():
        owner, dot, key = name.partition(".")
        if not dot or not owner or not key:
            raise CodynError(
                f"{option} takes ROUTER.KEY=VALUE (or POLICY.KEY=VALUE), e.g. knn.k=40; got "
                f"{name!r}"
            )
        scoped.setdefault(owner, {})[key] = value
    return scoped


def split_list(text: str | None) -> list[str]:
    """``"a, b,,c"`` -> ``["a", "b", "c"]`` (None -> [])."""
    return [] if text is None else [part.strip() for part in text.split(",") if part.strip()]
