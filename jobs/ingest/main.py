"""Command line and I/O of the ingest stage (see the package docstring)."""
from __future__ import annotations

import argparse
import datetime as dt
import functools
import re
from pathlib import Path

from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from jobs.core.config import PipelineConfig
from jobs.core.quality import check_partition
from jobs.core.quality.gate import events_clean_batch
from jobs.core.errors import PipelineError
from jobs.core.input_size import files_bytes
from jobs.ingest.classify import classify_events, clean_rows, flag_bots, quarantine_rows
from jobs.ingest.formats import parse_lines
from jobs.ingest.sources import count_lines, find_source_files
from jobs.core.lake import gated_write
from jobs.core.runs import record_run
from jobs.core.stage import open_stage_lake
from jobs.core.tables import EVENTS_CLEAN, EVENTS_QUARANTINE

INGEST_DATE_FOLDER = "ingest_date"
_INGEST_DATE = re.compile(INGEST_DATE_FOLDER + r"=(\d{4}-\d{2}-\d{2})")


def run(args: argparse.Namespace, config: PipelineConfig) -> dict:
    config = config.with_overrides(max_lateness_days=args.max_lateness_days, bot_events_per_day=args.bot_events_per_day,
                                   validate_writes=args.validate)
    source = args.source or _landing_partition(config, args.date)
    if args.source is None and config.volume_acknowledged and not _has_landing_files(source):
        return _record_empty_batch(config, args.date, source)
    found = find_source_files(source)
    files = found.files
    files_by_date = _files_by_ingest_date(files, args.date)
    lake = open_stage_lake(config, "ingest", validates=config.validate_writes, input_bytes=lambda: files_bytes(files))
    spark = lake.spark
    with record_run(lake, "ingest", args.date or max(filter(None, files_by_date), default=None)) as metrics:
        # Counted from the files, before and apart from Spark: what every run is reconciled against.
        lines_read = sum(count_lines(file) for file in files)
        lines = read_lines(spark, files_by_date)
        categories = _read_categories(spark, args.catalog or config.landing / "catalog" / "categories.csv", args.format)
        # Parse and classify once, into memory: bot detection and both writes read
        # this copy (without it Spark re-parses per output, and pushes the writes'
        # filters into the parser, evaluating it once per field).
        parsed = classify_events(
            parse_lines(lines, args.format, config.max_line_bytes), categories, args.format,
            config.max_lateness_days, config.max_future_minutes,
        ).persist(StorageLevel.MEMORY_AND_DISK_DESER)
        classified = flag_bots(parsed, config.bot_events_per_day)
        try:
            by_reason_and_date = classified.groupBy("reason", "ingest_date").count().collect()
            counts: dict[str | None, int] = {}
            for row in by_reason_and_date:
                counts[row["reason"]] = counts.get(row["reason"], 0) + row["count"]
            # A historical file's ingest dates are its events' own dates (classify), known only now; its lines
            # without a usable date take the batch's last one.
            dates = sorted({row["ingest_date"] for row in by_reason_and_date if row["ingest_date"]}
                           | set(filter(None, files_by_date)))
            if None in files_by_date:
                last = max(dates, default=args.date or dt.datetime.now(dt.timezone.utc).date())
                classified = classified.withColumn("ingest_date", F.coalesce("ingest_date", F.lit(last)))
                dates = sorted(set(dates) | {last})
                _refuse_to_replace_history(lake, dates, args.replace_existing)
            metrics.run_date = metrics.run_date or max(dates)
            replace = {"ingest_date": [d.isoformat() for d in dates]}
            reconcile(lines_read, counts)
            # Quarantine first: a reader of events_clean can always find the batch's rejected rows.
            with gated_write(lake, metrics, config.validate_writes) as gate:
                quarantine = gate.prepare(EVENTS_QUARANTINE, quarantine_rows(classified), replace)
                clean = gate.prepare(EVENTS_CLEAN, clean_rows(classified), replace)
                gate.check(lambda: check_partition(lake, config, EVENTS_CLEAN, dates,
                                                   events_clean_batch(clean, quarantine)))
        finally:
            parsed.unpersist()
        metrics.rows_out = counts.pop(None, 0)
        metrics.rows_quarantined = sum(counts.values())
        metrics.rows_in = lines_read
        metrics.details.update({"source": str(source), "format": args.format, "files": len(files),
                                "lines_read": lines_read, "skipped_files": found.skipped,
                                "ingest_dates": replace["ingest_date"], "quarantined_by_reason": counts})
    reasons = ", ".join(f"{k} {v:,}" for k, v in sorted(counts.items(), key=lambda kv: -kv[1])) or "none"
    if found.skipped:
        print(f"ingest: left unread: {', '.join(f'{len(v)} {k}' for k, v in sorted(found.skipped.items()))} "
              "(pipeline_runs.details.skipped_files lists them)")
    print(f"ingest {', '.join(replace['ingest_date'])}: read {metrics.rows_in:,}, clean {metrics.rows_out:,}, "
          f"quarantined {metrics.rows_quarantined:,} ({reasons})")
    return {"rows_in": metrics.rows_in, "rows_out": metrics.rows_out, "rows_quarantined": metrics.rows_quarantined,
            "quarantined_by_reason": counts, "ingest_dates": replace["ingest_date"]}


