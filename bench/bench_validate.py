"""Wall time and peak memory of validating one large partition with its Great Expectations suite.

    python bench/bench_validate.py --rows 10000000
    python bench/bench_validate.py --rows 10000000 --table events_clean

Builds the partition with Spark (not timed): ``--rows`` events on one date
with realistic ids, categories and times, plus the same volume on the
previous date so the volume and category-drift checks have a trailing window.
Then times ``check_partition`` exactly as the stages and ``python -m jobs
validate`` run it: bounds from the lake, the full suite on Spark, results and
Data Docs written. Nothing but metrics and a few sample values is collected.
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
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_ingest_pipeline import PeakMemory  # noqa: E402
from jobs.core.config import PipelineConfig  # noqa: E402
from jobs.generate.world import CATEGORIES  # noqa: E402
from jobs.core.lake import open_lake  # noqa: E402
from jobs.core.quality import check_partition  # noqa: E402
from jobs.core.quality.gate import events_clean_batch  # noqa: E402
from jobs.core.spark import build_spark  # noqa: E402
from jobs.core.tables import EVENTS, EVENTS_CLEAN, EVENTS_QUARANTINE, PARTITIONS  # noqa: E402

DAY = dt.date(2024, 11, 2)


def synthetic_events(spark, rows: int, day: dt.date, categories: list[str], salt: int):
    """``rows`` events on ``day``: unique ids, 80 k users, Zipf-ish categories, four event types."""
    from pyspark.sql import functions as F

    cats = F.array(*[F.lit(c) for c in categories])
    skew = F.floor(F.pow(F.rand(salt), 2) * len(categories)).cast("int")  # low indexes more often
    types = F.array(*[F.lit(t) for t in ("view", "view", "view", "view", "view", "view", "cart", "fav", "purchase")])
    return spark.range(rows).select(
        F.sha2(F.concat_ws("-", F.lit(salt), F.col("id").cast("string")), 256).substr(1, 16).alias("event_id"),
        F.format_string("u%07d", (F.col("id") % 80_000).cast("int")).alias("user_id"),
        (F.col("id") * 7919 % 150_000).cast("string").alias("item_id"),
        F.element_at(cats, skew + 1).alias("category"),
        F.element_at(types, (F.col("id") % 9).cast("int") + 1).alias("event_type"),
        (F.lit(dt.datetime.combine(day, dt.time())) + F.make_dt_interval(
            F.lit(0), F.lit(0), F.lit(0), (F.col("id") * 86_399.0 / rows))).alias("event_ts"),
        F.lit(day).alias("event_date"),
        F.lit(None).cast("double").alias("price"),
        F.lit("events-jsonl").alias("source"),
        F.lit(day).alias("ingest_date"),
        F.substring(F.md5(F.concat_ws("|", (F.col("id") % 80_000).cast("string"), (F.col("id") / 400_000).cast("int").cast("string"))), 1, 16).alias("session_id"),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--table", choices=[EVENTS, EVENTS_CLEAN], default=EVENTS)
    options = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench-validate-"))
    try:
        config = PipelineConfig().with_overrides(lake=root / "lake")
        spark = build_spark(config, "bench-validate")
        lake = open_lake(spark, config.lake)
        categories = sorted(CATEGORIES)
        t = time.perf_counter()
        for day, salt in ((DAY - dt.timedelta(days=1), 1), (DAY, 2)):
            frame = synthetic_events(spark, options.rows, day, categories, salt)
            if options.table == EVENTS:
                lake.overwrite_partitions(EVENTS, frame, PARTITIONS[EVENTS], {"event_date": [day.isoformat()]})
            else:
                frame = frame.drop("session_id").withColumn("ingest_date", frame["event_date"])
                lake.overwrite_partitions(EVENTS_CLEAN, frame, PARTITIONS[EVENTS_CLEAN], {"ingest_date": [day.isoformat()]})
                empty = spark.createDataFrame([], "raw_record string, reason string, source string, source_file string, ingest_date date")
                lake.overwrite_partitions(EVENTS_QUARANTINE, empty, PARTITIONS[EVENTS_QUARANTINE], {"ingest_date": [day.isoformat()]})
        print(f"built 2 x {options.rows:,} rows in {time.perf_counter() - t:.0f}s (not timed)")
        if options.table == EVENTS:
            batch = lake.read(EVENTS, partitions={"event_date": [DAY.isoformat()]})
        else:
            batch = events_clean_batch(lake.read(EVENTS_CLEAN, partitions={"ingest_date": [DAY.isoformat()]}),
                                       lake.read(EVENTS_QUARANTINE, partitions={"ingest_date": [DAY.isoformat()]}))
        with PeakMemory() as memory:
            t = time.perf_counter()
            report = check_partition(lake, config, options.table, [DAY], batch)
            seconds = time.perf_counter() - t
        print(json.dumps({
            "table": options.table, "rows": options.rows, "seconds": round(seconds, 1),
            "rows_per_second": round(options.rows / seconds), "expectations": report.evaluated,
            "failed": [f.line() for f in report.failures], "category_divergence": report.category_divergence,
            "peak_rss_gb": round(memory.peak / 2**30, 2), "cpus": __import__("os").cpu_count(),
        }, indent=1))
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
