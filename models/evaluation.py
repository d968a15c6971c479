"""Judging a model version as a reviewer and its users would, in NumPy.

Every method is scored on the same users at several rolling test origins;
the model's difference to each other method comes with a paired bootstrap
interval over users (``models.intervals``). Beside the ranking view: the
seeds' classification view (precision, recall, F1, AUC), calibration of both
heads, and the two published products judged against naive alternatives:

- inventory: the forecast of engaged users per category over the horizon (the
  sum of the users' probabilities, as ``category_demand_forecast`` publishes
  it) against what then happened, beside last horizon's count;
- marketing: per category, the users most likely to move into it among those
  who have not engaged with it (as ``marketing_segments`` publishes them), as
  many as the model expects to move, and the share that did; beside a naive
  audience of the same size: the most active users who have not engaged with
  the category.

``jobs/evaluate/main.py`` reads the lake and builds the ``Origin`` arrays.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np

from models.intervals import paired_interval, verdict
from models.metrics import calibration, classification, per_user_ranking
from models.vocabulary import OOV, PAD

REFERENCE = "model"
# The baselines a candidate must beat; the frequencies say nothing about categories a user has not seen, and
# the focus transition ranks only those.
BASELINES = ("popularity", "user_frequency", "recency_frequency", "markov", "shallow")
MIGRATION_BASELINES = ("popularity", "markov", "focus_transition", "shallow")
ALL_USERS_ONLY = ("user_frequency", "recency_frequency")
MIGRATION_ONLY = ("focus_transition",)
RANKING_METRIC, MIGRATION_METRIC = "ndcg@10", "recall@10"


@dataclass
class Origin:
    """One test cutoff: what its users did, and every method's scores for them (columns are vocabulary ids)."""

    cutoff: dt.date
    users: np.ndarray
    relevant: np.ndarray
    seen: np.ndarray
    activity: np.ndarray
    last_horizon_users: np.ndarray
    scores: dict[str, np.ndarray]
    new_probability: np.ndarray
    # Whether the user engaged with a category absent from their window (by name, as the model was trained:
    # several unknown categories share the out-of-vocabulary id).
    has_new: np.ndarray
    # A few users' explanations (models/explain.py), for the report: [{"user_id", "explanation"}].
    examples: list | None = None


def _excluded(origin: Origin, migration: bool) -> np.ndarray:
    out = np.zeros(origin.relevant.shape, bool)
    out[:, [PAD, OOV]] = True
    return out | origin.seen if migration else out


def _methods(origin: Origin, migration: bool) -> list[str]:
    skip = ALL_USERS_ONLY if migration else MIGRATION_ONLY
    return [m for m in origin.scores if m not in skip]


def ranking(origins: list[Origin], methods_compared: dict[str, list[dt.date]] | None = None) -> dict:
    """Per origin and pooled ranking metrics of every method, and the model's paired intervals against each.

    ``methods_compared`` limits a method's comparison to some origins (the
    champion only where it never saw the labels); by default every origin
    where the method has scores. A method and the model are paired on exactly
    the same (origin, user) rows: the users with something relevant at the
    origins both are compared on.
    """
    out: dict = {}
    for subset, migration in (("all", False), ("migration", True)):
        per_origin, rows_of = {}, {}  # rows_of[method][cutoff] = (per-user values, user ids)
        for origin in origins:
            relevant = origin.relevant * (~origin.seen if migration else 1)
            exclude = _excluded(origin, migration)
            rows = {}
            for method in _methods(origin, migration):
                users, per_user = per_user_ranking(origin.scores[method], relevant, exclude)
                rows[method] = {"users": int(users.sum()), **{k: float(v.mean()) if len(v) else float("nan")
                                                               for k, v in per_user.items()}}
                allowed = methods_compared.get(method) if methods_compared else None
                if allowed is None or origin.cutoff in allowed:
                    rows_of.setdefault(method, {})[origin.cutoff] = (per_user, origin.users[users])
            per_origin[str(origin.cutoff)] = rows
        pooled = {m: {k: float(np.concatenate([v[k] for v, _ in by_cutoff.values()]).mean())
                      for k in next(iter(by_cutoff.values()))[0]} for m, by_cutoff in rows_of.items()}
        metric = RANKING_METRIC if not migration else MIGRATION_METRIC
        intervals = {}
        for method, by_cutoff in rows_of.items():
            if method == REFERENCE:
                continue
            shared = [c for c in by_cutoff if c in rows_of[REFERENCE]]
            reference = [rows_of[REFERENCE][c] for c in shared]
            other = [by_cutoff[c] for c in shared]
            for (_, a), (_, b) in zip(reference, other):
                assert np.array_equal(a, b), "methods must be scored on the same users"
            intervals[method] = paired_interval(
                np.concatenate([v[metric] for v, _ in reference]) if shared else np.zeros(0),
                np.concatenate([v[metric] for v, _ in other]) if shared else np.zeros(0),
                np.concatenate([u for _, u in other]) if shared else np.zeros(0))
            intervals[method]["origins"] = [str(c) for c in shared]
            intervals[method]["verdict"] = verdict(intervals[method])
        out[subset] = {"per_origin": per_origin, "pooled": pooled, "metric": metric, "intervals": intervals}
    return out


