"""Task kinds: how a task becomes a prompt, and how an answer to it is scored.

A kind registers with ``@register_kind("function")`` and implements `Kind.messages` (the chat
messages sent to a model, paper 000 appendix A.7's templates where it gives one) and
`Kind.score` (a `CellScore` for one answer). Kinds that run code do it in `codyn.sandbox`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

from codyn.collect.tasks import Task
from codyn.registry import Registry

KINDS: Registry[type[Kind]] = Registry("task kind", "codyn.collect.kinds")

K = TypeVar("K", bound="type[Kind]")

Messages = list[dict[str, str]]
"""OpenAI chat messages: ``[{"role": "user", "content": "..."}]``."""


def register_kind(name: str) -> Callable[[K], K]:
    """Class decorator: make a `Kind` known as ``name`` (sets ``name`` on the class)."""

    def decorate(cls: K) -> K:
        cls.name = name
        return KINDS.register(name)(cls)

    return decorate


@dataclass(frozen=True)
class ScoringContext:
    """What scoring may use besides the task and the answer."""

    timeout_s: float = 10.0
    """Wall-clock limit per program run (per test for function tests)."""
    memory_mb: int = 512
    unsafe_local: bool = False
    """Run code without bubblewrap where it is unavailable (see `codyn.sandbox`)."""
    judge: Callable[[Messages], str] | None = None
    """Calls the judge model (``judge`` kind): messages in, its reply out."""


@dataclass(frozen=True)
class CellScore:
    """One answer's outcome.

    ``score`` is what routing learns from (hidden tests' pass fraction, CodeBLEU, label
    correctness, judge verdict); ``visible`` is the pass fraction on the tests the prompt shows
    (None where the kind has none): what a cascade's verifier can check before escalating.
    """

    score: float
    visible: float | None = None
    executions: int = 0
    """Programs run in the sandbox to score it."""
    outcomes: list[dict[str, Any]] = field(default_factory=list)
    """What scoring saw, one row each: per test ``{"set": "visible" | "hidden", "index",
    "status": "pass" | "fail" | ..., "stderr_tail", "detail"}``; classify ``{"set": "label",
    "predicted", "label"}``; reference ``{"set": "reference", "status": "scored", ...CodeBLEU
    components}``; judge ``{"set": "judge", "order", "verdict", "status": "win" | "tie" |
    "loss" | "unparsed"}``."""
    error: str | None = None
    """Why the answer could not be scored as intended (no code found, ...)."""


class Kind(ABC):
    """One task shape: the prompt it sends and how it scores an answer."""

    name: ClassVar[str]

    @abstractmethod
    def messages(self, task: Task) -> Messages:
        """The chat messages that ask a model to do ``task``."""

    @abstractmethod
    def score(self, task: Task, response: str, context: ScoringContext) -> CellScore:
        """Score ``response`` (the model's reply text) to ``task``."""

    def check(self, task: Task) -> None:  # noqa: B027
        """Raise ``ValueError`` naming the field when ``task`` lacks what this kind needs."""


def kind_of(task: Task) -> Kind:
    """The kind object for ``task`` (a `CodynError` listing the kinds when unknown)."""
    return KINDS.get(task.kind)()
