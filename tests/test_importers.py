"""Importers on the real benchmark files: counts, exact values, anchor ids, long round trips."""

from __future__ import annotations

import csv
import hashlib
import json
import math
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from codyn.cli import import_command  # noqa: F401  (registers `codyn import` on the app)
from codyn.data.importers import IMPORTERS, formats, options, read, register_importer
from codyn.data.routing import RoutingData
from codyn.errors import DataError
from tests.conftest import run_cli

ROUTELLM_MODELS = ["mistralai/Mixtral-8x7B-Instruct-v0.1", "gpt-4-1106-preview"]


def sha16(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:16]


def anchor_rows(benchmarks: Path, name: str) -> list[dict[str, str]]:
    with open(benchmarks / "anchors" / "splits" / f"{name}.tsv", encoding="utf-8") as fh:
        return list(csv.DictReader(fh, delimiter="\t"))


def split_counts(data: RoutingData) -> Counter[tuple[str, str | None]]:
    splits = [m.get("split") for m in data.prompts["metadata"]]
    return Counter(zip(data.tasks.tolist(), splits, strict=True))


def assert_matches_anchors(
    data: RoutingData, rows: list[dict[str, str]], check_split: bool
) -> None:
    """Every anchor id is imported, with the same text (sha1) and, where shipped, split."""
    index = {pid: i for i, pid in enumerate(data.prompt_ids)}
    missing = [r["id"] for r in rows if r["id"] not in index]
    assert not missing, f"{len(missing)} anchor ids not imported, e.g. {missing[:3]}"
    texts = data.texts
    wrong = [r["id"] for r in rows if sha16(texts[index[r["id"]]]) != r["prompt_sha1_16"]]
    assert not wrong, f"text differs from the anchors for {wrong[:3]}"
    if check_split:
        meta = data.prompts["metadata"]
        assert all(meta[index[r["id"]]]["split"] == r["split"] for r in rows)


def cell(data: RoutingData, prompt_id: str, model: str, matrix: str = "score") -> float:
    return float(getattr(data, matrix)[data.prompt_ids.index(prompt_id), data.model_index(model)])


# -- registry ----------------------------------------------------------------------------------


def test_registry_lists_every_format_with_its_options():
    listed = formats()
    assert list(listed) == ["llmrouter", "long", "routellm", "routerbench", "routerdc"]
    assert listed["long"].startswith("your own data") and all(listed.values())
    assert "keep_contaminated" in options("routellm")
    assert set(options("long")) == {"models", "prices"}
    with pytest.raises(DataError, match="unknown format 'nope'; known formats: llmrouter"):
        options("nope")


def test_importers_register_with_the_decorator():
    from codyn.data.importers import long

    assert IMPORTERS.get("long") is long.read
    assert IMPORTERS.meta("long")["options"] == long.OPTIONS
    with pytest.raises(ValueError, match="format 'long' is already registered"):
        register_importer("long", description="another", options={})(lambda paths: None)


def test_cli_import_formats_lists_the_registered_formats():
    assert "--formats" in run_cli("import", "--help").stdout
    result = run_cli("import", "--formats")  # no FORMAT, PATH or -o needed
    assert result.code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines == [f"{name}: {description}" for name, description in formats().items()]


# -- RouterBench ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def rb_mbpp(benchmarks: Path) -> RoutingData:
    folder = benchmarks / "routerbench"
    return read("routerbench", [folder / "mbpp_train.csv", folder / "mbpp_test.csv"])


def test_routerbench_mbpp_counts_and_train_test_dedup(rb_mbpp, benchmarks):
    assert rb_mbpp.n_models == 11
    assert split_counts(rb_mbpp) == {("mbpp", "train"): 297, ("mbpp", "test"): 128}
    assert any("dropped 2 train prompt(s)" in n for n in rb_mbpp.notes)
    dropped = [r["id"] for r in anchor_rows(benchmarks, "rb_mbpp.dropped")]
    assert sorted(dropped) == ["mbpp.dev.278", "mbpp.dev.87"]
    assert not set(dropped) & set(rb_mbpp.prompt_ids)
    everything = read(
        "routerbench", [benchmarks / "routerbench" / "mbpp_train.csv"], keep_duplicates="true"
    )
    assert everything.n_prompts == 299 and set(dropped) <= set(everything.prompt_ids)


