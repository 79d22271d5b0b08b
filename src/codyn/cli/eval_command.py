"""`codyn eval`: routers (fitted here or saved) under policies, swept on test, one table."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from codyn.cli.main import app
from codyn.cli.options import parse_scoped_params, split_list
from codyn.cli.output import console, print_json, table
from codyn.errors import CodynError

if TYPE_CHECKING:
    from codyn.evaluate import EvaluationResult
    from codyn.routers.base import Router


def print_evaluation(result: EvaluationResult, title: str) -> None:
    """The SBS and the pair in one line, baselines and routers in one table, then warnings."""
    from rich.console import Console

    from codyn.evaluate.table import number

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
    metrics = result.columns(table_only=True)
    keys = ["name", "kind", *(["policy"] if len(result.policies) > 1 else [])]
    headings = ["router", "kind", *(["policy"] if len(keys) == 3 else [])]
    headings += [result.heading(m) for m in metrics]
    keys += [m.key for m in metrics]
    rows = [[cells[k] for k in keys] for cells in result.cells(table_only=True)]
    out = table("Routers on the test split", headings, rows)
    if console.is_terminal:
        console.print(out)
    else:  # piped or captured: the whole table on long lines rather than cells wrapped at 80
        wide = console.measure(out, options=console.options.update_width(1000)).maximum
        Console(width=max(console.width, wide)).print(out)
    rnd = d["random"]
    knob = "λ=0" if result.policies == ["utility"] else "the policy's default knob"
    console.print(
        f"random: q 95% [{number(rnd['quality_lo'])}, {number(rnd['quality_hi'])}], APGR 95% "
        f"[{number(rnd.get('apgr_lo'))}, {number(rnd.get('apgr_hi'))}] over seeds. AIQ: area under "
        f"the cost-quality hull, cost / the priciest model's mean cost. q@default: at {knob}. "
        "APGR, CPT: strong/weak pair. cost→SBS q: cheapest point reaching the SBS's test q, / "
        "the SBS's cost."
    )
    console.print(d["cost_note"])
    for name, r in d["routers"].items():
        c = r["cascade"]
        if c is not None:
            depths = ", ".join(f"{k}: {share:.0%}" for k, share in enumerate(c["depth_share"], 1))
            console.print(
                f"cascade {name} at {c['default']}: prompts by models called {depths}; "
                f"escalated {c['escalated']:.0%}; {c['attempts']:.2f} calls/prompt"
            )
        for p in r["points"]:
            console.print(
                f"{name} {p['name']} ({p['knob']:g}): q {number(p['quality'])}, cost "
                f"{number(p['norm_cost'])} of the priciest model"
            )
    for v in d["verifier"]:
        console.print(
            f"verifier {v['model']}: visible tests on {v['with_visible_tests']:.0%} of "
            f"{v['samples']} samples; agreement {number(v['agreement'])}, precision "
            f"{number(v['precision'])} (hidden pass | visible pass), recall {number(v['recall'])}"
        )
    for note in d["notes"]:
        console.print(f"note: {note}")
    for warning in d["warnings"]:
        console.print(f"[yellow]warning:[/yellow] {warning}")


def saved_routers(directories: list[Path]) -> dict[str, Router]:
    """Routers saved by ``codyn train``, named by their directory (``name#2`` when repeated)."""
    from codyn.routers import load_router

    loaded: dict[str, Router] = {}
    for directory in directories:
        name = directory.resolve().name or str(directory)
        unique, k = name, 2
        while unique in loaded:
            unique, k = f"{name}#{k}", k + 1
        loaded[unique] = load_router(directory)
    return loaded


@app.command("eval")
def eval_command(
    data: Annotated[Path, typer.Argument(help="Routing data (.parquet from `codyn import`).")],
    routers: Annotated[
        str | None,
        typer.Option(
            "--routers",
            help="Comma-separated router specs fitted on the train split, e.g. "
            "random,sbs,knn,single:<model>; ALIAS=SPEC names one (knn40=knn); cascade: "
            "fixed chains verified by visible tests (needs visible_score).",
        ),
    ] = None,
    router_dirs: Annotated[
        list[Path] | None,
        typer.Option(
            "--router",
            help="A router saved by `codyn train` (repeatable), evaluated as it is: no refit.",
        ),
    ] = None,
    policy: Annotated[
        str,
        typer.Option(
            "--policy",
            help="Comma-separated policies every router is swept under: utility, threshold, "
            "affordability, tiers, budget, cascade (router-led, verified by visible tests; "
            "ALIAS=SPEC allowed).",
        ),
    ] = "utility",
    param: Annotated[
        list[str] | None,
        typer.Option(
            "--param",
            help="NAME.KEY=VALUE for a router or policy of this run (repeatable), e.g. "
            "knn40.k=40, mf.featuriser=minilm, tiers.thresholds=[0.2,0.5].",
        ),
    ] = None,
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
    points: Annotated[
        int, typer.Option("--points", help="Knob values per sweep (utility: per side of lambda=0).")
    ] = 50,
    strong: Annotated[
        str | None, typer.Option("--strong", help="Strong model of the pair [SBS].")
    ] = None,
    weak: Annotated[str | None, typer.Option("--weak", help="Weak model of the pair.")] = None,
    reference: Annotated[
        str | None,
        typer.Option(
            "--reference",
            help="One of the rows: compare every other row's AIQ with it (paired bootstrap).",
        ),
    ] = None,
    report: Annotated[
        Path | None, typer.Option("--report", help="Write an HTML report into this directory.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")] = False,
) -> None:
    """Evaluate routers under policies: cost-quality curves, AIQ, APGR, CPT, cost to match the
    SBS, with warnings for numbers that would mislead."""
    from codyn.data.routing import RoutingData
    from codyn.data.splits import train_test
    from codyn.evaluate import evaluate

    specs: dict[str, str | Router] = {}
    for spec in split_list(routers):
        alias, eq, target = (part.strip() for part in spec.partition("="))
        if alias in specs:
            raise CodynError(f"--routers names {alias!r} twice; alias one, e.g. {alias}2={alias}")
        specs[alias] = target if eq else alias
    for name, saved in saved_routers(router_dirs or []).items():
        if name in specs:
            raise CodynError(f"--router {name!r} has the name of a router of --routers")
        specs[name] = saved
    if not specs:
        raise CodynError("give routers to evaluate: --routers LIST and/or --router DIR")
    policies: dict[str, str] = {}
    for spec in split_list(policy):
        alias, eq, target = (part.strip() for part in spec.partition("="))
        policies[alias] = target if eq else alias
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
        policies=policies,
        params=parse_scoped_params(param or []),
        n_points=points,
        seed=seed,
        strong=strong,
        weak=weak,
        reference=reference,
    )
    page = None
    if report is not None:
        from codyn.report import write_report

        page = write_report(result, report, title=f"codyn eval: {data.name}")
    if as_json:
        print_json({**result.to_dict(), "report": None if page is None else str(page)})
        return
    print_evaluation(result, data.name)
    if page is not None:
        console.print(f"report: {page}")
