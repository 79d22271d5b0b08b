"""The collection engine: every (task, model, sample) job called, scored, journaled, and the
outcomes gathered into one `RoutingData`.

Each job asks a catalog model the task kind's messages (temperature 0 for one sample, 0.8 by
default for more), then scores the answer with the kind. Calls run in threads, one pool per
model sized by its ``max_concurrency``, under a global cap of ``concurrency`` calls in flight
and the model's ``max_rpm``; retriable failures back off exponentially with jitter. Scoring
runs in a process pool (or on Ray, `codyn.collect.executors`). A response cache means a
repeated request is never paid twice, and the journal (`codyn.collect.journal`) means a run
killed at any moment resumes with ``resume=True`` without losing or repeating a finished call.
`rescore` scores stored answers again (after a test is fixed) without calling any model.
"""

from __future__ import annotations

import functools
import hashlib
import json
import threading
import warnings
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from codyn.catalog import CatalogModel, load_catalog
from codyn.collect.cache import ResponseCache, cache_key
from codyn.collect.calls import Call, CallFailed, RateLimiter, RetryPolicy, describe
from codyn.collect.executors import EXECUTORS, Executor, make_executor
from codyn.collect.journal import JobKey, Journal, JournalRow, journal_path
from codyn.collect.kinds import CellScore, Kind, Messages, ScoringContext, kind_of
from codyn.collect.progress import Display, Stats
from codyn.collect.tasks import Task, read_tasks
from codyn.data.routing import Model, RoutingData
from codyn.errors import CodynError, DataError, shown_list

SAMPLING_TEMPERATURE = 0.8
"""Temperature when ``samples > 1`` and none is given: varied answers for pass@k."""


@dataclass(frozen=True)
class CollectOptions:
    """How a collection runs (the `codyn collect` options)."""

    samples: int = 1
    temperature: float | None = None
    """None: 0 for one sample, `SAMPLING_TEMPERATURE` for more."""
    max_tokens: int = 512
    concurrency: int = 8
    """Calls in flight at once, over all models."""
    timeout_s: float = 120.0
    """Per call, for catalog models without their own ``timeout_s``."""
    cache: bool = True
    cache_path: Path | None = None
    """The response cache's file (default under `codyn.features.base.cache_dir`)."""
    resume: bool = False
    executor: str = "local"
    workers: int | None = None
    """Scoring processes of the local executor (default: one per core)."""
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    scoring: ScoringContext = field(default_factory=ScoringContext)
    progress: bool = True

    def __post_init__(self) -> None:
        if self.samples < 1:
            raise CodynError(f"--samples must be at least 1, got {self.samples}")
        if self.temperature is not None and not 0 <= self.temperature <= 2:
            raise CodynError(f"--temperature must be between 0 and 2, got {self.temperature}")
        if self.max_tokens < 1:
            raise CodynError(f"--max-tokens must be at least 1, got {self.max_tokens}")
        if self.concurrency < 1:
            raise CodynError(f"--concurrency must be at least 1, got {self.concurrency}")
        if self.timeout_s <= 0:
            raise CodynError(f"--timeout must be positive, got {self.timeout_s}")
        if self.executor not in EXECUTORS:
            raise CodynError(
                f"unknown executor {self.executor!r}; use one of: {', '.join(EXECUTORS)}"
            )

    @property
    def sampling_temperature(self) -> float:
        if self.temperature is not None:
            return float(self.temperature)
        return 0.0 if self.samples == 1 else SAMPLING_TEMPERATURE


@dataclass
class CollectResult:
    """The collected data (already saved to ``output``) and the run's summary."""

    data: RoutingData
    summary: dict[str, Any]
    output: Path


@dataclass(frozen=True)
class Job:
    task: int
    model: int
    sample: int


# -- entry points --------------------------------------------------------------------------------


def select_models(
    catalog_path: str | Path, only: Sequence[str] | None = None
) -> list[CatalogModel]:
    """The catalog's models, or those named in ``only`` (in that order)."""
    catalog = load_catalog(catalog_path)
    if not only:
        return list(catalog.models.values())
    unknown = [name for name in only if name not in catalog.models]
    if unknown:
        raise catalog.error(
            f"unknown model {unknown[0]!r} in --only; the catalog has "
            f"{shown_list(list(catalog.models), 10)}"
        )
    repeated = sorted({name for name in only if list(only).count(name) > 1})
    if repeated:
        raise CodynError(f"--only names {', '.join(repeated)} more than once")
    return [catalog.models[name] for name in only]


