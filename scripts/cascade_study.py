"""The verified-cascade study of issue 11, end to end: tasks, collection, evaluation, points.

    python scripts/cascade_study.py tasks -o tasks80.jsonl
    python -m codyn.bench.local            # the two local models; write their api_base lines
    codyn collect --tasks tasks80.jsonl --models codyn.yaml -o he_mbpp80.parquet --samples 3 \\
        --max-tokens 320 --concurrency 2        # about 1.5 h here; --resume after a stop
    codyn eval he_mbpp80.parquet --test-size 0.5 --seed 0 --routers knn,linear,mlp,cascade \\
        --policy utility,cascade --reference cascade --report rep80
    python scripts/cascade_study.py points he_mbpp80.parquet

``tasks``: the first 40 HumanEval problems with docstring examples (visible tests) and the
first 40 MBPP rows of LLMRouter's test queries (first assert visible). ``points``: every
fixed-chain operating point on the test split against always-SBS, with paired 95% intervals.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

QUERIES = (
    Path(__file__).resolve().parents[2]
    / "shared/benchmarks/llmrouter/data/example_data/query_data/default_query_test.jsonl"
)


def write_tasks(out: Path, n_each: int = 40) -> None:
    from codyn.collect.converters import humaneval_tasks, llmrouter_tasks
    from codyn.collect.tasks import write_tasks as write

    humaneval = [t for t in humaneval_tasks(n=100).tasks if t.visible_tests][:n_each]
    mbpp = llmrouter_tasks(QUERIES, "mbpp", n=n_each).tasks
    write([*humaneval, *mbpp], out)
    print(f"wrote {len(humaneval)} HumanEval + {len(mbpp)} MBPP tasks to {out}")


def points(path: Path, test_size: float = 0.5, seed: int = 0) -> None:
    from codyn.data.routing import RoutingData
    from codyn.data.splits import train_test
    from codyn.evaluate import evaluate
    from codyn.metrics.stats import paired_bootstrap

    train, test = train_test(
        RoutingData.load(path), test=None, test_size=test_size, split_file=None, seed=seed
    )
    result = evaluate(train, test, ["cascade"])
    row = result.routers["cascade"]
    assert row.cascade is not None and row.curve.outcome_quality is not None
    quality, cost = row.curve.outcome_quality, row.curve.outcome_cost
    assert cost is not None
    sbs = test.model_index(result.sbs["model"])
    for k, name in enumerate(row.cascade.points):
        diff, lo, hi = paired_bootstrap(quality[k], test.score[:, sbs], n_boot=2000, seed=0)
        share = float(cost[k].mean() / test.cost[:, sbs].mean())
        print(
            f"{name:28s} q {quality[k].mean():.3f}  cost/SBS {share:.2f}  "
            f"q - SBS {diff:+.3f} [{lo:+.3f}, {hi:+.3f}]"
        )
    print(json.dumps(result.verifier, indent=1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    tasks = sub.add_parser("tasks")
    tasks.add_argument("-o", "--out", type=Path, required=True)
    shown = sub.add_parser("points")
    shown.add_argument("data", type=Path)
    args = parser.parse_args()
    if args.command == "tasks":
        write_tasks(args.out)
    else:
        points(args.data)


if __name__ == "__main__":
    main()
