"""Benchmark-dataset similarity and contamination (RouteLLM app. B-C): library and CLI."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from codyn.data import importers
from codyn.data.routing import RoutingData
from codyn.errors import DataError
from codyn.similarity import benchmark_similarity, embed_texts, near_duplicates
from tests.conftest import run_cli

# Hand-worked 2-D example. Training prompts at 0 and 90 degrees; benchmark prompts at 0, 30 and
# 45 degrees (the last given unnormalised, length 2, to check the L2 normalisation).
TRAIN = np.array([[1.0, 0.0], [0.0, 1.0]])
BENCH = np.array(
    [
        [1.0, 0.0],  # cos to train 0 = 1
        [math.cos(math.pi / 6), math.sin(math.pi / 6)],  # best: train 0, cos 30deg = 0.8660
        [2.0, 2.0],  # tie at cos 45deg = 0.7071 (argmax takes train 0)
    ]
)


def test_benchmark_similarity_hand_worked() -> None:
    expected = (1.0 + math.sqrt(3) / 2 + math.sqrt(0.5)) / 3  # 0.8577
    assert benchmark_similarity(TRAIN, BENCH) == pytest.approx(expected, abs=1e-6)
    # Swapping sides is a different question: each train prompt's best benchmark match.
    # train 0 -> bench 0 (1.0); train 1 -> bench 2 (0.7071).
    assert benchmark_similarity(BENCH, TRAIN) == pytest.approx((1 + math.sqrt(0.5)) / 2, abs=1e-6)


def test_near_duplicates_hand_worked() -> None:
    pairs = near_duplicates(TRAIN, BENCH, threshold=0.95)
    assert [(b, t) for b, t, _ in pairs] == [(0, 0)]
    assert pairs[0][2] == pytest.approx(1.0, abs=1e-6)
    pairs = near_duplicates(TRAIN, BENCH, threshold=0.8)
    assert [(b, t) for b, t, _ in pairs] == [(0, 0), (1, 0)]
    assert pairs[1][2] == pytest.approx(math.sqrt(3) / 2, abs=1e-6)
    assert len(near_duplicates(TRAIN, BENCH, threshold=0.7)) == 3


def test_bad_inputs_are_one_line_errors() -> None:
    with pytest.raises(DataError, match="widths differ"):
        benchmark_similarity(TRAIN, np.ones((2, 3)))
    with pytest.raises(DataError, match="empty"):
        benchmark_similarity(np.zeros((0, 2)), BENCH)
    with pytest.raises(DataError, match="threshold"):
        near_duplicates(TRAIN, BENCH, threshold=1.5)


def test_chunking_matches_full_matrix(monkeypatch: pytest.MonkeyPatch) -> None:
    import codyn.similarity as sim

    rng = np.random.default_rng(0)
    train, bench = rng.normal(size=(50, 8)), rng.normal(size=(37, 8))
    full_index, full_cosine = sim.best_matches(train, bench)
    monkeypatch.setattr(sim, "_CHUNK_BYTES", 4 * 50 * 3)  # 3 benchmark rows per block: 13 blocks
    index, cosine = sim.best_matches(train, bench)
    tn = train / np.linalg.norm(train, axis=1, keepdims=True)
    bn = bench / np.linalg.norm(bench, axis=1, keepdims=True)
    exact = bn @ tn.T  # float64 reference
    ranked = np.sort(exact, axis=1)
    assert (ranked[:, -1] - ranked[:, -2]).min() > 1e-3  # no near-ties: argmax is well defined
    # The cosines are float32 products: BLAS kernels (they differ by CPU and by block shape)
    # round differently by a few float32 epsilons (1.2e-7), so 1e-6 is the tolerance; a row
    # taken from the wrong block or pair would be off by far more (random cosines of 8-D rows).
    np.testing.assert_array_equal(index, full_index)
    np.testing.assert_array_equal(index, exact.argmax(axis=1))
    np.testing.assert_allclose(cosine, full_cosine, rtol=0, atol=1e-6)
    np.testing.assert_allclose(cosine, exact.max(axis=1), rtol=0, atol=1e-6)
    assert sim.benchmark_similarity(train, bench) == pytest.approx(
        exact.max(axis=1).mean(), abs=1e-6
    )


def test_identical_texts_score_one_and_are_flagged() -> None:
    texts = ["Write a function that reverses a linked list.", "What is the capital of France?"]
    train, bench = embed_texts(texts, texts, "static")
    assert benchmark_similarity(train, bench) == pytest.approx(1.0, abs=1e-6)
    assert [(b, t) for b, t, _ in near_duplicates(train, bench, 0.95)] == [(0, 0), (1, 1)]
    assert len(near_duplicates(train, bench, 1.0)) == 2  # float32 rounding does not hide them


def _save(path: Path, rows: list[tuple[str, str]]) -> Path:
    data = RoutingData(
        prompts=[{"id": i, "text": t, "task": "demo"} for i, t in rows],
        models=["a", "b"],
        score=np.tile([1.0, 0.0], (len(rows), 1)),
    )
    return data.save(path)


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    train = _save(
        tmp_path / "train.parquet",
        [
            ("t1", "Write a Python function that reverses a singly linked list in place."),
            ("t2", "Explain the difference between a process and a thread."),
            ("t3", "Sort a list of integers with merge sort and give its complexity."),
        ],
    )
    bench = _save(
        tmp_path / "bench.parquet",
        [
            ("b1", "Write a Python function that reverses a singly linked list in place."),
            ("b2", "What is the boiling point of water at the top of Mount Everest?"),
            ("b3", "Name three painters of the Dutch Golden Age."),
        ],
    )
    return train, bench


def test_cli_similarity(files: tuple[Path, Path]) -> None:
    train, bench = files
    res = run_cli("similarity", train, bench, "--json")
    assert res.code == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["n_train"] == 3 and out["n_bench"] == 3 and out["featuriser"] == "static"
    assert 0 < out["similarity"] < 1
    res = run_cli("similarity", train, train)
    assert res.code == 0 and "similarity 1.0000" in res.stdout


def test_cli_contamination_and_drop(files: tuple[Path, Path], tmp_path: Path) -> None:
    train, bench = files
    res = run_cli("contamination", train, bench)
    assert res.code == 0, res.stderr
    assert "b1" in res.stdout and "t1" in res.stdout and "1 of 3" in res.stdout

    out_path = tmp_path / "clean.parquet"
    res = run_cli("contamination", train, bench, "--drop", "-o", out_path, "--json")
    assert res.code == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["threshold"] == 0.95 and out["n_bench"] == 3 and out["n_contaminated"] == 1
    assert [(p["bench_id"], p["train_id"]) for p in out["pairs"]] == [("b1", "t1")]
    assert out["pairs"][0]["cosine"] == pytest.approx(1.0, abs=1e-6)
    assert out["written"] == str(out_path)
    clean = RoutingData.load(out_path)
    assert clean.prompt_ids == ["b2", "b3"]
    assert any("contamination" in n and "train.parquet" in n for n in clean.notes)


def test_cli_contamination_errors(files: tuple[Path, Path], tmp_path: Path) -> None:
    train, bench = files
    before = bench.read_bytes()
    res = run_cli("contamination", train, bench, "--drop", "-o", bench)
    assert res.code == 1 and "refusing to overwrite" in res.stderr
    assert bench.read_bytes() == before
    res = run_cli("contamination", train, bench, "--drop")
    assert res.code == 1 and "--drop needs -o" in res.stderr
    res = run_cli("similarity", train, tmp_path / "missing.parquet")
    assert res.code == 1 and "no such file" in res.stderr
    res = run_cli("similarity", train, bench, "--featuriser", "nope")
    assert res.code == 1 and "unknown featuriser" in res.stderr


def test_routellm_gsm8k_halves(benchmarks: Path) -> None:
    data = importers.read("routellm", [benchmarks / "routellm" / "gsm8k"], keep_contaminated=True)
    half = data.n_prompts // 2
    first, second = data.take(range(half)), data.take(range(half, data.n_prompts))
    train, bench = embed_texts(first.texts, second.texts, "static")
    cross = benchmark_similarity(train, bench)
    assert 0.5 < cross < 1.0  # same benchmark, different questions
    assert benchmark_similarity(train, train) == pytest.approx(1.0, abs=1e-6)
    assert len(near_duplicates(train, bench)) < 0.05 * bench.shape[0]
