"""`codyn train`, `codyn route`, `codyn calibrate`, `codyn bench route` and `codyn bench
featurise`: thin wrappers over `codyn.routers`, `codyn.features` and `codyn.deploy` that parse,
call the library and print."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from codyn.bench.features import bench_featuriser
from codyn.bench.routers import bench_router
from codyn.cli.main import app
from codyn.cli.output import console, fmt, print_json, table
from codyn.data.demo import load_demo
from codyn.data.routing import RoutingData
from codyn.data.splits import load_split_file
from codyn.deploy import PolicySetup, calibrate_deployed, load_deployed, route
from codyn.errors import CodynError, shown_list
from codyn.features.base import featuriser_from_config
from codyn.routers import make_router
from codyn.routers.tasks import centred_tasks

bench = typer.Typer(help="Measure speed: router decisions, featurisers.", no_args_is_help=True)
app.add_typer(bench, name="bench")

RouterDir = Annotated[
    Path, typer.Option("--router", help="Directory of a router written by `codyn train`.")
]
AsJson = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]


def parse_params(pairs: list[str]) -> dict[str, Any]:
    """``["k=40", "weights=similarity"]`` -> ``{"k": 40, "weights": "similarity"}``: a value is
    read as JSON when it parses (numbers, true/false, lists), else kept as a string."""
    params: dict[str, Any] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise CodynError(f"--param takes NAME=VALUE, got {pair!r}")
        try:
            params[name.strip()] = json.loads(value)
        except json.JSONDecodeError:
            params[name.strip()] = value
    return params


@app.command("train")
def train_command(
    data: Annotated[Path, typer.Argument(help="Routing data (.parquet from `codyn import`).")],
    router: Annotated[str, typer.Option("--router", help="Router family, e.g. knn, mlp.")],
    out: Annotated[Path, typer.Option("-o", "--out", help="Directory to write the router to.")],
    param: Annotated[
        list[str] | None,
        typer.Option("--param", help="Hyper-parameter NAME=VALUE (repeatable), e.g. k=40."),
    ] = None,
    split_file: Annotated[
        Path | None,
        typer.Option("--split-file", help="Train only on the 'train' rows of this split TSV."),
    ] = None,
    as_json: AsJson = False,
) -> None:
    """Fit a router on DATA and save it (router.json, weights.npz, policy.json) to OUT."""
    train = RoutingData.load(data)
    if split_file is not None:
        train, _ = load_split_file(train, split_file)
    estimator = make_router(router, **parse_params(param or []))
    start = time.perf_counter()
    estimator.fit(train)
    fit_s = time.perf_counter() - start
    estimator.save(out)
    setup = PolicySetup.from_train(estimator, train)
    setup.save(out)
    payload = {
        "router": repr(estimator),
        "directory": str(out),
        "n_prompts": train.n_prompts,
        "models": setup.model_names,
        "model_costs": setup.model_costs,
        "cost_note": setup.cost_note,
        "fit_s": fit_s,
        "task_prior_tasks": centred_tasks(estimator),
    }
    if as_json:
        print_json(payload)
        return
    console.print(
        f"trained {payload['router']} on {train.n_prompts} prompts x {train.n_models} models "
        f"in {fit_s:.2f} s -> {out}"
    )
    tasks = payload["task_prior_tasks"]
    if tasks:
        console.print(
            f"task prior: scores centred on the means of {len(tasks)} tasks ({shown_list(tasks)})"
        )
    console.print(setup.cost_note)


@app.command("route")
def route_command(
    prompt: Annotated[str, typer.Argument(help="The prompt; '-' reads it from stdin.")],
    router_dir: RouterDir,
    knob: Annotated[
        float | None,
        typer.Option("--knob", help="lambda >= 0 of quality - lambda * cost [calibrated or 0]."),
    ] = None,
    target_cost: Annotated[
        float | None,
        typer.Option("--target-cost", help="Best predicted model costing at most this per call."),
    ] = None,
    models: Annotated[
        str | None,
        typer.Option("--models", help="Comma-separated models on offer [all the router's]."),
    ] = None,
    as_json: AsJson = False,
) -> None:
    """Choose a model for one prompt and show every model's predicted quality and cost."""
    text = sys.stdin.read() if prompt == "-" else prompt
    estimator, setup = load_deployed(router_dir)
    offered = None if models is None else [m.strip() for m in models.split(",") if m.strip()]
    routed = route(estimator, setup, [text], knob=knob, max_cost=target_cost, offered=offered)
    chosen = routed.models[0]
    rows = [
        {"model": name, "predicted_quality": q, "cost": c, "chosen": name == chosen}
        for name, q, c in zip(
            routed.model_names, routed.predicted[0], routed.model_costs, strict=True
        )
    ]
    if as_json:
        print_json(
            {
                "model": chosen,
                "knob": routed.knob,
                "knob_source": routed.knob_source,
                "max_cost": target_cost,
                "truncated": routed.truncated > 0,
                "cost_note": setup.cost_note,
                "models": rows,
            }
        )
        return
    console.print(f"[bold]{chosen}[/bold]  (lambda {fmt(routed.knob, 4)}, {routed.knob_source})")
    cells = [
        [r["model"], r["predicted_quality"], f"{r['cost']:.3g}", "*" if r["chosen"] else ""]
        for r in rows
    ]
    console.print(table("Models", ["model", "predicted quality", "cost/call", "chosen"], cells))
    console.print(setup.cost_note)
    if routed.truncated:
        console.print("note: the prompt was truncated by the featuriser (too long)")


