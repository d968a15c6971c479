"""The behaviour-only ceiling on generated data: Bayes' rule with the generator's process, not its users.

``models.oracle``'s two oracles read each user's true parameters from the
ground truth (stable interests, activity and move rates, time zone), so they
know more than any model of behaviour can. This one knows only what is the
same for everybody: the world (category popularity, the day-by-day transition
matrices of the focus) and the process's constants (session mix, wandering,
session sizes), and infers everything about the user from their events:

- (optionally) only the events of the model's history window, so that it sees what the model sees;
- the time zone: the most likely one given the local hours their sessions start at;
- the activity rate: its Beta(2, 5) prior updated by the days they were active (conjugate; its
  posterior mean is used, and it affects every category of a user alike);
- the two stable interests and the move rate, with the latent focus: a posterior over hypotheses
  (stable pair x move rate), each an HMM filter over the focus from the window's first day.
  Stable interests range over the user's ``observed`` most frequent categories and "one they never
  engaged with" (every unseen category has the same likelihood, so the unseen ones are one hypothesis
  whose mass spreads over them by popularity); the move rate over ``move_points`` equal-probability
  points of its Beta(1.5, 12) prior.

The prediction averages ``oracle.engagement_probabilities``' forward pass over
the posterior. Pruned hypotheses (a stable interest among a user's rarer
categories; posterior weights below ``MIN_WEIGHT``) make it an approximation
of the Bayes predictor from below: a method that only sees behaviour (plus the
generator's population-level constants, which enough data would teach) scores
this; the true ceiling is at least as high.
"""
from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np

from jobs.generate.simulate import MIX_FOCUS, MIX_STABLE_1, MIX_STABLE_2
from jobs.generate.world import CATEGORIES, HOURLY_WEIGHTS, TIME_ZONE_OFFSETS_MIN, TIME_ZONE_WEIGHTS, build_world
from models import oracle

MIN_WEIGHT = 1e-3
P_ACTIVE_PRIOR = (2.0, 5.0)
P_MOVE_PRIOR = (1.5, 12.0)


def engagement_probabilities(truth: Path, user_ids: list[str], events, cutoff: dt.date, horizon_days: int,
                             history_days: int | None = None, observed: int = 5, move_points: int = 5) -> np.ndarray:
    """(users, categories) P(engage within the horizon | the user's events before ``cutoff``), ``CATEGORIES`` order.

    ``events``: an Arrow table of user_id, session_id, event_ts, category, event_type, every event of these
    users before the cutoff since the generator's first day. ``history_days``: see only the events of that many
    days before the cutoff, as the model does (its sequences' ``history_days``); the focus on the window's first
    day then has the generator's starting distribution.
    """
    world_json = json.loads((truth / "world.json").read_text())
    world = build_world(world_json["seed"])
    first_day = dt.date.fromisoformat(world_json["days"][0])
    if history_days is not None and cutoff - dt.timedelta(days=history_days) > first_day:
        import pyarrow as pa
        import pyarrow.compute as pc

        first_day = cutoff - dt.timedelta(days=history_days)
        start = pa.scalar(dt.datetime.combine(first_day, dt.time(), dt.timezone.utc), events["event_ts"].type)
        events = events.filter(pc.greater_equal(events["event_ts"], start))
    n_days, n, c = (cutoff - first_day).days, len(user_ids), len(CATEGORIES)
    sessions = oracle.kept_events(events, user_ids)
    tz = _likeliest_time_zones(sessions, n)
    pairs = oracle.session_pairs(sessions.user, sessions.session, sessions.category, sessions.start_us, tz,
                                 first_day, n_days)
    active_days = np.zeros(n)
    if len(pairs.owner):
        days = np.unique(np.stack([pairs.owner, pairs.owner_day]), axis=1)
        np.add.at(active_days, days[0], 1)
    p_active = (P_ACTIVE_PRIOR[0] + active_days) / (sum(P_ACTIVE_PRIOR) + max(n_days, 0))
    counts = np.zeros((n, c))
    np.add.at(counts, (sessions.user, sessions.category), 1)
    candidates = _candidates(counts, observed)
    unseen_mass = np.clip(1 - (world.popularity[None, :] * (counts > 0)).sum(axis=1), 1e-12, None)
    moves = _beta_points(*P_MOVE_PRIOR, move_points)
    steps = [oracle.transitions(world, first_day + dt.timedelta(days=d)) for d in range(n_days)]
    start = oracle.starting_focus(world)
    hypotheses = [(i, j) for i in range(observed + 1) for j in range(observed + 1)]
    # Pass 1: each hypothesis' evidence, for every user it is possible for (all move rates at once).
    log_weight = np.full((len(hypotheses), len(moves), n), -np.inf)
    for h, (i, j) in enumerate(hypotheses):
        base, log_prior = _hypothesis(world.popularity, counts, candidates, unseen_mass, i, j)
        rows = np.flatnonzero(np.isfinite(log_prior))
        if not len(rows):
            continue
        log_likelihood = oracle.pairs_log_likelihood(_rows_of(pairs, rows, n), base[rows], len(rows), n_days)
        _, evidence = oracle.focus_filter(steps, start, np.tile(log_likelihood, (len(moves), 1, 1)), np.repeat(moves, len(rows)))
        log_weight[h][:, rows] = log_prior[rows][None, :] + evidence.reshape(len(moves), len(rows))
    log_weight -= np.logaddexp.reduce(log_weight.reshape(-1, n), axis=0)[None, None, :]
    weight = np.exp(log_weight)
    weight[weight < MIN_WEIGHT] = 0
    weight /= weight.sum(axis=(0, 1), keepdims=True)
    # Pass 2: the focus belief and the forward pass for the (user, hypothesis) pairs that carry weight.
    result = np.zeros((n, c))
    for h, (i, j) in enumerate(hypotheses):
        users, points = np.nonzero(weight[h].T)
        if not len(users):
            continue
        base, _ = _hypothesis(world.popularity, counts, candidates, unseen_mass, i, j)
        distinct = np.unique(users)
        log_likelihood = oracle.pairs_log_likelihood(_rows_of(pairs, distinct, n), base[distinct], len(distinct), n_days)
        local = np.searchsorted(distinct, users)
        belief, _ = oracle.focus_filter(steps, start, log_likelihood[local], moves[points])
        probabilities = oracle.forward_engagement(world, base[users], p_active[users], moves[points], belief,
                                                  cutoff, horizon_days)
        np.add.at(result, users, weight[h, points, users][:, None] * probabilities)
    return result


