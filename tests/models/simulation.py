"""The generator's own simulation, written as ``generate`` writes its ground truth, for the oracle tests."""
from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pyarrow as pa

from jobs.generate.main import _write_truth
from jobs.generate.simulate import Events, Users, simulate_events, simulate_users
from jobs.generate.world import CATEGORIES, build_world

EVENT_TYPES = np.array(["view", "cart", "purchase", "fav"])


def simulate(truth: Path, seed: int, users: int, days: list[dt.date]) -> tuple[list[str], Users, Events, pa.Table]:
    """Ground truth under ``truth``; the user ids, their parameters, their events, and the events as the lake
    holds them (a new session where a gap exceeds 30 minutes: generator sessions are 20-minute gaps at most)."""
    world = build_world(seed)
    for folder in ("users", "latent_focus"):
        (truth / folder).mkdir()
    (truth / "world.json").write_text(json.dumps({"days": [d.isoformat() for d in days], "seed": seed}))
    rng = np.random.default_rng(seed)
    simulated = simulate_users(rng, world, np.arange(users), days)
    events = simulate_events(rng, world, simulated, days)
    _write_truth(truth, 0, simulated, days)
    ids = [f"u{u:07d}" for u in range(users)]
    new_session = np.r_[True, (events.user[1:] != events.user[:-1]) | (np.diff(events.ts_us) > 30 * 60 * 1_000_000)]
    table = pa.table({
        "user_id": pa.array(np.array(ids)[events.user]),
        "session_id": pa.array(np.cumsum(new_session).astype(str)),
        "event_ts": pa.array(events.ts_us, pa.timestamp("us", tz="UTC")),
        "category": pa.array(np.array(CATEGORIES)[events.category]),
        "event_type": pa.array(EVENT_TYPES[events.event_type]),
    })
    return ids, simulated, events, table
