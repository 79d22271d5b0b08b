"""Re-run the anchors' best peers on a fixed split and write their per-prompt predictions.

ANCHORS.md reports the peers' AIQ but not their per-prompt choices, so a paired comparison
needs them re-run. This script does so as the anchors' harness describes, on exact MiniLM
embeddings (codyn's `minilm` featuriser, cached on disk):

- ``routellm-sw``: RouteLLM 0.2.0's own ``compute_elo_mle_with_tie`` per test prompt, on every
  pairwise battle of the train scores (higher score wins, equal = tie), each weighted by
  RouteLLM's ``get_weightings`` formula ``10 * 10 ** (sim / max sim)``; identical battles
  merged with summed weights; the n-way utility of a model is its per-prompt Elo.
- ``routerbench-knn40``: scikit-learn ``KNeighborsRegressor(n_neighbors=40)`` on the
  embeddings, regressing every model's score (RouterBench's kNN baseline).

The output is codyn's ``predictions`` format (``prompt_sha1_16, model, value``), for
``codyn eval DATA --routers knn,predictions:OUT.csv --reference predictions:OUT.csv``.

Needs RouteLLM's code for ``routellm-sw``: ``pip install routellm==0.2.0 --no-deps`` (its
module creates an OpenAI client at import, so a dummy ``OPENAI_API_KEY`` is set here).

    python scripts/peer_predictions.py llmrouter.parquet \\
        --split-file ../shared/benchmarks/anchors/splits/llmr_all.tsv --peer routellm-sw -o sw.csv
"""

from __future__ import annotations

import argparse
import os
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from codyn.data.routing import RoutingData
from codyn.data.splits import load_split_file, prompt_sha1_16
from codyn.features.base import l2_normalise
from codyn.features.minilm import MiniLMFeaturiser
from codyn.routers.embedding import featurise

PEERS = ("routellm-sw", "routerbench-knn40")


def routellm_sw(
    train_x: np.ndarray, score: np.ndarray, names: list[str], test_x: np.ndarray
) -> np.ndarray:
    """Per-test-prompt Elo ratings from RouteLLM's similarity-weighted MLE."""
    os.environ.setdefault("OPENAI_API_KEY", "unused")
    from routellm.routers.similarity_weighted.utils import compute_elo_mle_with_tie

    pairs = [(a, b) for a in range(len(names)) for b in range(a + 1, len(names))]
    outcome = np.full((len(score), len(pairs)), -1)  # 0: a wins, 1: b wins, 2: tie
    for j, (a, b) in enumerate(pairs):
        known = ~(np.isnan(score[:, a]) | np.isnan(score[:, b]))
        diff = score[known, a] - score[known, b]
        outcome[known, j] = np.where(diff > 0, 0, np.where(diff < 0, 1, 2))
    similarity = l2_normalise(test_x) @ l2_normalise(train_x).T
    utility = np.empty((len(test_x), len(names)))
    for q, sims in enumerate(similarity):
        weight = 10 * 10 ** (sims / sims.max())
        rows = [
            (names[a], names[b], winner, weight[outcome[:, j] == code].sum())
            for j, (a, b) in enumerate(pairs)
            for code, winner in enumerate(("model_a", "model_b", "tie"))
            if (outcome[:, j] == code).any()
        ]
        battles = pd.DataFrame(rows, columns=["model_a", "model_b", "winner", "weight"])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # lbfgs convergence notes on unbeaten models
            elo = compute_elo_mle_with_tie(
                battles[["model_a", "model_b", "winner"]],
                sample_weight=battles["weight"].to_numpy(),
            )
        utility[q] = [elo.get(name, -np.inf) for name in names]
    return utility


def routerbench_knn40(train_x: np.ndarray, score: np.ndarray, test_x: np.ndarray) -> np.ndarray:
    from sklearn.neighbors import KNeighborsRegressor

    filled = np.where(np.isnan(score), np.nanmean(score), score)
    return KNeighborsRegressor(n_neighbors=40).fit(train_x, filled).predict(test_x)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data", type=Path)
    parser.add_argument("--split-file", type=Path, required=True)
    parser.add_argument("--peer", choices=PEERS, required=True)
    parser.add_argument("-o", "--output", type=Path, required=True)
    args = parser.parse_args()
    train, test = load_split_file(RoutingData.load(args.data), args.split_file)
    featuriser = MiniLMFeaturiser().fit(train.texts)
    train_x, test_x = featurise(featuriser, train.texts), featurise(featuriser, test.texts)
    if args.peer == "routellm-sw":
        utility = routellm_sw(train_x, train.score, train.model_names, test_x)
    else:
        utility = routerbench_knn40(train_x, train.score, test_x)
    keys = [prompt_sha1_16(text) for text in test.texts]
    pd.DataFrame(
        {
            "prompt_sha1_16": np.repeat(keys, len(test.model_names)),
            "model": np.tile(test.model_names, len(keys)),
            "value": utility.ravel(),
        }
    ).drop_duplicates(["prompt_sha1_16", "model"]).to_csv(args.output, index=False)
    print(
        f"{args.peer}: {len(keys)} test prompts x {len(test.model_names)} models -> {args.output}"
    )


if __name__ == "__main__":
    main()
