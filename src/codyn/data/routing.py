"""`RoutingData`: prompts x models -> score, cost, tokens. The structure every layer shares.

Model order in every matrix is the order of ``RoutingData.models`` and is never re-sorted.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from codyn.errors import DataError, shown_list

FORMAT_VERSION = 2
"""Version of the Parquet layout written by `RoutingData.save`; readers refuse newer ones.
2 adds the optional ``visible_score``, ``visible_samples`` and ``latency`` matrices; version 1
files load unchanged."""

COST_BASES = ("observed", "tokens_x_price", "price_proxy", "unknown")
"""Where costs come from.

- ``observed``: USD per call as recorded by the data set.
- ``tokens_x_price``: USD per call computed from token counts and the models' prices.
- ``price_proxy``: one number per model stands for every call, only ratios between models
  are meaningful: the model's blended price per 1M tokens, or costs that are constant per
  model across all prompts (see `mark_constant_costs_as_proxy`).
- ``unknown``: no costs at all (every cost is NaN).
"""

PROMPT_COLUMNS = ("id", "text", "task", "language", "metadata")


@dataclass(frozen=True)
class Model:
    """A candidate model: its name and, where known, its prices in USD per 1M tokens."""

    name: str
    input_price: float | None = None
    output_price: float | None = None

    @property
    def blended_price(self) -> float | None:
        """Mean of input and output price per 1M tokens: the per-call proxy without tokens."""
        prices = [p for p in (self.input_price, self.output_price) if p is not None]
        return float(np.mean(prices)) if prices else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "input_price": self.input_price,
            "output_price": self.output_price,
        }


def _as_matrix(value: Any, shape: tuple[int, int], name: str) -> np.ndarray:
    array = np.asarray(value, dtype=np.float64)
    if array.shape != shape:
        raise DataError(f"{name} has shape {array.shape}, expected {shape} (prompts x models)")
    if np.isinf(array).any():
        raise DataError(f"{name} contains infinite values; use NaN for missing entries")
    return array


@dataclass(eq=False)
class RoutingData:
    """Outcomes of running ``n_prompts`` prompts through ``n_models`` models.

    ``prompts`` is a DataFrame with columns ``id`` (unique str), ``text``, ``task``,
    ``language`` (str or None) and ``metadata`` (dict). Matrices are ``n_prompts x n_models``:
    ``score`` (higher is better, NaN = missing; for code, the hidden tests' pass fraction),
    ``cost`` (USD per call, NaN = unknown), optional ``tokens_in`` / ``tokens_out`` (per call),
    ``latency`` (seconds per call), ``visible_score`` (the pass fraction of the tests the
    prompt itself shows: what a verifier can check before paying for a stronger model),
    ``samples`` / ``visible_samples`` (``n x m x k`` per-sample scores, NaN-padded),
    ``responses`` (object array of str/None: the first sample's answer) and
    ``sample_responses`` (``n x m x k``: every sample's answer, for re-scoring).
    """

    prompts: pd.DataFrame
    models: list[Model]
    score: np.ndarray
    cost: np.ndarray | None = None
    tokens_in: np.ndarray | None = None
    tokens_out: np.ndarray | None = None
    samples: np.ndarray | None = None
    responses: np.ndarray | None = None
    cost_basis: str = "unknown"
    visible_score: np.ndarray | None = None
    visible_samples: np.ndarray | None = None
    latency: np.ndarray | None = None
    sample_responses: np.ndarray | None = None
    source: str = ""
    notes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.prompts = _normalise_prompts(self.prompts)
        self.models = [m if isinstance(m, Model) else Model(str(m)) for m in self.models]
        names = self.model_names
        if not names:
            raise DataError("a routing data set needs at least one model")
        duplicated = sorted({n for n in names if names.count(n) > 1})
        if duplicated:
            raise DataError(f"model names must be unique; repeated: {', '.join(duplicated)}")
        shape = (len(self.prompts), len(self.models))
        self.score = _as_matrix(self.score, shape, "score")
        self.cost = (
            np.full(shape, np.nan) if self.cost is None else _as_matrix(self.cost, shape, "cost")
        )
        if (self.cost < 0).any():
            raise DataError("cost contains negative values")
        for name in ("tokens_in", "tokens_out", "latency", "visible_score"):
            value = getattr(self, name)
            if value is not None:
                value = _as_matrix(value, shape, name)
                if (value < 0).any():
                    raise DataError(f"{name} contains negative values")
                setattr(self, name, value)
        for name in ("samples", "visible_samples"):
            value = getattr(self, name)
            if value is not None:
                value = np.asarray(value, dtype=np.float64)
                if value.ndim != 3 or value.shape[:2] != shape:
                    raise DataError(f"{name} has shape {value.shape}, expected {(*shape, 'k')}")
                setattr(self, name, value)
        if self.responses is not None:
            responses = np.asarray(self.responses, dtype=object)
            if responses.shape != shape:
                raise DataError(f"responses has shape {responses.shape}, expected {shape}")
            self.responses = responses
        if self.sample_responses is not None:
            per_sample = np.asarray(self.sample_responses, dtype=object)
            if per_sample.ndim != 3 or per_sample.shape[:2] != shape:
                raise DataError(
                    f"sample_responses has shape {per_sample.shape}, expected {(*shape, 'k')}"
                )
            self.sample_responses = per_sample
        if self.cost_basis not in COST_BASES:
            raise DataError(f"cost_basis {self.cost_basis!r} is not one of {', '.join(COST_BASES)}")
        if self.cost_basis == "unknown" and not np.isnan(self.cost).all():
            raise DataError("cost_basis is 'unknown' but the cost matrix holds values")

    # -- shape and names -------------------------------------------------------------------

    @property
    def n_prompts(self) -> int:
        return len(self.prompts)

    @property
    def n_models(self) -> int:
        return len(self.models)

    @property
    def model_names(self) -> list[str]:
        return [m.name for m in self.models]

    @property
    def prompt_ids(self) -> list[str]:
        return self.prompts["id"].tolist()

    @property
    def texts(self) -> list[str]:
        return self.prompts["text"].tolist()

    @property
    def tasks(self) -> np.ndarray:
        return self.prompts["task"].to_numpy(dtype=object)

    @property
    def has_costs(self) -> bool:
        return self.cost_basis != "unknown"

    @property
    def cost_is_proxy(self) -> bool:
        """True when costs are not USD per call (only their ratios mean something)."""
        return self.cost_basis in ("price_proxy", "unknown")

    def model_index(self, name: str) -> int:
        try:
            return self.model_names.index(name)
        except ValueError:
            raise DataError(
                f"unknown model {name!r}; the data has: {', '.join(self.model_names)}"
            ) from None

    def __len__(self) -> int:
        return self.n_prompts

    def __repr__(self) -> str:
        return (
            f"RoutingData({self.n_prompts} prompts x {self.n_models} models, "
            f"tasks={sorted(set(self.tasks))[:5]}, cost_basis={self.cost_basis!r})"
        )

    def describe_costs(self) -> str:
        """One line saying what the cost numbers mean, for every output that shows them."""
        return {
            "observed": "costs: observed USD per call",
            "tokens_x_price": "costs: USD per call from tokens x price",
            "price_proxy": "costs are proxies: one number per model (its price per 1M tokens, "
            "or a cost that is the same on every prompt) stands for its per-call cost "
            "(ratios only)",
            "unknown": "costs unknown: cost columns are NaN",
        }[self.cost_basis]

    def summary(self) -> dict[str, Any]:
        """What the data set holds, for `codyn info` and `codyn import`: sizes, models, tasks
        with counts, what costs mean, which optional matrices exist, and the notes."""
        tasks: dict[str, int] = {}
        for task in self.tasks:
            tasks[task] = tasks.get(task, 0) + 1
        return {
            "n_prompts": self.n_prompts,
            "models": [m.to_dict() for m in self.models],
            "tasks": dict(sorted(tasks.items())),
            "cost_basis": self.cost_basis,
            "cost_note": self.describe_costs(),
            "missing_scores": int(np.isnan(self.score).sum()),
            "has_tokens": self.tokens_in is not None,
            "has_samples": self.samples is not None,
            "has_responses": self.responses is not None or self.sample_responses is not None,
            "has_visible_score": self.visible_score is not None,
            "has_latency": self.latency is not None,
            "source": self.source,
            "notes": list(self.notes),
        }

    # -- selection ---------------------------------------------------------------------------

    def take(self, indices: Sequence[int] | np.ndarray) -> RoutingData:
        """Rows by position, in the given order."""
        idx = np.asarray(indices, dtype=np.int64)
        return self._replace(rows=idx, cols=np.arange(self.n_models))

    def subset(
        self,
        models: Iterable[str] | None = None,
        tasks: Iterable[str] | None = None,
        prompt_ids: Iterable[str] | None = None,
    ) -> RoutingData:
        """Keep the named models (in the given order), tasks and prompts."""
        cols = (
            np.arange(self.n_models)
            if models is None
            else np.array([self.model_index(m) for m in models], dtype=np.int64)
        )
        if len(cols) == 0:
            raise DataError("subset needs at least one model")
        mask = np.ones(self.n_prompts, dtype=bool)
        if tasks is not None:
            wanted = set(tasks)
            unknown = wanted - set(self.tasks)
            if unknown:
                raise DataError(
                    f"unknown task(s) {', '.join(sorted(unknown))}; the data has: "
                    f"{', '.join(sorted(set(self.tasks)))}"
                )
            mask &= np.isin(self.tasks, list(wanted))
        if prompt_ids is not None:
            mask &= self.prompts["id"].isin(set(prompt_ids)).to_numpy()
        return self._replace(rows=np.flatnonzero(mask), cols=cols)

    def split(self, test_size: float = 0.3, seed: int = 0) -> tuple[RoutingData, RoutingData]:
        """Deterministic train/test split, stratified by task.

        Within each task (in sorted order) the prompts are permuted with ``seed`` and the
        first ``round(test_size * n_task)`` go to test; a task with at least two prompts
        keeps at least one on each side.
        """
        if not 0.0 < test_size < 1.0:
            raise DataError(f"test_size must be between 0 and 1 (exclusive), got {test_size}")
        rng = np.random.default_rng(seed)
        test_rows: list[np.ndarray] = []
        for task in sorted(set(self.tasks)):
            rows = np.flatnonzero(self.tasks == task)
            rows = rows[rng.permutation(len(rows))]
            n_test = round(test_size * len(rows))
            if len(rows) >= 2:
                n_test = min(max(n_test, 1), len(rows) - 1)
            test_rows.append(rows[:n_test])
        test_idx = np.sort(np.concatenate(test_rows)) if test_rows else np.array([], dtype=int)
        train_mask = np.ones(self.n_prompts, dtype=bool)
        train_mask[test_idx] = False
        return self.take(np.flatnonzero(train_mask)), self.take(test_idx)

    def _replace(self, rows: np.ndarray, cols: np.ndarray) -> RoutingData:
        def pick(a: np.ndarray | None) -> np.ndarray | None:
            return None if a is None else a[np.ix_(rows, cols)]

        def pick_samples(a: np.ndarray | None) -> np.ndarray | None:
            return None if a is None else a[rows][:, cols, :]

        return RoutingData(
            prompts=self.prompts.iloc[rows].reset_index(drop=True),
            models=[self.models[c] for c in cols],
            score=self.score[np.ix_(rows, cols)],
            cost=pick(self.cost),
            tokens_in=pick(self.tokens_in),
            tokens_out=pick(self.tokens_out),
            samples=pick_samples(self.samples),
            responses=pick(self.responses),
            cost_basis=self.cost_basis,
            visible_score=pick(self.visible_score),
            visible_samples=pick_samples(self.visible_samples),
            latency=pick(self.latency),
            sample_responses=pick_samples(self.sample_responses),
            source=self.source,
            notes=list(self.notes),
        )

    # -- costs -----------------------------------------------------------------------------

    def mean_cost(self) -> np.ndarray:
        """Mean cost per call of each model over the prompts where it is known (NaN if never)."""
        counts = np.sum(~np.isnan(self.cost), axis=0)
        return np.where(counts > 0, np.nansum(self.cost, axis=0) / np.maximum(counts, 1), np.nan)

    # -- persistence -------------------------------------------------------------------------

    def save(self, path: str | Path) -> Path:
        """Write one Parquet file: a row per prompt, a list per matrix, models in metadata."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        columns: dict[str, Any] = {
            "id": self.prompts["id"].tolist(),
            "text": self.prompts["text"].tolist(),
            "task": self.prompts["task"].tolist(),
            "language": [v if isinstance(v, str) else None for v in self.prompts["language"]],
            "metadata": [json.dumps(m, sort_keys=True) for m in self.prompts["metadata"]],
            "score": list(self.score),
            "cost": list(self.cost),
        }
        for name in ("tokens_in", "tokens_out", "latency", "visible_score"):
            value = getattr(self, name)
            if value is not None:
                columns[name] = list(value)
        for name in ("samples", "visible_samples"):
            value = getattr(self, name)
            if value is not None:
                columns[name] = [row.tolist() for row in value]
        if self.responses is not None:
            columns["responses"] = [[_text(r) for r in row] for row in self.responses]
        if self.sample_responses is not None:
            columns["sample_responses"] = [
                [[_text(r) for r in cell] for cell in row] for row in self.sample_responses
            ]
        table = pa.table(columns)
        meta = {
            "codyn.format_version": str(FORMAT_VERSION),
            "codyn.models": json.dumps([m.to_dict() for m in self.models]),
            "codyn.cost_basis": self.cost_basis,
            "codyn.source": self.source,
            "codyn.notes": json.dumps(self.notes),
        }
        table = table.replace_schema_metadata({**(table.schema.metadata or {}), **meta})
        tmp = path.with_name(path.name + ".tmp")
        pq.write_table(table, tmp, compression="zstd")
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, path: str | Path) -> RoutingData:
        """Read a file written by `save` (any format version up to this release's)."""
        path = Path(path)
        if not path.exists():
            raise DataError("no such file", path=path)
        try:
            table = pq.read_table(path)
        except (pa.ArrowInvalid, OSError) as exc:
            raise DataError(f"not a readable Parquet file ({exc})", path=path) from None
        meta = {k.decode(): v.decode() for k, v in (table.schema.metadata or {}).items()}
        if "codyn.format_version" not in meta:
            raise DataError("not a codyn routing data file (no codyn.format_version)", path=path)
        version = int(meta["codyn.format_version"])
        if version > FORMAT_VERSION:
            raise DataError(
                f"format version {version} is newer than this codyn reads ({FORMAT_VERSION}); "
                "upgrade codyn",
                path=path,
            )
        models = [Model(**m) for m in json.loads(meta["codyn.models"])]
        cols = table.column_names
        n_models = len(models)

        def matrix(name: str) -> np.ndarray | None:
            if name not in cols:
                return None
            rows = table.column(name).to_pylist()
            if not rows:
                return np.empty((0, n_models))
            return np.array(
                [[np.nan if v is None else v for v in row] for row in rows], dtype=np.float64
            )

        prompts = pd.DataFrame(
            {
                "id": table.column("id").to_pylist(),
                "text": table.column("text").to_pylist(),
                "task": table.column("task").to_pylist(),
                "language": table.column("language").to_pylist(),
                "metadata": [json.loads(m) for m in table.column("metadata").to_pylist()],
            }
        )

        def cube(name: str) -> np.ndarray | None:
            if name not in cols:
                return None
            raw = table.column(name).to_pylist()
            return np.array(
                [[[np.nan if v is None else v for v in cell] for cell in row] for row in raw],
                dtype=np.float64,
            ).reshape(len(raw), n_models, -1)

        responses = None
        if "responses" in cols:
            raw = table.column("responses").to_pylist()
            responses = np.empty((len(raw), n_models), dtype=object)
            for i, row in enumerate(raw):
                responses[i, :] = row
        sample_responses = None
        if "sample_responses" in cols:
            raw = table.column("sample_responses").to_pylist()
            k = max((len(cell) for row in raw for cell in row), default=0)
            sample_responses = np.full((len(raw), n_models, k), None, dtype=object)
            for i, row in enumerate(raw):
                for j, cell in enumerate(row):
                    sample_responses[i, j, : len(cell)] = cell
        try:
            return cls(
                prompts=prompts,
                models=models,
                score=matrix("score"),
                cost=matrix("cost"),
                tokens_in=matrix("tokens_in"),
                tokens_out=matrix("tokens_out"),
                samples=cube("samples"),
                responses=responses,
                cost_basis=meta.get("codyn.cost_basis", "unknown"),
                visible_score=matrix("visible_score"),
                visible_samples=cube("visible_samples"),
                latency=matrix("latency"),
                sample_responses=sample_responses,
                source=meta.get("codyn.source", ""),
                notes=json.loads(meta.get("codyn.notes", "[]")),
            )
        except DataError as exc:
            raise DataError(exc.detail, path=path) from None

    # -- long format -------------------------------------------------------------------------

    def to_long(self) -> pd.DataFrame:
        """One row per (prompt, model): the generic long format `codyn import long` reads."""
        rows = []
        for i, prompt in enumerate(self.prompts.itertuples(index=False)):
            for j, model in enumerate(self.models):
                row: dict[str, Any] = {
                    "prompt_id": prompt.id,
                    "prompt": prompt.text,
                    "task": prompt.task,
                    "model": model.name,
                    "score": self.score[i, j],
                    "cost": self.cost[i, j],
                }
                if self.tokens_in is not None:
                    row["tokens_in"] = self.tokens_in[i, j]
                if self.tokens_out is not None:
                    row["tokens_out"] = self.tokens_out[i, j]
                if self.visible_score is not None:
                    row["visible_score"] = self.visible_score[i, j]
                if self.latency is not None:
                    row["latency_s"] = self.latency[i, j]
                if self.responses is not None:
                    row["response"] = self.responses[i, j]
                rows.append(row)
        return pd.DataFrame(rows)


def mark_constant_costs_as_proxy(data: RoutingData) -> None:
    """Relabel ``observed`` costs as ``price_proxy`` (with a note) when each model costs the
    same on every prompt, e.g. a cost column filled with one list price per model.

    Such costs rank the models but say nothing about which prompts are dear, so only their
    ratios mean something. The importers apply this to every data set they build; the
    `RoutingData` constructor does not, because a subset of truly observed costs (a single
    prompt, say) can be constant by chance. Needs two known costs for some model.
    """
    if data.cost_basis != "observed":
        return
    known = ~np.isnan(data.cost)
    if known.sum(axis=0).max(initial=0) < 2:
        return
    columns = data.cost[:, known.any(axis=0)]
    low, high = np.nanmin(columns, axis=0), np.nanmax(columns, axis=0)
    if not np.allclose(low, high, rtol=1e-9, atol=0.0):  # 1e-9: means of equal samples
        return
    data.cost_basis = "price_proxy"
    data.notes.append(
        f"costs are constant per model across all {data.n_prompts} prompts, so they were "
        "labelled price_proxy, not observed: they rank the models but do not vary by prompt"
    )


def _text(value: Any) -> str | None:
    """A response cell as Parquet keeps it: text, or None for a missing one."""
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else str(value)


def _normalise_prompts(prompts: pd.DataFrame | Sequence[dict[str, Any]]) -> pd.DataFrame:
    frame = pd.DataFrame(prompts).reset_index(drop=True).copy()
    for required in ("id", "text"):
        if required not in frame.columns:
            raise DataError(f"prompts need an {required!r} column", column=required)
    if "task" not in frame.columns:
        frame["task"] = "default"
    if "language" not in frame.columns:
        frame["language"] = None
    if "metadata" not in frame.columns:
        frame["metadata"] = [{} for _ in range(len(frame))]
    frame = frame[list(PROMPT_COLUMNS)]
    frame["id"] = frame["id"].astype(str)
    frame["text"] = frame["text"].astype(str)
    frame["task"] = frame["task"].fillna("default").astype(str)
    frame["language"] = pd.Series(
        [str(v) if isinstance(v, str) and v else None for v in frame["language"]], dtype=object
    )
    frame["metadata"] = [dict(m) if isinstance(m, dict) else {} for m in frame["metadata"]]
    ids = frame["id"]
    if (ids == "").any():
        raise DataError("prompt ids must be non-empty", column="id")
    repeated = ids[ids.duplicated()].unique().tolist()
    if repeated:
        raise DataError(f"prompt ids must be unique; repeated: {shown_list(repeated)}", column="id")
    return frame
