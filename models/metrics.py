"""Ranking, classification and calibration metrics, in NumPy, over (users, categories) matrices.

Conventions: ``relevant`` is a 0/1 matrix of what each user actually engaged
with (it may include columns no method can rank, such as the out-of-vocabulary
bucket: they still count in the denominator of recall). Columns in
``exclude`` are never ranked (padding, OOV, and for the migration subset the
categories already in the user's history). Users with nothing relevant are
left out of the ranking metrics, as usual.

``per_user_ranking`` keeps one value per user so that ``models.intervals``
can resample users for paired confidence intervals; ``ranking_metrics`` is
its mean.
"""
from __future__ import annotations

import numpy as np

KS = (1, 5, 10)
RANKING_NAMES = tuple(f"{m}@{k}" for k in KS for m in ("recall", "ndcg", "hr"))
# Cells predicted below this are what nobody acts on: calibration is also reported over the rest only,
# because the thousands of near-zero (user, category) cells of a large catalog are trivially calibrated
# and would otherwise dilute the error of the cells that matter.
ACTED_ON_PROBABILITY = 0.01


def per_user_ranking(scores: np.ndarray, relevant: np.ndarray, exclude: np.ndarray | None = None,
                     ks: tuple[int, ...] = KS) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """(mask of users with something relevant, {metric: one value per such user})."""
    relevant = relevant > 0
    users = relevant.sum(axis=1) > 0
    if not users.any():
        return users, {f"{m}@{k}": np.zeros(0) for k in ks for m in ("recall", "ndcg", "hr")}
    scores = np.where(exclude, -np.inf, scores) if exclude is not None else scores
    scores, relevant = scores[users], relevant[users]
    rankable = relevant & np.isfinite(scores)
    # A stable sort: ties go to the lower column, so every method's ranking is reproducible.
    top = np.argsort(-scores, axis=1, kind="stable")[:, : max(ks)]
    hits = np.take_along_axis(rankable, top, axis=1).astype(float)
    if hits.shape[1] < max(ks):
        hits = np.pad(hits, ((0, 0), (0, max(ks) - hits.shape[1])))
    n_relevant = relevant.sum(axis=1)
    discounts = 1.0 / np.log2(np.arange(2, max(ks) + 2))
    out: dict[str, np.ndarray] = {}
    for k in ks:
        ideal = np.cumsum(discounts)[np.minimum(n_relevant, k) - 1]
        out[f"recall@{k}"] = hits[:, :k].sum(axis=1) / n_relevant
        out[f"ndcg@{k}"] = (hits[:, :k] * discounts[:k]).sum(axis=1) / ideal
        out[f"hr@{k}"] = (hits[:, :k].sum(axis=1) > 0).astype(float)
    return users, out


def ranking_metrics(scores: np.ndarray, relevant: np.ndarray, exclude: np.ndarray | None = None,
                    ks: tuple[int, ...] = KS) -> dict[str, float]:
    """Recall@K, NDCG@K and HR@K averaged over users with at least one relevant category."""
    users, values = per_user_ranking(scores, relevant, exclude, ks)
    if not users.any():
        return {"users": 0, **{name: float("nan") for name in values}}
    return {"users": int(users.sum()), **{name: float(v.mean()) for name, v in values.items()}}


def classification(probabilities: np.ndarray, labels: np.ndarray, threshold: float = 0.5) -> dict[str, float]:
    """Precision, recall and F1 of ``probability >= threshold``, and the threshold-free ROC AUC."""
    p = np.asarray(probabilities, dtype=float).ravel()
    y = np.asarray(labels, dtype=float).ravel() > 0
    predicted = p >= threshold
    true_positive = float((predicted & y).sum())
    precision = true_positive / predicted.sum() if predicted.any() else float("nan")
    recall = true_positive / y.sum() if y.any() else float("nan")
    f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    return {"threshold": threshold, "count": int(len(p)), "positives": int(y.sum()), "predicted": int(predicted.sum()),
            "precision": precision, "recall": recall, "f1": f1, "auc": roc_auc(p, y)}


def roc_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """The Mann-Whitney estimate of ROC AUC, ties counted half (NaN when one class is absent)."""
    from scipy.stats import rankdata

    y = np.asarray(labels).ravel() > 0
    positives, negatives = int(y.sum()), int((~y).sum())
    if not positives or not negatives:
        return float("nan")
    ranks = rankdata(np.asarray(scores, dtype=float).ravel())
    return float((ranks[y].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def calibration(probabilities: np.ndarray, labels: np.ndarray, bins: int = 10) -> dict:
    """Expected calibration error (equal-width bins, weighted by count), Brier score and the reliability table.

    ``ece_acted_on`` is the same error over the cells predicted at least
    ``ACTED_ON_PROBABILITY`` (their count is ``acted_on``); ``mean_predicted``
    against ``observed`` is calibration in the large, over every cell.
    """
    p = np.asarray(probabilities, dtype=float).ravel()
    y = np.asarray(labels, dtype=float).ravel()
    ece, table = _binned_error(p, y, bins)
    acted_on = p >= ACTED_ON_PROBABILITY
    ece_acted_on, _ = _binned_error(p[acted_on], y[acted_on], bins)
    return {"ece": ece, "ece_acted_on": ece_acted_on, "acted_on": int(acted_on.sum()),
            "brier": float(np.mean((p - y) ** 2)) if len(p) else float("nan"), "count": int(len(p)),
            "mean_predicted": float(p.mean()) if len(p) else float("nan"),
            "observed": float(y.mean()) if len(p) else float("nan"), "reliability": table}


def _binned_error(p: np.ndarray, y: np.ndarray, bins: int) -> tuple[float, list[dict]]:
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(p, edges[1:-1]), 0, bins - 1)
    counts = np.bincount(which, minlength=bins)
    predicted = np.bincount(which, weights=p, minlength=bins)
    observed = np.bincount(which, weights=y, minlength=bins)
    table, ece = [], 0.0
    for b in range(bins):
        n = int(counts[b])
        row = {"lower": float(edges[b]), "upper": float(edges[b + 1]), "count": n,
               "mean_predicted": float(predicted[b] / n) if n else None,
               "observed": float(observed[b] / n) if n else None}
        if n:
            ece += n / len(p) * abs(row["mean_predicted"] - row["observed"])
        table.append(row)
    return (float(ece) if len(p) else float("nan")), table
