"""Task files: validation through `read_tasks` (one line naming file, line and field), the
converters on the real HumanEval and LLMRouter data, the shipped examples and `codyn tasks`."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import pytest

from codyn.collect.converters import (
    doctest_asserts,
    example_paths,
    humaneval_tasks,
    llmrouter_tasks,
)
from codyn.collect.kinds import KINDS, kind_of
from codyn.collect.tasks import read_tasks, write_tasks
from codyn.errors import DataError
from tests.conftest import run_cli

QUERY_DATA = Path("llmrouter/data/example_data/query_data")

GOOD = {
    "id": "t1",
    "kind": "function",
    "prompt": "Write a function to add two numbers.",
    "entry_point": "add",
    "hidden_tests": ["assert add(1, 2) == 3"],
}


def write_lines(path: Path, rows: list[Any]) -> Path:
    path.write_text(
        "\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n",
        encoding="utf-8",
    )
    return path


def error_of(path: Path) -> DataError:
    with pytest.raises(DataError) as info:
        read_tasks(path)
    assert "\n" not in str(info.value)
    return info.value


# -- validation ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("bad", "column", "words"),
    [
        ({**GOOD, "entry_point": None}, "entry_point", "name the function"),
        ({**GOOD, "hidden_tests": []}, "hidden_tests", "at least one test"),
        ({**GOOD, "hidden_tests": [{"input": "1", "output": "1"}]}, "hidden_tests", "string"),
        ({**GOOD, "prompt": None, "fields": {"x": "y"}}, "prompt", "needs its prompt"),
        (
            {"id": "s", "kind": "stdio", "fields": {"question": "q"}, "hidden_tests": ["1"]},
            "hidden_tests",
            '"input"',
        ),
        (
            {"id": "s", "kind": "stdio", "fields": {"questoin": "q"}, "hidden_tests": []},
            "fields",
            "unknown template field 'questoin'",
        ),
        (
            {
                "id": "r",
                "kind": "repair",
                "fields": {"code": "x = 1", "error": "boom"},
                "hidden_tests": ["assert x == 2", {"input": "", "output": "2"}],
            },
            "hidden_tests",
            "all assert strings or all",
        ),
        (
            {"id": "r", "kind": "repair", "fields": {"code": "x = 1"}, "hidden_tests": ["x"]},
            "fields",
            "give 'error'",
        ),
        (
            {"id": "c", "kind": "classify", "fields": {"code": "x"}, "label": "Maybe"},
            "label",
            "not one of Yes or No",
        ),
        (
            {"id": "c", "kind": "classify", "fields": {"code": "x", "labels": ["A"]}, "label": "A"},
            "fields",
            "at least two",
        ),
        (
            {
                "id": "f",
                "kind": "reference",
                "fields": {"code": "x"},
                "reference": "y",
                "language": "cobol",
            },
            "language",
            "no grammar for 'cobol'",
        ),
        (
            {
                "id": "f",
                "kind": "reference",
                "fields": {"code": "x", "target_language": "C#"},
                "reference": "y",
                "language": "java",
            },
            "language",
            "set language to 'c_sharp'",
        ),
        ({"id": "j", "kind": "judge", "prompt": "Say hi."}, "reference", "reference model"),
    ],
)
def test_kind_errors_name_the_line_and_field(
    tmp_path: Path, bad: dict[str, Any], column: str, words: str
) -> None:
    bad = {k: v for k, v in {**bad, "id": "bad"}.items() if v is not None}
    error = error_of(write_lines(tmp_path / "tasks.jsonl", [GOOD, "", bad]))
    assert error.row == 3 and error.column == column, str(error)
    assert words in str(error) and str(tmp_path / "tasks.jsonl") in str(error)


def test_file_level_errors(tmp_path: Path) -> None:
    essay = {**GOOD, "id": "t2", "kind": "essay"}
    unknown = error_of(write_lines(tmp_path / "a.jsonl", [GOOD, essay]))
    assert unknown.row == 2 and unknown.column == "kind" and "function" in str(unknown)
    repeated = error_of(write_lines(tmp_path / "b.jsonl", [GOOD, GOOD]))
    assert repeated.row == 2 and "first at line 1" in str(repeated)
    broken = error_of(write_lines(tmp_path / "c.jsonl", [GOOD, '{"id": "x",']))
    assert broken.row == 2 and "not valid JSON" in str(broken)


def test_a_valid_file_reads_and_round_trips(tmp_path: Path) -> None:
    second = {**GOOD, "id": "t2", "visible_tests": ["assert add(0, 0) == 0"]}
    path = write_lines(tmp_path / "ok.jsonl", [GOOD, second])
    tasks = read_tasks(path)
    assert [t.id for t in tasks] == ["t1", "t2"]
    again = read_tasks(write_tasks(tasks, tmp_path / "again.jsonl"))
    assert again == tasks


# -- shipped examples ------------------------------------------------------------------------


def test_every_kind_has_an_example_file_that_reads() -> None:
    paths = example_paths()
    assert set(paths) == {"function", "stdio", "repair", "classify", "reference", "judge"}
    assert set(paths) <= set(KINDS.names())
    for kind, path in paths.items():
        tasks = read_tasks(path)
        assert 2 <= len(tasks) <= 4
        assert {t.kind for t in tasks} == {kind}
        for task in tasks:
            messages = kind_of(task).messages(task)
            assert messages[-1]["role"] == "user" and messages[-1]["content"].strip()
            assert task.reference or task.label, f"{task.id} carries its answer"


# -- HumanEval -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def humaneval() -> dict[str, Any]:
    conversion = humaneval_tasks()
    return {"conversion": conversion, "by_id": {t.id: t for t in conversion.tasks}}


def test_all_of_humaneval_converts(humaneval: dict[str, Any]) -> None:
    conversion = humaneval["conversion"]
    assert len(conversion.tasks) == 164 and len(humaneval["by_id"]) == 164
    assert conversion.with_visible == 75
    assert conversion.skipped_examples == 3 and conversion.wrong_examples == 3
    for task in conversion.tasks:
        assert task.kind == "function" and task.task == "humaneval"
        assert task.prompt and f"def {task.entry_point}(" in task.prompt
        assert len(task.hidden_tests) == 1
        assert task.hidden_tests[0].rstrip().endswith(f"check({task.entry_point})")
        assert "def check(candidate)" in task.hidden_tests[0]


def test_humaneval_docstring_examples_become_asserts(humaneval: dict[str, Any]) -> None:
    by_id = humaneval["by_id"]
    assert by_id["humaneval/0"].visible_tests == [
        "assert has_close_elements([1.0, 2.0, 3.0], 0.5) == False",
        "assert has_close_elements([1.0, 2.8, 3.0, 4.0, 5.0, 2.0], 0.3) == True",
    ]
    assert by_id["humaneval/0"].entry_point == "has_close_elements"
    # a call shown without output returns None, as in doctest
    assert by_id["humaneval/12"].visible_tests[0] == "assert longest([]) is None"
    # a trailing comment would swallow the rest of the assert
    assert by_id["humaneval/32"].visible_tests == [
        "assert round(find_zero([1, 2]), 2) == -0.5",
        "assert round(find_zero([-6, 11, -6, 1]), 2) == 1.0",
    ]
    # examples written as comparisons; the docstring's wrong ones left out
    assert by_id["humaneval/108"].visible_tests[0] == "assert count_nums([]) == 0"
    assert by_id["humaneval/116"].visible_tests == []
    assert len(by_id["humaneval/47"].visible_tests) == 1
    assert by_id["humaneval/38"].visible_tests == []  # no examples at all


def test_a_broken_humaneval_file_is_a_one_line_error(tmp_path: Path) -> None:
    good = {"task_id": "HumanEval/0", "prompt": "def f(x):\n    pass\n", "entry_point": "f"}
    good["test"] = "def check(candidate):\n    pass\n"
    rows = [good, {**good, "task_id": "HumanEval/1", "prompt": "def f(:"}]
    path = tmp_path / "HumanEval.jsonl.gz"
    with gzip.open(path, "wt", encoding="utf-8") as fh:
        fh.write("\n".join(json.dumps(r) for r in rows))
    assert len(humaneval_tasks(path, n=1).tasks) == 1
    with pytest.raises(DataError) as info:
        humaneval_tasks(path)
    assert (info.value.row, info.value.column) == (2, "prompt") and "not Python" in str(info.value)


def test_doctest_asserts_skip_what_is_not_a_safe_assert() -> None:
    prompt = (
        "import math\n\n\ndef helper(x):\n    return x\n\n\n"
        "def pair(n: int):\n"
        '    """Return (n, n + 1).\n'
        "    >>> pair(1)\n    1, 2\n"
        "    >>> helper(pair(2))\n    (2, 3)\n"
        "    >>> math.floor(pair(3)[0])\n    3\n"
        "    >>> print(pair(4))\n    (4, 5)\n"
        "    >>> __import__('os').system('true') or pair(5)\n    (5, 6)\n"
        "    >>> x = pair(6)\n"
        "    >>> pair(7)\n    a pair of numbers\n"
        '    """\n'
    )
    asserts, skipped = doctest_asserts(prompt, "pair")
    assert asserts == [
        "assert (pair(1)) == (1, 2)",  # bare tuple output: parenthesised, not an assert message
        "assert helper(pair(2)) == (2, 3)",
        "assert math.floor(pair(3)[0]) == 3",
    ]
    assert skipped == 4  # print, __import__, a statement, prose output


