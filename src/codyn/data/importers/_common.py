"""Helpers every importer shares, so each rule (what a number is, what "line N" means, how
duplicates are dropped, how matrices are assembled) is written once and behaves the same.

Locations in error messages: ``row=`` of a `DataError` is always a *line of the file* as an
editor shows it (1-based; in a CSV the header is line 1, so the first data record is line 2;
a record whose quoted cells span several lines is named by the line it starts on). Items of
a JSON list file have no line of their own: they are named ``entry I`` with the 0-based
index that the importers also use in prompt ids (``mbpp.json:12`` is ``entry 12``).
"""

from __future__ import annotations

import ast
import json
import math
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from codyn.data.files import csv_records, read_text
from codyn.data.routing import Model, RoutingData
from codyn.errors import DataError, shown_list

SPLIT_SUFFIXES = (("_train", "train"), ("-train", "train"), ("_test", "test"), ("-test", "test"))
"""File-name endings that carry a shipped split (``mbpp_train.csv``, ``gsm8k-test.json``)."""

CODE_LANGUAGES = {
    "mbpp": "python",
    "humaneval": "python",
    "human_eval": "python",
    "javascript": "javascript",
}
"""Programming language of the coding tasks the public benchmarks ship (all others: None)."""

MISSING_STRINGS = frozenset({"", "nan", "na", "n/a", "null", "none"})
"""Cell texts read as a missing number (NaN)."""

TRUE_STRINGS = frozenset({"true", "yes", "1", "on"})
FALSE_STRINGS = frozenset({"false", "no", "0", "off"})


# -- locations -------------------------------------------------------------------------------


def where(row: int | None = None, entry: int | None = None) -> str:
    """The location phrase appended to messages: ' at line 5' or ' in entry 12 (0-based)'."""
    if row is not None:
        return f" at line {row}"
    if entry is not None:
        return f" in entry {entry} (0-based)"
    return ""


# -- files -----------------------------------------------------------------------------------


def expand_paths(
    paths: Sequence[str | Path] | str | Path, patterns: Sequence[str], what: str
) -> list[Path]:
    """Files named directly plus the files matching ``patterns`` under named directories.

    Order: as given; a directory's files sorted by path. A file named twice is read once.
    """
    if isinstance(paths, (str, Path)):
        paths = [paths]
    if not paths:
        raise DataError(f"no input paths given; pass {what} files or a directory of them")
    files: list[Path] = []
    for raw in paths:
        path = Path(raw).expanduser()
        if not path.exists():
            raise DataError("no such file or directory", path=path)
        if path.is_dir():
            found = sorted({f for pattern in patterns for f in path.rglob(pattern) if f.is_file()})
            if not found:
                raise DataError(
                    f"no {what} files in this directory (looked for {', '.join(patterns)})",
                    path=path,
                )
            files.extend(found)
        else:
            files.append(path)
    unique: list[Path] = []
    seen: set[Path] = set()
    for f in files:
        if f.resolve() not in seen:
            seen.add(f.resolve())
            unique.append(f)
    return unique


@dataclass
class CsvTable:
    """A parsed CSV: the header and each data record with the file line it starts on."""

    path: Path
    header: list[str]
    rows: list[tuple[int, dict[str, str]]]

    def require(self, columns: Iterable[str]) -> None:
        """Raise naming the first required column the header lacks (line 1 is the header)."""
        for column in columns:
            if column not in self.header:
                shown = ", ".join(repr(c) for c in self.header if c) or "nothing"
                raise DataError(
                    f"missing required column at line 1 (the header); the header has: {shown}",
                    path=self.path,
                    row=1,
                    column=column,
                )


def read_csv(path: Path, delimiter: str = ",") -> CsvTable:
    """Read a CSV with the csv module (not pandas) so each record keeps its line number."""
    header: list[str] | None = None
    rows: list[tuple[int, dict[str, str]]] = []
    for start, record in csv_records(read_text(path), path, delimiter):
        if header is None:
            header = [name.strip() for name in record]
            named = [name for name in header if name]
            repeated = sorted({name for name in named if named.count(name) > 1})
            if repeated:
                raise DataError(
                    f"column {repeated[0]!r} appears twice in the header (line {start})",
                    path=path,
                    row=start,
                    column=repeated[0],
                )
            continue
        if len(record) != len(header):
            raise DataError(
                f"has {len(record)} fields at line {start} but the header has {len(header)}",
                path=path,
                row=start,
            )
        rows.append((start, dict(zip(header, record, strict=True))))
    if header is None:
        raise DataError("file is empty", path=path)
    if not rows:
        raise DataError("has a header but no data rows", path=path)
    return CsvTable(path, header, rows)


