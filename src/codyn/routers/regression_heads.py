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

from typing import Any

import numpy as np

from codyn.data.routing import RoutingData
from codyn.errors import CodynError
from codyn.metrics.quality_cost import ranking_score
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
    "paper": {"epochs": 3, "lr": 2e-5, "max_length": 2048, "batch_size": 4},
    "tiny": {"epochs": 1, "max_length": 32, "train_layers": 1, "batch_size": 16},
}
DEFAULTS: dict[str, Any] = {
    "epochs": 4,
    "lr": 5e-5,
    "head_lr": 1e-3,
    "batch_size": 16,
    "max_length": 128,
    "patience": 1,
    "train_layers": -1,
}
CAUSAL_TYPES = frozenset({"qwen2", "llama", "mistral", "gemma", "gemma2", "gpt2", "phi3"})
"""Backbones read left to right: the prompt is the last real token's hidden state."""


@register_router("regression_heads")
class RegressionHeadsRouter(Router):
    """Paper 000's n-way regression router; see the module docstring for every parameter."""

    tensor_weights = True

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
        self._net: Any = None

    mean_: float
    std_: float
    affordability_: list[float]
    log_: dict[str, Any]
    weights_: Arrays

    # -- the network ------------------------------------------------------------------------

    def _build(self, n_models: int) -> Any:
        torch = torch_module()
        tokenizer, encoder = load_backbone(self.backbone)
        causal = encoder.config.model_type in CAUSAL_TYPES

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
        return net

    def _freeze(self, net: Any, train_layers: int) -> None:
        """``train_layers = -1``: every weight trains (the paper); ``k``: only the last ``k``
        transformer layers and the heads (the tiny preset)."""
        if train_layers < 0:
            return
        layers = [m for m in net.encoder.modules() if isinstance(m, torch_module().nn.ModuleList)]
        blocks = list(layers[0]) if layers else []
        keep = {id(p) for block in blocks[len(blocks) - train_layers :] for p in block.parameters()}
        keep |= {id(p) for p in net.heads.parameters()}
        for p in net.parameters():
            p.requires_grad = id(p) in keep

    def _tokens(self, net: Any, texts: list[str], max_length: int, device: str) -> tuple[Any, Any]:
        batch = net.tokenizer(
            texts, padding=True, truncation=True, max_length=max_length, return_tensors="pt"
        )
        return batch["input_ids"].to(device), batch["attention_mask"].to(device)

    # -- Router hooks -----------------------------------------------------------------------

    def _fit(self, train_data: RoutingData) -> None:
        torch = torch_module()
        settings = apply_preset(self, PRESETS, DEFAULTS)
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
        target = train_data.score + float(self.cost_weight) * afford[None, :]
        known = ~np.isnan(target)
        if not known.any():
            raise CodynError("regression_heads: no known score to learn from")
        self.mean_ = float(target[known].mean())
        self.std_ = float(target[known].std()) or 1.0
        scaled = np.where(known, (target - self.mean_) / self.std_, 0.0).astype(np.float32)
        net = self._build(train_data.n_models).to(device)
        self._freeze(net, int(settings["train_layers"]))
        texts = train_data.texts
        rows, val_rows = validation_split(len(texts), self.validation_share, self.seed)
        y = torch.from_numpy(scaled).to(device)
        mask = torch.from_numpy(known.astype(np.float32)).to(device)
        length = int(settings["max_length"])

        def loss_on(index: np.ndarray) -> Any:
            ids, attention = self._tokens(net, [texts[i] for i in index], length, device)
            rows_t = torch.from_numpy(index).to(device)
            err = (net(ids, attention) - y[rows_t]) ** 2 * mask[rows_t]
            # the sum over heads of each head's mean squared error
            return (err.sum(0) / mask[rows_t].sum(0).clamp(min=1.0)).sum()

        def batch_loss(batch: np.ndarray) -> Any:
            return loss_on(rows[batch])

        def val_loss() -> float:
            step = int(settings["batch_size"])
            parts = [loss_on(val_rows[i : i + step]) for i in range(0, len(val_rows), step)]
            return float(sum(float(p) for p in parts) / max(len(parts), 1))

        log = train(
            net,
            batch_loss,
            len(rows),
            val_loss,
            epochs=int(settings["epochs"]),
            batch_size=int(settings["batch_size"]),
            lr=float(settings["lr"]),
            patience=int(settings["patience"]),
            seed=self.seed,
            label="regression_heads",
            device=device,
            lr_of=lambda name: float(
                settings["head_lr"] if name.startswith("heads.") else settings["lr"]
            ),
        )
        self.affordability_ = [float(a) for a in afford]
        self.log_ = log.to_dict()
        self._net = net
        self.weights_ = trainable_arrays(net.cpu())
        net.to(device)

    def _network(self) -> Any:
        if self._net is None:
            net = self._build(len(self.model_names_))
            load_module_arrays(net, self.weights_)
            self._net = net.to(pick_device(self.device))
        return self._net

    def _predict(self, texts: list[str], data: RoutingData | None) -> FloatArray:
        torch = torch_module()
        if any(not t.strip() for t in texts):
            raise CodynError("an empty prompt: there is nothing to route on")
        settings = apply_preset(self, PRESETS, DEFAULTS)
        net = self._network()
        device = next(net.parameters()).device
        out = []
        with torch.no_grad():
            for i in range(0, len(texts), 32):
                ids, mask = self._tokens(
                    net, texts[i : i + 32], int(settings["max_length"]), str(device)
                )
                out.append(net(ids, mask).float().cpu().numpy())
        scaled = np.vstack(out) if out else np.empty((0, len(self.model_names_)))
        return scaled.astype(np.float64) * self.std_ + self.mean_

    def _state(self) -> State:
        state = {
            "mean": self.mean_,
            "std": self.std_,
            "affordability": self.affordability_,
            "log": self.log_,
        }
        return state, dict(self.weights_)

    def _set_state(self, state: dict[str, Any], arrays: Arrays) -> None:
        self.mean_, self.std_ = float(state["mean"]), float(state["std"])
        self.affordability_ = [float(a) for a in state["affordability"]]
        self.log_ = dict(state["log"])
        self.weights_ = dict(arrays)
        self._net = None
