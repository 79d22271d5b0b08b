"""`classifier`: the MBPP paper's router (paper 001, after Hybrid-LLM): P(H(x) >= t) for a pair.

``H(x) = q(small(x)) - q(large(x))`` is the quality gap. A frozen encoder (the ``featuriser``,
MiniLM by default: the paper's DeBERTa-v3-small has no offline package; ``minilm`` takes any
local sentence-transformers encoder through the featuriser's ``model_path``) feeds a 2-layer
head (``hidden`` 384, ``dropout`` 0.2) trained on soft labels (eq. 3):

- with per-sample scores (``RoutingData.samples``, from ``codyn collect --samples K``), the
  share of (small sample, large sample) pairs whose gap is at least ``t``;
- otherwise a score in [0, 1] is read as a per-sample pass rate (RouterDC's ``scores`` are the
  fraction of 10 samples correct): independent samples give ``H`` in {-1, 0, 1} with
  ``P(H = 1) = s (1 - l)``, ``P(H = -1) = l (1 - s)``; 0/1 scores give hard labels.

``target="ge"`` models ``P(H >= t)``, ``"gt"`` the strict ``P(H > t)``. The shift ``t`` is
eq. 4's ``t*`` (``shift="auto"``: the attainable gap that spreads the labels most) or a
number. ``brevity=True`` is the paper's brevity-aware quality: a tie goes to the model with
fewer output tokens (``tokens_out``). Training is binary cross-entropy on the soft labels
(eq. 3 printed without logs: the paper's ``-mean(y p + (1 - y)(1 - p))`` has no proper
optimum inside (0, 1); the log form is Hybrid-LLM's), AdamW, an exponential moving average of
the weights (``ema_decay`` 0.999) and offline augmentation (``augment`` extra copies of each
train prompt by seeded random word swaps and deletions, EDA's two label-preserving edits;
the paper used nlpaug, not packaged offline; 4 copies there).

Predictions: the small model's column is ``p``, the large model's ``1 - p``, every other
model NaN (never chosen). Under the ``threshold`` policy (strong = large, weak = small) the
rule "small if p >= tau" is ``alpha = 1 - 2 tau``; under ``utility`` lambda = 0 routes to the
small model when ``p >= 1/2``. Inference is numpy only (the head's four arrays).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from codyn.data.routing import RoutingData
from codyn.errors import CodynError
from codyn.metrics.headroom import sbs_index, weak_index
from codyn.routers.base import Arrays, State
from codyn.routers.embedding import EmbeddingRouter, Features, FloatArray
from codyn.routers.neural import (
    apply_preset,
    module_arrays,
    pick_device,
    seed_all,
    torch_module,
    train,
    validation_split,
)
from codyn.routers.registry import register_router

TARGETS = ("ge", "gt")
PRESETS: dict[str, dict[str, Any]] = {
    "default": {},
    "paper": {"epochs": 5, "augment": 4},
    "tiny": {"epochs": 10, "augment": 0, "hidden": 32, "lr": 3e-2, "ema_decay": 0.9},
}
DEFAULTS: dict[str, Any] = {
    "epochs": 20,
    "augment": 0,
    "hidden": 384,
    "lr": 1e-3,
    "batch_size": 32,
    "patience": 3,
    "ema_decay": 0.999,
}


def pair_gaps(
    small: FloatArray,
    large: FloatArray,
    samples_small: FloatArray | None = None,
    samples_large: FloatArray | None = None,
) -> list[tuple[FloatArray, FloatArray]]:
    """Per prompt, the attainable gaps ``h`` and their probabilities ``w`` (see the module)."""
    out = []
    for i in range(len(small)):
        if samples_small is not None and samples_large is not None:
            s = samples_small[i][~np.isnan(samples_small[i])]
            lg = samples_large[i][~np.isnan(samples_large[i])]
            if s.size and lg.size:
                h = (s[:, None] - lg[None, :]).ravel()
                values, counts = np.unique(h, return_counts=True)
                out.append((values, counts / counts.sum()))
                continue
        p, q = float(small[i]), float(large[i])
        if 0.0 <= p <= 1.0 and 0.0 <= q <= 1.0:
            out.append(
                (
                    np.array([-1.0, 0.0, 1.0]),
                    np.array([q * (1 - p), p * q + (1 - p) * (1 - q), p * (1 - q)]),
                )
            )
        else:
            out.append((np.array([p - q]), np.array([1.0])))
    return out


def soft_labels(
    gaps: list[tuple[FloatArray, FloatArray]],
    shift: float,
    *,
    strict: bool = False,
    tie_to_small: NDArray[np.bool_] | None = None,
) -> FloatArray:
    """``y_i = P(H_i >= shift)`` (``strict``: ``>``). ``tie_to_small`` (brevity) decides a
    gap of exactly 0 per prompt: for the small model where True, for the large one where False."""
    labels = np.empty(len(gaps))
    for i, (h, w) in enumerate(gaps):
        wins = h > shift if strict else h >= shift
        if tie_to_small is not None and shift == 0.0:
            wins = np.where(h == 0.0, bool(tie_to_small[i]), wins)
        labels[i] = float(w[wins].sum())
    return labels


def label_spread(labels: FloatArray) -> float:
    """Eq. 4's objective, ``(1 / N^2) sum_{i != j} |y_i - y_j|``, in O(N log N): on sorted
    labels ``sum_{i<j} (y_j - y_i) = sum_k y_k (2k - N + 1)``."""
    y = np.sort(np.asarray(labels, dtype=np.float64))
    n = y.size
    if n < 2:
        return 0.0
    return float(2.0 * (y * (2 * np.arange(n) - n + 1)).sum() / n**2)


def best_shift(
    gaps: list[tuple[FloatArray, FloatArray]], *, strict: bool = False
) -> tuple[float, float]:
    """Eq. 4: ``t*`` among the attainable gaps (the labels change only there) and its spread;
    ties go to the shift closest to 0."""
    candidates = np.unique(np.concatenate([h for h, _ in gaps]))
    best, spread = 0.0, -1.0
    for t in sorted(candidates, key=abs):
        value = label_spread(soft_labels(gaps, float(t), strict=strict))
        if value > spread + 1e-12:
            best, spread = float(t), value
    return best, spread


def augment_texts(texts: list[str], copies: int, seed: int) -> list[str]:
    """``copies`` edited versions of each text (EDA's random swap and random deletion of
    about 10% of the words), seeded; the originals are not included."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(copies):
        for text in texts:
            words = text.split()
            if len(words) < 4:
                out.append(text)
                continue
            n_edit = max(1, len(words) // 10)
            if rng.random() < 0.5:
                for _ in range(n_edit):
                    i, j = rng.integers(len(words), size=2)
                    words[i], words[j] = words[j], words[i]
            else:
                drop = set(rng.choice(len(words), size=n_edit, replace=False).tolist())
                words = [w for k, w in enumerate(words) if k not in drop]
            out.append(" ".join(words))
    return out


def _head_forward(arrays: Arrays, X: Features) -> FloatArray:
    hidden = np.maximum(X @ arrays["head.0.weight"].T + arrays["head.0.bias"], 0.0)
    logit = hidden @ arrays["head.3.weight"].T + arrays["head.3.bias"]
    return 1.0 / (1.0 + np.exp(-logit[:, 0].astype(np.float64)))


@register_router("classifier")
class ClassifierRouter(EmbeddingRouter):
    """Paper 001's soft-label pair classifier; see the module docstring for every parameter."""

    tensor_weights = True

    def __init__(
        self,
        featuriser: str = "minilm",
        small: str | None = None,
        large: str | None = None,
        target: str = "ge",
        shift: str | float = "auto",
        brevity: bool = False,
        hidden: int | None = None,
        dropout: float = 0.2,
        ema_decay: float | None = None,
        augment: int | None = None,
        epochs: int | None = None,
        lr: float | None = None,
        batch_size: int | None = None,
        patience: int | None = None,
        validation_share: float = 0.1,
        preset: str = "default",
        device: str = "auto",
        seed: int = 0,
    ) -> None:
        super().__init__(featuriser)
        self.small = small
        self.large = large
        self.target = target
        self.shift = shift
        self.brevity = brevity
        self.hidden = hidden
        self.dropout = dropout
        self.ema_decay = ema_decay
        self.augment = augment
        self.epochs = epochs
        self.lr = lr
        self.batch_size = batch_size
        self.patience = patience
        self.validation_share = validation_share
        self.preset = preset
        self.device = device
        self.seed = seed

    small_: int
    large_: int
    shift_: float
    head_: Arrays
    log_: dict[str, Any]

    def _check_params(self) -> None:
        if self.target not in TARGETS:
            raise CodynError(f"classifier: target must be ge or gt, got {self.target!r}")
        if not (self.shift == "auto" or isinstance(self.shift, int | float)):
            raise CodynError(f"classifier: shift must be auto or a number, got {self.shift!r}")
        settings = apply_preset(self, PRESETS, DEFAULTS)
        if not 0 <= self.dropout < 1 or not 0 <= settings["ema_decay"] < 1:
            raise CodynError("classifier: dropout and ema_decay must be in [0, 1)")

    def _pair(self, train: RoutingData) -> tuple[int, int]:
        names = train.model_names
        if len(names) < 2:
            raise CodynError("classifier: needs at least two models")
        for name in (self.small, self.large):
            if name is not None and name not in names:
                raise CodynError(f"classifier: no model {name!r} in the data ({', '.join(names)})")
        costs = train.mean_cost()
        known = not np.isnan(costs).any()
        large = (
            names.index(self.large)
            if self.large is not None
            else sbs_index(train.score, train.cost if known else None)
        )
        if self.small is not None:
            small = names.index(self.small)
        else:
            means = np.nanmean(train.score, axis=0)
            found = weak_index(means, costs if known else np.arange(len(names)), large)
            small = found if found is not None else int(np.argsort(means)[-2])
        if small == large:
            raise CodynError(f"classifier: small and large are both {names[small]!r}")
        return small, large

    def _fit_features(self, X: Features, train: RoutingData) -> None:
        settings = apply_preset(self, PRESETS, DEFAULTS)
        self.small_, self.large_ = self._pair(train)
        s, lg = self.small_, self.large_
        known = ~np.isnan(train.score[:, s]) & ~np.isnan(train.score[:, lg])
        if known.sum() < 2:
            raise CodynError("classifier: fewer than two train prompts scored for both models")
        samples = train.samples
        gaps = pair_gaps(
            train.score[known, s],
            train.score[known, lg],
            None if samples is None else samples[known, s],
            None if samples is None else samples[known, lg],
        )
        strict = self.target == "gt"
        tie_to_small = None
        if self.brevity:
            if train.tokens_out is None:
                raise CodynError("classifier: brevity needs output token counts (tokens_out)")
            tokens = train.tokens_out[known]
            tie_to_small = tokens[:, s] < tokens[:, lg]
        if self.shift == "auto":
            self.shift_, _ = best_shift(gaps, strict=strict)
        else:
            self.shift_ = float(self.shift)
        y = soft_labels(gaps, self.shift_, strict=strict, tie_to_small=tie_to_small)
        features = X[known]
        if settings["augment"]:
            texts = [t for t, k in zip(train.texts, known, strict=True) if k]
            extra = self.transform(augment_texts(texts, int(settings["augment"]), self.seed))
            features = np.vstack([features, extra])
            y = np.concatenate([y] + [y] * int(settings["augment"]))
        self._train_head(features.astype(np.float32), y, settings, n_original=int(known.sum()))

    def _train_head(
        self, X: Features, y: FloatArray, settings: dict[str, Any], n_original: int
    ) -> None:
        torch = torch_module()
        device = pick_device(self.device)
        seed_all(self.seed)
        # hold out original prompts only, with their augmented copies, so no copy leaks
        train_rows, val_rows = validation_split(n_original, self.validation_share, self.seed)
        copies = X.shape[0] // n_original
        train_all = np.concatenate([train_rows + k * n_original for k in range(copies)])
        head = torch.nn.Sequential(
            torch.nn.Linear(X.shape[1], int(settings["hidden"])),
            torch.nn.ReLU(),
            torch.nn.Dropout(self.dropout),
            torch.nn.Linear(int(settings["hidden"]), 1),
        ).to(device)
        features = torch.from_numpy(X).to(device)
        labels = torch.from_numpy(y.astype(np.float32)).to(device)
        loss_fn = torch.nn.BCEWithLogitsLoss()

        def batch_loss(rows: NDArray[np.int64]) -> Any:
            index = torch.from_numpy(train_all[rows]).to(device)
            return loss_fn(head(features[index])[:, 0], labels[index])

        def val_loss() -> float:
            index = torch.from_numpy(val_rows).to(device)
            return float(loss_fn(head(features[index])[:, 0], labels[index]))

        log = train(
            head,
            batch_loss,
            len(train_all),
            val_loss,
            epochs=int(settings["epochs"]),
            batch_size=int(settings["batch_size"]),
            lr=float(settings["lr"]),
            patience=int(settings["patience"]),
            seed=self.seed,
            ema_decay=float(settings["ema_decay"]) or None,
            label="classifier",
            device=device,
        )
        self.head_ = module_arrays(head.cpu(), prefix="head.")
        self.log_ = log.to_dict()

    def win_probability(self, X: Features) -> FloatArray:
        """``P(H(x) >= t*)`` (or ``>``) per row of features: the small model is good enough."""
        return _head_forward(self.head_, X.astype(np.float32))

    def _predict_features(self, X: Features) -> FloatArray:
        p = self.win_probability(X)
        out = np.full((X.shape[0], len(self.model_names_)), np.nan)
        out[:, self.small_] = p
        out[:, self.large_] = 1.0 - p
        return out

    def _head_state(self) -> State:
        state = {"small": self.small_, "large": self.large_, "shift": self.shift_, "log": self.log_}
        return state, dict(self.head_)

    def _set_head_state(self, state: dict[str, Any], arrays: Arrays) -> None:
        self.small_, self.large_ = int(state["small"]), int(state["large"])
        self.shift_ = float(state["shift"])
        self.log_ = dict(state["log"])
        self.head_ = {k: np.asarray(v) for k, v in arrays.items() if k.startswith("head.")}
