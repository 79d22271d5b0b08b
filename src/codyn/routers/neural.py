"""What the fine-tuned routers share: device, seeds, presets, the training loop and EMA.

The papers' routers are networks trained by gradient descent (`classifier`, paper 001;
`regression_heads`, paper 000 section 5.1). They run where torch finds a GPU and on the CPU
otherwise (``device="auto"``), are seeded end to end, show a progress line per epoch with the
train and validation loss, stop early when the validation loss stops improving (keeping the
best epoch's weights) and save their weights as ``weights.safetensors`` (numpy arrays: a saved
router loads, and its frozen-encoder heads predict, without torch). ``preset="tiny"`` trains
in seconds for tests; ``preset="paper"`` is the paper's schedule.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import time
from abc import abstractmethod
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from numpy.typing import NDArray

from codyn.data.routing import RoutingData
from codyn.errors import CodynError
from codyn.routers.base import Arrays, Router, State

FloatArray = NDArray[np.float64]


def torch_module() -> Any:
    """torch, imported on first use (``import codyn`` stays light); a one-line error if absent."""
    try:
        import torch
    except ImportError:
        raise CodynError(
            "this router trains with torch: pip install torch==2.13.0 (the CPU build)"
        ) from None
    return torch


def pick_device(device: str) -> str:
    """``auto``: CUDA when torch sees a GPU, else the CPU; ``cpu`` / ``cuda`` / ``cuda:N`` as
    given (a GPU asked for and absent is a one-line error)."""
    torch = torch_module()
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise CodynError(f"device {device!r}: torch sees no GPU here; use device=auto or cpu")
    if device != "cpu" and not device.startswith("cuda"):
        raise CodynError(f"device must be auto, cpu or cuda[:N], got {device!r}")
    return device


def seed_all(seed: int) -> None:
    """Seed torch (CPU and GPU) so that one seed gives one set of weights on one machine."""
    torch = torch_module()
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)


def apply_preset(
    router: Any, presets: Mapping[str, Mapping[str, Any]], defaults: Mapping[str, Any]
) -> dict[str, Any]:
    """The training settings: the router's own parameters where set (not None), else its
    preset's, else ``defaults``."""
    if router.preset not in presets:
        raise CodynError(
            f"{router.family}: preset must be one of {', '.join(presets)}, got {router.preset!r}"
        )
    chosen = {**defaults, **presets[router.preset]}
    return {
        k: (getattr(router, k) if getattr(router, k) is not None else v) for k, v in chosen.items()
    }


@dataclass
class TrainLog:
    """What a training run did, kept in the saved router's state."""

    epochs: int = 0
    best_epoch: int = 0
    train_loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    seconds: float = 0.0
    device: str = "cpu"

    def to_dict(self) -> dict[str, Any]:
        return {
            "epochs": self.epochs,
            "best_epoch": self.best_epoch,
            "train_loss": self.train_loss,
            "val_loss": self.val_loss,
            "seconds": self.seconds,
            "device": self.device,
        }


class EMA:
    """Exponential moving average of a module's parameters (paper 001: decay 0.999), the
    weights that are evaluated and kept."""

    def __init__(self, module: Any, decay: float) -> None:
        torch = torch_module()
        self.decay = decay
        self.module = module
        with torch.no_grad():
            self.shadow = {k: v.detach().clone() for k, v in module.state_dict().items()}
        self.steps = 0

    def update(self) -> None:
        torch = torch_module()
        self.steps += 1
        # warm-up as in common EMA implementations: early steps follow the weights closely
        decay = min(self.decay, (1 + self.steps) / (10 + self.steps))
        with torch.no_grad():
            for k, v in self.module.state_dict().items():
                if v.dtype.is_floating_point:
                    self.shadow[k].mul_(decay).add_(v.detach(), alpha=1 - decay)
                else:
                    self.shadow[k].copy_(v)

    def swap(self) -> None:
        """Exchange the live weights and the averaged ones (before and after evaluating)."""
        torch = torch_module()
        with torch.no_grad():
            for k, v in self.module.state_dict().items():
                tmp = v.detach().clone()
                v.copy_(self.shadow[k])
                self.shadow[k].copy_(tmp)