def classification_views(origins: list[Origin], threshold: float = 0.5) -> dict:
    """The model's "engages with c within H" and "moves into a new category" as binary classifiers."""
    ranked = ~_excluded(origins[0], False)[0]
    p = np.concatenate([o.scores[REFERENCE][:, ranked].ravel() for o in origins])
    y = np.concatenate([(o.relevant[:, ranked] > 0).ravel() for o in origins])
    new_p = np.concatenate([o.new_probability for o in origins])
    new_y = np.concatenate([o.has_new for o in origins]).astype(bool)
    return {"category": classification(p, y, threshold), "new_category": classification(new_p, new_y, threshold),
            "calibration": {"category": calibration(p, y), "new_category": calibration(new_p, new_y)}}


def inventory_forecast(origins: list[Origin], method: str = REFERENCE) -> dict:
    """MAE, RMSE and WAPE over categories of expected engaged users, against last horizon's count."""
    out = {}
    for origin in origins:
        ranked = ~_excluded(origin, False)[0]
        actual = (origin.relevant[:, ranked] > 0).sum(axis=0).astype(float)
        forecasts = {method: origin.scores[method][:, ranked].sum(axis=0),
                     "last_horizon": origin.last_horizon_users[ranked].astype(float)}
        out[str(origin.cutoff)] = {name: _errors(f, actual) for name, f in forecasts.items()}
    return out


def _errors(forecast: np.ndarray, actual: np.ndarray) -> dict[str, float]:
    error = forecast - actual
    return {"mae": float(np.abs(error).mean()), "rmse": float(np.sqrt((error ** 2).mean())),
            "wape": float(np.abs(error).sum() / max(actual.sum(), 1.0)), "categories": int(len(actual))}


def marketing_segments(origins: list[Origin], max_segment: int = 10_000, method: str = REFERENCE) -> dict:
    """Share of each category's audience that moved into it: the model's top users against the most active."""
    out = {}
    for origin in origins:
        totals = {"audience": 0, "model_hits": 0, "naive_hits": 0, "candidates": 0, "candidate_hits": 0,
                  "segments": 0}
        relevant = origin.relevant > 0
        for column in range(2, relevant.shape[1]):
            candidates = np.flatnonzero(~origin.seen[:, column])
            if not len(candidates):
                continue
            p = origin.scores[method][candidates, column]
            size = int(min(round(float(p.sum())), max_segment, len(candidates)))
            totals["candidates"] += len(candidates)
            totals["candidate_hits"] += int(relevant[candidates, column].sum())
            if size == 0:
                continue
            chosen = candidates[np.argsort(-p, kind="stable")[:size]]
            naive = candidates[np.argsort(-origin.activity[candidates], kind="stable")[:size]]
            totals["segments"] += 1
            totals["audience"] += size
            totals["model_hits"] += int(relevant[chosen, column].sum())
            totals["naive_hits"] += int(relevant[naive, column].sum())
        audience = max(totals["audience"], 1)
        out[str(origin.cutoff)] = {
            **totals, "model_share": totals["model_hits"] / audience, "naive_share": totals["naive_hits"] / audience,
            "base_rate": totals["candidate_hits"] / max(totals["candidates"], 1)}
    return out
