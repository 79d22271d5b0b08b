"""`codyn demo`: the bundled data loads, and the demo prints headroom and writes its report."""

from __future__ import annotations

import json

import pytest

from codyn.analysis import headroom
from codyn.data.demo import load_demo
from tests.conftest import run_cli


def test_demo_data_is_the_documented_llmrouter_slice():
    data = load_demo()
    assert data.n_models == 9 and data.cost_basis == "price_proxy"
    tasks = set(data.tasks)
    assert {"mbpp", "human_eval"} <= tasks and len(tasks) == 14
    assert all(m.input_price is not None for m in data.models)
    assert "MIT" in data.source


def test_demo_prints_headroom_and_writes_the_report(tmp_path):
    result = run_cli("demo", "--report", tmp_path / "report", "--json")
    assert result.code == 0, result.stderr
    payload = json.loads(result.stdout)
    expected = headroom(load_demo(), by_task=True)
    assert payload["headroom"]["oracle_gap"] == pytest.approx(expected["oracle_gap"])
    evaluation = payload["evaluation"]
    assert evaluation["oracle"]["aiq"] >= max(r["aiq"] for r in evaluation["routers"].values())
    assert (tmp_path / "report" / "index.html").stat().st_size > 10_000
