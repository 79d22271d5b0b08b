"""scripts/peer_predictions.py reproduces an anchors' peer, and its file evaluates as a router."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd

from codyn.data.importers import read
from tests.conftest import run_cli

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "peer_predictions.py"


def test_routerbench_knn40_rerun_matches_the_anchors(benchmarks: Path, tmp_path: Path) -> None:
    folder = benchmarks / "routerbench"
    data = read("routerbench", [folder / "mbpp_train.csv", folder / "mbpp_test.csv"])
    data_file = data.save(tmp_path / "rb_mbpp.parquet")
    split = benchmarks / "anchors" / "splits" / "rb_mbpp.tsv"
    peer = tmp_path / "knn40.csv"
    env = {**os.environ, "CODYN_CACHE_DIR": str(tmp_path / "cache"), "HF_HUB_OFFLINE": "1"}
    args = [data_file, "--split-file", split, "--peer", "routerbench-knn40", "-o", peer]
    done = subprocess.run(
        [sys.executable, SCRIPT, *args],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    frame = pd.read_csv(peer)
    assert list(frame.columns) == ["prompt_sha1_16", "model", "value"]
    assert len(frame) == 128 * 11
    spec = f"predictions:{peer}"
    out = run_cli(
        "eval", data_file, "--split-file", split, "--routers", f"sbs,{spec}", "--reference", spec,
        "--json",
    )  # fmt: skip
    assert out.code == 0, out.stderr
    result = json.loads(out.stdout)
    # ANCHORS.md section A: routerbench-knn40 AIQ 0.686 (MiniLM, sklearn KNeighborsRegressor).
    assert abs(result["routers"][spec]["aiq"] - 0.686) < 0.003
    diff = result["routers"]["sbs"]["aiq_diff_vs_reference"]
    assert diff["lo"] <= diff["diff"] <= diff["hi"] and diff["diff"] < 0
