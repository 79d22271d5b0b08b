"""Importers: public routing data sets and your own long-format files -> `RoutingData`.

``read("routerbench", ["benchmarks/routerbench"])`` picks the module by format name; each
module's docstring documents its files, ids, cleaning and options (``long`` is the format
for your own data).
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from codyn.data.routing import RoutingData
from codyn.errors import DataError

FORMATS: dict[str, str] = {
    "routerbench": "RouterBench CSVs (sample_id, prompt, eval_name, 0/1 per model, USD costs)",
    "routellm": "RouteLLM evals: MMLU / GSM8K CSVs and MT-Bench judgements, GPT-4 vs Mixtral",
    "llmrouter": "LLMRouter dcrouter_preprocessed train/test JSON with query tasks and prices",
    "routerdc": "RouterDC split2_model7 JSON lists of {question, scores} (soft labels)",
    "long": "your own data: CSV/JSONL, one row per (prompt, model): score, optional cost, tokens",
}
"""Format name -> one-line description (the choices of ``codyn import FORMAT``)."""


def options(fmt: str) -> dict[str, str]:
    """The options a format accepts: name -> description."""
    return dict(_module(fmt).OPTIONS)


def read(fmt: str, paths: Sequence[str | Path] | str | Path, **opts: Any) -> RoutingData:
    """Import ``paths`` (files or directories) in format ``fmt``; unknown options are errors."""
    module = _module(fmt)
    unknown = sorted(set(opts) - set(module.OPTIONS))
    if unknown:
        accepted = ", ".join(module.OPTIONS) or "none"
        raise DataError(f"format {fmt!r} has no option {unknown[0]!r}; it accepts: {accepted}")
    if isinstance(paths, (str, Path)):
        paths = [paths]
    data: RoutingData = module.read(list(paths), **opts)
    return data


def _module(fmt: str) -> Any:
    if fmt not in FORMATS:
        raise DataError(f"unknown format {fmt!r}; known formats: {', '.join(FORMATS)}")
    return importlib.import_module(f"codyn.data.importers.{fmt}")


__all__ = ["FORMATS", "options", "read"]
