"""`codyn serve` (the routing proxy) and `codyn bench serve` (its overhead and throughput).

The server stack (FastAPI, LiteLLM) is imported inside the commands: LiteLLM alone takes
seconds to import, and every other command should start at once.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from codyn.cli.main import app
from codyn.cli.output import console, fmt, print_json, table
from codyn.cli.router_commands import bench
from codyn.errors import CodynError, shown_list


@app.command("serve")
def serve_command(
    config: Annotated[
        Path | None, typer.Option("--config", help="The codyn YAML config to serve.")
    ] = None,
    check: Annotated[
        Path | None,
        typer.Option(
            "--check",
            help="Validate this config instead of serving it: names resolve, routers load and "
            "decide, backends answer a one-token request; prints the resolved table.",
        ),
    ] = None,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    workers: Annotated[int, typer.Option(help="Worker processes (uvicorn).")] = 1,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "warning",
) -> None:
    """Run the OpenAI-compatible routing proxy: /v1/chat/completions, /v1/models, /metrics,
    /healthz and /dashboard (or, with --check, validate a config)."""
    if (config is None) == (check is None):
        raise CodynError("give --config CONFIG to serve it, or --check CONFIG to validate it")
    if check is not None:
        _print_check(check)
        return
    assert config is not None
    import uvicorn

    from codyn.serve.app import CONFIG_ENV, create_app
    from codyn.serve.config import load_config

    loaded = load_config(config)
    target = create_app(loaded)  # loads every router now: a bad config fails before listening
    console.print(
        f"codyn proxy on http://{host}:{port}: routes {', '.join(loaded.routes) or 'none'}; "
        f"models {', '.join(loaded.models)}; keys {'required' if loaded.keys else 'not required'}"
    )
    if workers > 1:
        os.environ[CONFIG_ENV] = str(config.resolve())
        uvicorn.run(
            "codyn.serve.app:app_from_env", factory=True, host=host, port=port,
            workers=workers, log_level=log_level, access_log=False,
        )  # fmt: skip
        return
    uvicorn.run(target, host=host, port=port, log_level=log_level, access_log=False)


def _print_check(path: Path) -> None:
    """The resolved table, then one line per problem on stderr (exit 1 when there is one)."""
    from codyn.serve.check import check_config

    report = check_config(path)
    for route in report.routes:
        skipped = f"; not offered: {shown_list(route.not_offered)}" if route.not_offered else ""
        console.print(
            f"route {route.name}: router {route.router}, policy {route.policy}, knob "
            f"{route.knob}, costs: {route.costs}{skipped}"
        )
    columns = ["route", "router model", "catalog model", "endpoint", "cost used", "reachable"]
    rows = [
        [
            r.route,
            r.router_model,
            r.catalog_model,
            r.endpoint,
            r.cost,
            "yes" if r.reachable else "no",
        ]
        for r in report.rows
    ]
    console.print(table(f"{path}: what each route serves", columns, rows))
    for problem in report.problems:
        print(f"problem: {problem}", file=sys.stderr)
    if report.problems:
        raise typer.Exit(1)
    console.print(f"{path}: ok ({len(report.routes)} routes, {len(report.rows)} rows)")


@bench.command("serve")
def bench_serve_command(
    config: Annotated[
        Path | None,
        typer.Option("--config", help="A config whose backends run (default: start local ones)."),
    ] = None,
    model: Annotated[
        str | None, typer.Option("--model", help="Route or model to request (with --config).")
    ] = None,
    api_key_env: Annotated[
        str | None, typer.Option(help="Environment variable with a key, if the config has keys.")
    ] = None,
    n: Annotated[int, typer.Option("--n", help="Sequential requests for the overhead.")] = 200,
    concurrency: Annotated[int, typer.Option(help="Clients in the sustained phase.")] = 4,
    duration: Annotated[float, typer.Option(help="Seconds of the sustained phase.")] = 20.0,
    max_tokens: Annotated[int, typer.Option(help="max_tokens per request.")] = 1,
    restart_backend_after: Annotated[
        float | None,
        typer.Option(
            help="Restart the weak local backend this many seconds into the sustained "
            "phase, then check the decision log."
        ),
    ] = None,
    sdk: Annotated[
        str,
        typer.Option(
            help="How the proxy calls the local models: auto (their protocol, directly), "
            "openai (the same) or litellm."
        ),
    ] = "auto",
    against_litellm: Annotated[
        str | None,
        typer.Option(
            help="The `litellm` command of an install with litellm[proxy]: measure LiteLLM's "
            "own proxy in front of the same backend beside codyn."
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")] = False,
) -> None:
    """Proxy overhead (end-to-end minus backend time) p50/p99 and sustained requests/s against
    real local backends, on loopback."""
    from codyn.bench.serve import bench_serve

    result = bench_serve(
        config,
        model,
        api_key=None if api_key_env is None else os.environ[api_key_env],
        n=n,
        concurrency=concurrency,
        duration_s=duration,
        max_tokens=max_tokens,
        restart_after_s=restart_backend_after,
        sdk=sdk,
        against_litellm=against_litellm,
    )
    if as_json:
        print_json(result)
        return
    for phase, label in (("sequential", "one at a time"), ("sustained", f"{concurrency} clients")):
        r = result[phase]
        over, beyond = r["overhead_ms"], r["overhead_beyond_decision_ms"]
        console.print(
            f"{label}: {r['requests']} requests ({r['ok']} ok) in {r['elapsed_s']:.1f} s = "
            f"{fmt(r['requests_per_s'], 2)} req/s; end-to-end p50 "
            f"{fmt(r['end_to_end_ms']['p50'], 1)} ms; proxy overhead p50 {fmt(over['p50'], 2)}"
            f" / p99 {fmt(over['p99'], 2)} ms, beyond the decision p50 "
            f"{fmt(beyond['p50'], 2)} / p99 {fmt(beyond['p99'], 2)} ms; decision p50 "
            f"{fmt(r['decision_ms']['p50'], 3)} ms"
        )
        if "paired" in result:
            r = result["paired"][phase]
            line = (
                f"  by name, minus the direct call, {label} ({r['samples']} samples): codyn p50 "
                f"{fmt(r['codyn']['p50'], 2)} / p99 {fmt(r['codyn']['p99'], 2)} ms"
            )
            if "litellm" in r:
                line += (
                    f", LiteLLM's proxy p50 {fmt(r['litellm']['p50'], 2)} / p99 "
                    f"{fmt(r['litellm']['p99'], 2)} ms; ratio of p50s {fmt(r['ratio_p50'], 2)}"
                )
            console.print(line)
    wait = result["journal_wait"]
    if wait is not None and wait["mean_ms"] is not None:
        console.print(
            f"decision journal: {wait['waits']:.0f} responses waited for their record, "
            f"{wait['mean_ms']:.2f} ms on average"
        )
    if "log_check" in result:
        check = result["log_check"]
        console.print(
            f"decision log: {check['rows']} rows for {check['requests']} requests "
            f"({check['answered_200']} answered 200, {check['fallback_rows']} by a fallback); "
            f"{check['missing_rows']} missing, {check['duplicate_rows']} duplicated, "
            f"{check['unanswered']} unanswered"
        )
