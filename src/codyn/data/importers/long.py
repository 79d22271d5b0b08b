"""The long format: your own routing data, one row per (prompt, model) outcome.

This is the format to use for data you collected yourself; `RoutingData.to_long` writes it,
so any data codyn holds can be exported, edited and read back.

Files
-----
CSV (``.csv``), tab-separated (``.tsv``) or JSON Lines (``.jsonl`` / ``.ndjson``: one object
per line, keys = column names), UTF-8. Several files, or a directory of them, are read as one
data set. Lines are counted as an editor shows them: in CSV the header is line 1 and the
first data row line 2 (a record with multi-line quoted cells is named by the line it starts
on); every error names the file, the line and the column.

Example (``mine.csv``)::

    prompt_id,prompt,task,model,score,cost
    p1,"Write a function that reverses a string.",code,big-model,1,0.0021
    p1,"Write a function that reverses a string.",code,small-model,0,0.0001

    codyn import long mine.csv -o mine.parquet --option models=big-model,small-model

Columns
-------
================  ========  ===============================================================
column            required  meaning
================  ========  ===============================================================
``prompt_id``     yes       your id of the prompt (text; unique per prompt)
``prompt``        yes       the prompt text; every row of one ``prompt_id`` must carry the same
``model``         yes       the model's name
``score``         yes       the outcome, higher is better (0/1 pass, or a soft score); ``true``/
                            ``false`` read as 1/0; an empty cell (JSON ``null``) = not measured
``task``          no        task / benchmark name (default ``default``)
``language``      no        programming language of the prompt (e.g. ``python``)
``cost``          no        observed USD for that call
``tokens_in``     no        prompt tokens of that call
``tokens_out``    no        completion tokens of that call
``visible_score`` no        the pass fraction of the tests the prompt itself shows (MBPP's
                            asserts, HumanEval's docstring examples): what a cascade's verifier
                            sees before escalating; ``score`` is then the hidden tests'
``latency_s``     no        seconds the call took
``response``      no        the model's answer (kept, not used for routing)
``sample``        no        sample index (integer) when a prompt was answered several times per
                            model: rows with the same (prompt_id, model) and different samples
                            are samples; the cell's score is their mean and all of them are kept
                            in ``samples`` (``visible_samples``); cost, tokens and latency are
                            their means per call
================  ========  ===============================================================

Other columns are ignored (and listed in the notes). A (prompt, model) pair with no row is a
missing cell (score NaN). Model order is the order of first appearance, or ``models=``.

Costs (``cost_basis``)
----------------------
1. ``observed``: a ``cost`` column holding at least one value; but when every model's
   cost is the same on every prompt (one price per model typed into the column), the basis is
   ``price_proxy``: such costs carry ratios only (`mark_constant_costs_as_proxy`);
2. ``tokens_x_price``: else, token columns and prices: ``tokens_in x input_price +
   tokens_out x output_price`` per 1M tokens (an absent token column counts as 0);
3. ``price_proxy``: else, prices only: each model's blended price stands for every call;
4. ``unknown``: nothing to go on; costs are NaN.

Options
-------
- ``models=a,b,c``: the models you expect, in this order; a row naming any other model is an
  error ("unknown model X at line N"); a listed model without rows is all NaN.
- ``prices=...``: USD per 1M tokens: a JSON file (``{"model": {"input_price": 0.5,
  "output_price": 1.5}}``, ``{"model": 0.5}`` or ``{"model": [0.5, 1.5]}``; LiteLLM's
  ``model_prices_and_context_window.json``, whose ``input_cost_per_token`` /
  ``output_cost_per_token`` are USD per token; RouterArena's ``model_cost.json`` with
  ``input_token_price_per_million`` / ``output_token_price_per_million``; or a list of such
  objects naming their ``model``) or inline ``model=0.5/1.5,other=0.2`` (one number: input =
  output). Entries without a per-token price (LiteLLM's image models) matter only if the data
  has that model, which is then an error; a model the prices do not list gets NaN costs (noted).

Errors
------
Missing required column; non-numeric (or infinite, or negative cost/token) value; empty file
or header without rows; empty prompt_id / prompt / model; the same prompt_id with two
different texts (or tasks / languages); two rows for one (prompt, model[, sample]) with
different score, cost or tokens (identical repeats are tolerated and counted in the notes);
a model not in ``models=``; a non-integer sample index or a cell mixing rows with and
without one.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from codyn.data.importers import register_importer
from codyn.data.importers._common import (
    Prices,
    describe_source,
    expand_paths,
    load_prices,
    missing_scores_note,
    option_list,
    proxy_costs,
    read_csv,
    read_jsonl,
    require_keys,
    to_float,
    to_text,
)
from codyn.data.routing import Model, RoutingData
from codyn.errors import DataError

OPTIONS = {
    "models": "expected models, comma-separated, in this order (others are an error)",
    "prices": "USD per 1M tokens: a JSON file (codyn, LiteLLM or RouterArena layout) or "
    "model=input/output,model=price",
}

REQUIRED = ("prompt_id", "prompt", "model", "score")
OPTIONAL = (
    "task",
    "language",
    "cost",
    "tokens_in",
    "tokens_out",
    "visible_score",
    "latency_s",
    "response",
    "sample",
)
NUMERIC = ("score", "cost", "tokens_in", "tokens_out", "visible_score", "latency_s")
SUFFIXES = {".csv": ",", ".tsv": "\t", ".jsonl": None, ".ndjson": None}


@dataclass
class _Row:
    path: Path
    line: int
    prompt_id: str
    model: str
    sample: int | None
    values: dict[str, float]
    response: str | None


@dataclass
class _Prompt:
    text: str
    task: str | None
    language: str | None
    path: Path
    line: int


@register_importer(
    "long",
    description="your own data: CSV/TSV/JSONL, one row per (prompt, model): score, "
    "optional cost, tokens",
    options=OPTIONS,
)
def read(paths: Sequence[str | Path], **options: Any) -> RoutingData:
    """Read long-format CSV / TSV / JSONL files into one `RoutingData`."""
    expected = option_list(options["models"], "models") if "models" in options else None
    prices = load_prices(options["prices"]) if "prices" in options else Prices()
    files = expand_paths(paths, [f"*{suffix}" for suffix in SUFFIXES], "long-format")
    prompts: dict[str, _Prompt] = {}
    cells: dict[tuple[str, str, int | None], _Row] = {}
    columns: set[str] = set()
    ignored: set[str] = set()
    repeats = 0
    for path in files:
        for line, raw in _records(path, columns, ignored):
            row, prompt = _parse(path, line, raw, expected)
            _merge_prompt(prompts, row.prompt_id, prompt, line, path)
            key = (row.prompt_id, row.model, row.sample)
            if key in cells:
                _check_repeat(cells[key], row)
                repeats += 1
            else:
                cells[key] = row
    return _build(prompts, cells, columns, ignored, repeats, expected, prices, files)


def _records(path: Path, columns: set[str], ignored: set[str]) -> list[tuple[int, dict[str, Any]]]:
    """(line, raw values) per data row, after checking the required columns."""
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise DataError(
            f"unsupported file type {path.suffix or '(none)'}; expected {', '.join(SUFFIXES)}",
            path=path,
        )
    delimiter = SUFFIXES[suffix]
    if delimiter is not None:
        table = read_csv(path, delimiter)
        table.require(REQUIRED)
        present = set(table.header)
        records: list[tuple[int, dict[str, Any]]] = list(table.rows)
    else:
        records = read_jsonl(path)
        if not records:
            raise DataError("file is empty", path=path)
        present = set()
        for line, item in records:
            require_keys(item, REQUIRED, path, row=line, what="required column")
            present.update(item)
    columns.update(c for c in present if c in REQUIRED or c in OPTIONAL)
    ignored.update(c for c in present if c and c not in REQUIRED and c not in OPTIONAL)
    return records


def _parse(
    path: Path, line: int, raw: dict[str, Any], expected: list[str] | None
) -> tuple[_Row, _Prompt]:
    def required(column: str) -> str:
        value = to_text(raw.get(column))
        if not value.strip():
            raise DataError(f"empty {column} at line {line}", path=path, row=line, column=column)
        return value if column == "prompt" else value.strip()

    def optional(column: str) -> str | None:
        return to_text(raw.get(column)).strip() or None

    prompt_id, model = required("prompt_id"), required("model")
    if expected is not None and model not in expected:
        raise DataError(
            f"unknown model {model!r} at line {line}; option models allows: {', '.join(expected)}",
            path=path,
            row=line,
            column="model",
        )
    values = {
        column: to_float(
            raw.get(column),
            path=path,
            column=column,
            row=line,
            minimum=None if column == "score" else 0.0,
        )
        for column in NUMERIC
    }
    sample = None
    if raw.get("sample") not in (None, ""):
        number = to_float(raw["sample"], path=path, column="sample", row=line)
        if math.isnan(number) or not number.is_integer():
            raise DataError(
                f"expected an integer sample index at line {line}, got {raw['sample']!r}",
                path=path,
                row=line,
                column="sample",
            )
        sample = int(number)
    response = raw.get("response")
    if response == "" or (isinstance(response, float) and math.isnan(response)):
        response = None
    row = _Row(
        path, line, prompt_id, model, sample, values, None if response is None else str(response)
    )
    prompt = _Prompt(required("prompt"), optional("task"), optional("language"), path, line)
    return row, prompt


def _at(path: Path, line: int, other: Path) -> str:
    """'line 4' or 'line 4 of other.csv' when the first sighting is in another file."""
    return f"line {line}" if path == other else f"line {line} of {path.name}"


def _merge_prompt(
    prompts: dict[str, _Prompt], prompt_id: str, prompt: _Prompt, line: int, path: Path
) -> None:
    first = prompts.setdefault(prompt_id, prompt)
    if first is prompt:
        return
    if first.text != prompt.text:
        raise DataError(
            f"prompt_id {prompt_id!r} at line {line} has a different prompt text than at "
            f"{_at(first.path, first.line, path)}",
            path=path,
            row=line,
            column="prompt",
        )
    for column in ("task", "language"):
        old, new = getattr(first, column), getattr(prompt, column)
        if old and new and old != new:
            raise DataError(
                f"prompt_id {prompt_id!r} has {column} {new!r} at line {line} but {old!r} at "
                f"{_at(first.path, first.line, path)}",
                path=path,
                row=line,
                column=column,
            )
        if new and not old:
            setattr(first, column, new)


def _check_repeat(first: _Row, row: _Row) -> None:
    """A repeated (prompt, model, sample) row must be identical in its numbers."""
    for column, new in row.values.items():
        old = first.values[column]
        if not (old == new or (math.isnan(old) and math.isnan(new))):
            sample = "" if row.sample is None else f", sample {row.sample}"
            raise DataError(
                f"two rows for prompt {row.prompt_id!r}, model {row.model!r}{sample} with "
                f"different {column}: {old:g} at {_at(first.path, first.line, row.path)} and "
                f"{new:g} at line {row.line}",
                path=row.path,
                row=row.line,
                column=column,
            )


def _build(
    prompts: dict[str, _Prompt],
    cells: dict[tuple[str, str, int | None], _Row],
    columns: set[str],
    ignored: set[str],
    repeats: int,
    expected: list[str] | None,
    prices: Prices,
    files: list[Path],
) -> RoutingData:
    """Matrices from the parsed rows: per-cell means over samples, costs by basis."""
    seen = list(dict.fromkeys(model for _, model, _ in cells))
    names = expected if expected is not None else seen
    models = [prices.model(name) for name in names]
    ids = list(prompts)
    row_of = {pid: i for i, pid in enumerate(ids)}
    col_of = {name: j for j, name in enumerate(names)}
    grouped: dict[tuple[int, int], list[_Row]] = {}
    for (pid, model, _), row in cells.items():
        group = grouped.setdefault((row_of[pid], col_of[model]), [])
        if group and (group[0].sample is None) != (row.sample is None):
            raise DataError(
                f"prompt {pid!r}, model {model!r} mixes rows with and without a sample index "
                f"(line {row.line})",
                path=row.path,
                row=row.line,
                column="sample",
            )
        group.append(row)
    n, m = len(ids), len(names)
    k = max((len(g) for g in grouped.values()), default=1)
    matrices = {column: np.full((n, m), np.nan) for column in NUMERIC}
    samples = np.full((n, m, k), np.nan) if "sample" in columns else None
    visible_samples = np.full((n, m, k), np.nan) if {"sample", "visible_score"} <= columns else None
    responses = np.full((n, m), None, dtype=object) if "response" in columns else None
    for (i, j), group in grouped.items():
        group.sort(key=lambda r: r.sample or 0)
        for column, matrix in matrices.items():
            matrix[i, j] = _nanmean([r.values[column] for r in group])
        if samples is not None:
            samples[i, j, : len(group)] = [r.values["score"] for r in group]
        if visible_samples is not None:
            visible_samples[i, j, : len(group)] = [r.values["visible_score"] for r in group]
        if responses is not None:
            responses[i, j] = group[0].response
    notes: list[str] = []
    cost, cost_basis = _costs(matrices, columns, models, notes)
    if repeats:
        notes.append(f"{repeats} identical repeated row(s) ignored")
    if ignored:
        notes.append(f"ignored column(s) not in the long format: {', '.join(sorted(ignored))}")
    if samples is not None and k > 1:
        notes.append(f"up to {k} samples per (prompt, model): the score is the samples' mean")
    empty = [name for name in names if name not in seen]
    if empty:
        notes.append(f"model(s) {', '.join(empty)} have no rows: all NaN")
    notes.extend(missing_scores_note(matrices["score"]))
    frame = pd.DataFrame(
        {
            "id": ids,
            "text": [prompts[pid].text for pid in ids],
            "task": [prompts[pid].task or "default" for pid in ids],
            "language": [prompts[pid].language for pid in ids],
        }
    )
    return RoutingData(
        prompts=frame,
        models=models,
        score=matrices["score"],
        cost=cost,
        tokens_in=matrices["tokens_in"] if "tokens_in" in columns else None,
        tokens_out=matrices["tokens_out"] if "tokens_out" in columns else None,
        samples=samples,
        responses=responses,
        cost_basis=cost_basis,
        visible_score=matrices["visible_score"] if "visible_score" in columns else None,
        visible_samples=visible_samples,
        latency=matrices["latency_s"] if "latency_s" in columns else None,
        source=describe_source("long", files),
        notes=notes,
    )


def _costs(
    matrices: dict[str, np.ndarray], columns: set[str], models: list[Model], notes: list[str]
) -> tuple[np.ndarray | None, str]:
    """The cost matrix and its basis, by the precedence the module docstring gives."""
    n = matrices["score"].shape[0]
    priced = any(model.blended_price is not None for model in models)
    if "cost" in columns and not np.isnan(matrices["cost"]).all():
        return matrices["cost"], "observed"
    if "cost" in columns:
        notes.append("the cost column holds no values")
    token_columns = [c for c in ("tokens_in", "tokens_out") if c in columns]
    if token_columns and priced:
        cost = np.zeros_like(matrices["score"])
        for j, model in enumerate(models):
            if model.blended_price is None:
                cost[:, j] = np.nan
                continue
            for column, price in (
                ("tokens_in", model.input_price),
                ("tokens_out", model.output_price),
            ):
                if column in token_columns:
                    cost[:, j] += matrices[column][:, j] * (price or 0.0) / 1e6
        unpriced = [model.name for model in models if model.blended_price is None]
        if unpriced:
            notes.append(f"no price for model(s) {', '.join(unpriced)}: their costs are NaN")
        return cost, "tokens_x_price"
    if priced:
        cost, price_notes = proxy_costs(models, n)
        notes.extend(price_notes)
        return cost, "price_proxy"
    return None, "unknown"


def _nanmean(values: list[float]) -> float:
    known = [v for v in values if not math.isnan(v)]
    return sum(known) / len(known) if known else math.nan
