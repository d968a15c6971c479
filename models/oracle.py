"""The oracle ceiling on generated data: rankings from the generator's ground truth.

The generator records every user's latent focus path and parameters
(``<lake>/ground_truth``). Knowing the focus on the day before the cutoff, the
oracle computes, per category, the probability that the user engages with it
within the horizon under the generator's own process (an HMM forward pass
over the focus chain: each day the focus moves with the user's p_move along
that day's transition matrix; an active day has 1 + Poisson(0.6) sessions of
2+ events drawn from the focus / stable / exploration mix). It ignores a few
small effects (time-zone shifts across the UTC day boundary, carts copying
the previous category, the event-count cap, dropped malformed rows), so it is
the ceiling of any model that only sees behaviour, up to those.
"""
from __future__ import annotations

import datetime as dt
import gzip
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from jobs.generate.simulate import EVENT_OFF_SESSION_CATEGORY, MIX_FOCUS, MIX_STABLE_1, MIX_STABLE_2
from jobs.generate.world import CATEGORIES, build_world

MEAN_EXTRA_SESSIONS = 0.6  # sessions per active day: 1 + Poisson(0.6)
SESSION_GEOMETRIC_P = 0.12  # events per session: 1 + Geometric(0.12)


def available(truth: Path) -> bool:
    return (truth / "world.json").exists() and (truth / "latent_focus").exists()


def _load_users(truth: Path, user_ids: list[str], day: dt.date) -> dict[str, np.ndarray]:
    index = {c: i for i, c in enumerate(CATEGORIES)}
    wanted = {u: i for i, u in enumerate(user_ids)}
    n = len(user_ids)
    p_active, p_move, tz = np.full(n, np.nan), np.zeros(n), np.zeros(n, dtype=np.int64)
    stable, focus = np.zeros((n, 2), dtype=int), np.full(n, -1)
    for part in sorted((truth / "users").glob("part-*.csv")):
        for line in part.read_text().splitlines()[1:]:
            user, offset, active, move, s1, s2 = line.split(",")
            if user in wanted:
                i = wanted[user]
                p_active[i], p_move[i], stable[i] = float(active), float(move), (index[s1], index[s2])
                tz[i] = int(offset)
    key = day.isoformat()
    for part in sorted((truth / "latent_focus").glob("part-*.csv.gz")):
        with gzip.open(part, "rt") as lines:
            for line in lines:
                user, date, category = line.rstrip("\n").split(",")
                if date == key and user in wanted:
                    focus[wanted[user]] = index[category]
    return {"p_active": p_active, "p_move": p_move, "stable": stable, "focus": focus, "tz_offset_min": tz}


