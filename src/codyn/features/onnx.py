"""all-MiniLM-L6-v2 through ONNX Runtime: the exact `minilm` embeddings without torch at run time.

The packaged MiniLM transformer is exported once to ONNX (needs torch, transformers and onnx) and
cached under ``cache_dir() / "models"``; after that a prompt needs only onnxruntime, tokenizers and
numpy, so a serving process does not import torch (about 1 s and 300 MB less per worker).

``quantize="none"`` keeps fp32 weights: cosine 1.0000 to `minilm`, and about as fast as torch.
``quantize="int8"`` applies onnxruntime's dynamic int8 quantisation with one scale per output
channel: about twice as fast on one core, cosine about 0.994 to fp32. (Per-tensor scales, the
``quantize_dynamic`` default, drifted to about 0.96 mean and 0.93 worst at the same speed.)

Routers can only pass a featuriser *name*, so ``minilm-onnx`` means int8 (the fast path is the
point of this featuriser) and ``minilm-onnx-fp32`` the fp32 model.

A cached model that fails its checksum or does not load is rebuilt (with a warning): the cache
is ours to regenerate. A model directory given explicitly (``model_dir``) is never rebuilt: a bad
one is a `FeaturiserError`.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import shutil
import tempfile
import time
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, NamedTuple, Self

import numpy as np

from codyn.features.base import (
    DEFAULT_MAX_CHARS,
    ClippingFeaturiser,
    FeaturiserError,
    cache_dir,
    file_sha256,
    l2_normalise,
    logger,
    publish_directory,
    record_truncation,
    register_featuriser,
)
from codyn.features.minilm import packaged_minilm_path
from codyn.features.static import SOURCE_MODEL

QUANTIZE_MODES = ("none", "int8")
RECIPE_VERSION = 1
"""Bumped when the export or quantisation recipe changes, so cached models are rebuilt."""
OPSET = 17
"""First opset with LayerNormalization as one op; onnxruntime >= 1.13 runs it."""
MAX_TOKENS = 256
"""MiniLM's word-piece limit in sentence-transformers (``max_seq_length``), as in `minilm`."""
INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")
MODEL_FILE, TOKENIZER_FILE, META_FILE = "model.onnx", "tokenizer.json", "meta.json"


class CorruptModelError(FeaturiserError):
    """An ONNX model directory is incomplete, fails its checksum or does not load."""


@functools.lru_cache(maxsize=16)
def _file_sha256(path: Path, size: int, mtime_ns: int) -> str:
    """sha256 of a file, remembered while its size and mtime hold (hashing MiniLM takes 0.1 s)."""
    return file_sha256(path)


def _weights_file(model_path: Path) -> Path:
    for name in ("model.safetensors", "pytorch_model.bin"):
        if (model_path / name).is_file():
            return model_path / name
    raise FeaturiserError(f"{model_path}: no model.safetensors or pytorch_model.bin here")


def source_weights_sha256(model_path: str | Path | None = None) -> str:
    """Identity of the MiniLM weights an ONNX model is built from (``None`` = the packaged ones)."""
    weights = _weights_file(Path(model_path) if model_path is not None else packaged_minilm_path())
    stat = weights.stat()
    return _file_sha256(weights.resolve(), stat.st_size, stat.st_mtime_ns)


def model_id(quantize: str, weights_sha256: str) -> str:
    """Cache directory name, e.g. ``all-minilm-l6-v2.int8.r1.53aa5117...``: a new recipe or other
    weights (another package version) get a new directory and so a fresh build."""
    _check_quantize(quantize)
    return f"all-minilm-l6-v2.{quantize}.r{RECIPE_VERSION}.{weights_sha256[:12]}"


def _check_quantize(quantize: str) -> None:
    if quantize not in QUANTIZE_MODES:
        raise FeaturiserError(
            f"quantize must be one of {', '.join(QUANTIZE_MODES)}, got {quantize!r}"
        )


def find_onnx_model(
    quantize: str = "int8", *, model_path: str | Path | None = None, build: bool = True
) -> Path:
    """Cached model directory for ``quantize`` and these weights; built now if missing and
    ``build`` (else a `FeaturiserError`). The directory is not verified here (see `open_model`)."""
    path = cache_dir() / "models" / model_id(quantize, source_weights_sha256(model_path))
    if (path / META_FILE).is_file():
        return path
    if not build:
        raise FeaturiserError(f"no ONNX MiniLM model at {path}")
    return build_onnx_model(path, quantize, model_path=model_path)


