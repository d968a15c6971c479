"""Baselines the model must beat: what a skeptic tries before a neural network.

Every baseline reads the same encoded sequences as the model
(``models.encoding``), is fitted on the training cutoffs only, and has its one
knob (if any) chosen on the validation cutoff, never on a test cutoff:

- ``popularity``: the share of the latest training cutoff's users who engaged
  with each category in their label window: what is hot right now;
- ``user_frequency``: the user's own event counts per category over the
  history window;
- ``recency_frequency``: the same counts with each event weighted by
  ``exp(-age / decay)``; the decay (days) is chosen on validation NDCG@10
  from ``DECAY_GRID`` (an infinite decay is ``user_frequency``);
- ``markov``: a first-order chain over consecutive history events of the
  training sequences, P(next category | the user's last category);
- ``focus_transition`` (migration): P(category new to the user | the
  categories of their last session), from what training users moved into
  after such a session.

For the migration subset each is ranked over the categories the user has not
seen (``popularity`` and ``markov`` then become their "new category"
variants; the frequencies have nothing to say about unseen categories). Ties
break by popularity, so no baseline is handicapped by arbitrary order.
``models.shallow`` adds the learned shallow model on these signals.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from models.encoding import AGE_EDGES_S
from models.vocabulary import OOV, PAD

TIE_BREAK = 1e-9
DECAY_GRID = (0.5, 1.0, 2.0, 4.0, 7.0, 14.0, 28.0, float("inf"))
SESSION_START = 2  # encoded session_starts: 0 padding, 1 continues a session, 2 starts one


def _age_bucket_days() -> np.ndarray:
    """A representative age in days per encoded age bucket (index 0 is padding): the middle of its range."""
    edges = [0.0, *(s / 86400 for s in AGE_EDGES_S)]
    middles = [(lo + hi) / 2 for lo, hi in zip(edges, edges[1:])] + [edges[-1] * 1.5]
    return np.array([np.inf, *middles])


AGE_BUCKET_DAYS = _age_bucket_days()


@dataclass(frozen=True)
class BaselineFit:
    """What the training cutoffs taught the baselines; arrays are indexed by vocabulary id."""

    popularity: np.ndarray
    new_popularity: np.ndarray
    transitions: np.ndarray
    focus_transitions: np.ndarray
    decay_days: float = float("inf")


def fit_baselines(train: dict[str, np.ndarray], latest: np.ndarray, smoothing: float = 0.01) -> BaselineFit:
    """Popularity from the ``latest`` rows (the latest training cutoff), transitions from every training row."""
    size = train["seen"].shape[1]
    relevant = train["label_categories"] > 0
    new = relevant & (train["window_events"] == 0)
    popularity = _ranked_only(relevant[latest].mean(axis=0) if latest.any() else relevant.mean(axis=0))
    new_popularity = _ranked_only(new[latest].mean(axis=0) if latest.any() else new.mean(axis=0))
    transitions = _row_normalised(_pair_counts(train["categories"], size) + smoothing)
    focus = _row_normalised(last_session_counts(train, size))
    moves = np.asarray((_sparse(focus).T @ _sparse(new.astype(np.float64))).todense())
    focus_transitions = _row_normalised(moves + smoothing * (new_popularity + TIE_BREAK))
    for matrix in (transitions, focus_transitions):
        matrix[:, [PAD, OOV]] = 0
    return BaselineFit(popularity, new_popularity, transitions, focus_transitions)


def popularity_scores(fit: BaselineFit, users: int) -> np.ndarray:
    return np.broadcast_to(fit.popularity, (users, len(fit.popularity))).copy()


def user_frequency_scores(encoded: dict[str, np.ndarray], fit: BaselineFit) -> np.ndarray:
    return encoded["window_events"] + TIE_BREAK * fit.popularity


def recency_scores(encoded: dict[str, np.ndarray], fit: BaselineFit, decay_days: float | None = None) -> np.ndarray:
    """Each history event weighted by exp(-age / decay); window events older than the last L get the oldest weight."""
    decay = fit.decay_days if decay_days is None else decay_days
    weights = np.where(np.isinf(AGE_BUCKET_DAYS), 0.0, np.exp(-AGE_BUCKET_DAYS / decay) if decay < np.inf else 1.0)
    categories = encoded["categories"]
    rows, size = categories.shape[0], encoded["seen"].shape[1]
    flat = (np.arange(rows)[:, None] * size + categories).ravel()
    scores = np.bincount(flat, weights=weights[encoded["age_buckets"]].ravel(), minlength=rows * size)
    scores = scores.reshape(rows, size)
    older = np.maximum(encoded["window_events"] - encoded["seen"], 0)
    return scores + older * weights[-1] + TIE_BREAK * fit.popularity


def markov_scores(encoded: dict[str, np.ndarray], fit: BaselineFit) -> np.ndarray:
    """The transition row of each user's last category (histories are right-aligned)."""
    return fit.transitions[encoded["categories"][:, -1]] + TIE_BREAK * fit.popularity


def focus_transition_scores(encoded: dict[str, np.ndarray], fit: BaselineFit) -> np.ndarray:
    """P(moving into c | the last session's category mix), plus a popularity tie-break."""
    focus = _sparse(_row_normalised(last_session_counts(encoded, len(fit.popularity))))
    return np.asarray(focus @ fit.focus_transitions) + TIE_BREAK * fit.new_popularity


def choose_decay(validation: dict[str, np.ndarray], fit: BaselineFit, relevant: np.ndarray,
                 exclude: np.ndarray) -> tuple[BaselineFit, dict[float, float]]:
    """The fit with the decay of the best validation NDCG@10, and every decay's NDCG@10."""
    from dataclasses import replace

    from models.metrics import ranking_metrics

    results = {decay: ranking_metrics(recency_scores(validation, fit, decay), relevant, exclude)["ndcg@10"]
               for decay in DECAY_GRID}
    best = max(results, key=lambda decay: (results[decay], decay))
    return replace(fit, decay_days=best), results


def last_session_counts(encoded: dict[str, np.ndarray], size: int) -> np.ndarray:
    """(rows, size) counts of each category in the user's last session (from its last session start on)."""
    categories, starts = encoded["categories"], encoded["session_starts"] == SESSION_START
    rows, length = categories.shape
    last_start = length - 1 - np.argmax(starts[:, ::-1], axis=1)
    last_start[~starts.any(axis=1)] = 0
    inside = (np.arange(length)[None, :] >= last_start[:, None]) & (categories != PAD)
    flat = (np.arange(rows)[:, None] * size + categories)[inside]
    return np.bincount(flat, minlength=rows * size).reshape(rows, size).astype(np.float64)


def _pair_counts(categories: np.ndarray, size: int) -> np.ndarray:
    a, b = categories[:, :-1].ravel(), categories[:, 1:].ravel()
    keep = (a != PAD) & (b != PAD)
    return np.bincount(a[keep] * size + b[keep], minlength=size * size).reshape(size, size).astype(np.float64)


def _row_normalised(matrix: np.ndarray) -> np.ndarray:
    totals = matrix.sum(axis=1, keepdims=True)
    return np.divide(matrix, totals, out=np.zeros_like(matrix, dtype=np.float64), where=totals > 0)


def _ranked_only(values: np.ndarray) -> np.ndarray:
    out = np.asarray(values, dtype=np.float64).copy()
    out[[PAD, OOV]] = 0
    return out


def _sparse(matrix: np.ndarray):
    from scipy.sparse import csr_matrix

    return csr_matrix(matrix)
