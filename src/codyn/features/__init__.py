"""Prompt featurisers for the embedding routers: text in, float32 matrix out.

`StaticFeaturiser` is a token table distilled from all-MiniLM-L6-v2 that embeds a prompt in well
under a millisecond without torch; `MiniLMFeaturiser` is the exact (20-50 ms) encoder;
`MiniLMOnnxFeaturiser` the same model on ONNX Runtime (int8 by default: a few ms for a short
prompt, cosine 0.99 to the exact one, no torch at run time);
`TfidfFeaturiser` a lexical featuriser fitted on training prompts (next to the static one it
matched MiniLM's kNN routing quality); `StructureFeaturiser` cheap code-shape numbers. Every
featuriser rebuilds from ``config()`` + ``state()`` (`featuriser_from_config`, a bare
``{"name": ...}`` gives the defaults), and `CachedFeaturiser` keeps computed embeddings on disk.
"""

from codyn.errors import NotFittedError
from codyn.features.base import (
    DEFAULT_MAX_CHARS,
    FEATURISERS,
    Featuriser,
    FeaturiserError,
    TruncationStats,
    cache_dir,
    featuriser_from_config,
    load_featuriser,
    register_featuriser,
    save_featuriser,
)
from codyn.features.cache import CachedFeaturiser, EmbeddingCache, cache_key
from codyn.features.minilm import MiniLMFeaturiser
from codyn.features.onnx import MiniLMOnnxFeaturiser, MiniLMOnnxFp32Featuriser
from codyn.features.static import StaticFeaturiser, StaticSpec, build_static_table, find_table
from codyn.features.structure import FEATURE_NAMES, StructureFeaturiser
from codyn.features.tfidf import TfidfFeaturiser

__all__ = [
    "DEFAULT_MAX_CHARS",
    "FEATURE_NAMES",
    "FEATURISERS",
    "CachedFeaturiser",
    "EmbeddingCache",
    "Featuriser",
    "FeaturiserError",
    "MiniLMFeaturiser",
    "MiniLMOnnxFeaturiser",
    "MiniLMOnnxFp32Featuriser",
    "NotFittedError",
    "StaticFeaturiser",
    "StaticSpec",
    "StructureFeaturiser",
    "TfidfFeaturiser",
    "TruncationStats",
    "build_static_table",
    "cache_dir",
    "cache_key",
    "featuriser_from_config",
    "find_table",
    "load_featuriser",
    "register_featuriser",
    "save_featuriser",
]
