"""Routing data: the structure, importers, splits and the bundled demo data."""

from codyn.data.routing import COST_BASES, FORMAT_VERSION, Model, RoutingData

__all__ = ["COST_BASES", "FORMAT_VERSION", "Model", "RoutingData"]