def test_routerbench_exact_values(rb_mbpp):
    pid = "mbpp.dev.92"
    i = rb_mbpp.prompt_ids.index(pid)
    assert rb_mbpp.texts[i] == (
        "Write a function to remove all elements from a given list present in another list."
    )
    assert rb_mbpp.model_names[0] == "WizardLM/WizardLM-13B-V1.2"
    assert cell(rb_mbpp, pid, "claude-instant-v1") == 1.0
    assert cell(rb_mbpp, pid, "meta/llama-2-70b-chat") == 0.0
    assert cell(rb_mbpp, pid, "claude-instant-v1", "cost") == pytest.approx(0.000548)
    assert cell(rb_mbpp, pid, "gpt-4-1106-preview", "cost") == pytest.approx(0.0064)
    response = rb_mbpp.responses[i, rb_mbpp.model_index("gpt-3.5-turbo-1106")]
    assert response.startswith("Here's a Python function") and not response.startswith("[")
    assert rb_mbpp.cost_basis == "observed" and not np.isnan(rb_mbpp.cost).any()
    assert rb_mbpp.prompts["language"][i] == "python"
    assert rb_mbpp.prompts["metadata"][i] == {"split": "train", "file": "mbpp_train.csv"}


def test_routerbench_ids_match_anchor_split(rb_mbpp, benchmarks):
    rows = anchor_rows(benchmarks, "rb_mbpp")
    assert len(rows) == 425
    assert_matches_anchors(rb_mbpp, rows, check_split=True)


def test_routerbench_whole_folder_arc_and_winogrande(benchmarks):
    data = read("routerbench", [benchmarks / "routerbench"])
    assert split_counts(data) == {
        ("arc-challenge", "train"): 1031,  # 1039 rows less 8 batched repeats
        ("arc-challenge", "test"): 439,  # 445 rows less 6 batched repeats
        ("winogrande", "train"): 887,
        ("winogrande", "test"): 380,
        ("mbpp", "train"): 297,
        ("mbpp", "test"): 128,
    }
    assert any(n.startswith("dropped 14 row(s) whose sample_id repeats") for n in data.notes)
    # the kept rows of those ids lack the one model only the batched row was scored for
    assert int(np.isnan(data.score).sum()) == 14
    assert int(np.isnan(data.score[:, data.model_index("gpt-3.5-turbo-1106")]).sum()) == 14
    assert len(set(data.prompt_ids)) == data.n_prompts


# -- RouteLLM ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def rllm_all(benchmarks: Path) -> RoutingData:
    return read("routellm", [benchmarks / "routellm"], keep_contaminated=True, keep_duplicates=True)


def test_routellm_raw_counts(rllm_all):
    tasks = Counter(rllm_all.tasks.tolist())
    mmlu = {t: n for t, n in tasks.items() if t.startswith("mmlu_")}
    assert len(mmlu) == 57 and sum(mmlu.values()) == 14_042
    assert tasks["gsm8k"] == 1_319
    assert sum(n for t, n in tasks.items() if t.startswith("mt_bench_")) == 80
    assert rllm_all.model_names == ROUTELLM_MODELS


