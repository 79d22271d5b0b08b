"""`codyn train / route / calibrate / bench route` end to end on RouterBench MBPP, and the
bad inputs a user can give them: each a one-line error and exit code 1, never a traceback."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

import codyn.cli.router_commands  # noqa: F401  (registers the commands)
from codyn.cli.options import parse_params
from codyn.data.importers import read
from codyn.data.splits import load_split_file
from codyn.deploy import POLICY_FILE, PolicySetup, load_deployed, route
from codyn.errors import CodynError
from tests.conftest import run_cli

PROMPT = "Write a python function to find the first repeated character in a given string."


@pytest.fixture(scope="module")
def files(benchmarks: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """MBPP as a parquet file, its split file, the test half alone, and a trained knn."""
    folder = tmp_path_factory.mktemp("router_cli")
    source = benchmarks / "routerbench"
    data = read("routerbench", [source / "mbpp_train.csv", source / "mbpp_test.csv"])
    split = benchmarks / "anchors" / "splits" / "rb_mbpp.tsv"
    paths = {"data": folder / "mbpp.parquet", "split": split, "val": folder / "val.parquet"}
    data.save(paths["data"])
    load_split_file(data, split)[1].save(paths["val"])
    paths["router"] = folder / "knn"
    result = run_cli(
        "train", paths["data"], "--router", "knn", "--param", "k=20",
        "--param", "featuriser=structure", "--split-file", split, "-o", paths["router"], "--json",
    )  # fmt: skip
    assert result.code == 0, result.stderr
    return paths


def test_parse_params_reads_json_values_else_strings() -> None:
    assert parse_params(["k=40", "weights=similarity", "alpha=0.5", "featuriser=a+b"]) == {
        "k": 40,
        "weights": "similarity",
        "alpha": 0.5,
        "featuriser": "a+b",
    }
    with pytest.raises(CodynError, match="NAME=VALUE"):
        parse_params(["k"])


def test_train_writes_router_and_policy(files) -> None:
    router, setup = load_deployed(files["router"])
    assert router.get_params()["k"] == 20 and len(setup.model_costs) == 11
    assert setup.knob is None and setup.calibration is None  # the policy's default: lambda 0
    assert setup.policy == {"name": "utility"} and setup.sbs == "gpt-4-1106-preview"
    assert 0.0 in setup.knob_grid and min(setup.knob_grid) < 0 < max(setup.knob_grid)
    assert router.model_names_ == setup.model_names


def test_route_prints_choice_and_every_models_prediction(files) -> None:
    result = run_cli("route", "--router", files["router"], PROMPT, "--json")
    assert result.code == 0, result.stderr
    out = json.loads(result.stdout)
    assert len(out["models"]) == 11 and out["truncated"] is False
    best = max(out["models"], key=lambda m: (m["predicted_quality"], -m["cost"]))
    assert out["model"] == best["model"] and out["knob"] == 0.0
    text = run_cli("route", "--router", files["router"], PROMPT)
    assert text.code == 0 and out["model"] in text.stdout and "predicted quality" in text.stdout


def test_target_cost_picks_the_best_model_within_it(files) -> None:
    result = run_cli(
        "route", "--router", files["router"], PROMPT, "--target-cost", "2e-4", "--json"
    )
    out = json.loads(result.stdout)
    affordable = [m for m in out["models"] if m["cost"] <= 2e-4]
    assert out["model"] == max(affordable, key=lambda m: m["predicted_quality"])["model"]


def test_calibrate_stores_the_knob_that_route_then_uses(files, tmp_path) -> None:
    router_dir = tmp_path / "knn"
    router_dir.mkdir()
    for name in ("router.json", "weights.npz", POLICY_FILE):
        (router_dir / name).write_bytes((files["router"] / name).read_bytes())
    result = run_cli(
        "calibrate", "--router", router_dir, "--data", files["val"], "--target-cost", "5e-4"
    )
    assert result.code == 0, result.stderr
    assert "meets cost <= 0.0005" in result.stdout
    setup = PolicySetup.read(router_dir)
    assert setup.knob > 0 and setup.calibration["cost"] <= 5e-4
    out = json.loads(run_cli("route", "--router", router_dir, PROMPT, "--json").stdout)
    assert out["knob"] == setup.knob and out["knob_source"] == "calibrated"
    unreachable = run_cli(
        "calibrate", "--router", router_dir, "--data", files["val"], "--target-quality", "0.99"
    )
    assert unreachable.code == 1 and "not reachable" in unreachable.stderr
    assert PolicySetup.read(router_dir).knob == setup.knob  # a failed calibration changes nothing
    no_target = run_cli("calibrate", "--router", router_dir, "--data", files["val"])
    assert no_target.code == 1 and "give exactly one of --target-cost" in no_target.stderr


def test_route_reads_the_prompt_from_stdin(files, monkeypatch) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(PROMPT))
    from_stdin = json.loads(run_cli("route", "--router", files["router"], "-", "--json").stdout)
    given = json.loads(run_cli("route", "--router", files["router"], PROMPT, "--json").stdout)
    assert from_stdin == given


def test_bench_route_json(files) -> None:
    result = run_cli(
        "bench", "route", "--router", files["router"], "--n", "30", "--warmup", "3", "--json"
    )
    assert result.code == 0, result.stderr
    out = json.loads(result.stdout)
    assert {"p50_ms", "p99_ms", "throughput_per_s", "rss_mb"} <= set(out) and out["n"] == 30


def test_train_reports_the_task_prior_on_mixed_tasks(tmp_path) -> None:
    from codyn.data.demo import load_demo

    data = load_demo().save(tmp_path / "demo.parquet")
    args = ("train", data, "--router", "knn", "--param", "featuriser=structure+tfidf")
    result = run_cli(*args, "-o", tmp_path / "knn")
    assert result.code == 0, result.stderr
    assert "task prior: scores centred on the means of" in result.stdout
    off = run_cli(*args, "--param", "task_prior=false", "-o", tmp_path / "off", "--json")
    assert off.code == 0 and json.loads(off.stdout)["task_prior_tasks"] == []


def test_bench_featurise_json_and_unknown_name(files) -> None:
    args = ["--data", files["data"], "--n", "25", "--warmup", "2", "--batch-size", "50"]
    result = run_cli("bench", "featurise", "--featuriser", "tfidf", *args, "--json")
    assert result.code == 0, result.stderr
    out = json.loads(result.stdout)
    assert {"p50_ms", "p99_ms", "throughput_per_s", "rss_mb"} <= set(out)
    assert out["n"] == 25 and out["featuriser"] == "tfidf" and out["p50_ms"] > 0
    bad = run_cli("bench", "featurise", "--featuriser", "bert", *args)
    assert bad.code == 1 and "unknown featuriser 'bert'" in bad.stderr


def test_a_one_megabyte_prompt_is_routed_and_reported_truncated(files) -> None:
    result = run_cli("route", "--router", files["router"], "x = 1\n" * 180_000, "--json")
    assert result.code == 0, result.stderr
    assert json.loads(result.stdout)["truncated"] is True


@pytest.mark.parametrize(
    "args, message",
    [
        (["", "--json"], "empty prompt"),
        ([PROMPT, "--knob", "inf"], "lambda must be"),
        ([PROMPT, "--knob", "nan"], "lambda must be"),
        ([PROMPT, "--knob", "1", "--target-cost", "1"], "not both"),
        ([PROMPT, "--target-cost", "1e-9"], "cheapest costs"),
        ([PROMPT, "--models", "gpt-4-1106-preview,gpt-5"], "not trained on gpt-5"),
    ],
)
def test_route_bad_input_is_one_clear_line(files, args, message) -> None:
    result = run_cli("route", "--router", files["router"], *args)
    assert result.code == 1 and message in result.stderr
    assert "Traceback" not in result.stderr and result.stderr.count("\n") == 1


def test_models_on_offer_restrict_the_choice(files) -> None:
    router, setup = load_deployed(files["router"])
    routed = route(router, setup, [PROMPT], offered=["claude-v1", "mistralai/mistral-7b-chat"])
    assert routed.models[0] in {"claude-v1", "mistralai/mistral-7b-chat"}


def test_corrupted_router_directory_is_one_clear_line(files, tmp_path) -> None:
    missing = run_cli("route", "--router", tmp_path, PROMPT)
    assert missing.code == 1 and "router.json: no such file" in missing.stderr
    for name in ("router.json", "weights.npz"):
        (tmp_path / name).write_bytes((files["router"] / name).read_bytes())
    no_policy = run_cli("route", "--router", tmp_path, PROMPT)
    assert no_policy.code == 1 and "PolicySetup.from_train" in no_policy.stderr
    (tmp_path / POLICY_FILE).write_text("{not json")
    corrupted = run_cli("route", "--router", tmp_path, PROMPT)
    assert corrupted.code == 1 and "corrupted policy file" in corrupted.stderr
    (tmp_path / "router.json").write_text('{"format_version": 1}')
    assert "corrupted router file" in run_cli("route", "--router", tmp_path, PROMPT).stderr


def test_train_bad_input_is_one_clear_line(files, tmp_path) -> None:
    unknown = run_cli("train", files["data"], "--router", "knn", "--param", "q=1", "-o", tmp_path)
    assert unknown.code == 1 and "'knn' takes: k, weights, task_prior, featuriser" in unknown.stderr
    bad_k = run_cli("train", files["data"], "--router", "knn", "--param", "k=0", "-o", tmp_path)
    assert bad_k.code == 1 and "k must be a positive integer" in bad_k.stderr


def copy_router(files: dict[str, Path], directory: Path) -> Path:
    directory.mkdir()
    for name in ("router.json", "weights.npz", POLICY_FILE):
        (directory / name).write_bytes((files["router"] / name).read_bytes())
    return directory


def test_calibrate_with_a_guarantee_or_else_route_to_the_sbs(files, tmp_path) -> None:
    router_dir = copy_router(files, tmp_path / "knn")
    args = ("calibrate", "--router", router_dir, "--data", files["val"], "--confidence", "0.8")
    loose = run_cli(*args, "--max-quality-loss", "0.2", "--json")
    assert loose.code == 0, loose.stderr
    found = json.loads(loose.stdout)
    assert found["sbs"] == "gpt-4-1106-preview" and found["grid"] == "train"
    assert found["knob"] is not None and found["cost"] < found["sbs_cost"]
    assert found["policy"] == {"name": "utility"} and found["method"] == "betting"
    setup = PolicySetup.read(router_dir)
    assert setup.knob == found["knob"] and setup.policy == {"name": "utility"}
    strict = run_cli(*args, "--max-quality-loss", "0.0001")
    assert strict.code == 0, strict.stderr
    assert "no knob of utility keeps the quality loss" in strict.stdout
    assert PolicySetup.read(router_dir).policy == {"name": "fixed", "model": "gpt-4-1106-preview"}
    routed = json.loads(run_cli("route", "--router", router_dir, PROMPT, "--json").stdout)
    assert routed["model"] == "gpt-4-1106-preview" and routed["policy"] == "fixed"
    # a later calibration tunes the user's policy again, not the fallback
    again = run_cli(*args[:5], "--target-cost", "5e-4")
    assert again.code == 0, again.stderr
    assert PolicySetup.read(router_dir).policy == {"name": "utility"}
    bad = run_cli(*args, "--max-quality-loss", "1.5")
    assert bad.code == 1 and "max_loss must lie strictly inside" in bad.stderr


def test_train_saves_a_policy_that_route_honours(files, tmp_path) -> None:
    out = tmp_path / "pair"
    result = run_cli(
        "train", files["data"], "--router", "knn", "--param", "k=20",
        "--param", "featuriser=structure", "--split-file", files["split"], "-o", out,
        "--policy", "threshold", "--policy-param", "strong=gpt-4-1106-preview",
        "--policy-param", "weak=mistralai/mistral-7b-chat", "--json",
    )  # fmt: skip
    assert result.code == 0, result.stderr
    assert json.loads(result.stdout)["policy"] == {
        "name": "threshold",
        "strong": "gpt-4-1106-preview",
        "weak": "mistralai/mistral-7b-chat",
    }
    for knob, model in (("-5", "gpt-4-1106-preview"), ("5", "mistralai/mistral-7b-chat")):
        routed = json.loads(
            run_cli("route", "--router", out, PROMPT, "--knob", knob, "--json").stdout
        )
        assert routed["policy"] == "threshold" and routed["model"] == model
    bad = run_cli(
        "train", files["data"], "--router", "knn", "-o", tmp_path / "x", "--policy", "threshold",
        "--policy-param", "strong=gpt-5",
    )  # fmt: skip
    assert bad.code == 1 and "threshold.strong: unknown model 'gpt-5'" in bad.stderr
