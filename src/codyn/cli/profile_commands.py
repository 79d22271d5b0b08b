"""`codyn profile table`, `codyn profile eval` and `codyn profile build`: DynaRoute's offline
table (`codyn.profile.table`), its profilers measured on labelled data
(`codyn.profile.evaluation`) and a `profile` router built on public benchmark scores."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import typer

from codyn.cli.main import app
from codyn.cli.options import parse_params, split_list
from codyn.cli.output import console, fmt, print_json, table
from codyn.errors import CodynError

profile_app = typer.Typer(
    help="DynaRoute: the benchmark table, profilers measured, a router from public scores.",
    no_args_is_help=True,
    rich_markup_mode=None,
)
app.add_typer(profile_app, name="profile")

AsJson = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]
TableFile = Annotated[
    Path | None,
    typer.Option("--table", help="Model benchmark and price CSV [the paper's Table 7]."),
]
MapFile = Annotated[
    Path | None,
    typer.Option("--map", help="Category -> benchmarks YAML [the paper's Table 5]."),
]
TaxonomyFile = Annotated[
    Path | None, typer.Option("--taxonomy", help="Categories YAML [the paper's Table 4].")
]
Params = Annotated[
    list[str] | None,
    typer.Option(
        "--param",
        help="A `profile` router parameter NAME=VALUE (repeatable), e.g. profiler=llm, "
        "profiler_model=qwen-coder, catalog=models.yaml, featuriser=minilm, task_map=F.",
    ),
]


@profile_app.command("table")
def table_command(
    table_file: TableFile = None,
    map_file: MapFile = None,
    taxonomy_file: TaxonomyFile = None,
    method: Annotated[
        str,
        typer.Option(
            "--method",
            help="paper: mean Z-scores, cumulative tiers (section 2.2's text); table6: mean raw "
            "scores, a Moderate band (reproduces Table 6 as printed).",
        ),
    ] = "paper",
    models: Annotated[
        str | None, typer.Option("--models", help="Comma-separated table models [all].")
    ] = None,
    as_json: AsJson = False,
) -> None:
    """Per category the Low cost, Moderate cost and Best performance model (Table 6)."""
    from codyn.profile.table import load_benchmark_map, load_benchmark_table, recommend
    from codyn.profile.taxonomy import load_taxonomy

    benchmarks = load_benchmark_table(table_file)
    if models is not None:
        benchmarks = benchmarks.subset(split_list(models))
    mapping = load_benchmark_map(
        map_file, taxonomy=load_taxonomy(taxonomy_file), benchmarks=benchmarks.benchmarks
    )
    rows = recommend(benchmarks, mapping, method)  # type: ignore[arg-type]
    if as_json:
        print_json([row.to_dict() for row in rows])
        return
    cells = [
        [r.category, *(f"{p.model} ({p.avg_z:.2f}, {p.total_cost:g})" for p in r.picks)]
        for r in rows
    ]
    score = "mean Z" if method == "paper" else "mean raw score"
    console.print(
        table(
            f"Tiered recommendations ({score}, total cost $/1M tokens)",
            ["category", "low cost", "moderate cost", "best performance"],
            cells,
        )
    )


@profile_app.command("eval")
def eval_command(
    data: Annotated[Path, typer.Argument(help="Labelled routing data (.parquet with tasks).")],
    param: Params = None,
    split_file: Annotated[
        Path | None, typer.Option("--split-file", help="Fixed split TSV: train on its train rows.")
    ] = None,
    test_size: Annotated[
        float | None, typer.Option("--test-size", help="Share of prompts to test on [0.3].")
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the split.")] = 0,
    n: Annotated[
        int | None,
        typer.Option(
            "--n", min=1, help="Profile only N test prompts, evenly spaced over the test split."
        ),
    ] = None,
    as_json: AsJson = False,
) -> None:
    """Category and level accuracy of a profiler on held-out prompts (Tables 1-2), per task,
    with confusion matrices (--json) and the latency of one decision."""
    import numpy as np

    from codyn.data.routing import RoutingData
    from codyn.data.splits import train_test
    from codyn.profile.evaluation import evaluate_profiles
    from codyn.profile.taxonomy import load_taxonomy
    from codyn.profile.trained import load_task_map, observed_levels, task_categories
    from codyn.routers.profile import ProfileRouter

    params = parse_params(param or [])
    router = ProfileRouter(**params)
    train, test = train_test(
        RoutingData.load(data), test_size=test_size, split_file=split_file, seed=seed
    )
    if n is not None and n < test.n_prompts:  # every task of a task-sorted split gets its share
        picks = np.unique(np.linspace(0, test.n_prompts - 1, n).round().astype(int))
        test = test.subset(prompt_ids=list(test.prompts["id"].iloc[picks]))
    router.fit(train)
    taxonomy = load_taxonomy(router.taxonomy)
    tasks = list(test.tasks)
    truth = task_categories(tasks, load_task_map(router.task_map, taxonomy), taxonomy)
    profiles, latencies = [], []
    for i, text in enumerate(test.texts):
        start = time.perf_counter()
        profiles.extend(router.profiles([text]))
        latencies.append(time.perf_counter() - start)
        if not as_json and (i + 1) % 50 == 0:
            console.print(f"profiled {i + 1}/{test.n_prompts}", style="dim")
    result = evaluate_profiles(
        router.profiler,
        profiles,
        truth,
        observed_levels(test.score).tolist(),
        tasks,
        fallback=taxonomy.fallback,
        latencies_s=latencies,
    )
    if as_json:
        print_json(result.to_dict())
        return
    _print_evaluation(result.to_dict())


def _print_evaluation(d: dict[str, Any]) -> None:
    rows = [
        [task, v["n"], fmt(v["category_accuracy"]), fmt(v["level_accuracy"])]
        for task, v in d["per_task"].items()
    ]
    rows.append(["all", d["n_prompts"], fmt(d["category_accuracy"]), fmt(d["level_accuracy"])])
    console.print(
        table(f"{d['profiler']} profiler", ["task", "prompts", "category acc", "level acc"], rows)
    )
    latency = d["latency_ms"]
    console.print(
        f"fallback category on {d['fallback_share']:.1%} of prompts; one decision p50 "
        f"{latency['p50']:.1f} ms, p99 {latency['p99']:.1f} ms"
    )


@profile_app.command("build")
def build_command(
    train: Annotated[
        Path,
        typer.Option(
            "--train",
            help="Labelled prompts the trained profiler learns categories and levels from.",
        ),
    ],
    out: Annotated[Path, typer.Option("-o", "--out", help="Directory to write the router to.")],
    models: Annotated[
        str | None,
        typer.Option("--models", help="Comma-separated table models to route between [all]."),
    ] = None,
    param: Params = None,
    as_json: AsJson = False,
) -> None:
    """A `profile` router on public benchmark scores (Table 7 or --param benchmarks_file=F),
    routing between the table's models with the tiers policy; serve it with catalog entries
    named as the table names them (or mapped in the route)."""
    from codyn.data.routing import RoutingData
    from codyn.deploy import build_profile_router

    params = parse_params(param or [])
    if "table" in params or "models" in params:
        raise CodynError("profile build sets table and models itself: use --models")
    router, setup = build_profile_router(
        RoutingData.load(train), models=split_list(models) or None, params=params
    )
    out.mkdir(parents=True, exist_ok=True)
    router.save(out)
    setup.save(out)
    payload = {
        "out": str(out),
        "models": setup.model_names,
        "model_costs": setup.model_costs,
        "categories": router.categories_,
    }
    if as_json:
        print_json(payload)
        return
    console.print(
        f"wrote {out}: profile router over {len(setup.model_names)} models, "
        f"{len(router.categories_)} categories, tiers policy (knob -1 low-cost, 0 optimum, "
        "1 best)"
    )