# -- LLMRouter -------------------------------------------------------------------------------


def test_llmrouter_mbpp_rows_convert(benchmarks: Path) -> None:
    train = llmrouter_tasks(benchmarks / QUERY_DATA / "default_query_train.jsonl", "mbpp")
    test = llmrouter_tasks(benchmarks / QUERY_DATA / "default_query_test.jsonl", "mbpp")
    assert len(train.tasks) == 500 and len(test.tasks) == 50
    assert train.with_visible == 500
    by_id = {t.id: t for t in train.tasks + test.tasks}
    jumps = by_id["mbpp/617"]
    assert jumps.prompt and jumps.prompt.startswith("Write a function to check for the number")
    assert jumps.entry_point == "min_Jumps"
    assert jumps.hidden_tests == [
        "assert min_Jumps(3,4,11)==3.5",
        "assert min_Jumps(3,4,0)==0",
        "assert min_Jumps(11,14,11)==1",
    ]
    assert jumps.visible_tests == jumps.hidden_tests[:1]
    assert by_id["mbpp/126"].entry_point == "sum"  # MBPP 126 names its function after a builtin
    assert by_id["mbpp/779"].entry_point == "unique_sublists"
    for task in train.tasks:
        assert task.task == "mbpp" and task.hidden_tests and task.entry_point
        assert all(t.startswith("assert") for t in task.hidden_tests)