def test_routellm_filters_contaminated_and_duplicate_prompts(benchmarks):
    data = read("routellm", [benchmarks / "routellm"])
    tasks = Counter(data.tasks.tolist())
    assert sum(n for t, n in tasks.items() if t.startswith("mmlu_")) == 14_042 - 5 - 105
    assert tasks["gsm8k"] == 1_319 - 12
    assert sum(n for t, n in tasks.items() if t.startswith("mt_bench_")) == 80 - 8
    assert any(n.startswith("dropped 25 prompt(s) listed in") for n in data.notes)
    assert any("dropped 105 prompt(s) repeating" in n for n in data.notes)
    only_contaminated = read("routellm", [benchmarks / "routellm" / "mmlu"], keep_duplicates=True)
    assert only_contaminated.n_prompts == 14_042 - 5


def test_routellm_gsm8k_values_and_price_proxy(benchmarks):
    data = read("routellm", [benchmarks / "routellm" / "gsm8k"], keep_contaminated=True)
    assert data.n_prompts == 1_319
    frame = pd.read_csv(benchmarks / "routellm" / "gsm8k" / "gsm8k_responses.csv")
    for model in ROUTELLM_MODELS:
        np.testing.assert_array_equal(data.score[:, data.model_index(model)], frame[model])
    assert data.prompt_ids[0] == "gsm8k/gsm8k_responses.csv:0"
    assert data.responses[0, 1] == frame["gpt-4-1106-preview_response"][0]
    assert data.cost_basis == "price_proxy"
    np.testing.assert_array_equal(data.cost, np.tile([0.24, 24.7], (1_319, 1)))
    assert [m.blended_price for m in data.models] == [0.24, 24.7]
    assert_matches_anchors(data, anchor_rows(benchmarks, "rllm_gsm8k"), check_split=False)


def test_routellm_mmlu_ids_match_anchors(rllm_all, benchmarks):
    rows = anchor_rows(benchmarks, "rllm_mmlu")
    assert len(rows) == 13_932  # the anchors dropped 110 repeats; all the rest must be here
    assert_matches_anchors(rllm_all, rows, check_split=False)


def test_routellm_mt_bench_scores_are_turn_means_over_ten(rllm_all, benchmarks):
    folder = benchmarks / "routellm" / "mt_bench"
    lines = (folder / "judgements.jsonl").read_text(encoding="utf-8").splitlines()
    judgements = [json.loads(line) for line in lines]
    turns = [
        j["score"]
        for j in judgements
        if j["question_id"] == 81 and j["model"] == "gpt-4-1106-preview"
    ]
    assert len(turns) == 2
    assert cell(rllm_all, "mt_bench:81", "gpt-4-1106-preview") == pytest.approx(sum(turns) / 20)
    i = rllm_all.prompt_ids.index("mt_bench:81")
    assert rllm_all.texts[i].startswith("Compose an engaging travel blog post about")
    assert rllm_all.tasks[i] == "mt_bench_writing"
    rows = np.flatnonzero(np.char.startswith(rllm_all.tasks.astype(str), "mt_bench_"))
    mt = rllm_all.score[rows]
    assert mt.min() >= 0.1 and mt.max() <= 1.0 and not np.isnan(mt).any()
    assert any("divided by 10" in n for n in rllm_all.notes)


# -- LLMRouter --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def llmr(benchmarks: Path) -> RoutingData:
    return read("llmrouter", [benchmarks / "llmrouter"])


def test_llmrouter_counts_tasks_and_prices(llmr, benchmarks):
    splits = Counter(m["split"] for m in llmr.prompts["metadata"])
    assert splits == {"train": 5_608 - 119, "test": 500}
    assert len(set(llmr.tasks)) == 14
    assert any(
        n.startswith("dropped 119 train prompt(s)") and "gpqa 50, human_eval 50, mbpp 19" in n
        for n in llmr.notes
    )
    assert any(n.startswith("6 prompt(s) carry several task labels") for n in llmr.notes)
    assert llmr.n_models == 9 and all(m.input_price is not None for m in llmr.models)
    prices = json.loads(
        (benchmarks / "llmrouter/data/example_data/llm_candidates/default_llm.json").read_text()
    )
    j = llmr.model_index("gemma-2-9b-it")
    assert llmr.models[j].input_price == prices["gemma-2-9b-it"]["input_price"] == 0.1
    assert (llmr.cost[:, j] == 0.1).all() and llmr.cost_basis == "price_proxy"
    full = read("llmrouter", [benchmarks / "llmrouter"], keep_duplicates=True)
    assert full.n_prompts == 5_608 + 500


