"""Baselines the model must beat, fitted on the training window only.

- ``popularity``: the share of training users (latest train cutoff) who engaged
  with each category in their label window: what is hot right now;
- ``user_frequency``: the user's own category counts over the history;
- ``markov``: a first-order chain over consecutive history events of the
  training sequences, P(next category | the user's last category).

For the migration subset each is ranked over the categories the user has not
seen (``popularity`` and ``markov`` then become their "new category"
variants; ``user_frequency`` has nothing to say about unseen categories).
Ties break by popularity, so no baseline is handicapped by arbitrary order.
"""
from __future__ import annotations

import numpy as np

TIE_BREAK = 1e-6


def popularity_scores(popularity: np.ndarray, users: int) -> np.ndarray:
    return np.broadcast_to(popularity, (users, len(popularity))).copy()


def user_frequency_scores(seen: np.ndarray, popularity: np.ndarray) -> np.ndarray:
    return seen + TIE_BREAK * popularity


def markov_scores(last_category: np.ndarray, transitions: np.ndarray, popularity: np.ndarray) -> np.ndarray:
    """Rows of the row-normalised transition matrix for each user's last category id."""
    return transitions[last_category] + TIE_BREAK * popularity


def transition_matrix(pair_counts: dict[tuple[int, int], int], size: int, smoothing: float = 0.01) -> np.ndarray:
    """Row-normalised counts of (from id, to id) pairs with additive smoothing."""
    counts = np.full((size, size), smoothing)
    for (a, b), n in pair_counts.items():
        counts[a, b] += n
    return counts / counts.sum(axis=1, keepdims=True)