def test_llmrouter_human_eval_rows_convert(benchmarks: Path) -> None:
    test = llmrouter_tasks(benchmarks / QUERY_DATA / "default_query_test.jsonl", "human_eval")
    assert len(test.tasks) == 50
    sum_product = next(t for t in test.tasks if t.id == "humaneval/8")
    assert sum_product.entry_point == "sum_product"
    assert sum_product.visible_tests == [
        "assert sum_product([]) == (0, 1)",
        "assert sum_product([1, 2, 3, 4]) == (10, 24)",
    ]
    assert sum_product.hidden_tests[0].rstrip().endswith("check(sum_product)")


def test_llmrouter_bad_rows_are_one_line_errors(tmp_path: Path) -> None:
    row = {"task_name": "mbpp", "query": "Write f.", "task_id": "1"}
    path = write_lines(
        tmp_path / "q.jsonl",
        [
            {**row, "ground_truth": "['assert f(1) == 1']"},
            {"task_name": "gsm8k", "query": "2 + 2?", "ground_truth": "4", "task_id": "g"},
            {**row, "task_id": "2", "ground_truth": "[__import__('os').system('echo no')]"},
        ],
    )
    with pytest.raises(DataError) as info:
        llmrouter_tasks(path, "mbpp")
    assert info.value.row == 3 and info.value.column == "ground_truth"
    assert "not a Python list literal" in str(info.value)
    assert len(llmrouter_tasks(path, "mbpp", n=1).tasks) == 1
    only_mbpp = write_lines(tmp_path / "r.jsonl", [{**row, "ground_truth": "[]"}])
    with pytest.raises(DataError, match="no 'human_eval' rows"):
        llmrouter_tasks(only_mbpp, "human_eval")


# -- the CLI ---------------------------------------------------------------------------------


def test_cli_converts_and_checks(tmp_path: Path, benchmarks: Path) -> None:
    out = tmp_path / "he.jsonl"
    result = run_cli("tasks", "convert", "humaneval", "-o", out, "--n", "3")
    assert result.code == 0, result.stderr
    assert "wrote 3 tasks from HumanEval" in result.stdout
    assert [t.id for t in read_tasks(out)] == ["humaneval/0", "humaneval/1", "humaneval/2"]

    mbpp = tmp_path / "mbpp.jsonl"
    source = benchmarks / QUERY_DATA / "default_query_test.jsonl"
    result = run_cli("tasks", "convert", "llmrouter", source, "-o", mbpp, "--json")
    assert result.code == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["n_tasks"] == 50 and summary["with_visible_tests"] == 50

    result = run_cli("tasks", "check", mbpp, "--json")
    assert json.loads(result.stdout)["kinds"] == {"function": 50}
    result = run_cli("tasks", "check", out)
    assert result.code == 0 and "3 valid tasks, 3 with visible tests" in result.stdout

    result = run_cli("tasks", "convert", "llmrouter", source, "-o", mbpp, "--task", "human_eval")
    assert result.code == 0 and "wrote 50 tasks from LLMRouter human_eval" in result.stdout


def test_cli_check_reports_the_first_problem_in_one_line(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "bad.jsonl", [GOOD, {**GOOD, "id": "t2", "hidden_tests": "x"}])
    result = run_cli("tasks", "check", path)
    assert result.code == 1
    assert result.stderr.count("\n") == 1
    assert "line 2" in result.stderr and "hidden_tests must be a list" in result.stderr
    out = tmp_path / "x.jsonl"
    result = run_cli("tasks", "convert", "llmrouter", path, "-o", out, "--task", "gsm8k")
    assert result.code == 1 and "unknown LLMRouter task 'gsm8k'" in result.stderr


def test_cli_lists_the_examples() -> None:
    result = run_cli("tasks", "examples", "--json")
    assert result.code == 0
    rows = json.loads(result.stdout)
    assert {r["kind"] for r in rows} == set(example_paths())
    assert all(Path(r["path"]).is_file() and r["n_tasks"] >= 2 for r in rows)