def train(
    module: Any,
    batch_loss: Callable[[NDArray[np.int64]], Any],
    n_train: int,
    val_loss: Callable[[], float],
    *,
    epochs: int,
    batch_size: int,
    lr: float,
    patience: int,
    seed: int,
    ema_decay: float | None = None,
    weight_decay: float = 0.01,
    label: str = "router",
    device: str = "cpu",
    lr_of: Callable[[str], float] | None = None,
) -> TrainLog:
    """AdamW over shuffled mini-batches (``batch_loss(indices)`` returns the loss tensor),
    the validation loss after every epoch (on the EMA weights when ``ema_decay``), early
    stopping after ``patience`` epochs without improvement; the best epoch's weights are left
    in ``module``. ``lr_of(parameter name)`` gives some parameters their own learning rate
    (fresh heads learn faster than a pretrained encoder)."""
    torch = torch_module()
    groups: dict[float, list[Any]] = {}
    for name, param in module.named_parameters():
        if param.requires_grad:
            groups.setdefault(lr if lr_of is None else lr_of(name), []).append(param)
    optimizer = torch.optim.AdamW(
        [{"params": ps, "lr": rate} for rate, ps in groups.items()], weight_decay=weight_decay
    )
    ema = EMA(module, ema_decay) if ema_decay else None
    rng = np.random.default_rng(seed)
    log = TrainLog(device=device)
    best: dict[str, Any] | None = None
    best_loss = float("inf")
    start = time.perf_counter()
    for epoch in range(1, epochs + 1):
        module.train()
        order = rng.permutation(n_train)
        total, batches = 0.0, 0
        for begin in range(0, n_train, batch_size):
            loss = batch_loss(order[begin : begin + batch_size])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if ema is not None:
                ema.update()
            total += float(loss.detach())
            batches += 1
            _progress(label, epoch, epochs, begin + batch_size, n_train, total / batches)
        module.eval()
        if ema is not None:
            ema.swap()
        with torch.no_grad():
            validation = float(val_loss())
        log.train_loss.append(total / max(batches, 1))
        log.val_loss.append(validation)
        log.epochs = epoch
        improved = validation < best_loss - 1e-9
        if improved:
            best_loss, log.best_epoch = validation, epoch
            best = {k: v.detach().clone() for k, v in module.state_dict().items()}
        if ema is not None:
            ema.swap()
        _epoch_line(label, epoch, epochs, log, improved, time.perf_counter() - start)
        if epoch - log.best_epoch >= patience:
            break
    if best is not None:
        module.load_state_dict(best)
    module.eval()
    log.seconds = time.perf_counter() - start
    return log


def _progress(label: str, epoch: int, epochs: int, done: int, total: int, loss: float) -> None:
    if sys.stderr.isatty():
        share = min(done, total) / max(total, 1)
        bar = "#" * int(share * 30)
        sys.stderr.write(
            f"\r{label} epoch {epoch}/{epochs} [{bar:<30}] {share:4.0%} loss {loss:.4f}"
        )
        sys.stderr.flush()


def _epoch_line(
    label: str, epoch: int, epochs: int, log: TrainLog, improved: bool, elapsed: float
) -> None:
    end = "\n"
    prefix = "\r" if sys.stderr.isatty() else ""
    mark = " (best)" if improved else ""
    sys.stderr.write(
        f"{prefix}{label} epoch {epoch}/{epochs}: train loss {log.train_loss[-1]:.4f}, "
        f"validation loss {log.val_loss[-1]:.4f}{mark}, {elapsed:.0f} s{end}"
    )
    sys.stderr.flush()


