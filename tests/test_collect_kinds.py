"""Task kinds: prompts against paper 000's templates, code extraction from realistic replies,
and scoring with the real sandbox, real CodeBLEU and (``backend``) a real local LLM judge."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import pytest

from codyn.collect.converters import example_paths, humaneval_tasks
from codyn.collect.extract import code_blocks, extract_code, strip_reasoning
from codyn.collect.kinds import CellScore, Messages, ScoringContext, kind_of
from codyn.collect.kinds.classify import parse_label
from codyn.collect.kinds.judge import JUDGE_SYSTEM, chat_judge, parse_verdict
from codyn.collect.kinds.reference import CODEBLEU_LANGUAGES, codebleu
from codyn.collect.tasks import Task, read_tasks
from codyn.errors import CodynError

CONTEXT = ScoringContext(timeout_s=10.0)


def fenced(code: str, tag: str = "python") -> str:
    return f"Here is the solution:\n\n```{tag}\n{code}\n```\n\nIt runs in linear time."


def examples(kind: str) -> dict[str, Task]:
    return {task.id: task for task in read_tasks(example_paths()[kind])}


def score(task: Task, reply: str, context: ScoringContext = CONTEXT) -> CellScore:
    return kind_of(task).score(task, reply, context)


def prompt_of(task: Task) -> str:
    messages = kind_of(task).messages(task)
    assert [m["role"] for m in messages] == ["user"]
    return messages[0]["content"]


# -- extraction ------------------------------------------------------------------------------


def test_extract_the_fenced_block_from_prose() -> None:
    reply = (
        "Sure! To solve this we sort the list.\n\n```python\ndef f(xs):\n    return sorted(xs)\n"
        "```\n\nThis returns a new list; `xs` is unchanged."
    )
    assert extract_code(reply, entry_point="f") == "def f(xs):\n    return sorted(xs)"


def test_extract_prefers_the_block_defining_the_entry_point() -> None:
    reply = (
        "First, an example of use:\n```python\nprint(add(1, 2))\n```\n"
        "And the function:\n```py\ndef add(a, b):\n    return a + b\n```\n"
        "Tests:\n```python\nassert add(2, 2) == 4\n```"
    )
    assert extract_code(reply, entry_point="add") == "def add(a, b):\n    return a + b"
    assert extract_code(reply) == "print(add(1, 2))"  # no entry point: the first block
    assert len(code_blocks(reply)) == 3


def test_extract_skips_blocks_in_other_languages() -> None:
    reply = (
        "Install it first:\n```bash\npip install numpy\n```\nThen:\n```python\nimport numpy\n```"
    )
    assert extract_code(reply) == "import numpy"
    java = "```java\nclass A {}\n```\n```csharp\nclass B {}\n```"
    assert extract_code(java, language="c_sharp") == "class B {}"
    assert extract_code(java, language="java") == "class A {}"


def test_extract_a_reply_without_fences_is_the_code() -> None:
    reply = "def f(x):\n    return x * 2\n"
    assert extract_code(reply, entry_point="f") == "def f(x):\n    return x * 2"


def test_extract_ignores_reasoning() -> None:
    reply = (
        "<think>\nThe user wants f. A first draft:\n```python\ndef f(x):\n    return x\n```\n"
        "No, it must double.\n</think>\n\n```python\ndef f(x):\n    return 2 * x\n```"
    )
    assert extract_code(reply, entry_point="f") == "def f(x):\n    return 2 * x"
    # templates that open <think> themselves leave only the closing tag in the reply
    assert strip_reasoning("draft ... </think>\nAnswer: Yes") == "\nAnswer: Yes"
    assert extract_code("reasoning</think>\ndef g():\n    pass") == "def g():\n    pass"


def test_extract_a_reply_cut_inside_its_fence_or_closed_on_the_last_line() -> None:
    cut = "```python\ndef f(x):\n    return x +"
    assert extract_code(cut) == "def f(x):\n    return x +"
    same_line = "```python\ndef f(x):\n    return x```"
    assert extract_code(same_line) == "def f(x):\n    return x"
    tildes = "Code:\n~~~py\nx = 1\n~~~\nDone."
    assert extract_code(tildes) == "x = 1"


# -- prompts ---------------------------------------------------------------------------------


def test_function_prompts_mbpp_and_humaneval_styles() -> None:
    mbpp = examples("function")["example/second-largest"]
    assert prompt_of(mbpp) == (
        "You are an expert Python programmer, and here is your task: Write a function to find "
        "the second largest distinct number in a list of integers, or None when there is no "
        "such number. Your code should pass these tests:\n\n"
        "assert second_largest([4, 1, 3]) == 3"
    )
    humaneval = examples("function")["example/count-vowels"]
    text = prompt_of(humaneval)
    assert text.startswith("Complete the following Python function.")
    assert f"```python\n{humaneval.prompt.rstrip()}\n```" in text  # type: ignore[union-attr]
    untested = examples("function")["example/run-length"]
    assert prompt_of(untested).endswith("Name the function run_length.")


def test_stdio_prompt_is_the_apps_template_with_examples() -> None:
    task = examples("stdio")["example/min-max"]
    assert prompt_of(task) == (
        "Given the below programming question and example inputs/outputs, write Python code "
        "that solves it. Your program should be runnable inline and accept arguments via "
        "standard input and print back the result to standard output.\n\nQuestion:\n\n"
        "The first line holds n. The second line holds n integers. Print the smallest and the "
        "largest of them, separated by a space.\n\n"
        "Example 1:\nInput:\n5\n3 9 -2 7 7\nOutput:\n-2 9"
    )
    verbatim = examples("stdio")["example/word-count"]
    assert prompt_of(verbatim) == verbatim.prompt


def test_repair_prompt_is_the_runbugrun_template() -> None:
    task = examples("repair")["example/fix-average"]
    assert prompt_of(task) == (
        "Provide a fix for the buggy function.\n\nBuggy Function:\n\n"
        f"{task.fields['code'].strip()}\n\nAssertion Error:\n\n"
        "assert average([2, 4, 6]) == 4\nAssertionError"
    )


def test_classify_prompt_is_the_sven_template() -> None:
    task = examples("classify")["example/sql-injection"]
    assert prompt_of(task) == (
        "Tell me if the following python code has vulnerability or not.\nUse only Yes or No."
        f"\n\n{task.fields['code'].strip()}"
    )
    custom = examples("classify")["example/complexity"]
    assert prompt_of(custom).startswith(
        "What is the time complexity of the following python function in the length of its "
        "input?\nUse only Linear or Quadratic.\n\ndef has_duplicate"
    )


def test_reference_prompts_are_the_translation_and_refinement_templates() -> None:
    tasks = examples("reference")
    translate = tasks["example/translate-max"]
    assert prompt_of(translate) == (
        "Task: Translate the following code from Java to C#.\n\n"
        f"{translate.fields['code'].strip()}\n\n"
        "Translate this code to C#, maintaining the same functionality and following C#'s "
        "best practices."
    )
    assert "from Python to Java." in prompt_of(tasks["example/translate-even"])
    refine = tasks["example/refine-sum"]
    assert prompt_of(refine) == (
        "Task: Remove the bugs in the following code.\n\nOriginal Code (All the function and "
        f"variable names are normalized):\n\n{refine.fields['code'].strip()}\n\n"
        "Provide a refined bug-free version."
    )


def test_judge_prompt_is_the_task_prompt() -> None:
    task = examples("judge")["example/palindrome"]
    assert prompt_of(task) == task.prompt


# -- function --------------------------------------------------------------------------------


def test_function_correct_and_incorrect_solutions() -> None:
    task = examples("function")["example/second-largest"]
    right = score(task, fenced(task.reference or ""))
    assert (right.score, right.visible, right.error) == (1.0, 1.0, None)
    assert right.executions == 4  # the visible assert is also hidden: run once
    assert [(o["set"], o["status"]) for o in right.outcomes] == [("visible", "pass")] + [
        ("hidden", "pass")
    ] * 4
    # right on the visible test only: wrong with duplicates, fails on a single element
    naive = "def second_largest(numbers):\n    return sorted(numbers)[-2]"
    partial = score(task, fenced(naive))
    assert partial.visible == 1.0 and partial.score == pytest.approx(1 / 4)
    failed = [o for o in partial.outcomes if o["status"] != "pass"]
    assert [o["index"] for o in failed] == [1, 2, 3]
    assert "IndexError" in failed[1]["stderr_tail"]


def test_function_a_test_that_hangs_times_out_alone() -> None:
    task = examples("function")["example/second-largest"]
    hangs = (
        "def second_largest(numbers):\n    while len(numbers) == 1:\n        pass\n"
        "    distinct = sorted(set(numbers))\n    return distinct[-2]\n"
    )
    result = score(task, fenced(hangs), ScoringContext(timeout_s=2.0))
    statuses = [o["status"] for o in result.outcomes if o["set"] == "hidden"]
    assert statuses == ["pass", "pass", "timeout", "pass"]
    assert result.score == pytest.approx(3 / 4)


def test_function_humaneval_answers_whole_or_body_only() -> None:
    task = examples("function")["example/count-vowels"]
    body = "    return sum(1 for ch in text.lower() if ch in 'aeiou')"
    whole = f"def count_vowels(text: str) -> int:\n{body}\n"
    for reply in (fenced(whole), fenced(body), body, body.strip()):
        result = score(task, reply)
        assert (result.score, result.visible) == (1.0, 1.0), reply
    wrong = score(task, fenced("def count_vowels(text):\n    return len(text)"))
    assert wrong.score == 0.0 and wrong.visible == 0.0


def test_function_humaneval_answer_may_use_the_prompts_helpers() -> None:
    decode = next(t for t in humaneval_tasks().tasks if t.id == "humaneval/38")
    answer = (
        "def decode_cyclic(s: str):\n    groups = [s[(3 * i):min((3 * i + 3), len(s))] "
        "for i in range((len(s) + 2) // 3)]\n"
        "    groups = [(g[-1] + g[:-1]) if len(g) == 3 else g for g in groups]\n"
        "    return ''.join(groups)\n"
    )  # uses nothing but itself; the hidden check calls encode_cyclic from the prompt
    assert score(decode, fenced(answer)).score == 1.0
    assert score(decode, fenced("def decode_cyclic(s):\n    return s")).score == 0.0


def test_every_humaneval_canonical_solution_scores_one() -> None:
    """The converter and the function kind together: HumanEval's own solutions (bodies, sent
    as bare replies) pass their visible docstring asserts and their hidden check."""
    import gzip
    import json

    from codyn.collect.converters import humaneval_path

    with gzip.open(humaneval_path(), "rt", encoding="utf-8") as fh:
        solutions = {
            "humaneval/" + row["task_id"].split("/")[1]: row["canonical_solution"]
            for row in map(json.loads, fh)
        }
    failed = []
    for task in humaneval_tasks().tasks:
        result = score(task, solutions[task.id])
        if result.score != 1.0 or result.visible not in (None, 1.0):
            failed.append((task.id, result.outcomes))
    assert failed == []


def test_function_reply_without_code() -> None:
    task = examples("function")["example/second-largest"]
    result = score(task, "<think>I am not sure.</think>")
    assert (result.score, result.visible, result.executions) == (0.0, 0.0, 0)
    assert result.error == "no code in the reply"


# -- stdio and repair ------------------------------------------------------------------------


def test_stdio_correct_incorrect_and_whitespace() -> None:
    task = examples("stdio")["example/min-max"]
    loose = "input()\nv = list(map(int, input().split()))\nprint(min(v), max(v), ' ')\nprint()"
    assert score(task, fenced(loose)).score == 1.0  # trailing spaces and blank lines ignored
    swapped = "input()\nv = list(map(int, input().split()))\nprint(max(v), min(v))"
    result = score(task, fenced(swapped))
    assert result.visible == 0.0 and result.score == pytest.approx(2 / 3)  # 42 42 and -1 -1
    wrong = next(o for o in result.outcomes if o["status"] != "pass")
    assert wrong["status"] == "fail" and wrong["detail"] == "wrong output"
    crash = score(task, fenced("raise SystemExit(3)"))
    assert crash.score == 0.0 and {o["status"] for o in crash.outcomes} == {"fail"}
    assert result.executions == 4


def test_repair_with_asserts_and_with_io_pairs() -> None:
    tasks = examples("repair")
    average = tasks["example/fix-average"]
    assert score(average, fenced(average.reference or "")).score == 1.0
    unfixed = score(average, fenced(average.fields["code"]))
    assert unfixed.visible == 0.0 and unfixed.score < 1.0
    factorial = tasks["example/fix-factorial"]
    assert score(factorial, fenced(factorial.reference or "")).score == 1.0
    assert score(factorial, fenced(factorial.fields["code"])).score == pytest.approx(1 / 3)


@pytest.mark.parametrize("kind", ["function", "stdio", "repair"])
def test_example_reference_solutions_score_one(kind: str) -> None:
    for task in examples(kind).values():
        result = score(task, fenced(task.reference or ""))
        assert result.score == 1.0, (task.id, result.outcomes)
        assert result.visible in (None, 1.0)
        wrong = score(task, fenced("print(0)"))
        assert wrong.score < 1.0, task.id


# -- classify --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reply", "label"),
    [
        ("Yes", "Yes"),
        ("no.", "No"),
        ("**No**, the query is parameterised.", "No"),
        ("Answer: YES - the input is concatenated into SQL.", "Yes"),
        ("<think>Is it yes or no? The input flows into execute.</think>\n`Yes`", "Yes"),
        ("# No\nNothing is vulnerable here.", "No"),
        ("Nope, not vulnerable.", None),  # "Nope" is no label word; "not" neither
        ("I cannot tell.", None),
    ],
)
def test_parse_label(reply: str, label: str | None) -> None:
    assert parse_label(reply, ["Yes", "No"]) == label


def test_parse_label_multi_word_and_custom_labels() -> None:
    labels = ["Not vulnerable", "Vulnerable"]
    assert parse_label("**Not vulnerable**: the input is escaped.", labels) == "Not vulnerable"
    assert parse_label("vulnerable (CWE-89)", labels) == "Vulnerable"
    assert parse_label("It is quadratic: two nested loops.", ["Linear", "Quadratic"]) == (
        "Quadratic"
    )


def test_classify_scores() -> None:
    tasks = examples("classify")
    injection = tasks["example/sql-injection"]
    right = score(injection, "Yes. The name is concatenated into the query.")
    assert (right.score, right.error, right.outcomes[0]["predicted"]) == (1.0, None, "Yes")
    wrong = score(injection, "No")
    assert wrong.score == 0.0 and wrong.outcomes[0]["predicted"] == "No"
    unread = score(injection, "It depends on the database driver.")
    assert unread.score == 0.0 and unread.error == "no label (Yes or No) in the reply"
    assert score(tasks["example/complexity"], "quadratic").score == 1.0


# -- reference (CodeBLEU) --------------------------------------------------------------------

SNIPPETS = {
    "python": "def add(a, b):\n    total = a + b\n    return total\n",
    "java": "class A { int add(int a, int b) { int total = a + b; return total; } }",
    "c_sharp": "class A { int Add(int a, int b) { int total = a + b; return total; } }",
    "javascript": "function add(a, b) { const total = a + b; return total; }",
    "c": "int add(int a, int b) { int total = a + b; return total; }",
    "cpp": "int add(int a, int b) { int total = a + b; return total; }",
    "go": "func add(a int, b int) int { total := a + b; return total }",
    "rust": "fn add(a: i32, b: i32) -> i32 { let total = a + b; total }",
    "ruby": "def add(a, b)\n  total = a + b\n  total\nend\n",
    "php": "<?php function add($a, $b) { $total = $a + $b; return $total; }",
}


@pytest.mark.parametrize("language", CODEBLEU_LANGUAGES)
def test_codebleu_of_identical_code_is_one_in_every_language(language: str) -> None:
    assert codebleu(SNIPPETS[language], SNIPPETS[language], language)["codebleu"] == (
        pytest.approx(1.0)
    )


def test_codebleu_of_unrelated_code_is_low() -> None:
    reference = SNIPPETS["python"]
    unrelated = "import sys\n\nfor line in sys.stdin:\n    print(line.upper())\n"
    assert codebleu(reference, unrelated, "python")["codebleu"] < 0.4
    renamed = "def plus(x, y):\n    total = x + y\n    return total\n"
    assert 0.4 < codebleu(reference, renamed, "python")["codebleu"] < 1.0
    with pytest.raises(CodynError, match="no grammar for 'cobol'"):
        codebleu(reference, reference, "cobol")


def test_reference_kind_scores_the_extracted_code() -> None:
    tasks = examples("reference")
    translate = tasks["example/translate-max"]
    exact = score(translate, fenced(translate.reference or "", "csharp"))
    assert exact.score == pytest.approx(1.0) and exact.outcomes[0]["syntax_match_score"] == 1.0
    java_kept = score(translate, fenced(translate.fields["code"], "java"))
    assert 0.0 < java_kept.score < exact.score
    refine = tasks["example/refine-sum"]
    unchanged = score(refine, fenced(refine.fields["code"], "java"))
    assert 0.5 < unchanged.score < 1.0  # one line differs from the reference
    empty = score(refine, "")
    assert (empty.score, empty.error) == (0.0, "no code in the reply")


# -- judge -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reply", "verdict"),
    [
        ("Assistant A is more accurate.\n\n[[A]]", "A"),
        ('Format: "[[A]]" if A is better... Both are fine, but B is clearer. [[B]]', "B"),
        ("They are equally good. [[C]]", "C"),
        ("Equally good: [[tie]]", "C"),
        ("<think>Maybe [[A]]?</think>Final verdict: [[B]]", "B"),
        ("[Assistant A]", "A"),
        ("**Final verdict: Assistant B**", "B"),
        ("Both answers are reasonable.", None),
    ],
)
def test_parse_verdict(reply: str, verdict: str | None) -> None:
    assert parse_verdict(reply) == verdict


class ScriptedJudge:
    """A judge that gives fixed replies in turn and keeps the messages it was sent."""

    def __init__(self, *replies: str) -> None:
        self.replies, self.seen = list(replies), []

    def __call__(self, messages: Messages) -> str:
        self.seen.append(messages)
        return self.replies.pop(0)


def test_judge_scores_both_orders() -> None:
    task = examples("judge")["example/list-vs-tuple"]
    answer = "A list can change; a tuple cannot."
    consistent = ScriptedJudge("A wins [[A]]", "B wins [[B]]")
    result = score(task, answer, ScoringContext(judge=consistent))
    assert (result.score, result.error) == (1.0, None)
    first, second = (m[1]["content"] for m in consistent.seen)
    assert consistent.seen[0][0] == {"role": "system", "content": JUDGE_SYSTEM}
    assert first.index(answer) < first.index(task.reference)  # type: ignore[arg-type]
    assert second.index(task.reference) < second.index(answer)  # type: ignore[arg-type]
    assert first.startswith(f"[User Question]\n{task.prompt}\n\n[The Start of Assistant A's")
    assert [o["status"] for o in result.outcomes] == ["win", "win"]

    always_a = score(task, answer, ScoringContext(judge=ScriptedJudge("[[A]]", "[[A]]")))
    assert always_a.score == 0.5  # position bias cancels out
    assert score(task, answer, ScoringContext(judge=ScriptedJudge("[[C]]", "[[A]]"))).score == (
        0.25
    )
    lost = score(task, answer, ScoringContext(judge=ScriptedJudge("[[B]]", "[[A]]")))
    assert lost.score == 0.0


def test_judge_without_a_verdict_is_nan_with_an_error() -> None:
    task = examples("judge")["example/list-vs-tuple"]
    result = score(task, "Lists change.", ScoringContext(judge=ScriptedJudge("[[A]]", "Hmm.")))
    assert math.isnan(result.score)
    assert result.error and "reference_first" in result.error and "Hmm." in result.error
    assert [o["status"] for o in result.outcomes] == ["win", "unparsed"]
    empty = score(task, "<think>...</think>", ScoringContext(judge=ScriptedJudge()))
    assert empty.score == 0.0 and empty.error
    with pytest.raises(CodynError, match="need a judge model"):
        score(task, "Lists change.")


@pytest.fixture(scope="module")
def judge_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Qwen2.5-Coder-0.5B served by llama.cpp on loopback (the project's strong local model)."""
    import importlib.util

    from codyn.bench.local import STRONG, LlamaServer, qwen_coder_path

    if importlib.util.find_spec("llama_cpp") is None:
        pytest.fail("llama-cpp-python is not installed: pip install 'llama-cpp-python[server]'")
    log = Path(tmp_path_factory.mktemp("judge")) / "judge.log"
    with LlamaServer(qwen_coder_path(), STRONG, log=log) as server:
        yield server.api_base


