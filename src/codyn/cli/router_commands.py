"""`codyn train`, `codyn route`, `codyn calibrate`, `codyn bench route` and `codyn bench
featurise`: thin wrappers over `codyn.routers`, `codyn.policy`, `codyn.deploy` and
`codyn.bench` that parse, call the library and print."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from codyn.cli.main import app
from codyn.cli.options import parse_params
from codyn.cli.output import console, fmt, print_json, table
from codyn.errors import CodynError

bench = typer.Typer(
    help="Measure speed: router decisions, featurisers, the proxy.",
    no_args_is_help=True,
    rich_markup_mode=None,
)
app.add_typer(bench, name="bench")

RouterDir = Annotated[
    Path, typer.Option("--router", help="Directory of a router written by `codyn train`.")
]
AsJson = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]


@app.command("train")
def train_command(
    data: Annotated[Path, typer.Argument(help="Routing data (.parquet from `codyn import`).")],
    router: Annotated[str, typer.Option("--router", help="Router family, e.g. knn, mlp.")],
    out: Annotated[Path, typer.Option("-o", "--out", help="Directory to write the router to.")],
    param: Annotated[
        list[str] | None,
        typer.Option("--param", help="Hyper-parameter NAME=VALUE (repeatable), e.g. k=40."),
    ] = None,
    policy: Annotated[
        str,
        typer.Option(
            "--policy",
            help="The policy `route` and `serve` decide with: utility, threshold, "
            "affordability, tiers, budget, fixed.",
        ),
    ] = "utility",
    policy_param: Annotated[
        list[str] | None,
        typer.Option(
            "--policy-param",
            help="Policy parameter NAME=VALUE (repeatable), e.g. strong=gpt-4o weak=gpt-4o-mini.",
        ),
    ] = None,
    split_file: Annotated[
        Path | None,
        typer.Option("--split-file", help="Train only on the 'train' rows of this split TSV."),
    ] = None,
    as_json: AsJson = False,
) -> None:
    """Fit a router on DATA and save it (router.json, weights.npz, policy.json) to OUT."""
    from codyn.data.routing import RoutingData
    from codyn.data.splits import load_split_file
    from codyn.deploy import PolicySetup
    from codyn.errors import shown_list
    from codyn.policy import make_policy
    from codyn.routers import make_router
    from codyn.routers.tasks import centred_tasks

    train = RoutingData.load(data)
    if split_file is not None:
        train, _ = load_split_file(train, split_file)
    estimator = make_router(router, **parse_params(param or []))
    chosen = make_policy(policy, train.model_names, **parse_params(policy_param or []))
    start = time.perf_counter()
    estimator.fit(train)
    fit_s = time.perf_counter() - start
    setup = PolicySetup.from_train(estimator, train, chosen)
    estimator.save(out)
    setup.save(out)
    payload = {
        "router": repr(estimator),
        "directory": str(out),
        "n_prompts": train.n_prompts,
        "models": setup.model_names,
        "model_costs": setup.model_costs,
        "cost_note": setup.cost_note,
        "policy": setup.policy,
        "sbs": setup.sbs,
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
    console.print(f"policy: {chosen.describe()}; SBS of the train split: {setup.sbs}")
    console.print(setup.cost_note)


@app.command("route")
def route_command(
    prompt: Annotated[str, typer.Argument(help="The prompt; '-' reads it from stdin.")],
    router_dir: RouterDir,
    knob: Annotated[
        float | None,
        typer.Option(
            "--knob", help="The policy's knob, e.g. lambda of quality - lambda * cost [saved]."
        ),
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
    from codyn.cli.options import split_list
    from codyn.deploy import load_deployed, route

    text = sys.stdin.read() if prompt == "-" else prompt
    estimator, setup = load_deployed(router_dir)
    offered = None if models is None else split_list(models)
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
                "policy": routed.policy.name,
                "knob": routed.knob,
                "knob_source": routed.knob_source,
                "max_cost": target_cost,
                "truncated": routed.truncated > 0,
                "cost_note": setup.cost_note,
                "models": rows,
                "explanation": None if routed.explanation is None else routed.explanation[0],
            }
        )
        return
    console.print(f"[bold]{chosen}[/bold]  ({routed.policy.describe(routed.knob)}, "
                  f"{routed.knob_source})")  # fmt: skip
    cells = [
        [r["model"], r["predicted_quality"], f"{r['cost']:.3g}", "*" if r["chosen"] else ""]
        for r in rows
    ]
    console.print(table("Models", ["model", "predicted quality", "cost/call", "chosen"], cells))
    if routed.explanation is not None:
        console.print(explanation_line(routed.explanation[0]))
    console.print(setup.cost_note)
    if routed.truncated:
        console.print("note: the prompt was truncated by the featuriser (too long)")


def explanation_line(entry: dict[str, Any]) -> str:
    """``codyn route``'s account of a profile decision: category, level, tier, the row."""
    line = (
        f"profile: {entry['category']} ({entry['main_category']}), level {entry['level']}, "
        f"confidence {entry['confidence']:.2f} ({entry['profiler']} profiler)"
    )
    profiled = entry["profiled"]
    if (profiled["category"], profiled["level"]) != (entry["category"], entry["level"]):
        line += f"; profiled as {profiled['category']} level {profiled['level']}"
    if "tier" in entry:
        names = TIER_NAMES if len(entry["tier_models"]) == len(TIER_NAMES) else None
        row = ", ".join(
            f"{names[t] if names else f'tier {t}'}: {model}"
            for t, model in enumerate(entry["tier_models"])
        )
        used = names[entry["tier"]] if names else f"tier {entry['tier']}"
        line += f"; tier {used}; the category's row: {row}"
    return line


