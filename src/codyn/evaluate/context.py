"""What every assessment on one test split shares: the test matrices and the reference points."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from codyn.data.routing import RoutingData
from codyn.errors import CodynError, DataError
from codyn.metrics.curves import aiq
from codyn.metrics.headroom import model_means, sbs_index, weak_index
from codyn.policy.base import FloatArray, IntArray

NAN = float("nan")
MIN_GAP_PROMPTS = 5.0
"""A strong/weak test gap worth fewer prompts than this makes PGR a ratio of noise (an oracle
APGR of 8.6 on 2 prompts of gap): APGR and CPT are then n/a."""


@dataclass
class Context:
    """The test split's matrices, the train costs the policies trade against, and the SBS and
    strong/weak pair every router is measured against (ANCHORS.md conventions)."""

    model_names: list[str]
    score: FloatArray
    cost: FloatArray
    """Per-prompt test cost (every call counts 1 when costs are unknown)."""
    model_costs: FloatArray
    """Mean train cost per model: what a policy sees (a router deployed knows no test costs)."""
    mean_test_cost: FloatArray
    max_cost: float
    cost_known: bool
    sbs: int
    sbs_q: float
    sbs_cost: float
    strong: int
    weak: int | None
    q_strong: float
    q_weak: float
    n_points: int
    n_boot: int
    seed: int
    pair_note: str | None
    """Why APGR and CPT are n/a on this split (None when they are defined)."""

    @property
    def n_prompts(self) -> int:
        return int(self.score.shape[0])

    @property
    def zero_choices(self) -> IntArray:
        """Every single model as one sweep point (the zero router's choices)."""
        n, m = self.score.shape
        return np.repeat(np.arange(m)[:, None], n, axis=1)

    @property
    def filled_cost(self) -> FloatArray:
        """Per-prompt costs with unknown cells at the model's mean test cost (the oracle's)."""
        return np.where(np.isnan(self.cost), self.mean_test_cost[None, :], self.cost)


def build_context(
    train: RoutingData,
    test: RoutingData,
    *,
    strong: str | None,
    weak: str | None,
    n_points: int,
    n_boot: int,
    seed: int,
) -> tuple[Context, list[dict[str, Any]]]:
    """The shared context and the single-model rows (uniform cost 1 when costs are unknown)."""
    cost_known = train.has_costs and test.has_costs
    shape = test.score.shape
    if cost_known:
        model_costs, mean_test_cost = train.mean_cost(), test.mean_cost()
        no_cost = np.isnan(model_costs) | np.isnan(mean_test_cost)
        unknown = [n for n, bad in zip(test.model_names, no_cost, strict=True) if bad]
        if unknown:
            raise DataError(f"no known cost in train or test for: {', '.join(unknown)}")
        cost = test.cost
    else:
        model_costs, mean_test_cost, cost = np.ones(shape[1]), np.ones(shape[1]), np.ones(shape)
    max_cost = float(mean_test_cost.max())
    train_q, test_q = model_means(train.score), model_means(test.score)
    sbs = sbs_index(train.score, train.cost if cost_known else None)
    s = sbs if strong is None else test.model_index(strong)
    w = weak_index(train_q, model_costs, s) if weak is None else test.model_index(weak)
    if w == s:
        raise CodynError("the strong and weak models must differ")
    q_strong = float(test_q[s])
    q_weak = NAN if w is None else float(test_q[w])
    ctx = Context(
        model_names=list(test.model_names),
        score=test.score,
        cost=cost,
        model_costs=model_costs,
        mean_test_cost=mean_test_cost,
        max_cost=max_cost,
        cost_known=cost_known,
        sbs=sbs,
        sbs_q=float(test_q[sbs]),
        sbs_cost=float(mean_test_cost[sbs]),
        strong=s,
        weak=w,
        q_strong=q_strong,
        q_weak=q_weak,
        n_points=n_points,
        n_boot=n_boot,
        seed=seed,
        pair_note=_pair_note(test.model_names, s, w, q_strong, q_weak, shape[0]),
    )
    models = [
        {
            "name": name,
            "train_q": float(train_q[j]),
            "test_q": float(test_q[j]),
            "cost": float(mean_test_cost[j]) if cost_known else NAN,
            "norm_cost": float(mean_test_cost[j] / max_cost) if cost_known else NAN,
            "aiq": aiq([mean_test_cost[j]], [test_q[j]], max_cost) if cost_known else NAN,
        }
        for j, name in enumerate(test.model_names)
    ]
    return ctx, models


def _pair_note(
    names: list[str], strong: int, weak: int | None, q_strong: float, q_weak: float, n: int
) -> str | None:
    """Why PGR-based metrics are undefined on this pair, or None when they are defined."""
    if weak is None:
        return "no weak model (none reaches 70% of the strong model's train q): APGR, CPT n/a"
    pair = f"strong {names[strong]} {q_strong:.3f} vs weak {names[weak]} {q_weak:.3f}"
    if not q_strong > q_weak:
        return f"the strong model is not better than the weak on test ({pair}): APGR, CPT n/a"
    gap = (q_strong - q_weak) * n
    if gap < MIN_GAP_PROMPTS:
        return (
            f"the strong/weak test gap is {gap:.1f} prompts ({pair} on {n} prompts), fewer "
            f"than {MIN_GAP_PROMPTS:g}: APGR and CPT would measure noise, n/a"
        )
    return None