def _rows_of(pairs: "oracle.SessionPairs", rows: np.ndarray, n: int) -> "oracle.SessionPairs":
    """``pairs`` of the users ``rows`` (sorted), renumbered 0..len(rows)-1."""
    if len(rows) == n:
        return pairs
    position = np.full(n, -1)
    position[rows] = np.arange(len(rows))
    sessions = np.repeat(np.arange(len(pairs.starts)), np.diff(np.r_[pairs.starts, len(pairs.owner)]))
    keep = position[pairs.owner] >= 0
    kept_sessions = sessions[keep]
    starts = np.flatnonzero(np.r_[True, kept_sessions[1:] != kept_sessions[:-1]]) if keep.any() else np.zeros(0, np.int64)
    return oracle.SessionPairs(position[pairs.owner[keep]], pairs.owner_day[keep], pairs.category[keep],
                               pairs.count[keep], starts)


def _likeliest_time_zones(sessions: "oracle.KeptEvents", n: int) -> np.ndarray:
    """(users,) each user's most likely UTC offset (minutes) from the local start hours of their sessions."""
    prior = np.log(TIME_ZONE_WEIGHTS / TIME_ZONE_WEIGHTS.sum())
    hourly = np.log(HOURLY_WEIGHTS / HOURLY_WEIGHTS.sum())
    first = np.r_[True, sessions.session[1:] != sessions.session[:-1]] if len(sessions.session) else np.zeros(0, bool)
    user, start = sessions.user[first], sessions.start_us[first]
    score = np.repeat(prior[None, :], n, 0)
    for z, offset in enumerate(TIME_ZONE_OFFSETS_MIN):
        hour = ((start + int(offset) * 60_000_000) // 3_600_000_000) % 24
        np.add.at(score[:, z], user, hourly[hour])
    return TIME_ZONE_OFFSETS_MIN[score.argmax(axis=1)]


def _candidates(counts: np.ndarray, observed: int) -> np.ndarray:
    """(users, observed) each user's most frequent categories, -1 where they have fewer."""
    order = np.argsort(-counts, axis=1, kind="stable")[:, :observed]
    return np.where(np.take_along_axis(counts, order, axis=1) > 0, order, -1)


def _hypothesis(popularity, counts, candidates, unseen_mass, i: int, j: int) -> tuple[np.ndarray, np.ndarray]:
    """Base mix (users, categories) and log prior (users,) of the stable pair (candidate i, candidate j);
    index ``observed`` stands for an unseen category. A pair naming a missing candidate has prior 0."""
    n, c = counts.shape
    unseen = np.where(counts > 0, 0.0, popularity[None, :]) / unseen_mass[:, None]
    base = (1 - MIX_FOCUS - MIX_STABLE_1 - MIX_STABLE_2) * np.repeat(popularity[None, :], n, 0)
    log_prior = np.zeros(n)
    for index, share in ((i, MIX_STABLE_1), (j, MIX_STABLE_2)):
        if index == candidates.shape[1]:
            base += share * unseen
            log_prior += np.log(unseen_mass)
        else:
            category = candidates[:, index]
            present = category >= 0
            base[np.flatnonzero(present), category[present]] += share
            log_prior += np.where(present, np.log(popularity[np.maximum(category, 0)]), -np.inf)
    return base, log_prior


def _beta_points(a: float, b: float, points: int) -> np.ndarray:
    """Equal-probability points of Beta(a, b): the medians of ``points`` equal-mass slices."""
    from scipy.stats import beta

    return beta.ppf((np.arange(points) + 0.5) / points, a, b)