TIER_NAMES = ("low", "moderate", "best")


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
    max_quality_loss: Annotated[
        float | None,
        typer.Option(
            "--max-quality-loss",
            help="Guarantee: quality loss against always-SBS on NEW prompts at most this...",
        ),
    ] = None,
    confidence: Annotated[
        float,
        typer.Option("--confidence", help="...with at least this probability (with the above)."),
    ] = 0.9,
    method: Annotated[
        str,
        typer.Option("--method", help="p-value of the guarantee: betting (tighter) or hb."),
    ] = "betting",
    as_json: AsJson = False,
) -> None:
    """Pick the router's knob on validation data, for a target on that data or with a
    guarantee on new prompts; `route` and `serve` then use it."""
    from codyn.data.routing import RoutingData
    from codyn.deploy import calibrate_deployed, calibrate_deployed_with_guarantee, load_deployed

    targets = (target_cost, target_quality, strong_share, max_quality_loss)
    if sum(t is not None for t in targets) != 1:
        raise CodynError(
            "give exactly one of --target-cost, --target-quality, --strong-share, "
            "--max-quality-loss"
        )
    estimator, setup = load_deployed(router_dir)
    val = RoutingData.load(data)
    if max_quality_loss is not None:
        guaranteed = calibrate_deployed_with_guarantee(
            estimator,
            setup,
            val,
            max_quality_loss=max_quality_loss,
            confidence=confidence,
            method=method,
        )
        setup.save(router_dir)
        if as_json:
            print_json(setup.calibration)
            return
        sbs, n = setup.calibration["sbs"], setup.calibration["n_prompts"]
        policy = setup.calibration["policy"]["name"]
        if guaranteed.knob is None:
            console.print(
                f"no knob of {policy} keeps the quality loss against always-{sbs} within "
                f"{max_quality_loss:g} with probability {confidence:g} on {n} validation prompts; "
                f"the router now sends every prompt to {sbs} (more validation data may qualify "
                f"a cheaper knob). {guaranteed.summary}"
            )
            return
        console.print(
            f"{policy} knob {fmt(guaranteed.knob, 4)}: with probability >= {confidence:g}, the "
            f"quality loss against always-{sbs} on new prompts is at most {max_quality_loss:g}. "
            f"On the {n} validation prompts: loss {guaranteed.loss:+.4f}, cost "
            f"{fmt(guaranteed.cost)} per call = {guaranteed.cost / guaranteed.sbs_cost:.1%} of "
            f"{sbs}'s ({method} p-value {guaranteed.p_value:.3g}, "
            f"{guaranteed.knobs_tested} knobs tested)"
        )
        return
    result = calibrate_deployed(
        estimator,
        setup,
        val,
        target_cost=target_cost,
        min_quality=target_quality,
        strong_share=strong_share,
    )
    setup.save(router_dir)
    if as_json:
        print_json(setup.calibration)
        return
    console.print(
        f"{setup.policy['name']} knob {fmt(result.knob, 4)} meets {result.target} on "
        f"{setup.calibration['n_prompts']} validation prompts: cost {fmt(result.cost)} per call, "
        f"quality {fmt(result.quality)}, {result.strong_share:.0%} of calls to "
        f"{setup.model_names[result.strong_model]} (no guarantee on new prompts: see "
        "--max-quality-loss)"
    )


def _prompts(data: Path | None) -> list[str]:
    """The prompts a benchmark times: the data's, or the built-in demo's."""
    from codyn.data.demo import load_demo
    from codyn.data.routing import RoutingData

    return (load_demo() if data is None else RoutingData.load(data)).texts


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
    from codyn.bench.routers import bench_router
    from codyn.deploy import load_deployed

    estimator, setup = load_deployed(router_dir)
    texts = _prompts(data)
    result = bench_router(
        estimator,
        texts,
        warmup,
        n,
        batch_size=batch_size,
        model_costs=setup.model_costs,
        policy=setup.build_policy(),
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
    from codyn.bench.features import bench_featuriser
    from codyn.features.base import featuriser_from_config

    texts = _prompts(data)
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
