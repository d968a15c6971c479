"""Command line and file writing for the generator (see the package docstring)."""
from __future__ import annotations

import argparse
import csv
import datetime as dt
import gzip
import io
import json
import math
import shutil
import time
from pathlib import Path

import numpy as np

from jobs.core.config import PipelineConfig, landing_partition
from jobs.generate.faults import FaultRates
from jobs.generate.landing import bot_lines, render_lines
from jobs.generate.simulate import simulate_events, simulate_users
from jobs.generate.world import CATEGORIES, build_world, catalog_rows, category_id

CHUNK_USERS = 10_000
# Measured mean events per user per day at the defaults (used by --events).
EVENTS_PER_USER_DAY = 4.3


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--users", type=int, default=5000, help="number of human users (default 5000)")
    parser.add_argument("--events", type=int, help="approximate total events; sets --users from --days")
    parser.add_argument("--days", type=int, default=7, help="number of days to simulate (default 7)")
    parser.add_argument("--start-date", type=dt.date.fromisoformat, default=dt.date(2024, 11, 1))
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--faults", help="fault rates over the defaults, e.g. 'duplicate=0.02,bot_users=0'")
    parser.add_argument("--no-faults", action="store_true", help="clean data: every fault rate 0")
    parser.add_argument("--out", type=Path, help="landing root (default: <lake>/raw)")


def run(args: argparse.Namespace, config: PipelineConfig) -> dict:
    if args.days < 1:
        raise ValueError("--days must be at least 1")
    users = args.users if args.events is None else max(1, round(args.events / (args.days * EVENTS_PER_USER_DAY)))
    faults = FaultRates.parse(args.faults, FaultRates.none() if args.no_faults else None)
    out = (args.out or config.landing).resolve()
    truth = config.lake / "ground_truth"
    days = [args.start_date + dt.timedelta(days=d) for d in range(args.days)]
    started = time.perf_counter()
    summary = generate(out, truth, users, days, args.seed, faults)
    summary["seconds"] = round(time.perf_counter() - started, 1)
    print(
        f"generated {summary['lines']:,} lines ({summary['events']:,} events) for {users:,} users "
        f"over {len(days)} days in {summary['seconds']}s -> {out / 'events'}"
    )
    return summary


def generate(out: Path, truth: Path, users: int, days: list[dt.date], seed: int, faults: FaultRates) -> dict:
    """Write landing files, catalog and ground truth; returns counts."""
    world = build_world(seed)
    for day in days:
        shutil.rmtree(landing_partition(out, day), ignore_errors=True)
    for folder in (truth / "latent_focus", truth / "users"):
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
    _write_catalog(out / "catalog", world)
    (truth / "world.json").write_text(
        json.dumps({**world.to_json(), "days": [d.isoformat() for d in days], "seed": seed, "faults": faults.to_json()}, indent=1)
    )

    n_chunks = max(1, math.ceil(users / CHUNK_USERS))
    n_bots = 0 if faults.bot_users <= 0 else max(1, round(users * faults.bot_users))
    totals = {"lines": 0, "events": 0, "users": users, "bots": n_bots, "days": len(days)}
    for chunk in range(n_chunks):
        rng = np.random.default_rng([seed, chunk])
        ids = np.arange(chunk * CHUNK_USERS, min(users, (chunk + 1) * CHUNK_USERS))
        sim_users = simulate_users(rng, world, ids, days)
        events = simulate_events(rng, world, sim_users, days)
        per_day = render_lines(rng, world, sim_users, events, days, seed, chunk, faults)
        bots = [users + b for b in range(n_bots) if b % n_chunks == chunk]
        for d, lines in bot_lines(rng, world, bots, days, seed, chunk).items():
            per_day[d].extend(lines)
        for d, lines in per_day.items():
            lines.sort(key=lambda pair: pair[0])
            _write_gz(landing_partition(out, days[d]) / f"part-{chunk:05d}.jsonl.gz", lines)
            totals["lines"] += len(lines)
        totals["events"] += len(events.ts_us)
        _write_truth(truth, chunk, sim_users, days)
    return totals


def _write_gz(path: Path, lines: list[tuple[int, bytes]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    body = b"\n".join(line for _, line in lines) + (b"\n" if lines else b"")
    # mtime=0 and no file name in the header: same seed, same bytes.
    with open(path, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=1) as gz:
        gz.write(body)


def _write_catalog(folder: Path, world) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "items.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["item_id", "category_id", "category", "price"])
        writer.writerows(catalog_rows(world))
    with open(folder / "categories.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["category_id", "category"])
        writer.writerows((category_id(c), name) for c, name in enumerate(CATEGORIES))


def _write_truth(truth: Path, chunk: int, users, days: list[dt.date]) -> None:
    buffer = io.StringIO()
    buffer.write("user_id,tz_offset_min,p_active,p_move,stable_1,stable_2\n")
    for u, tz, pa, pm, (s1, s2) in zip(
        users.ids.tolist(), users.tz_offset_min.tolist(), users.p_active.tolist(), users.p_move.tolist(), users.stable.tolist()
    ):
        buffer.write(f"u{u:07d},{tz},{pa:.4f},{pm:.4f},{CATEGORIES[s1]},{CATEGORIES[s2]}\n")
    (truth / "users" / f"part-{chunk:05d}.csv").write_text(buffer.getvalue())
    buffer = io.StringIO()
    buffer.write("user_id,date,focus_category\n")
    dates = [d.isoformat() for d in days]
    for u, path in zip(users.ids.tolist(), users.focus.tolist()):
        for date, focus in zip(dates, path):
            buffer.write(f"u{u:07d},{date},{CATEGORIES[focus]}\n")
    with gzip.GzipFile(truth / "latent_focus" / f"part-{chunk:05d}.csv.gz", "wb", mtime=0, compresslevel=1) as gz:
        gz.write(buffer.getvalue().encode())
