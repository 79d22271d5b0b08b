"""Routers: scikit-learn-style predictors of each model's quality per prompt.

``make_router("sbs").fit(train).predict(test)`` gives an ``n_prompts x n_models`` matrix that a
`codyn.policy` turns into decisions; ``save`` / `load_router` keep a router without pickle.
"""

from codyn.errors import NotFittedError
from codyn.routers.base import FORMAT_VERSION, Router
from codyn.routers.baselines import (
    CheapestRouter,
    OracleRouter,
    RandomRouter,
    SBSRouter,
    SingleModelRouter,
)
from codyn.routers.registry import ROUTERS, load_router, make_router, register_router, router_class

__all__ = [
    "FORMAT_VERSION",
    "ROUTERS",
    "CheapestRouter",
    "NotFittedError",
    "OracleRouter",
    "RandomRouter",
    "Router",
    "SBSRouter",
    "SingleModelRouter",
    "load_router",
    "make_router",
    "register_router",
    "router_class",
]
