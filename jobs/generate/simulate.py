"""Simulate users' behaviour, one chunk of users at a time, fully vectorised.

Each user has stable interests, a time-zone, an activity level and a latent
*focus* category that migrates day by day along the world's transition
structure. Sessions pick a category from a mix of focus, stable interests and
exploration; events inside a session follow a view >> cart > purchase funnel
with short gaps. The latent focus path is the ground truth later evaluation
compares against.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np

from jobs.generate.world import (
    CATEGORIES,
    HOURLY_WEIGHTS,
    ITEMS_PER_CATEGORY,
    TIME_ZONE_OFFSETS_MIN,
    TIME_ZONE_WEIGHTS,
    World,
)

# Session category mix: the migrating focus, two stable interests, exploration.
MIX_FOCUS, MIX_STABLE_1, MIX_STABLE_2 = 0.55, 0.20, 0.10
EVENT_OFF_SESSION_CATEGORY = 0.15  # events in a session that wander to another category
MEAN_EVENT_GAP_S = 45.0
MAX_EVENT_GAP_S = 20 * 60  # inside a session gaps stay below the 30-minute session gap
P_CART, P_PURCHASE, P_FAV = 0.06, 0.015, 0.02
MICROS = 1_000_000
DAY_US = 86_400 * MICROS


@dataclass
class Users:
    """Per-user parameters of one chunk (arrays of length U)."""

    ids: np.ndarray  # global user numbers
    tz_offset_min: np.ndarray
    p_active: np.ndarray
    p_move: np.ndarray
    stable: np.ndarray  # (U, 2) category indexes
    focus: np.ndarray  # (U, D) latent focus category per day


@dataclass
class Events:
    """One chunk's events, sorted by user then time (arrays of length E)."""

    user: np.ndarray  # index into Users
    ts_us: np.ndarray  # UTC epoch microseconds
    category: np.ndarray
    item_rank: np.ndarray
    event_type: np.ndarray  # 0 view, 1 cart, 2 purchase, 3 fav


def simulate_users(rng: np.random.Generator, world: World, ids: np.ndarray, days: list[dt.date]) -> Users:
    n, c = len(ids), len(CATEGORIES)
    tz = rng.choice(TIME_ZONE_OFFSETS_MIN, size=n, p=TIME_ZONE_WEIGHTS / TIME_ZONE_WEIGHTS.sum())
    p_active = rng.beta(2.0, 5.0, n)
    p_move = rng.beta(1.5, 12.0, n)
    stable = np.stack([rng.choice(c, size=n, p=world.popularity) for _ in range(2)], axis=1)
    # Journeys start where migrations start more often than chance.
    start_weights = world.popularity + world.base_transitions.sum(axis=1) / c
    focus = np.empty((n, len(days)), dtype=np.int16)
    current = rng.choice(c, size=n, p=start_weights / start_weights.sum())
    for d, day in enumerate(days):
        cdf = world.transition_cdf(day)
        moves = rng.random(n) < p_move
        drawn = (rng.random(n)[:, None] > cdf[current]).sum(axis=1)
        current = np.where(moves, np.minimum(drawn, c - 1), current)
        focus[:, d] = current
    return Users(ids, tz, p_active, p_move, stable, focus)


def simulate_events(rng: np.random.Generator, world: World, users: Users, days: list[dt.date]) -> Events:
    n, n_days, c = len(users.ids), len(days), len(CATEGORIES)
    active = rng.random((n, n_days)) < users.p_active[:, None]
    sessions_per_day = np.where(active, 1 + rng.poisson(0.6, (n, n_days)), 0).ravel()
    s_user = np.repeat(np.repeat(np.arange(n), n_days), sessions_per_day)
    s_day = np.repeat(np.tile(np.arange(n_days), n), sessions_per_day)
    n_sessions = len(s_user)

    # Session start: local hour from the daily rhythm, then shifted to UTC.
    hour = rng.choice(24, size=n_sessions, p=HOURLY_WEIGHTS / HOURLY_WEIGHTS.sum())
    local_us = (hour * 3600 + rng.integers(0, 3600, n_sessions)) * MICROS
    day0_us = _epoch_us(days[0])
    start_us = day0_us + s_day * DAY_US + local_us - users.tz_offset_min[s_user] * 60 * MICROS

    s_category = _mix_category(rng, world, users, s_user, s_day, n_sessions, c)

    events_per_session = np.minimum(1 + rng.geometric(0.12, n_sessions), 60)
    e_session = np.repeat(np.arange(n_sessions), events_per_session)
    n_events = len(e_session)
    first = np.repeat(np.cumsum(events_per_session) - events_per_session, events_per_session)
    gaps = np.minimum(rng.exponential(MEAN_EVENT_GAP_S, n_events), MAX_EVENT_GAP_S) + 1
    gaps_us = (gaps * MICROS).astype(np.int64)
    elapsed = np.cumsum(gaps_us)
    offsets = elapsed - elapsed[first]  # 0 for a session's first event
    ts_us = start_us[e_session] + offsets

    e_user = s_user[e_session]
    wander = rng.random(n_events) < EVENT_OFF_SESSION_CATEGORY
    category = np.where(
        wander,
        _mix_category(rng, world, users, e_user, s_day[e_session], n_events, c),
        s_category[e_session],
    )
    item_rank = np.minimum(np.searchsorted(world.item_cdf, rng.random(n_events)), ITEMS_PER_CATEGORY - 1)
    u = rng.random(n_events)
    event_type = np.select([u < P_CART, u < P_CART + P_PURCHASE, u < P_CART + P_PURCHASE + P_FAV], [1, 2, 3], 0)
    # A cart or purchase is of the item just viewed, when there is one.
    follows = (event_type > 0) & (np.arange(n_events) > first)
    prev = np.maximum(np.arange(n_events) - 1, 0)
    category = np.where(follows, category[prev], category)
    item_rank = np.where(follows, item_rank[prev], item_rank)

    order = np.lexsort((ts_us, e_user))
    return Events(e_user[order], ts_us[order], category[order].astype(np.int16), item_rank[order], event_type[order].astype(np.int8))


def _mix_category(rng, world, users, user_idx, day_idx, size, c):
    r = rng.random(size)
    explore = rng.choice(c, size=size, p=world.popularity)
    return np.select(
        [r < MIX_FOCUS, r < MIX_FOCUS + MIX_STABLE_1, r < MIX_FOCUS + MIX_STABLE_1 + MIX_STABLE_2],
        [users.focus[user_idx, day_idx], users.stable[user_idx, 0], users.stable[user_idx, 1]],
        explore,
    )


def _epoch_us(day: dt.date) -> int:
    return int(dt.datetime(day.year, day.month, day.day, tzinfo=dt.timezone.utc).timestamp()) * MICROS