def collect_files(
    tasks_path: str | Path,
    catalog_path: str | Path,
    output: str | Path,
    *,
    only: Sequence[str] | None = None,
    options: CollectOptions | None = None,
) -> CollectResult:
    """`collect` with the tasks and models read from their files (both checked first)."""
    tasks = read_tasks(tasks_path)
    models = select_models(catalog_path, only)
    return collect(tasks, models, output, options, source=f"codyn collect {Path(tasks_path).name}")


def collect(
    tasks: Sequence[Task],
    models: Sequence[CatalogModel],
    output: str | Path,
    options: CollectOptions | None = None,
    *,
    source: str = "codyn collect",
) -> CollectResult:
    """Run every (task, model, sample) job and save the `RoutingData` to ``output``.

    Jobs already finished in the journal of ``output`` are kept when ``options.resume``;
    without it an existing journal is an error. The journal is deleted once the data is
    saved with every call answered, and kept when some failed (``resume`` retries those).
    """
    return _Collection(
        list(tasks), list(models), Path(output), options or CollectOptions(), source
    ).run()


def rescore(
    data_path: str | Path,
    tasks_path: str | Path,
    output: str | Path,
    options: CollectOptions | None = None,
) -> CollectResult:
    """Score a data set's stored answers (``sample_responses``) again with the kinds and tests
    of ``tasks_path``, calling no model; tokens, costs and latencies are kept."""
    return _Rescore(
        Path(data_path), Path(tasks_path), Path(output), options or CollectOptions()
    ).run()