def test_llmrouter_ids_tasks_and_drops_match_anchors(llmr, benchmarks):
    rows = anchor_rows(benchmarks, "llmr_all")
    assert len(rows) == 5_989
    assert_matches_anchors(llmr, rows, check_split=True)
    index = {pid: i for i, pid in enumerate(llmr.prompt_ids)}
    assert all(llmr.tasks[index[r["id"]]] == r["group"] for r in rows)
    dropped = {r["id"] for r in anchor_rows(benchmarks, "llmr_all.dropped")}
    assert len(dropped) == 119 and not dropped & set(index)


def test_llmrouter_reads_stringified_scores(benchmarks, tmp_path):
    source = benchmarks / "llmrouter" / "data"
    items = json.loads((source / "dcrouter_preprocessed" / "test.json").read_text())[:5]
    folder = tmp_path / "data" / "dcrouter_preprocessed"
    folder.mkdir(parents=True)
    stringified = [{**item, "scores": str(item["scores"])} for item in items]
    (folder / "test.json").write_text(json.dumps(stringified))
    query_file = source / "example_data" / "query_data" / "default_query_test.jsonl"
    data = read(
        "llmrouter",
        [folder / "test.json"],
        queries=str(query_file),
        prices="qwen2.5-7b-instruct=0.2",
    )
    assert data.n_prompts == 5 and data.prompt_ids[0] == "dcrouter_preprocessed/test.json:0"
    model = next(iter(items[0]["scores"]))
    assert cell(data, data.prompt_ids[0], model) == items[0]["scores"][model]
    assert any("no price for model(s)" in n for n in data.notes)


# -- RouterDC ---------------------------------------------------------------------------------


def test_routerdc_counts_and_unknown_costs(benchmarks):
    data = read("routerdc", [benchmarks / "routerdc" / "split2_model7"])
    counts = split_counts(data)
    assert counts[("mbpp", None)] == 499  # 500 less one exact repeat
    assert counts[("humaneval", "train")] == 115 and counts[("humaneval", "test")] == 49
    assert counts[("javascript", None)] == 164
    assert counts[("gsm8k", "train")] == 1_000 and counts[("gsm8k", "test")] == 1_319
    assert counts[("MATH_prealgebra", None)] == 871
    assert data.n_models == 7 and data.cost_basis == "unknown"
    assert np.isnan(data.cost).all()
    assert cell(data, "mbpp.json:0", "cognitivecomputations/dolphin-2.6-mistral-7b") == 0.9
    assert cell(data, "mbpp.json:0", "meta-math/MetaMath-Mistral-7B") == 0.4
    i = data.prompt_ids.index("humaneval_test.json:0")
    assert data.prompts["language"][i] == "python"


def test_routerdc_code_ids_match_anchors(benchmarks):
    folder = benchmarks / "routerdc" / "split2_model7"
    files = [folder / n for n in ("mbpp.json", "humaneval_train.json", "humaneval_test.json")]
    data = read("routerdc", files)
    assert data.n_prompts == 499 + 115 + 49
    assert "mbpp.json:336" not in data.prompt_ids
    assert_matches_anchors(data, anchor_rows(benchmarks, "rdc7_code"), check_split=False)
    assert read("routerdc", files, keep_duplicates=True).n_prompts == 500 + 115 + 49


# -- long format ------------------------------------------------------------------------------


