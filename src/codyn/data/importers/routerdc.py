"""RouterDC ``datasets/split2_model7/`` files: 7 open ~7B models, soft scores, no costs.

Input: ``*.json`` files or a directory of them. Each file is a list of
``{question, scores: {model: float}, cluster_id?}``; ``scores`` may be stringified (JSON or
Python literal).

- Task: the file name without a split suffix (``mbpp.json`` -> ``mbpp``,
  ``humaneval_train.json`` -> ``humaneval``, ``gsm8k-test.json`` -> ``gsm8k``); metadata
  ``split`` is set when the name carries ``_train/_test/-train/-test``.
- Id: ``<file name>:<0-based index>`` (the anchor splits' ids, e.g. ``mbpp.json:12``).
- Score: a soft label. For generation tasks (MBPP, HumanEval, GSM8K, ...) it is the
  fraction of 10 sampled answers that were correct; the multiple-choice files (MMLU, CMMLU,
  C-Eval, ARC) hold continuous values; MATH_prealgebra is 0/1.
- Costs: none in the data (``cost_basis="unknown"``, costs NaN).

Cleaning (reported in notes; ``keep_duplicates=true`` keeps everything): within one task,
a prompt text (whitespace-normalised) seen in a test file is dropped from train, and other
repeats keep their first copy (``mbpp.json`` has 1).
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
    question_items,
    split_from_name,
)
from codyn.data.routing import Model, RoutingData

OPTIONS = {"keep_duplicates": "true: keep prompts repeating another prompt of the same task"}


@register_importer(
    "routerdc",
    description="RouterDC split2_model7 JSON lists of {question, scores} (soft labels)",
    options=OPTIONS,
)
def read(paths: Sequence[str | Path], **options: Any) -> RoutingData:
    """Read RouterDC JSON files (or a directory of them) into one `RoutingData`."""
    keep_duplicates = option_bool(options.get("keep_duplicates", False), "keep_duplicates")
    files = expand_paths(paths, ["*.json"], "RouterDC JSON")
    records: list[PromptRecord] = []
    model_groups: list[list[str]] = []
    for path in files:
        task, split = split_from_name(path.stem)
        for index, text, scores, extra in question_items(path):
            model_groups.append(list(scores))
            records.append(
                PromptRecord(
                    id=f"{path.name}:{index}",
                    text=text,
                    task=task,
                    split=split,
                    scores=scores,
                    metadata={"file": path.name, **extra},
                    language=code_language(task),
                )
            )
    notes = [
        "scores are RouterDC soft labels: the fraction of 10 sampled answers that were correct "
        "(continuous values for multiple-choice files); no costs in the data"
    ]
    if not keep_duplicates:
        records, dedupe_notes = dedupe(records, within_task=True)
        notes.extend(dedupe_notes)
    return assemble(
        records,
        [Model(name) for name in ordered_union(model_groups)],
        cost_basis="unknown",
        source=describe_source("routerdc", files),
        notes=notes,
    )
