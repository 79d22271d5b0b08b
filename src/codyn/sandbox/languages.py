"""The languages a program may be written in, and the command that runs each.

Every command uses only what the sandbox binds read-only (the system under /usr and the
sandbox's Python), so a language works where its runtime is installed there: Python always,
``sh`` and ``bash``, JavaScript with Node.js under /usr, C with a C compiler under /usr (it is
compiled inside the sandbox, in the same limits). Anything else is refused with a
`CodynError` naming the languages that do work.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from codyn.errors import CodynError, shown_list
from codyn.sandbox.limits import Limits
from codyn.sandbox.settings import sandbox_python

WORK = "{work}"
"""Placeholder in a command for the working directory (/tmp inside the sandbox)."""


@dataclass(frozen=True)
class Language:
    name: str
    filename: str
    """Where the program's source is written, in the working directory."""
    runtime: str | None
    """The executable that must exist (None: the sandbox's Python)."""
    address_space_limit: bool = True
    """Whether RLIMIT_AS may bound it (Node reserves gigabytes of address space at start, so
    only the memory cgroup and its heap flag bound it)."""

    def available(self) -> bool:
        return self.runtime is None or os.access(self.runtime, os.X_OK)

    def command(self, limits: Limits) -> list[str]:
        """The argv that runs ``WORK/filename``."""
        source = f"{WORK}/{self.filename}"
        if self.name == "python":
            return [sandbox_python().executable, "-B", "-s", source]
        if self.name in ("sh", "bash"):
            return [str(self.runtime), source]
        if self.name == "javascript":
            heap = max(16, limits.memory_mb // 2)
            return [str(self.runtime), f"--max-old-space-size={heap}", source]
        if self.name == "c":
            binary = f"{WORK}/.codyn-program"
            script = f'"$1" -O2 -o "{binary}" "{source}" -lm && exec "{binary}"'
            return ["/bin/sh", "-c", script, "sh", str(self.runtime)]
        raise CodynError(f"no command for language {self.name!r}")


LANGUAGES = {
    "python": Language("python", "main.py", None),
    "sh": Language("sh", "main.sh", "/bin/sh"),
    "bash": Language("bash", "main.sh", "/bin/bash"),
    "javascript": Language("javascript", "main.js", "/usr/bin/node", address_space_limit=False),
    "c": Language("c", "main.c", "/usr/bin/cc"),
}
ALIASES = {
    "py": "python",
    "python3": "python",
    "shell": "sh",
    "js": "javascript",
    "node": "javascript",
}
SUFFIXES = {".py": "python", ".sh": "sh", ".bash": "bash", ".js": "javascript", ".c": "c"}


def available_languages() -> list[str]:
    """The languages whose runtime is installed here."""
    return [name for name, lang in LANGUAGES.items() if lang.available()]


def get_language(name: str) -> Language:
    """The `Language` called ``name`` (or an alias); a `CodynError` when unknown or missing."""
    key = ALIASES.get(name.lower(), name.lower())
    lang = LANGUAGES.get(key)
    if lang is None:
        raise CodynError(
            f"language {name!r} is not supported by the sandbox; it runs "
            f"{shown_list(available_languages(), 10)}"
        )
    if not lang.available():
        raise CodynError(
            f"language {name!r} needs {lang.runtime}, which is not installed here; the "
            f"sandbox runs {shown_list(available_languages(), 10)}"
        )
    return lang


def language_for_path(filename: str) -> str | None:
    """The language a file's suffix names (``.py`` -> python), None when it names none."""
    return SUFFIXES.get(os.path.splitext(filename)[1].lower())
