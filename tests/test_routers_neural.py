"""The fine-tuned routers: the MBPP paper's soft-label classifier (paper 001) and CoDyn's
regression heads (paper 000, section 5.1): their formulas on hand-worked numbers, training on
small data with the tiny preset, saving as safetensors, routing without torch."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from codyn.data.routing import RoutingData
from codyn.errors import CodynError
from codyn.routers.autoregressive import (
    AutoregressiveRouter,
    format_reward,
    is_valid_ranking,
    parse_ranking,
    position_reward,
    system_prompt,
    target_rankings,
)
from codyn.routers.causal_lm import CausalLMRouter, best_model_targets, instruction
from codyn.routers.classifier import (
    ClassifierRouter,
    augment_texts,
    best_shift,
    label_spread,
    pair_gaps,
    soft_labels,
)
from codyn.routers.registry import load_router
from codyn.routers.regression_heads import RegressionHeadsRouter
from tests.conftest import run_cli

MODELS = ["small", "mid", "large"]
COSTS = np.array([1.0, 3.0, 10.0])


def make_data(n: int = 48) -> RoutingData:
    """Easy prompts: every model passes; hard ones: only the large model."""
    prompts, scores = [], []
    for i in range(n):
        hard = i % 2 == 1
        text = (
            f"implement a concurrent lock free skip list with range queries variant {i}"
            if hard
            else f"write a function that adds two numbers variant {i}"
        )
        prompts.append({"id": f"p{i}", "text": text, "task": "mbpp"})
        scores.append((0.0, 0.0, 1.0) if hard else (1.0, 1.0, 1.0))
    score = np.array(scores)
    return RoutingData(
        prompts=prompts,
        models=MODELS,
        score=score,
        cost=np.broadcast_to(COSTS, score.shape).copy(),
        cost_basis="observed",
    )


def test_label_spread_by_hand() -> None:
    assert label_spread(np.array([0.0, 1.0])) == pytest.approx(0.5)  # (1 + 1) / 4
    assert label_spread(np.array([0.0, 0.5, 1.0])) == pytest.approx(4 / 9)
    assert label_spread(np.array([0.3, 0.3, 0.3])) == 0.0


def test_soft_labels_from_pass_rates_and_from_samples() -> None:
    # pass rates 0.5 (small) and 1.0 (large): H = -1 or 0 with probability 1/2 each
    gaps = pair_gaps(np.array([0.5]), np.array([1.0]))
    assert soft_labels(gaps, 0.0)[0] == pytest.approx(0.5)
    assert soft_labels(gaps, 0.0, strict=True)[0] == 0.0
    # two samples each: small (1, 0), large (1, 1): gaps 0, 0, -1, -1
    samples = pair_gaps(
        np.array([0.5]), np.array([1.0]), np.array([[1.0, 0.0]]), np.array([[1.0, 1.0]])
    )
    assert soft_labels(samples, 0.0)[0] == pytest.approx(0.5)
    # brevity: a tie goes to the shorter answer
    tie = pair_gaps(np.array([1.0]), np.array([1.0]))
    assert soft_labels(tie, 0.0, tie_to_small=np.array([False]))[0] == 0.0
    assert soft_labels(tie, 0.0, tie_to_small=np.array([True]))[0] == 1.0


def test_label_shift_spreads_imbalanced_labels() -> None:
    """Eq. 4: two ties and one small win: P(H >= 0) is 1 everywhere (no signal), P(H >= 1)
    separates the win, so t* = 1."""
    gaps = pair_gaps(np.array([1.0, 0.0, 1.0]), np.array([1.0, 0.0, 0.0]))
    shift, spread = best_shift(gaps)
    assert shift == 1.0 and spread == pytest.approx(4 / 9)
    np.testing.assert_array_equal(soft_labels(gaps, shift), [0.0, 0.0, 1.0])


def test_augmentation_is_seeded_word_edits() -> None:
    texts = ["write a python function to reverse the words of a long sentence please"]
    first, again = augment_texts(texts, 3, seed=1), augment_texts(texts, 3, seed=1)
    assert first == again and len(first) == 3
    assert all(sorted(t.split()) != sorted(texts[0].split()) or t != texts[0] for t in first)
    assert all(set(t.split()) <= set(texts[0].split()) for t in first)


@pytest.fixture(scope="module")
def classifier() -> ClassifierRouter:
    return ClassifierRouter(
        featuriser="tfidf", small="small", large="large", preset="tiny", seed=0
    ).fit(make_data())


def test_classifier_learns_which_prompts_the_small_model_can_take(
    classifier: ClassifierRouter,
) -> None:
    easy = ["write a function that adds two numbers variant 99"]
    hard = ["implement a concurrent lock free skip list with range queries variant 99"]
    p_easy = classifier.predict(easy)[0]
    p_hard = classifier.predict(hard)[0]
    assert np.isnan(p_easy[1]) and np.isnan(p_hard[1])  # the pair only
    assert p_easy[0] + p_easy[2] == pytest.approx(1.0)
    assert p_easy[0] > 0.6 > 0.4 > p_hard[0]
    assert classifier.shift_ == 0.0  # balanced data: no shift needed
    assert classifier.log_["epochs"] >= 1 and classifier.log_["device"] == "cpu"


def test_classifier_saves_safetensors_and_routes_without_torch(
    classifier: ClassifierRouter, tmp_path: Path
) -> None:
    classifier.save(tmp_path / "clf")
    assert (tmp_path / "clf" / "weights.safetensors").is_file()
    assert not (tmp_path / "clf" / "weights.npz").exists()
    loaded = load_router(tmp_path / "clf")
    text = ["write a function that adds two numbers variant 7"]
    np.testing.assert_allclose(loaded.predict(text), classifier.predict(text), rtol=1e-6)
    script = (
        "import sys\n"
        "class NoTorch:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] == 'torch':\n"
        "            raise ImportError('torch is blocked in this test')\n"
        "sys.meta_path.insert(0, NoTorch())\n"
        "from codyn.routers.registry import load_router\n"
        f"r = load_router({str(tmp_path / 'clf')!r})\n"
        f"print(float(r.predict({text!r})[0, 0]))\n"
        "assert 'torch' not in sys.modules"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert float(out.stdout) == pytest.approx(float(classifier.predict(text)[0, 0]), rel=1e-6)


def test_classifier_is_deterministic_per_seed() -> None:
    data = make_data()
    kwargs = {"featuriser": "tfidf", "preset": "tiny", "small": "small", "large": "large"}
    a = ClassifierRouter(**kwargs, seed=3).fit(data).predict(data)
    b = ClassifierRouter(**kwargs, seed=3).fit(data).predict(data)
    np.testing.assert_array_equal(a, b)


def test_classifier_parameters_are_checked() -> None:
    data = make_data(8)
    with pytest.raises(CodynError, match="target must be ge or gt"):
        ClassifierRouter(featuriser="tfidf", target="maybe").fit(data)
    with pytest.raises(CodynError, match="preset must be one of"):
        ClassifierRouter(featuriser="tfidf", preset="huge").fit(data)
    with pytest.raises(CodynError, match="no model 'gpt-5'"):
        ClassifierRouter(featuriser="tfidf", small="gpt-5", preset="tiny").fit(data)
    with pytest.raises(CodynError, match="brevity needs output token counts"):
        ClassifierRouter(featuriser="tfidf", brevity=True, preset="tiny").fit(data)
    with pytest.raises(CodynError, match="torch sees no GPU"):
        ClassifierRouter(featuriser="tfidf", device="cuda", preset="tiny").fit(data)


def test_classifier_in_train_and_route_with_the_threshold_policy(tmp_path: Path) -> None:
    data_file = tmp_path / "data.parquet"
    make_data().save(data_file)
    out = tmp_path / "clf"
    trained = run_cli(
        "train", data_file, "--router", "classifier", "--param", "featuriser=tfidf",
        "--param", "preset=tiny", "--param", "small=small",
        "--param", "large=large", "--policy", "threshold", "--policy-param", "strong=large",
        "--policy-param", "weak=small", "-o", out,
    )  # fmt: skip
    assert trained.code == 0, trained.stderr
    for text, model in (
        ("write a function that adds two numbers variant 5", "small"),
        ("implement a concurrent lock free skip list with range queries variant 5", "large"),
    ):
        routed = run_cli("route", text, "--router", out, "--json")
        assert routed.code == 0, routed.stderr
        assert json.loads(routed.stdout)["model"] == model


@pytest.fixture(scope="module")
def heads() -> RegressionHeadsRouter:
    return RegressionHeadsRouter(preset="tiny", epochs=3, seed=0).fit(make_data(32))


def test_regression_heads_learn_scores_with_minilm(heads: RegressionHeadsRouter) -> None:
    predicted = heads.predict(
        [
            "write a function that adds two numbers variant 77",
            "implement a concurrent lock free skip list with range queries variant 77",
        ]
    )
    assert predicted.shape == (2, 3) and np.isfinite(predicted).all()
    # the small model's predicted score is higher on the easy prompt than on the hard one
    assert predicted[0, 0] > predicted[1, 0]
    assert heads.log_["train_loss"][-1] < heads.log_["train_loss"][0]


def test_regression_heads_cost_weight_is_codyns_ranking_score() -> None:
    data = make_data(32)
    router = RegressionHeadsRouter(preset="tiny", epochs=2, cost_weight=0.5, seed=0).fit(data)
    # RS = ES + 0.5 * CS^-1: affordability 1, 7/9, 0 for costs 1, 3, 10
    np.testing.assert_allclose(router.affordability_, [1.0, 7 / 9, 0.0])
    target = data.score + 0.5 * np.array([1.0, 7 / 9, 0.0])
    assert router.mean_ == pytest.approx(target.mean())
    assert router.std_ == pytest.approx(target.std())
    with pytest.raises(CodynError, match="cost_weight must be in"):
        RegressionHeadsRouter(preset="tiny", cost_weight=2.0).fit(data)


def test_regression_heads_save_and_load(heads: RegressionHeadsRouter, tmp_path: Path) -> None:
    heads.save(tmp_path / "rh")
    assert (tmp_path / "rh" / "weights.safetensors").is_file()
    loaded = load_router(tmp_path / "rh")
    text = ["write a function that adds two numbers variant 3"]
    np.testing.assert_allclose(loaded.predict(text), heads.predict(text), rtol=1e-4, atol=1e-5)


def test_causal_lm_label_tokens_give_a_softmax_over_models(tmp_path: Path) -> None:
    """SmolLM2-135M (the packaged GGUF, in transformers) with a label token per model: the
    next token's softmax over the labels learns that only the large model passes hard
    prompts; the saved router holds only what training changed."""
    router = CausalLMRouter(preset="tiny", epochs=4, seed=0).fit(make_data(32))
    texts = [
        "write a function that adds two numbers variant 77",
        "implement a concurrent lock free skip list with range queries variant 77",
    ]
    predicted = router.predict(texts)
    np.testing.assert_allclose(predicted.sum(axis=1), 1.0, rtol=1e-5)
    assert predicted[1, 2] > predicted[0, 2] and predicted[1, 2] > 0.5
    assert router.log_["val_loss"][-1] < router.log_["val_loss"][0]
    router.save(tmp_path / "clm")
    weights = tmp_path / "clm" / "weights.safetensors"
    assert weights.stat().st_size < 1_000_000  # three label rows, the backbone rebuilt
    loaded = load_router(tmp_path / "clm")
    np.testing.assert_allclose(loaded.predict(texts), predicted, rtol=1e-4, atol=1e-6)


def test_prefix_cache_gives_the_full_stack_output_for_left_padded_batches() -> None:
    """The frozen blocks' states stored once without padding, re-padded in another order and
    another batch, run through the top blocks: the same last hidden state as the whole stack
    (rotary positions are relative), in float32 tolerance, for every split point."""
    torch = pytest.importorskip("torch")
    from codyn.routers.neural import PrefixCache, load_backbone

    tokenizer, lm = load_backbone("smollm2", lm_head=True)
    tokenizer.padding_side = "left"
    lm.eval()
    texts = ["short one", "write a function that sorts a list of numbers in python", "a middle"]

    def encode(index: np.ndarray) -> tuple[object, object]:
        batch = tokenizer([texts[i] for i in index], padding=True, return_tensors="pt")
        return batch["input_ids"], batch["attention_mask"]

    ids, mask = encode(np.arange(3))
    with torch.no_grad():
        whole = lm.model(input_ids=ids, attention_mask=mask).last_hidden_state[:, -1]
    n_blocks = len(lm.model.layers)
    for start in (n_blocks - 2, n_blocks, 1):
        cache = PrefixCache(lm.model, start)
        cache.fill(np.arange(3), encode, 2, "test")
        with torch.no_grad():
            out = cache.run(np.array([2, 0, 1]))
        assert len(lm.model.layers) == n_blocks  # the stack is whole again
        assert cache.padded(np.array([2, 0, 1]))[1].sum().item() == mask.sum().item()
        np.testing.assert_allclose(
            out[:, -1].numpy(), whole[[2, 0, 1]].numpy(), rtol=1e-4, atol=1e-4
        )


def test_best_model_targets_split_ties() -> None:
    score = np.array([[1.0, 0.0, 1.0], [0.0, 0.0, 0.0], [np.nan, 0.5, 0.2], [np.nan] * 3])
    np.testing.assert_allclose(
        best_model_targets(score),
        [[0.5, 0.0, 0.5], [1 / 3, 1 / 3, 1 / 3], [0.0, 1.0, 0.0], [0.0, 0.0, 0.0]],
    )
    assert "[[M1]] mid" in instruction(MODELS, "a request")


def test_ranking_format_and_algorithm_1_rewards() -> None:
    assert is_valid_ranking("2,0,1", 3) and is_valid_ranking(" 1, 2 ,0", 3)
    for bad in ("2,0", "2,0,0", "0,1,3", "Here is 0,1,2", "", "0;1;2"):
        assert not is_valid_ranking(bad, 3), bad
    assert parse_ranking("Here is my ranking: 2, then 0, 2 again, 7", 3) == [2, 0]
    assert parse_ranking("no numbers", 3) == []
    assert is_valid_ranking("10,2,0,1,3,4,5,6,7,8,9", 11)  # RouterBench's eleven models
    assert parse_ranking("10,2,11", 11) == [10, 2]
    outputs = ["0,1,2", "1,0,2", "2,1,0", "two, one", [{"role": "assistant", "content": "0,2,1"}]]
    assert format_reward(outputs, 3) == [0.0, 0.0, 0.0, -5.0, 0.0]
    # the target ranking is 1,0,2: first entry 0 stands 2nd, 1 stands 1st, 2 stands 3rd
    assert position_reward(outputs, ["1,0,2"] * 5, 3) == [0.5, 1.0, 0.25, 0.0, 0.5]
    assert position_reward(["3,2,1,0"], ["0,1,2,3"], 4) == [0.0]  # 4th place earns nothing
    rankings = target_rankings(np.array([[1.0, 1.0, 0.0], [0.0, 0.5, 0.5]]), COSTS, 0.0)
    assert rankings == ["0,1,2", "1,2,0"]  # ties to the cheaper model
    # RS = ES + 0.5 * CS^-1 = 0 + 0.5, 1 + 0.5 * 7/9, 1 + 0
    assert target_rankings(np.array([[0.0, 1.0, 1.0]]), COSTS, 0.5) == ["1,2,0"]
    assert "numbered" not in system_prompt(3) and "from 0 to 2" in system_prompt(3)


def test_autoregressive_sft_learns_rankings_and_reports_invalid_outputs(tmp_path: Path) -> None:
    router = AutoregressiveRouter(preset="tiny", epochs=4, seed=0).fit(make_data(32))
    easy = "write a function that adds two numbers variant 77"
    hard = "implement a concurrent lock free skip list with range queries variant 77"
    answers = router._generate([easy, hard])
    assert all(is_valid_ranking(a, 3) for a in answers), answers
    assert router.invalid_rate_ == 0.0 and router.log_["method"] == "sft"
    adapted = {k.split(".layers.")[1].split(".")[0] for k in router.weights_ if "lora" in k}
    assert adapted == {str(i) for i in range(26, 30)}  # LoRA on the top four blocks alone
    predicted = router.predict([easy, hard])
    assert predicted[0, 0] > predicted[0, 2] and predicted[1, 2] > predicted[1, 0]
    assert router.outputs_seen == 2 and router.invalid_seen == 0
    router.save(tmp_path / "ar")
    assert (tmp_path / "ar" / "weights.safetensors").stat().st_size < 5_000_000  # LoRA only
    np.testing.assert_array_equal(load_router(tmp_path / "ar").predict([easy, hard]), predicted)


def test_autoregressive_grpo_runs_trl_and_counts_invalid_outputs() -> None:
    """From the untuned 135M model every completion is invalid (reward -5, no spread, no
    gradient): GRPO alone keeps the base model's prose, and the invalid share says so."""
    router = AutoregressiveRouter(preset="tiny", method="grpo", grpo_steps=2, seed=0)
    router.fit(make_data(16))
    assert router.log_["method"] == "grpo" and router.log_["grpo_steps"] == 2
    assert 0.0 <= router.invalid_rate_ <= 1.0
    predicted = router.predict(["write a function that adds two numbers variant 1"])
    assert predicted.shape == (1, 3)
    assert router.outputs_seen == 1
    with pytest.raises(CodynError, match="method must be one of sft, grpo, sft\\+grpo"):
        AutoregressiveRouter(method="dpo", preset="tiny").fit(make_data(8))
