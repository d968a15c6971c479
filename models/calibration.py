"""Platt scaling of a sigmoid head: p' = sigmoid(a * logit(p) + b), fitted on the validation cutoff.

Why: a network trained with early stopping on ranking quality is not
calibrated (with few sequences it is over- or under-confident), and both
published products read the probabilities as probabilities: the demand
forecast sums them, and the marketing segments' threshold compares them. Two
numbers per head, fitted by Newton's method on validation cells (never on a
test cutoff), and applied by ``models.predict`` to every prediction.
"""
from __future__ import annotations

import numpy as np

IDENTITY = (1.0, 0.0)
MAX_CELLS = 1_000_000
_EPS = 1e-6


def logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=np.float64), _EPS, 1 - _EPS)
    return np.log(p) - np.log1p(-p)


def fit_platt(probabilities: np.ndarray, labels: np.ndarray, seed: int = 0, iterations: int = 50) -> tuple[float, float]:
    """(a, b) minimising the log loss of sigmoid(a * logit(p) + b) on a sample of at most MAX_CELLS cells."""
    x, y = logit(probabilities).ravel(), (np.asarray(labels).ravel() > 0).astype(np.float64)
    if len(x) > MAX_CELLS:
        keep = np.random.default_rng(seed).choice(len(x), MAX_CELLS, replace=False)
        x, y = x[keep], y[keep]
    if not len(x) or y.min() == y.max():
        return IDENTITY
    features = np.stack([x, np.ones_like(x)], axis=1)
    weights = np.array(IDENTITY)
    loss = _log_loss(features, y, weights)
    for _ in range(iterations):
        p = 1 / (1 + np.exp(-(features @ weights)))
        gradient = features.T @ (p - y) + 1e-6 * weights
        hessian = (features * (p * (1 - p))[:, None]).T @ features + 1e-6 * np.eye(2)
        step = np.linalg.solve(hessian, gradient)
        # Damped: halve the step until the loss does not grow (near-separable data overshoots).
        for _ in range(30):
            candidate = weights - step
            candidate_loss = _log_loss(features, y, candidate)
            if candidate_loss <= loss:
                break
            step = step / 2
        else:
            break
        weights, loss = candidate, candidate_loss
        if np.abs(step).max() < 1e-8:
            break
    # A slope that is not positive would flatten or invert every ranking: keep the model's own probabilities.
    if not np.isfinite(weights).all() or weights[0] <= 0:
        return IDENTITY
    return float(weights[0]), float(weights[1])


def _log_loss(features: np.ndarray, y: np.ndarray, weights: np.ndarray) -> float:
    z = features @ weights
    return float(np.mean(np.logaddexp(0, z) - y * z))


def apply_platt(probabilities: np.ndarray, params: tuple[float, float] | list[float]) -> np.ndarray:
    a, b = params
    if (a, b) == IDENTITY:
        return probabilities
    scaled = 1 / (1 + np.exp(-(a * logit(probabilities) + b)))
    return scaled.astype(np.asarray(probabilities).dtype, copy=False)
