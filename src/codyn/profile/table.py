"""DynaRoute's offline recommendation (paper 002, section 2.2): benchmark scores -> tiers.

Per benchmark, each model's score becomes a Z-score across the models that have it. A
category's score for a model is the mean Z over the category's benchmarks (Table 5), a
missing score counting as Z = 0 ("this benchmark does not contribute to differentiation"),
and a model with none of them has no score there. Total cost = input + output price per 1M
tokens. Over the models with a score and a total cost, the 1/3 and 2/3 cost quantiles are
the thresholds; per category:

- Low cost: the best-scoring model costing at most the 1/3 quantile;
- Moderate cost: the best costing at most the 2/3 quantile;
- Best performance: the best, whatever it costs (ties -> cheaper).

That is the paper's text, and the `tiers` policy's rule, so `codyn profile table` shows
what the `profile` router decides. ``method="table6"`` reproduces Table 6 as printed, which
differs from the text in three ways: its "Avg Z-Score" is the mean raw score over the
benchmarks a model has (missing ones skipped), its Low tier is strictly below the 1/3
quantile, and its Moderate tier is the band from the 1/3 to the 2/3 quantile (Low excluded),
which is how Table 6 has rows whose Best model is cheaper than its Moderate one.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from codyn.errors import DataError
from codyn.profile.taxonomy import Taxonomy, data_file

FloatArray = NDArray[np.float64]
Method = Literal["paper", "table6"]
METHODS: tuple[Method, ...] = ("paper", "table6")
TIERS = ("low", "moderate", "best")
PRICE_COLUMNS = ("input_price", "output_price")


@dataclass(frozen=True)
class BenchmarkTable:
    """Models x benchmarks scores (NaN = missing) and prices per 1M tokens (Table 7)."""

    models: list[str]
    benchmarks: list[str]
    scores: FloatArray
    input_price: FloatArray
    output_price: FloatArray
    source: str = "models.csv"

    @property
    def total_cost(self) -> FloatArray:
        """Input + output price per 1M tokens, the cost DynaRoute tiers by (NaN if either is
        missing)."""
        return self.input_price + self.output_price

    def subset(self, models: Sequence[str]) -> BenchmarkTable:
        """The named models only, in that order (a one-line error names an unknown one)."""
        unknown = [m for m in models if m not in self.models]
        if unknown:
            raise DataError(f"{self.source}: no model named {unknown[0]!r} in the table")
        rows = [self.models.index(m) for m in models]
        return BenchmarkTable(
            models=list(models),
            benchmarks=self.benchmarks,
            scores=self.scores[rows],
            input_price=self.input_price[rows],
            output_price=self.output_price[rows],
            source=self.source,
        )


def load_benchmark_table(path: str | Path | None = None) -> BenchmarkTable:
    """Table 7 as shipped (``data/models.csv``) or a user's CSV with the same layout: a
    ``model`` column, one column per benchmark, ``input_price`` and ``output_price``; lines
    starting with ``#`` are comments; an empty cell is missing."""
    source = Path(path) if path is not None else data_file("models.csv")
    try:
        lines = source.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise DataError(f"{source}: cannot read the model table ({exc.strerror})") from None
    numbered = [(i + 1, line) for i, line in enumerate(lines) if line.strip()]
    numbered = [(n, line) for n, line in numbered if not line.lstrip().startswith("#")]
    if not numbered:
        raise DataError(f"{source}: no header row")
    rows = list(csv.reader(line for _, line in numbered))
    header = [h.strip() for h in rows[0]]
    if not header or header[0] != "model" or any(p not in header for p in PRICE_COLUMNS):
        raise DataError(
            f"{source}, line {numbered[0][0]}: the header must start with `model` and hold "
            "`input_price` and `output_price`"
        )
    benchmarks = [h for h in header[1:] if h not in PRICE_COLUMNS]
    if not benchmarks:
        raise DataError(f"{source}, line {numbered[0][0]}: no benchmark columns")
    models: list[str] = []
    values: list[list[float]] = []
    for (line_no, _), row in zip(numbered[1:], rows[1:], strict=True):
        if len(row) != len(header):
            raise DataError(
                f"{source}, line {line_no}: {len(row)} cells, the header has {len(header)}"
            )
        name = row[0].strip()
        if not name or name in models:
            raise DataError(f"{source}, line {line_no}: model name {name!r} is empty or repeated")
        parsed = []
        for column, cell in zip(header[1:], row[1:], strict=True):
            try:
                value = float(cell) if cell.strip() else np.nan
            except ValueError:
                raise DataError(
                    f"{source}, line {line_no}, {column}: {cell!r} is not a number"
                ) from None
            if not np.isnan(value) and (not np.isfinite(value) or value < 0):
                raise DataError(f"{source}, line {line_no}, {column}: {cell!r} is not >= 0")
            parsed.append(value)
        models.append(name)
        values.append(parsed)
    matrix = np.array(values, dtype=np.float64).reshape(len(models), len(header) - 1)
    column = {name: i for i, name in enumerate(header[1:])}
    return BenchmarkTable(
        models=models,
        benchmarks=benchmarks,
        scores=matrix[:, [column[b] for b in benchmarks]],
        input_price=matrix[:, column["input_price"]],
        output_price=matrix[:, column["output_price"]],
        source=str(source),
    )


