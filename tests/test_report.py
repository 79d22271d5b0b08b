"""HTML report: one offline file with the table values, embedded figures and router examples."""

from __future__ import annotations

import base64
import re
from pathlib import Path

import pytest

import codyn.cli.eval_command  # noqa: F401  (registers `codyn eval`)
from codyn.evaluate import EvaluationResult, evaluate
from codyn.report import write_report
from tests.conftest import run_cli
from tests.test_evaluate import NoisyOracle, make_data

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def result() -> EvaluationResult:
    train, test = make_data(n=160).split(0.5, seed=0)
    return evaluate(train, test, ["random", "sbs", NoisyOracle()], n_boot=50)


def test_report_is_self_contained_with_values_and_figures(
    result: EvaluationResult, tmp_path: Path
) -> None:
    page = write_report(result, tmp_path / "rep", title="Toy <eval>")
    html = page.read_text(encoding="utf-8")
    assert page.name == "index.html"
    assert "<title>Toy &lt;eval&gt;</title>" in html  # escaped
    for row in result.cells():  # every metrics-table cell is on the page
        for key in ("name", "aiq", "apgr", "cpt50", "cost_to_match_sbs", "aiq_diff_vs_zero"):
            assert f"<td>{row[key]}</td>" in html
    images = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html)
    assert len(images) == 3
    assert all(base64.b64decode(i).startswith(PNG_MAGIC) for i in images)
    assert not re.search(r'(src|href)="(https?:)?//', html)  # nothing fetched from outside
    for name in ("cost_quality", "pgr_share", "selection_share"):
        assert (tmp_path / "rep" / f"{name}.png").read_bytes().startswith(PNG_MAGIC)
        assert "<svg" in (tmp_path / "rep" / f"{name}.svg").read_text(encoding="utf-8")


def test_confidence_examples_only_for_learned_routers(
    result: EvaluationResult, tmp_path: Path
) -> None:
    html = write_report(result, tmp_path, title="t").read_text(encoding="utf-8")
    assert "noisy-oracle: most confident" in html
    assert "noisy-oracle: least confident" in html
    assert "sbs: most confident" not in html and "random: most confident" not in html
    noisy = result.routers["noisy-oracle"]
    top = int(noisy.confidence().argmax())
    assert result.test.texts[top] in html
    assert f"<code>{result.model_names[noisy.default_choices[top]]}</code>" in html


def test_report_without_costs_or_pair(tmp_path: Path) -> None:
    train, test = make_data(n=80, costs=False).split(0.5, seed=0)
    res = evaluate(train, test, ["random"], n_boot=10)
    html = write_report(res, tmp_path, title="no costs").read_text(encoding="utf-8")
    assert (tmp_path / "quality.png").exists() and not (tmp_path / "cost_quality.png").exists()
    assert "cost metrics n/a" in html
    pairless = ["tiny", "large"]
    res = evaluate(train.subset(models=pairless), test.subset(models=pairless), ["sbs"])
    write_report(res, tmp_path / "pairless", title="no pair")
    assert not (tmp_path / "pairless" / "pgr_share.png").exists()


def test_cli_writes_report(tmp_path: Path) -> None:
    data = make_data(n=100).save(tmp_path / "toy.parquet")
    out = run_cli("eval", data, "--routers", "random", "--report", tmp_path / "rep")
    assert out.code == 0, out.stderr
    assert "report:" in out.stdout
    assert (tmp_path / "rep" / "index.html").is_file()
