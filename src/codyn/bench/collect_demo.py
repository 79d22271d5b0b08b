"""`codyn demo collect`: the whole collection loop on real parts, on this machine.

The two local llama.cpp backends of `codyn.bench.local` (SmolLM2-135M, the weak model, and
Qwen2.5-Coder-0.5B, the strong one) answer HumanEval tasks; every answer runs against the
task's docstring examples (visible) and its ``check`` function (hidden) in `codyn.sandbox`;
the collected data goes through the headroom analysis and trains the default router. A
killed demo resumes where it stopped (the collection's journal).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from codyn.bench.local import STRONG, WEAK, local_servers

DEMO_PRICES = {WEAK: (0.1, 0.2), STRONG: (1.0, 2.0)}
"""USD per 1M input / output tokens for the two local models: illustrative (they run here for
free), with the strong model ten times the weak one's price, as hosted models differ."""
DATA_FILE = "humaneval.parquet"


def run_demo_collect(
    out_dir: str | Path,
    *,
    n: int = 20,
    samples: int = 1,
    max_tokens: int = 384,
    progress: bool = True,
) -> dict[str, Any]:
    """Collect ``n`` HumanEval tasks from both local models into ``out_dir``, score them in
    the sandbox, report the headroom and train the default router; returns the summary."""
    from codyn.analysis import headroom
    from codyn.catalog import CatalogModel
    from codyn.collect.converters import humaneval_tasks
    from codyn.collect.engine import CollectOptions, collect, pass_rates
    from codyn.collect.journal import journal_path
    from codyn.deploy import PolicySetup
    from codyn.routers import make_router

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tasks = humaneval_tasks(n=n).tasks
    output = out / DATA_FILE
    (out / "logs").mkdir(exist_ok=True)
    servers = local_servers(out / "logs")
    try:
        for server in servers.values():
            server.start()
        models = [
            CatalogModel(
                name=name,
                api_base=server.api_base,
                price_in=DEMO_PRICES[name][0],
                price_out=DEMO_PRICES[name][1],
                context_window=server.n_ctx,
                timeout_s=600.0,
                max_concurrency=1,  # one llama.cpp thread per backend: queueing is all it does
            )
            for name, server in servers.items()
        ]
        options = CollectOptions(
            samples=samples,
            max_tokens=max_tokens,
            concurrency=len(models),
            resume=journal_path(output).exists(),
            progress=progress,
        )
        result = collect(tasks, models, output, options, source="codyn demo collect")
    finally:
        for server in servers.values():
            server.stop()
    data = result.data
    room = headroom(data)
    router = make_router("knn").fit(data)
    router_dir = out / "router"
    router.save(router_dir)
    PolicySetup.from_train(router, data).save(router_dir)
    summary = result.summary
    return {
        "n_prompts": data.n_prompts,
        "models": data.model_names,
        "calls": summary["calls"],
        "cached": summary.get("cached"),
        "failures": summary["failures"],
        "executions": summary["executions"],
        "calls_per_s": summary.get("calls_per_s"),
        "elapsed_s": summary.get("elapsed_s"),
        "per_model": summary["per_model"],
        "pass_rates": pass_rates(data),
        "headroom": room,
        "output": str(output),
        "router": str(router_dir),
    }
