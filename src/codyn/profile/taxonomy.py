"""DynaRoute's task taxonomy (paper 002, Table 4) and the `Profile` every profiler returns.

A profile is a specific domain ("Code Generation", "Chemistry", ...), a difficulty level 1-3
(section 2.1.2) and the profiler's confidence. The taxonomy ships as ``data/taxonomy.yaml``;
`load_taxonomy` reads it or a user's own file of the same shape.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from codyn.errors import DataError

LEVELS = (1, 2, 3)


def data_file(name: str) -> Path:
    """A file shipped in ``codyn/profile/data/``."""
    return Path(str(resources.files("codyn.profile") / "data" / name))


@dataclass(frozen=True)
class Profile:
    """What a profiler says of one prompt: its domain, its level (1-3) and how sure it is."""

    category: str
    level: int
    confidence: float = 1.0

    def to_dict(self) -> dict[str, Any]:
        return {"category": self.category, "level": self.level, "confidence": self.confidence}


@dataclass(frozen=True)
class Taxonomy:
    """Main categories -> their specific domains, the fallback domain and the level texts."""

    categories: Mapping[str, Sequence[str]]
    fallback: str = "Miscellaneous"
    levels: Mapping[int, str] = field(default_factory=dict)
    source: str = "taxonomy.yaml"

    @property
    def domains(self) -> list[str]:
        """Every specific domain, in the file's order."""
        return [d for domains in self.categories.values() for d in domains]

    def main_category(self, domain: str) -> str:
        for main, domains in self.categories.items():
            if domain in domains:
                return main
        raise DataError(f"{self.source}: unknown category {domain!r}")

    def canonical(self, text: str) -> str | None:
        """The domain ``text`` names (case, spaces and punctuation ignored), or None."""
        wanted = _key(text)
        for domain in self.domains:
            if _key(domain) == wanted:
                return domain
        return None


def _key(text: str) -> str:
    return "".join(ch for ch in text.lower() if ch.isalnum())


def load_taxonomy(path: str | Path | None = None) -> Taxonomy:
    """The shipped taxonomy, or a user's file with ``categories``, ``fallback``, ``levels``."""
    from codyn.catalog import read_yaml

    source = Path(path) if path is not None else data_file("taxonomy.yaml")
    data = read_yaml(source)
    categories = data.get("categories")
    if not isinstance(categories, dict) or not categories:
        raise DataError(f"{source}: `categories` must map main categories to lists of domains")
    parsed: dict[str, list[str]] = {}
    seen: set[str] = set()
    for main, domains in categories.items():
        if not isinstance(domains, list) or not all(isinstance(d, str) for d in domains):
            raise DataError(f"{source}: categories.{main} must be a list of domain names")
        for domain in domains:
            if domain in seen:
                raise DataError(f"{source}: categories.{main}: {domain!r} is listed twice")
            seen.add(domain)
        parsed[str(main)] = list(domains)
    fallback = data.get("fallback", "Miscellaneous")
    if fallback not in seen:
        raise DataError(f"{source}: fallback {fallback!r} is not one of the domains")
    levels = data.get("levels") or {}
    if not isinstance(levels, dict) or set(levels) - set(LEVELS):
        raise DataError(f"{source}: `levels` must map 1, 2 and 3 to their descriptions")
    return Taxonomy(
        categories=parsed,
        fallback=str(fallback),
        levels={int(k): str(v) for k, v in levels.items()},
        source=str(source),
    )
