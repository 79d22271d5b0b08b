"""Task files: what `codyn collect` asks each model to do, and how to check the answer.

A task file is JSON Lines (UTF-8), one task per line::

    {"id": "mbpp/779", "kind": "function", "prompt": "Write a function to ...",
     "entry_point": "unique_sublists", "visible_tests": ["assert unique_sublists(...) == ..."],
     "hidden_tests": ["assert ...", "assert ..."]}

Fields (unknown keys are errors; every error names the file, the line and the field):

``id`` (required, unique)
    The prompt's id in the collected `RoutingData`.
``kind`` (required)
    How the task is prompted and scored (`codyn.collect.kinds`): ``function`` (a function
    checked by asserts), ``stdio`` (a program checked on input/output pairs, APPS style),
    ``repair`` (fix buggy code given a failing test, RunBugRun style), ``classify`` (a label
    read from the answer, e.g. SVEN's Yes/No), ``reference`` (CodeBLEU against a reference, for
    translation and refinement), ``judge`` (an LLM judge compares the answer with a reference
    model's).
``prompt``
    The full prompt text. Or leave it out and give the kind's template ``fields``.
``fields``
    Template fields of the kind (e.g. ``{"code": ..., "error": ...}`` for ``repair``); the
    prompt is then the kind's template (paper 000 appendix A.7) filled in.
``task``
    Benchmark or task name (the `RoutingData` task; default: the kind).
``language``
    Programming language of the answer (default ``python``).
``entry_point``
    The function a ``function`` task must define.
``visible_tests``
    Tests the prompt itself shows (MBPP's asserts, HumanEval's docstring examples, APPS's
    sample I/O): a cascade's verifier runs these. ``function``: Python snippets run after the
    answer (an assert each); ``stdio``: ``{"input": ..., "output": ...}`` objects.
``hidden_tests``
    The grading tests (same shapes): the collected ``score`` is their pass fraction.
``reference``
    A reference answer: the code CodeBLEU compares with (``reference`` kind), the reference
    model's answer the judge compares with (``judge`` kind); other kinds may carry a
    known-correct solution here, which scoring ignores.
``label``
    The true label (``classify`` kind).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from codyn.data.files import read_text
from codyn.errors import CodynError, DataError

FIELDS = (
    "id",
    "kind",
    "prompt",
    "fields",
    "task",
    "language",
    "entry_point",
    "visible_tests",
    "hidden_tests",
    "reference",
    "label",
)


@dataclass(frozen=True)
class Task:
    """One line of a task file (see the module docstring)."""

    id: str
    kind: str
    prompt: str | None = None
    fields: dict[str, Any] = field(default_factory=dict)
    task: str | None = None
    language: str = "python"
    entry_point: str | None = None
    visible_tests: list[Any] = field(default_factory=list)
    hidden_tests: list[Any] = field(default_factory=list)
    reference: str | None = None
    label: str | None = None

    @property
    def task_name(self) -> str:
        """The task column of the collected data: ``task``, else the kind."""
        return self.task or self.kind

    def to_json(self) -> dict[str, Any]:
        """The task as a task-file line (empty optional fields left out)."""
        return {k: v for k, v in asdict(self).items() if v not in (None, [], {})}


def read_tasks(path: str | Path) -> list[Task]:
    """Every task of a JSONL task file, validated (ids unique, fields typed, the kind's own
    requirements met); a problem is a one-line `DataError` naming the file, line and field."""
    from codyn.collect.kinds import KINDS

    path = Path(path)
    tasks: list[Task] = []
    seen: dict[str, int] = {}
    # split on "\n" only: JSON strings may hold U+0085 or U+2028, which splitlines() breaks at
    for line, text in enumerate(read_text(path, "task file").split("\n"), start=1):
        if not text.strip():
            continue
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DataError(f"not valid JSON ({exc.msg})", path=path, row=line) from None
        if not isinstance(raw, dict):
            raise DataError("expected a JSON object per line", path=path, row=line)
        task = _task(raw, path, line)
        if task.id in seen:
            raise DataError(
                f"id {task.id!r} is repeated (first at line {seen[task.id]})",
                path=path,
                row=line,
                column="id",
            )
        seen[task.id] = line
        try:
            kind = KINDS.get(task.kind)
        except CodynError as exc:
            raise DataError(str(exc), path=path, row=line, column="kind") from None
        try:
            kind().check(task)
        except ValueError as exc:
            raise DataError(str(exc), path=path, row=line, column=_field_named(str(exc))) from None
        tasks.append(task)
    if not tasks:
        raise DataError("task file has no tasks", path=path)
    return tasks


def write_tasks(tasks: Iterable[Task], path: str | Path) -> Path:
    """Write tasks as a JSONL task file (through a temporary file, so it appears whole)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        for task in tasks:
            fh.write(json.dumps(task.to_json(), ensure_ascii=False) + "\n")
    tmp.replace(path)
    return path


def _task(raw: dict[str, Any], path: Path, line: int) -> Task:
    unknown = sorted(set(raw) - set(FIELDS))
    if unknown:
        raise DataError(
            f"unknown field {unknown[0]!r}; a task has: {', '.join(FIELDS)}",
            path=path,
            row=line,
            column=unknown[0],
        )
    for name in ("id", "kind"):
        if not isinstance(raw.get(name), str) or not raw[name].strip():
            raise DataError(f"{name} must be a non-empty string", path=path, row=line, column=name)
    for name in ("prompt", "task", "language", "entry_point", "reference", "label"):
        if raw.get(name) is not None and not isinstance(raw[name], str):
            raise DataError(f"{name} must be a string", path=path, row=line, column=name)
    if not isinstance(raw.get("fields", {}), dict):
        raise DataError("fields must be an object", path=path, row=line, column="fields")
    for name in ("visible_tests", "hidden_tests"):
        if not isinstance(raw.get(name, []), list):
            raise DataError(f"{name} must be a list", path=path, row=line, column=name)
    if raw.get("prompt") is None and not raw.get("fields"):
        raise DataError("give a prompt or the kind's fields", path=path, row=line, column="prompt")
    return Task(
        id=raw["id"],
        kind=raw["kind"],
        prompt=raw.get("prompt"),
        fields=dict(raw.get("fields", {})),
        task=raw.get("task"),
        language=raw.get("language") or "python",
        entry_point=raw.get("entry_point"),
        visible_tests=list(raw.get("visible_tests", [])),
        hidden_tests=list(raw.get("hidden_tests", [])),
        reference=raw.get("reference"),
        label=raw.get("label"),
    )


def _field_named(message: str, fields: Sequence[str] = FIELDS) -> str | None:
    """The task field a kind's message starts with (``"hidden_tests: ..."``), if any."""
    head = message.partition(":")[0].strip()
    return head if head in fields else None