def _has_landing_files(partition: Path) -> bool:
    """False only for a date with nothing delivered at all: a folder holding only files that are not read yet
    (a copy still running: ``.part``, ``._COPYING_``) is not an empty date, and ingest fails on it instead."""
    return partition.is_dir() and any(partition.iterdir())


def _record_empty_batch(config: PipelineConfig, day: dt.date, partition: Path) -> dict:
    """A date whose landing holds nothing, acknowledged by the operator (or a backfill: a store's closed day):
    recorded as an empty batch with a warning, so the date is accounted for and the later dates go on."""
    lake = open_stage_lake(config, "ingest", validates=False)
    with record_run(lake, "ingest", day) as metrics:
        metrics.rows_in = metrics.rows_out = metrics.rows_quarantined = 0
        metrics.details.update({"source": str(partition), "lines_read": 0, "ingest_dates": [day.isoformat()],
                                "empty_batch": "no landing files for the date; volume acknowledged"})
    print(f"ingest {day}: no landing files at {partition}: an empty batch, recorded as a warning (volume "
          "acknowledged)")
    return {"rows_in": 0, "rows_out": 0, "rows_quarantined": 0, "quarantined_by_reason": {},
            "ingest_dates": [day.isoformat()]}


def _refuse_to_replace_history(lake, dates: list[dt.date], replace_existing: bool) -> None:
    """A historical import writes its events' own dates: refuse to replace dates already ingested (a nightly
    run's, or an earlier import's) unless asked to."""
    if replace_existing:
        return
    days = [d.isoformat() for d in dates]
    taken = sorted({d for table in (EVENTS_CLEAN, EVENTS_QUARANTINE) if lake.exists(table)
                    for d in lake.partition_row_counts(table, "ingest_date", days)})
    if taken:
        raise PipelineError(f"this historical file covers {len(taken)} ingest date(s) the lake already holds "
                            f"({', '.join(taken[:3])}{'...' if len(taken) > 3 else ''}); re-import them with "
                            "--replace-existing, which replaces those dates whole")


def reconcile(lines_read: int, counts_by_reason: dict[str | None, int]) -> None:
    """Every line the files hold is one clean or one quarantined row, or nothing is published."""
    clean = counts_by_reason.get(None, 0)
    quarantined = sum(v for k, v in counts_by_reason.items() if k is not None)
    if clean + quarantined != lines_read:
        raise PipelineError(f"ingest does not account for every line: the files hold {lines_read:,} lines, the run "
                            f"made {clean:,} clean + {quarantined:,} quarantined rows; nothing is published")


