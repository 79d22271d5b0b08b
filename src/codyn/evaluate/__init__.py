"""Evaluation: every router under every policy on the same cost-quality axes.

`evaluate` fits (or takes) routers, sweeps each policy's knob on the test split and measures
every metric of `METRICS` against the baselines (single models, zero router, SBS, oracle,
random). Layout: `context` (the test split's shared numbers), `sweeps` (knob sweeps through
`codyn.policy.decide`), `baselines`, `table` (the metrics: one row each), `results`, `run`.
"""

from codyn.evaluate.results import EvaluationResult, RouterResult
from codyn.evaluate.run import evaluate
from codyn.evaluate.sweeps import PairCurve, Sweep
from codyn.evaluate.table import METRICS, Metric

__all__ = [
    "METRICS",
    "EvaluationResult",
    "Metric",
    "PairCurve",
    "RouterResult",
    "Sweep",
    "evaluate",
]
