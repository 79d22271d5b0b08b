"""RouterBench CSVs (as redistributed in RouterDC's ``datasets/routerbench_zs/``).

Input: one or more ``<task>_<split>.csv`` files (``mbpp_train.csv``, ``mbpp_test.csv``, ...)
or a directory of them. Columns:

- ``sample_id`` -> prompt id (e.g. ``mbpp.dev.92``, the id the anchor splits use);
- ``prompt`` -> text. RouterBench stores it as a Python list literal (``"['Write a ...']"``);
  it is unwrapped with ``ast.literal_eval`` (never executed) and kept raw if that fails;
- ``eval_name`` -> task (the file name without its split suffix when empty);
- one 0/1 score column per model (every column that is not one of the above, not
  ``oracle_model_to_route_to`` / an unnamed index, and holds no ``|``); model order = column
  order of the first file;
- ``<model>|total_cost`` -> observed USD for that call (``cost_basis="observed"``);
- ``<model>|model_response`` -> kept as the response (unwrapped like the prompt).

Metadata: ``split`` (``train``/``test`` from the file name) and ``file``.

Cleaning, each reported in ``notes``:

- a ``sample_id`` that occurs on several rows (RouterBench's ARC-Challenge has 14): the rows
  whose prompt is a multi-part list (a batched request only ``gpt-3.5-turbo-1106`` was scored
  on) are dropped and the single-prompt row is kept; any other repeat is an error;
- a prompt whose text (whitespace-normalised) is also in a test file is dropped from train
  (MBPP: 2), other repeats keep their first copy. Option ``keep_duplicates=true`` keeps all.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from codyn.data.importers import register_importer
from codyn.data.importers._common import (
    PromptRecord,
    assemble,
    code_language,
    dedupe,
    describe_source,
    expand_paths,
    option_bool,
    ordered_union,
    read_csv,
    split_from_name,
    to_float,
    unwrap_list_literal,
)
from codyn.data.routing import Model, RoutingData
from codyn.errors import DataError

OPTIONS = {"keep_duplicates": "true: keep train prompts repeating a test prompt's text"}

NON_MODEL_COLUMNS = frozenset(
    {"", "Unnamed: 0", "sample_id", "prompt", "eval_name", "oracle_model_to_route_to"}
)
COST_SUFFIX = "|total_cost"
RESPONSE_SUFFIX = "|model_response"


@register_importer(
    "routerbench",
    description="RouterBench CSVs (sample_id, prompt, eval_name, 0/1 per model, USD costs)",
    options=OPTIONS,
)
def read(paths: Sequence[str | Path], **options: Any) -> RoutingData:
    """Read RouterBench CSV files (or a directory of them) into one `RoutingData`."""
    keep_duplicates = option_bool(options.get("keep_duplicates", False), "keep_duplicates")
    files = expand_paths(paths, ["*.csv"], "RouterBench CSV")
    records: list[PromptRecord] = []
    parts: list[int] = []
    origins: list[tuple[Path, int]] = []
    model_groups: list[list[str]] = []
    any_costs = False
    for path in files:
        table = read_csv(path)
        table.require(["sample_id", "prompt", "eval_name"])
        models = [c for c in table.header if c not in NON_MODEL_COLUMNS and "|" not in c]
        if not models:
            raise DataError(
                "no model score columns (expected one 0/1 column per model besides "
                "sample_id, prompt, eval_name)",
                path=path,
            )
        model_groups.append(models)
        cost_models = [m for m in models if m + COST_SUFFIX in table.header]
        response_models = [m for m in models if m + RESPONSE_SUFFIX in table.header]
        any_costs = any_costs or bool(cost_models)
        base, split = split_from_name(path.stem)
        for line, row in table.rows:
            sample_id = row["sample_id"].strip()
            if not sample_id:
                raise DataError(
                    f"empty sample_id at line {line}", path=path, row=line, column="sample_id"
                )
            text, n_parts = unwrap_list_literal(row["prompt"])
            task = row["eval_name"].strip() or base
            records.append(
                PromptRecord(
                    id=sample_id,
                    text=text,
                    task=task,
                    split=split,
                    scores={m: to_float(row[m], path=path, column=m, row=line) for m in models},
                    costs={
                        m: to_float(
                            row[m + COST_SUFFIX],
                            path=path,
                            column=m + COST_SUFFIX,
                            row=line,
                            minimum=0.0,
                        )
                        for m in cost_models
                    },
                    responses={
                        m: unwrap_list_literal(row[m + RESPONSE_SUFFIX])[0] or None
                        for m in response_models
                    },
                    metadata={"file": path.name},
                    language=code_language(task),
                )
            )
            parts.append(n_parts)
            origins.append((path, line))
    notes: list[str] = []
    records, dropped = _drop_batched_repeats(records, parts, origins)
    if dropped:
        notes.append(
            f"dropped {dropped} row(s) whose sample_id repeats another row and whose prompt is "
            "a multi-part list (a batched request scored for fewer models); the single-prompt "
            "row was kept"
        )
    if not keep_duplicates:
        records, dedupe_notes = dedupe(records)
        notes.extend(dedupe_notes)
    names = ordered_union(model_groups)
    for models in model_groups:
        if set(models) != set(names):
            notes.append("not every file scores every model: absent models are NaN there")
            break
    return assemble(
        records,
        [Model(name) for name in names],
        cost_basis="observed" if any_costs else "unknown",
        source=describe_source("routerbench", files),
        notes=notes,
    )


def _drop_batched_repeats(
    records: list[PromptRecord], parts: list[int], origins: list[tuple[Path, int]]
) -> tuple[list[PromptRecord], int]:
    """Resolve repeated sample_ids: drop the multi-part-prompt rows, refuse any other repeat."""
    by_id: dict[str, list[int]] = {}
    for i, record in enumerate(records):
        by_id.setdefault(record.id, []).append(i)
    drop: set[int] = set()
    for members in by_id.values():
        if len(members) == 1:
            continue
        single = [i for i in members if parts[i] == 1]
        if single:
            drop.update(i for i in members if parts[i] > 1)
        kept = single or members
        if len(kept) > 1:
            first_path, first_line = origins[kept[0]]
            path, line = origins[kept[1]]
            raise DataError(
                f"sample_id {records[kept[1]].id!r} at line {line} repeats the one at line "
                f"{first_line} of {first_path.name}; sample ids must be unique",
                path=path,
                row=line,
                column="sample_id",
            )
    return [r for i, r in enumerate(records) if i not in drop], len(drop)
