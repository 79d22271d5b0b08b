"""`profile`: DynaRoute (paper 002): prompt -> (category, level) -> the category's row -> tier.

The router predicts, for every prompt, its category's score for each model (a row of the
offline recommendation, `codyn.profile.table`) and a difficulty from its level (1 -> 0,
2 -> 0.5, 3 -> 1, `predict_with_difficulty`); the ``tiers`` policy then picks the best model
of the level's cost tier, so a level-1 prompt goes to the category's Low cost pick, level 3 to
its Best pick. The policy's knob (``offset``) is DynaRoute's router mode: ``-1`` is the
Low-Cost router (every prompt at level 1), ``0`` the Optimum router (the level as profiled),
``1`` the Best-Performance router (every prompt at level 3); values between shift levels
partly, so the modes are three points of one cost-quality curve.

The rows come from the user's own data (``table="data"``: each train task is a benchmark,
its models' mean scores become Z-scores across models, a category averages its tasks' Z) or
from public benchmark scores (``table="benchmarks"``, Table 7 or a user's CSV; the router's
models are then the table's, named as the catalog must name them). Profiles come from an
embedding classifier trained on the train prompts (``profiler="trained"``: categories from
their tasks through ``task_map``, levels from how many models failed them) or from an LLM
asked for them (``profiler="llm"``, ``profiler_model`` in ``catalog``). ``overrides`` shifts
a category's levels ("all models assigned to the chemistry category were shifted up by one
level", section 3.2.1): a YAML file ``{Chemistry: 1}``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from codyn.data.routing import RoutingData
from codyn.errors import CodynError, DataError
from codyn.profile.table import (
    METHODS,
    BenchmarkTable,
    category_scores,
    load_benchmark_map,
    load_benchmark_table,
)
from codyn.profile.taxonomy import LEVELS, Profile, Taxonomy, load_taxonomy
from codyn.profile.trained import SoftmaxHead, load_task_map, observed_levels, task_categories
from codyn.routers.base import Arrays, Prompts, State
from codyn.routers.embedding import DEFAULT_FEATURISER, EmbeddingRouter, Features, FloatArray
from codyn.routers.registry import register_router

TABLES = ("data", "benchmarks")
PROFILERS = ("trained", "llm")
MODES = {"low-cost": -1.0, "optimum": 0.0, "best": 1.0}
"""DynaRoute's three routers as knobs of the ``tiers`` policy (its ``offset``)."""


def level_difficulty(levels: Sequence[int]) -> FloatArray:
    """Level 1, 2, 3 -> difficulty 0, 0.5, 1: with the ``tiers`` policy's thresholds 1/3 and
    2/3, level ``l`` lands in cost tier ``l`` at offset 0."""
    return (np.asarray(levels, dtype=np.float64) - 1.0) / 2.0