def validation_split(
    n: int, share: float, seed: int
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """``(train rows, validation rows)``: a seeded ``share`` held out (at least one row each
    when ``n >= 2``)."""
    if not 0 < share < 1:
        raise CodynError(f"validation share must be in (0, 1), got {share}")
    order = np.random.default_rng(seed).permutation(n)
    n_val = min(max(1, round(share * n)), n - 1) if n >= 2 else 0
    return np.sort(order[n_val:]), np.sort(order[:n_val])


def module_arrays(module: Any, prefix: str = "") -> dict[str, np.ndarray]:
    """A module's weights as float32 numpy arrays (what ``weights.safetensors`` holds)."""
    return {
        prefix + k: v.detach().cpu().float().numpy()
        if v.dtype.is_floating_point
        else v.cpu().numpy()
        for k, v in module.state_dict().items()
    }


def load_module_arrays(module: Any, arrays: Mapping[str, np.ndarray], prefix: str = "") -> None:
    """Put saved arrays (`module_arrays` or `trainable_arrays`) back into ``module``: the named
    weights are replaced, the others stay as built (the backbone's); an array the module has
    no place for, or of another shape, is an error naming it."""
    torch = torch_module()
    state = module.state_dict()
    for name, value in arrays.items():
        if not name.startswith(prefix):
            continue
        key = name[len(prefix) :]
        if key not in state:
            raise CodynError(f"saved weights {name!r} fit no weight of the network")
        tensor = torch.from_numpy(np.asarray(value)).to(state[key].dtype)
        if tensor.shape != state[key].shape:
            raise CodynError(
                f"saved weights {name!r} have shape {tuple(tensor.shape)}, expected "
                f"{tuple(state[key].shape)}"
            )
        state[key] = tensor
    module.load_state_dict(state)


def backbone_path(backbone: str) -> tuple[str, str | None]:
    """``(directory, gguf file or None)`` of a backbone: ``minilm`` (the packaged encoder),
    ``smollm2`` / ``qwen-coder`` (the packaged GGUF chat models, dequantised into
    transformers), a Hugging Face model directory or a ``.gguf`` file."""
    if backbone == "minilm":
        from codyn.features.minilm import packaged_minilm_path

        return str(packaged_minilm_path()), None
    if backbone == "smollm2":
        from codyn.bench.local import smollm2_path

        path = smollm2_path()
        return str(path.parent), path.name
    if backbone == "qwen-coder":
        from codyn.bench.local import qwen_coder_path

        path = qwen_coder_path()
        return str(path.parent), path.name
    path = Path(backbone)
    if path.is_file() and path.suffix == ".gguf":
        return str(path.parent), path.name
    if not path.is_dir():
        raise CodynError(
            f"backbone {backbone!r} is not minilm, smollm2, qwen-coder, a model directory or a "
            ".gguf file"
        )
    return str(path), None


def load_backbone(backbone: str, *, lm_head: bool = False) -> tuple[Any, Any]:
    """The tokenizer (with a pad token) and the model of a `backbone_path` backbone:
    ``AutoModel``, or ``AutoModelForCausalLM`` with ``lm_head``; nothing is fetched."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    directory, gguf = backbone_path(backbone)
    kwargs: dict[str, Any] = {"gguf_file": gguf} if gguf else {}
    missing = [m for m in ("gguf", "accelerate") if gguf and importlib.util.find_spec(m) is None]
    if missing:
        raise CodynError(
            f"a GGUF backbone needs {' and '.join(missing)}: pip install {' '.join(missing)}"
        )
    from transformers import AutoModel, AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(directory, local_files_only=True, **kwargs)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    cls = AutoModelForCausalLM if lm_head else AutoModel
    model = cls.from_pretrained(directory, local_files_only=True, **kwargs)
    if gguf:  # dequantised to float32 on load: a plain model to train and save, not a GGUF one
        model.hf_quantizer = None
        model.config.quantization_config = None
        model.is_quantized = False
    return tokenizer, model


# The stored states' budget: past it a router trains on the whole stack every epoch.
PREFIX_CACHE_BYTES = 4 << 30


@contextmanager
def _stack_part(decoder: Any, layers: Any, norm: bool) -> Iterator[None]:
    """``decoder`` (a transformers decoder stack: ``layers``, ``norm``) running only
    ``layers``, its final norm kept or left out, for the duration of the block."""
    torch = torch_module()
    full_layers, full_norm = decoder.layers, decoder.norm
    decoder.layers = layers
    if not norm:
        decoder.norm = torch.nn.Identity()
    try:
        yield
    finally:
        decoder.layers, decoder.norm = full_layers, full_norm


class PrefixCache:
    """The hidden states entering a decoder's first trainable block, computed once per prompt.

    When only the top blocks of a causal LM train (`causal_lm`'s ``train_layers``,
    `autoregressive`'s ``lora_layers``), the frozen blocks below give the same output every
    epoch: they run once without gradients (`fill`), and each step runs only the top blocks
    on the stored states (`run`), so an epoch costs the top blocks' share of the model. Rotary
    positions are relative, so a row's states do not depend on its padding; they are stored
    without it and padded on the left again per batch.
    """

    def __init__(self, decoder: Any, start: int) -> None:
        self.decoder = decoder
        self.start = start
        self.states: dict[int, Any] = {}

    @classmethod
    def below(
        cls, decoder: Any, trained_blocks: int, n_rows: int, max_length: int
    ) -> PrefixCache | None:
        """A cache for the blocks below the top ``trained_blocks`` (-1: every block trains),
        or None where there is nothing frozen to skip or ``n_rows`` prompts of up to
        ``max_length`` tokens would not fit the budget."""
        frozen = len(decoder.layers) - trained_blocks
        size = n_rows * max_length * int(decoder.config.hidden_size) * 4
        if trained_blocks < 0 or frozen <= 0 or size > PREFIX_CACHE_BYTES:
            return None
        return cls(decoder, frozen)

    def fill(
        self,
        rows: NDArray[np.int64],
        encode: Callable[[NDArray[np.int64]], tuple[Any, Any]],
        batch_size: int,
        label: str,
    ) -> None:
        """Store the states of ``rows`` (``encode(rows)``: left-padded ids and mask)."""
        torch = torch_module()
        layers = self.decoder.layers
        begin_time = time.perf_counter()
        with torch.no_grad(), _stack_part(self.decoder, layers[: self.start], norm=False):
            for begin in range(0, len(rows), batch_size):
                batch = rows[begin : begin + batch_size]
                ids, mask = encode(batch)
                hidden = self.decoder(input_ids=ids, attention_mask=mask).last_hidden_state
                for j, row in enumerate(batch):
                    self.states[int(row)] = hidden[j][mask[j].bool()].clone()
                _progress(f"{label} frozen blocks", 1, 1, begin + batch_size, len(rows), 0.0)
        elapsed = time.perf_counter() - begin_time
        prefix = "\r" if sys.stderr.isatty() else ""
        sys.stderr.write(
            f"{prefix}{label}: blocks 1-{self.start} of {len(layers)} run once on "
            f"{len(rows)} prompts ({elapsed:.0f} s); each epoch runs the other "
            f"{len(layers) - self.start}\n"
        )
        sys.stderr.flush()

    def padded(self, rows: NDArray[np.int64]) -> tuple[Any, Any]:
        """The stored states of ``rows``, left-padded with zeros, and their attention mask."""
        torch = torch_module()
        states = [self.states[int(r)] for r in rows]
        width = max(s.shape[0] for s in states)
        first = states[0]
        hidden = first.new_zeros((len(states), width, first.shape[1]))
        mask = torch.zeros((len(states), width), dtype=torch.long, device=first.device)
        for j, s in enumerate(states):
            hidden[j, width - s.shape[0] :] = s
            mask[j, width - s.shape[0] :] = 1
        return hidden, mask

    def run(self, rows: NDArray[np.int64]) -> Any:
        """The decoder's last hidden states for ``rows`` (left-padded as `padded`) from the
        stored ones through the top blocks and the final norm, with gradients."""
        hidden, mask = self.padded(rows)
        top = self.decoder.layers[self.start :]
        with _stack_part(self.decoder, top, norm=True):
            return self.decoder(inputs_embeds=hidden, attention_mask=mask).last_hidden_state


def trainable_arrays(module: Any) -> dict[str, np.ndarray]:
    """The weights that training may have changed (``requires_grad``), as float32 numpy: what a
    router saves, the rest being the backbone it rebuilds from."""
    trained = {n for n, p in module.named_parameters() if p.requires_grad}
    return {k: v for k, v in module_arrays(module).items() if k in trained}


def batched_mean(
    loss_on: Callable[[NDArray[np.int64]], Any], rows: NDArray[np.int64], step: int
) -> float:
    """The mean of ``loss_on`` over ``rows`` in batches of ``step`` (a validation loss)."""
    parts = [float(loss_on(rows[i : i + step])) for i in range(0, len(rows), step)]
    return sum(parts) / max(len(parts), 1)


class FineTunedRouter(Router):
    """What the routers that fine-tune a backbone share (`regression_heads`, `causal_lm`): the
    preset settings, the training glue, saving the weights training changed (the rest is
    rebuilt from the backbone on first use) and batched prediction without gradients.

    A subclass builds the network (`_build`: ``net(ids, mask)`` returns one row of outputs
    per prompt), tokenises (`_encode`) and turns outputs into predicted quality (`_outputs`).
    """

    tensor_weights = True
    PRESETS: ClassVar[dict[str, dict[str, Any]]]
    DEFAULTS: ClassVar[dict[str, Any]]
    log_: dict[str, Any]
    weights_: Arrays
    _net: Any = None

    @abstractmethod
    def _build(self, settings: dict[str, Any]) -> Any:
        """The network, its trainable parameters those training may change."""

    @abstractmethod
    def _encode(self, net: Any, texts: list[str], max_length: int, device: str) -> tuple[Any, Any]:
        """Token ids and attention mask of ``texts`` on ``device``."""

    @abstractmethod
    def _outputs(self, raw: FloatArray) -> FloatArray:
        """The network's outputs for some prompts -> their predicted quality."""

    def settings(self) -> dict[str, Any]:
        """The parameters given, else the preset's, else the family's defaults."""
        return apply_preset(self, self.PRESETS, self.DEFAULTS)

    def _train_network(
        self,
        net: Any,
        loss_on: Callable[[NDArray[np.int64]], Any],
        rows: NDArray[np.int64],
        val_rows: NDArray[np.int64],
        settings: dict[str, Any],
        device: str,
        lr_of: Callable[[str], float],
    ) -> None:
        """`train` on ``rows`` with the loss on ``val_rows`` for early stopping; keeps the log
        and the trained weights."""
        step = int(settings["batch_size"])
        log = train(
            net,
            lambda batch: loss_on(rows[batch]),
            len(rows),
            lambda: batched_mean(loss_on, val_rows, step),
            epochs=int(settings["epochs"]),
            batch_size=step,
            lr=float(settings["lr"]),
            patience=int(settings["patience"]),
            seed=self.seed,
            label=self.family,
            device=device,
            lr_of=lr_of,
        )
        self.log_ = log.to_dict()
        self.weights_ = trainable_arrays(net.cpu())
        self._net = net.to(device).eval()

    def _network(self) -> Any:
        if self._net is None:
            net = self._build(self.settings())
            load_module_arrays(net, self.weights_)
            self._net = net.to(pick_device(self.device)).eval()
        return self._net

    def _predict(self, texts: list[str], data: RoutingData | None) -> FloatArray:
        torch = torch_module()
        if any(not t.strip() for t in texts):
            raise CodynError("an empty prompt: there is nothing to route on")
        length = int(self.settings()["max_length"])
        net = self._network()
        device = str(next(net.parameters()).device)
        out = []
        with torch.no_grad():
            for i in range(0, len(texts), 16):
                ids, mask = self._encode(net, texts[i : i + 16], length, device)
                out.append(net(ids, mask).float().cpu().numpy())
        if not out:
            return np.empty((0, len(self.model_names_)))
        return self._outputs(np.vstack(out).astype(np.float64))

    def _extra_state(self) -> dict[str, Any]:
        """What the subclass learned besides the weights (JSON-able). Default: nothing."""
        return {}

    def _set_extra_state(self, state: dict[str, Any]) -> None:
        """Restore what `_extra_state` returned. Default: nothing."""

    def _state(self) -> State:
        return {"log": self.log_, **self._extra_state()}, dict(self.weights_)

    def _set_state(self, state: dict[str, Any], arrays: Arrays) -> None:
        self.log_ = dict(state["log"])
        self._set_extra_state(state)
        self.weights_ = dict(arrays)
        self._net = None
