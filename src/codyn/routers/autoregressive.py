"""`autoregressive`: CoDyn's ranking routers (paper 000, section 5.2): a causal LM that writes
the models' ranking ("2,0,4,1,3"), fine-tuned with LoRA by SFT or by GRPO.

The prompt is appendix A.7.5's system prompt (for ``n`` models numbered 0..n-1) and the user's
prompt; the target ranking orders the models by CoDyn's ranking score ``RS = ES +
cost_weight * CS^-1`` (best first, ties to the cheaper model). ``method="sft"`` trains on the
target with cross-entropy over the completion tokens; ``method="grpo"`` uses TRL's
``GRPOTrainer`` (``generations`` completions per prompt, ``grpo_steps`` steps) with Algorithm 1's
two rewards: ``format_reward`` (-5 for an output that is not
a valid ranking) and ``position_reward`` (the target's best model ranked 1st, 2nd, 3rd by the
output's first entry: 1, 0.5, 0.25, else 0). LoRA (PEFT) adapts the attention projections
of the top ``lora_layers`` blocks (4 by default, so SFT runs the frozen blocks below once per
prompt, `PrefixCache`, and an epoch costs the top blocks' share; ``-1``, as in
``preset=paper``, adapts every block); only the adapter is saved. ``method="sft+grpo"``
runs GRPO after SFT: from the untuned SmolLM2 every sampled completion is an invalid
ranking here, every reward -5, and GRPO's group-relative advantage is then zero, so GRPO
alone learns nothing on a 135M backbone.

At inference the router decodes greedily and parses robustly (`parse_ranking`: the distinct
model numbers in order of appearance); an output naming no model is invalid and predicts
nothing (NaN: the policy's rule decides, utility falls to the cheapest model). The share of
invalid outputs is kept (``invalid_rate_`` on the validation prompts at fit, ``invalid_seen``
since), as the paper found SFT routers often fail to emit one. Predicted quality is the rank
position: ``1 - k / n`` for the model in position ``k`` (0-based), models left out 0.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar

import numpy as np

from codyn.data.routing import RoutingData
from codyn.errors import CodynError
from codyn.metrics.quality_cost import ranking_score
from codyn.routers.embedding import FloatArray
from codyn.routers.neural import (
    FineTunedRouter,
    PrefixCache,
    load_backbone,
    pick_device,
    seed_all,
    torch_module,
    trainable_arrays,
    validation_split,
)
from codyn.routers.registry import register_router

METHODS = ("sft", "grpo", "sft+grpo")
POSITION_REWARDS = (1.0, 0.5, 0.25)
INVALID_REWARD = -5.0
MAX_PROMPT_CHARS = 4000


def system_prompt(n_models: int) -> str:
    """Appendix A.7.5's system prompt, for ``n_models`` models."""
    ids = ",".join(str(i) for i in range(n_models))
    shuffled = ",".join(str(i) for i in reversed(range(n_models)))
    return (
        "Given a task and code snippet, return the model ranking based on the expected "
        "effectiveness to execute the prompt.\n\n"
        f"There are {n_models} models and each model represented by a number from 0 to "
        f"{n_models - 1}. The numbers must be distinct and sorted in any order. Example valid "
        f'outputs include: "{ids}" or "{shuffled}". Do not include any extra text, '
        "explanation, or punctuation beyond the numbers and commas. The output must always "
        f"contain exactly {n_models} numbers."
    )


def completion_tokens(n_models: int) -> int:
    """Room for a full ranking: every number (up to two digits, maybe two tokens), its comma,
    and the end of the turn."""
    return 3 * n_models + 2


def is_valid_ranking(text: str, n_models: int) -> bool:
    """Algorithm 1's format check: exactly the ``n`` distinct numbers, comma-separated."""
    parts = text.strip().split(",")
    if not all(re.fullmatch(r"\s*\d+\s*", p) for p in parts):
        return False
    numbers = [int(p) for p in parts]
    return sorted(numbers) == list(range(n_models))


def parse_ranking(text: str, n_models: int) -> list[int]:
    """The distinct model numbers in ``text`` in order of appearance (out-of-range ones
    dropped): robust to extra words, spaces and missing entries; [] when none."""
    seen: list[int] = []
    for match in re.findall(r"\d+", text):
        number = int(match)
        if number < n_models and number not in seen:
            seen.append(number)
    return seen


