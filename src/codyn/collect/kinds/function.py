"""``function``: write a Python function that Python test snippets (asserts) check.

Two prompt styles, chosen by the prompt itself:

* MBPP: a plain instruction. The prompt shows the visible tests, as MBPP's does, so the
  model knows the function's name and signature (`MBPP_TEMPLATE`).
* HumanEval: the prompt is Python code, a signature and docstring defining ``entry_point``.
  The model is asked to complete it (`HUMANEVAL_TEMPLATE`); an answer may repeat the whole
  function or give only its body.

Scoring runs the answer in `codyn.sandbox`, one process per test: the score is the hidden
tests' pass fraction, ``visible`` the visible tests'. For HumanEval-style tasks the prompt is
put before the answer (helpers and imports it defines stay available; a full function in the
answer redefines the stub), and a body-only answer is appended to the prompt.
"""

from __future__ import annotations

import ast
import textwrap

from codyn.collect.extract import defines, extract_code
from codyn.collect.kinds import CellScore, Kind, Messages, ScoringContext, register_kind
from codyn.collect.kinds._run import check_tests, no_code, score_asserts
from codyn.collect.tasks import Task

MBPP_TEMPLATE = (
    "You are an expert Python programmer, and here is your task: {prompt} "
    "Your code should pass these tests:\n\n{tests}"
)
"""The MBPP prompt (Austin et al. 2021), the instruction and its visible asserts."""

MBPP_NO_TESTS = (
    "You are an expert Python programmer, and here is your task: {prompt} "
    "Name the function {entry_point}."
)
"""For an instruction without visible tests: the name is all the model needs to be told."""

HUMANEVAL_TEMPLATE = (
    "Complete the following Python function. Reply with the complete function in a Python "
    "code block.\n\n```python\n{prompt}\n```"
)
"""HumanEval as an instruction to a chat model: the signature and docstring to complete."""


def is_code_prompt(prompt: str, entry_point: str) -> bool:
    """Whether ``prompt`` is HumanEval style: Python source that defines ``entry_point``."""
    try:
        tree = ast.parse(prompt)
    except SyntaxError:
        return False
    return any(
        isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == entry_point
        for node in tree.body
    )


def program(task: Task, code: str) -> str:
    """The source the tests run after: for HumanEval-style tasks, the prompt followed by the
    answer (a body-only answer indented into the prompt's function); else the answer."""
    assert task.prompt is not None and task.entry_point is not None
    if not is_code_prompt(task.prompt, task.entry_point):
        return code
    prompt = task.prompt.rstrip("\n") + "\n"
    if defines(code, task.entry_point):
        return f"{prompt}\n\n{code}\n"
    body = code.strip("\n")
    first = next((line for line in body.splitlines() if line.strip()), "")
    if not first[:1].isspace():
        body = textwrap.indent(textwrap.dedent(body), "    ")
    return f"{prompt}{body}\n"


@register_kind("function")
class FunctionKind(Kind):
    """A Python function checked by assert snippets (MBPP, HumanEval)."""

    def check(self, task: Task) -> None:
        if not task.prompt:
            raise ValueError("prompt: a function task needs its prompt (it has no template)")
        if task.fields:
            raise ValueError("fields: a function task has no template fields (give a prompt)")
        if not task.entry_point or not task.entry_point.isidentifier():
            raise ValueError("entry_point: name the function the tests call")
        check_tests(task.visible_tests, task.hidden_tests, "assert")

    def messages(self, task: Task) -> Messages:
        assert task.prompt is not None and task.entry_point is not None
        if is_code_prompt(task.prompt, task.entry_point):
            text = HUMANEVAL_TEMPLATE.format(prompt=task.prompt.strip("\n"))
        elif task.visible_tests:
            tests = "\n".join(t.strip() for t in task.visible_tests)
            text = MBPP_TEMPLATE.format(prompt=task.prompt.strip(), tests=tests)
        else:
            text = MBPP_NO_TESTS.format(prompt=task.prompt.strip(), entry_point=task.entry_point)
        return [{"role": "user", "content": text}]

    def score(self, task: Task, response: str, context: ScoringContext) -> CellScore:
        code = extract_code(response, language="python", entry_point=task.entry_point)
        if not code.strip():
            return no_code(task.visible_tests)
        return score_asserts(program(task, code), task.visible_tests, task.hidden_tests, context)
