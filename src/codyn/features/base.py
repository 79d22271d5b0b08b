"""The `Featuriser` protocol every prompt featuriser follows, and how a saved one is rebuilt.

A router stores ``featuriser.config()`` (JSON) and ``featuriser.state()`` (named arrays, saved as
npz without pickle) next to its own weights; `featuriser_from_config` turns both back into an
equivalent featuriser, so a trained router never depends on pickled Python objects.

Featurisers never truncate silently: each has a ``max_chars`` limit (``None`` = no limit) and a
`TruncationStats` counter, and the first truncation is logged as a warning.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, Self, TypeVar, runtime_checkable

import numpy as np

from codyn.errors import CodynError
from codyn.registry import Registry

logger = logging.getLogger("codyn.features")

FORMAT_VERSION = 1
"""Version of the config/state layout written by `save_featuriser`; readers refuse newer ones."""

DEFAULT_MAX_CHARS = 20_000
"""Prompts are cut to this many characters (about 5k word pieces) unless a featuriser is told
otherwise: bounds worst-case latency and memory; coding prompts rarely come close."""


class FeaturiserError(CodynError):
    """A featuriser cannot be built, loaded or used (unknown name, bad config, missing extra).

    Using a fitted featuriser before ``fit`` is a `codyn.errors.NotFittedError` instead.
    """


FEATURISERS: Registry[type[Any]] = Registry("featuriser", "codyn.features")
"""Featuriser classes by name; each featuriser module registers its own, so torch or
scikit-learn load only when a featuriser that needs them is built (they import lazily)."""

F = TypeVar("F", bound=type)


def register_featuriser(name: str) -> Callable[[F], F]:
    """Class decorator: make a featuriser class buildable by `featuriser_from_config` as
    ``name`` (sets its ``name``)."""
    register = FEATURISERS.register(name)

    def decorate(cls: F) -> F:
        declared = cls.__dict__.get("name", name)
        if declared != name:
            raise ValueError(f"{cls.__qualname__}.name is {declared!r}, registered as {name!r}")
        register(cls)
        cls.name = name  # type: ignore[attr-defined]
        return cls

    return decorate


@dataclass
class TruncationStats:
    """How many texts a featuriser has seen and how many it had to cut (chars or model tokens)."""

    seen: int = 0
    truncated: int = 0

    @property
    def fraction(self) -> float:
        """Share of seen texts that were truncated (0.0 before any text was seen)."""
        return self.truncated / self.seen if self.seen else 0.0


@runtime_checkable
class Featuriser(Protocol):
    """Maps prompts to a dense float32 matrix; scikit-learn style so routers treat all alike.

    ``fit`` is a no-op for featurisers without learned state, so a router can always call
    ``featuriser.fit(train_texts)`` before ``transform``.
    """

    @property
    def name(self) -> str: ...

    @property
    def dim(self) -> int: ...

    @property
    def max_chars(self) -> int | None: ...

    @property
    def stats(self) -> TruncationStats: ...

    def fit(self, texts: Sequence[str]) -> Self: ...

    def transform(self, texts: Sequence[str]) -> np.ndarray: ...

    def config(self) -> dict[str, Any]: ...

    def state(self) -> dict[str, np.ndarray]: ...


class ClippingFeaturiser:
    """Plumbing every featuriser shares: the ``max_chars`` limit and its truncation counter."""

    name: str

    def __init__(self, max_chars: int | None) -> None:
        self._max_chars = max_chars
        self._stats = TruncationStats()

    @property
    def max_chars(self) -> int | None:
        return self._max_chars

    @property
    def stats(self) -> TruncationStats:
        return self._stats

    def _clip(self, texts: Sequence[str]) -> list[str]:
        return clip_texts(texts, self._max_chars, self._stats, self.name)


def clip_texts(
    texts: Sequence[str], max_chars: int | None, stats: TruncationStats, who: str
) -> list[str]:
    """Cut texts to ``max_chars`` characters, count the cuts in ``stats`` and log the first one."""
    if isinstance(texts, str):
        raise TypeError("transform() takes a sequence of texts, not a single string")
    out = list(texts)
    stats.seen += len(out)
    if max_chars is None:
        return out
    cut = 0
    for i, text in enumerate(out):
        if len(text) > max_chars:
            out[i] = text[:max_chars]
            cut += 1
    record_truncation(stats, cut, who, f"longer than max_chars={max_chars}")
    return out


def record_truncation(stats: TruncationStats, count: int, who: str, why: str) -> None:
    """Add ``count`` truncated texts to ``stats``; warn the first time this featuriser truncates."""
    if count <= 0:
        return
    if stats.truncated == 0:
        logger.warning(
            "%s: %d text(s) %s were truncated (see featuriser.stats for the running count)",
            who,
            count,
            why,
        )
    stats.truncated += count


def l2_normalise(x: np.ndarray) -> np.ndarray:
    """Row-wise unit length in place (all-zero rows stay zero): cosine becomes a dot product."""
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    np.divide(x, norms, out=x, where=norms > 0)
    return x


def config_digest(config: Mapping[str, Any]) -> str:
    """sha1 of the canonical JSON of a config: a stable identity for caches and checks."""
    text = json.dumps(config, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


def arrays_digest(arrays: Mapping[str, np.ndarray]) -> str:
    """sha1 over names, dtypes, shapes and bytes of named arrays (fitted state identity)."""
    h = hashlib.sha1()
    for key in sorted(arrays):
        a = np.ascontiguousarray(arrays[key])
        h.update(f"{key}|{a.dtype.str}|{a.shape}|".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def file_sha256(path: Path) -> str:
    """sha256 of a file, read in 1 MB blocks (weights and tables run to tens of MB)."""
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@contextlib.contextmanager
def publish_directory(out: Path, marker: str = "meta.json") -> Iterator[Path]:
    """A temporary sibling of ``out`` to fill; when the block ends without error it is renamed
    to ``out`` in one step, so no process ever reads half a built artefact. If another process
    published ``out`` first (its ``marker`` file exists), that copy is kept."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    tmp.chmod(0o755)
    try:
        yield tmp
        try:
            tmp.rename(out)
        except OSError:
            if not (out / marker).is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def cache_dir() -> Path:
    """Root of codyn's on-disk caches: ``$CODYN_CACHE_DIR``, else ``$XDG_CACHE_HOME/codyn``,
    else ``~/.cache/codyn``."""
    if os.environ.get("CODYN_CACHE_DIR"):
        return Path(os.environ["CODYN_CACHE_DIR"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "codyn"


def featuriser_from_config(
    config: Mapping[str, Any], state: Mapping[str, np.ndarray] | None = None
) -> Featuriser:
    """Rebuild a featuriser from ``config()`` and, for fitted ones, ``state()``."""
    name = config.get("name")
    try:
        cls = FEATURISERS.get(str(name))
    except CodynError as exc:
        raise FeaturiserError(str(exc)) from None
    version = int(config.get("format_version", FORMAT_VERSION))
    if version > FORMAT_VERSION:
        raise FeaturiserError(
            f"featuriser config has format_version {version}; this codyn reads up to "
            f"{FORMAT_VERSION}: upgrade codyn"
        )
    return cls.from_config(dict(config), dict(state or {}))


def save_featuriser(featuriser: Featuriser, directory: str | Path) -> None:
    """Write ``featuriser.json`` (config) and, if it has state, ``featuriser.npz`` (no pickle)."""
    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    config = {"format_version": FORMAT_VERSION, **featuriser.config()}
    (path / "featuriser.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    state = featuriser.state()
    if state:
        np.savez(path / "featuriser.npz", **state)


def load_featuriser(directory: str | Path) -> Featuriser:
    """Read what `save_featuriser` wrote; arrays load with ``allow_pickle=False``."""
    path = Path(directory)
    config_path = path / "featuriser.json"
    if not config_path.is_file():
        raise FeaturiserError(f"{config_path}: no featuriser config here")
    config = json.loads(config_path.read_text())
    state: dict[str, np.ndarray] = {}
    if (path / "featuriser.npz").is_file():
        with np.load(path / "featuriser.npz", allow_pickle=False) as npz:
            state = {key: npz[key] for key in npz.files}
    return featuriser_from_config(config, state)
