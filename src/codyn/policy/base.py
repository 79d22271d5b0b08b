"""The `Policy` contract, the policy registry, and the helpers every decision rule shares.

A router predicts a quality matrix; a policy turns it, the models' costs and ONE knob into a
model per prompt. Policies register by name (``@register_policy("utility")``), are built from
a name or a saved config with `make_policy`, and save as `policy_config` (model references by
name, so a config survives a reordering of models). Evaluation sweeps the knob with
`Policy.knob_grid`; every caller decides through `codyn.policy.decide`.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar, Literal, TypeVar

import numpy as np
from numpy.typing import ArrayLike, NDArray

from codyn.errors import CodynError
from codyn.registry import Registry

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]

TIE_TOLERANCE = 1e-9
"""Values within this (relative) distance of the best count as tied, so that a knob computed
as a flip point reproduces the flip despite rounding; ties go to the cheaper model."""

POLICIES: Registry[type[Policy]] = Registry("policy", "codyn.policy", plural="policies")
"""Every decision rule by name: ``utility``, ``threshold``, ``affordability``, ``tiers``,
``budget``, ``fixed``, ``cascade``."""

P = TypeVar("P", bound="type[Policy]")


def register_policy(name: str) -> Callable[[P], P]:
    """Class decorator: make a `Policy` known as ``name`` (sets ``name`` on the class)."""

    def decorate(cls: P) -> P:
        cls.name = name
        return POLICIES.register(name)(cls)

    return decorate


class Policy(ABC):
    """A decision rule with one knob: ``decide`` picks a model per prompt, ``knob_grid`` sweeps.

    Policies are frozen dataclasses whose fields are their parameters. ``model_params`` names
    the fields that refer to a model: an index into the columns, given or saved by name.
    """

    name: ClassVar[str]
    knob_name: ClassVar[str]
    default_knob: ClassVar[float] = 0.0
    """The knob a policy uses until one is given or calibrated (quality first for all but
    `budget`, whose default is no limit)."""
    model_params: ClassVar[tuple[str, ...]] = ()

    @abstractmethod
    def decide(self, predicted: ArrayLike, model_costs: ArrayLike, knob: float) -> IntArray:
        """Chosen model index per prompt (``n``) from ``predicted`` (``n x m``, higher is better)
        and ``model_costs`` (``m``, mean cost per call on the train split; or ``n x m`` per
        prompt)."""

    @abstractmethod
    def knob_grid(
        self, predicted: ArrayLike, model_costs: ArrayLike, n_points: int | None = 50
    ) -> FloatArray:
        """Knob values from the cheap end to the quality end (cost weakly increasing).

        Holds every knob value where a decision flips when they fit in ``n_points`` values
        (``None``: always), otherwise quantiles of the flip points; both ends are always there.
        """

    def with_difficulty(self, difficulty: ArrayLike | None) -> Policy:
        """This policy for prompts whose router also predicted a per-prompt difficulty in
        [0, 1] (`Router.predict_with_difficulty`); only difficulty-tiered policies read it."""
        return self

    def check_knob(self, knob: float) -> float:
        """The knob as a float; a `CodynError` naming the policy's range otherwise."""
        value = float(knob)
        if not np.isfinite(value):
            raise CodynError(f"{self.knob_name} must be a finite number, got {knob}")
        return value

    def params(self) -> dict[str, Any]:
        """Parameters by field name, model references as column indices."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}  # type: ignore[arg-type]

    def describe(self, knob: float | None = None) -> str:
        """``utility lambda=0.3``: the policy and its knob, for messages and logs."""
        shown = self.default_knob if knob is None else knob
        return f"{self.name} {self.knob_name}={shown:.4g}"


def policy_class(name: str) -> type[Policy]:
    """The class registered as ``name``; a `CodynError` listing the known policies otherwise."""
    return POLICIES.get(name)


def policy_param_names(name: str) -> list[str]:
    """The parameters ``name``'s policy accepts."""
    cls = policy_class(name)
    return [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]


