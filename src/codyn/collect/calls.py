"""One model call for collection, which failures are worth retrying, and the per-model limits.

Calls go through `litellm.completion` with the catalog model's own arguments
(`CatalogModel.completion_kwargs`, shared with the proxy). A failure is retried only when
trying again can help: rate limits, timeouts, lost connections and server errors (5xx), never
a request the backend refused as invalid (4xx, a context overflow included).
"""

from __future__ import annotations

import math
import os
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from codyn.catalog import CatalogModel

T = TypeVar("T")

RETRIABLE_STATUS = frozenset({408, 409, 425, 429})
"""4xx statuses that mean "not now" rather than "never": timeout, conflict, too early, rate."""


@dataclass(frozen=True)
class Call:
    """A finished call: the answer text and what it took."""

    text: str
    tokens_in: int | None
    tokens_out: int | None
    latency_s: float


class CallFailed(Exception):
    """A call that did not return an answer, classified once where the exception was raised
    (so it survives pickling from a Ray worker as plain data)."""

    def __init__(self, message: str, retriable: bool, attempts: int = 1) -> None:
        super().__init__(message)
        self.message, self.retriable, self.attempts = message, retriable, attempts

    def __reduce__(self) -> tuple[Any, ...]:
        return (CallFailed, (self.message, self.retriable, self.attempts))


def litellm_module() -> Any:
    """LiteLLM, imported on first use and told to stay offline (it would fetch a price list
    from the internet at import; prices come from the catalog)."""
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm

    litellm.suppress_debug_info = True
    litellm.telemetry = False
    return litellm


def complete(
    model: CatalogModel,
    messages: list[dict[str, str]],
    *,
    temperature: float,
    max_tokens: int,
    timeout_s: float,
) -> Call:
    """Ask ``model`` once; a failure is a `CallFailed` that says whether a retry may help."""
    litellm = litellm_module()
    start = time.perf_counter()
    try:
        response = litellm.completion(
            messages=messages,
            temperature=temperature,
            max_tokens=max_tokens,
            **model.completion_kwargs(timeout_s),
        )
    except Exception as exc:
        raise CallFailed(describe(exc), is_retriable(exc)) from None
    latency = time.perf_counter() - start
    choices = getattr(response, "choices", None) or []
    if not choices:
        raise CallFailed("the backend answered with no choices", retriable=True)
    text = choices[0].message.content or ""
    usage = getattr(response, "usage", None)
    return Call(
        text=text,
        tokens_in=_count(getattr(usage, "prompt_tokens", None)),
        tokens_out=_count(getattr(usage, "completion_tokens", None)),
        latency_s=latency,
    )


def _count(value: Any) -> int | None:
    return int(value) if isinstance(value, (int, float)) and not math.isnan(value) else None


def is_retriable(exc: BaseException) -> bool:
    """Whether trying the same request again may succeed: rate limits, timeouts, connection
    failures and 5xx, not 4xx validation errors (bad request, auth, not found, too long)."""
    import openai

    if isinstance(exc, (openai.APIConnectionError, openai.RateLimitError)):
        return True  # APITimeoutError is an APIConnectionError
    status = getattr(exc, "status_code", None)
    if isinstance(status, int):
        return status >= 500 or status in RETRIABLE_STATUS
    return isinstance(exc, (ConnectionError, TimeoutError))


def describe(exc: BaseException) -> str:
    """The exception's type and the first line of its message, for notes and the journal."""
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0][:300] if lines else ''}"


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with "equal jitter": attempt ``n`` (from 1) waits between half and
    all of ``min(cap_s, base_s * 2 ** (n - 1))``, so retries never bunch up, yet the total wait
    before giving up has a floor a restarting backend can count on."""

    attempts: int = 6
    """Tries in all (the first call included)."""
    base_s: float = 1.0
    cap_s: float = 30.0

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("attempts must be at least 1")
        if self.base_s < 0 or self.cap_s < 0:
            raise ValueError("backoff times must not be negative")

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1 = the first call)."""
        ceiling = min(self.cap_s, self.base_s * 2 ** (attempt - 1))
        return ceiling / 2 + (rng or random).uniform(0, ceiling / 2)

    def run(
        self,
        attempt: Callable[[], T],
        *,
        on_retry: Callable[[CallFailed], None] | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> tuple[T, int]:
        """``attempt()`` until it succeeds or fails for good; the result and the tries taken.
        The last `CallFailed` is raised when it is not retriable or the tries are used up."""
        for number in range(1, self.attempts + 1):
            try:
                return attempt(), number
            except CallFailed as failure:
                if not failure.retriable or number == self.attempts:
                    failure.attempts = number
                    raise
                if on_retry is not None:
                    on_retry(failure)
                sleep(self.delay(number))
        raise AssertionError("unreachable")  # pragma: no cover


class RateLimiter:
    """At most ``per_minute`` starts a minute, spaced evenly: each caller reserves the next
    free slot under a lock, then sleeps until it comes (no thread of its own)."""

    def __init__(self, per_minute: float | None) -> None:
        self.interval = 0.0 if not per_minute else 60.0 / per_minute
        self._next = 0.0
        self._lock = threading.Lock()

    def wait(self) -> float:
        """Block until this caller may start; the time it was let through (monotonic)."""
        if self.interval == 0.0:
            return time.monotonic()
        with self._lock:
            now = time.monotonic()
            slot = max(now, self._next)
            self._next = slot + self.interval
        if slot > now:
            time.sleep(slot - now)
        return slot
