"""Bad inputs: each is one `DataError` naming file, line and column; the CLI writes nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from codyn.cli import import_command  # noqa: F401  (registers `codyn import` on the app)
from codyn.data.importers import formats, read
from codyn.errors import DataError
from tests.conftest import run_cli

HEADER = "prompt_id,prompt,model,score"

# (case id, file name, content, options, line, column, phrase in the message)
LONG_CASES = [
    (
        "missing-column",
        "a.csv",
        "prompt_id,prompt,model\np1,x,a\n",
        {},
        1,
        "score",
        "missing required column",
    ),
    (
        "non-numeric-score",
        "a.csv",
        f"{HEADER}\np1,x,a,1\np1,x,b,high\n",
        {},
        3,
        "score",
        "expected a number at line 3, got 'high'",
    ),
    ("infinite-score", "a.csv", f"{HEADER}\np1,x,a,inf\n", {}, 2, "score", "finite"),
    (
        "conflicting-repeat",
        "a.csv",
        f"{HEADER}\np1,x,a,1\np2,y,a,1\np1,x,a,0\n",
        {},
        4,
        "score",
        "different score: 1 at line 2 and 0 at line 4",
    ),
    (
        "two-texts",
        "a.csv",
        f"{HEADER}\np1,x,a,1\np1,y,b,1\n",
        {},
        3,
        "prompt",
        "different prompt text than at line 2",
    ),
    (
        "unknown-model",
        "a.csv",
        f"{HEADER}\np1,x,a,1\np1,x,z,1\n",
        {"models": "a,b"},
        3,
        "model",
        "unknown model 'z' at line 3",
    ),
    ("negative-cost", "a.csv", f"{HEADER},cost\np1,x,a,1,-0.5\n", {}, 2, "cost", ">= 0"),
    ("empty-prompt-id", "a.csv", f"{HEADER}\n,x,a,1\n", {}, 2, "prompt_id", "empty prompt_id"),
    (
        "bad-sample",
        "a.csv",
        f"{HEADER},sample\np1,x,a,1,1.5\n",
        {},
        2,
        "sample",
        "integer sample index",
    ),
    (
        "after-multiline-cell",
        "a.csv",
        f'{HEADER}\np1,"two\nlines",a,1\np2,x,a,oops\n',
        {},
        4,
        "score",
        "at line 4",
    ),
    ("ragged-row", "a.csv", f"{HEADER}\np1,x,a\n", {}, 2, None, "has 3 fields at line 2"),
    ("header-only", "a.csv", f"{HEADER}\n", {}, None, None, "no data rows"),
    ("empty-file", "a.csv", "", {}, None, None, "file is empty"),
    (
        "tsv-non-numeric",
        "a.tsv",
        "prompt_id\tprompt\tmodel\tscore\np1\tx\ta\t?\n",
        {},
        2,
        "score",
        "expected a number",
    ),
    (
        "jsonl-bad-json",
        "a.jsonl",
        '{"prompt_id": "p1", "prompt": "x", "model": "a", "score": 1}\n{"prompt_id": \n',
        {},
        2,
        None,
        "invalid JSON at line 2",
    ),
    (
        "jsonl-missing-key",
        "a.jsonl",
        '{"prompt_id": "p1", "prompt": "x", "model": "a", "score": 1}\n'
        '{"prompt_id": "p2", "prompt": "y", "model": "a", "scor": 1}\n',
        {},
        2,
        "score",
        "missing required column at line 2; the object's keys are: "
        "'prompt_id', 'prompt', 'model', 'scor'",
    ),
    (
        "jsonl-two-tasks",
        "a.jsonl",
        '{"prompt_id": 1, "prompt": "x", "model": "a", "score": 1, "task": "code"}\n\n'
        '{"prompt_id": 1, "prompt": "x", "model": "b", "score": 1, "task": "math"}\n',
        {},
        3,
        "task",
        "task 'math' at line 3 but 'code' at line 1",
    ),
    ("wrong-extension", "a.txt", f"{HEADER}\np1,x,a,1\n", {}, None, None, "unsupported file type"),
]


def assert_names(exc: DataError, path: Path, line: int | None, column: str | None) -> None:
    message = str(exc)
    assert str(path) in message
    if line is not None:
        assert exc.row == line and f"line {line}" in message
    if column is not None:
        assert exc.column == column and f"column {column!r}" in message
    assert "\n" not in message


@pytest.mark.parametrize(
    ("name", "content", "opts", "line", "column", "phrase"),
    [case[1:] for case in LONG_CASES],
    ids=[case[0] for case in LONG_CASES],
)
def test_long_bad_input_names_file_line_and_column(
    tmp_path, name, content, opts, line, column, phrase
):
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    with pytest.raises(DataError) as info:
        read("long", [path], **opts)
    assert phrase in str(info.value)
    assert_names(info.value, path, line, column)
    out = tmp_path / "out.parquet"
    args = [f"{k}={v}" for k, v in opts.items()]
    result = run_cli("import", "long", path, "-o", out, *[a for v in args for a in ("--option", v)])
    assert result.code != 0
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1
    assert phrase in result.stderr
    assert not out.exists() and not out.with_name(out.name + ".tmp").exists()


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_routerbench_missing_column_and_bad_cells(tmp_path):
    path = write(tmp_path / "mbpp_train.csv", "sample_id,prompt,gpt\ns1,\"['x']\",1\n")
    with pytest.raises(DataError, match="missing required column") as info:
        read("routerbench", [path])
    assert_names(info.value, path, 1, "eval_name")
    header = "sample_id,prompt,eval_name,gpt,gpt|total_cost\n"
    path = write(
        tmp_path / "b_test.csv", header + "s1,\"['x']\",t,1,0.1\ns2,\"['y']\",t,yes?,0.1\n"
    )
    with pytest.raises(DataError, match="expected a number") as info:
        read("routerbench", [path])
    assert_names(info.value, path, 3, "gpt")
    path = write(tmp_path / "c_test.csv", header + "s1,\"['x']\",t,1,0.1\ns1,\"['y']\",t,0,0.1\n")
    with pytest.raises(DataError, match="repeats the one at line 2") as info:
        read("routerbench", [path])
    assert_names(info.value, path, 3, "sample_id")


def test_routellm_bad_bool_and_lonely_mt_bench(tmp_path):
    path = write(tmp_path / "mmlu" / "mmlu_x.csv", "prompt,m\nq1,True\nq2,maybe\n")
    with pytest.raises(DataError) as info:
        read("routellm", [path])
    assert_names(info.value, path, 3, "m")
    question = write(
        tmp_path / "mt_bench" / "question.jsonl",
        json.dumps({"question_id": 1, "turns": ["hi"]}) + "\n",
    )
    with pytest.raises(DataError, match="side by side"):
        read("routellm", [question])
    write(
        tmp_path / "mt_bench" / "judgements.jsonl",
        json.dumps({"question_id": 1, "model": "m", "score": 11}) + "\n",
    )
    with pytest.raises(DataError, match="from 1 to 10") as info:
        read("routellm", [question])
    assert_names(info.value, tmp_path / "mt_bench" / "judgements.jsonl", 1, "score")


def test_json_list_importers_name_the_entry(tmp_path):
    path = write(tmp_path / "mbpp.json", json.dumps({"question": "x"}))
    with pytest.raises(DataError, match="expected a JSON list"):
        read("routerdc", [path])
    items = [{"question": "a", "scores": {"m": 1}}, {"question": "b", "scores": "{'m': oops}"}]
    path = write(tmp_path / "gsm8k-test.json", json.dumps(items))
    with pytest.raises(DataError, match=r"in entry 1 \(0-based\)") as info:
        read("routerdc", [path])
    assert_names(info.value, path, None, "scores")
    path = write(tmp_path / "broken.json", '[{"question": "a",\n "scores": }]')
    with pytest.raises(DataError, match="invalid JSON at line 2") as info:
        read("routerdc", [path])
    assert_names(info.value, path, 2, None)
    items = [{"question": "a", "scores": {"m": "high"}}]
    path = write(tmp_path / "data" / "dcrouter_preprocessed" / "train.json", json.dumps(items))
    with pytest.raises(DataError, match="expected a number in entry 0") as info:
        read("llmrouter", [path])
    assert_names(info.value, path, None, "scores.m")


def test_paths_options_and_formats_are_checked(tmp_path):
    with pytest.raises(DataError, match="no such file or directory"):
        read("long", [tmp_path / "missing.csv"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no RouterDC JSON files in this directory"):
        read("routerdc", [tmp_path / "empty"])
    with pytest.raises(DataError, match="unknown format 'csv'; known formats: ") as info:
        read("csv", [tmp_path])
    assert all(fmt in str(info.value) for fmt in formats())
    with pytest.raises(DataError, match="has no option 'keep_contaminated'; it accepts"):
        read("routerdc", [tmp_path], keep_contaminated=True)
    path = write(tmp_path / "ok.csv", f"{HEADER}\np1,x,a,1\n")
    with pytest.raises(DataError, match="expects true or false"):
        read("routerdc", [path], keep_duplicates="maybe")
    with pytest.raises(DataError, match="expected model=price"):
        read("long", [path], prices="a:1")
    with pytest.raises(DataError, match="must be a finite number >= 0"):
        read("long", [path], prices={"a": -1})


def test_cli_rejects_bad_arguments_without_writing(tmp_path):
    path = write(tmp_path / "ok.csv", f"{HEADER}\np1,x,a,1\n")
    out = tmp_path / "out.parquet"
    for args, phrase in [
        (["nope", path, "-o", out], "unknown format 'nope'"),
        (["long", path, "-o", out, "--option", "models"], "expects KEY=VALUE"),
        (["long", path, "-o", out, "--option", "colour=red"], "has no option 'colour'"),
        (["long", path, "-o", tmp_path / "out.csv"], "must end in .parquet"),
        (["long", tmp_path / "nothing.csv", "-o", out], "no such file or directory"),
    ]:
        result = run_cli("import", *args)
        assert result.code == 1 and result.stderr.startswith("error: "), args
        assert phrase in result.stderr and result.stderr.count("\n") == 1
        assert not out.exists()
    assert run_cli("import", "long", path, "-o", out).code == 0 and out.exists()