def read_json(path: Path) -> Any:
    """One JSON document; a syntax error names its line."""
    text = read_text(path)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(
            f"invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}",
            path=path,
            row=exc.lineno,
        ) from None


def read_jsonl(path: Path) -> list[tuple[int, dict[str, Any]]]:
    """JSON Lines: one object per line (blank lines skipped), each with its line number."""
    text = read_text(path)
    records: list[tuple[int, dict[str, Any]]] = []
    # split on "\n" only: str.splitlines would also split inside strings holding U+2028
    for number, line in enumerate(text.split("\n"), start=1):
        line = line.strip()
        if not line:
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(
                f"invalid JSON at line {number}: {exc.msg}", path=path, row=number
            ) from None
        if not isinstance(value, dict):
            raise DataError(
                f"expected a JSON object at line {number}, got {type(value).__name__}",
                path=path,
                row=number,
            )
        records.append((number, value))
    return records


def read_json_list(path: Path, required: Sequence[str]) -> list[dict[str, Any]]:
    """A JSON file holding a list of objects with the ``required`` keys."""
    value = read_json(path)
    if not isinstance(value, list):
        raise DataError(f"expected a JSON list of objects, got {type(value).__name__}", path=path)
    if not value:
        raise DataError("the JSON list is empty", path=path)
    for index, item in enumerate(value):
        if not isinstance(item, dict):
            raise DataError(
                f"expected an object{where(entry=index)}, got {type(item).__name__}", path=path
            )
        require_keys(item, required, path, entry=index)
    return value


def require_keys(
    item: Mapping[str, Any],
    keys: Iterable[str],
    path: Path,
    *,
    row: int | None = None,
    entry: int | None = None,
    what: str = "key",
) -> None:
    """Raise naming the first of ``keys`` a JSON object lacks and the keys it does have (as
    the CSV error lists the header), so a misspelt key is plain to see."""
    for key in keys:
        if key not in item:
            found = shown_list([repr(str(k)) for k in item], limit=12) or "none"
            raise DataError(
                f"missing {what}{where(row, entry)}; the object's keys are: {found}",
                path=path,
                row=row,
                column=key,
            )


def question_items(path: Path) -> Iterator[tuple[int, str, dict[str, float], dict[str, Any]]]:
    """(index, question, scores, extra metadata) of a ``[{question, scores, cluster_id?}]`` file.

    The shape RouterDC and LLMRouter share; ``scores`` may be stringified.
    """
    for index, item in enumerate(read_json_list(path, ["question", "scores"])):
        text = item["question"]
        if not isinstance(text, str) or not text.strip():
            raise DataError(
                f"expected a non-empty question text{where(entry=index)}",
                path=path,
                column="question",
            )
        extra = {"cluster_id": item["cluster_id"]} if "cluster_id" in item else {}
        yield index, text, parse_scores(item["scores"], path=path, entry=index), extra


# -- values ----------------------------------------------------------------------------------


def to_float(
    value: Any,
    *,
    path: Path,
    column: str,
    row: int | None = None,
    entry: int | None = None,
    minimum: float | None = None,
) -> float:
    """A number from a cell: numbers, numeric text, true/false; empty/NaN/null -> NaN."""
    if value is None:
        return math.nan
    if isinstance(value, (bool, int, float, np.integer, np.floating)):
        number = float(value)
    elif isinstance(value, str):
        text = value.strip()
        lower = text.lower()
        if lower in MISSING_STRINGS:
            return math.nan
        if lower == "true":
            number = 1.0
        elif lower == "false":
            number = 0.0
        else:
            try:
                number = float(text)
            except ValueError:
                raise DataError(
                    f"expected a number{where(row, entry)}, got {_shorten(text)!r}",
                    path=path,
                    row=row,
                    column=column,
                ) from None
    else:
        raise DataError(
            f"expected a number{where(row, entry)}, got {type(value).__name__}",
            path=path,
            row=row,
            column=column,
        )
    if math.isinf(number):
        raise DataError(
            f"expected a finite number{where(row, entry)}, got {value!r}",
            path=path,
            row=row,
            column=column,
        )
    if minimum is not None and number < minimum:
        raise DataError(
            f"expected a number >= {minimum:g}{where(row, entry)}, got {number:g}",
            path=path,
            row=row,
            column=column,
        )
    return number