def tasks_sha256(tasks: Sequence[Task]) -> str:
    """Fingerprint of a task list (its content and order), for the journal's meta."""
    text = json.dumps([task.to_json() for task in tasks], sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def check_judge(tasks: Sequence[Task], scoring: ScoringContext) -> None:
    """``judge`` tasks need a judge model: say so before any call is paid for."""
    judged = [task.id for task in tasks if task.kind == "judge"]
    if judged and scoring.judge is None:
        raise CodynError(
            f"{len(judged)} judge task(s) ({shown_list(judged)}) need a judge: pass --judge MODEL"
        )


def user_text(messages: Messages) -> str:
    """The prompt a model was sent: the last user message (what routers featurise)."""
    for message in reversed(messages):
        if message.get("role") == "user":
            return str(message.get("content", ""))
    return str(messages[-1].get("content", "")) if messages else ""


# -- the shared machinery -------------------------------------------------------------------------


class _Runner:
    """Counters, the wait loop and the scoring callback that collecting and re-scoring share."""

    title = "collect"

    def __init__(self, options: CollectOptions) -> None:
        self.options = options
        self.stats = Stats()
        self._cond = threading.Condition()
        self._fatal: BaseException | None = None
        self._stop = threading.Event()
        self.journal: Journal | None = None

    def _notify(self) -> None:
        with self._cond:
            self._cond.notify_all()

    def _fail_run(self, exc: BaseException) -> None:
        with self._cond:
            if self._fatal is None:
                self._fatal = exc
            self._cond.notify_all()

    def _scored(self, key: JobKey, response: str | None, future: Future[CellScore]) -> None:
        """A score arrived (called in the executor's thread): journal it."""
        if future.cancelled():
            return
        try:
            score = future.result()
            assert self.journal is not None
            self.journal.record_score(key, score, response)
            self.stats.add(done=1, executions=score.executions)
        except BaseException as exc:
            if not self._stop.is_set():
                self._fail_run(CodynError(f"scoring stopped: {describe(exc)}"))
        self._notify()

    def _wait(self) -> None:
        """Until every job is done, showing progress; a fatal error or Ctrl-C ends the run
        with what is journaled kept."""
        display = Display(self.title, self.stats, self.options.progress)
        try:
            with self._cond:
                while self.stats.done < self.stats.total and self._fatal is None:
                    self._cond.wait(timeout=0.25)
                    display.refresh()
        except KeyboardInterrupt:
            self._stop.set()
            self._fatal = KeyboardInterrupt()
        finally:
            display.close()

    def _raise_fatal(self) -> None:
        """End the run with its fatal error, once the calls in flight are journaled."""
        if isinstance(self._fatal, KeyboardInterrupt):
            unscored = 0
            if self.journal is not None:
                unscored = sum(row.status == "called" for row in self.journal.rows().values())
            waiting = f" ({unscored} more answered, not yet scored)" if unscored else ""
            self._fatal = CodynError(
                f"interrupted after {self.stats.done} of {self.stats.total} jobs{waiting}; "
                "rerun with --resume to go on"
            )
        if self._fatal is not None:
            where = "" if self.journal is None else f" (finished jobs are in {self.journal.path})"
            raise CodynError(f"{self._fatal}{where}") from None


# -- collecting ---------------------------------------------------------------------------------


class _Stopped(Exception):
    """A job given up because the run ends (Ctrl-C or a fatal error elsewhere)."""


class _Collection(_Runner):
    def __init__(
        self,
        tasks: list[Task],
        models: list[CatalogModel],
        output: Path,
        options: CollectOptions,
        source: str,
    ) -> None:
        super().__init__(options)
        if not tasks:
            raise CodynError("no tasks to collect")
        if not models:
            raise CodynError("no models to collect from")
        self.tasks, self.models, self.output, self.source = tasks, models, output, source
        check_judge(tasks, options.scoring)
        self.temperature = options.sampling_temperature
        kinds = [kind_of(task) for task in tasks]
        self.kinds: list[type[Kind]] = [type(kind) for kind in kinds]
        self.messages: list[Messages] = []
        for task, kind in zip(tasks, kinds, strict=True):
            try:
                self.messages.append(kind.messages(task))
            except (ValueError, KeyError) as exc:
                raise DataError(f"task {task.id!r}: {exc}") from None
        self.limiters = [RateLimiter(model.max_rpm) for model in models]
        self._in_flight = threading.BoundedSemaphore(options.concurrency)
        self.cache: ResponseCache | None = None
        self.executor: Executor | None = None

    def meta(self) -> dict[str, Any]:
        return {
            "mode": "collect",
            "tasks": tasks_sha256(self.tasks),
            "models": [model.name for model in self.models],
            "samples": self.options.samples,
            "temperature": self.temperature,
            "max_tokens": self.options.max_tokens,
        }

    def run(self) -> CollectResult:
        self.journal = Journal.open(
            journal_path(self.output), self.meta(), resume=self.options.resume
        )
        try:
            if self.options.cache:
                self.cache = ResponseCache(self.options.cache_path)
            done = self.journal.rows()
            jobs: list[tuple[Job, JournalRow | None]] = []
            for sample in range(self.options.samples):
                for i, task in enumerate(self.tasks):
                    for j, model in enumerate(self.models):
                        row = done.get((task.id, model.name, sample))
                        if row is not None and row.status == "scored":
                            continue
                        pending = row if row is not None and row.status == "called" else None
                        jobs.append((Job(i, j, sample), pending))
            self.stats.total = len(self.tasks) * len(self.models) * self.options.samples
            self.stats.resumed = self.stats.done = self.stats.total - len(jobs)
            if jobs:
                self._execute(jobs)
            self._raise_fatal()
            rows = self.journal.rows()
        except BaseException:
            self.journal.close()
            raise
        finally:
            if self.cache is not None:
                self.cache.close()
        data = build_data(
            self.tasks,
            self.models,
            rows,
            self.options.samples,
            self.messages,
            source=self.source,
            notes=self._notes(rows),
        )
        data.save(self.output)
        failures = sum(row.status == "failed" for row in rows.values())
        kept = failures > 0
        if kept:
            self.journal.close()
        else:
            self.journal.remove()
        summary = self._summary(data, failures, kept)
        return CollectResult(data, summary, self.output)

    def _execute(self, jobs: list[tuple[Job, JournalRow | None]]) -> None:
        self.executor = make_executor(
            self.options.executor,
            concurrency=self.options.concurrency,
            workers=self.options.workers,
        )
        pools: dict[int, ThreadPoolExecutor] = {}
        try:
            for job, pending in jobs:
                if job.model not in pools:
                    cap = self.models[job.model].max_concurrency or self.options.concurrency
                    pools[job.model] = ThreadPoolExecutor(
                        max_workers=min(cap, self.options.concurrency),
                        thread_name_prefix=f"codyn-call-{self.models[job.model].name}",
                    )
                pools[job.model].submit(self._job, job, pending)
            self._wait()
        finally:
            if self._fatal is not None:
                self._stop.set()
            for pool in pools.values():
                pool.shutdown(wait=True, cancel_futures=True)
            self.executor.close()

    def _job(self, job: Job, pending: JournalRow | None) -> None:
        if self._stop.is_set():
            return
        try:
            self._run_job(job, pending)
        except _Stopped:
            pass  # the run is ending: the job stays unfinished, for --resume
        except BaseException as exc:
            self._fail_run(exc)

    def _backoff(self, seconds: float) -> None:
        """Wait before a retry, unless the run is ending (then give the job up at once)."""
        if self._stop.wait(seconds):
            raise _Stopped

    def _run_job(self, job: Job, pending: JournalRow | None) -> None:
        task, model = self.tasks[job.task], self.models[job.model]
        key: JobKey = (task.id, model.name, job.sample)
        assert self.journal is not None and self.executor is not None
        if pending is not None:
            response = pending.response or ""
        else:
            messages = self.messages[job.task]
            ck = cache_key(model, messages, self.temperature, self.options.max_tokens, job.sample)
            call = None if self.cache is None else self.cache.get(ck)
            cached, attempts = call is not None, 0
            if call is None:
                try:
                    call, attempts = self.options.retry.run(
                        lambda: self._attempt(job.model, messages),
                        on_retry=lambda _: self.stats.add(retries=1),
                        sleep=self._backoff,
                    )
                except CallFailed as failure:
                    self.journal.record_failure(key, failure.message, attempts=failure.attempts)
                    self.stats.add(failures=1, done=1)
                    self._notify()
                    return
                if self.cache is not None:
                    self.cache.put(ck, model.name, call)
            self.journal.record_call(key, call, cached=cached, attempts=attempts)
            if cached:
                self.stats.add(cached=1)
            else:
                tokens_in, tokens_out = call.tokens_in or 0, call.tokens_out or 0
                self.stats.add(
                    calls=1,
                    tokens=tokens_in + tokens_out,
                    cost_usd=model.cost(tokens_in, tokens_out),
                )
            response = call.text
        future = self.executor.score(self.kinds[job.task], task, response, self.options.scoring)
        future.add_done_callback(functools.partial(self._scored, key, None))

    def _attempt(self, j: int, messages: Messages) -> Call:
        assert self.executor is not None
        self.limiters[j].wait()
        with self._in_flight:
            return self.executor.call(
                self.models[j],
                messages,
                temperature=self.temperature,
                max_tokens=self.options.max_tokens,
                timeout_s=self.options.timeout_s,
            )

    def _notes(self, rows: dict[JobKey, JournalRow]) -> list[str]:
        k, t = self.options.samples, self.temperature
        notes = [
            f"collected with {k} sample{'s' if k > 1 else ''} per prompt at temperature {t:g}, "
            f"max_tokens {self.options.max_tokens}; score is the mean over samples"
        ]
        notes += failure_notes(rows, self.stats.total)
        return notes

    def _summary(self, data: RoutingData, failures: int, kept: bool) -> dict[str, Any]:
        summary = base_summary(data, self.stats, self.output)
        summary.update(
            failures=failures,
            journal=str(self.journal.path) if kept and self.journal is not None else None,
        )
        summary.update(pass_rates(data))
        return summary


def failure_notes(rows: dict[JobKey, JournalRow], total: int) -> list[str]:
    """Notes on calls that failed (their cells are NaN) and answers scored with an error."""
    notes = []
    failed = [(key, row) for key, row in rows.items() if row.status == "failed"]
    if failed:
        per_model: dict[str, int] = {}
        for (_, model, _), _row in failed:
            per_model[model] = per_model.get(model, 0) + 1
        counts = ", ".join(f"{m}: {n}" for m, n in sorted(per_model.items()))
        notes.append(
            f"{len(failed)} of {total} calls failed ({counts}) and are NaN; first error: "
            f"{failed[0][1].error}"
        )
    errors = [row.score_error for row in rows.values() if row.score_error]
    if errors:
        notes.append(f"{len(errors)} answers could not be scored as intended; first: {errors[0]}")
    return notes


def base_summary(data: RoutingData, stats: Stats, output: Path) -> dict[str, Any]:
    """The keys `codyn collect --json` and `codyn score --json` share."""
    per_model = {}
    for j, model in enumerate(data.models):
        per_model[model.name] = {
            "score": _nanmean(data.score[:, j]),
            "visible_score": None
            if data.visible_score is None
            else _nanmean(data.visible_score[:, j]),
            "missing": int(np.isnan(data.score[:, j]).sum()),
            "cost_per_call_usd": _nanmean(data.cost[:, j]),
        }
    return {
        "n_prompts": data.n_prompts,
        "models": data.model_names,
        "jobs": stats.total,
        "resumed": stats.resumed,
        "calls": stats.calls,
        "cached": stats.cached,
        "failures": stats.failures,
        "retries": stats.retries,
        "executions": stats.executions,
        "tokens": stats.tokens,
        "cost_usd": stats.cost_usd,
        "elapsed_s": stats.elapsed_s,
        "calls_per_s": stats.calls_per_s,
        "output": str(output),
        "per_model": per_model,
    }


def pass_rates(data: RoutingData) -> dict[str, Any]:
    """pass@1 and pass@k per model (k = the samples per cell) when there are several samples:
    `codyn.metrics.sample_pass_at_k` (the unbiased estimator, a sample passing when its score
    is 1: every hidden test), averaged over the prompts whose k samples were all scored."""
    if data.samples is None or data.samples.shape[2] < 2:
        return {}
    from codyn.metrics import sample_pass_at_k

    k = data.samples.shape[2]
    complete = (~np.isnan(data.samples)).sum(axis=2) == k
    rates: dict[str, Any] = {"k": k, "pass_at_1": {}, "pass_at_k": {}}
    for j, model in enumerate(data.model_names):
        rows = np.flatnonzero(complete[:, j])
        for name, at in (("pass_at_1", 1), ("pass_at_k", k)):
            values = [sample_pass_at_k(data.samples[i, j], at) for i in rows]
            rates[name][model] = float(np.mean(values)) if values else None
    return rates


def build_data(
    tasks: Sequence[Task],
    models: Sequence[CatalogModel],
    rows: dict[JobKey, JournalRow],
    samples: int,
    messages: Sequence[Messages],
    *,
    source: str = "codyn collect",
    notes: Sequence[str] = (),
) -> RoutingData:
    """The `RoutingData` of journaled jobs: per-sample cubes, their means per cell, and costs
    from tokens x the catalog's prices; failed or missing jobs are NaN (and None answers)."""
    n, m, k = len(tasks), len(models), samples
    row_of = {task.id: i for i, task in enumerate(tasks)}
    col_of = {model.name: j for j, model in enumerate(models)}
    cube = {
        name: np.full((n, m, k), np.nan)
        for name in ("score", "visible", "tokens_in", "tokens_out", "latency", "cost")
    }
    answers = np.full((n, m, k), None, dtype=object)
    for (task_id, name, sample), row in rows.items():
        i, j = row_of.get(task_id), col_of.get(name)
        if i is None or j is None or sample >= k or row.status == "failed":
            continue
        answers[i, j, sample] = row.response
        for field_name, value in (
            ("tokens_in", row.tokens_in),
            ("tokens_out", row.tokens_out),
            ("latency", row.latency_s),
        ):
            if value is not None:
                cube[field_name][i, j, sample] = value
        if row.tokens_in is not None and row.tokens_out is not None:
            cube["cost"][i, j, sample] = models[j].cost(row.tokens_in, row.tokens_out)
        if row.status == "scored":
            if row.score is not None:
                cube["score"][i, j, sample] = row.score
            if row.visible is not None:
                cube["visible"][i, j, sample] = row.visible
    has_visible = not np.isnan(cube["visible"]).all()
    prompts = [
        {
            "id": task.id,
            "text": user_text(messages[i]),
            "task": task.task_name,
            "language": task.language,
            "metadata": {"kind": task.kind, "entry_point": task.entry_point},
        }
        for i, task in enumerate(tasks)
    ]
    return RoutingData(
        prompts=prompts,  # type: ignore[arg-type]
        models=[Model(model.name, model.price_in, model.price_out) for model in models],
        score=_cell_mean(cube["score"]),
        cost=_cell_mean(cube["cost"]),
        tokens_in=_cell_mean(cube["tokens_in"]),
        tokens_out=_cell_mean(cube["tokens_out"]),
        latency=_cell_mean(cube["latency"]),
        samples=cube["score"],
        visible_score=_cell_mean(cube["visible"]) if has_visible else None,
        visible_samples=cube["visible"] if has_visible else None,
        responses=answers[:, :, 0],
        sample_responses=answers,
        cost_basis="tokens_x_price",
        source=source,
        notes=list(notes),
    )


def _cell_mean(cube: np.ndarray) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a cell with no value stays NaN
        return np.nanmean(cube, axis=2)


def _nanmean(values: np.ndarray) -> float | None:
    values = np.asarray(values, dtype=np.float64)
    return None if np.isnan(values).all() else float(np.nanmean(values))


# -- re-scoring ---------------------------------------------------------------------------------


class _Rescore(_Runner):
    title = "score"

    def __init__(
        self, data_path: Path, tasks_path: Path, output: Path, options: CollectOptions
    ) -> None:
        super().__init__(options)
        self.data_path, self.tasks_path, self.output = data_path, tasks_path, output
        self.data = RoutingData.load(data_path)
        if self.data.sample_responses is not None:
            self.answers = self.data.sample_responses
        elif self.data.responses is not None:
            self.answers = self.data.responses[:, :, None]
        else:
            raise DataError(
                "holds no responses to score (collect it with `codyn collect`)", path=data_path
            )
        tasks = read_tasks(tasks_path)
        by_id = {task.id: task for task in tasks}
        missing = [pid for pid in self.data.prompt_ids if pid not in by_id]
        if missing:
            raise DataError(
                f"has no task for prompt id {missing[0]!r} of {data_path} "
                f"({len(missing)} missing in all)",
                path=tasks_path,
            )
        self.tasks = [by_id[pid] for pid in self.data.prompt_ids]
        check_judge(self.tasks, options.scoring)
        self.kinds = [type(kind_of(task)) for task in self.tasks]
        self.meta = {
            "mode": "score",
            "data": hashlib.sha256(data_path.read_bytes()).hexdigest(),
            "tasks": tasks_sha256(tasks),
        }

    def run(self) -> CollectResult:
        self.journal = Journal.open(
            journal_path(self.output), self.meta, resume=self.options.resume
        )
        try:
            done = self.journal.rows()
            names = self.data.model_names
            jobs = [
                (i, j, s)
                for i in range(self.data.n_prompts)
                for j in range(self.data.n_models)
                for s in range(self.answers.shape[2])
                if self.answers[i, j, s] is not None
            ]
            todo = [
                job for job in jobs if (self.tasks[job[0]].id, names[job[1]], job[2]) not in done
            ]
            self.stats.total = len(jobs)
            self.stats.resumed = self.stats.done = len(jobs) - len(todo)
            if todo:
                executor = make_executor(
                    self.options.executor,
                    concurrency=self.options.concurrency,
                    workers=self.options.workers,
                )
                try:
                    for i, j, s in todo:
                        text = str(self.answers[i, j, s])
                        key = (self.tasks[i].id, names[j], s)
                        future = executor.score(
                            self.kinds[i], self.tasks[i], text, self.options.scoring
                        )
                        future.add_done_callback(functools.partial(self._scored, key, text))
                    self._wait()
                finally:
                    if self._fatal is not None:
                        self._stop.set()
                    executor.close()
            self._raise_fatal()
            rows = self.journal.rows()
        except BaseException:
            self.journal.close()
            raise
        data = self._rescored(rows)
        data.save(self.output)
        self.journal.remove()
        summary = base_summary(data, self.stats, self.output)
        summary.update(rescored=len(jobs), failures=0)
        summary.update(pass_rates(data))
        return CollectResult(data, summary, self.output)

    def _rescored(self, rows: dict[JobKey, JournalRow]) -> RoutingData:
        data, names = self.data, self.data.model_names
        shape = self.answers.shape
        score, visible = np.full(shape, np.nan), np.full(shape, np.nan)
        row_of = {task.id: i for i, task in enumerate(self.tasks)}
        col_of = {name: j for j, name in enumerate(names)}
        for (task_id, name, s), row in rows.items():
            i, j = row_of[task_id], col_of[name]
            if row.score is not None:
                score[i, j, s] = row.score
            if row.visible is not None:
                visible[i, j, s] = row.visible
        has_visible = not np.isnan(visible).all()
        errors = [row.score_error for row in rows.values() if row.score_error]
        notes = [*data.notes, f"re-scored by codyn score with {self.tasks_path.name}"]
        if errors:
            notes.append(
                f"{len(errors)} answers could not be scored as intended; first: {errors[0]}"
            )
        return RoutingData(
            prompts=data.prompts,
            models=data.models,
            score=_cell_mean(score),
            cost=data.cost,
            tokens_in=data.tokens_in,
            tokens_out=data.tokens_out,
            samples=score,
            responses=data.responses,
            cost_basis=data.cost_basis,
            visible_score=_cell_mean(visible) if has_visible else None,
            visible_samples=visible if has_visible else None,
            latency=data.latency,
            sample_responses=data.sample_responses,
            source=data.source,
            notes=notes,
        )
