"""RoutingData: validation, selection, deterministic splits and the Parquet round trip."""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import pytest

from codyn.data.routing import FORMAT_VERSION, Model, RoutingData, mark_constant_costs_as_proxy
from codyn.errors import DataError


def make_data(n: int = 12, tasks: tuple[str, ...] = ("code", "math")) -> RoutingData:
    rng = np.random.default_rng(0)
    prompts = [
        {
            "id": f"p{i}",
            "text": f"prompt {i}",
            "task": tasks[i % len(tasks)],
            "language": "python" if i % 2 == 0 else None,
            "metadata": {"k": i},
        }
        for i in range(n)
    ]
    score = rng.integers(0, 2, size=(n, 3)).astype(float)
    score[0, 1] = np.nan
    cost = np.tile([0.01, 0.1, 1.0], (n, 1))
    samples = rng.integers(0, 2, size=(n, 3, 4)).astype(float)
    responses = np.array([[f"r{i}{j}" for j in range(3)] for i in range(n)], dtype=object)
    responses[1, 2] = None
    return RoutingData(
        prompts=prompts,
        models=[Model("small", 0.1, 0.2), Model("mid", 1.0, 2.0), Model("big")],
        score=score,
        cost=cost,
        tokens_in=np.full((n, 3), 10.0),
        tokens_out=np.full((n, 3), 20.0),
        samples=samples,
        responses=responses,
        cost_basis="observed",
        visible_score=np.clip(score + 0.5, 0, 1),
        visible_samples=samples[:, :, ::-1],
        latency=np.full((n, 3), 0.25),
        sample_responses=np.array(
            [[[f"r{i}{j}s{k}" for k in range(4)] for j in range(3)] for i in range(n)], dtype=object
        ),
        source="unit test",
        notes=["hand-made"],
    )


def test_round_trip_keeps_everything(tmp_path):
    data = make_data()
    path = data.save(tmp_path / "d.parquet")
    back = RoutingData.load(path)
    assert back.prompt_ids == data.prompt_ids
    assert back.model_names == ["small", "mid", "big"]
    assert back.models[0] == Model("small", 0.1, 0.2)
    np.testing.assert_array_equal(back.score, data.score)
    np.testing.assert_array_equal(back.cost, data.cost)
    np.testing.assert_array_equal(back.samples, data.samples)
    np.testing.assert_array_equal(back.tokens_out, data.tokens_out)
    assert back.responses[1, 2] is None and back.responses[3, 1] == "r31"
    assert back.prompts["metadata"][5] == {"k": 5}
    assert back.prompts["language"][1] is None
    assert back.cost_basis == "observed" and back.notes == ["hand-made"]
    np.testing.assert_array_equal(back.visible_score, data.visible_score)
    np.testing.assert_array_equal(back.visible_samples, data.visible_samples)
    np.testing.assert_array_equal(back.latency, data.latency)
    picked = back.take([3, 1]).subset(models=["big", "small"])
    assert picked.visible_samples[0, 0].tolist() == data.visible_samples[3, 2].tolist()
    assert picked.latency.shape == (2, 2)
    assert back.sample_responses[3, 1, 2] == "r31s2" and picked.sample_responses[1, 1, 0] == "r10s0"


def test_version_1_files_still_load(tmp_path):
    """A file from before visible_score / latency existed: the same columns, version 1."""
    data = make_data()
    old = RoutingData(data.prompts, data.models, data.score, cost=data.cost, cost_basis="observed")
    path = old.save(tmp_path / "v1.parquet")
    table = pq.read_table(path)
    meta = dict(table.schema.metadata)
    meta[b"codyn.format_version"] = b"1"
    pq.write_table(table.replace_schema_metadata(meta), path)
    back = RoutingData.load(path)
    np.testing.assert_array_equal(back.score, data.score)
    assert back.visible_score is None and back.latency is None


def test_newer_format_version_is_refused(tmp_path):
    path = make_data().save(tmp_path / "d.parquet")
    table = pq.read_table(path)
    meta = dict(table.schema.metadata)
    meta[b"codyn.format_version"] = str(FORMAT_VERSION + 1).encode()
    pq.write_table(table.replace_schema_metadata(meta), path)
    with pytest.raises(DataError, match=rf"d\.parquet.*format version {FORMAT_VERSION + 1} is"):
        RoutingData.load(path)