def to_text(value: Any) -> str:
    """A cell as text: None -> '', numbers without a trailing '.0' when integral."""
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _shorten(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def parse_scores(value: Any, *, path: Path, entry: int) -> dict[str, float]:
    """A ``scores`` field: a dict, or a dict stringified as JSON or as a Python literal."""
    parsed = value
    if isinstance(value, str):
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError:
            try:
                parsed = ast.literal_eval(value)
            except (ValueError, SyntaxError, MemoryError, RecursionError):
                parsed = None
    if not isinstance(parsed, dict) or not parsed:
        raise DataError(
            f"expected a non-empty dict of model -> score{where(entry=entry)}",
            path=path,
            column="scores",
        )
    return {
        str(model): to_float(score, path=path, column=f"scores.{model}", entry=entry)
        for model, score in parsed.items()
    }


def unwrap_list_literal(value: str) -> tuple[str, int]:
    """Text stored as a Python list literal (``"['...']"``) -> (text, number of parts).

    Several parts are joined with a blank line; anything that is not a list of strings is
    returned as it stands (one part). ``ast.literal_eval`` never executes code.
    """
    stripped = value.strip()
    if stripped.startswith("[") and stripped.endswith("]"):
        try:
            parsed = ast.literal_eval(stripped)
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            return value, 1
        if isinstance(parsed, list) and parsed and all(isinstance(p, str) for p in parsed):
            return "\n\n".join(parsed), len(parsed)
    return value, 1


def normalise_text(text: str) -> str:
    """Whitespace collapsed: the key used to find duplicate and contaminated prompts."""
    return " ".join(text.split())


def split_from_name(stem: str) -> tuple[str, str | None]:
    """``mbpp_train`` -> ('mbpp', 'train'); ``gsm8k-test`` -> ('gsm8k', 'test'); else no split."""
    for suffix, split in SPLIT_SUFFIXES:
        if stem.endswith(suffix) and len(stem) > len(suffix):
            return stem[: -len(suffix)], split
    return stem, None


def code_language(task: str) -> str | None:
    return CODE_LANGUAGES.get(task.lower())


# -- options ---------------------------------------------------------------------------------


def option_bool(value: Any, name: str) -> bool:
    """An option given as a bool (Python) or as text (CLI ``--option name=true``)."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in TRUE_STRINGS:
        return True
    if text in FALSE_STRINGS:
        return False
    raise DataError(f"option {name} expects true or false, got {value!r}")


def option_list(value: Any, name: str) -> list[str]:
    """A list option: a sequence (Python) or comma-separated text (CLI)."""
    items = value.split(",") if isinstance(value, str) else list(value)
    names = [str(item).strip() for item in items if str(item).strip()]
    if not names:
        raise DataError(f"option {name} is empty")
    return names


PRICE_KEYS = (
    ("input_price", "output_price", 1.0, "USD per 1M tokens"),
    ("input_token_price_per_million", "output_token_price_per_million", 1.0, "USD per 1M tokens"),
    ("input_cost_per_token", "output_cost_per_token", 1e6, "USD per token"),
)
"""(input key, output key, factor to USD per 1M tokens, unit) of a price entry: codyn's and
LLMRouter's ``default_llm.json``; RouterArena's ``model_cost.json``; LiteLLM's
``model_prices_and_context_window.json``. The first pair an entry has is used."""

MODEL_NAME_KEYS = ("model", "model_name", "name")
"""Keys that name the model in a price file that is a JSON list of objects."""

LITELLM_SPEC = "sample_spec"
"""The entry of LiteLLM's price file that documents its fields: not a model."""


@dataclass
class Prices:
    """Per-model prices (USD per 1M tokens) from option ``prices``.

    ``unpriced`` keeps the entries a price file lists without any per-token price (LiteLLM's
    image or audio models, say), with the reason and the file: they fail an import only when
    the data has that model, so a catalogue of every model works as a price file.
    """

    priced: dict[str, Model] = field(default_factory=dict)
    unpriced: dict[str, tuple[str, Path | None]] = field(default_factory=dict)

    def update(self, other: Prices) -> None:
        """Entries of ``other`` replace this one's (a given price file overrides defaults)."""
        for name in other.priced:
            self.unpriced.pop(name, None)
        for name in other.unpriced:
            self.priced.pop(name, None)
        self.priced.update(other.priced)
        self.unpriced.update(other.unpriced)

    def model(self, name: str) -> Model:
        """The model with its prices; without prices when none are given (its costs are then
        NaN, and the importer's notes say so); an entry listed without a price is an error."""
        if name in self.unpriced:
            reason, source = self.unpriced[name]
            raise DataError(
                f"the price file has no per-token price for model {name!r} ({reason})",
                path=source,
                column=name,
            )
        return self.priced.get(name, Model(name))


def load_prices(value: Any, name: str = "prices") -> Prices:
    """Per-model prices in USD per 1M tokens, from any of:

    - a mapping ``{model: price}``, ``{model: [input, output]}`` or ``{model: {keys}}`` where
      the keys are one pair of `PRICE_KEYS`: ``input_price``/``output_price`` (codyn,
      LLMRouter's ``default_llm.json``), RouterArena's ``input_token_price_per_million``/
      ``output_token_price_per_million`` or LiteLLM's ``input_cost_per_token``/
      ``output_cost_per_token`` (USD per token; its ``sample_spec`` entry is skipped); other
      keys are ignored, so those projects' files work as they are;
    - a list of such objects, each naming its model with a key of `MODEL_NAME_KEYS`;
    - the path of a JSON file holding either;
    - inline text ``model=price,model=input/output`` (one number: input = output).
    """
    if isinstance(value, Mapping):
        return _prices_from_mapping(value, source=None)
    if isinstance(value, list):
        return _prices_from_list(value, source=None)
    text = str(value).strip()
    path = Path(text).expanduser()
    if text.lower().endswith(".json") or path.is_file():
        if not path.exists():
            raise DataError(f"price file for option {name} not found", path=path)
        content = read_json(path)
        if isinstance(content, dict):
            prices = _prices_from_mapping(content, source=path)
        elif isinstance(content, list):
            prices = _prices_from_list(content, source=path)
        else:
            raise DataError(
                "expected a JSON object of model -> prices or a list of objects naming "
                f"their model, got {type(content).__name__}",
                path=path,
            )
        if not prices.priced and not prices.unpriced:
            raise DataError("the price file lists no models", path=path)
        return prices
    priced: dict[str, Model] = {}
    for item in text.split(","):
        if not item.strip():
            continue
        model, sep, spec = item.rpartition("=")
        if not sep or not model.strip():
            raise DataError(
                f"option {name}: expected model=price or model=input/output, got {item!r}"
            )
        parts = spec.split("/")
        if len(parts) > 2:
            raise DataError(f"option {name}: expected at most input/output for {model!r}")
        numbers = [_price(p, model.strip(), None) for p in parts]
        priced[model.strip()] = Model(model.strip(), numbers[0], numbers[-1])
    if not priced:
        raise DataError(f"option {name} is empty")
    return Prices(priced)


def _prices_from_mapping(mapping: Mapping[str, Any], source: Path | None) -> Prices:
    prices = Prices()
    for model, spec in mapping.items():
        if model != LITELLM_SPEC:
            _add_price(prices, str(model), spec, source)
    return prices


def _prices_from_list(items: Sequence[Any], source: Path | None) -> Prices:
    prices = Prices()
    for index, item in enumerate(items):
        if not isinstance(item, Mapping):
            raise DataError(
                f"expected an object naming a model{where(entry=index)}, got {type(item).__name__}",
                path=source,
            )
        key = next((k for k in MODEL_NAME_KEYS if isinstance(item.get(k), str)), None)
        model = "" if key is None else item[key].strip()
        if not model:
            raise DataError(
                f"no model name{where(entry=index)}: expected a key {', '.join(MODEL_NAME_KEYS)}",
                path=source,
            )
        if model in prices.priced or model in prices.unpriced:
            raise DataError(f"model {model!r} is listed twice{where(entry=index)}", path=source)
        _add_price(prices, model, item, source)
    return prices


def _add_price(prices: Prices, model: str, spec: Any, source: Path | None) -> None:
    """One entry: a number, an [input, output] pair or an object with a pair of `PRICE_KEYS`."""
    if isinstance(spec, (list, tuple)) and len(spec) == 2:
        low, high = (_price(v, model, source) for v in spec)
        prices.priced[model] = Model(model, low, high)
    elif not isinstance(spec, Mapping):
        number = _price(spec, model, source)
        prices.priced[model] = Model(model, number, number)
    else:
        for low_key, high_key, factor, unit in PRICE_KEYS:
            low, high = spec.get(low_key), spec.get(high_key)
            if low is None and high is None:
                continue
            low, high = (high if low is None else low), (low if high is None else high)
            prices.priced[model] = Model(
                model,
                _per_million(_price(low, model, source, low_key, unit) * factor),
                _per_million(_price(high, model, source, high_key, unit) * factor),
            )
            return
        keys = " or ".join(f"{low}/{high}" for low, high, _, _ in PRICE_KEYS)
        mode = f"; its mode is {spec['mode']!r}" if isinstance(spec.get("mode"), str) else ""
        prices.unpriced[model] = (f"it has none of {keys}{mode}", source)


def _per_million(number: float) -> float:
    """Drop the binary noise of a per-token price scaled up: 8e-07 * 1e6 -> 0.8, not 0.79...9."""
    return float(f"{number:.12g}")


def _price(
    value: Any,
    model: str,
    source: Path | None,
    key: str | None = None,
    unit: str = "USD per 1M tokens",
) -> float:
    what = f"price {key}" if key else "price"
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise DataError(
            f"{what} for model {model!r} must be a number ({unit}), got {value!r}",
            path=source,
            column=model,
        ) from None
    if not math.isfinite(number) or number < 0:
        raise DataError(
            f"{what} for model {model!r} must be a finite number >= 0, got {value!r}",
            path=source,
            column=model,
        )
    return number


# -- records, de-duplication, assembly -------------------------------------------------------


@dataclass
class PromptRecord:
    """One prompt as an importer read it, before the matrices are built."""

    id: str
    text: str
    task: str
    scores: dict[str, float]
    split: str | None = None
    costs: dict[str, float] | None = None
    responses: dict[str, str | None] | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    language: str | None = None


def ordered_union(groups: Iterable[Iterable[str]]) -> list[str]:
    """Names in order of first appearance."""
    seen: dict[str, None] = {}
    for group in groups:
        for name in group:
            seen.setdefault(name, None)
    return list(seen)


def by_task(counts: Counter[str]) -> str:
    """' (gpqa 50, human_eval 50, mbpp 19)': a per-task breakdown for notes."""
    shown = [f"{task} {n}" for task, n in sorted(counts.items())]
    if len(shown) > 8:
        shown = [*shown[:8], f"... {len(shown) - 8} more tasks"]
    return f" ({', '.join(shown)})"


def dedupe(
    records: list[PromptRecord], *, within_task: bool = False
) -> tuple[list[PromptRecord], list[str]]:
    """Drop prompts whose text (whitespace-normalised) repeats another prompt's.

    A text present in a test split keeps its (first) test copy and loses its train copies,
    so nothing a router is trained on leaks into its evaluation; otherwise the first copy
    is kept. ``within_task`` compares prompts of the same task only. Returns the kept
    records (order preserved) and the notes saying what was dropped.
    """
    groups: dict[tuple[str, str], list[int]] = {}
    for i, record in enumerate(records):
        key = (record.task if within_task else "", normalise_text(record.text))
        groups.setdefault(key, []).append(i)
    drop: set[int] = set()
    leaked: Counter[str] = Counter()
    repeated: Counter[str] = Counter()
    conflicting = {"leak": 0, "repeat": 0}
    for members in groups.values():
        if len(members) == 1:
            continue
        tests = [i for i in members if records[i].split == "test"]
        keep = tests[0] if tests else members[0]
        kept = records[keep]
        for i in members:
            if i == keep:
                continue
            drop.add(i)
            kind = "leak" if kept.split == "test" and records[i].split != "test" else "repeat"
            (leaked if kind == "leak" else repeated)[records[i].task] += 1
            if not _same_scores(records[i].scores, kept.scores):
                conflicting[kind] += 1
    notes = []
    if leaked:
        n = sum(leaked.values())
        notes.append(
            f"dropped {n} train prompt(s) whose text also appears in test (test copy kept)"
            f"{by_task(leaked)}; {conflicting['leak']} of them had different scores"
        )
    if repeated:
        n = sum(repeated.values())
        scope = " within the same task" if within_task else ""
        notes.append(
            f"dropped {n} prompt(s) repeating an earlier prompt's text{scope} (first copy kept)"
            f"{by_task(repeated)}; {conflicting['repeat']} of them had different scores"
        )
    return [r for i, r in enumerate(records) if i not in drop], notes


def _same_scores(a: dict[str, float], b: dict[str, float]) -> bool:
    if a.keys() != b.keys():
        return False
    return all((math.isnan(a[k]) and math.isnan(b[k])) or a[k] == b[k] for k in a)


def assemble(
    records: Sequence[PromptRecord],
    models: Sequence[Model],
    *,
    cost_basis: str,
    source: str,
    notes: Sequence[str] = (),
) -> RoutingData:
    """Matrices from records: scores (missing -> NaN), costs by basis, responses if any.

    ``observed`` costs come from each record's ``costs``; ``price_proxy`` fills each model's
    column with its blended price per 1M tokens; ``unknown`` leaves costs NaN.
    """
    if not records:
        raise DataError(f"no prompts left to import from {source}")
    names = [m.name for m in models]
    n, m = len(records), len(names)
    score = np.full((n, m), np.nan)
    cost = np.full((n, m), np.nan)
    has_responses = any(r.responses for r in records)
    responses = np.full((n, m), None, dtype=object) if has_responses else None
    for i, record in enumerate(records):
        for j, name in enumerate(names):
            score[i, j] = record.scores.get(name, math.nan)
            if cost_basis == "observed" and record.costs:
                cost[i, j] = record.costs.get(name, math.nan)
            if responses is not None and record.responses:
                responses[i, j] = record.responses.get(name)
    all_notes = list(notes)
    if cost_basis == "price_proxy":
        cost, price_notes = proxy_costs(models, n)
        all_notes.extend(price_notes)
    all_notes.extend(missing_scores_note(score))
    prompts = pd.DataFrame(
        {
            "id": [r.id for r in records],
            "text": [r.text for r in records],
            "task": [r.task for r in records],
            "language": [r.language for r in records],
            "metadata": [
                {**r.metadata, **({"split": r.split} if r.split else {})} for r in records
            ],
        }
    )
    return RoutingData(
        prompts=prompts,
        models=list(models),
        score=score,
        cost=None if cost_basis == "unknown" else cost,
        responses=responses,
        cost_basis=cost_basis,
        source=source,
        notes=all_notes,
    )


def proxy_costs(models: Sequence[Model], n_prompts: int) -> tuple[np.ndarray, list[str]]:
    """Each model's blended price per 1M tokens as its per-call cost (NaN when unpriced)."""
    cost = np.full((n_prompts, len(models)), np.nan)
    for j, model in enumerate(models):
        if model.blended_price is not None:
            cost[:, j] = model.blended_price
    unpriced = [model.name for model in models if model.blended_price is None]
    notes = (
        [f"no price for model(s) {', '.join(unpriced)}: their costs are NaN"] if unpriced else []
    )
    return cost, notes


def missing_scores_note(score: np.ndarray) -> list[str]:
    missing = int(np.isnan(score).sum())
    return [f"{missing} of {score.size} score cells are missing (NaN)"] if missing else []


def describe_source(fmt: str, files: Sequence[Path]) -> str:
    """``routerbench: a.csv, b.csv`` (at most five names)."""
    names = [f.name for f in files]
    shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
    return f"{fmt}: {shown}"
