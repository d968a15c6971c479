"""Paired bootstrap confidence intervals for "method A minus method B" on the same users.

Why paired and clustered: every method is scored on the same (user, test
origin) rows, so the difference per row removes the users' own variance
(some users are easy for everyone); and a user appears at several rolling
origins whose label windows overlap, so rows of one user are not
independent. The bootstrap therefore resamples users (clusters) with
replacement, each with all of their rows, and recomputes the mean
difference over the resampled rows; the interval is the percentile range.
"""
from __future__ import annotations

import numpy as np

SAMPLES = 1000
CONFIDENCE = 0.95


def paired_interval(a: np.ndarray, b: np.ndarray, clusters: np.ndarray, samples: int = SAMPLES,
                    confidence: float = CONFIDENCE, seed: int = 0) -> dict[str, float]:
    """Mean of ``a - b`` over rows, with a ``confidence`` percentile interval from resampling ``clusters``.

    ``a``, ``b`` and ``clusters`` have one entry per row (for example per
    user and test origin); rows where either value is NaN are left out.
    """
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    keep = ~(np.isnan(a) | np.isnan(b))
    difference = (a - b)[keep]
    _, cluster = np.unique(np.asarray(clusters)[keep], return_inverse=True)
    n = int(cluster.max()) + 1 if len(cluster) else 0
    if n == 0:
        return {"difference": float("nan"), "low": float("nan"), "high": float("nan"), "clusters": 0, "rows": 0}
    sums = np.bincount(cluster, weights=difference, minlength=n)
    counts = np.bincount(cluster, minlength=n).astype(float)
    rng = np.random.default_rng(seed)
    means = np.empty(samples)
    for start in range(0, samples, 100):  # 100 resamples at a time bounds memory at 100 x users indices
        drawn = rng.integers(0, n, size=(min(100, samples - start), n))
        means[start:start + len(drawn)] = sums[drawn].sum(axis=1) / counts[drawn].sum(axis=1)
    tail = (1 - confidence) / 2
    low, high = np.quantile(means, [tail, 1 - tail])
    return {"difference": float(difference.mean()), "low": float(low), "high": float(high),
            "confidence": confidence, "clusters": n, "rows": int(len(difference))}


def verdict(interval: dict[str, float]) -> str:
    """``better`` when the whole interval is above zero, ``worse`` when below, else ``not significant``."""
    if interval["low"] > 0:
        return "better"
    if interval["high"] < 0:
        return "worse"
    return "not significant"
