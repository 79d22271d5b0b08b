"""Counters of a collection run and their display: a rich progress bar on stderr (a plain line
every half minute when stderr is not a terminal, so CI logs show a long run moving)."""

from __future__ import annotations

import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Stats:
    """What a run did so far (thread-safe through `add`)."""

    total: int = 0
    done: int = 0
    resumed: int = 0
    """Jobs already finished in the journal when the run started."""
    calls: int = 0
    """Calls sent to a model this run and answered (cached ones not counted)."""
    cached: int = 0
    failures: int = 0
    retries: int = 0
    tokens: int = 0
    cost_usd: float = 0.0
    executions: int = 0
    started: float = field(default_factory=time.perf_counter)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, **amounts: float) -> None:
        with self._lock:
            for name, amount in amounts.items():
                setattr(self, name, getattr(self, name) + amount)

    @property
    def elapsed_s(self) -> float:
        return time.perf_counter() - self.started

    @property
    def calls_per_s(self) -> float:
        elapsed = self.elapsed_s
        return self.calls / elapsed if elapsed > 0 else 0.0

    def line(self) -> str:
        return (
            f"{self.done}/{self.total} jobs · {self.failures} failed · {self.tokens:,} tokens · "
            f"${self.cost_usd:.4f} · {self.executions} sandbox runs · "
            f"{self.calls_per_s:.2f} calls/s"
        )


class Display:
    """The progress of ``stats`` under ``title``; nothing at all when not ``enabled``."""

    PLAIN_EVERY_S = 30.0

    def __init__(self, title: str, stats: Stats, enabled: bool) -> None:
        self.title, self.stats, self.enabled = title, stats, enabled
        self._progress: Any = None
        self._task: Any = None
        self._last_plain = time.monotonic()
        if not enabled:
            return
        if sys.stderr.isatty():
            from rich.console import Console
            from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

            self._progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(bar_width=24),
                TextColumn("{task.fields[line]}"),
                TimeRemainingColumn(),
                console=Console(stderr=True),
            )
            self._task = self._progress.add_task(
                title, total=stats.total, completed=stats.done, line=stats.line()
            )
            self._progress.start()
        else:
            self._plain()

    def refresh(self) -> None:
        if not self.enabled:
            return
        if self._progress is not None:
            self._progress.update(self._task, completed=self.stats.done, line=self.stats.line())
        elif time.monotonic() - self._last_plain >= self.PLAIN_EVERY_S:
            self._plain()

    def _plain(self) -> None:
        self._last_plain = time.monotonic()
        print(f"{self.title}: {self.stats.line()}", file=sys.stderr, flush=True)

    def close(self) -> None:
        if not self.enabled:
            return
        if self._progress is not None:
            self.refresh()
            self._progress.stop()
        else:
            self._plain()
