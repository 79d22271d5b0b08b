"""Template fields: the check every templated kind shares."""

from __future__ import annotations

from typing import Any

from codyn.collect.tasks import Task


def check_fields(
    task: Task,
    required: tuple[str, ...],
    optional: tuple[str, ...] = (),
    others: tuple[str, ...] = (),
) -> None:
    """Raise ``ValueError`` (naming ``fields``) unless a task without a prompt gives the
    template's ``required`` fields as strings, ``optional`` ones are strings too, and nothing
    else is there but ``others`` (which the kind checks itself)."""
    fields: dict[str, Any] = task.fields
    unknown = sorted(set(fields) - {*required, *optional, *others})
    if unknown:
        known = ", ".join([*required, *optional, *others])
        raise ValueError(f"fields: unknown template field {unknown[0]!r} (this kind has {known})")
    for name in [*required, *optional]:
        if name in fields and not isinstance(fields[name], str):
            raise ValueError(f"fields: {name} must be a string")
    if task.prompt:
        return
    missing = [name for name in required if not str(fields.get(name) or "").strip()]
    if missing:
        raise ValueError(f"fields: give {missing[0]!r} (or a whole prompt)")