def assert_same(back: RoutingData, original: RoutingData) -> None:
    assert back.prompt_ids == original.prompt_ids
    assert back.texts == original.texts
    assert back.tasks.tolist() == original.tasks.tolist()
    assert back.model_names == original.model_names
    np.testing.assert_array_equal(back.score, original.score)
    np.testing.assert_array_equal(back.cost, original.cost)
    assert back.cost_basis == original.cost_basis


def test_long_csv_round_trip_of_routerbench(rb_mbpp, tmp_path):
    path = tmp_path / "mbpp.csv"
    rb_mbpp.to_long().to_csv(path, index=False)
    back = read("long", [path])
    assert_same(back, rb_mbpp)
    assert back.responses.tolist() == rb_mbpp.responses.tolist()  # multi-line cells survive


def test_long_jsonl_round_trip_keeps_missing_scores(benchmarks, tmp_path):
    original = read("routerdc", [benchmarks / "routerdc" / "split2_model7" / "humaneval_test.json"])
    original.score[0, 0] = np.nan
    path = tmp_path / "humaneval.jsonl"
    with open(path, "w", encoding="utf-8") as fh:
        for record in original.to_long().to_dict("records"):
            clean = {
                k: None if isinstance(v, float) and math.isnan(v) else v for k, v in record.items()
            }
            fh.write(json.dumps(clean, ensure_ascii=False) + "\n")
    back = read("long", [path])
    assert_same(back, original)
    assert back.cost_basis == "unknown" and math.isnan(back.score[0, 0])


def write_rows(path: Path, rows: list[dict[str, object]]) -> Path:
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def test_long_samples_are_averaged_and_kept(tmp_path):
    rows = [
        {"prompt_id": "p1", "prompt": "sum a list", "model": "a", "score": s, "sample": k}
        for k, s in enumerate([1, 0, 1, 1])
    ] + [{"prompt_id": "p1", "prompt": "sum a list", "model": "b", "score": 0, "sample": 0}]
    data = read("long", [write_rows(tmp_path / "s.csv", rows)])
    assert data.score[0].tolist() == [0.75, 0.0]
    assert data.samples.shape == (1, 2, 4)
    assert data.samples[0, 0].tolist() == [1, 0, 1, 1]
    assert np.isnan(data.samples[0, 1, 1:]).all()


def test_long_visible_scores_and_latency_per_sample(tmp_path):
    rows = [
        {"prompt_id": "p1", "prompt": "sum a list", "model": "a", "score": s, "sample": k,
         "visible_score": v, "latency_s": t}
        for k, (s, v, t) in enumerate([(1, 1, 0.5), (0, 1, 1.5), (0, 0.5, 1.0)])
    ]  # fmt: skip
    data = read("long", [write_rows(tmp_path / "v.csv", rows)])
    assert data.score[0, 0] == pytest.approx(1 / 3)
    assert data.visible_score[0, 0] == pytest.approx(2.5 / 3)
    assert data.visible_samples[0, 0].tolist() == [1.0, 1.0, 0.5]
    assert data.latency[0, 0] == pytest.approx(1.0)
    back = read("long", [write_rows(tmp_path / "back.csv", data.to_long().to_dict("records"))])
    assert back.visible_score[0, 0] == pytest.approx(data.visible_score[0, 0])
    assert back.latency[0, 0] == pytest.approx(1.0)
    negative = [{**rows[0], "visible_score": -1}]
    with pytest.raises(DataError, match="visible_score"):
        read("long", [write_rows(tmp_path / "neg.csv", negative)])


