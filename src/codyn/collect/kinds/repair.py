"""``repair``: fix buggy code given the error it raised (RunBugRun).

The prompt is paper 000's RunBugRun template (appendix A.7.2) filled with the ``code`` and
``error`` fields (or a whole ``prompt``). The tests decide how the fix is checked: Python
assert snippets are run after the fixed code, as for ``function``; ``{"input": ...,
"output": ...}`` pairs run it as a program, as for ``stdio``.
"""

from __future__ import annotations

from codyn.collect.extract import extract_code
from codyn.collect.kinds import CellScore, Kind, Messages, ScoringContext, register_kind
from codyn.collect.kinds._fields import check_fields
from codyn.collect.kinds._run import check_tests, no_code, score_asserts, score_io, test_shape
from codyn.collect.tasks import Task

RUNBUGRUN_TEMPLATE = (
    "Provide a fix for the buggy function.\n\nBuggy Function:\n\n{code}\n\n"
    "Assertion Error:\n\n{error}"
)
"""Paper 000, appendix A.7.2."""


@register_kind("repair")
class RepairKind(Kind):
    """Buggy code and its error in, fixed code out, checked by asserts or I/O pairs."""

    def check(self, task: Task) -> None:
        check_fields(task, ("code", "error"))
        tests = [*task.visible_tests, *task.hidden_tests]
        shape = test_shape(tests)
        if shape is None and tests:
            raise ValueError(
                "hidden_tests: tests must be all assert strings or all "
                '{"input": ..., "output": ...} pairs'
            )
        check_tests(task.visible_tests, task.hidden_tests, shape or "assert")
        if shape == "assert" and task.language != "python":
            raise ValueError("language: assert tests are Python; use input/output pairs")

    def messages(self, task: Task) -> Messages:
        if task.prompt:
            text = task.prompt
        else:
            code = str(task.fields["code"]).strip("\n")
            text = RUNBUGRUN_TEMPLATE.format(code=code, error=str(task.fields["error"]).strip())
        return [{"role": "user", "content": text}]

    def score(self, task: Task, response: str, context: ScoringContext) -> CellScore:
        code = extract_code(response, language=task.language, entry_point=task.entry_point)
        if not code.strip():
            return no_code(task.visible_tests)
        if test_shape([*task.visible_tests, *task.hidden_tests]) == "io":
            return score_io(code, task.visible_tests, task.hidden_tests, context, task.language)
        return score_asserts(code, task.visible_tests, task.hidden_tests, context)
