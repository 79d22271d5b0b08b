"""What `codyn.evaluate.evaluate` measured: one `RouterResult` per (router, policy), the
baselines, and the JSON / summary views every front end reads."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from codyn.data.routing import RoutingData
from codyn.evaluate.cascades import CascadeReport
from codyn.evaluate.context import NAN, Context
from codyn.evaluate.sweeps import PairCurve, Sweep
from codyn.evaluate.table import INTERVAL_KEYS, METRIC_KEYS, METRICS, Metric
from codyn.policy.base import FloatArray, IntArray

BASELINE_FAMILIES = frozenset({"random", "oracle", "single", "cheapest", "sbs", "cascade"})
"""Router families that learn nothing from prompts (no confidence examples, no collapse
warning)."""


@dataclass
class RouterResult:
    """A router's test predictions under one policy: its sweep, its strong/weak curve, its
    default decision and every metric of `METRICS` (``result.aiq is result.metrics["aiq"]``)."""

    name: str
    family: str
    policy: str
    """The policy's name in this evaluation (an alias where one was given)."""
    learned: bool
    predicted: FloatArray
    curve: Sweep
    pair: PairCurve | None
    default_choices: IntArray
    default_knob: str
    """The policy at its default knob, e.g. ``utility lambda=0``."""
    default_cost: float
    default_quality: float
    selection_share: FloatArray
    metrics: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    description: str = ""
    """The router and policy with their parameters, e.g. ``KNNRouter(k=40, ...) + utility``."""
    cascade: CascadeReport | None = None
    """A cascade's depths, escalations and operating points (None for a router)."""
    points: list[dict[str, Any]] = field(default_factory=list)
    """The router's named knobs (`Router.named_knobs`: the `profile` router's modes) as
    operating points: ``name``, ``knob``, ``quality``, ``cost``, ``norm_cost``."""

    def __getattr__(self, name: str) -> Any:
        metrics = self.__dict__.get("metrics", {})
        if name in metrics:
            return metrics[name]
        raise AttributeError(f"{type(self).__name__} has no attribute {name!r}")

    def confidence(self) -> FloatArray:
        """Per test prompt, the margin between the two best predicted qualities (MBPP paper)."""
        top2 = -np.sort(-np.nan_to_num(self.predicted, nan=-np.inf), axis=1)[:, :2]
        return top2[:, 0] - top2[:, 1] if top2.shape[1] == 2 else np.zeros(len(top2))

    def measure(self, ctx: Context) -> None:
        """Compute every metric of the table that is computed per router."""
        for metric in METRICS:
            if metric.compute is not None:
                self.metrics[metric.key] = metric.compute(self, ctx)
            else:
                self.metrics.setdefault(metric.key, (NAN, NAN, NAN))


