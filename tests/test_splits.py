"""Fixed splits from split files: matching by id, text check, dropped rows, clear errors."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from codyn.data.demo import load_demo
from codyn.data.routing import RoutingData
from codyn.data.splits import SplitRow, load_split_file, prompt_sha1_16, read_split_file
from codyn.errors import DataError
from tests.conftest import run_cli


def _data(n: int = 6) -> RoutingData:
    return RoutingData(
        prompts=[{"id": f"p{i}", "text": f"prompt number {i} ✓"} for i in range(n)],
        models=["a", "b"],
        score=np.arange(2 * n, dtype=float).reshape(n, 2),
    )


def _write(path: Path, rows: list[tuple[str, str, str]]) -> Path:
    lines = ["id\tsplit\tprompt_sha1_16\tgroup"] + [f"{i}\t{s}\t{h}\tg" for i, s, h in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_sha1_matches_known_value() -> None:
    assert prompt_sha1_16("abc") == "a9993e364706816a"


def test_rows_follow_the_file_and_absent_rows_are_dropped(tmp_path: Path) -> None:
    data = _data()
    h = {i: prompt_sha1_16(t) for i, t in zip(data.prompt_ids, data.texts, strict=True)}
    path = _write(
        tmp_path / "s.tsv",
        [("p3", "train", h["p3"]), ("p0", "train", h["p0"]), ("p4", "test", h["p4"])],
    )
    train, test = load_split_file(data, path)
    assert train.prompt_ids == ["p3", "p0"]
    assert test.prompt_ids == ["p4"]
    np.testing.assert_array_equal(test.score, data.score[[4]])
    assert "3 prompt(s) not in the file dropped" in test.notes[-1]
    assert train.notes[-1] == test.notes[-1]


HEADER = "id\tsplit\tprompt_sha1_16\tgroup\n"

BAD_FILES = {
    "extra field": (HEADER + "p0\ttrain\t\tg\np1\ttest\t\tg\textra\n", 3, "has 5 field"),
    "missing field": (HEADER + "p0\ttrain\n", 2, "has 2 field"),
    "csv file": ("id,split,prompt_sha1_16,group\np0,train,,g\n", 1, "must be tab-separated"),
    "csv rows": (HEADER + "p0,train,,g\n", 2, "split files are tab-separated"),
    "missing column": ("id\tsplit\tgroup\np0\ttrain\tg\n", 1, "lacks column.* prompt_sha1_16"),
    "repeated column": ("id\tsplit\tsplit\tprompt_sha1_16\n", 1, "'split' appears twice"),
    "bad split": (HEADER + "p0\ttrain\t\tg\np1\tval\t\tg\n", 3, "'train' or 'test', got 'val'"),
    "repeated id": (HEADER + "p0\ttrain\t\t\np0\ttest\t\t\n", 3, "'p0' is repeated .*line 2"),
    "empty id": (HEADER + "\ttrain\t\tg\n", 2, "empty id"),
    "bad hash": (HEADER + "p0\ttrain\tXYZ\tg\n", 2, "16 lowercase hex digits"),
}


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_malformed_lines_name_file_and_line(tmp_path: Path, case: str) -> None:
    text, line, message = BAD_FILES[case]
    path = tmp_path / "bad.tsv"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(DataError, match=message) as caught:
        read_split_file(path)
    assert caught.value.path == str(path) and caught.value.row == line
    assert re.match(rf"{re.escape(str(path))}, line {line}[:,] ", str(caught.value))


def test_encoding_and_empty_files(tmp_path: Path) -> None:
    latin = tmp_path / "latin.tsv"
    latin.write_bytes(HEADER.encode() + "p0\ttrain\t\tcaf\xe9\n".encode("latin-1"))
    with pytest.raises(DataError, match="not UTF-8") as caught:
        read_split_file(latin)
    assert caught.value.row == 2
    for name, text in (("empty.tsv", ""), ("blank.tsv", "\n \n")):
        (tmp_path / name).write_text(text, encoding="utf-8")
        with pytest.raises(DataError, match="split file is empty"):
            read_split_file(tmp_path / name)
    (tmp_path / "header.tsv").write_text(HEADER, encoding="utf-8")
    with pytest.raises(DataError, match="lists no prompts"):
        read_split_file(tmp_path / "header.tsv")


def test_rows_keep_lines_groups_and_skip_blank_lines(tmp_path: Path) -> None:
    path = tmp_path / "s.tsv"
    digest = prompt_sha1_16("x")
    path.write_text(HEADER + f"p0\ttrain\t{digest}\tmbpp\r\n\np1\ttest\t\t\n", encoding="utf-8")
    assert read_split_file(path) == [
        SplitRow("p0", "train", digest, "mbpp", 2),
        SplitRow("p1", "test", "", "", 4),
    ]


def test_data_mismatches_name_the_line(tmp_path: Path) -> None:
    path = _write(tmp_path / "s.tsv", [("p0", "train", ""), ("zz", "test", "")])
    with pytest.raises(DataError, match=r"line 3.*not in the data: zz"):
        load_split_file(_data(), path)
    path = _write(tmp_path / "h.tsv", [("p0", "train", ""), ("p1", "test", prompt_sha1_16("?"))])
    with pytest.raises(DataError, match=r"line 3.*mismatch"):
        load_split_file(_data(), path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no such split file"):
        load_split_file(_data(), tmp_path / "nope.tsv")


@pytest.fixture(scope="module")
def demo_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return load_demo().save(tmp_path_factory.mktemp("demo") / "demo.parquet")


@pytest.mark.parametrize("case", ["extra field", "csv file", "bad split", "repeated id"])
def test_cli_reports_bad_split_file_in_one_line(demo_file: Path, tmp_path: Path, case: str) -> None:
    text, line, message = BAD_FILES[case]
    bad = tmp_path / "bad.tsv"
    bad.write_text(text, encoding="utf-8")
    result = run_cli("eval", demo_file, "--routers", "sbs", "--split-file", bad)
    assert result.code == 1 and result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert re.match(rf"error: {re.escape(str(bad))}, line {line}[:,] ", result.stderr)
    assert re.search(message, result.stderr) and "Traceback" not in result.stderr


def test_anchor_split_file_is_readable(benchmarks: Path) -> None:
    rows = read_split_file(benchmarks / "anchors" / "splits" / "rb_mbpp.tsv")
    assert sum(row.split == "train" for row in rows) == 297
    assert sum(row.split == "test" for row in rows) == 128
    assert rows[0] == SplitRow("mbpp.dev.92", "train", "6f7482e3d0f67a4e", "", 2)