def test_long_cost_bases_and_options(tmp_path):
    base = [
        {
            "prompt_id": "p1",
            "prompt": "x",
            "task": "code",
            "model": "a",
            "score": 1,
            "tokens_in": 1000,
            "tokens_out": 2000,
        },
        {
            "prompt_id": "p1",
            "prompt": "x",
            "task": "code",
            "model": "b",
            "score": 0,
            "tokens_in": 1000,
            "tokens_out": 500,
        },
        {
            "prompt_id": "p2",
            "prompt": "y",
            "task": "math",
            "model": "a",
            "score": 0,
            "tokens_in": 10,
            "tokens_out": 10,
        },
    ]
    path = write_rows(tmp_path / "t.csv", [*base, base[0]])  # an identical repeat is tolerated
    plain = read("long", [path])
    assert plain.cost_basis == "unknown" and np.isnan(plain.score[1, 1])
    assert any("1 identical repeated row(s)" in n for n in plain.notes)
    priced = read("long", [path], prices="a=1/2,b=0.5")
    assert priced.cost_basis == "tokens_x_price"
    assert priced.cost[0].tolist() == pytest.approx(
        [(1000 * 1 + 2000 * 2) / 1e6, (1000 + 500) * 0.5 / 1e6]
    )
    proxy = read(
        "long",
        [
            write_rows(
                tmp_path / "p.csv",
                [{k: v for k, v in r.items() if not k.startswith("tokens")} for r in base],
            )
        ],
        prices={"a": 3.0, "b": [1.0, 2.0]},
    )
    assert proxy.cost_basis == "price_proxy" and proxy.cost[1].tolist() == [3.0, 1.5]
    chosen = read("long", [path], models="b,a,c")
    assert chosen.model_names == ["b", "a", "c"] and np.isnan(chosen.score[:, 2]).all()
    assert any("c have no rows" in n for n in chosen.notes)


def test_long_constant_cost_column_is_a_price_proxy(tmp_path):
    rows = [
        {"prompt_id": pid, "prompt": text, "model": model, "score": score, "cost": cost}
        for pid, text in (("p1", "x"), ("p2", "y"), ("p3", "z"))
        for model, score, cost in (("big", 1, 0.03), ("small", 0, 0.001))
    ]
    constant = read("long", [write_rows(tmp_path / "constant.csv", rows)])
    assert constant.cost_basis == "price_proxy" and constant.cost_is_proxy
    assert constant.cost[:, 0].tolist() == [0.03] * 3  # the numbers stay, only their label moves
    assert "costs are constant per model across all 3 prompts" in constant.notes[-1]
    assert constant.describe_costs().startswith("costs are proxies")
    assert constant.summary()["cost_note"] == constant.describe_costs()
    rows[2]["cost"] = 0.05  # p2 costs big more than p1 did: costs that vary by prompt
    varying = read("long", [write_rows(tmp_path / "varying.csv", rows)])
    assert varying.cost_basis == "observed"
    assert varying.describe_costs() == "costs: observed USD per call"
    assert not any("constant per model" in note for note in varying.notes)


def test_long_round_trip_of_price_proxy_data_stays_a_proxy(llmr, tmp_path):
    path = tmp_path / "llmr.csv"
    llmr.take(range(50)).to_long().to_csv(path, index=False)
    back = read("long", [path])
    assert llmr.cost_basis == back.cost_basis == "price_proxy"
    np.testing.assert_array_equal(back.cost, llmr.cost[:50])


def test_cli_import_writes_parquet_and_summary(rb_mbpp, benchmarks, tmp_path):
    source = tmp_path / "mine.csv"
    rb_mbpp.to_long().to_csv(source, index=False)
    out = tmp_path / "out" / "mine.parquet"
    result = run_cli("import", "long", source, "-o", out)
    assert result.code == 0, result.stderr
    assert "imported 425 prompts x 11 models" in result.stdout
    assert (
        "tasks (1): mbpp 425" in result.stdout and "costs: observed USD per call" in result.stdout
    )
    assert_same(RoutingData.load(out), rb_mbpp)
    mbpp = benchmarks / "routerdc" / "split2_model7" / "mbpp.json"
    result = run_cli("import", "routerdc", mbpp, "-o", out, "--json")
    summary = json.loads(result.stdout)
    assert summary["n_prompts"] == 499 and summary["tasks"] == {"mbpp": 499}
    assert summary["cost_basis"] == "unknown" and len(summary["notes"]) == 2
