"""``classify``: a label read from the answer (SVEN's "has a vulnerability: Yes or No").

The prompt is paper 000's SVEN template (appendix A.7.1), generalised: the ``question``
field replaces its first sentence (default: the vulnerability question, naming the task's
language) and ``labels`` its Yes/No. The score is 1 when the first label the reply says is
the task's ``label`` (case-insensitive), else 0; a reply that says no label scores 0 with
``error`` set. The label read is kept in the outcome (``predicted``), so the bias penalty of
`codyn.metrics.bias_penalty` can be computed from collected data.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from codyn.collect.extract import display_name, strip_reasoning
from codyn.collect.kinds import CellScore, Kind, Messages, ScoringContext, register_kind
from codyn.collect.kinds._fields import check_fields
from codyn.collect.tasks import Task

SVEN_TEMPLATE = "{question}\nUse only {labels}.\n\n{code}"
"""Paper 000, appendix A.7.1."""

DEFAULT_QUESTION = "Tell me if the following {language} code has vulnerability or not."
DEFAULT_LABELS = ("Yes", "No")

_MARKUP = re.compile(r"[*_`#>~|\[\]()\"']")


def labels_of(task: Task) -> list[str]:
    """The task's labels: the ``labels`` field, else Yes/No."""
    labels = task.fields.get("labels")
    return list(labels) if labels else list(DEFAULT_LABELS)


def label_choice(labels: Sequence[str]) -> str:
    """``"Yes or No"``, ``"A, B or C"``: the labels as the template lists them."""
    return labels[0] if len(labels) == 1 else f"{', '.join(labels[:-1])} or {labels[-1]}"


def parse_label(reply: str, labels: Sequence[str]) -> str | None:
    """The first of ``labels`` the reply says, as a whole word or phrase and ignoring case,
    markdown and punctuation (``"**No.** The code..."`` -> ``"No"``); None when none is
    there. Reasoning (``<think>``) is skipped; at one position the longest label wins."""
    text = _MARKUP.sub(" ", strip_reasoning(reply)).lower()
    best: tuple[int, int, str] | None = None
    for label in labels:
        words = _MARKUP.sub(" ", label).lower().split()
        if not words:
            continue
        pattern = r"(?<!\w)" + r"[\s\W]+".join(re.escape(w) for w in words) + r"(?!\w)"
        found = re.search(pattern, text)
        if found and (best is None or (found.start(), -len(label)) < (best[0], best[1])):
            best = (found.start(), -len(label), label)
    return None if best is None else best[2]


@register_kind("classify")
class ClassifyKind(Kind):
    """A label in the reply compared with the true one (SVEN)."""

    def check(self, task: Task) -> None:
        check_fields(task, ("code",), ("question",), others=("labels",))
        labels = task.fields.get("labels")
        if labels is not None and (
            not isinstance(labels, list)
            or len(labels) < 2
            or not all(isinstance(x, str) and x.strip() for x in labels)
        ):
            raise ValueError("fields: labels must be a list of at least two non-empty strings")
        if not task.label:
            raise ValueError("label: give the true label")
        if task.label.lower() not in {x.lower() for x in labels_of(task)}:
            raise ValueError(f"label: {task.label!r} is not one of {label_choice(labels_of(task))}")
        if task.hidden_tests or task.visible_tests:
            raise ValueError("hidden_tests: a classify task has no tests (it has a label)")

    def messages(self, task: Task) -> Messages:
        if task.prompt:
            text = task.prompt
        else:
            language = display_name(task.language).lower()
            question = task.fields.get("question") or DEFAULT_QUESTION.format(language=language)
            text = SVEN_TEMPLATE.format(
                question=question.strip(),
                labels=label_choice(labels_of(task)),
                code=str(task.fields["code"]).strip("\n"),
            )
        return [{"role": "user", "content": text}]

    def score(self, task: Task, response: str, context: ScoringContext) -> CellScore:
        assert task.label is not None
        labels = labels_of(task)
        predicted = parse_label(response, labels)
        correct = predicted is not None and predicted.lower() == task.label.lower()
        outcome = {
            "set": "label",
            "status": "pass" if correct else "fail",
            "predicted": predicted,
            "label": task.label,
        }
        error = None if predicted else f"no label ({label_choice(labels)}) in the reply"
        return CellScore(score=float(correct), outcomes=[outcome], error=error)