def target_rankings(score: FloatArray, costs: FloatArray, cost_weight: float) -> list[str]:
    """Per prompt, the models by RS (best first; ties to the cheaper, then lower index;
    unknown scores last)."""
    rs = ranking_score(np.nan_to_num(score, nan=-np.inf), costs, 1.0, cost_weight)
    out = []
    for row in rs:
        order = np.lexsort((np.arange(len(row)), costs, -row))
        out.append(",".join(str(int(i)) for i in order))
    return out


def format_reward(completions: list[Any], n_models: int) -> list[float]:
    """Algorithm 1's first reward: -5 for an output that is not a valid ranking, else 0."""
    return [0.0 if is_valid_ranking(_text(c), n_models) else INVALID_REWARD for c in completions]


def position_reward(completions: list[Any], targets: list[str], n_models: int) -> list[float]:
    """Algorithm 1's second reward: where the output's first model stands in the target
    ranking: 1st 1.0, 2nd 0.5, 3rd 0.25, else (or an invalid output) 0."""
    rewards = []
    for completion, target in zip(completions, targets, strict=True):
        text = _text(completion)
        if not is_valid_ranking(text, n_models):
            rewards.append(0.0)
            continue
        first = int(text.strip().split(",")[0])
        position = [int(t) for t in target.split(",")].index(first)
        rewards.append(POSITION_REWARDS[position] if position < len(POSITION_REWARDS) else 0.0)
    return rewards


def _text(completion: Any) -> str:
    """A completion as TRL passes it: a string, or chat messages."""
    if isinstance(completion, list):
        return "".join(str(m.get("content", "")) for m in completion if isinstance(m, dict))
    return str(completion)


