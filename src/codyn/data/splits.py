"""Fixed train/test splits read from a split file, so runs share exactly the same prompts.

The format is the one in ``benchmarks/anchors/splits/*.tsv``: a tab-separated file with
columns ``id, split, prompt_sha1_16, group``. Rows are matched by prompt id and verified by
``sha1(prompt text as UTF-8)[:16]``; prompts the file does not list are dropped.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd

from codyn.data.routing import RoutingData
from codyn.errors import DataError, shown_list

SPLIT_COLUMNS = ("id", "split", "prompt_sha1_16")
SPLITS = ("train", "test")


def prompt_sha1_16(text: str) -> str:
    """First 16 hex digits of sha1 of the prompt as UTF-8 (the split files' text check)."""
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:16]


def read_split_file(path: str | Path) -> pd.DataFrame:
    """The split file as a frame with at least ``id, split, prompt_sha1_16`` (all str)."""
    path = Path(path)
    if not path.is_file():
        raise DataError("no such split file", path=path)
    frame = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    missing = [c for c in SPLIT_COLUMNS if c not in frame.columns]
    if missing:
        raise DataError(
            f"split file needs columns {', '.join(SPLIT_COLUMNS)}; missing {', '.join(missing)}",
            path=path,
        )
    repeated = frame["id"][frame["id"].duplicated()].unique().tolist()
    if repeated:
        raise DataError(f"ids repeated in the split file: {shown_list(repeated)}", path=path)
    bad = sorted(set(frame["split"]) - set(SPLITS))
    if bad:
        raise DataError(f"split must be 'train' or 'test', found {', '.join(bad)}", path=path)
    return frame


def load_split_file(data: RoutingData, path: str | Path) -> tuple[RoutingData, RoutingData]:
    """Split ``data`` into (train, test) as the split file says, in the file's row order.

    Prompts absent from the file are dropped; how many is recorded in both halves'
    ``notes``. An id of the file that the data lacks, or a prompt whose text hash differs
    from the file's, is a `DataError`.
    """
    path = Path(path)
    frame = read_split_file(path)
    position = pd.Series(np.arange(data.n_prompts), index=data.prompts["id"])
    absent = [i for i in frame["id"] if i not in position.index]
    if absent:
        raise DataError(
            f"{len(absent)} id(s) of the split file are not in the data: {shown_list(absent)}",
            path=path,
        )
    rows = position.loc[frame["id"]].to_numpy()
    texts = data.prompts["text"].to_numpy()
    changed = [
        i
        for i, row, expected in zip(frame["id"], rows, frame["prompt_sha1_16"], strict=True)
        if expected and prompt_sha1_16(texts[row]) != expected
    ]
    if changed:
        raise DataError(
            f"{len(changed)} prompt(s) differ from the text the split file was made from "
            f"(prompt_sha1_16 mismatch): {shown_list(changed)}",
            path=path,
        )
    is_test = (frame["split"] == "test").to_numpy()
    train, test = data.take(rows[~is_test]), data.take(rows[is_test])
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
