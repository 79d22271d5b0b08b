"""`causal_lm`: RouteLLM's causal LLM classifier (paper 003, section 4), n-way.

A small causal LM (``backbone``: the packaged SmolLM2-135M-Instruct GGUF by default, loaded
into transformers; ``qwen-coder`` or any local model by path) reads an instruction prompt that
names each candidate model by a label token added to the vocabulary (``[[M0]]``, ``[[M1]]``,
...; RouteLLM appends its comparison labels the same way), and the next token's softmax over
the label tokens alone is the prediction: ``P(model i answers best)``. Two models give
RouteLLM's binary win probability; n models one label each.

Targets are soft: a prompt's probability mass is split evenly over the models with its best
score (every known model when all score alike, a prompt without preference). The loss is the
cross-entropy against them; the label tokens' output rows start as the mean output embedding
and train with the last ``train_layers`` blocks (2 by default: a full fine-tune of 135M
parameters took 14 minutes an epoch on 297 prompts on this 2-core CPU) or with every weight
(``train_layers=-1``, ``preset=paper``: RouteLLM's full fine-tuning, for a GPU). With frozen
blocks below, their output is computed once per prompt (`PrefixCache`) and each epoch runs
only the trained blocks. The saved
router holds the weights training changed; the frozen rest is rebuilt from the backbone.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from codyn.data.routing import RoutingData
from codyn.errors import CodynError
from codyn.routers.embedding import FloatArray
from codyn.routers.neural import (
    FineTunedRouter,
    PrefixCache,
    load_backbone,
    pick_device,
    seed_all,
    torch_module,
    validation_split,
)
from codyn.routers.registry import register_router

MAX_PROMPT_CHARS = 4000


def label_token(index: int) -> str:
    return f"[[M{index}]]"


def instruction(model_names: list[str], prompt: str) -> str:
    """The routing instruction: the candidates by label, then the user's prompt."""
    listed = "\n".join(f"{label_token(i)} {name}" for i, name in enumerate(model_names))
    return (
        "Pick the language model most likely to answer the request below best.\n"
        f"Candidates:\n{listed}\n"
        "Answer with the candidate's label only.\n\n"
        f"Request:\n{prompt[:MAX_PROMPT_CHARS]}"
    )


def best_model_targets(score: FloatArray) -> FloatArray:
    """Per prompt, the probability mass split over its best-scoring known models (all known
    models when every score is the same); rows with no known score are all zero."""
    known = ~np.isnan(score)
    filled = np.where(known, score, -np.inf)
    best = filled.max(axis=1, keepdims=True)
    winners = known & (filled >= best - 1e-12)
    counts = winners.sum(axis=1, keepdims=True)
    return np.where(counts > 0, winners / np.maximum(counts, 1), 0.0)


