"""RouteLLM evaluation data (``routellm/evals/`` of lm-sys/RouteLLM): GPT-4 vs Mixtral.

Input: the ``routellm`` folder, any of its sub-folders, or single files:

- ``mmlu/mmlu_<subject>.csv``: ``prompt`` plus one True/False column per model.
  Task ``mmlu_<subject>`` (the file name); id ``mmlu/mmlu_<subject>.csv:<0-based row>``.
- ``gsm8k/gsm8k_responses.csv`` (any ``<name>_responses.csv``): the same layout plus
  ``<model>_response`` columns, kept as responses. Task ``gsm8k``; id
  ``gsm8k/gsm8k_responses.csv:<0-based row>`` (the anchor splits' ids).
- ``mt_bench/question.jsonl`` with ``judgements.jsonl`` beside it (naming either file is
  enough): one prompt per question, text = the first turn, task ``mt_bench_<category>``,
  id ``mt_bench:<question_id>``. Score = mean of the GPT-4 judge's 1-10 scores over the
  question's judgements (one per turn: both turns count) divided by 10, so 0.1-1.0; a judge
  score of -1 (unparsed) is ignored.

Contamination: each folder's ``contaminated_prompts.jsonl`` lists prompts that overlap
RouteLLM's router training data; those whose ``eval_prompt`` equals a prompt's text
(whitespace-normalised; for MT-Bench the first turn) are dropped unless
``keep_contaminated=true``. Repeated prompt texts keep their first copy (MMLU has 105)
unless ``keep_duplicates=true``.

Costs: RouteLLM's blended prices, GPT-4-1106 $24.7 and Mixtral-8x7B $0.24 per 1M tokens,
become each model's input and output price and fill the cost matrix as per-call proxies
(``cost_basis="price_proxy"``). ``prices=`` overrides them (see `load_prices`).
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
    by_task,
    dedupe,
    describe_source,
    expand_paths,
    load_prices,
    normalise_text,
    option_bool,
    ordered_union,
    read_csv,
    read_jsonl,
    require_keys,
    to_float,
    where,
)
from codyn.data.routing import Model, RoutingData
from codyn.errors import DataError

OPTIONS = {
    "keep_contaminated": "true: keep prompts listed in contaminated_prompts.jsonl",
    "keep_duplicates": "true: keep prompts repeating an earlier prompt's text",
    "prices": "model prices per 1M tokens: a JSON file (codyn, LiteLLM or RouterArena "
    "layout) or model=price,... "
    "(default: RouteLLM's GPT-4 24.7, Mixtral 0.24)",
}

ROUTELLM_PRICES = {
    "gpt-4-1106-preview": 24.7,
    "mistralai/Mixtral-8x7B-Instruct-v0.1": 0.24,
}
"""RouteLLM paper, appendix D: blended USD per 1M tokens."""

CONTAMINATION_FILE = "contaminated_prompts.jsonl"
RESPONSE_SUFFIX = "_response"
MT_BENCH_FILES = ("question.jsonl", "judgements.jsonl")


@register_importer(
    "routellm",
    description="RouteLLM evals: MMLU / GSM8K CSVs and MT-Bench judgements, GPT-4 vs Mixtral",
    options=OPTIONS,
)
def read(paths: Sequence[str | Path], **options: Any) -> RoutingData:
    """Read RouteLLM MMLU / GSM8K / MT-Bench files into one `RoutingData`."""
    keep_contaminated = option_bool(options.get("keep_contaminated", False), "keep_contaminated")
    keep_duplicates = option_bool(options.get("keep_duplicates", False), "keep_duplicates")
    prices = Prices({name: Model(name, p, p) for name, p in ROUTELLM_PRICES.items()})
    if "prices" in options:
        prices.update(load_prices(options["prices"]))
    files = expand_paths(paths, ["mmlu_*.csv", "*_responses.csv", "question.jsonl"], "RouteLLM")
    records: list[PromptRecord] = []
    model_groups: list[list[str]] = []
    mt_bench_done: set[Path] = set()
    contamination: dict[Path, set[str]] = {}
    contaminated: Counter[str] = Counter()
    for path in files:
        if path.suffix == ".csv":
            file_records, models = _read_csv(path)
        elif path.name in MT_BENCH_FILES:
            folder = path.resolve().parent
            if folder in mt_bench_done:
                continue
            mt_bench_done.add(folder)
            file_records, models = _read_mt_bench(path.parent)
        else:
            raise DataError(
                "not a RouteLLM file: expected mmlu_<subject>.csv, <name>_responses.csv or "
                "mt_bench question.jsonl / judgements.jsonl",
                path=path,
            )
        if not keep_contaminated:
            listed = _contamination_list(path.parent, contamination)
            contaminated.update(r.task for r in file_records if normalise_text(r.text) in listed)
            file_records = [r for r in file_records if normalise_text(r.text) not in listed]
        records.extend(file_records)
        model_groups.append(models)
    notes: list[str] = []
    if contamination:
        lists = ", ".join(f"{folder.name}/{CONTAMINATION_FILE}" for folder in contamination)
        notes.append(
            f"dropped {contaminated.total()} prompt(s) listed in {lists} (overlap with RouteLLM's "
            f"router training data){by_task(contaminated) if contaminated else ''}; "
            "keep_contaminated=true keeps them"
        )
    if not keep_duplicates:
        records, dedupe_notes = dedupe(records)
        notes.extend(dedupe_notes)
    if any(r.task.startswith("mt_bench") for r in records):
        notes.append(
            "mt_bench scores are the GPT-4 judge's 1-10 scores averaged over both turns and "
            "divided by 10 (0.1-1.0), not pass/fail"
        )
    names = ordered_union(model_groups)
    models = [prices.model(name) for name in names]
    priced = [f"{m.name} {m.blended_price:g}" for m in models if m.blended_price is not None]
    if priced:
        notes.append(f"cost per call = blended USD price per 1M tokens: {', '.join(priced)}")
    return assemble(
        records,
        models,
        cost_basis="price_proxy",
        source=describe_source("routellm", files),
        notes=notes,
    )


def _read_csv(path: Path) -> tuple[list[PromptRecord], list[str]]:
    """An MMLU subject file or a ``*_responses.csv`` file: prompt + one bool column per model."""
    table = read_csv(path)
    table.require(["prompt"])
    models = [c for c in table.header if c and c != "prompt" and not c.endswith(RESPONSE_SUFFIX)]
    if not models:
        raise DataError(
            "no model columns besides 'prompt' (expected True/False per model)", path=path
        )
    response_models = [m for m in models if m + RESPONSE_SUFFIX in table.header]
    stem = path.stem
    task = stem[: -len("_responses")] if stem.endswith("_responses") else stem
    records = []
    for index, (line, row) in enumerate(table.rows):
        text = row["prompt"]
        if not text.strip():
            raise DataError(f"empty prompt at line {line}", path=path, row=line, column="prompt")
        records.append(
            PromptRecord(
                id=f"{path.parent.name}/{path.name}:{index}",
                text=text,
                task=task,
                scores={m: to_float(row[m], path=path, column=m, row=line) for m in models},
                responses={m: row[m + RESPONSE_SUFFIX] or None for m in response_models},
                metadata={"file": f"{path.parent.name}/{path.name}"},
            )
        )
    return records, models


def _read_mt_bench(folder: Path) -> tuple[list[PromptRecord], list[str]]:
    """MT-Bench questions joined with the GPT-4 judge's single-answer scores."""
    question_path, judgement_path = (folder / name for name in MT_BENCH_FILES)
    for path in (question_path, judgement_path):
        if not path.exists():
            raise DataError(
                "MT-Bench needs question.jsonl and judgements.jsonl side by side", path=path
            )
    questions: dict[str, tuple[int, dict[str, Any]]] = {}
    for line, item in read_jsonl(question_path):
        require_keys(item, ("question_id", "turns"), question_path, row=line)
        turns = item["turns"]
        if not isinstance(turns, list) or not turns or not isinstance(turns[0], str):
            raise DataError(
                f"expected a list of turn texts{where(line)}",
                path=question_path,
                row=line,
                column="turns",
            )
        questions[str(item["question_id"])] = (line, item)
    judged: dict[tuple[str, str], list[float]] = {}
    models: list[str] = []
    for line, item in read_jsonl(judgement_path):
        require_keys(item, ("question_id", "model", "score"), judgement_path, row=line)
        score = to_float(item["score"], path=judgement_path, column="score", row=line)
        if score == -1:
            continue
        if not 1 <= score <= 10:
            raise DataError(
                f"expected a judge score from 1 to 10{where(line)}, got {score:g}",
                path=judgement_path,
                row=line,
                column="score",
            )
        model = str(item["model"])
        if model not in models:
            models.append(model)
        judged.setdefault((str(item["question_id"]), model), []).append(score)
    records = []
    for qid, (_, item) in questions.items():
        category = str(item.get("category") or "general")
        scores = {
            model: sum(values) / len(values) / 10
            for model in models
            if (values := judged.get((qid, model)))
        }
        records.append(
            PromptRecord(
                id=f"mt_bench:{qid}",
                text=item["turns"][0],
                task=f"mt_bench_{category}",
                scores=scores,
                metadata={
                    "file": f"{folder.name}/question.jsonl",
                    "question_id": item["question_id"],
                    "category": category,
                },
            )
        )
    return records, models


def _contamination_list(folder: Path, cache: dict[Path, set[str]]) -> set[str]:
    """Whitespace-normalised ``eval_prompt`` texts of the folder's contamination list."""
    path = folder / CONTAMINATION_FILE
    if folder not in cache and path.exists():
        listed = set()
        for line, item in read_jsonl(path):
            require_keys(item, ("eval_prompt",), path, row=line)
            listed.add(normalise_text(str(item["eval_prompt"])))
        cache[folder] = listed
    return cache.get(folder, set())
