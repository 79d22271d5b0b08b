"""A self-contained HTML report of an evaluation: figures, metrics table, router examples.

`write_report` writes ``index.html`` (figures embedded as base64 PNG, so the one file works
offline) and every figure as separate PNG and SVG files beside it.
"""

from __future__ import annotations

import base64
import io
from pathlib import Path
from typing import Any

import jinja2
import numpy as np
from matplotlib.figure import Figure

import codyn
from codyn.evaluate import EvaluationResult, RouterResult
from codyn.evaluate.table import number, percent, significant
from codyn.report.figures import cost_quality_figure, pgr_figure, quality_figure, selection_figure
from codyn.report.template import PAGE

N_EXAMPLES = 5
PROMPT_CHARS = 160

__all__ = ["write_report"]


def _truncate(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= PROMPT_CHARS else text[: PROMPT_CHARS - 1] + "…"


def _examples(result: EvaluationResult, r: RouterResult) -> list[dict[str, Any]]:
    """The prompts the router is most and least confident about (MBPP paper, appendix A)."""
    score = result.test.score
    texts = result.test.texts
    names = result.model_names
    confidence = r.confidence()
    order = np.argsort(-confidence, kind="stable")
    k = min(N_EXAMPLES, len(order) // 2)
    strong = None if result.strong is None else names.index(result.strong)
    weak = None if result.weak is None else names.index(result.weak)
    blocks = []
    for label, picked in (("most confident", order[:k]), ("least confident", order[::-1][:k])):
        rows = []
        for i in picked:
            chosen = int(r.default_choices[i])
            best = float(np.nanmax(score[i]))
            rows.append(
                {
                    "confidence": float(confidence[i]),
                    "text": _truncate(texts[i]),
                    "chosen": names[chosen],
                    "chosen_score": float(score[i, chosen]),
                    "strong_score": float("nan") if strong is None else float(score[i, strong]),
                    "weak_score": float("nan") if weak is None else float(score[i, weak]),
                    "best": best,
                    "n_best": int(np.sum(score[i] == best)),
                }
            )
        blocks.append({"name": r.name, "label": label, "rows": rows})
    return blocks


def _save(fig: Figure, directory: Path, name: str) -> str:
    """Write ``name.png`` and ``name.svg``; return the PNG as base64 for the page."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=130)
    (directory / f"{name}.png").write_bytes(buffer.getvalue())
    fig.savefig(directory / f"{name}.svg", format="svg")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def write_report(result: EvaluationResult, directory: str | Path, *, title: str) -> Path:
    """Write ``index.html`` and the figures into ``directory`` (created); return the page."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    figures: list[tuple[str, str, Figure | None, str]] = [
        (
            "cost_quality",
            "Cost-quality",
            cost_quality_figure(result),
            "Each router's knob sweep on normalised cost (★ = its default knob, λ=0 for utility); "
            "dotted black lines: the oracle's λ=0 cost and quality; dashed blue: the hull of the "
            "single models (zero router).",
        )
        if result.cost_known
        else (
            "quality",
            "Quality (costs unknown)",
            quality_figure(result),
            "Quality of each model and of each router's decision at its default knob.",
        ),
        (
            "pgr_share",
            "Strong/weak pair: PGR against strong calls",
            pgr_figure(result),
            "Each router's threshold sweep on the strong/weak pair; grey: random mixtures of the "
            "two models (mean and 95% band over seeds).",
        ),
        (
            "selection_share",
            "Selection share at the default knob",
            selection_figure(result),
            "Share of test prompts routed to each model at each router's default knob.",
        ),
    ]
    rendered = [
        {"name": name, "title": heading, "caption": caption, "png": _save(fig, directory, name)}
        for name, heading, fig, caption in figures
        if fig is not None
    ]
    d = result.to_dict()
    tags: dict[str, list[str]] = {}
    for name, tag in ((d["sbs"]["model"], "SBS"), (d["strong"], "strong"), (d["weak"], "weak")):
        tags.setdefault(name, []).append(tag)
    models = [
        {**m, "mark": f" ({', '.join(tags[m['name']])})" if m["name"] in tags else ""}
        for m in d["models"]
    ]
    confidence = [
        block for r in result.routers.values() if r.learned for block in _examples(result, r)
    ]
    metrics = result.columns()
    keys = ["name", "kind", *(["policy"] if len(result.policies) > 1 else [])]
    columns = ["router", "kind", *(["policy"] if len(keys) == 3 else [])]
    columns += [result.heading(m) for m in metrics]
    keys += [m.key for m in metrics]
    rows = [
        {"css": "baseline" if r["kind"] == "baseline" else "", "cells": [r[k] for k in keys]}
        for r in result.cells()
    ]
    glossary = [{"heading": result.heading(m), "description": m.description} for m in metrics]
    page = (
        jinja2.Environment(autoescape=True)
        .from_string(PAGE)
        .render(
            title=title,
            n_train=d["n_train"],
            n_test=d["n_test"],
            sbs=d["sbs"],
            strong=d["strong"],
            weak=d["weak"],
            cost_note=d["cost_note"],
            notes=d["notes"],
            models=models,
            columns=columns,
            rows=rows,
            glossary=glossary,
            warnings=d["warnings"],
            figures=rendered,
            confidence=confidence,
            cascades=[
                {"name": name, **r.cascade.to_dict()}
                for name, r in result.routers.items()
                if r.cascade is not None
            ],
            verifier=d["verifier"],
            percent=percent,
            fmt=number,
            significant=significant,
            version=codyn.__version__,
        )
    )
    path = directory / "index.html"
    path.write_text(page, encoding="utf-8")
    return path
