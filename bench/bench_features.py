"""Cost of ``features --mode score`` (the nightly history rescan) per event of the window and per user.

    python bench/bench_features.py --users 20000 --days 35
    python bench/bench_features.py --users 5000 --days 35

Generates a lake and loads it by the backfill path (not timed), then times the
score-mode features of the last date in the same process and Spark session
(JVM start excluded, as in bench_ingest_pipeline.py): it reads the
``--history-days`` window before the cutoff for every active user. Prints the
seconds, the events in the window, the sequences written and the cost per
event and per sequence (docs/sizing.md uses them).
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.bench_ingest_pipeline import PeakMemory, run_stage  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--days", type=int, default=35)
    parser.add_argument("--history-days", type=int, default=28)
    parser.add_argument("--lake", type=Path, help="lake directory (default: a temporary one, removed after)")
    options = parser.parse_args()
    lake = options.lake or Path(tempfile.mkdtemp(prefix="bench-features-"))
    start = dt.date(2024, 11, 1)
    last = start + dt.timedelta(days=options.days - 1)
    span = ["--from-date", start.isoformat(), "--to-date", last.isoformat(), "--no-validate"]
    try:
        t = time.perf_counter()
        run_stage("generate", lake, "--users", str(options.users), "--days", str(options.days),
                  "--start-date", start.isoformat())
        run_stage("ingest", lake, "--source", str(lake / "raw" / "events"), "--no-validate")
        run_stage("dedupe", lake, *span)
        run_stage("sessionize", lake, *span)
        print(f"lake built (not timed): {time.perf_counter() - t:.1f}s")
        from pyspark.sql import SparkSession

        spark = SparkSession.getActiveSession()
        cutoff = last + dt.timedelta(days=1)
        window = spark.read.format("delta").load(str(lake / "events")).where(
            f"event_ts >= timestamp'{cutoff - dt.timedelta(days=options.history_days)}' "
            f"AND event_ts < timestamp'{cutoff}'")
        events = window.count()
        with PeakMemory() as memory:
            t = time.perf_counter()
            result = run_stage("features", lake, "--mode", "score", "--date", last.isoformat(),
                               "--history-days", str(options.history_days))
            seconds = time.perf_counter() - t
        sequences = result["rows"]
        print(json.dumps({
            "users_generated": options.users, "days": options.days, "history_days": options.history_days,
            "events_in_window": events, "sequences": sequences, "seconds": round(seconds, 1),
            "microseconds_per_window_event": round(seconds / events * 1e6, 2),
            "microseconds_per_sequence": round(seconds / sequences * 1e6, 1),
            "peak_rss_gb": round(memory.peak / 2**30, 2),
        }, indent=1))
    finally:
        if not options.lake:
            shutil.rmtree(lake, ignore_errors=True)


if __name__ == "__main__":
    main()
