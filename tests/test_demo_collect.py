"""`codyn demo collect` end to end on real parts: the two local llama.cpp models answer
HumanEval tasks, the answers run in the bubblewrap sandbox, the data passes the headroom
analysis and trains the default router. Kept small for CI (`codyn demo collect --n 20` is the
full demo)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import codyn.cli.data_commands  # noqa: F401  (registers `codyn demo`)
from codyn.bench.local import STRONG, WEAK
from codyn.data.routing import RoutingData
from codyn.deploy import load_deployed
from tests.conftest import run_cli

pytestmark = pytest.mark.backend


def test_demo_collect_answers_scores_analyses_and_trains(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CODYN_CACHE_DIR", str(tmp_path / "cache"))
    out = tmp_path / "demo"
    result = run_cli("demo", "collect", "--n", "3", "--max-tokens", "256", "-o", out, "--json")
    assert result.code == 0, result.stderr
    summary = json.loads(result.stdout)
    assert {"n_prompts", "models", "calls", "failures", "executions", "headroom"} <= set(summary)
    assert summary["n_prompts"] == 3 and summary["models"] == [WEAK, STRONG]
    assert summary["calls"] + summary["failures"] >= 6 and summary["failures"] == 0
    assert summary["executions"] >= 6  # every answer ran in the sandbox at least once
    data = RoutingData.load(summary["output"])
    assert data.prompt_ids == ["humaneval/0", "humaneval/1", "humaneval/2"]
    assert not np.isnan(data.score).any() and not np.isnan(data.visible_score).any()
    assert ((data.score >= 0) & (data.score <= 1)).all()
    assert data.cost_basis == "tokens_x_price" and (data.cost > 0).all()
    assert data.responses[0, 1]  # the strong model's first answer is kept
    room = summary["headroom"]
    assert room["n_prompts"] == 3 and room["oracle_mean"] >= room["sbs_mean"]
    router, setup = load_deployed(summary["router"])
    assert router.model_names_ == [WEAK, STRONG] and setup.sbs in (WEAK, STRONG)
    checked = run_cli("headroom", summary["output"], "--json")  # the data a user gets back
    assert checked.code == 0 and json.loads(checked.stdout)["sbs_model"] == room["sbs_model"]
