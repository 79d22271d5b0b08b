"""`PrecomputedRouter` (``predictions:<file>``): another tool's per-prompt predictions as a router.

A peer router (RouteLLM, say) is best run from its own code. Writing its predicted quality per
(prompt, model) to a file and evaluating that file here puts it on exactly the same sweeps,
metrics and paired bootstrap as codyn's routers: ``codyn eval DATA --routers knn,predictions:
peer.csv``.

The file is long format, one row per (prompt, model): ``model``, ``value`` (predicted quality,
higher is better, any finite number) and a prompt key, ``prompt_id`` (the data set's prompt
ids) or ``prompt_sha1_16`` (first 16 hex digits of sha1 of the prompt text as UTF-8, so plain
prompt strings can be looked up too); with both, ``prompt_id`` is used. ``.csv``, ``.tsv`` and
``.parquet`` are read. Fitting reads the file into the router, so a saved router needs it no
more; nothing is learned from the training scores.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from codyn.data.routing import RoutingData
from codyn.data.splits import prompt_sha1_16
from codyn.errors import CodynError, DataError, shown_list
from codyn.routers.base import Arrays, Router, State
from codyn.routers.registry import register_router

FloatArray = NDArray[np.float64]

KEY_COLUMNS = ("prompt_id", "prompt_sha1_16")
"""The prompt keys a predictions file may have, in order of preference."""
SUFFIXES = {".csv": ",", ".tsv": "\t", ".parquet": None}
_SHA1_16 = re.compile(r"[0-9a-f]{16}")


def read_predictions(path: str | Path) -> tuple[pd.DataFrame, str, bool]:
    """The predictions file as a frame of (key, ``model``, ``value``): key and model as str,
    value as float, plus the key column's name and whether rows are text lines (CSV/TSV).

    Every problem is a `DataError` naming the file (and the line, for a bad cell).
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise DataError(
            f"predictions file must end in {', '.join(SUFFIXES)}, not {suffix or 'nothing'!r}",
            path=path,
        )
    if not path.is_file():
        raise DataError("no such predictions file", path=path)
    try:
        if SUFFIXES[suffix] is None:
            frame = pd.read_parquet(path)
        else:
            frame = pd.read_csv(path, sep=SUFFIXES[suffix], dtype=str, keep_default_na=False)
    except pd.errors.EmptyDataError:
        raise DataError("empty predictions file (expected a header row)", path=path) from None
    except (OSError, ValueError, UnicodeDecodeError, pd.errors.ParserError) as exc:
        raise DataError(f"cannot read the predictions file ({exc})", path=path) from None
    lines = SUFFIXES[suffix] is not None
    frame.columns = [str(c).strip() for c in frame.columns]
    key = next((c for c in KEY_COLUMNS if c in frame.columns), None)
    missing = [c for c in ("model", "value") if c not in frame.columns]
    if key is None:
        missing.append(" or ".join(KEY_COLUMNS))
    if missing:
        raise DataError(
            f"predictions file needs columns model, value and prompt_id or prompt_sha1_16; "
            f"missing {', '.join(missing)} (has {', '.join(frame.columns) or 'none'})",
            path=path,
        )
    frame = frame[[key, "model", "value"]].reset_index(drop=True)

    def where(i: int) -> dict[str, Any]:
        return {"row": i + 2} if lines else {}

    def at(i: int) -> str:
        return "" if lines else f" (row {i + 1})"

    for column in (key, "model"):
        empty = frame[column].isna() | (frame[column].astype(str).str.strip() == "")
        if empty.any():
            i = int(np.flatnonzero(empty.to_numpy())[0])
            raise DataError(f"empty {column}{at(i)}", path=path, column=column, **where(i))
        frame[column] = frame[column].astype(str)
    if key == "prompt_sha1_16":
        frame[key] = frame[key].str.strip().str.lower()
        bad = ~frame[key].str.fullmatch(_SHA1_16)
        if bad.any():
            i = int(np.flatnonzero(bad.to_numpy())[0])
            raise DataError(
                f"prompt_sha1_16 must be 16 hex digits (the first 16 of sha1 of the prompt as "
                f"UTF-8), got {frame[key].iloc[i]!r}{at(i)}",
                path=path,
                column=key,
                **where(i),
            )
    raw = frame["value"]
    value = pd.to_numeric(raw, errors="coerce").astype(np.float64).to_numpy()
    bad_value = ~np.isfinite(value)
    if bad_value.any():
        i = int(np.flatnonzero(bad_value)[0])
        got = raw.iloc[i]
        shown = repr(got) if isinstance(got, str) else str(got)
        raise DataError(
            f"value must be a finite number, got {shown}{at(i)}; leave the row out "
            "for a missing prediction",
            path=path,
            column="value",
            **where(i),
        )
    frame["value"] = value
    repeated = frame.duplicated(subset=[key, "model"], keep="first").to_numpy()
    if repeated.any():
        i = int(np.flatnonzero(repeated)[0])
        same = (frame[key] == frame[key].iloc[i]) & (frame["model"] == frame["model"].iloc[i])
        first = int(np.flatnonzero(same.to_numpy())[0])
        given = f"line {first + 2}" if lines else f"row {first + 1}"
        raise DataError(
            f"duplicate prediction for {key} {frame[key].iloc[i]!r}, model "
            f"{frame['model'].iloc[i]!r}{at(i)}, first given on {given}",
            path=path,
            **where(i),
        )
    return frame, key, lines


