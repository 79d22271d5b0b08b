"""Similarity commands: benchmark-dataset similarity and contamination (RouteLLM app. B-C).

`codyn.similarity` and `RoutingData` (numpy, pandas, pyarrow) are imported inside the commands,
so that ``codyn --help`` and the other commands do not load them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from codyn.cli.main import app
from codyn.cli.output import console, print_json, table
from codyn.errors import CodynError

TrainPath = Annotated[Path, typer.Argument(help="Training routing data (.parquet).")]
BenchPath = Annotated[Path, typer.Argument(help="Benchmark routing data (.parquet).")]
FeaturiserOpt = Annotated[
    str | None,
    typer.Option(
        "--featuriser",
        help="Featuriser that embeds the prompts (static, minilm, minilm-onnx, tfidf, ...) "
        "[codyn.similarity's default: static].",
        show_default=False,
    ),
]
AsJson = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]


def _short(text: str, width: int = 80) -> str:
    one_line = " ".join(str(text).split())
    return one_line if len(one_line) <= width else one_line[: width - 3] + "..."


@app.command("similarity")
def similarity_command(
    train: TrainPath,
    bench: BenchPath,
    featuriser: FeaturiserOpt = None,
    as_json: AsJson = False,
) -> None:
    """Benchmark-dataset similarity (RouteLLM appendix C): mean over BENCH prompts of the best
    cosine to any TRAIN prompt."""
    from codyn.data.routing import RoutingData
    from codyn.similarity import DEFAULT_FEATURISER, benchmark_similarity, embed_texts

    featuriser = featuriser or DEFAULT_FEATURISER
    train_data, bench_data = RoutingData.load(train), RoutingData.load(bench)
    train_emb, bench_emb = embed_texts(train_data.texts, bench_data.texts, featuriser)
    score = benchmark_similarity(train_emb, bench_emb)
    if as_json:
        print_json(
            {
                "similarity": score,
                "n_train": train_data.n_prompts,
                "n_bench": bench_data.n_prompts,
                "featuriser": featuriser,
            }
        )
        return
    console.print(
        f"similarity {score:.4f} ({bench_data.n_prompts} benchmark prompts vs "
        f"{train_data.n_prompts} training prompts, featuriser {featuriser})"
    )


@app.command("contamination")
def contamination_command(
    train: TrainPath,
    bench: BenchPath,
    threshold: Annotated[
        float | None,
        typer.Option(
            help="Cosine at or above which a benchmark prompt is contaminated [RouteLLM's 0.95].",
            show_default=False,
        ),
    ] = None,
    featuriser: FeaturiserOpt = None,
    drop: Annotated[
        bool, typer.Option("--drop", help="Write BENCH without the contaminated prompts to -o.")
    ] = False,
    output: Annotated[
        Path | None, typer.Option("-o", "--output", help="Where --drop writes (.parquet).")
    ] = None,
    as_json: AsJson = False,
) -> None:
    """Near-duplicates of TRAIN prompts in BENCH (RouteLLM appendix B: cosine >= threshold)."""
    if drop and output is None:
        raise CodynError("--drop needs -o OUT.parquet")
    if output is not None and not drop:
        raise CodynError("-o is only used with --drop")
    if output is not None and output.resolve() in {train.resolve(), bench.resolve()}:
        raise CodynError(f"refusing to overwrite input file {output}: pick another -o path")
    from codyn.data.routing import RoutingData
    from codyn.similarity import (
        CONTAMINATION_THRESHOLD,
        DEFAULT_FEATURISER,
        drop_contaminated,
        embed_texts,
        near_duplicates,
    )

    featuriser = featuriser or DEFAULT_FEATURISER
    threshold = CONTAMINATION_THRESHOLD if threshold is None else threshold
    train_data, bench_data = RoutingData.load(train), RoutingData.load(bench)
    train_emb, bench_emb = embed_texts(train_data.texts, bench_data.texts, featuriser)
    pairs = near_duplicates(train_emb, bench_emb, threshold)
    written = None
    if drop and output is not None:
        clean = drop_contaminated(bench_data, pairs, threshold, train_label=train.name)
        written = str(clean.save(output))
    bench_ids, train_ids = bench_data.prompt_ids, train_data.prompt_ids
    n = bench_data.n_prompts
    if as_json:
        print_json(
            {
                "threshold": threshold,
                "n_bench": n,
                "n_contaminated": len(pairs),
                "pairs": [
                    {"bench_id": bench_ids[b], "train_id": train_ids[t], "cosine": c}
                    for b, t, c in pairs
                ],
                "written": written,
            }
        )
        return
    if pairs:
        bench_texts, train_texts = bench_data.texts, train_data.texts
        rows = [
            [bench_ids[b], train_ids[t], c, _short(bench_texts[b]), _short(train_texts[t])]
            for b, t, c in pairs
        ]
        out = table(
            "Near-duplicates", ["bench id", "train id", "cosine", "bench text", "train text"], rows
        )
        for column in out.columns[3:]:
            column.justify = "left"
        console.print(out)
    console.print(
        f"{len(pairs)} of {n} benchmark prompts contaminated ({len(pairs) / n:.1%}) at cosine "
        f">= {threshold:g} (featuriser {featuriser})"
    )
    if written:
        console.print(f"wrote {n - len(pairs)} prompts to {written}")
