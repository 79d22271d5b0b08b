"""Cheap structural features of a prompt: size, code layout, test-like lines, language hints.

Sentence encoders see what a prompt is about, not how big or code-heavy it is; yet length,
pasted code and tests are what make a coding task hard for a small model. These ~30 numbers
(counts on a log scale, shares in [0, 1], 0/1 flags) cost well under a millisecond and are meant
to be concatenated to an embedding or used alone by simple routers.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any, Self

import numpy as np

from codyn.features.base import (
    DEFAULT_MAX_CHARS,
    ClippingFeaturiser,
    FeaturiserError,
    register_featuriser,
)

_FENCE = re.compile(r"^\s*(```|~~~)", re.MULTILINE)
_CODE_LINE = re.compile(
    r"[;{}]\s*$|:\s*$|^\s*(?:def|class|return|import|from|for|while|if|elif|else|try|except|with|"
    r"#include|public|private|static|function|const|let|var|fn|func)\b"
)
_SYMBOLS = frozenset("(){}[]<>=+-*/%&|^~!;:")
_TEST_LINE = re.compile(
    r"^\s*assert\b|\bdef test_\w*|\bunittest\b|\bpytest\b|^\s*>>>|\bassert\w+\(|@Test\b|"
    r"\bexpect\(",
    re.MULTILINE,
)
_PATTERNS: dict[str, re.Pattern[str]] = {
    "has_def": re.compile(r"\bdef\s+\w+\s*\("),
    "has_class": re.compile(r"\bclass\s+\w+"),
    "has_return": re.compile(r"\breturn\b"),
    "has_import": re.compile(
        r"^\s*(?:import\s+\w|from\s+\S+\s+import\b|#include\b|using\s+namespace\b|use\s+\w+::)"
        r"|\brequire\(",
        re.MULTILINE,
    ),
    "has_example_io": re.compile(r"(?i)\b(?:example|input|output|sample)\s*\d*\s*:"),
    "has_multiple_choice": re.compile(r"(?m)^\s*\(?[A-Ea-e][).:]\s+\S"),
    "has_math": re.compile(r"\$[^$\n]+\$|\\frac|\\sqrt|\d+\s*[-+*/^]\s*\d+\s*="),
    "lang_python": re.compile(
        r"(?i:\bpython\b)|\bdef \w+\(|\bprint\(|\bself\.|\belif\b|__name__|^\s*import \w+$",
        re.MULTILINE,
    ),
    "lang_javascript": re.compile(
        r"(?i:\b(?:javascript|typescript|node\.?js)\b)|\bconsole\.log\b|=>|"
        r"\bfunction\s*\w*\s*\(|\b(?:const|let)\s+\w+\s*="
    ),
    "lang_java": re.compile(
        r"(?i:\bjava\b)|\bpublic\s+(?:static\s+)?(?:void|class|int|String)\b|System\.out\."
    ),
    "lang_c_cpp": re.compile(
        r"(?i:\bc\+\+|\bcpp\b|\bin c\b)|#include\s*<|\bstd::|\bprintf\s*\(|\bint\s+main\s*\("
    ),
    "lang_go": re.compile(r"(?i:\bgolang\b)|\bfunc\s+\w+\s*\(|\bpackage\s+main\b|\bfmt\.Print"),
    "lang_rust": re.compile(r"(?i:\brust\b)|\bfn\s+\w+\s*\(|\blet\s+mut\b|\bprintln!"),
    "lang_sql": re.compile(
        r"(?i:\bsql\b|\bselect\b[^;]{1,200}?\bfrom\b|\binsert\s+into\b|\bcreate\s+table\b)"
    ),
    "lang_shell": re.compile(r"(?i:\bbash\b|\bshell\b)|^\s*\$ \w|#!/bin/|\bsudo\b", re.MULTILINE),
}


def _share(part: int, whole: int) -> float:
    return part / whole if whole else 0.0


def _layout(text: str) -> dict[str, float]:
    """Size and layout of ``text``: how long, how many lines, how much of it is code-shaped."""
    lines = text.splitlines()
    nonblank = [line for line in lines if line.strip()]
    fenced, inside = 0, False
    for line in lines:
        if _FENCE.match(line):
            inside = not inside
        elif inside:
            fenced += 1
    letters = sum(ch.isalpha() for ch in text)
    return {
        "log_chars": math.log1p(len(text)),
        "log_words": math.log1p(len(text.split())),
        "log_lines": math.log1p(len(nonblank)),
        "blank_line_share": _share(len(lines) - len(nonblank), len(lines)),
        "fenced_line_share": _share(fenced, len(lines)),
        "log_fences": math.log1p(len(_FENCE.findall(text)) / 2),
        "indented_line_share": _share(
            sum(line.startswith(("    ", "\t")) for line in nonblank), len(nonblank)
        ),
        "code_line_share": _share(sum(bool(_CODE_LINE.search(x)) for x in nonblank), len(nonblank)),
        "symbol_share": _share(sum(ch in _SYMBOLS for ch in text), len(text)),
        "digit_share": _share(sum(ch.isdigit() for ch in text), len(text)),
        "upper_share": _share(sum(ch.isupper() for ch in text), letters),
        "non_ascii_share": _share(sum(not ch.isascii() for ch in text), len(text)),
        "log_test_lines": math.log1p(len(_TEST_LINE.findall(text))),
        "has_question": float("?" in text),
    }


FEATURE_NAMES: tuple[str, ...] = (*_layout("").keys(), *_PATTERNS.keys())
"""Column names, in output order; part of the config so a saved router notices a change."""


@register_featuriser("structure")
class StructureFeaturiser(ClippingFeaturiser):
    """``len(FEATURE_NAMES)`` hand-made numbers per prompt; deterministic and stateless."""

    feature_names = FEATURE_NAMES

    def __init__(self, *, max_chars: int | None = DEFAULT_MAX_CHARS) -> None:
        super().__init__(max_chars)

    @property
    def dim(self) -> int:
        return len(FEATURE_NAMES)

    def fit(self, texts: Sequence[str]) -> Self:
        """Nothing to learn; present so routers can call ``fit`` uniformly."""
        return self

    def transform(self, texts: Sequence[str]) -> np.ndarray:
        """``(n, dim)`` float32, columns in `FEATURE_NAMES` order (not normalised)."""
        clipped = self._clip(texts)
        out = np.zeros((len(clipped), self.dim), dtype=np.float32)
        for i, text in enumerate(clipped):
            flags = [float(p.search(text) is not None) for p in _PATTERNS.values()]
            out[i] = [*_layout(text).values(), *flags]
        return out

    def config(self) -> dict[str, Any]:
        return {"name": self.name, "features": list(FEATURE_NAMES), "max_chars": self._max_chars}

    def state(self) -> dict[str, np.ndarray]:
        return {}

    @classmethod
    def from_config(cls, config: dict[str, Any], state: dict[str, np.ndarray]) -> Self:
        """Rebuild; refuse a config whose feature list differs from this codyn's."""
        saved = config.get("features", list(FEATURE_NAMES))
        if list(saved) != list(FEATURE_NAMES):
            raise FeaturiserError(
                "structure features changed since this config was saved "
                f"({len(saved)} saved, {len(FEATURE_NAMES)} now): retrain the router"
            )
        return cls(max_chars=config.get("max_chars", DEFAULT_MAX_CHARS))
