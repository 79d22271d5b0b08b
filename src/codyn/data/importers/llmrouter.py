"""LLMRouter (ulab-uiuc/LLMRouter) ``data/``: the DC-router train/test files with tasks and prices.

Input: the ``llmrouter`` folder, its ``data`` folder, ``dcrouter_preprocessed/`` or its
``train.json`` / ``test.json``. Files used, relative to ``data/``:

- ``dcrouter_preprocessed/{train,test}.json``: a list of ``{question, scores, cluster_id?}``;
  ``scores`` maps model -> score and is a dict or a stringified dict (JSON or Python
  literal). Id ``dcrouter_preprocessed/<file>:<0-based index>`` (the anchor splits' ids);
  metadata ``split`` (the file name), ``cluster_id`` when present.
- ``example_data/query_data/default_query_*.jsonl``: ``{query, task_name, ...}``; tasks are
  joined by query text. A query carrying several task labels (6 in the public data, all
  ``mmlu`` plus ``openbook_qa``/``arc_challenge``) takes the first label of its own split's
  file, in file order; a prompt with no label gets task ``unknown``. Option ``queries=``
  names other query files (comma-separated).
- ``example_data/llm_candidates/default_llm.json``: per-model ``input_price`` /
  ``output_price`` (USD per 1M tokens). Per-query token counts are absent, so each model's
  blended price fills its cost column as a per-call proxy (``cost_basis="price_proxy"``).
  Option ``prices=`` names another price file or inline prices.

Model order: order of first appearance in the score dicts. Cleaning (reported in notes):
train prompts whose text (whitespace-normalised) is also a test prompt are dropped from
train, test is kept intact (119 in the public data); ``keep_duplicates=true`` keeps them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from codyn.data.importers import register_importer
from codyn.data.importers._common import (
    Prices,
    PromptRecord,
    assemble,
    code_language,
    dedupe,
    describe_source,
    expand_paths,
    load_prices,
    normalise_text,
    option_bool,
    option_list,
    ordered_union,
    question_items,
    read_jsonl,
    require_keys,
    split_from_name,
)
from codyn.data.routing import RoutingData
from codyn.errors import DataError

OPTIONS = {
    "keep_duplicates": "true: keep train prompts whose text is also a test prompt",
    "queries": "query_data JSONL file(s) giving each query's task_name (comma-separated)",
    "prices": "model prices per 1M tokens: a JSON file (codyn, LiteLLM or RouterArena "
    "layout) or model=price,... "
    "(default: example_data/llm_candidates/default_llm.json)",
}

DATA_FOLDER = "dcrouter_preprocessed"
QUERY_GLOB = "example_data/query_data/default_query_*.jsonl"
PRICE_FILE = "example_data/llm_candidates/default_llm.json"


@register_importer(
    "llmrouter",
    description="LLMRouter dcrouter_preprocessed train/test JSON with query tasks and prices",
    options=OPTIONS,
)
def read(paths: Sequence[str | Path], **options: Any) -> RoutingData:
    """Read LLMRouter's DC-router files into one `RoutingData` with tasks and price proxies."""
    keep_duplicates = option_bool(options.get("keep_duplicates", False), "keep_duplicates")
    files = expand_paths(paths, [f"{DATA_FOLDER}/*.json"], "LLMRouter dcrouter_preprocessed")
    files.sort(key=lambda f: f.stem != "train")  # train first: its model order is the anchors'
    roots = list(dict.fromkeys(f.parent.parent for f in files))
    query_files = (
        [Path(p) for p in option_list(options["queries"], "queries")]
        if "queries" in options
        else sorted({q for root in roots for q in root.glob(QUERY_GLOB)})
    )
    labels = _task_labels(query_files)
    notes: list[str] = []
    if "prices" in options:
        prices = load_prices(options["prices"])
    else:
        price_files = [root / PRICE_FILE for root in roots if (root / PRICE_FILE).exists()]
        prices = Prices()
        for price_file in price_files:
            prices.update(load_prices(price_file))
        if not price_files:
            notes.append(f"no {PRICE_FILE} found: no prices, costs are NaN")
    records: list[PromptRecord] = []
    model_groups: list[list[str]] = []
    unlabelled = 0
    multi_labelled: Counter[tuple[str, ...]] = Counter()
    for path in files:
        _, split = split_from_name(path.stem)
        split = split or path.stem
        for index, text, scores, extra in question_items(path):
            model_groups.append(list(scores))
            found = labels.get(normalise_text(text), [])
            own = [task for file_split, task in found if file_split == split]
            choices = list(dict.fromkeys(own + [task for _, task in found]))
            if len(choices) > 1:
                multi_labelled[tuple(choices)] += 1
            if not choices:
                unlabelled += 1
            task = choices[0] if choices else "unknown"
            records.append(
                PromptRecord(
                    id=f"{path.parent.name}/{path.name}:{index}",
                    text=text,
                    task=task,
                    split=split,
                    scores=scores,
                    metadata={"file": f"{path.parent.name}/{path.name}", **extra},
                    language=code_language(task),
                )
            )
    if multi_labelled:
        shown = ", ".join(f"{'+'.join(k)} x{n}" for k, n in sorted(multi_labelled.items()))
        notes.append(
            f"{multi_labelled.total()} prompt(s) carry several task labels in query_data "
            f"({shown}); the first label of the prompt's own split file was kept"
        )
    if unlabelled:
        notes.append(f"{unlabelled} prompt(s) have no task_name in query_data: task 'unknown'")
    if not keep_duplicates:
        records, dedupe_notes = dedupe(records)
        notes.extend(dedupe_notes)
    models = [prices.model(name) for name in ordered_union(model_groups)]
    notes.append(
        "no per-query token counts in LLMRouter's snapshot: cost per call = the model's "
        "blended price per 1M tokens (equal tokens assumed across models)"
    )
    return assemble(
        records,
        models,
        cost_basis="price_proxy",
        source=describe_source("llmrouter", files),
        notes=notes,
    )


def _task_labels(query_files: Sequence[Path]) -> dict[str, list[tuple[str, str]]]:
    """Normalised query text -> [(split, task_name), ...] in file order."""
    labels: dict[str, list[tuple[str, str]]] = {}
    for path in query_files:
        if not path.exists():
            raise DataError("query file not found", path=path)
        split = split_from_name(path.stem)[1] or path.stem
        for line, item in read_jsonl(path):
            require_keys(item, ("query", "task_name"), path, row=line)
            labels.setdefault(normalise_text(str(item["query"])), []).append(
                (split, str(item["task_name"]))
            )
    return labels
