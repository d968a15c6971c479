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
    p_active, p_move = np.full(n, np.nan), np.zeros(n)
    stable, focus = np.zeros((n, 2), dtype=int), np.full(n, -1)
    for part in sorted((truth / "users").glob("part-*.csv")):
        for line in part.read_text().splitlines()[1:]:
            user, _, active, move, s1, s2 = line.split(",")
            if user in wanted:
                i = wanted[user]
                p_active[i], p_move[i], stable[i] = float(active), float(move), (index[s1], index[s2])
    key = day.isoformat()
    for part in sorted((truth / "latent_focus").glob("part-*.csv.gz")):
        with gzip.open(part, "rt") as lines:
            for line in lines:
                user, date, category = line.rstrip("\n").split(",")
                if date == key and user in wanted:
                    focus[wanted[user]] = index[category]
    return {"p_active": p_active, "p_move": p_move, "stable": stable, "focus": focus}


def engagement_probabilities(truth: Path, user_ids: list[str], cutoff: dt.date, horizon_days: int) -> tuple[np.ndarray, np.ndarray]:
    """(users, categories) P(engage within the horizon) in ``CATEGORIES`` order, and a mask of users known to the truth."""
    world_json = json.loads((truth / "world.json").read_text())
    world = build_world(world_json["seed"])
    users = _load_users(truth, user_ids, cutoff - dt.timedelta(days=1))
    known = (users["focus"] >= 0) & ~np.isnan(users["p_active"])
    n, c = len(user_ids), len(CATEGORIES)
    result = np.zeros((n, c))
    if not known.any():
        return result, known
    idx = np.flatnonzero(known)
    p_active, p_move, stable = users["p_active"][idx], users["p_move"][idx], users["stable"][idx]
    m = len(idx)
    # mix[u, g, :]: the session-category distribution of user u when the focus is g.
    base_mix = (1 - MIX_FOCUS - MIX_STABLE_1 - MIX_STABLE_2) * world.popularity[None, :].repeat(m, 0)
    base_mix[np.arange(m), stable[:, 0]] += MIX_STABLE_1
    base_mix[np.arange(m), stable[:, 1]] += MIX_STABLE_2
    mix = base_mix[:, None, :] + MIX_FOCUS * np.eye(c)[None, :, :]  # (m, g, c)
    wander = EVENT_OFF_SESSION_CATEGORY
    # P(no event of c in one session | focus g), summed over the session's own category s.
    own_miss = wander * (1 - mix)                 # s == c: only wandering events could hit c, and miss
    other_miss = 1 - wander * mix                 # s != c: a wandering event hits c with prob. mix_c
    session_none = mix * _pgf_events(own_miss) + (1 - mix) * _pgf_events(other_miss)
    day_none = (1 - p_active)[:, None, None] + p_active[:, None, None] * session_none * np.exp(
        MEAN_EXTRA_SESSIONS * (session_none - 1))  # (m, g, c)
    alpha = np.zeros((m, c, c))  # (user, target c, focus g): P(focus = g, no c yet)
    alpha[np.arange(m), :, users["focus"][idx]] = 1.0
    for d in range(horizon_days):
        cdf = world.transition_cdf(cutoff + dt.timedelta(days=d))
        step = np.diff(np.concatenate([np.zeros((c, 1)), cdf], axis=1), axis=1)
        moved = alpha @ step  # (m, c, g)
        alpha = (1 - p_move)[:, None, None] * alpha + p_move[:, None, None] * moved
        alpha = alpha * np.transpose(day_none, (0, 2, 1))  # day_none[u, g, c] -> [u, c, g]
    result[idx] = 1.0 - alpha.sum(axis=2)
    return result, known


def _pgf_events(r: np.ndarray) -> np.ndarray:
    """E[r^n] for n = 1 + Geometric(p) events (support 2, 3, ...): r * p r / (1 - (1 - p) r)."""
    p = SESSION_GEOMETRIC_P
    return r * (p * r) / (1 - (1 - p) * r)