@register_router("profile")
class ProfileRouter(EmbeddingRouter):
    """DynaRoute's task-profile router; see the module docstring for every parameter."""

    def __init__(
        self,
        featuriser: str = DEFAULT_FEATURISER,
        table: str = "data",
        profiler: str = "trained",
        method: str = "paper",
        benchmarks_file: str | None = None,
        benchmark_map: str | None = None,
        models: str | None = None,
        taxonomy: str | None = None,
        task_map: str | None = None,
        overrides: str | None = None,
        profiler_model: str | None = None,
        catalog: str | None = None,
        alpha: float = 1.0,
    ) -> None:
        super().__init__(featuriser)
        self.table = table
        self.profiler = profiler
        self.method = method
        self.benchmarks_file = benchmarks_file
        self.benchmark_map = benchmark_map
        self.models = models
        self.taxonomy = taxonomy
        self.task_map = task_map
        self.overrides = overrides
        self.profiler_model = profiler_model
        self.catalog = catalog
        self.alpha = alpha

    categories_: list[str]
    quality_: FloatArray
    shifts_: dict[str, int]
    category_head_: SoftmaxHead | None
    level_head_: SoftmaxHead | None

    def _check_params(self) -> None:
        for name, value, allowed in (
            ("table", self.table, TABLES),
            ("profiler", self.profiler, PROFILERS),
            ("method", self.method, METHODS),
        ):
            if value not in allowed:
                raise CodynError(
                    f"profile: {name} must be one of {', '.join(allowed)}, got {value!r}"
                )
        if self.profiler == "llm" and not (self.profiler_model and self.catalog):
            raise CodynError("profile: profiler=llm needs profiler_model and catalog (a YAML file)")
        if not (isinstance(self.alpha, int | float) and self.alpha > 0):
            raise CodynError(f"profile: alpha must be a positive number, got {self.alpha!r}")

    # -- fitting ----------------------------------------------------------------------------

    def _taxonomy(self) -> Taxonomy:
        return load_taxonomy(self.taxonomy)

    def _fit_features(self, X: Features, train: RoutingData) -> None:
        taxonomy = self._taxonomy()
        labels = task_categories(
            list(train.tasks), load_task_map(self.task_map, taxonomy), taxonomy
        )
        if self.table == "data":
            self.categories_, self.quality_ = _data_rows(train, labels, self.method)
        else:
            table = load_benchmark_table(self.benchmarks_file)
            if self.models is not None:
                table = table.subset([m.strip() for m in self.models.split(",") if m.strip()])
            self.categories_, self.quality_ = _benchmark_rows(
                table, load_benchmark_map(self.benchmark_map, taxonomy=taxonomy,
                                          benchmarks=table.benchmarks), self.method
            )  # fmt: skip
            self.model_names_ = list(table.models)
        self.shifts_ = _read_overrides(self.overrides, taxonomy)
        self.category_head_ = self.level_head_ = None
        if self.profiler == "trained":
            features = X.astype(np.float64)
            self.category_head_ = SoftmaxHead.fit(features, labels, self.alpha)
            levels = observed_levels(train.score)
            scored = levels > 0
            self.level_head_ = SoftmaxHead.fit(
                features[scored] if scored.any() else features[:1],
                [str(lv) for lv in (levels[scored] if scored.any() else [2])],
                self.alpha,
            )

    # -- predicting -------------------------------------------------------------------------

    def profiles(self, prompts: Prompts) -> list[Profile]:
        """Each prompt's category and level as profiled, before ``overrides``."""
        self._check_fitted("profiles")
        if isinstance(prompts, str) or not (
            isinstance(prompts, RoutingData) or all(isinstance(p, str) for p in prompts)
        ):
            raise CodynError("profile takes a RoutingData or a list of prompt strings")
        texts = prompts.texts if isinstance(prompts, RoutingData) else list(prompts)
        if any(not text.strip() for text in texts):
            raise CodynError("an empty prompt: there is nothing to profile")
        if self.profiler == "llm":
            return self._llm_profiler().profile(texts)
        return self._trained_profiles(self.transform(texts))

    def _trained_profiles(self, X: Features) -> list[Profile]:
        assert self.category_head_ is not None and self.level_head_ is not None
        features = X.astype(np.float64)
        categories, confidence = self.category_head_.predict(features)
        levels, _ = self.level_head_.predict(features)
        return [
            Profile(category, int(level), float(c))
            for category, level, c in zip(categories, levels, confidence, strict=True)
        ]

    def _llm_profiler(self) -> Any:
        from codyn.catalog import load_catalog
        from codyn.profile.llm import LLMProfiler

        catalog = load_catalog(str(self.catalog))
        if self.profiler_model not in catalog.models:
            raise CodynError(
                f"profile: profiler_model {self.profiler_model!r} is not in {self.catalog}"
            )
        # a profiler outage must not stall live traffic: one try, a short timeout, then the
        # fallback profile
        return LLMProfiler(
            catalog.models[self.profiler_model], self._taxonomy(), timeout_s=10.0, retries=0
        )

    def routed_profiles(self, prompts: Prompts) -> list[Profile]:
        """The profiles the decision uses: ``overrides`` applied, levels kept in 1-3, and a
        category without a row (no benchmark, no train prompt) read as the fallback."""
        return self._routed(self.profiles(prompts))

    def _routed(self, profiles: Sequence[Profile]) -> list[Profile]:
        fallback = self._taxonomy().fallback
        routed = []
        for p in profiles:
            level = min(max(p.level + self.shifts_.get(p.category, 0), LEVELS[0]), LEVELS[-1])
            category = p.category if p.category in self.categories_ else fallback
            routed.append(Profile(category, level, p.confidence))
        return routed

    def predict_with_difficulty(self, prompts: Prompts) -> tuple[FloatArray, FloatArray]:
        """`predict` and the levels as difficulties, from one profiling of each prompt."""
        routed = self.routed_profiles(prompts)
        return self._rows(routed), level_difficulty([p.level for p in routed])

    def _predict(self, texts: list[str], data: RoutingData | None) -> FloatArray:
        if self.profiler == "llm":
            return self._rows(self.routed_profiles(texts))
        return super()._predict(texts, data)

    def _predict_features(self, X: Features) -> FloatArray:
        return self._rows(self._routed(self._trained_profiles(X)))

    def _rows(self, profiles: Sequence[Profile]) -> FloatArray:
        """Each profile's category row; a category with no row at all (not even the
        fallback) gets every row's mean."""
        index = {c: i for i, c in enumerate(self.categories_)}
        with np.errstate(invalid="ignore"):
            overall = np.nanmean(self.quality_, axis=0) if len(self.quality_) else None
        rows = []
        for p in profiles:
            if p.category in index:
                rows.append(self.quality_[index[p.category]])
            elif overall is not None:
                rows.append(overall)
            else:
                rows.append(np.full(len(self.model_names_), np.nan))
        return np.array(rows, dtype=np.float64).reshape(len(profiles), len(self.model_names_))

    def explain(self, prompts: Prompts) -> list[dict[str, Any]]:
        """Per prompt: the profile as profiled and as routed (overrides, fallback)."""
        profiled = self.profiles(prompts)
        routed = self.routed_profiles(prompts)
        taxonomy = self._taxonomy()
        return [
            {
                "category": r.category,
                "main_category": taxonomy.main_category(r.category),
                "level": r.level,
                "confidence": r.confidence,
                "profiled": p.to_dict(),
                "profiler": self.profiler,
            }
            for p, r in zip(profiled, routed, strict=True)
        ]

    def named_knobs(self, policy: str) -> dict[str, float]:
        return dict(MODES) if policy == "tiers" else {}

    # -- saving -----------------------------------------------------------------------------

    def _head_state(self) -> State:
        state: dict[str, Any] = {"categories": self.categories_, "shifts": self.shifts_}
        arrays: Arrays = {"quality": self.quality_}
        for key, head in (("category", self.category_head_), ("level", self.level_head_)):
            if head is not None:
                state[f"{key}_classes"] = head.classes
                arrays[f"{key}_coef"], arrays[f"{key}_intercept"] = head.coef, head.intercept
        return state, arrays

    def _set_head_state(self, state: dict[str, Any], arrays: Arrays) -> None:
        self.categories_ = list(state["categories"])
        self.shifts_ = {str(k): int(v) for k, v in state["shifts"].items()}
        self.quality_ = np.asarray(arrays["quality"], dtype=np.float64)
        heads = []
        for key in ("category", "level"):
            classes = state.get(f"{key}_classes")
            heads.append(
                None
                if classes is None
                else SoftmaxHead(
                    list(classes),
                    np.asarray(arrays[f"{key}_coef"], dtype=np.float64),
                    np.asarray(arrays[f"{key}_intercept"], dtype=np.float64),
                )
            )
        self.category_head_, self.level_head_ = heads


