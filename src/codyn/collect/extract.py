"""Code out of a model's reply: chat models wrap code in prose, fences and reasoning.

`extract_code` takes a reply as models really write it (``<think>`` preambles, prose, one or
several fenced blocks, or bare code) and returns the code to run or compare: the fenced block
in the wanted language that defines the entry point, else the first such block, else the
whole reply (less the reasoning).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

LANGUAGE_TAGS: dict[str, frozenset[str]] = {
    "python": frozenset({"python", "py", "python3", "py3"}),
    "java": frozenset({"java"}),
    "c_sharp": frozenset({"c_sharp", "csharp", "c#", "cs"}),
    "javascript": frozenset({"javascript", "js", "node", "jsx"}),
    "typescript": frozenset({"typescript", "ts"}),
    "c": frozenset({"c", "h"}),
    "cpp": frozenset({"cpp", "c++", "cxx", "cc", "hpp"}),
    "go": frozenset({"go", "golang"}),
    "rust": frozenset({"rust", "rs"}),
    "ruby": frozenset({"ruby", "rb"}),
    "php": frozenset({"php"}),
}
"""Fence info strings that mean each language (keys are the task-file ``language`` names)."""

DISPLAY_NAMES = {
    "python": "Python",
    "java": "Java",
    "c_sharp": "C#",
    "javascript": "JavaScript",
    "typescript": "TypeScript",
    "c": "C",
    "cpp": "C++",
    "go": "Go",
    "rust": "Rust",
    "ruby": "Ruby",
    "php": "PHP",
}

_FENCE = re.compile(r"^[ \t]*(?P<fence>`{3,}|~{3,})[ \t]*(?P<info>[^\n`]*)$", re.MULTILINE)
_THINK = re.compile(r"<think>.*?</think>", re.DOTALL | re.IGNORECASE)


@dataclass(frozen=True)
class CodeBlock:
    """One fenced block: its info-string language tag (lower case, ``""`` when untagged)."""

    language: str
    code: str


def canonical_language(name: str) -> str:
    """The task-file language name for a fence tag or language name (``"C#"`` ->
    ``"c_sharp"``); an unknown name comes back lower-cased."""
    tag = name.strip().lower()
    for language, tags in LANGUAGE_TAGS.items():
        if tag in tags:
            return language
    return tag


def display_name(language: str) -> str:
    """How a prompt names a language (``"c_sharp"`` -> ``"C#"``); unknown names as given."""
    return DISPLAY_NAMES.get(canonical_language(language), language)


def strip_reasoning(reply: str) -> str:
    """The reply without reasoning: ``<think>...</think>`` spans removed, and everything up to
    a lone ``</think>`` (templates that open the think tag themselves). An unclosed
    ``<think>`` keeps the text after it: a cut-off reply has nothing better."""
    text = _THINK.sub("", reply)
    lower = text.lower()
    if "</think>" in lower:
        text = text[lower.rindex("</think>") + len("</think>") :]
    return re.sub(r"<think>", "", text, flags=re.IGNORECASE)


def code_blocks(reply: str) -> list[CodeBlock]:
    """Every fenced block (backticks or tildes, any info string) in order; a final fence
    left open, as in a reply cut at its token limit, runs to the end of the text."""
    blocks: list[CodeBlock] = []
    pos = 0
    while True:
        opening = _FENCE.search(reply, pos)
        if opening is None:
            return blocks
        fence = opening.group("fence")
        closing = re.compile(rf"^[ \t]*{re.escape(fence[0])}{{{len(fence)},}}[ \t]*$", re.MULTILINE)
        start = opening.end() + 1
        end_match = closing.search(reply, start) if start <= len(reply) else None
        end = end_match.start() if end_match else len(reply)
        info = opening.group("info").strip().split()
        tag = info[0].lower().strip("{}.") if info else ""
        code = reply[start:end].rstrip() if start <= end else ""
        if end_match is None and code.endswith(fence):  # closed on the code's own last line
            code = code[: -len(fence)].rstrip()
        blocks.append(CodeBlock(tag, code))
        if end_match is None:
            return blocks
        pos = end_match.end()


def defines(code: str, entry_point: str, language: str = "python") -> bool:
    """Whether ``code`` defines ``entry_point`` (Python: ``def``/``async def``; other
    languages: the name followed by an opening parenthesis)."""
    name = re.escape(entry_point)
    if canonical_language(language) == "python":
        return re.search(rf"^[ \t]*(?:async[ \t]+)?def[ \t]+{name}[ \t]*\(", code, re.M) is not None
    return re.search(rf"\b{name}[ \t]*\(", code) is not None


def extract_code(reply: str, *, language: str = "python", entry_point: str | None = None) -> str:
    """The code in ``reply``: among fenced blocks tagged ``language`` or untagged (all
    blocks when none is), the first that defines ``entry_point``, else the first; with no
    fence at all, the whole reply. Reasoning (``<think>``) is dropped first."""
    text = strip_reasoning(reply)
    blocks = [b for b in code_blocks(text) if b.code.strip()]
    if not blocks:
        return text.strip("\n")
    wanted = canonical_language(language)
    fitting = [b for b in blocks if not b.language or canonical_language(b.language) == wanted]
    candidates = fitting or blocks
    if entry_point:
        for block in candidates:
            if defines(block.code, entry_point, wanted):
                return block.code
    return candidates[0].code