def make_policy(
    spec: str | Mapping[str, Any] | Policy,
    model_names: Sequence[str] | None = None,
    **params: Any,
) -> Policy:
    """A policy from a name (``"utility"``), a config (``{"name": "threshold", "strong":
    "gpt-4o", "weak": "gpt-4o-mini"}``) or a `Policy` (returned as is).

    ``params`` add to (and override) the config's. A model parameter given by name is
    resolved against ``model_names``. Unknown names or parameters are one-line errors.
    """
    if isinstance(spec, Policy):
        if params:
            raise CodynError(f"policy {spec.name!r} is already built; pass no parameters")
        return spec
    if isinstance(spec, Mapping):
        config = dict(spec)
        if not isinstance(config.get("name"), str):
            raise CodynError(f"a policy config needs a `name`, got {dict(spec)!r}")
        name = config.pop("name")
        params = {**config, **params}
    else:
        name = str(spec).strip()
    cls = policy_class(name)
    accepted = policy_param_names(name)
    unknown = sorted(set(params) - set(accepted))
    if unknown:
        raise CodynError(
            f"policy {name!r} has no parameter {unknown[0]!r}; it takes: "
            f"{', '.join(accepted) or 'nothing'}"
        )
    for field in cls.model_params:
        value = params.get(field)
        if isinstance(value, str):
            params[field] = _model_index(value, model_names, f"{name}.{field}")
        elif isinstance(value, (list, tuple)):
            params[field] = tuple(
                _model_index(v, model_names, f"{name}.{field}") if isinstance(v, str) else v
                for v in value
            )
    try:
        return cls(**params)
    except (TypeError, ValueError) as exc:
        raise CodynError(f"policy {name!r}: {exc}") from None


def policy_config(policy: Policy, model_names: Sequence[str]) -> dict[str, Any]:
    """``{"name": ..., **params}`` as plain JSON, model references by name (`make_policy`
    reads it back)."""
    config: dict[str, Any] = {"name": policy.name}
    for key, value in policy.params().items():
        if key in policy.model_params and isinstance(value, (int, np.integer)):
            value = model_names[int(value)]
        elif key in policy.model_params and isinstance(value, tuple):
            value = [model_names[int(v)] for v in value]
        elif callable(value):
            raise CodynError(f"policy {policy.name!r}: {key} is a function and cannot be saved")
        elif isinstance(value, tuple):
            value = list(value)
        config[key] = value
    return config


def _model_index(model: str, model_names: Sequence[str] | None, where: str) -> int:
    if model_names is None:
        raise CodynError(f"{where}: a model given by name ({model!r}) needs the model names")
    if model not in model_names:
        raise CodynError(
            f"{where}: unknown model {model!r}; the models are: {', '.join(model_names)}"
        )
    return list(model_names).index(model)


def check_inputs(predicted: ArrayLike, model_costs: ArrayLike) -> tuple[FloatArray, FloatArray]:
    """Validate shapes and costs; missing predictions (NaN) become -inf so they never win.

    Costs are one per model (``m``) or one per prompt and model (``n x m``).
    """
    pred = np.array(predicted, dtype=np.float64)
    costs = np.asarray(model_costs, dtype=np.float64)
    if pred.ndim != 2 or pred.shape[1] == 0:
        raise CodynError(f"predicted must be a 2-D n_prompts x n_models array, got {pred.shape}")
    if costs.shape not in ((pred.shape[1],), pred.shape):
        raise CodynError(
            f"model_costs has shape {costs.shape}, expected ({pred.shape[1]},): one cost per "
            "column of predicted (or one per prompt and model)"
        )
    bad = ~np.isfinite(costs) | (costs < 0)
    if bad.any():
        column = int(np.flatnonzero(bad.any(axis=0) if bad.ndim == 2 else bad)[0])
        value = costs[..., column].ravel()[np.flatnonzero(bad[..., column].ravel())[0]]
        raise CodynError(
            f"model_costs must be finite and non-negative; model index {column} has "
            f"{value} (use a price proxy when costs are unknown)"
        )
    pred[np.isnan(pred)] = -np.inf
    return pred, costs


def mean_costs(costs: FloatArray) -> FloatArray:
    """One cost per model: the costs themselves, or the mean over prompts of per-prompt costs."""
    return costs if costs.ndim == 1 else costs.mean(axis=0)


