"""Turn one chunk's simulated events into landing-file lines, faults included.

Lines are JSON objects in the canonical ``events-jsonl`` layout. Event types use
the synonyms real trackers send (``pv``, ``add_to_cart``, ``buy``...), times come
as ISO-8601 in the user's own offset or as epoch seconds/milliseconds.
"""
from __future__ import annotations

import datetime as dt
import json

import numpy as np

from jobs.generate.faults import LINE_FAULTS, FaultRates
from jobs.generate.simulate import DAY_US, MICROS, Events, Users
from jobs.generate.world import CATEGORIES, World, item_id

EVENT_TYPE_SPELLINGS = [
    (["view", "pv", "page_view", "VIEW"], [0.8, 0.1, 0.05, 0.05]),
    (["cart", "add_to_cart"], [0.7, 0.3]),
    (["purchase", "buy", "Purchase"], [0.7, 0.25, 0.05]),
    (["fav", "favourite", "favorite"], [0.6, 0.2, 0.2]),
]
DEVICES = np.array(["ios", "android", "web"])
_MIX64 = 0x9E3779B97F4A7C15


def event_ids(seed: int, chunk: int, count: int, offset: int = 0) -> list[str]:
    """Unique, random-looking, reproducible ids: a bijective mix of (seed, chunk, n)."""
    n = np.arange(offset, offset + count, dtype=np.uint64)
    raw = (np.uint64(chunk) << np.uint64(36)) | n
    mixed = (raw ^ np.uint64(seed & 0xFFFFFFFF)) * np.uint64(_MIX64)
    return [f"{x:016x}" for x in mixed.tolist()]


