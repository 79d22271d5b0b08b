"""A small real task kind for the collection engine's tests: the answer passes when it contains
the task's label. It lives in its own light module because scoring processes, Ray workers and
the `codyn collect` subprocess of the kill test import it by name to unpickle or register it."""

from __future__ import annotations

from codyn.collect.kinds import CellScore, Kind, Messages, ScoringContext, register_kind
from codyn.collect.tasks import Task


@register_kind("label-match")
class LabelMatch(Kind):
    """Hidden score: the label appears in the answer (case-folded); visible: the answer is
    short (at most 80 characters), a check a verifier could run before escalating."""

    def messages(self, task: Task) -> Messages:
        return [
            {"role": "system", "content": "Answer briefly."},
            {"role": "user", "content": task.prompt or ""},
        ]

    def score(self, task: Task, response: str, context: ScoringContext) -> CellScore:
        passed = (task.label or "").casefold() in response.casefold()
        short = len(response) <= 80
        return CellScore(
            score=float(passed),
            visible=float(short),
            executions=1,
            outcomes=[{"set": "hidden", "status": "pass" if passed else "fail"}],
        )

    def check(self, task: Task) -> None:
        if not task.label:
            raise ValueError("label: a label-match task needs a label")


def test_label_match_scores_by_the_label() -> None:
    task = Task(id="t", kind="label-match", prompt="Capital of France?", label="Paris")
    kind = LabelMatch()
    assert kind.score(task, "It is paris.", ScoringContext()).score == 1.0
    assert kind.score(task, "Lyon", ScoringContext()).score == 0.0
    assert kind.messages(task)[-1] == {"role": "user", "content": "Capital of France?"}
