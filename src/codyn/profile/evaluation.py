"""How well a profiler labels prompts (DynaRoute Tables 1-2): category and level accuracy.

The truth is the data's own: a prompt's category is its task's (`load_task_map`), its level
the share of the data's models that failed it (`observed_levels`). Accuracies are reported
overall and per task (Table 1 reports per benchmark), with both confusion matrices and the
latency of one decision.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from codyn.profile.taxonomy import LEVELS, Profile


@dataclass(frozen=True)
class ProfileEvaluation:
    """Accuracies, confusions (rows: truth, columns: predicted) and latency of one profiler."""

    profiler: str
    n_prompts: int
    category_accuracy: float
    level_accuracy: float
    fallback_share: float
    """Share of prompts the profiler put in the fallback category (an unparseable answer)."""
    per_task: dict[str, dict[str, float]]
    categories: list[str]
    category_confusion: list[list[int]]
    level_confusion: list[list[int]]
    latency_ms: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "profiler": self.profiler,
            "n_prompts": self.n_prompts,
            "category_accuracy": self.category_accuracy,
            "level_accuracy": self.level_accuracy,
            "fallback_share": self.fallback_share,
            "per_task": self.per_task,
            "confusion": {"labels": self.categories, "matrix": self.category_confusion},
            "level_confusion": {"labels": list(LEVELS), "matrix": self.level_confusion},
            "latency_ms": self.latency_ms,
        }


def evaluate_profiles(
    profiler: str,
    profiles: Sequence[Profile],
    categories: Sequence[str],
    levels: Sequence[int],
    tasks: Sequence[str],
    *,
    fallback: str,
    latencies_s: Sequence[float] = (),
) -> ProfileEvaluation:
    """Compare ``profiles`` with the true ``categories`` and ``levels`` (0 = unknown: the
    prompt has no observed score, left out of the level accuracy), per task as well."""
    n = len(profiles)
    if not n == len(categories) == len(levels) == len(tasks):
        raise ValueError("profiles, categories, levels and tasks must have one entry per prompt")
    got_category = np.array([p.category for p in profiles], dtype=object)
    got_level = np.array([p.level for p in profiles])
    want_category = np.asarray(categories, dtype=object)
    want_level = np.asarray(levels)
    task_array = np.asarray(tasks, dtype=object)
    category_hit = got_category == want_category
    level_known = want_level > 0
    level_hit = (got_level == want_level) & level_known

    def share(hits: np.ndarray, among: np.ndarray) -> float:
        return float(hits[among].mean()) if among.any() else float("nan")

    everyone = np.ones(n, dtype=bool)
    per_task = {}
    for task in sorted(set(tasks)):
        rows = task_array == task
        per_task[task] = {
            "n": int(rows.sum()),
            "category_accuracy": share(category_hit, rows),
            "level_accuracy": share(level_hit, rows & level_known),
        }
    labels = sorted(set(want_category) | set(got_category))
    index = {c: i for i, c in enumerate(labels)}
    confusion = np.zeros((len(labels), len(labels)), dtype=int)
    for want, got in zip(want_category, got_category, strict=True):
        confusion[index[want], index[got]] += 1
    level_confusion = np.zeros((len(LEVELS), len(LEVELS)), dtype=int)
    for want, got in zip(want_level[level_known], got_level[level_known], strict=True):
        level_confusion[want - 1, got - 1] += 1
    latency: dict[str, float] = {}
    if len(latencies_s):
        ms = np.asarray(latencies_s, dtype=np.float64) * 1000.0
        latency = {"p50": float(np.percentile(ms, 50)), "p99": float(np.percentile(ms, 99))}
    return ProfileEvaluation(
        profiler=profiler,
        n_prompts=n,
        category_accuracy=share(category_hit, everyone),
        level_accuracy=share(level_hit, level_known),
        fallback_share=share(got_category == fallback, everyone),
        per_task=per_task,
        categories=labels,
        category_confusion=confusion.tolist(),
        level_confusion=level_confusion.tolist(),
        latency_ms=latency,
    )