def render_lines(
    rng: np.random.Generator,
    world: World,
    users: Users,
    events: Events,
    days: list[dt.date],
    seed: int,
    chunk: int,
    faults: FaultRates,
) -> dict[int, list[tuple[int, bytes]]]:
    """Lines per landing day index: ``{day: [(sort_ts_us, line_bytes), ...]}``."""
    day0_us = int(dt.datetime(days[0].year, days[0].month, days[0].day, tzinfo=dt.timezone.utc).timestamp()) * MICROS
    land = (events.ts_us - day0_us) // DAY_US
    keep = (land >= 0) & (land < len(days))
    ev = {k: v[keep] for k, v in vars(events).items()}
    land = land[keep]
    n = len(land)

    late = (rng.random(n) < faults.late) & (land + 1 < len(days))
    land = land + late

    ids = event_ids(seed, chunk, n)
    user_ids = [f"u{u:07d}" for u in users.ids[ev["user"]].tolist()]
    items = (100000 + ev["category"].astype(np.int64) * 1000 + ev["item_rank"]).tolist()
    cats = [CATEGORIES[c] for c in ev["category"].tolist()]
    etypes = _spell_event_types(rng, ev["event_type"])
    times = _render_times(rng, ev["ts_us"], users.tz_offset_min[ev["user"]])
    prices = world.item_prices[ev["category"], ev["item_rank"]].tolist()
    devices = DEVICES[rng.integers(0, 3, n)].tolist()

    template = '{"event_id":"%s","user_id":"%s","item_id":%d,"category":"%s","event_type":"%s","event_time":%s,"price":%.2f,"device":"%s"}'
    lines = [
        (template % row).encode()
        for row in zip(ids, user_ids, items, cats, etypes, times, prices, devices)
    ]

    fault = _draw_line_faults(rng, n, faults)
    for i in np.flatnonzero(fault >= 0).tolist():
        record = {
            "event_id": ids[i], "user_id": user_ids[i], "item_id": items[i], "category": cats[i],
            "event_type": etypes[i], "event_time": json.loads(times[i]), "price": prices[i], "device": devices[i],
        }
        lines[i] = _break(rng, LINE_FAULTS[fault[i]], record, int(ev["ts_us"][i]))

    out: dict[int, list[tuple[int, bytes]]] = {d: [] for d in range(len(days))}
    ts = ev["ts_us"].tolist()
    for i, (d, line) in enumerate(zip(land.tolist(), lines)):
        out[d].append((ts[i], line))

    # At-least-once delivery: exact re-deliveries and replays of the same event_id.
    for i in np.flatnonzero(rng.random(n) < faults.duplicate).tolist():
        out[int(land[i])].append((ts[i] + rng.integers(0, 5 * MICROS), lines[i]))
    for i in np.flatnonzero(rng.random(n) < faults.replay).tolist():
        next_day = rng.random() < 0.5 and land[i] + 1 < len(days)
        arrival_day_end = day0_us + (int(land[i]) + int(next_day) + 1) * DAY_US
        line = lines[i]
        if rng.random() < 0.2 and fault[i] < 0:
            # Some SDKs stamp a resend with the send time: same id, later time
            # (never later than its arrival).
            resent = min(ts[i] + int(rng.integers(60, 36 * 3600)) * MICROS, arrival_day_end - MICROS)
            line = line.replace(b'"event_time":' + times[i].encode(), b'"event_time":' + str(resent // 1000).encode())
        out[int(land[i]) + int(next_day)].append((ts[i] + rng.integers(60, 7200) * MICROS, line))
    return out


def _spell_event_types(rng: np.random.Generator, codes: np.ndarray) -> list[str]:
    spelled = np.empty(len(codes), dtype=object)
    for code, (names, weights) in enumerate(EVENT_TYPE_SPELLINGS):
        mask = codes == code
        spelled[mask] = rng.choice(names, size=int(mask.sum()), p=weights)
    return spelled.tolist()


def _render_times(rng: np.random.Generator, ts_us: np.ndarray, offset_min: np.ndarray) -> list[str]:
    """JSON values for event_time: 85% ISO with the user's offset, then epoch s and ms."""
    local = (ts_us + offset_min.astype(np.int64) * 60 * MICROS).astype("datetime64[us]").astype("datetime64[ms]")
    iso = np.datetime_as_string(local, unit="ms").tolist()
    suffix = [_offset_suffix(m) for m in offset_min.tolist()]
    kind = rng.random(len(ts_us))
    seconds = (ts_us // MICROS).tolist()
    millis = (ts_us // 1000).tolist()
    return [
        f'"{iso[i]}{suffix[i]}"' if k < 0.85 else (str(seconds[i]) if k < 0.95 else str(millis[i]))
        for i, k in enumerate(kind.tolist())
    ]


def _offset_suffix(minutes: int) -> str:
    if minutes == 0:
        return "Z"
    sign = "+" if minutes > 0 else "-"
    return f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def _draw_line_faults(rng: np.random.Generator, n: int, faults: FaultRates) -> np.ndarray:
    """Per event: index into LINE_FAULTS, or -1 for a clean line."""
    rates = np.array([getattr(faults, name) for name in LINE_FAULTS])
    u = rng.random(n)
    edges = np.cumsum(rates)
    code = np.searchsorted(edges, u, side="right")
    return np.where(code < len(LINE_FAULTS), code, -1)


def _break(rng: np.random.Generator, fault: str, record: dict, ts_us: int) -> bytes:
    if fault == "malformed_json":
        text = json.dumps(record, separators=(",", ":"))
        return text[: int(rng.integers(5, len(text) - 2))].encode()
    if fault == "missing_field":
        field = ["user_id", "item_id", "event_time", "event_type", "category"][int(rng.integers(0, 5))]
        if rng.random() < 0.5:
            del record[field]
        else:
            record[field] = None
    elif fault == "wrong_type":
        choice = int(rng.integers(0, 3))
        if choice == 0:
            record["user_id"] = {"id": record["user_id"]}
        elif choice == 1:
            record["event_time"] = [True, "yesterday"][int(rng.integers(0, 2))]
        else:
            record["item_id"] = [record["item_id"]]
    elif fault == "unknown_event_type":
        record["event_type"] = ["hover", "scroll", "share", ""][int(rng.integers(0, 4))]
    elif fault == "future_timestamp":
        record["event_time"] = (ts_us // MICROS) + int(rng.integers(30, 900)) * 86400
    elif fault == "ancient_timestamp":
        record["event_time"] = int(rng.integers(1_000_000_000, 1_300_000_000))
    elif fault == "invalid_utf8":
        text = json.dumps(record, separators=(",", ":")).encode()
        cut = text.index(b'"category":"') + len(b'"category":"')
        return text[:cut] + b"\xff\xfe" + text[cut:]
    return json.dumps(record, separators=(",", ":")).encode()


def bot_lines(
    rng: np.random.Generator, world: World, bot_numbers: list[int], days: list[dt.date], seed: int, chunk: int
) -> dict[int, list[tuple[int, bytes]]]:
    """Scrapers: thousands of views a day, uniformly round the clock, on a couple of days."""
    out: dict[int, list[tuple[int, bytes]]] = {d: [] for d in range(len(days))}
    day0_us = int(dt.datetime(days[0].year, days[0].month, days[0].day, tzinfo=dt.timezone.utc).timestamp()) * MICROS
    serial = 1 << 35  # keeps bot ids apart from the chunk's human event ids
    for number in bot_numbers:
        active_days = rng.choice(len(days), size=min(2, len(days)), replace=False)
        for d in active_days.tolist():
            count = int(rng.integers(2000, 3000))
            ts = np.sort(day0_us + d * DAY_US + rng.integers(0, DAY_US, count))
            cats = rng.choice(len(CATEGORIES), size=count, p=world.popularity)
            ranks = np.searchsorted(world.item_cdf, rng.random(count))
            ids = event_ids(seed, chunk, count, serial)
            serial += count
            for t, c, r, eid in zip(ts.tolist(), cats.tolist(), ranks.tolist(), ids):
                line = (
                    f'{{"event_id":"{eid}","user_id":"u{number:07d}","item_id":{item_id(c, min(r, 399))},'
                    f'"category":"{CATEGORIES[c]}","event_type":"view","event_time":{t // MICROS},"device":"web"}}'
                )
                out[d].append((t, line.encode()))
    return out