@contextlib.contextmanager
def _quiet_quantizer() -> Iterator[None]:
    """``quantize_dynamic`` logs an advisory through the root logger, which would also install a
    stderr handler on the root logger of the whole process (``logging.basicConfig``)."""
    root = logging.getLogger()
    null = logging.NullHandler()

    def drop(record: logging.LogRecord) -> bool:
        return "pre-processing before quantization" not in str(record.msg)

    root.addHandler(null)
    root.addFilter(drop)
    try:
        yield
    finally:
        root.removeFilter(drop)
        root.removeHandler(null)


def build_onnx_model(
    out_dir: str | Path, quantize: str = "int8", *, model_path: str | Path | None = None
) -> Path:
    """Export MiniLM's token embeddings to ONNX (fp32, optionally int8) into ``out_dir``.

    Written into a temporary directory and renamed into place, so no process ever reads half a
    model; if another process finished the same directory first, its copy is kept. Takes about
    5-10 s on 2 CPU cores. Needs torch, transformers and onnx.
    """
    _check_quantize(quantize)
    try:
        import onnx
        import onnxruntime
        import torch
        import transformers
        from onnxruntime.quantization import QuantType, quantize_dynamic
        from transformers import AutoModel
    except ImportError as exc:
        raise FeaturiserError(
            f"building the ONNX MiniLM model needs torch, transformers and onnx ({exc.name} is "
            "missing): pip install torch transformers 'onnx>=1.16' (install the torch CPU wheel "
            "first); only building needs them, running the built model needs onnxruntime alone"
        ) from exc
    source = Path(model_path) if model_path is not None else packaged_minilm_path()
    started = time.perf_counter()
    out = Path(out_dir)
    with publish_directory(out, META_FILE) as tmp:
        # Eager attention: transformers 5's default (sdpa) attention does not trace to ONNX.
        model = AutoModel.from_pretrained(
            str(source), attn_implementation="eager", local_files_only=True
        ).eval()
        wrapper = _token_embeddings_module(model)
        example = torch.ones((2, 8), dtype=torch.long)
        axes = {name: {0: "batch", 1: "sequence"} for name in (*INPUT_NAMES, "token_embeddings")}
        fp32 = tmp / "fp32.onnx"
        with torch.inference_mode(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tracer and legacy-exporter deprecation notes
            torch.onnx.export(
                wrapper,
                (example, example, torch.zeros_like(example)),
                str(fp32),
                input_names=list(INPUT_NAMES),
                output_names=["token_embeddings"],
                dynamic_axes=axes,
                opset_version=OPSET,
                do_constant_folding=True,
                dynamo=False,  # the torch.export path needs onnxscript; this one only onnx
            )
        if quantize == "int8":
            with _quiet_quantizer():
                quantize_dynamic(
                    fp32, tmp / MODEL_FILE, weight_type=QuantType.QInt8, per_channel=True
                )
            fp32.unlink()
        else:
            fp32.rename(tmp / MODEL_FILE)
        shutil.copyfile(source / TOKENIZER_FILE, tmp / TOKENIZER_FILE)
        meta = {
            "source_model": SOURCE_MODEL,
            "source_weights_sha256": source_weights_sha256(source),
            "quantize": quantize,
            "recipe_version": RECIPE_VERSION,
            "opset": OPSET,
            "inputs": list(INPUT_NAMES),
            "output": "token_embeddings",
            "dim": int(model.config.hidden_size),
            "built_with": {
                "torch": torch.__version__,
                "transformers": transformers.__version__,
                "onnx": onnx.__version__,
                "onnxruntime": onnxruntime.__version__,
            },
            "build_seconds": round(time.perf_counter() - started, 1),
            "model_sha256": file_sha256(tmp / MODEL_FILE),
            "tokenizer_sha256": file_sha256(tmp / TOKENIZER_FILE),
        }
        (tmp / META_FILE).write_text(json.dumps(meta, indent=2) + "\n")
    logger.info("built ONNX MiniLM (%s) at %s in %.1f s", quantize, out, meta["build_seconds"])
    return out


def _token_embeddings_module(model: Any) -> Any:
    """A torch module returning only ``last_hidden_state``: pooling stays in numpy, as in
    sentence-transformers' Pooling module. Defined here so torch is imported only to build."""
    import torch

    class TokenEmbeddings(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            return self.model(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state

    return TokenEmbeddings()


class LoadedModel(NamedTuple):
    """An opened, verified model directory: shared by every featuriser on the same files."""

    session: Any
    tokenizer: Any
    meta: dict[str, Any]
    pad_id: int


def open_model(model_dir: str | Path, threads: int = 1) -> LoadedModel:
    """Verify ``model_dir`` (checksums from its meta.json) and open an ONNX Runtime session.

    Raises `CorruptModelError` for a missing, altered or unloadable model. Sessions are shared
    per directory, thread count and file state, so many routers on one model cost one copy.
    """
    path = Path(model_dir).resolve()
    try:
        stats = tuple(
            (s.st_size, s.st_mtime_ns)
            for s in ((path / name).stat() for name in (META_FILE, MODEL_FILE, TOKENIZER_FILE))
        )
    except OSError as exc:
        raise CorruptModelError(f"{path}: incomplete ONNX model directory ({exc})") from exc
    return _open_model(path, threads, stats)


@functools.lru_cache(maxsize=8)
def _open_model(path: Path, threads: int, stats: tuple[Any, ...]) -> LoadedModel:
    try:
        import onnxruntime as ort
        from tokenizers import Tokenizer
    except ImportError as exc:
        raise FeaturiserError(
            f"the ONNX MiniLM featuriser needs onnxruntime and tokenizers ({exc.name} is "
            "missing): pip install 'onnxruntime>=1.17' tokenizers"
        ) from exc
    try:
        meta = json.loads((path / META_FILE).read_text())
        expected = (meta["model_sha256"], meta["tokenizer_sha256"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CorruptModelError(f"{path / META_FILE}: unreadable model metadata ({exc})") from exc
    for name, want in zip((MODEL_FILE, TOKENIZER_FILE), expected, strict=True):
        if file_sha256(path / name) != want:
            raise CorruptModelError(f"{path / name}: checksum differs from {META_FILE}")
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    # No busy-waiting between ops: on a small shared machine spinning threads steal the cores.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
        session = ort.InferenceSession(
            str(path / MODEL_FILE), options, providers=["CPUExecutionProvider"]
        )
        tokenizer = Tokenizer.from_file(str(path / TOKENIZER_FILE))
    except Exception as exc:  # onnxruntime raises its own (non-public) exception types
        raise CorruptModelError(f"{path}: the ONNX model does not load ({exc})") from exc
    # The packaged tokenizer.json pads and truncates to 128; MiniLM reads 256 word pieces and
    # each batch is padded here, to its own longest prompt.
    tokenizer.enable_truncation(MAX_TOKENS)
    tokenizer.no_padding()
    pad_id = tokenizer.token_to_id("[PAD]")
    return LoadedModel(session, tokenizer, meta, 0 if pad_id is None else int(pad_id))


def _discard(path: Path) -> None:
    """Move a bad cached model aside (atomic), then delete it."""
    aside = Path(tempfile.mkdtemp(prefix=f".{path.name}.bad.", dir=path.parent))
    with contextlib.suppress(OSError):  # already replaced or removed by another process
        path.rename(aside / path.name)
    shutil.rmtree(aside, ignore_errors=True)


@register_featuriser("minilm-onnx")
class MiniLMOnnxFeaturiser(ClippingFeaturiser):
    """MiniLM mean-pooled, L2-normalised embeddings from an ONNX Runtime session (float32).

    ``quantize`` is ``"int8"`` (default, about 2x faster on one core, cosine ~0.994 to `minilm`)
    or ``"none"`` (fp32, matches `minilm`). ``threads`` is ONNX Runtime's intra-op thread count:
    one per session suits one serving worker per core. ``batch_size`` prompts (fp32 only) run
    together, padded to the longest; on one thread batching is no faster (MBPP prompts: 218/s
    one at a time, 152/s in batches of 32), so the default is 1. The int8 model always runs one
    prompt at a time: its activation scales are computed per run, so in a batch a prompt's
    embedding would depend on its neighbours (training, cache and serving would disagree).
    ``model_dir`` uses an already built model directory (e.g. shipped to a server without torch)
    instead of the cache. Like `minilm`, at most 256 word pieces are read; longer prompts are
    counted in ``stats``.
    """

    max_tokens = MAX_TOKENS
    worth_caching = True
    """Milliseconds per prompt: routers keep batch embeddings in the on-disk cache."""

    def __init__(
        self,
        quantize: str = "int8",
        *,
        model_path: str | Path | None = None,
        model_dir: str | Path | None = None,
        max_chars: int | None = DEFAULT_MAX_CHARS,
        batch_size: int = 1,
        threads: int = 1,
    ) -> None:
        _check_quantize(quantize)
        if batch_size < 1 or threads < 1:
            raise FeaturiserError("batch_size and threads must be at least 1")
        if quantize == "int8" and batch_size != 1:
            raise FeaturiserError(
                "the int8 model embeds one prompt per run (batch_size=1): its activations are "
                "quantised with one scale per run, so a batched prompt's embedding would depend "
                "on the other prompts in its batch"
            )
        self.quantize = quantize
        self.model_path = Path(model_path) if model_path is not None else None
        self.batch_size = batch_size
        self.threads = threads
        super().__init__(max_chars)
        self.model_dir = Path(model_dir) if model_dir is not None else None
        if self.model_dir is not None:
            self.path = self.model_dir
            self._model = open_model(self.model_dir, threads)
            if self._model.meta.get("quantize") != quantize:
                raise FeaturiserError(
                    f"{model_dir} holds a quantize={self._model.meta.get('quantize')!r} model, "
                    f"not {quantize!r}"
                )
        else:
            self.path, self._model = self._cached_model()
        self.model_sha256 = str(self._model.meta["model_sha256"])

    def _cached_model(self) -> tuple[Path, LoadedModel]:
        path = find_onnx_model(self.quantize, model_path=self.model_path)
        try:
            return path, open_model(path, self.threads)
        except CorruptModelError as exc:
            logger.warning("%s; rebuilding it", exc)
        _discard(path)
        path = find_onnx_model(self.quantize, model_path=self.model_path)
        return path, open_model(path, self.threads)

    @property
    def dim(self) -> int:
        return int(self._model.meta.get("dim", 384))

    def fit(self, texts: Sequence[str]) -> Self:
        """Nothing to learn (pretrained encoder); present so routers can call ``fit`` uniformly."""
        return self

    def transform(self, texts: Sequence[str]) -> np.ndarray:
        """Embed ``texts`` as an ``(n, 384)`` float32 matrix of unit vectors.

        With ``batch_size`` > 1, texts are grouped by token length so little padding is computed.
        """
        clipped = self._clip(texts)
        out = np.zeros((len(clipped), self.dim), dtype=np.float32)
        if not clipped:
            return out
        encodings = self._model.tokenizer.encode_batch_fast(clipped)
        too_long = sum(bool(e.overflowing) for e in encodings)
        record_truncation(self._stats, too_long, self.name, f"over {self.max_tokens} tokens")
        lengths = np.fromiter((len(e.ids) for e in encodings), dtype=np.int64, count=len(clipped))
        order = np.argsort(lengths, kind="stable")
        for start in range(0, len(order), self.batch_size):
            rows = order[start : start + self.batch_size]
            width = int(lengths[rows].max())
            ids = np.full((len(rows), width), self._model.pad_id, dtype=np.int64)
            mask = np.zeros((len(rows), width), dtype=np.int64)
            for i, row in enumerate(rows):
                n = int(lengths[row])
                ids[i, :n] = encodings[row].ids
                mask[i, :n] = 1
            (tokens,) = self._model.session.run(
                None,
                {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(mask)},
            )
            weights = mask.astype(np.float32)
            summed = np.einsum("btd,bt->bd", tokens, weights)
            out[rows] = summed / np.maximum(weights.sum(axis=1, keepdims=True), 1e-9)
        return l2_normalise(out)

    def config(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "source_model": SOURCE_MODEL,
            "quantize": self.quantize,
            "model_path": None if self.model_path is None else str(self.model_path),
            "model_dir": None if self.model_dir is None else str(self.model_dir),
            "max_tokens": self.max_tokens,
            "max_chars": self._max_chars,
            "model_sha256": self.model_sha256,
        }

    def state(self) -> dict[str, np.ndarray]:
        return {}

    @classmethod
    def from_config(cls, config: dict[str, Any], state: dict[str, np.ndarray]) -> Self:
        """Find (or build) the saved model; warn if it is not the very file saved with."""
        featuriser = cls(
            config.get("quantize", cls._default_quantize()),
            model_path=config.get("model_path"),
            model_dir=config.get("model_dir"),
            max_chars=config.get("max_chars", DEFAULT_MAX_CHARS),
        )
        expected = config.get("model_sha256")
        if expected and expected != featuriser.model_sha256:
            warnings.warn(
                f"ONNX MiniLM model {featuriser.path} differs from the one this config was saved "
                "with (rebuilt with other library versions?): embeddings may differ slightly "
                "from training time",
                stacklevel=2,
            )
        return featuriser

    @classmethod
    def _default_quantize(cls) -> str:
        return "int8"


@register_featuriser("minilm-onnx-fp32")
class MiniLMOnnxFp32Featuriser(MiniLMOnnxFeaturiser):
    """``minilm-onnx-fp32``: the fp32 model, same embeddings as `minilm` without torch at run
    time; its own name because a router's ``featuriser`` parameter carries only names."""

    def __init__(self, quantize: str = "none", **kwargs: Any) -> None:
        if quantize != "none":
            raise FeaturiserError(f"{self.name} is the fp32 model; use minilm-onnx for int8")
        super().__init__(quantize, **kwargs)

    @classmethod
    def _default_quantize(cls) -> str:
        return "none"