@dataclass
class EvaluationResult:
    """Everything `evaluate` measured; `to_dict` is the JSON of ``codyn eval --json``."""

    train: RoutingData
    test: RoutingData
    cost_known: bool
    max_cost: float
    models: list[dict[str, Any]]
    sbs: dict[str, Any]
    """The single best model's row (by train mean) and its name as ``model``."""
    sbs_result: RouterResult
    """The SBS as a baseline row of the table: `FixedPolicy` on it."""
    strong: str | None
    weak: str | None
    zero_router: dict[str, Any]
    random: dict[str, Any]
    oracle: RouterResult
    routers: dict[str, RouterResult]
    policies: list[str]
    cost_note: str
    notes: list[str]
    warnings: list[str]
    reference: str | None = None
    """The router every other one is compared with (``aiq_diff_vs_reference``), if any."""
    verifier: list[dict[str, Any]] = field(default_factory=list)
    """Per model, how far the visible tests' verdict agrees with the hidden tests' on test
    (`codyn.evaluate.cascades.verifier_agreement`; only when a cascade was evaluated)."""

    @property
    def model_names(self) -> list[str]:
        return self.test.model_names

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict (NaN stays NaN; `codyn.cli.output.print_json` nulls it)."""
        return {
            "n_train": self.train.n_prompts,
            "n_test": self.test.n_prompts,
            "cost_note": self.cost_note,
            "cost_known": self.cost_known,
            "max_cost": self.max_cost,
            "notes": self.notes,
            "warnings": self.warnings,
            "models": self.models,
            "sbs": self.sbs,
            "strong": self.strong,
            "weak": self.weak,
            "policies": self.policies,
            "zero_router": self.zero_router,
            "random": self.random,
            "oracle": self.router_dict(self.oracle),
            "reference": self.reference,
            "verifier": self.verifier,
            "routers": {name: self.router_dict(r) for name, r in self.routers.items()},
        }

    def columns(self, *, table_only: bool = False) -> list[Metric]:
        """The metrics to show, in order (the reference column only with a reference)."""
        return [
            m
            for m in METRICS
            if (m.in_table or not table_only)
            and (m.key != "aiq_diff_vs_reference" or self.reference is not None)
        ]

    def heading(self, metric: Metric) -> str:
        if metric.key == "aiq_diff_vs_reference" and self.reference is not None:
            return f"AIQ − {self.reference} [95%]"
        return metric.heading

    def summary(self) -> list[dict[str, Any]]:
        """One row per baseline (oracle, random, zero router, SBS) and router: ``name``,
        ``kind``, ``policy`` and every metric key of `METRICS` (NaN = n/a)."""
        blank: dict[str, Any] = dict.fromkeys(METRIC_KEYS, NAN)
        for key in INTERVAL_KEYS:
            blank[key] = dict.fromkeys(("diff", "lo", "hi"), NAN)
        rnd = self.random
        rows = [
            {**blank, **self._metric_cells(self.oracle), "name": "oracle", "kind": "baseline"},
            {
                **blank,
                **{k: rnd.get(k, NAN) for k in ("aiq", "apgr", "apgr_integral", "cpt50", "cpt80")},
                "name": f"random ({rnd['n_seeds']} seeds)",
                "kind": "baseline",
                "q_at_default": rnd["quality"],
                "norm_cost_at_default": rnd["norm_cost"],
            },
            {**blank, "name": "zero router", "kind": "baseline", "aiq": self.zero_router["aiq"]},
            {
                **blank,
                **self._metric_cells(self.sbs_result),
                "name": f"SBS {self.sbs['model']}",
                "kind": "baseline",
            },
        ]
        for row in rows:
            row["policy"] = ""
        rows += [
            {**self._metric_cells(r), "name": name, "kind": r.family, "policy": r.policy}
            for name, r in self.routers.items()
        ]
        return rows

    def cells(self, *, table_only: bool = False) -> list[dict[str, str]]:
        """`summary` formatted for display: ``name``, ``kind``, ``policy`` and one string per
        metric of `columns`. A router whose sweep never reaches the SBS's quality shows
        ``never`` as its cost to match it."""
        rows = []
        for row in self.summary():
            never = self.cost_known and row["kind"] != "baseline"
            cells = {"name": row["name"], "kind": row["kind"], "policy": row["policy"]}
            for metric in self.columns(table_only=table_only):
                cells[metric.key] = metric.cell(row[metric.key], never=never)
            rows.append(cells)
        return rows

    def _metric_cells(self, r: RouterResult) -> dict[str, Any]:
        cells = dict(r.metrics)
        for key in INTERVAL_KEYS:
            cells[key] = dict(zip(("diff", "lo", "hi"), cells[key], strict=True))
        return cells

    def router_dict(self, r: RouterResult) -> dict[str, Any]:
        """One router's JSON: family, policy, every metric, the curves and its warnings."""
        cost = r.curve.costs if self.cost_known else np.full(len(r.curve.costs), NAN)
        names = self.model_names
        out: dict[str, Any] = {
            "family": r.family,
            "policy": r.policy,
            "description": r.description,
            "learned": r.learned,
            **self._metric_cells(r),
            "selection_share": dict(zip(names, r.selection_share.tolist(), strict=True)),
            "warnings": r.warnings,
            "curve": [
                {"knob": float(k), "cost": float(c), "quality": float(q)}
                for k, c, q in zip(r.curve.knobs, cost, r.curve.qualities, strict=True)
            ],
            "binary_curve": [],
            "cascade": None if r.cascade is None else r.cascade.to_dict(),
            "points": r.points,
        }
        if r.pair is not None:
            p = r.pair
            out["binary_curve"] = [
                {"strong_share": float(s), "quality": float(q), "pgr": float(g)}
                for s, q, g in zip(p.strong_share, p.sweep.qualities, p.pgr, strict=True)
            ]
        return out
