"""Pure metric functions: numbers in, numbers out, each citing its paper's formula."""

from codyn.metrics.headroom import (
    answered_prompts,
    cheapest_best_share,
    cheapest_winner_change_rate,
    model_means,
    oracle_choice,
    oracle_gap,
    oracle_mean,
    sbs_index,
    winner_change_rate,
)

__all__ = [
    "answered_prompts",
    "cheapest_best_share",
    "cheapest_winner_change_rate",
    "model_means",
    "oracle_choice",
    "oracle_gap",
    "oracle_mean",
    "sbs_index",
    "winner_change_rate",
]
