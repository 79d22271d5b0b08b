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
and are trained with the rest (``train_layers=-1``, full fine-tuning as in the paper) or with
the last ``train_layers`` blocks only. The saved router holds the weights training changed;
the frozen rest is rebuilt from the backbone.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from codyn.data.routing import RoutingData
from codyn.errors import CodynError
from codyn.routers.base import Arrays, Router, State
from codyn.routers.embedding import FloatArray
from codyn.routers.neural import (
    apply_preset,
    load_backbone,
    load_module_arrays,
    pick_device,
    seed_all,
    torch_module,
    train,
    trainable_arrays,
    validation_split,
)
from codyn.routers.registry import register_router

PRESETS: dict[str, dict[str, Any]] = {
    "default": {},
    "paper": {"epochs": 3, "lr": 1e-6, "batch_size": 8, "max_length": 2048},
    "tiny": {"epochs": 2, "lr": 1e-3, "max_length": 48, "train_layers": 0, "batch_size": 16},
}
DEFAULTS: dict[str, Any] = {
    "epochs": 3,
    "lr": 2e-5,
    "label_lr": 1e-3,
    "batch_size": 8,
    "max_length": 256,
    "patience": 1,
    "train_layers": -1,
}
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
class CausalLMRouter(Router):
    """Paper 003's causal LLM classifier; see the module docstring for every parameter."""

    tensor_weights = True

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
        self._net: Any = None

    log_: dict[str, Any]
    weights_: Arrays

    def _build(self, train_layers: int) -> Any:
        torch = torch_module()
        tokenizer, lm = load_backbone(self.backbone, lm_head=True)
        labels = [label_token(i) for i in range(len(self.model_names_))]
        tokenizer.add_special_tokens({"additional_special_tokens": labels})
        tokenizer.padding_side = "left"  # the last position is every row's next token
        lm.resize_token_embeddings(len(tokenizer))
        label_ids = tokenizer.convert_tokens_to_ids(labels)
        output = lm.get_output_embeddings().weight
        names = list(self.model_names_)

        class Net(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.lm = lm
                start = output.detach().mean(dim=0, keepdim=True).repeat(len(label_ids), 1)
                self.label_rows = torch.nn.Parameter(start.clone())

            def forward(self, ids: Any, mask: Any) -> Any:
                hidden = self.lm.model(input_ids=ids, attention_mask=mask).last_hidden_state
                return hidden[:, -1] @ self.label_rows.T  # logits over the label tokens

        net = Net()
        net.tokenizer = tokenizer
        net.label_ids = label_ids
        net.model_names = names
        blocks = list(lm.model.layers)
        for p in lm.parameters():
            p.requires_grad = train_layers < 0
        if train_layers > 0:
            for block in blocks[len(blocks) - train_layers :]:
                for p in block.parameters():
                    p.requires_grad = True
        return net

    def _encode(self, net: Any, texts: list[str], max_length: int, device: str) -> tuple[Any, Any]:
        chats = [
            net.tokenizer.apply_chat_template(
                [{"role": "user", "content": instruction(net.model_names, text)}],
                tokenize=False,
                add_generation_prompt=True,
            )
            if net.tokenizer.chat_template
            else instruction(net.model_names, text) + "\nLabel:"
            for text in texts
        ]
        # keep the end of a long instruction: the generation prompt must stay last
        net.tokenizer.truncation_side = "left"
        batch = net.tokenizer(
            chats, padding=True, truncation=True, max_length=max_length, return_tensors="pt"
        )
        return batch["input_ids"].to(device), batch["attention_mask"].to(device)

    def _fit(self, train_data: RoutingData) -> None:
        torch = torch_module()
        settings = apply_preset(self, PRESETS, DEFAULTS)
        if train_data.n_models < 2:
            raise CodynError("causal_lm: needs at least two models")
        device = pick_device(self.device)
        seed_all(self.seed)
        targets = best_model_targets(train_data.score)
        usable = np.flatnonzero(targets.sum(axis=1) > 0)
        if usable.size < 2:
            raise CodynError("causal_lm: fewer than two train prompts have a known score")
        net = self._build(int(settings["train_layers"])).to(device)
        texts = train_data.texts
        rows, val_rows = validation_split(usable.size, self.validation_share, self.seed)
        rows, val_rows = usable[rows], usable[val_rows]
        y = torch.from_numpy(targets.astype(np.float32)).to(device)
        length = int(settings["max_length"])

        def loss_on(index: np.ndarray) -> Any:
            ids, mask = self._encode(net, [texts[i] for i in index], length, device)
            log_p = torch.log_softmax(net(ids, mask), dim=1)
            return -(y[torch.from_numpy(index).to(device)] * log_p).sum(dim=1).mean()

        def val_loss() -> float:
            step = int(settings["batch_size"])
            parts = [float(loss_on(val_rows[i : i + step])) for i in range(0, len(val_rows), step)]
            return sum(parts) / max(len(parts), 1)

        log = train(
            net,
            lambda batch: loss_on(rows[batch]),
            len(rows),
            val_loss,
            epochs=int(settings["epochs"]),
            batch_size=int(settings["batch_size"]),
            lr=float(settings["lr"]),
            patience=int(settings["patience"]),
            seed=self.seed,
            label="causal_lm",
            device=device,
            lr_of=lambda name: float(
                settings["label_lr"] if name == "label_rows" else settings["lr"]
            ),
        )
        self.log_ = log.to_dict()
        self.weights_ = trainable_arrays(net.cpu())
        self._net = net.to(device)

    def _network(self) -> Any:
        if self._net is None:
            settings = apply_preset(self, PRESETS, DEFAULTS)
            net = self._build(int(settings["train_layers"]))
            load_module_arrays(net, self.weights_)
            self._net = net.to(pick_device(self.device)).eval()
        return self._net

    def _predict(self, texts: list[str], data: RoutingData | None) -> FloatArray:
        torch = torch_module()
        if any(not t.strip() for t in texts):
            raise CodynError("an empty prompt: there is nothing to route on")
        settings = apply_preset(self, PRESETS, DEFAULTS)
        net = self._network()
        device = str(next(net.parameters()).device)
        out = []
        with torch.no_grad():
            for i in range(0, len(texts), 16):
                ids, mask = self._encode(
                    net, texts[i : i + 16], int(settings["max_length"]), device
                )
                out.append(torch.softmax(net(ids, mask), dim=1).float().cpu().numpy())
        if not out:
            return np.empty((0, len(self.model_names_)))
        return np.vstack(out).astype(np.float64)

    def _state(self) -> State:
        return {"log": self.log_}, dict(self.weights_)

    def _set_state(self, state: dict[str, Any], arrays: Arrays) -> None:
        self.log_ = dict(state["log"])
        self.weights_ = dict(arrays)
        self._net = None