def read_lines(spark: SparkSession, files_by_date: dict[dt.date, list[str]]) -> DataFrame:
    """Raw text lines with their file and ingest date.

    The date is never a regex over each row's path: that regex alone cost
    about a third of a second per million rows. When the dated files sit
    directly in ``ingest_date=`` folders of one parent (the landing layout),
    one read takes the date as a partition column Spark finds in the folder
    names: one scan for a backfill of many dates. A union of one read per
    date, each with its date as a literal, compiled the parser once per date
    (84 dates: 36 s against 10 s for one read, bench/bench_ingest_pipeline.py
    --range). Other layouts, and files without a date, are read that way.
    """
    dated = {day: files for day, files in files_by_date.items() if day is not None}
    base = _common_landing_parent(dated) if len(dated) > 1 else None
    frames, literal = [], files_by_date
    if base is not None:
        frames.append(spark.read.option("basePath", base).text([f for files in dated.values() for f in files]).select(
            F.col("value").alias("raw_record"), F.col("_metadata.file_path").alias("source_file"),
            F.col(INGEST_DATE_FOLDER).cast("date").alias("ingest_date")))
        literal = {day: files for day, files in files_by_date.items() if day is None}
    frames += [
        spark.read.text(files).select(
            F.col("value").alias("raw_record"),
            F.col("_metadata.file_path").alias("source_file"),
            F.lit(day).cast("date").alias("ingest_date"),  # None: a historical file, dated by its events (classify)
        )
        for day, files in sorted(literal.items(), key=lambda kv: kv[0] or dt.date.min)
    ]
    return functools.reduce(DataFrame.unionByName, frames)


def _common_landing_parent(dated: dict[dt.date, list[str]]) -> str | None:
    """The folder whose ``ingest_date=D`` subfolders directly hold every dated file (each in its own date's
    folder), else None."""
    parents = set()
    for day, files in dated.items():
        for file in files:
            folder = Path(file).parent
            if folder.name != f"{INGEST_DATE_FOLDER}={day.isoformat()}":
                return None
            parents.add(str(folder.parent))
    return parents.pop() if len(parents) == 1 else None


def _landing_partition(config: PipelineConfig, date: dt.date | None) -> Path:
    if date is None:
        raise PipelineError("ingest needs --date (the landing partition to read) or --source PATH")
    return config.landing_partition(date)


def _files_by_ingest_date(files: list[Path], fallback: dt.date | None) -> dict[dt.date | None, list[str]]:
    """Group the batch's files by ingest date: from ``ingest_date=`` folders, else ``--date``, else None (a
    historical file: each line is taken as delivered on its event's own date, see ``classify``)."""
    groups: dict[dt.date | None, list[str]] = {}
    for file in files:
        match = _INGEST_DATE.search(str(file))
        day = dt.date.fromisoformat(match.group(1)) if match else fallback
        groups.setdefault(day, []).append(str(file))
    return groups


def _read_categories(spark: SparkSession, path: Path, source_format: str) -> DataFrame | None:
    """The category catalog, for sources that give only category ids: one name per id.

    An id listed twice with the same name is one entry; an id given two names
    fails the run (which name is right is the catalog owner's call, and joining
    both would double that category's events). An id missing from the catalog
    keeps its events, named ``<source>.<id>`` (``classify``).
    """
    if source_format == "events-jsonl" or not path.exists():
        return None
    catalog = (spark.read.option("header", True).csv(str(path))
               .select(F.trim("category_id").alias("category_id"), F.trim("category").alias("category"))
               .where(F.col("category_id").isNotNull()).distinct())
    conflicts = catalog.groupBy("category_id").agg(F.sort_array(F.collect_set("category")).alias("names"),
                                                   F.count(F.lit(1)).alias("n")).where("n > 1")
    found = conflicts.limit(3).collect()
    if found:
        examples = "; ".join(f"{r.category_id}: {', '.join(map(str, r.names))}" for r in found)
        raise PipelineError(f"catalog {path} gives {conflicts.count():,} category ids more than one name "
                            f"({examples}); fix the catalog, nothing was ingested")
    return catalog