def engagement_probabilities(truth: Path, user_ids: list[str], cutoff: dt.date, horizon_days: int,
                             focus_belief: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(users, categories) P(engage within the horizon) in ``CATEGORIES`` order, and a mask of users known to the truth.

    By default the focus on the day before the cutoff is the true one;
    ``focus_belief`` (users, categories) replaces it with a distribution, such
    as ``filtered_focus``'s.
    """
    world_json = json.loads((truth / "world.json").read_text())
    world = build_world(world_json["seed"])
    users = _load_users(truth, user_ids, cutoff - dt.timedelta(days=1))
    known = (users["focus"] >= 0) & ~np.isnan(users["p_active"])
    if focus_belief is not None:
        known &= np.isfinite(focus_belief).all(axis=1)
    n, c = len(user_ids), len(CATEGORIES)
    result = np.zeros((n, c))
    if not known.any():
        return result, known
    idx = np.flatnonzero(known)
    if focus_belief is None:
        belief = np.eye(c)[users["focus"][idx]]
    else:
        belief = focus_belief[idx]
    result[idx] = forward_engagement(world, _base_mix(world, users["stable"][idx]), users["p_active"][idx],
                                     users["p_move"][idx], belief, cutoff, horizon_days)
    return result, known


def forward_engagement(world, base: np.ndarray, p_active: np.ndarray, p_move: np.ndarray, belief: np.ndarray,
                       cutoff: dt.date, horizon_days: int) -> np.ndarray:
    """(users, categories) P(engage within the horizon) given each user's base mix (``_base_mix``), activity and
    move rates, and belief about the focus on the day before the cutoff: an HMM forward pass per target category."""
    m, c = belief.shape
    # mix[u, g, :]: the session-category distribution of user u when the focus is g.
    mix = base[:, None, :] + MIX_FOCUS * np.eye(c)[None, :, :]  # (m, g, c)
    wander = EVENT_OFF_SESSION_CATEGORY
    # P(no event of c in one session | focus g), summed over the session's own category s.
    own_miss = wander * (1 - mix)                 # s == c: only wandering events could hit c, and miss
    other_miss = 1 - wander * mix                 # s != c: a wandering event hits c with prob. mix_c
    session_none = mix * _pgf_events(own_miss) + (1 - mix) * _pgf_events(other_miss)
    day_none = (1 - p_active)[:, None, None] + p_active[:, None, None] * session_none * np.exp(
        MEAN_EXTRA_SESSIONS * (session_none - 1))  # (m, g, c)
    alpha = np.repeat(belief[:, None, :], c, axis=1)  # (user, target c, focus g): P(focus = g, no c yet)
    for d in range(horizon_days):
        moved = alpha @ transitions(world, cutoff + dt.timedelta(days=d))  # (m, c, g)
        alpha = (1 - p_move)[:, None, None] * alpha + p_move[:, None, None] * moved
        alpha = alpha * np.transpose(day_none, (0, 2, 1))  # day_none[u, g, c] -> [u, c, g]
    return 1.0 - alpha.sum(axis=2)


def filtered_focus(truth: Path, user_ids: list[str], events, cutoff: dt.date) -> np.ndarray:
    """(users, categories) P(focus on the day before ``cutoff`` | the user's observed events), by an HMM filter.

    The behaviour-only ceiling: the exact Bayesian posterior of the latent
    focus given every event the user made since the generator's first day
    (``events``: an Arrow table of user_id, session_id, event_ts, category,
    event_type before the cutoff), computed with the generator's own
    parameters (the user's p_move, stable interests, time-zone; the world's
    transitions and session mix). No model that learns from behaviour can
    know more about the focus, so feeding this belief to
    ``engagement_probabilities`` gives what such a model could reach at best
    (up to the small effects listed in the module docstring), where the
    true-focus oracle is a looser ceiling. Rows of unknown users are NaN.

    A session of categories e_1..e_n has, given focus g and session category
    s ~ mix_g, likelihood prod_i (0.85 [e_i = s] + 0.15 mix_g[e_i]) (0.15 of
    events wander); summed over s in closed form per distinct category. Carts,
    purchases and favourites that repeat the previous event's category copy
    that event and carry no information of their own.
    """
    world_json = json.loads((truth / "world.json").read_text())
    world = build_world(world_json["seed"])
    first_day = dt.date.fromisoformat(world_json["days"][0])
    n_days = (cutoff - first_day).days
    users = _load_users(truth, user_ids, cutoff - dt.timedelta(days=1))
    n, c = len(user_ids), len(CATEGORIES)
    belief = np.full((n, c), np.nan)
    if n_days < 1:
        return belief
    known = ~np.isnan(users["p_active"])
    log_likelihood = _daily_log_likelihood(events, user_ids, users["tz_offset_min"], _base_mix(world, users["stable"]),
                                           first_day, n_days)
    steps = [transitions(world, first_day + dt.timedelta(days=d)) for d in range(n_days)]
    current, _ = focus_filter(steps, starting_focus(world), log_likelihood, users["p_move"])
    belief[known] = current[known]
    return belief


def starting_focus(world) -> np.ndarray:
    """(categories,) the focus distribution on the generator's first day: journeys start where migrations do."""
    start = world.popularity + world.base_transitions.sum(axis=1) / len(world.popularity)
    return start / start.sum()


def focus_filter(steps: list[np.ndarray], start: np.ndarray, log_likelihood: np.ndarray,
                 p_move: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """HMM filter over the focus: P(focus on the last day | events) (rows, categories) and log P(events) (rows,).

    ``steps``: each day's move matrix; ``log_likelihood`` (rows, days, focus) of each row's daily sessions;
    ``p_move`` (rows,) each row's move rate.
    """
    rows = len(log_likelihood)
    current = np.repeat(start[None, :], rows, 0)
    evidence = np.zeros(rows)
    p_move = np.asarray(p_move)[:, None]
    for d, step in enumerate(steps):
        current = (1 - p_move) * current + p_move * (current @ step)
        day = log_likelihood[:, d, :]
        top = day.max(axis=1, keepdims=True)
        current = current * np.exp(day - top)
        total = current.sum(axis=1, keepdims=True)
        evidence += np.log(total[:, 0]) + top[:, 0]
        current /= total
    return current, evidence


def _base_mix(world, stable: np.ndarray) -> np.ndarray:
    """(users, categories) session-category distribution without the focus's share: stable interests and exploration."""
    n = len(stable)
    base = (1 - MIX_FOCUS - MIX_STABLE_1 - MIX_STABLE_2) * np.repeat(world.popularity[None, :], n, 0)
    base[np.arange(n), stable[:, 0]] += MIX_STABLE_1
    base[np.arange(n), stable[:, 1]] += MIX_STABLE_2
    return base


def transitions(world, day: dt.date) -> np.ndarray:
    """(from, to) probabilities of a focus move on ``day``, from the world's cumulative rows."""
    cdf = world.transition_cdf(day)
    return np.diff(np.concatenate([np.zeros((len(cdf), 1)), cdf], axis=1), axis=1)


def _daily_log_likelihood(events, user_ids: list[str], tz_offset_min: np.ndarray, base: np.ndarray,
                          first_day: dt.date, n_days: int) -> np.ndarray:
    """(users, days, focus) log P(that local day's sessions | focus), 0 on days without events."""
    kept = kept_events(events, user_ids)
    pairs = session_pairs(kept.user, kept.session, kept.category, kept.start_us, tz_offset_min, first_day, n_days)
    return pairs_log_likelihood(pairs, base, len(user_ids), n_days)


@dataclass(frozen=True)
class KeptEvents:
    """The events that carry information, in (user, session, time) order: their user (index into the ids),
    session number, category (index into ``CATEGORIES``) and their session's first event's time (UTC us)."""
    user: np.ndarray
    session: np.ndarray
    category: np.ndarray
    start_us: np.ndarray


def kept_events(events, user_ids: list[str]) -> KeptEvents:
    """``events`` (Arrow: user_id, session_id, event_ts, category, event_type) of ``user_ids``, without the
    carts, purchases and favourites that repeat the previous event's category in a session (they copy that
    event and carry no information of their own) and rows of other users or unknown categories."""
    import pyarrow as pa
    import pyarrow.compute as pc

    table = events.select(["user_id", "session_id", "event_ts", "category", "event_type"]).sort_by(
        [("user_id", "ascending"), ("session_id", "ascending"), ("event_ts", "ascending")])
    user = pc.index_in(table["user_id"], value_set=pa.array(user_ids)).to_numpy(zero_copy_only=False)
    category = pc.index_in(table["category"], value_set=pa.array(CATEGORIES)).to_numpy(zero_copy_only=False)
    session = pc.dictionary_encode(table["session_id"]).combine_chunks().indices.to_numpy(zero_copy_only=False)
    ts_us = pc.cast(table["event_ts"], pa.timestamp("us")).cast(pa.int64()).to_numpy(zero_copy_only=False)
    is_view = pc.equal(table["event_type"], "view").to_numpy(zero_copy_only=False)
    user = np.nan_to_num(user.astype(float), nan=-1).astype(np.int64)
    category = np.nan_to_num(category.astype(float), nan=-1).astype(np.int64)
    session = session.astype(np.int64)
    same_session = np.r_[False, session[1:] == session[:-1]] if len(session) else np.zeros(0, bool)
    copies = ~is_view & same_session & np.r_[False, category[1:] == category[:-1]]
    starts = np.maximum.accumulate(np.where(~same_session, np.arange(len(ts_us)), 0)) if len(ts_us) else ts_us
    keep = (user >= 0) & (category >= 0) & ~copies
    return KeptEvents(user[keep], session[keep], category[keep], ts_us[starts][keep])


@dataclass(frozen=True)
class SessionPairs:
    """One row per (session, category) of the sessions inside the days: the category's event count in the
    session, and the session's user and local day; ``starts`` indexes each session's first row."""
    owner: np.ndarray
    owner_day: np.ndarray
    category: np.ndarray
    count: np.ndarray
    starts: np.ndarray


def session_pairs(user: np.ndarray, session: np.ndarray, category: np.ndarray, start_us: np.ndarray,
                  tz_offset_min: np.ndarray, first_day: dt.date, n_days: int) -> SessionPairs:
    """Kept events (user, session, category, their session's start) grouped per (session, category), each session
    on the local day it started in (``tz_offset_min`` per user)."""
    empty = np.zeros(0, np.int64)
    if not len(user):
        return SessionPairs(empty, empty, empty, empty, empty)
    local_day = (start_us + tz_offset_min[user] * 60_000_000) // 86_400_000_000
    day = local_day - (dt.datetime(first_day.year, first_day.month, first_day.day,
                                   tzinfo=dt.timezone.utc).timestamp() * 1_000_000) // 86_400_000_000
    keep = (day >= 0) & (day < n_days)
    user, category, session, day = user[keep], category[keep], session[keep], day[keep].astype(np.int64)
    if not len(user):
        return SessionPairs(empty, empty, empty, empty, empty)
    pairs, counts = np.unique(np.stack([session, category]), axis=1, return_counts=True)
    pair_session, pair_category = pairs
    session_user = np.zeros(session.max() + 1, dtype=np.int64)
    session_day = np.zeros(session.max() + 1, dtype=np.int64)
    session_user[session], session_day[session] = user, day
    starts = np.r_[0, np.flatnonzero(np.diff(pair_session)) + 1]
    return SessionPairs(session_user[pair_session], session_day[pair_session], pair_category, counts, starts)


def pairs_log_likelihood(pairs: SessionPairs, base: np.ndarray, n: int, n_days: int) -> np.ndarray:
    """(users, days, focus) log P(that local day's sessions | focus) under each user's base mix; 0 on days
    without events.

    A session of categories e_1..e_n has, given focus g and session category
    s ~ mix_g, likelihood prod_i (0.85 [e_i = s] + 0.15 mix_g[e_i]); summed over s in closed form.
    """
    c = base.shape[1]
    out = np.zeros((n, n_days, c))
    if not len(pairs.owner):
        return out
    owner, counts, starts = pairs.owner, pairs.count, pairs.starts
    # mix_g[s] = base[u, s] + MIX_FOCUS [g == s], for every row and focus g.
    m = base[owner, pairs.category][:, None] + MIX_FOCUS * (pairs.category[:, None] == np.arange(c)[None, :])
    wander = EVENT_OFF_SESSION_CATEGORY
    log_wander = counts[:, None] * np.log(wander * m)             # contribution to A_g
    boost = np.log(m) + counts[:, None] * np.log1p((1 - wander) / (wander * m))  # log m_s + n_s r_s
    a = np.add.reduceat(log_wander, starts, axis=0)
    mass = np.add.reduceat(m, starts, axis=0)                      # M_g: the session's categories' mix mass
    top = np.maximum.reduceat(boost, starts, axis=0)
    rest = np.log(np.clip(1 - mass, 1e-300, None))
    top = np.maximum(top, rest)
    total = np.add.reduceat(np.exp(boost - np.repeat(top, np.diff(np.r_[starts, len(boost)]), axis=0)), starts, axis=0)
    session_ll = a + top + np.log(total + np.exp(rest - top))
    np.add.at(out, (owner[starts], pairs.owner_day[starts]), session_ll)
    return out


def _pgf_events(r: np.ndarray) -> np.ndarray:
    """E[r^n] for n = 1 + Geometric(p) events (support 2, 3, ...): r * p r / (1 - (1 - p) r)."""
    p = SESSION_GEOMETRIC_P
    return r * (p * r) / (1 - (1 - p) * r)
