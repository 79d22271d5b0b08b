"""Fixed splits from split files: matching by id, text check, dropped rows, clear errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from codyn.data.routing import RoutingData
from codyn.data.splits import load_split_file, prompt_sha1_16, read_split_file
from codyn.errors import DataError


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


def test_unknown_id_is_a_clear_error(tmp_path: Path) -> None:
    path = _write(tmp_path / "s.tsv", [("p0", "train", ""), ("zz", "test", "")])
    with pytest.raises(DataError, match=r"1 id\(s\) of the split file are not in the data: zz"):
        load_split_file(_data(), path)


def test_changed_text_is_a_clear_error(tmp_path: Path) -> None:
    path = _write(tmp_path / "s.tsv", [("p0", "train", prompt_sha1_16("other text"))])
    with pytest.raises(DataError, match="prompt_sha1_16 mismatch"):
        load_split_file(_data(), path)


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ([("p0", "val", "")], "split must be 'train' or 'test'"),
        ([("p0", "train", ""), ("p0", "test", "")], "ids repeated"),
    ],
)
def test_malformed_files(tmp_path: Path, rows: list[tuple[str, str, str]], message: str) -> None:
    with pytest.raises(DataError, match=message):
        load_split_file(_data(), _write(tmp_path / "s.tsv", rows))


def test_missing_file_and_columns(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no such split file"):
        load_split_file(_data(), tmp_path / "nope.tsv")
    bad = tmp_path / "bad.tsv"
    bad.write_text("id\tsplit\np0\ttrain\n", encoding="utf-8")
    with pytest.raises(DataError, match="missing prompt_sha1_16"):
        load_split_file(_data(), bad)


def test_anchor_split_file_is_readable(benchmarks: Path) -> None:
    frame = read_split_file(benchmarks / "anchors" / "splits" / "rb_mbpp.tsv")
    assert (frame["split"] == "train").sum() == 297
    assert (frame["split"] == "test").sum() == 128