@app.command("calibrate")
def calibrate_command(
    router_dir: RouterDir,
    data: Annotated[Path, typer.Option("--data", help="Validation routing data (.parquet).")],
    target_cost: Annotated[
        float | None, typer.Option("--target-cost", help="Mean cost per call at most this.")
    ] = None,
    target_quality: Annotated[
        float | None, typer.Option("--target-quality", help="Mean quality at least this.")
    ] = None,
    strong_share: Annotated[
        float | None,
        typer.Option("--strong-share", help="At most this share of calls to the best model."),
    ] = None,
    as_json: AsJson = False,
) -> None:
    """Pick the router's lambda on validation data for one target; `route` then uses it."""
    if sum(t is not None for t in (target_cost, target_quality, strong_share)) != 1:
        raise CodynError("give exactly one of --target-cost, --target-quality, --strong-share")
    estimator, setup = load_deployed(router_dir)
    result = calibrate_deployed(
        estimator,
        setup,
        RoutingData.load(data),
        target_cost=target_cost,
        min_quality=target_quality,
        strong_share=strong_share,
    )
    setup.save(router_dir)
    if as_json:
        print_json(setup.calibration)
        return
    console.print(
        f"lambda {fmt(result.knob, 4)} meets {result.target} on {setup.calibration['n_prompts']} "
        f"validation prompts: cost {fmt(result.cost)} per call, quality {fmt(result.quality)}, "
        f"{result.strong_share:.0%} of calls to {setup.model_names[result.strong_model]}"
    )


@bench.command("route")
def bench_route_command(
    router_dir: RouterDir,
    data: Annotated[
        Path | None,
        typer.Option("--data", help="Routing data whose prompts to use [the built-in demo]."),
    ] = None,
    n: Annotated[int, typer.Option("--n", help="One-prompt decisions to time.")] = 200,
    warmup: Annotated[int, typer.Option("--warmup", help="Untimed decisions first.")] = 20,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Prompts per batch.")] = 256,
    as_json: AsJson = False,
) -> None:
    """Decision latency (one prompt at a time, featurising included), batched throughput and
    peak memory of a trained router."""
    estimator, setup = load_deployed(router_dir)
    texts = (load_demo() if data is None else RoutingData.load(data)).texts
    result = bench_router(
        estimator,
        texts,
        warmup,
        n,
        batch_size=batch_size,
        model_costs=setup.model_costs,
        knob=setup.knob,
    )
    result["router"] = repr(estimator)
    if as_json:
        print_json(result)
        return
    console.print(
        f"{result['router']}: one prompt p50 {result['p50_ms']:.2f} ms, p99 "
        f"{result['p99_ms']:.2f} ms (n={n}); batched {result['throughput_per_s']:.0f} prompts/s "
        f"(batch {batch_size}); peak RSS {result['rss_mb']:.0f} MB"
    )


@bench.command("featurise")
def bench_featurise_command(
    featuriser: Annotated[
        str,
        typer.Option(
            "--featuriser", help="Featuriser name, e.g. static, minilm, minilm-onnx, tfidf."
        ),
    ],
    data: Annotated[
        Path | None,
        typer.Option("--data", help="Routing data whose prompts to use [the built-in demo]."),
    ] = None,
    n: Annotated[int, typer.Option("--n", help="One-prompt calls to time.")] = 200,
    warmup: Annotated[int, typer.Option("--warmup", help="Untimed calls first.")] = 20,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Prompts per batch.")] = 256,
    threads: Annotated[
        int | None, typer.Option("--threads", help="torch threads while timing [unchanged].")
    ] = None,
    as_json: AsJson = False,
) -> None:
    """Embedding latency (one prompt at a time), batched throughput and peak memory of one
    featuriser, fitted on the data's prompts: the embedding part of `codyn bench route`."""
    texts = (load_demo() if data is None else RoutingData.load(data)).texts
    embedder = featuriser_from_config({"name": featuriser}).fit(texts)
    result = bench_featuriser(embedder, texts, warmup, n, batch_size=batch_size, threads=threads)
    result["featuriser"] = featuriser
    if as_json:
        print_json(result)
        return
    console.print(
        f"{featuriser}: one prompt p50 {result['p50_ms']:.2f} ms, p99 {result['p99_ms']:.2f} ms "
        f"(n={n}); batched {result['throughput_per_s']:.0f} prompts/s (batch {batch_size}); "
        f"peak RSS {result['rss_mb']:.0f} MB"
    )