def argmax_cheapest(values: FloatArray, costs: FloatArray) -> IntArray:
    """Per-row argmax where ties (within `TIE_TOLERANCE`) go to the cheaper, then lower, index.

    ``costs`` is one per model or one per prompt and model.
    """
    best = values.max(axis=1, keepdims=True)
    with np.errstate(invalid="ignore"):
        slack = TIE_TOLERANCE * np.maximum(1.0, np.abs(best))
        near = values >= np.where(np.isfinite(best), best - slack, best)
    by_cost = np.argsort(np.broadcast_to(costs, values.shape), axis=1, kind="stable")
    first = np.argmax(np.take_along_axis(near, by_cost, axis=1), axis=1)
    return by_cost[np.arange(values.shape[0]), first].astype(np.int64)


def envelope_flips(values: FloatArray, costs: FloatArray) -> FloatArray:
    """Every lambda (any real) where a prompt's ``argmax(values - lambda * costs)`` changes.

    The choice as a function of lambda is each prompt's upper envelope of the lines
    ``u_m - lambda * c_m``: the priciest known model as lambda -> -inf, ever cheaper ones as
    lambda grows. The walk starts there; from the current choice ``a`` the next flip is the
    smallest crossing ``(u_a - u_b) / (c_a - c_b)`` over cheaper known models ``b``, where the
    choice moves to the cheapest of the models crossing there (the tie rule). At most
    ``m - 1`` steps per prompt, vectorised over prompts.
    """
    n = values.shape[0]
    rows = np.arange(n)
    c = np.broadcast_to(costs, values.shape)
    known = np.isfinite(values)
    priciest = np.where(known, c, -np.inf)
    top = priciest.max(axis=1, keepdims=True)
    current = argmax_cheapest(np.where(known & (priciest == top), values, -np.inf), c)
    flips: list[FloatArray] = []
    for _ in range(values.shape[1] - 1):
        gain = values[rows, current][:, None] - values
        saving = c[rows, current][:, None] - c
        with np.errstate(invalid="ignore", divide="ignore"):
            cross = np.where((saving > 0) & known, gain / saving, np.inf)
        cross[~np.isfinite(cross)] = np.inf
        nearest = cross.min(axis=1)
        moving = np.isfinite(nearest)
        if not moving.any():
            break
        slack = TIE_TOLERANCE * np.maximum(1.0, np.abs(nearest))
        tied = cross <= (nearest + slack)[:, None]
        cheapest_tied = argmax_cheapest(np.where(tied, 0.0, -np.inf), c)
        flips.append(nearest[moving])
        current = np.where(moving, cheapest_tied, current)
    return np.concatenate(flips) if flips else np.empty(0)


def flip_grid(
    flips: FloatArray,
    n_points: int | None,
    *,
    beyond: Literal["above", "below", "both", "none"],
    anchor: float | None = None,
) -> FloatArray:
    """Ascending knob values: the flips (or their quantiles), ``anchor`` and the ends.

    One value past the extreme flip on each side named by ``beyond`` closes the grid there
    (ANCHORS.md "Sweeps": "one past the last flip"; ``none``: the extreme flips are the ends);
    ``anchor`` (a policy's default knob) is always included. At most ``n_points`` values;
    ``None`` keeps every flip.
    """
    closers = (anchor is not None) + (beyond in ("above", "both")) + (beyond in ("below", "both"))
    if n_points is not None and n_points < max(2, closers):
        raise CodynError(
            f"n_points must be at least {max(2, closers)} (both ends"
            f"{' and the default knob' if anchor is not None else ''}), got {n_points}"
        )
    flips = flips[np.isfinite(flips)]
    if flips.size == 0:
        return np.array([0.0 if anchor is None else float(anchor)])
    unique = np.unique(flips)
    extra = [] if anchor is None else [float(anchor)]
    if beyond in ("above", "both"):
        extra.append(unique[-1] + _step(unique[-1]))
    if beyond in ("below", "both"):
        extra.append(unique[0] - _step(unique[0]))
    room = None if n_points is None else n_points - len(extra)
    if room is None or unique.size <= room:
        inner = unique
    elif room == 1:
        inner = np.quantile(flips, [0.5])
    else:
        inner = np.quantile(flips, np.linspace(0.0, 1.0, room))
    return np.unique(np.concatenate([inner, extra]))


def _step(value: float) -> float:
    return max(1e-6, 1e-2 * abs(float(value)))