@register_router("predictions", arg="path")
class PrecomputedRouter(Router):
    """Replays per-prompt predictions read from a file (see the module docstring).

    ``fit`` reads the file and keeps the values of the train models (other models are
    ignored); ``predict`` looks each prompt up by its key. A (prompt, model) pair the file
    lacks predicts NaN, which no policy chooses; a prompt the file lacks is an error.
    """

    key_: str
    keys_: NDArray[np.str_]
    values_: FloatArray

    def __init__(self, path: str) -> None:
        self.path = path

    def _fit(self, train: RoutingData) -> None:
        frame, key, _ = read_predictions(self.path)
        absent = [m for m in self.model_names_ if m not in set(frame["model"])]
        if absent:
            raise DataError(
                f"no predictions for model(s) {', '.join(absent)} of the training data "
                f"(the file has {shown_list(sorted(set(frame['model'])))})",
                path=self.path,
            )
        frame = frame[frame["model"].isin(self.model_names_)]
        keys = pd.unique(frame[key])
        values = np.full((len(keys), len(self.model_names_)), np.nan)
        rows = pd.Index(keys).get_indexer(frame[key])
        columns = pd.Index(self.model_names_).get_indexer(frame["model"])
        values[rows, columns] = frame["value"].to_numpy()
        self._set_table(key, [str(k) for k in keys], values)

    def _set_table(self, key: str, keys: list[str], values: FloatArray) -> None:
        if key not in KEY_COLUMNS:
            raise ValueError(f"unknown prompt key {key!r}")
        values = np.asarray(values, dtype=np.float64)
        if values.shape != (len(keys), len(self.model_names_)):
            raise ValueError(
                f"values has shape {values.shape}, expected {(len(keys), len(self.model_names_))}"
            )
        self.key_ = key
        self.keys_ = np.array(keys, dtype=str)
        self.values_ = values
        self._index = pd.Index(keys)
        if not self._index.is_unique:
            raise ValueError("prompt keys are repeated")

    def _state(self) -> State:
        return {"key": self.key_, "keys": self.keys_.tolist()}, {"values": self.values_}

    def _set_state(self, state: dict[str, Any], arrays: Arrays) -> None:
        if not all(isinstance(k, str) for k in state["keys"]):
            raise ValueError("prompt keys must be strings")
        self._set_table(state["key"], list(state["keys"]), arrays["values"])

    def _predict(self, texts: list[str], data: RoutingData | None) -> FloatArray:
        if self.key_ == "prompt_id":
            if data is None:
                raise CodynError(
                    f"predictions file {self.path} is keyed by prompt_id: predict needs the "
                    "RoutingData the prompts come from, not prompt strings (or key the file by "
                    "prompt_sha1_16)"
                )
            lookup = [str(i) for i in data.prompt_ids]
        else:
            lookup = [prompt_sha1_16(text) for text in texts]
        rows = self._index.get_indexer(lookup) if lookup else np.empty(0, dtype=np.int64)
        missing = np.flatnonzero(rows < 0)
        if missing.size:
            first = int(missing[0])
            shown = f"{self.key_} {lookup[first]!r}"
            if self.key_ == "prompt_sha1_16" and data is not None:
                shown += f" (prompt id {data.prompt_ids[first]!r})"
            raise CodynError(
                f"{missing.size} of {len(lookup)} prompt(s) have no predictions in "
                f"{self.path}; the first is {shown}"
            )
        return self.values_[rows].copy()
