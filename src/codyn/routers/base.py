"""The `Router` contract: scikit-learn-style predictors of per-model quality, saved without pickle.

A router only predicts (``n_prompts x n_models``, higher is better); a `codyn.policy` decides.
Hyper-parameters live in ``__init__`` under the same names; learned state in attributes ending
in ``_``. ``save`` writes ``router.json`` (config + small state) and ``weights.npz`` (numeric
arrays, read back with ``allow_pickle=False``), so a saved router is safe to load.
"""

from __future__ import annotations

import inspect
import json
import os
import zipfile
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, BinaryIO, ClassVar, Self

import numpy as np
from numpy.typing import NDArray

from codyn.data.routing import RoutingData
from codyn.errors import CodynError, DataError, NotFittedError

FORMAT_VERSION = 1
"""Version of the ``router.json`` / ``weights.npz`` layout; `load_router` refuses newer ones."""

CONFIG_FILE = "router.json"
WEIGHTS_FILE = "weights.npz"
TENSORS_FILE = "weights.safetensors"
"""Where a router with ``tensor_weights`` keeps its arrays instead (fine-tuned networks:
the format every deep-learning tool reads, and as safe to load as ``weights.npz``)."""

Prompts = RoutingData | Sequence[str]
Arrays = dict[str, NDArray[Any]]
State = tuple[dict[str, Any], Arrays]
"""What a router saves beyond its parameters: JSON-able small state and numeric arrays."""


