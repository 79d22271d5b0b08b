"""Where calls and scoring run: locally (calls in the engine's threads, scoring in a process
pool, one process per core: scoring may run code and is CPU-bound) or on a Ray cluster (calls
in a threaded Ray actor, scoring as Ray tasks of one CPU each, spread over the cluster).

Both give the engine the same two operations: `call` blocks its thread until the model
answers, `score` returns a `concurrent.futures.Future` of the `CellScore`. The engine keeps
the rest (cache, journal, retries, rate limits) on the driver, so the two behave alike.
"""

from __future__ import annotations

import math
import multiprocessing
import os
import select
import signal
import threading
import time
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol

from codyn.catalog import CatalogModel
from codyn.collect.calls import Call, CallFailed, RetryPolicy, complete, describe
from codyn.collect.kinds import CellScore, Kind, Messages, ScoringContext
from codyn.collect.tasks import Task
from codyn.errors import CodynError

EXECUTORS = ("local", "ray")


def score_answer(kind: type[Kind], task: Task, response: str, context: ScoringContext) -> CellScore:
    """Score one answer; a kind that raises makes the answer's error, not a dead run. The kind
    travels as its class (pickled by name), so a kind defined outside codyn works too."""
    try:
        return kind().score(task, response, context)
    except Exception as exc:
        return CellScore(score=math.nan, error=f"scoring failed: {describe(exc)}")


@dataclass(frozen=True)
class JudgeCall:
    """``ScoringContext.judge`` for the ``judge`` kind: a catalog model asked with retries.
    Plain data, so it pickles into scoring processes and Ray workers."""

    model: CatalogModel
    max_tokens: int = 512
    timeout_s: float = 120.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)

    def __call__(self, messages: Messages) -> str:
        call, _ = self.retry.run(
            lambda: complete(
                self.model,
                messages,
                temperature=0.0,
                max_tokens=self.max_tokens,
                timeout_s=self.timeout_s,
            )
        )
        return call.text


class Executor(Protocol):
    name: str

    def call(
        self,
        model: CatalogModel,
        messages: Messages,
        *,
        temperature: float,
        max_tokens: int,
        timeout_s: float,
    ) -> Call: ...

    def score(
        self, kind: type[Kind], task: Task, response: str, context: ScoringContext
    ) -> Future[CellScore]: ...

    def close(self) -> None: ...


def _exit_with(parent: int) -> None:
    """Scoring-process initializer: exit when the collecting process ``parent`` does, even by
    SIGKILL, and leave Ctrl-C to it. Otherwise the pool's processes would wait for work
    forever: each holds both ends of its queue, so it never reads end-of-file (and keeps the
    forkserver alive)."""

    def watch() -> None:
        try:
            handle = os.pidfd_open(parent)
        except (AttributeError, OSError):  # not Linux, or gone already
            while _alive(parent):
                time.sleep(1.0)
        else:
            select.select([handle], [], [])  # readable once the process has exited
        os._exit(1)

    threading.Thread(target=watch, name="codyn-watch-parent", daemon=True).start()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the collecting process's to handle


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class LocalExecutor:
    """Calls in the caller's thread; scoring in a process pool (``forkserver``: forking a
    process that runs threads can copy a held lock into the child)."""

    name = "local"

    def __init__(self, workers: int | None = None) -> None:
        method = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else None
        self._pool = ProcessPoolExecutor(
            max_workers=workers or os.cpu_count() or 1,
            mp_context=multiprocessing.get_context(method),
            initializer=_exit_with,
            initargs=(os.getpid(),),
        )

    def call(
        self,
        model: CatalogModel,
        messages: Messages,
        *,
        temperature: float,
        max_tokens: int,
        timeout_s: float,
    ) -> Call:
        return complete(
            model, messages, temperature=temperature, max_tokens=max_tokens, timeout_s=timeout_s
        )

    def score(
        self, kind: type[Kind], task: Task, response: str, context: ScoringContext
    ) -> Future[CellScore]:
        return self._pool.submit(score_answer, kind, task, response, context)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


class _Caller:
    """The Ray actor that makes calls (threaded: ``max_concurrency`` calls at once). It returns
    a failure instead of raising it, so the driver sees the classification, not a wrapper."""

    def call(self, model: CatalogModel, messages: Messages, options: dict[str, Any]) -> Any:
        try:
            return complete(model, messages, **options)
        except CallFailed as failure:
            return failure


class RayExecutor:
    """Jobs on Ray: ``ray.init()`` connects to the cluster in ``RAY_ADDRESS`` or starts a local
    one, unless Ray is already initialised (then that session is used). Workers need codyn
    (and any kind defined outside it) importable, as on any Ray cluster."""

    name = "ray"

    def __init__(self, concurrency: int) -> None:
        try:
            import ray
        except ImportError:
            raise CodynError("--executor ray needs Ray: pip install 'codyn[ray]'") from None
        self._ray = ray
        if not ray.is_initialized():
            address = os.environ.get("RAY_ADDRESS")
            options: dict[str, Any] = {"logging_level": "WARNING", "log_to_driver": False}
            if not address:
                options["include_dashboard"] = False
            ray.init(address=address, **options)
        self._caller = ray.remote(_Caller).options(max_concurrency=concurrency).remote()
        self._score = ray.remote(num_cpus=1)(score_answer)

    def call(
        self,
        model: CatalogModel,
        messages: Messages,
        *,
        temperature: float,
        max_tokens: int,
        timeout_s: float,
    ) -> Call:
        options = {"temperature": temperature, "max_tokens": max_tokens, "timeout_s": timeout_s}
        try:
            result = self._ray.get(self._caller.call.remote(model, messages, options))
        except self._ray.exceptions.RayError as exc:
            raise CallFailed(f"Ray: {describe(exc)}", retriable=True) from None
        if isinstance(result, CallFailed):
            raise result
        return result

    def score(
        self, kind: type[Kind], task: Task, response: str, context: ScoringContext
    ) -> Future[CellScore]:
        return self._score.remote(kind, task, response, context).future()

    def close(self) -> None:
        self._ray.kill(self._caller)


def make_executor(name: str, *, concurrency: int, workers: int | None = None) -> Executor:
    """The executor called ``name`` (``local`` or ``ray``)."""
    if name == "local":
        return LocalExecutor(workers)
    if name == "ray":
        return RayExecutor(concurrency)
    raise CodynError(f"unknown executor {name!r}; use one of: {', '.join(EXECUTORS)}")