@pytest.mark.backend
def test_judge_with_a_real_local_model(judge_server: str) -> None:
    from codyn.bench.local import STRONG

    model = chat_judge(STRONG, judge_server, max_tokens=256)
    replies: list[str] = []

    def judge(messages: Messages) -> str:
        replies.append(model(messages))
        return replies[-1]

    task = Task(
        id="arith",
        kind="judge",
        prompt="What is 7 * 6? Reply with the number only.",
        reference="41",
    )
    result = score(task, "42", ScoringContext(judge=judge))
    assert len(replies) == 2 and all(r.strip() for r in replies)
    assert result.error is None, result.error  # the real model's verdicts parse
    verdicts = [o["verdict"] for o in result.outcomes]
    assert verdicts == [parse_verdict(r) for r in replies] and None not in verdicts
    expected = sum(
        1.0 if v == p else 0.5 if v == "C" else 0.0 for v, p in zip(verdicts, "AB", strict=True)
    )
    assert result.score == pytest.approx(expected / 2)
    # greedy decoding: the same messages get the same verdict
    assert parse_verdict(model(judge_messages_of(task, "42"))) == verdicts[0]


def judge_messages_of(task: Task, answer: str) -> Messages:
    from codyn.collect.kinds.judge import judge_messages

    return judge_messages(task.prompt or "", answer, task.reference or "")