class Router(ABC):
    """Base class: predicts an ``n_prompts x n_models`` quality matrix, columns in ``model_names_``.

    Subclasses implement `_fit` and `_predict`, and `_state` / `_set_state` when they learn
    anything beyond the model names; validation and persistence live here, written once.
    """

    family: ClassVar[str]
    tensor_weights: ClassVar[bool] = False
    """Save the arrays as ``weights.safetensors`` rather than ``weights.npz``."""
    model_names_: list[str]

    # -- subclass hooks ---------------------------------------------------------------------

    def _fit(self, train: RoutingData) -> None:  # noqa: B027
        """Learn from ``train``; ``model_names_`` is already set. Default: nothing to learn."""

    @abstractmethod
    def _predict(self, texts: list[str], data: RoutingData | None) -> NDArray[np.float64]:
        """Predicted quality for ``texts`` (``data`` is the RoutingData they came from, if any)."""

    def _state(self) -> State:
        """Learned state to save besides ``model_names_``. Default: none."""
        return {}, {}

    def _set_state(self, state: dict[str, Any], arrays: Arrays) -> None:  # noqa: B027
        """Restore what `_state` returned (``model_names_`` is already set). Default: nothing."""

    # -- public API -------------------------------------------------------------------------

    def fit(self, train: RoutingData) -> Self:
        """Learn from the training split; returns ``self`` (scikit-learn style)."""
        if not isinstance(train, RoutingData):
            raise CodynError(f"{type(self).__name__}.fit needs a RoutingData, got {type(train)}")
        if train.n_prompts == 0:
            raise CodynError(f"{type(self).__name__}.fit needs at least one training prompt")
        self.model_names_ = list(train.model_names)
        try:
            self._fit(train)
        except BaseException:
            del self.model_names_  # a failed fit must not look fitted
            raise
        return self

    def predict(self, prompts: Prompts) -> NDArray[np.float64]:
        """Predicted quality, ``n_prompts x n_models``, columns in ``model_names_`` order."""
        self._check_fitted("predict")
        if isinstance(prompts, RoutingData):
            texts, data = prompts.texts, prompts
        elif isinstance(prompts, str) or not all(isinstance(p, str) for p in prompts):
            raise CodynError("predict takes a RoutingData or a list of prompt strings")
        else:
            texts, data = list(prompts), None
        predicted = np.asarray(self._predict(texts, data), dtype=np.float64)
        expected = (len(texts), len(self.model_names_))
        if predicted.shape != expected:
            raise CodynError(
                f"{type(self).__name__} predicted shape {predicted.shape}, expected {expected}"
            )
        return predicted

    def predict_with_difficulty(
        self, prompts: Prompts
    ) -> tuple[NDArray[np.float64], NDArray[np.float64] | None]:
        """`predict`, and a per-prompt difficulty in [0, 1] where the router has one of its own
        (the `profile` router's level); policies that tier by difficulty read it through
        `Policy.with_difficulty`. Default: no difficulty."""
        return self.predict(prompts), None

    def explain(self, prompts: Prompts) -> list[dict[str, Any]] | None:
        """Per prompt, what the router read in it beyond the predicted matrix (the `profile`
        router: category and level), for ``codyn route``; None when there is nothing more."""
        return None

    def named_knobs(self, policy: str) -> dict[str, float]:
        """Knob values of ``policy`` that this router gives a name (the `profile` router's
        modes under ``tiers``); evaluation reports each as an operating point. Default: none."""
        return {}

    @classmethod
    def _param_names(cls) -> list[str]:
        signature = inspect.signature(cls.__init__)
        return [
            name
            for name, p in signature.parameters.items()
            if name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        ]

    def get_params(self) -> dict[str, Any]:
        """Hyper-parameters by name, as given to ``__init__``."""
        return {name: getattr(self, name) for name in self._param_names()}

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({params})"

    def save(self, directory: str | Path) -> Path:
        """Write ``router.json`` and ``weights.npz`` into ``directory`` (created); returns it."""
        self._check_fitted("save")
        if not hasattr(type(self), "family"):
            raise CodynError(f"{type(self).__name__} has no family; decorate it @register_router")
        directory = Path(directory)
        state, arrays = self._state()
        for name, array in arrays.items():
            if np.asarray(array).dtype.kind not in "biufc":
                raise CodynError(f"weights array {name!r} is not numeric; save it as JSON state")
        config = {
            "format_version": FORMAT_VERSION,
            "family": self.family,
            "params": self.get_params(),
            "model_names": self.model_names_,
            "state": state,
        }
        try:
            text = json.dumps(config, indent=2, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise CodynError(
                f"cannot save {self!r}: params/state are not plain JSON ({exc})"
            ) from exc
        directory.mkdir(parents=True, exist_ok=True)
        if self.tensor_weights:
            from safetensors.numpy import save

            blob = save({k: np.ascontiguousarray(v) for k, v in arrays.items()})
            _write_atomically(directory / TENSORS_FILE, lambda fh: fh.write(blob))
            (directory / WEIGHTS_FILE).unlink(missing_ok=True)
        else:
            _write_atomically(directory / WEIGHTS_FILE, lambda fh: np.savez(fh, **arrays))
            (directory / TENSORS_FILE).unlink(missing_ok=True)
        _write_atomically(directory / CONFIG_FILE, lambda fh: fh.write(text.encode()))
        return directory

    @classmethod
    def load(cls, directory: str | Path) -> Self:
        """Read a router saved by `save`; refuses one of another family than ``cls``."""
        from codyn.routers.registry import load_router

        router = load_router(directory)
        if not isinstance(router, cls):
            raise DataError(
                f"holds a {type(router).__name__} ({router.family!r}), not a {cls.__name__}",
                path=Path(directory) / CONFIG_FILE,
            )
        return router

    def _check_fitted(self, action: str) -> None:
        if not hasattr(self, "model_names_"):
            raise NotFittedError(
                f"{type(self).__name__} is not fitted; call fit(train) before {action}"
            )


def read_saved(directory: str | Path) -> tuple[dict[str, Any], Arrays]:
    """The validated ``router.json`` and the arrays of ``weights.npz`` in ``directory``.

    Every problem (missing or corrupted file, newer format) is a `DataError` naming the file.
    """
    directory = Path(directory)
    config_path = directory / CONFIG_FILE
    if not config_path.is_file():
        raise DataError("no such file (not a saved codyn router?)", path=config_path)
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(
            f"corrupted router file, not valid JSON ({exc})", path=config_path
        ) from None
    expected = {
        "format_version": int,
        "family": str,
        "params": dict,
        "model_names": list,
        "state": dict,
    }
    if (
        not isinstance(config, dict)
        or any(not isinstance(config.get(key), kind) for key, kind in expected.items())
        or not all(isinstance(name, str) for name in config["model_names"])
        or config["format_version"] < 1
    ):
        raise DataError(
            "corrupted router file: expected an object with format_version, family, params, "
            "model_names and state",
            path=config_path,
        )
    version = config["format_version"]
    if version > FORMAT_VERSION:
        raise DataError(
            f"format version {version} is newer than this codyn reads ({FORMAT_VERSION}); "
            "upgrade codyn",
            path=config_path,
        )
    tensors_path = directory / TENSORS_FILE
    if tensors_path.is_file():
        from safetensors import SafetensorError
        from safetensors.numpy import load

        try:
            return config, load(tensors_path.read_bytes())
        except (SafetensorError, OSError, ValueError) as exc:
            raise DataError(f"corrupted weights file ({exc})", path=tensors_path) from None
    weights_path = directory / WEIGHTS_FILE
    if not weights_path.is_file():
        raise DataError("no such file (the router's weights are missing)", path=weights_path)
    try:
        with np.load(weights_path, allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in npz.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise DataError(f"corrupted weights file ({exc})", path=weights_path) from None
    return config, arrays


def _write_atomically(path: Path, write: Callable[[BinaryIO], object]) -> None:
    """Write through a temporary file, so a crash never leaves a half-written artefact."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as fh:
        write(fh)
    os.replace(tmp, path)
