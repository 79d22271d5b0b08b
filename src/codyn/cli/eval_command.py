"""`codyn eval`: fit routers on train, sweep them on test, print the metrics table."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from codyn.cli.main import app
from codyn.cli.output import console, print_json, table
from codyn.data.routing import RoutingData
from codyn.data.splits import train_test
from codyn.evaluate import EvaluationResult, evaluate
from codyn.report import write_report
from codyn.report.tables import number, summary_cells, with_reference_column

COLUMNS = {
    "name": "router",
    "kind": "kind",
    "aiq": "AIQ",
    "q_at_zero": "q@λ=0",
    "apgr": "APGR",
    "cpt50": "CPT50",
    "cpt80": "CPT80",
    "cost_to_match_sbs": "cost→SBS q",
    "best_quality_at_sbs_cost": "best q≤SBS cost",
    "aiq_diff_vs_zero": "AIQ − zero [95%]",
}


def print_evaluation(result: EvaluationResult, title: str) -> None:
    """The SBS and the pair in one line, baselines and routers in one table, then notes."""
    d = result.to_dict()
    test_q = {m["name"]: m["test_q"] for m in d["models"]}
    pair = "no strong/weak pair"
    if d["strong"] and d["weak"]:
        pair = (
            f"pair: strong [cyan]{d['strong']}[/cyan] {test_q[d['strong']]:.3f} vs "
            f"weak [cyan]{d['weak']}[/cyan] {test_q[d['weak']]:.3f}"
        )
    console.print(
        f"[bold]{title}[/bold]: train {d['n_train']} / test {d['n_test']} prompts; "
        f"SBS [cyan]{d['sbs']['model']}[/cyan] test q {d['sbs']['test_q']:.3f}; {pair}"
    )
    columns = with_reference_column(COLUMNS, result)
    rows = [[r[k] for k in columns] for r in summary_cells(result)]
    out = table("Routers on the test split", list(columns.values()), rows)
    if console.is_terminal:
        console.print(out)
    else:  # piped or captured: the whole table on long lines rather than cells wrapped at 80
        wide = console.measure(out, options=console.options.update_width(1000)).maximum
        Console(width=max(console.width, wide)).print(out)
    rnd = d["random"]
    console.print(
        f"random: q 95% [{number(rnd['quality_lo'])}, {number(rnd['quality_hi'])}], APGR 95% "
        f"[{number(rnd.get('apgr_lo'))}, {number(rnd.get('apgr_hi'))}] over seeds. AIQ: area under "
        "the cost-quality hull, cost / the priciest model's mean cost. APGR, CPT: strong/weak "
        "pair. cost→SBS q: cheapest point reaching the SBS's test q, / the SBS's cost."
    )
    console.print(d["cost_note"])
    for note in d["notes"]:
        console.print(f"note: {note}")


@app.command("eval")
def eval_command(
    data: Annotated[Path, typer.Argument(help="Routing data (.parquet from `codyn import`).")],
    routers: Annotated[
        str,
        typer.Option(
            "--routers", help="Comma-separated router specs, e.g. random,oracle,sbs,single:<model>."
        ),
    ],
    test: Annotated[
        Path | None, typer.Option("--test", help="A separate test set (DATA is then train).")
    ] = None,
    test_size: Annotated[
        float | None, typer.Option("--test-size", help="Share of prompts to test on [0.3].")
    ] = None,
    split_file: Annotated[
        Path | None,
        typer.Option("--split-file", help="Fixed split TSV (id, split, prompt_sha1_16, group)."),
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the split and baselines.")] = 0,
    points: Annotated[int, typer.Option("--points", help="Knob values per sweep.")] = 50,
    strong: Annotated[
        str | None, typer.Option("--strong", help="Strong model of the pair [SBS].")
    ] = None,
    weak: Annotated[str | None, typer.Option("--weak", help="Weak model of the pair.")] = None,
    reference: Annotated[
        str | None,
        typer.Option(
            "--reference",
            help="One of --routers: compare every other router's AIQ with it (paired bootstrap).",
        ),
    ] = None,
    report: Annotated[
        Path | None, typer.Option("--report", help="Write an HTML report into this directory.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")] = False,
) -> None:
    """Evaluate routers: cost-quality curves, AIQ, APGR, CPT, cost to match the SBS."""
    specs = [s.strip() for s in routers.split(",") if s.strip()]
    train, held_out = train_test(
        RoutingData.load(data),
        test=None if test is None else RoutingData.load(test),
        test_size=test_size,
        split_file=split_file,
        seed=seed,
    )
    result = evaluate(
        train,
        held_out,
        specs,
        n_points=points,
        seed=seed,
        strong=strong,
        weak=weak,
        reference=reference,
    )
    page = None
    if report is not None:
        page = write_report(result, report, title=f"codyn eval: {data.name}")
    if as_json:
        print_json({**result.to_dict(), "report": None if page is None else str(page)})
        return
    print_evaluation(result, data.name)
    if page is not None:
        console.print(f"report: {page}")
