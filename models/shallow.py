"""The learned shallow baseline: logistic regression on per-(user, category) features.

What a skeptic fits before a sequence model: for each (user, category) cell,
a couple of dozen numbers drawn from the same inputs the model reads (the
category's counts over the last L events, the last day, the last three days
and the whole window, in events and sessions, as logs and as shares; its
recency-weighted count; popularity; the Markov and focus-transition
probabilities from ``models.baselines``; the user's activity) and one
logistic regression shared by every category: about twenty weights, so it
works for a catalog of thousands of categories and a young lake alike.

Fitted on a sample of training rows (all cells of the categories each user
has seen, and unseen cells sampled at a known rate and weighted back), with
scikit-learn's L-BFGS logistic regression on standardised features.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from models.baselines import (BaselineFit, focus_transition_scores, markov_scores, recency_scores)
from models.encoding import COUNTS, RECENCY
from models.vocabulary import OOV, PAD

MAX_ROWS = 20_000
MAX_UNSEEN_CELLS = 2_000_000
CHUNK_ROWS = 2_000


@dataclass
class ShallowModel:
    fit: BaselineFit
    model: object

    def scores(self, encoded: dict[str, np.ndarray]) -> np.ndarray:
        """(rows, size) P(engages with c), computed in row chunks to bound memory."""
        rows, size = encoded["seen"].shape
        out = np.zeros((rows, size))
        for start in range(0, rows, CHUNK_ROWS):
            chunk = {k: v[start:start + CHUNK_ROWS] for k, v in encoded.items()}
            features = cell_features(chunk, self.fit)
            n = len(chunk["seen"])
            out[start:start + n] = self.model.predict_proba(features.reshape(n * size, -1))[:, 1].reshape(n, size)
        out[:, [PAD, OOV]] = 0
        return out


def cell_features(encoded: dict[str, np.ndarray], fit: BaselineFit) -> np.ndarray:
    """(rows, size, features) float32: the numbers the regression weighs for every cell."""
    counts = [encoded[name].astype(np.float64) for name in COUNTS]
    logs = [np.log1p(c) for c in counts]
    shares = [c / np.maximum(c.sum(axis=1, keepdims=True), 1.0) for c in counts]
    seen = (encoded["window_events"] > 0).astype(np.float64)
    recency = recency_scores(encoded, fit)
    recency_share = recency / np.maximum(recency.sum(axis=1, keepdims=True), 1e-12)
    rows = len(seen)
    log_popularity = np.broadcast_to(np.log(fit.popularity + 1e-4), seen.shape)
    log_new_popularity = np.broadcast_to(np.log(fit.new_popularity + 1e-4), seen.shape)
    markov = markov_scores(encoded, fit)
    focus = focus_transition_scores(encoded, fit)
    activity = np.broadcast_to(np.log1p(encoded["window_events"].sum(axis=1, keepdims=True)), seen.shape)
    # The same per-category inputs the model's wide path reads (counts, shares, recency since the last event),
    # so that the model beats the shallow baseline on its sequence, not on features the baseline lacks.
    columns = [*logs, *shares, seen, encoded[RECENCY].astype(np.float64), recency_share, log_popularity,
               log_new_popularity, markov, focus, activity, seen * log_popularity, (1 - seen) * focus,
               (1 - seen) * markov]
    return np.stack(columns, axis=-1).astype(np.float32).reshape(rows, seen.shape[1], len(columns))


def fit_shallow(train: dict[str, np.ndarray], fit: BaselineFit, seed: int = 0) -> ShallowModel:
    """Logistic regression on a sample of training cells (unseen cells down-sampled and weighted back)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(seed)
    rows, size = train["seen"].shape
    picked = np.sort(rng.choice(rows, MAX_ROWS, replace=False)) if rows > MAX_ROWS else np.arange(rows)
    sample = {k: v[picked] for k, v in train.items()}
    seen = sample["window_events"] > 0
    rankable = np.ones(size, bool)
    rankable[[PAD, OOV]] = False
    unseen_cells = int((~seen & rankable).sum())
    rate = min(1.0, MAX_UNSEEN_CELLS / max(unseen_cells, 1))
    keep = rankable & (seen | (rng.random(seen.shape) < rate))
    weights = np.where(seen, 1.0, 1.0 / rate)[keep]
    features = np.concatenate([cell_features({k: v[s:s + CHUNK_ROWS] for k, v in sample.items()}, fit)[
        keep[s:s + CHUNK_ROWS]] for s in range(0, len(picked), CHUNK_ROWS)])
    labels = (sample["label_categories"] > 0)[keep]
    if labels.all() or not labels.any():
        raise ValueError("the shallow baseline needs both engaged and not-engaged cells in its training sample")
    model = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=300))
    model.fit(features, labels, logisticregression__sample_weight=weights)
    return ShallowModel(fit, model)
