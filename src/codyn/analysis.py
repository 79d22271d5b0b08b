"""Headroom analysis of a routing data set: the first question, "how much could routing gain?"."""

from __future__ import annotations

from typing import Any

import numpy as np

from codyn.data.routing import RoutingData
from codyn.metrics import headroom as hr


def headroom(data: RoutingData, by_task: bool = False) -> dict[str, Any]:
    """SBS, oracle, oracle gap and winner-change rate (CoDyn eq. 1), plus per-model figures.

    Keys: ``sbs_model``, ``sbs_mean``, ``oracle_mean``, ``oracle_gap``,
    ``winner_change_rate``, ``cheapest_winner_change_rate``, ``n_prompts``, ``models``
    (name, mean score, mean cost, share of prompts where it is the cheapest best) and
    ``cost_note``; with ``by_task``, ``tasks`` maps each task to the same figures computed
    on that task alone (the SBS may differ per task).
    """
    report = _headroom_of(data.score, data.cost, data.model_names)
    report["cost_note"] = data.describe_costs()
    report["cost_is_proxy"] = data.cost_is_proxy
    if by_task:
        tasks = data.tasks
        report["tasks"] = {
            task: _headroom_of(
                data.score[tasks == task], data.cost[tasks == task], data.model_names
            )
            for task in sorted(set(tasks))
        }
    return report


def _headroom_of(score: np.ndarray, cost: np.ndarray, names: list[str]) -> dict[str, Any]:
    answered = hr.answered_prompts(score)
    score, cost = score[answered], cost[answered]
    if len(score) == 0:
        return {
            "n_prompts": 0,
            "sbs_model": None,
            "sbs_mean": np.nan,
            "oracle_mean": np.nan,
            "oracle_gap": np.nan,
            "winner_change_rate": np.nan,
            "cheapest_winner_change_rate": np.nan,
            "models": [],
        }
    sbs = hr.sbs_index(score, cost)
    means = hr.model_means(score)
    mean_cost = hr.model_means(cost)
    shares = hr.cheapest_best_share(score, cost)
    return {
        "n_prompts": len(score),
        "sbs_model": names[sbs],
        "sbs_mean": float(means[sbs]),
        "oracle_mean": hr.oracle_mean(score),
        "oracle_gap": hr.oracle_gap(score),
        "winner_change_rate": hr.winner_change_rate(score, sbs),
        "cheapest_winner_change_rate": hr.cheapest_winner_change_rate(score, sbs, cost),
        "models": [
            {
                "name": name,
                "mean_score": float(means[j]),
                "mean_cost": float(mean_cost[j]),
                "cheapest_best_share": float(shares[j]),
                "coverage": float(np.mean(~np.isnan(score[:, j]))),
            }
            for j, name in enumerate(names)
        ],
    }
