"""``stdio``: a whole program that reads standard input and prints the answer (APPS).

The prompt is paper 000's APPS template (appendix A.7.3) around the ``question`` field, with
the visible tests shown as example inputs and outputs (the template promises them); a task
with a ``prompt`` instead sends that text as it is. Each test is ``{"input": ..., "output":
...}``: the program runs once per input in `codyn.sandbox` and passes when it exits 0 and its
stdout equals the expected output up to trailing whitespace.
"""

from __future__ import annotations

from codyn.collect.extract import display_name, extract_code
from codyn.collect.kinds import CellScore, Kind, Messages, ScoringContext, register_kind
from codyn.collect.kinds._fields import check_fields
from codyn.collect.kinds._run import check_tests, no_code, score_io
from codyn.collect.tasks import Task

APPS_TEMPLATE = (
    "Given the below programming question and example inputs/outputs, write {language} code "
    "that solves it. Your program should be runnable inline and accept arguments via standard "
    "input and print back the result to standard output.\n\nQuestion:\n\n{question}"
)
"""Paper 000, appendix A.7.3 (its line breaks joined; ``language`` is Python there)."""


def examples_text(tests: list[dict[str, str]]) -> str:
    """Visible tests as the example section of an APPS prompt."""
    parts = []
    for i, test in enumerate(tests, start=1):
        parts.append(
            f"Example {i}:\nInput:\n{test['input'].rstrip()}\nOutput:\n{test['output'].rstrip()}"
        )
    return "\n\n".join(parts)


def stdio_prompt(task: Task) -> str:
    """The prompt text: ``prompt`` as given, else the APPS template with the examples."""
    if task.prompt:
        return task.prompt
    question = str(task.fields["question"]).strip()
    text = APPS_TEMPLATE.format(language=display_name(task.language), question=question)
    if task.visible_tests:
        text += "\n\n" + examples_text(task.visible_tests)
    return text


@register_kind("stdio")
class StdioKind(Kind):
    """A program checked on input/output pairs (APPS)."""

    def check(self, task: Task) -> None:
        check_fields(task, ("question",))
        check_tests(task.visible_tests, task.hidden_tests, "io")

    def messages(self, task: Task) -> Messages:
        return [{"role": "user", "content": stdio_prompt(task)}]

    def score(self, task: Task, response: str, context: ScoringContext) -> CellScore:
        code = extract_code(response, language=task.language)
        if not code.strip():
            return no_code(task.visible_tests)
        return score_io(code, task.visible_tests, task.hidden_tests, context, task.language)
