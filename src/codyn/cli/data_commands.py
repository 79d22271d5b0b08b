"""Data commands: headroom, info and the built-in demo."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Any

import typer

from codyn.cli.main import app
from codyn.cli.output import console, fmt, print_json, table
from codyn.errors import CodynError

DataPath = Annotated[
    Path, typer.Argument(help="A routing data set (.parquet from `codyn import`).")
]
AsJson = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]


def cost_text(value: float | None) -> str:
    """A cost with 3 significant digits (0.00915, 24.7, 8.10e-05): costs span orders of
    magnitude, so a fixed number of decimals would show a cheap model's cost as 0.000."""
    if value is None or math.isnan(value):
        return "n/a"
    if value == 0:
        return "0"
    rounded = f"{value:.2e}"  # rounding first: 0.0099996 is 0.0100, not 0.01000
    exponent = int(rounded.split("e")[1])
    if not -3 <= exponent <= 5:
        return rounded
    return f"{float(rounded):.{max(0, 2 - exponent)}f}"


def print_headroom(report: dict[str, Any], title: str) -> None:
    """Summary line, per-model table and (when present) the per-task table."""
    console.print(
        f"[bold]{title}[/bold]: {report['n_prompts']} prompts; SBS [cyan]{report['sbs_model']}"
        f"[/cyan] {report['sbs_mean']:.3f}, oracle {report['oracle_mean']:.3f}, "
        f"gap {report['oracle_gap']:.3f}, winner-change rate "
        f"{report['winner_change_rate']:.3f} "
        f"(cheapest-winner {report['cheapest_winner_change_rate']:.3f})"
    )
    rows = [
        [m["name"], m["mean_score"], cost_text(m["mean_cost"]), m["cheapest_best_share"]]
        for m in report["models"]
    ]
    console.print(
        table("Models", ["model", "mean score", "mean cost", "cheapest-best share"], rows)
    )
    if "tasks" in report:
        task_rows = [
            [
                task,
                t["n_prompts"],
                t["sbs_model"],
                t["sbs_mean"],
                t["oracle_mean"],
                t["oracle_gap"],
                t["winner_change_rate"],
            ]
            for task, t in report["tasks"].items()
        ]
        console.print(
            table(
                "By task", ["task", "prompts", "SBS", "SBS mean", "oracle", "gap", "WCR"], task_rows
            )
        )
    console.print(report["cost_note"])


@app.command("headroom")
def headroom_command(
    data: DataPath,
    by_task: Annotated[bool, typer.Option("--by-task", help="Also report every task.")] = False,
    as_json: AsJson = False,
) -> None:
    """Oracle-gap screening: SBS, oracle, gap and winner-change rate (CoDyn equation 1)."""
    from codyn.analysis import headroom
    from codyn.data.routing import RoutingData

    routing = RoutingData.load(data)
    report = headroom(routing, by_task=by_task)
    if as_json:
        print_json(report)
    else:
        print_headroom(report, str(data))


@app.command("info")
def info_command(data: DataPath, as_json: AsJson = False) -> None:
    """What a routing data set holds: prompts, models, tasks, costs and notes."""
    from codyn.data.routing import RoutingData

    routing = RoutingData.load(data)
    payload = {"path": str(data), **routing.summary()}
    if as_json:
        print_json(payload)
        return
    console.print(f"[bold]{data}[/bold]: {routing.n_prompts} prompts x {routing.n_models} models")
    console.print(
        table(
            "Models",
            ["model", "input $/1M", "output $/1M"],
            [[m.name, m.input_price, m.output_price] for m in routing.models],
        )
    )
    console.print(
        table("Tasks", ["task", "prompts"], [[t, n] for t, n in payload["tasks"].items()])
    )
    console.print(routing.describe_costs())
    for note in routing.notes:
        console.print(f"note: {note}")


DEMO_ROUTERS = "random,cheapest,sbs,knn"
"""Routers the demo evaluates next to the SBS, oracle and random baselines (knn: the default)."""


demo = typer.Typer(
    help="Run codyn on its built-in data; `codyn demo collect` collects from local models.",
    invoke_without_command=True,
    rich_markup_mode=None,
)
app.add_typer(demo, name="demo")


@demo.callback()
def demo_command(
    context: typer.Context,
    report: Annotated[Path, typer.Option("--report", help="Directory for the HTML report.")] = Path(
        "codyn-demo-report"
    ),
    routers: Annotated[str, typer.Option(help="Comma-separated routers to evaluate.")] = (
        DEMO_ROUTERS
    ),
    as_json: AsJson = False,
) -> None:
    """Run codyn on its built-in data (an MIT-licensed slice of LLMRouter): headroom by task,
    then every router's cost-quality curve on a 70/30 split, written as an HTML report."""
    if context.invoked_subcommand is not None:
        return
    from codyn.analysis import headroom
    from codyn.cli.eval_command import print_evaluation
    from codyn.data.demo import load_demo
    from codyn.evaluate import evaluate
    from codyn.report import write_report

    routing = load_demo()
    room = headroom(routing, by_task=True)
    train, test = routing.split(test_size=0.3, seed=0)
    result = evaluate(train, test, [r.strip() for r in routers.split(",") if r.strip()])
    index = write_report(result, report, title="codyn demo: LLMRouter slice")
    if as_json:
        print_json({"headroom": room, "evaluation": result.to_dict(), "report": str(index)})
        return
    console.print(f"Built-in demo data: {routing.source}")
    print_headroom(room, "Headroom")
    print_evaluation(result, "Demo evaluation (70/30 split stratified by task, seed 0)")
    console.print(f"report: {index}")


@demo.command("collect")
def demo_collect_command(
    n: Annotated[int, typer.Option("--n", help="HumanEval tasks to collect.")] = 20,
    samples: Annotated[int, typer.Option("--samples", help="Answers per task and model.")] = 1,
    max_tokens: Annotated[int, typer.Option("--max-tokens", help="Tokens per answer.")] = 384,
    out: Annotated[
        Path, typer.Option("-o", "--out", help="Directory for the data, router and logs.")
    ] = Path("codyn-demo-collect"),
    as_json: AsJson = False,
) -> None:
    """Collect N HumanEval tasks from the two local llama.cpp models (SmolLM2-135M and
    Qwen2.5-Coder-0.5B), run their answers in the sandbox, show the headroom and train the
    default router on the result. A killed run resumes where it stopped."""
    from codyn.bench.collect_demo import run_demo_collect

    if n < 1:
        raise CodynError(f"--n must be at least 1, got {n}")
    summary = run_demo_collect(
        out, n=n, samples=samples, max_tokens=max_tokens, progress=not as_json
    )
    if as_json:
        print_json(summary)
        return
    room = summary["headroom"]
    console.print(
        f"collected {summary['n_prompts']} HumanEval tasks x {len(summary['models'])} models: "
        f"{summary['calls']} calls ({summary['failures']} failed), {summary['executions']} "
        f"sandboxed executions -> {summary['output']}"
    )
    for model, row in summary["per_model"].items():
        console.print(
            f"  {model}: hidden tests {fmt(row['score'])}, "
            f"visible tests {fmt(row['visible_score'])}"
        )
    rates = summary["pass_rates"]
    for model in rates.get("pass_at_1", {}):
        console.print(
            f"  {model}: pass@1 {fmt(rates['pass_at_1'][model])}, "
            f"pass@{rates['k']} {fmt(rates['pass_at_k'][model])}"
        )
    print_headroom(room, "Headroom of the collected data")
    console.print(f"default router trained on it -> {summary['router']}")