def test_not_parquet_and_missing_file(tmp_path):
    bad = tmp_path / "bad.parquet"
    bad.write_text("hello")
    with pytest.raises(DataError, match=r"bad\.parquet"):
        RoutingData.load(bad)
    with pytest.raises(DataError, match="no such file"):
        RoutingData.load(tmp_path / "absent.parquet")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"score": np.zeros((2, 3))}, "shape"),
        ({"score": np.array([[np.inf, 0], [0, 0]])}, "infinite"),
        ({"cost": np.array([[-1.0, 0], [0, 0]]), "cost_basis": "observed"}, "negative"),
        ({"models": ["a", "a"]}, "unique"),
        ({"prompts": [{"id": "x", "text": "a"}, {"id": "x", "text": "b"}]}, "repeated: x"),
        ({"cost": np.ones((2, 2))}, "cost_basis is 'unknown'"),
        ({"cost_basis": "guess"}, "not one of"),
    ],
)
def test_validation(change, message):
    args = {
        "prompts": [{"id": "x", "text": "a"}, {"id": "y", "text": "b"}],
        "models": ["a", "b"],
        "score": np.zeros((2, 2)),
    }
    args.update(change)
    with pytest.raises(DataError, match=message):
        RoutingData(**args)


def test_split_is_deterministic_stratified_and_disjoint():
    data = make_data(n=40, tasks=("code", "math", "chat", "chat"))
    train, test = data.split(test_size=0.25, seed=3)
    again_train, again_test = data.split(test_size=0.25, seed=3)
    assert test.prompt_ids == again_test.prompt_ids and train.prompt_ids == again_train.prompt_ids
    assert set(train.prompt_ids).isdisjoint(test.prompt_ids)
    assert len(train) + len(test) == 40
    # 10 code, 10 math, 20 chat prompts: a quarter of each goes to test.
    assert sorted(test.tasks.tolist()).count("chat") == 5
    assert sorted(test.tasks.tolist()).count("code") == 2  # round(2.5) == 2 (banker's)
    other = data.split(test_size=0.25, seed=4)[1]
    assert other.prompt_ids != test.prompt_ids
    # the test rows keep their matrices aligned
    row = data.prompt_ids.index(test.prompt_ids[0])
    np.testing.assert_array_equal(test.samples[0], data.samples[row])


def test_split_keeps_both_sides_of_small_tasks():
    data = make_data(n=4, tasks=("a", "b"))
    train, test = data.split(test_size=0.1, seed=0)
    assert sorted(train.tasks.tolist()) == ["a", "b"] and sorted(test.tasks.tolist()) == ["a", "b"]


def test_subset_models_and_tasks_keep_given_order():
    data = make_data()
    sub = data.subset(models=["big", "small"], tasks=["math"])
    assert sub.model_names == ["big", "small"]
    assert set(sub.tasks) == {"math"}
    np.testing.assert_array_equal(sub.score, data.score[data.tasks == "math"][:, [2, 0]])
    np.testing.assert_array_equal(sub.samples, data.samples[data.tasks == "math"][:, [2, 0], :])
    with pytest.raises(DataError, match="unknown model 'huge'"):
        data.subset(models=["huge"])
    with pytest.raises(DataError, match="unknown task"):
        data.subset(tasks=["poetry"])


def test_mean_cost_ignores_unknown_cells():
    data = RoutingData(
        prompts=[{"id": "a", "text": "a"}, {"id": "b", "text": "b"}],
        models=["m1", "m2"],
        score=np.zeros((2, 2)),
        cost=np.array([[1.0, np.nan], [3.0, np.nan]]),
        cost_basis="observed",
    )
    mean = data.mean_cost()
    assert mean[0] == 2.0 and np.isnan(mean[1])


def test_long_round_trip_frame():
    data = make_data(n=3)
    long = data.to_long()
    assert len(long) == 9
    assert list(long.columns[:4]) == ["prompt_id", "prompt", "task", "model"]


def test_summary_counts_tasks_missing_scores_and_optional_parts():
    summary = make_data(n=6).summary()
    assert summary["n_prompts"] == 6 and summary["tasks"] == {"code": 3, "math": 3}
    assert summary["missing_scores"] == 1  # the NaN at [0, 1]
    assert summary["has_samples"] and summary["has_responses"] and summary["has_tokens"]
    assert summary["cost_note"] == "costs: observed USD per call"
    assert [m["name"] for m in summary["models"]] == ["small", "mid", "big"]


def test_constant_observed_costs_become_a_price_proxy():
    data = make_data(n=4)  # observed costs 0.01, 0.1, 1.0 on every prompt
    mark_constant_costs_as_proxy(data)
    assert data.cost_basis == "price_proxy" and "constant per model" in data.notes[-1]
    assert "ratios only" in data.describe_costs()
    varied = make_data(n=4)
    varied.cost[3, 2] = 2.0
    varied.cost[1, 0] = np.nan  # unknown cells are not evidence either way
    mark_constant_costs_as_proxy(varied)
    assert varied.cost_basis == "observed"


def test_one_known_cost_per_model_is_no_evidence_of_a_proxy():
    single = make_data(n=2).take([0])
    notes = list(single.notes)
    mark_constant_costs_as_proxy(single)
    assert single.cost_basis == "observed" and single.notes == notes
    sparse = make_data(n=3)
    sparse.cost[1:, :] = np.nan
    mark_constant_costs_as_proxy(sparse)
    assert sparse.cost_basis == "observed"