@register_router("causal_lm")
class CausalLMRouter(FineTunedRouter):
    """Paper 003's causal LLM classifier; see the module docstring for every parameter."""

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "default": {},
        "paper": {"epochs": 3, "lr": 1e-6, "batch_size": 8, "max_length": 2048, "train_layers": -1},
        "tiny": {"epochs": 2, "lr": 1e-3, "max_length": 48, "train_layers": 0, "batch_size": 16},
    }
    DEFAULTS: ClassVar[dict[str, Any]] = {
        "epochs": 3,
        "lr": 2e-5,
        "label_lr": 1e-3,
        "batch_size": 8,
        "max_length": 192,
        "patience": 1,
        "train_layers": 2,
    }

    def __init__(
        self,
        backbone: str = "smollm2",
        epochs: int | None = None,
        lr: float | None = None,
        label_lr: float | None = None,
        batch_size: int | None = None,
        max_length: int | None = None,
        patience: int | None = None,
        train_layers: int | None = None,
        validation_share: float = 0.1,
        preset: str = "default",
        device: str = "auto",
        seed: int = 0,
    ) -> None:
        self.backbone = backbone
        self.epochs = epochs
        self.lr = lr
        self.label_lr = label_lr
        self.batch_size = batch_size
        self.max_length = max_length
        self.patience = patience
        self.train_layers = train_layers
        self.validation_share = validation_share
        self.preset = preset
        self.device = device
        self.seed = seed

    def _build(self, settings: dict[str, Any]) -> Any:
        torch = torch_module()
        train_layers = int(settings["train_layers"])
        tokenizer, lm = load_backbone(self.backbone, lm_head=True)
        labels = [label_token(i) for i in range(len(self.model_names_))]
        tokenizer.add_special_tokens({"additional_special_tokens": labels})
        tokenizer.padding_side = "left"  # the last position is every row's next token
        tokenizer.truncation_side = "left"  # and the generation prompt stays last
        lm.resize_token_embeddings(len(tokenizer))
        output = lm.get_output_embeddings().weight

        class Net(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.lm = lm
                start = output.detach().mean(dim=0, keepdim=True).repeat(len(labels), 1)
                self.label_rows = torch.nn.Parameter(start.clone())

            def forward(self, ids: Any, mask: Any) -> Any:
                return self.head(
                    self.lm.model(input_ids=ids, attention_mask=mask).last_hidden_state
                )

            def head(self, hidden: Any) -> Any:
                return hidden[:, -1] @ self.label_rows.T  # logits over the label tokens

        net = Net()
        net.tokenizer = tokenizer
        blocks = list(lm.model.layers)
        for p in lm.parameters():
            p.requires_grad = train_layers < 0
        if train_layers > 0:
            for block in blocks[len(blocks) - train_layers :]:
                for p in block.parameters():
                    p.requires_grad = True
        return net

    def _encode(self, net: Any, texts: list[str], max_length: int, device: str) -> tuple[Any, Any]:
        names = list(self.model_names_)
        chats = [
            net.tokenizer.apply_chat_template(
                [{"role": "user", "content": instruction(names, text)}],
                tokenize=False,
                add_generation_prompt=True,
            )
            if net.tokenizer.chat_template
            else instruction(names, text) + "\nLabel:"
            for text in texts
        ]
        batch = net.tokenizer(
            chats, padding=True, truncation=True, max_length=max_length, return_tensors="pt"
        )
        return batch["input_ids"].to(device), batch["attention_mask"].to(device)

    def _outputs(self, raw: FloatArray) -> FloatArray:
        shifted = np.exp(raw - raw.max(axis=1, keepdims=True))
        return shifted / shifted.sum(axis=1, keepdims=True)

    def _fit(self, train_data: RoutingData) -> None:
        torch = torch_module()
        settings = self.settings()
        if train_data.n_models < 2:
            raise CodynError("causal_lm: needs at least two models")
        device = pick_device(self.device)
        seed_all(self.seed)
        targets = best_model_targets(train_data.score)
        usable = np.flatnonzero(targets.sum(axis=1) > 0)
        if usable.size < 2:
            raise CodynError("causal_lm: fewer than two train prompts have a known score")
        net = self._build(settings).to(device)
        texts = train_data.texts
        rows, val_rows = validation_split(usable.size, self.validation_share, self.seed)
        y = torch.from_numpy(targets.astype(np.float32)).to(device)
        length = int(settings["max_length"])

        def encode(index: np.ndarray) -> tuple[Any, Any]:
            return self._encode(net, [texts[i] for i in index], length, device)

        trained = int(settings["train_layers"])
        cache = PrefixCache.below(net.lm.model, trained, usable.size, length)
        if cache is not None:
            cache.fill(usable, encode, int(settings["batch_size"]), self.family)

        def loss_on(index: np.ndarray) -> Any:
            logits = net.head(cache.run(index)) if cache else net(*encode(index))
            log_p = torch.log_softmax(logits, dim=1)
            return -(y[torch.from_numpy(index).to(device)] * log_p).sum(dim=1).mean()

        self._train_network(
            net,
            loss_on,
            usable[rows],
            usable[val_rows],
            settings,
            device,
            lambda name: float(settings["label_lr"] if name == "label_rows" else settings["lr"]),
        )