def load_benchmark_map(
    path: str | Path | None = None,
    *,
    taxonomy: Taxonomy | None = None,
    benchmarks: Sequence[str] | None = None,
) -> dict[str, list[str]]:
    """Table 5: domain -> benchmark names (shipped ``data/benchmarks.yaml`` or a user's file).

    With ``taxonomy`` every key must be one of its domains; with ``benchmarks`` (the model
    table's columns) every benchmark named must be one of them.
    """
    from codyn.catalog import read_yaml

    source = Path(path) if path is not None else data_file("benchmarks.yaml")
    data = read_yaml(source)
    mapping: dict[str, list[str]] = {}
    for domain, names in data.items():
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise DataError(f"{source}: {domain} must be a list of benchmark names")
        if taxonomy is not None and domain not in taxonomy.domains:
            raise DataError(f"{source}: {domain!r} is not a domain of {taxonomy.source}")
        unknown = [n for n in names if benchmarks is not None and n not in benchmarks]
        if unknown:
            raise DataError(
                f"{source}: {domain}: benchmark {unknown[0]!r} is not a column of the model "
                f"table ({', '.join(benchmarks or [])})"
            )
        mapping[str(domain)] = list(names)
    return mapping


def z_scores(scores: FloatArray) -> FloatArray:
    """Per column (benchmark): ``(x - mean) / std`` over the models that have a score
    (population std); missing stays NaN, and a column with no spread is all 0."""
    known = ~np.isnan(scores)
    count = np.maximum(known.sum(axis=0), 1)
    filled = np.where(known, scores, 0.0)
    mean = filled.sum(axis=0) / count
    std = np.sqrt((np.where(known, filled - mean, 0.0) ** 2).sum(axis=0) / count)
    with np.errstate(invalid="ignore", divide="ignore"):
        z = (scores - mean) / std
    constant = ~(std > 0)
    z[:, constant] = np.where(np.isnan(scores[:, constant]), np.nan, 0.0)
    return z


def category_scores(
    scores: FloatArray,
    benchmarks: Sequence[str],
    benchmark_map: Mapping[str, Sequence[str]],
    method: Method = "paper",
) -> dict[str, FloatArray]:
    """Per category: one score per model (NaN where the model has none of its benchmarks).

    ``paper``: the mean Z over the category's benchmarks, a missing score counting as 0.
    ``table6``: the mean raw score over the benchmarks the model has (Table 6's numbers).
    Categories with no benchmark are left out.
    """
    values = z_scores(scores) if method == "paper" else scores
    columns = {name: i for i, name in enumerate(benchmarks)}
    result: dict[str, FloatArray] = {}
    for category, names in benchmark_map.items():
        if not names:
            continue
        block = values[:, [columns[n] for n in names]]
        known = ~np.isnan(block)
        count = known.sum(axis=1)
        total = np.where(known, block, 0.0).sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = total / (len(names) if method == "paper" else count)
        result[category] = np.where(count > 0, mean, np.nan)
    return result


@dataclass(frozen=True)
class Pick:
    """One cell of the recommendation: a model, its category score and its total cost."""

    model: str
    avg_z: float
    total_cost: float

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "avg_z": self.avg_z, "total_cost": self.total_cost}


@dataclass(frozen=True)
class Recommendation:
    """Table 6's row for one category: the Low / Moderate / Best picks."""

    category: str
    low: Pick
    moderate: Pick
    best: Pick

    @property
    def picks(self) -> tuple[Pick, Pick, Pick]:
        """Low, Moderate, Best: the picks for levels 1, 2, 3."""
        return self.low, self.moderate, self.best

    def to_dict(self) -> dict[str, Any]:
        return {
            "category": self.category,
            "low": self.low.to_dict(),
            "moderate": self.moderate.to_dict(),
            "best": self.best.to_dict(),
        }


def tier_picks(
    score: FloatArray, cost: FloatArray, method: Method = "paper"
) -> tuple[int, int, int] | None:
    """Indices of the Low, Moderate and Best models, or None when no model has both a
    score and a cost.

    Thresholds are the 1/3 and 2/3 cost quantiles (linear interpolation) over the models with
    both; ties in score go to the cheaper model, then to the earlier one.
    """
    valid = ~np.isnan(score) & ~np.isnan(cost)
    if not valid.any():
        return None
    low_cut, high_cut = np.quantile(cost[valid], [1 / 3, 2 / 3])
    if method == "paper":
        low, moderate = cost <= low_cut, cost <= high_cut
    else:
        low = cost < low_cut
        moderate = ~low & (cost <= high_cut)
    picks = []
    for allowed in (low, moderate, np.ones_like(valid)):
        rows = np.flatnonzero(valid & allowed)
        if rows.size == 0:  # an empty Low tier (every model tied at the cut): the next one up
            rows = np.flatnonzero(valid & moderate) if allowed is low else np.flatnonzero(valid)
        picks.append(int(rows[np.lexsort((rows, cost[rows], -score[rows]))[0]]))
    return picks[0], picks[1], picks[2]


def recommend(
    table: BenchmarkTable,
    benchmark_map: Mapping[str, Sequence[str]],
    method: Method = "paper",
) -> list[Recommendation]:
    """Table 6: per category (in the map's order) the Low / Moderate / Best picks."""
    if method not in METHODS:
        raise DataError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
    cost = table.total_cost
    rows = []
    for category, score in category_scores(
        table.scores, table.benchmarks, benchmark_map, method
    ).items():
        picks = tier_picks(score, cost, method)
        if picks is None:
            continue
        low, moderate, best = (
            Pick(table.models[i], float(score[i]), float(cost[i])) for i in picks
        )
        rows.append(Recommendation(category, low, moderate, best))
    return rows
