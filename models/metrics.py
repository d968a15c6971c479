"""Ranking and calibration metrics, in NumPy, over (users, categories) matrices.

Conventions: ``relevant`` is a 0/1 matrix of what each user actually engaged
with (it may include columns no method can rank, such as the out-of-vocabulary
bucket: they still count in the denominator of recall). Columns in
``exclude`` are never ranked (padding, OOV, and for the migration subset the
categories already in the user's history). Users with nothing relevant are
left out of the ranking metrics, as usual.
"""
from __future__ import annotations

import numpy as np

KS = (1, 5, 10)


def ranking_metrics(scores: np.ndarray, relevant: np.ndarray, exclude: np.ndarray | None = None,
                    ks: tuple[int, ...] = KS) -> dict[str, float]:
    """Recall@K, NDCG@K and HR@K averaged over users with at least one relevant category."""
    relevant = relevant > 0
    users = relevant.sum(axis=1) > 0
    if not users.any():
        return {"users": 0, **{f"{m}@{k}": float("nan") for k in ks for m in ("recall", "ndcg", "hr")}}
    scores = np.where(exclude, -np.inf, scores) if exclude is not None else scores
    scores, relevant = scores[users], relevant[users]
    rankable = relevant & np.isfinite(scores)
    top = np.argsort(-scores, axis=1, kind="stable")[:, : max(ks)]
    hits = np.take_along_axis(rankable, top, axis=1).astype(float)
    n_relevant = relevant.sum(axis=1)
    discounts = 1.0 / np.log2(np.arange(2, max(ks) + 2))
    out: dict[str, float] = {"users": int(users.sum())}
    for k in ks:
        ideal = np.cumsum(discounts)[np.minimum(n_relevant, k) - 1]
        out[f"recall@{k}"] = float((hits[:, :k].sum(axis=1) / n_relevant).mean())
        out[f"ndcg@{k}"] = float(((hits[:, :k] * discounts[:k]).sum(axis=1) / ideal).mean())
        out[f"hr@{k}"] = float((hits[:, :k].sum(axis=1) > 0).mean())
    return out


def calibration(probabilities: np.ndarray, labels: np.ndarray, bins: int = 10) -> dict:
    """Expected calibration error (equal-width bins, weighted by count), Brier score and the reliability table."""
    p = np.asarray(probabilities, dtype=float).ravel()
    y = np.asarray(labels, dtype=float).ravel()
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(p, edges[1:-1]), 0, bins - 1)
    table, ece = [], 0.0
    for b in range(bins):
        inside = which == b
        n = int(inside.sum())
        row = {"lower": float(edges[b]), "upper": float(edges[b + 1]), "count": n,
               "mean_predicted": float(p[inside].mean()) if n else None,
               "observed": float(y[inside].mean()) if n else None}
        if n:
            ece += n / len(p) * abs(row["mean_predicted"] - row["observed"])
        table.append(row)
    return {"ece": float(ece), "brier": float(np.mean((p - y) ** 2)), "count": int(len(p)), "reliability": table}