@register_router("autoregressive")
class AutoregressiveRouter(FineTunedRouter):
    """Paper 000's ranking router; see the module docstring for every parameter."""

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "default": {},
        "paper": {"epochs": 3, "lr": 2e-5, "batch_size": 4, "max_length": 2048, "lora_layers": -1},
        "tiny": {"epochs": 2, "lr": 5e-3, "max_length": 64, "batch_size": 8, "grpo_steps": 4},
    }
    DEFAULTS: ClassVar[dict[str, Any]] = {
        "lora_layers": 4,
        "epochs": 3,
        "lr": 2e-4,
        "batch_size": 8,
        "max_length": 256,
        "patience": 1,
        "grpo_steps": 200,
    }

    def __init__(
        self,
        backbone: str = "smollm2",
        method: str = "sft",
        cost_weight: float = 0.0,
        lora_rank: int = 8,
        lora_layers: int | None = None,
        generations: int = 4,
        epochs: int | None = None,
        lr: float | None = None,
        batch_size: int | None = None,
        max_length: int | None = None,
        patience: int | None = None,
        grpo_steps: int | None = None,
        validation_share: float = 0.1,
        preset: str = "default",
        device: str = "auto",
        seed: int = 0,
    ) -> None:
        self.backbone = backbone
        self.method = method
        self.cost_weight = cost_weight
        self.lora_rank = lora_rank
        self.lora_layers = lora_layers
        self.generations = generations
        self.epochs = epochs
        self.lr = lr
        self.batch_size = batch_size
        self.max_length = max_length
        self.patience = patience
        self.grpo_steps = grpo_steps
        self.validation_share = validation_share
        self.preset = preset
        self.device = device
        self.seed = seed
        self.invalid_seen = 0
        self.outputs_seen = 0

    invalid_rate_: float

    # -- the network ------------------------------------------------------------------------

    def _build(self, settings: dict[str, Any]) -> Any:
        from peft import LoraConfig, get_peft_model

        tokenizer, lm = load_backbone(self.backbone, lm_head=True)
        tokenizer.padding_side = "left"
        tokenizer.truncation_side = "left"
        n_blocks = int(lm.config.num_hidden_layers)
        adapted = int(settings["lora_layers"])
        if adapted == 0 or adapted < -1:
            raise CodynError(f"autoregressive: lora_layers must be -1 (all) or >= 1, got {adapted}")
        top = range(max(n_blocks - adapted, 0), n_blocks) if adapted > 0 else range(n_blocks)
        config = LoraConfig(
            r=int(self.lora_rank),
            lora_alpha=2 * int(self.lora_rank),
            target_modules=["q_proj", "v_proj"],
            layers_to_transform=list(top),
            lora_dropout=0.0,
            task_type="CAUSAL_LM",
        )
        net = get_peft_model(lm, config)
        net.tokenizer = tokenizer
        return net

    def _chat(self, net: Any, text: str) -> str:
        messages = [
            {"role": "system", "content": system_prompt(len(self.model_names_))},
            {"role": "user", "content": text[:MAX_PROMPT_CHARS]},
        ]
        return net.tokenizer.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=True
        )

    def _encode(self, net: Any, texts: list[str], max_length: int, device: str) -> tuple[Any, Any]:
        batch = net.tokenizer(
            [self._chat(net, t) for t in texts],
            padding=True,
            truncation=True,
            max_length=max_length,
            return_tensors="pt",
        )
        return batch["input_ids"].to(device), batch["attention_mask"].to(device)

    def _outputs(self, raw: FloatArray) -> FloatArray:
        return raw

    # -- training ---------------------------------------------------------------------------

    def _fit(self, train_data: RoutingData) -> None:
        if self.method not in METHODS:
            raise CodynError(
                f"autoregressive: method must be one of {', '.join(METHODS)}, got {self.method!r}"
            )
        settings = self.settings()
        device = pick_device(self.device)
        seed_all(self.seed)
        costs = train_data.mean_cost()
        costs = np.ones(train_data.n_models) if np.isnan(costs).any() else costs
        known = ~np.isnan(train_data.score).all(axis=1)
        rows_all = np.flatnonzero(known)
        if rows_all.size < 2:
            raise CodynError("autoregressive: fewer than two train prompts have a known score")
        targets = target_rankings(train_data.score, costs, float(self.cost_weight))
        net = self._build(settings).to(device)
        texts = train_data.texts
        rows, val_rows = validation_split(rows_all.size, self.validation_share, self.seed)
        rows, val_rows = rows_all[rows], rows_all[val_rows]
        if self.method in ("sft", "sft+grpo"):
            self._sft(net, texts, targets, rows, val_rows, settings, device)
        if self.method in ("grpo", "sft+grpo"):
            self._grpo(net, texts, targets, rows, settings, device)
            sft = getattr(self, "log_", {}) if self.method == "sft+grpo" else {}
            self.log_ = {**sft, "method": self.method, "grpo_steps": int(settings["grpo_steps"])}
            self.log_["device"] = device
            self.weights_ = trainable_arrays(net.cpu())
            self._net = net.to(device).eval()
        answers = self._generate([texts[i] for i in val_rows])
        invalid = [not is_valid_ranking(a, len(self.model_names_)) for a in answers]
        self.invalid_rate_ = float(np.mean(invalid)) if invalid else float("nan")

    def _sft(
        self,
        net: Any,
        texts: list[str],
        targets: list[str],
        rows: np.ndarray,
        val_rows: np.ndarray,
        settings: dict[str, Any],
        device: str,
    ) -> None:
        torch = torch_module()
        tokenizer = net.tokenizer
        length = int(settings["max_length"])
        end = tokenizer.eos_token or ""
        used = np.concatenate([rows, val_rows])
        # the prompt (cut from the left to max_length) then the answer, learned alone
        prompts = tokenizer(
            [self._chat(net, texts[i]) for i in used], truncation=True, max_length=length
        )["input_ids"]
        answers = tokenizer([targets[i] + end for i in used], add_special_tokens=False)["input_ids"]
        pairs = {int(r): (p, a) for r, p, a in zip(used, prompts, answers, strict=True)}

        def batch(index: np.ndarray) -> tuple[Any, Any, Any]:
            """Left-padded ids, mask and labels (-100 but on the answer) of ``index``."""
            width = max(len(pairs[i][0]) + len(pairs[i][1]) for i in index)
            ids = torch.full((len(index), width), tokenizer.pad_token_id, dtype=torch.long)
            labels = torch.full((len(index), width), -100, dtype=torch.long)
            mask = torch.zeros((len(index), width), dtype=torch.long)
            for row, i in enumerate(index):
                p, a = pairs[int(i)]
                ids[row, width - len(p) - len(a) :] = torch.tensor(p + a)
                labels[row, width - len(a) :] = torch.tensor(a)
                mask[row, width - len(p) - len(a) :] = 1
            return ids.to(device), mask.to(device), labels.to(device)

        base = net.get_base_model()
        longest = length + completion_tokens(len(self.model_names_))
        cache = PrefixCache.below(base.model, int(settings["lora_layers"]), used.size, longest)
        if cache is not None:
            cache.fill(used, lambda index: batch(index)[:2], int(settings["batch_size"]), "sft")

        def loss_on(index: np.ndarray) -> Any:
            ids, mask, labels = batch(index)
            if cache is None:
                return net(input_ids=ids, attention_mask=mask, labels=labels).loss
            # the vocabulary's logits at the answer's positions alone (the loss reads no other)
            targets = labels[:, 1:]
            answer = targets != -100
            logits = base.lm_head(cache.run(index)[:, :-1][answer])
            return torch.nn.functional.cross_entropy(logits, targets[answer])

        self._train_network(
            net, loss_on, rows, val_rows, settings, device, lambda _: float(settings["lr"])
        )
        self.log_["method"] = "sft"

    def _grpo(
        self,
        net: Any,
        texts: list[str],
        targets: list[str],
        rows: np.ndarray,
        settings: dict[str, Any],
        device: str,
    ) -> None:
        import os

        os.environ.setdefault("WANDB_DISABLED", "true")
        from datasets import Dataset
        from trl import GRPOConfig, GRPOTrainer

        n = len(self.model_names_)
        dataset = Dataset.from_dict(
            {
                "prompt": [
                    [
                        {"role": "system", "content": system_prompt(n)},
                        {"role": "user", "content": texts[i][:MAX_PROMPT_CHARS]},
                    ]
                    for i in rows
                ],
                "target": [targets[i] for i in rows],
            }
        )

        def reward_format(completions: list[Any], **_: Any) -> list[float]:
            return format_reward(completions, n)

        def reward_position(completions: list[Any], target: list[str], **_: Any) -> list[float]:
            return position_reward(completions, target, n)

        import tempfile

        with tempfile.TemporaryDirectory() as scratch:
            config = GRPOConfig(
                output_dir=scratch,
                learning_rate=float(settings["lr"]),
                per_device_train_batch_size=int(self.generations),
                num_generations=int(self.generations),
                max_completion_length=completion_tokens(n),
                max_steps=int(settings["grpo_steps"]),
                logging_steps=1,
                save_strategy="no",
                report_to="none",
                seed=self.seed,
                use_cpu=device == "cpu",
                disable_tqdm=False,
            )
            trainer = GRPOTrainer(
                model=net,
                reward_funcs=[reward_format, reward_position],
                args=config,
                train_dataset=dataset,
                processing_class=net.tokenizer,
            )
            trainer.train()

    # -- predicting -------------------------------------------------------------------------

    def _generate(self, texts: list[str]) -> list[str]:
        torch = torch_module()
        net = self._network()
        device = str(next(net.parameters()).device)
        length = int(self.settings()["max_length"])
        answers: list[str] = []
        with torch.no_grad():
            for i in range(0, len(texts), 8):
                ids, mask = self._encode(net, texts[i : i + 8], length, device)
                out = net.generate(
                    input_ids=ids,
                    attention_mask=mask,
                    max_new_tokens=completion_tokens(len(self.model_names_)),
                    do_sample=False,
                    pad_token_id=net.tokenizer.pad_token_id,
                )
                answers += net.tokenizer.batch_decode(
                    out[:, ids.shape[1] :], skip_special_tokens=True
                )
        return answers

    def _predict(self, texts: list[str], data: RoutingData | None) -> FloatArray:
        if any(not t.strip() for t in texts):
            raise CodynError("an empty prompt: there is nothing to route on")
        n = len(self.model_names_)
        out = np.full((len(texts), n), np.nan)
        for row, answer in enumerate(self._generate(texts)):
            ranking = parse_ranking(answer, n)
            self.outputs_seen += 1
            if not is_valid_ranking(answer, n):
                self.invalid_seen += 1
            if ranking:
                out[row] = 0.0
                for position, model in enumerate(ranking):
                    out[row, model] = 1.0 - position / n
        return out

    def _extra_state(self) -> dict[str, Any]:
        return {"invalid_rate": self.invalid_rate_}

    def _set_extra_state(self, state: dict[str, Any]) -> None:
        self.invalid_rate_ = float(state["invalid_rate"])