def _data_rows(
    train: RoutingData, categories: Sequence[str], method: str
) -> tuple[list[str], FloatArray]:
    """Per category seen in ``train``: each task is a benchmark; its score per model is the
    model's mean observed score on the task's prompts."""
    tasks = sorted(set(train.tasks))
    task_scores = np.full((train.n_models, len(tasks)), np.nan)
    members: dict[str, list[str]] = {}
    for j, task in enumerate(tasks):
        rows = train.tasks == task
        block = train.score[rows]
        with np.errstate(invalid="ignore"):
            task_scores[:, j] = np.nanmean(block, axis=0) if (~np.isnan(block)).any() else np.nan
        category = categories[int(np.flatnonzero(rows)[0])]
        members.setdefault(category, []).append(task)
    rows_by_category = category_scores(task_scores, tasks, members, method)  # type: ignore[arg-type]
    names = sorted(rows_by_category)
    matrix = np.array([rows_by_category[c] for c in names], dtype=np.float64)
    return names, matrix.reshape(len(names), train.n_models)


def _benchmark_rows(
    table: BenchmarkTable, benchmark_map: dict[str, list[str]], method: str
) -> tuple[list[str], FloatArray]:
    rows = category_scores(table.scores, table.benchmarks, benchmark_map, method)  # type: ignore[arg-type]
    names = list(rows)
    matrix = np.array([rows[c] for c in names], dtype=np.float64)
    return names, matrix.reshape(len(names), len(table.models))


def _read_overrides(path: str | None, taxonomy: Taxonomy) -> dict[str, int]:
    """``{category: level shift}`` from a YAML file (``{Chemistry: 1}``); None: no shifts."""
    if path is None:
        return {}
    from codyn.catalog import read_yaml

    shifts: dict[str, int] = {}
    for category, shift in read_yaml(Path(path)).items():
        found = taxonomy.canonical(str(category))
        if found is None:
            raise DataError(f"{path}: {category!r} is not a domain of {taxonomy.source}")
        if isinstance(shift, bool) or not isinstance(shift, int) or abs(shift) > 2:
            raise DataError(f"{path}: {category}: the level shift must be -2..2, got {shift!r}")
        shifts[found] = shift
    return shifts
