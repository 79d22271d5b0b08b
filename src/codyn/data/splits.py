"""Fixed train/test splits read from a split file, so runs share exactly the same prompts.

The format is the one in ``benchmarks/anchors/splits/*.tsv``: a tab-separated UTF-8 file
whose header names the columns ``id, split, prompt_sha1_16`` (and usually ``group``; other
columns are ignored). Rows are matched by prompt id and verified by
``sha1(prompt text as UTF-8)[:16]`` (an empty hash skips the check); prompts the file does
not list are dropped. The file is read with the csv module, not pandas, so every error names
its line (the header is line 1).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from codyn.data.files import csv_records, read_text
from codyn.errors import DataError, shown_list

if TYPE_CHECKING:  # only annotations: reading a split file does not need pandas
    from codyn.data.routing import RoutingData

SPLIT_COLUMNS = ("id", "split", "prompt_sha1_16")
SPLITS = ("train", "test")
_SHA1_16 = re.compile(r"[0-9a-f]{16}")
_EXPECTED = "a tab-separated header id, split, prompt_sha1_16, group"


@dataclass(frozen=True)
class SplitRow:
    """One prompt of a split file and the line it is on."""

    id: str
    split: str
    prompt_sha1_16: str
    group: str
    line: int


def prompt_sha1_16(text: str) -> str:
    """First 16 hex digits of sha1 of the prompt as UTF-8 (the split files' text check)."""
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:16]


def read_split_file(path: str | Path) -> list[SplitRow]:
    """The split file's rows in file order; any malformed line is a one-line `DataError`."""
    path = Path(path)
    text = read_text(path, "split file")
    header: list[str] | None = None
    rows: list[SplitRow] = []
    first_line: dict[str, int] = {}
    for line, fields in csv_records(text, path, delimiter="\t"):
        if header is None:
            header = _header(fields, path, line)
            continue
        if len(fields) != len(header):
            hint = (
                "; split files are tab-separated" if len(fields) == 1 and "," in fields[0] else ""
            )
            raise DataError(
                f"has {len(fields)} field(s) but the header has {len(header)}{hint}",
                path=path,
                row=line,
            )
        row = _row(dict(zip(header, fields, strict=True)), path, line)
        if row.id in first_line:
            raise DataError(
                f"id {row.id!r} is repeated (first at line {first_line[row.id]})",
                path=path,
                row=line,
                column="id",
            )
        first_line[row.id] = line
        rows.append(row)
    if header is None:  # only blank lines
        raise DataError(f"split file is empty; expected {_EXPECTED}", path=path)
    if not rows:
        raise DataError("split file has a header but lists no prompts", path=path)
    return rows


def _header(fields: list[str], path: Path, line: int) -> list[str]:
    names = [name.strip() for name in fields]
    if len(names) == 1 and "," in names[0]:
        raise DataError(
            f"the split file must be tab-separated, but its header is comma-separated; "
            f"expected {_EXPECTED}",
            path=path,
            row=line,
        )
    repeated = sorted({name for name in names if name and names.count(name) > 1})
    if repeated:
        raise DataError(f"column {repeated[0]!r} appears twice in the header", path=path, row=line)
    missing = [column for column in SPLIT_COLUMNS if column not in names]
    if missing:
        shown = ", ".join(name for name in names if name) or "nothing"
        raise DataError(
            f"the header lacks column(s) {', '.join(missing)} (it has: {shown}); "
            f"expected {_EXPECTED}",
            path=path,
            row=line,
        )
    return names


def _row(cells: dict[str, str], path: Path, line: int) -> SplitRow:
    prompt_id = cells["id"]
    if not prompt_id.strip():
        raise DataError("empty id", path=path, row=line, column="id")
    split = cells["split"].strip()
    if split not in SPLITS:
        raise DataError(
            f"split must be 'train' or 'test', got {split!r}", path=path, row=line, column="split"
        )
    digest = cells["prompt_sha1_16"].strip()
    if digest and not _SHA1_16.fullmatch(digest):
        raise DataError(
            f"prompt_sha1_16 must be 16 lowercase hex digits or empty, got {digest!r}",
            path=path,
            row=line,
            column="prompt_sha1_16",
        )
    return SplitRow(prompt_id, split, digest, cells.get("group", "").strip(), line)


def load_split_file(data: RoutingData, path: str | Path) -> tuple[RoutingData, RoutingData]:
    """Split ``data`` into (train, test) as the split file says, in the file's row order.

    Prompts absent from the file are dropped; how many is recorded in both halves'
    ``notes``. An id of the file that the data lacks, or a prompt whose text hash differs
    from the file's, is a `DataError` naming the first such line.
    """
    path = Path(path)
    rows = read_split_file(path)
    position = {prompt_id: i for i, prompt_id in enumerate(data.prompt_ids)}
    absent = [row for row in rows if row.id not in position]
    if absent:
        raise DataError(
            f"{len(absent)} id(s) of the split file are not in the data: "
            f"{shown_list([row.id for row in absent])}",
            path=path,
            row=absent[0].line,
            column="id",
        )
    texts = data.texts
    changed = [
        row
        for row in rows
        if row.prompt_sha1_16 and prompt_sha1_16(texts[position[row.id]]) != row.prompt_sha1_16
    ]
    if changed:
        raise DataError(
            f"{len(changed)} prompt(s) differ from the text the split file was made from "
            f"(prompt_sha1_16 mismatch): {shown_list([row.id for row in changed])}",
            path=path,
            row=changed[0].line,
            column="prompt_sha1_16",
        )
    train = data.take([position[row.id] for row in rows if row.split == "train"])
    test = data.take([position[row.id] for row in rows if row.split == "test"])
    note = (
        f"split file {path.name}: {len(train)} train / {len(test)} test; "
        f"{data.n_prompts - len(rows)} prompt(s) not in the file dropped"
    )
    train.notes.append(note)
    test.notes.append(note)
    return train, test


def train_test(
    data: RoutingData,
    *,
    test: RoutingData | None = None,
    test_size: float | None = None,
    split_file: str | Path | None = None,
    seed: int = 0,
) -> tuple[RoutingData, RoutingData]:
    """(train, test) from at most one of: a separate ``test`` set, a ``split_file``, or a
    seeded stratified split of ``test_size`` (default 0.3, see `RoutingData.split`)."""
    given = [
        n
        for n, v in (("test", test), ("test_size", test_size), ("split_file", split_file))
        if v is not None
    ]
    if len(given) > 1:
        raise DataError(f"give at most one of test, test_size, split_file; got {', '.join(given)}")
    if test is not None:
        return data, test
    if split_file is not None:
        return load_split_file(data, split_file)
    return data.split(0.3 if test_size is None else test_size, seed=seed)
