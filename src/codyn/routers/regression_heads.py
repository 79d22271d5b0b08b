"""`regression_heads`: CoDyn's "LLM classifier" (paper 000, section 5.1), fine-tuned end to end.

An encoder (``backbone``: MiniLM by default, the packaged all-MiniLM-L6-v2; ``qwen-coder``,
the packaged Qwen2.5-Coder-0.5B GGUF loaded into transformers, as the paper's Qwen-2.5-0.5B
stand-in; or any local Hugging Face model directory) with one regression head per model,
trained with every weight free (full fine-tuning, as the paper) on the sum of the heads' mean
squared errors, ``L = sum_i (1/N) sum_k (S_hat_i(x_k) - S_i(x_k))^2``, missing scores left
out. Targets are CoDyn's ranking score ``RS = ES + cost_weight * CS^-1`` (section 6.1.3):
``cost_weight=0`` is setting 1 (quality only), 0.25 setting 2, 0.5 setting 3, with ``CS^-1``
the affordability of each model's mean train cost. For categorical tasks collected by
``codyn collect`` (kind ``classify``) the score already is appendix A.6's bias-penalised
effectiveness. Targets are standard-scaled over the whole data set (section A.4: one mean
and deviation, so the models keep their order) and predictions scaled back.

The router predicts RS per model; under the ``utility`` policy at lambda = 0 it picks the
model of highest predicted RS, the paper's rule. The prompt's representation is the mean of
the last hidden states (an encoder) or the last token's (a causal LM).
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from codyn.data.routing import RoutingData
from codyn.errors import CodynError
from codyn.metrics.quality_cost import ranking_score
from codyn.routers.embedding import FloatArray
from codyn.routers.neural import (
    FineTunedRouter,
    load_backbone,
    pick_device,
    seed_all,
    torch_module,
    validation_split,
)
from codyn.routers.registry import register_router

CAUSAL_TYPES = frozenset({"qwen2", "llama", "mistral", "gemma", "gemma2", "gpt2", "phi3"})
"""Backbones read left to right: the prompt is the last real token's hidden state."""


@register_router("regression_heads")
class RegressionHeadsRouter(FineTunedRouter):
    """Paper 000's n-way regression router; see the module docstring for every parameter."""

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "default": {},
        "paper": {"epochs": 3, "lr": 2e-5, "max_length": 2048, "batch_size": 4},
        "tiny": {"epochs": 1, "max_length": 32, "train_layers": 1, "batch_size": 16},
    }
    DEFAULTS: ClassVar[dict[str, Any]] = {
        "epochs": 4,
        "lr": 5e-5,
        "head_lr": 1e-3,
        "batch_size": 16,
        "max_length": 128,
        "patience": 1,
        "train_layers": -1,
    }

    def __init__(
        self,
        backbone: str = "minilm",
        cost_weight: float = 0.0,
        epochs: int | None = None,
        lr: float | None = None,
        head_lr: float | None = None,
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
        self.cost_weight = cost_weight
        self.epochs = epochs
        self.lr = lr
        self.head_lr = head_lr
        self.batch_size = batch_size
        self.max_length = max_length
        self.patience = patience
        self.train_layers = train_layers
        self.validation_share = validation_share
        self.preset = preset
        self.device = device
        self.seed = seed

    mean_: float
    std_: float
    affordability_: list[float]

    def _build(self, settings: dict[str, Any]) -> Any:
        torch = torch_module()
        tokenizer, encoder = load_backbone(self.backbone)
        causal = encoder.config.model_type in CAUSAL_TYPES
        n_models = len(self.model_names_)

        class Net(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.encoder = encoder
                self.heads = torch.nn.Linear(encoder.config.hidden_size, n_models)

            def forward(self, ids: Any, mask: Any) -> Any:
                hidden = self.encoder(input_ids=ids, attention_mask=mask).last_hidden_state
                if causal:  # the last real token sees the whole prompt
                    last = mask.sum(dim=1) - 1
                    pooled = hidden[torch.arange(hidden.shape[0]), last]
                else:
                    weights = mask.unsqueeze(-1).to(hidden.dtype)
                    pooled = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1.0)
                return self.heads(pooled)

        net = Net()
        net.tokenizer = tokenizer
        _freeze(net, int(settings["train_layers"]))
        return net

    def _encode(self, net: Any, texts: list[str], max_length: int, device: str) -> tuple[Any, Any]:
        batch = net.tokenizer(
            texts, padding=True, truncation=True, max_length=max_length, return_tensors="pt"
        )
        return batch["input_ids"].to(device), batch["attention_mask"].to(device)

    def _outputs(self, raw: FloatArray) -> FloatArray:
        return raw * self.std_ + self.mean_

    def _fit(self, train_data: RoutingData) -> None:
        torch = torch_module()
        settings = self.settings()
        if not 0 <= float(self.cost_weight) <= 1:
            raise CodynError(
                f"regression_heads: cost_weight must be in [0, 1], got {self.cost_weight}"
            )
        device = pick_device(self.device)
        seed_all(self.seed)
        costs = train_data.mean_cost()
        afford = (
            np.ones(train_data.n_models)
            if np.isnan(costs).any()
            else ranking_score(np.zeros(train_data.n_models), costs, 0.0, 1.0)
        )
        self.affordability_ = [float(a) for a in afford]
        target = train_data.score + float(self.cost_weight) * afford[None, :]
        known = ~np.isnan(target)
        if not known.any():
            raise CodynError("regression_heads: no known score to learn from")
        self.mean_ = float(target[known].mean())
        self.std_ = float(target[known].std()) or 1.0
        scaled = np.where(known, (target - self.mean_) / self.std_, 0.0).astype(np.float32)
        net = self._build(settings).to(device)
        texts = train_data.texts
        rows, val_rows = validation_split(len(texts), self.validation_share, self.seed)
        y = torch.from_numpy(scaled).to(device)
        mask = torch.from_numpy(known.astype(np.float32)).to(device)
        length = int(settings["max_length"])

        def loss_on(index: np.ndarray) -> Any:
            ids, attention = self._encode(net, [texts[i] for i in index], length, device)
            rows_t = torch.from_numpy(index).to(device)
            err = (net(ids, attention) - y[rows_t]) ** 2 * mask[rows_t]
            # the sum over heads of each head's mean squared error
            return (err.sum(0) / mask[rows_t].sum(0).clamp(min=1.0)).sum()

        self._train_network(
            net,
            loss_on,
            rows,
            val_rows,
            settings,
            device,
            lambda name: float(
                settings["head_lr"] if name.startswith("heads.") else settings["lr"]
            ),
        )

    def _extra_state(self) -> dict[str, Any]:
        return {"mean": self.mean_, "std": self.std_, "affordability": self.affordability_}

    def _set_extra_state(self, state: dict[str, Any]) -> None:
        self.mean_, self.std_ = float(state["mean"]), float(state["std"])
        self.affordability_ = [float(a) for a in state["affordability"]]


def _freeze(net: Any, train_layers: int) -> None:
    """``train_layers = -1``: every weight trains (the paper); ``k``: only the last ``k``
    transformer layers and the heads (the tiny preset)."""
    if train_layers < 0:
        return
    torch = torch_module()
    layers = [m for m in net.encoder.modules() if isinstance(m, torch.nn.ModuleList)]
    blocks = list(layers[0]) if layers else []
    keep = {id(p) for block in blocks[len(blocks) - train_layers :] for p in block.parameters()}
    keep |= {id(p) for p in net.heads.parameters()}
    for p in net.parameters():
        p.requires_grad = id(p) in keep
