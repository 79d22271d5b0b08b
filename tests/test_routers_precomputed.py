"""`predictions:<file>` (`codyn.routers.precomputed`): another tool's per-prompt predictions read
from a file, replayed exactly, saved without the file, evaluated beside codyn's routers, and the
bad files a user can give it."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from codyn.data.importers import read
from codyn.data.routing import RoutingData
from codyn.data.splits import load_split_file, prompt_sha1_16
from codyn.errors import CodynError, DataError
from codyn.evaluate import evaluate
from codyn.routers import load_router, make_router
from codyn.routers.precomputed import PrecomputedRouter
from tests.conftest import run_cli


@pytest.fixture(scope="module")
def mbpp(benchmarks: Path) -> tuple[RoutingData, RoutingData]:
    folder = benchmarks / "routerbench"
    data = read("routerbench", [folder / "mbpp_train.csv", folder / "mbpp_test.csv"])
    return load_split_file(data, benchmarks / "anchors" / "splits" / "rb_mbpp.tsv")


def long_frame(keys: list[str], models: list[str], values: np.ndarray, key: str) -> pd.DataFrame:
    """One row per (prompt, model) with a known value (NaN cells are left out)."""
    rows = [
        {key: k, "model": m, "value": float(values[i, j])}
        for i, k in enumerate(keys)
        for j, m in enumerate(models)
        if not np.isnan(values[i, j])
    ]
    return pd.DataFrame(rows, columns=[key, "model", "value"])


def hand_data() -> RoutingData:
    return RoutingData(
        prompts=[{"id": f"p{i}", "text": f"prompt {i}"} for i in range(3)],
        models=["cheap", "dear"],
        score=np.array([[1.0, 1.0], [0.0, 1.0], [0.0, 0.0]]),
        cost=np.tile([1.0, 10.0], (3, 1)),
        cost_basis="observed",
    )


def write(tmp_path: Path, text: str, name: str = "peer.csv") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


GOOD = "prompt_id,model,value\np0,cheap,0.5\np0,dear,0.7\np1,cheap,0.1\np1,dear,0.9\n"


def test_replays_the_written_predictions_and_saves_without_the_file(mbpp, tmp_path) -> None:
    train, test = mbpp
    offset = 0.01 * np.arange(test.n_models)
    expected = test.score + offset  # distinct per model, so a column mix-up shows
    expected[3, 2] = np.nan  # a (prompt, model) pair the file lacks
    frame = long_frame(test.prompt_ids, test.model_names, expected, "prompt_id")
    extra = pd.DataFrame({"prompt_id": [test.prompt_ids[0]], "model": ["other"], "value": [9.0]})
    pd.concat([extra, frame]).to_csv(tmp_path / "peer.csv", index=False)
    router = make_router("predictions:" + str(tmp_path / "peer.csv")).fit(train)
    assert isinstance(router, PrecomputedRouter) and router.key_ == "prompt_id"
    predicted = router.predict(test)
    np.testing.assert_array_equal(predicted, expected)  # NaN where the file has no value
    np.testing.assert_array_equal(router.predict(test.take([5, 0])), expected[[5, 0]])

    # Keyed by text hash, as TSV: plain prompt strings are enough.
    sha1 = [prompt_sha1_16(t) for t in test.texts]
    long_frame(sha1, test.model_names, expected, "prompt_sha1_16").to_csv(
        tmp_path / "peer.tsv", sep="\t", index=False
    )
    by_text = make_router("predictions:" + str(tmp_path / "peer.tsv")).fit(train)
    np.testing.assert_array_equal(by_text.predict(test.texts), expected)
    np.testing.assert_array_equal(by_text.predict(test), expected)

    # Saved routers predict the same once the files are gone.
    for name, fitted in (("id", router), ("sha1", by_text)):
        directory = fitted.save(tmp_path / name)
        config = json.loads((directory / "router.json").read_text())
        assert config["family"] == "predictions" and len(config["state"]["keys"]) == len(test)
    (tmp_path / "peer.csv").unlink()
    (tmp_path / "peer.tsv").unlink()
    np.testing.assert_array_equal(load_router(tmp_path / "id").predict(test), expected)
    np.testing.assert_array_equal(load_router(tmp_path / "sha1").predict(test.texts), expected)


def test_parquet_and_both_keys_prefer_prompt_id(tmp_path) -> None:
    data = hand_data()
    frame = pd.DataFrame(
        {
            "prompt_id": ["p0", "p0", "p1", "p1", "p2", "p2"],
            # Wrong hashes: they must be ignored when prompt_id is there.
            "prompt_sha1_16": ["0" * 16] * 6,
            "model": ["cheap", "dear"] * 3,
            "value": [1500.0, 1480.0, 1200.0, 1300.5, 1.0, 2.0],  # Elo-like values are fine
        }
    )
    frame.to_parquet(tmp_path / "peer.parquet")
    router = PrecomputedRouter(str(tmp_path / "peer.parquet")).fit(data)
    np.testing.assert_array_equal(
        router.predict(data), [[1500.0, 1480.0], [1200.0, 1300.5], [1.0, 2.0]]
    )
    frame.loc[4, "value"] = np.nan
    frame.to_parquet(tmp_path / "bad.parquet")
    with pytest.raises(
        DataError, match=r"column 'value': value must be a finite number, got nan \(row 5\)"
    ):
        PrecomputedRouter(str(tmp_path / "bad.parquet")).fit(data)


def test_true_scores_evaluate_at_least_as_well_as_the_sbs(mbpp, tmp_path) -> None:
    train, test = mbpp
    path = tmp_path / "true.csv"
    long_frame(test.prompt_ids, test.model_names, test.score, "prompt_id").to_csv(path, index=False)
    result = evaluate(train, test, ["sbs", PrecomputedRouter(str(path))], n_boot=50)
    true, sbs = result.routers["predictions"], result.routers["sbs"]
    assert true.aiq >= sbs.aiq + 0.01
    assert true.q_at_default == pytest.approx(test.score.max(axis=1).mean(), abs=1e-12)
    assert true.q_at_default > sbs.q_at_default
    low, _, high = true.aiq_diff_vs_zero
    assert math.isfinite(low) and math.isfinite(high)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("prompt_id,model\np0,cheap\n", "missing value"),
        ("prompt_id,value\np0,0.5\n", "missing model"),
        ("id,model,value\np0,cheap,0.5\n", "missing prompt_id or prompt_sha1_16"),
        (
            GOOD + "p2,cheap,high\n",
            r"line 6, column 'value': value must be a finite number, got 'high'",
        ),
        (
            GOOD.replace("0.9", "inf"),
            r"line 5, column 'value': value must be a finite number, got 'inf'",
        ),
        (GOOD.replace("0.9", ""), r"line 5, column 'value': value must be a finite number, got ''"),
        (
            GOOD + "p1,cheap,0.3\n",
            r"line 6: duplicate prediction for prompt_id 'p1', model "
            r"'cheap', first given on line 4",
        ),
        (GOOD.replace("dear", "gpt"), r"no predictions for model\(s\) dear"),
        (
            "prompt_sha1_16,model,value\nabc,cheap,1\n",
            "line 2, column 'prompt_sha1_16': prompt_sha1_16 must be 16 hex",
        ),
        ("prompt_id,model,value\n,cheap,1\n", "line 2, column 'prompt_id': empty prompt_id"),
        ("", "empty predictions file"),
    ],
)
def test_bad_files_are_a_data_error_naming_the_file(tmp_path, text: str, message: str) -> None:
    path = write(tmp_path, text)
    router = make_router("predictions:" + path)
    with pytest.raises(DataError, match=message) as info:
        router.fit(hand_data())
    assert info.value.path == path
    assert not hasattr(router, "model_names_")  # a failed fit does not look fitted


@pytest.mark.parametrize(
    ("name", "message"),
    [("absent.csv", "no such predictions file"), ("peer.json", "must end in .csv, .tsv")],
)
def test_missing_or_unknown_files(tmp_path, name: str, message: str) -> None:
    with pytest.raises(DataError, match=message):
        PrecomputedRouter(str(tmp_path / name)).fit(hand_data())


def test_prompts_the_file_lacks_and_strings_for_an_id_keyed_file(tmp_path) -> None:
    data = hand_data()
    router = PrecomputedRouter(write(tmp_path, GOOD)).fit(data)
    np.testing.assert_array_equal(router.predict(data.take([1, 0])), [[0.1, 0.9], [0.5, 0.7]])
    with pytest.raises(CodynError, match=r"1 of 3 prompt\(s\) have no predictions .* 'p2'"):
        router.predict(data)
    with pytest.raises(CodynError, match="keyed by prompt_id: predict needs the RoutingData"):
        router.predict(["prompt 0"])
    hashed = "prompt_sha1_16,model,value\n" + "".join(
        f"{prompt_sha1_16(f'prompt {i}').upper()},{m},{i}\n"
        for i, m in ((0, "cheap"), (1, "cheap"), (0, "dear"))
    )
    by_text = PrecomputedRouter(write(tmp_path, hashed, "hashed.csv")).fit(data)
    np.testing.assert_array_equal(by_text.predict(["prompt 1"]), [[1.0, np.nan]])
    np.testing.assert_array_equal(by_text.predict(["prompt 0"]), [[0.0, 0.0]])
    with pytest.raises(CodynError, match=r"1 of 2 prompt\(s\) .* first is prompt_sha1_16 "):
        by_text.predict(["prompt 0", "unknown"])
    with pytest.raises(CodynError, match=r"use predictions:<path>"):
        make_router("predictions")


def test_codyn_eval_compares_a_predictions_file_with_sbs(mbpp, benchmarks, tmp_path) -> None:
    train, test = mbpp
    data_path, peer = tmp_path / "mbpp.parquet", tmp_path / "peer.csv"
    RoutingData(
        pd.concat([train.prompts, test.prompts], ignore_index=True),
        train.models,
        np.vstack([train.score, test.score]),
        np.vstack([train.cost, test.cost]),
        cost_basis=train.cost_basis,
    ).save(data_path)
    noisy = test.score + np.random.default_rng(0).normal(0, 0.3, test.score.shape)
    long_frame(test.prompt_ids, test.model_names, noisy, "prompt_id").to_csv(peer, index=False)
    split = benchmarks / "anchors" / "splits" / "rb_mbpp.tsv"
    spec = f"predictions:{peer}"
    result = run_cli(
        "eval", data_path, "--routers", f"sbs,{spec}", "--split-file", split, "--json",
        "--points", "20",
    )  # fmt: skip
    assert result.code == 0, result.stderr
    routers = json.loads(result.stdout)["routers"]
    assert set(routers) == {"sbs", spec}
    assert routers[spec]["family"] == "predictions"
    assert math.isfinite(routers[spec]["aiq"]) and routers[spec]["aiq"] != routers["sbs"]["aiq"]
    missing = run_cli("eval", data_path, "--routers", "predictions:nope.csv", "--split-file", split)
    assert missing.code == 1 and "nope.csv: no such predictions file" in missing.stderr
