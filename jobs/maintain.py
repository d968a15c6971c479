"""``python -m jobs maintain``: keep the lake small and fast without losing what readers may still ask for.

For every Delta table under the lake root:

- ``OPTIMIZE`` compacts each partition's small files (a nightly partition
  overwrite writes a few files per date; months of them slow every scan);
- ``VACUUM`` deletes data files that no version inside the retention
  (``--retention-hours``, default 168 = 7 days) needs. Time travel keeps
  working for every version younger than the retention; older versions can no
  longer be read. It also removes the data files of writers killed mid-commit,
  which no version references.

Then it removes what stages abandoned: staging folders (``_staging``), score
scratch (``_scratch``) and held predictions (``_candidates``) older than
``--abandoned-after-hours`` (default 24: a running stage's folders are
younger); ``user_sequences`` snapshots whose ``as_of_date`` is more than
``--keep-sequence-days`` before the newest (a Delta ``DELETE``, so it is
undoable within the retention like any other version); and the training
checkpoints (``run/``) of all but the newest ``--keep-checkpoints`` model
versions (their SavedModels, metadata and reports stay); and the Great
Expectations validation results of runs older than ``--keep-validation-days``
(default 90), whose Data Docs pages the next validation's index build drops.

The nightly DAG runs it once a week. A retention below Delta's own safety
floor of 168 hours is allowed because it is asked for explicitly, but then a
VACUUM that overlaps a running writer could delete that writer's new files:
run short retentions only while no stage runs. The same holds for
``--abandoned-after-hours`` below a stage's running time (a running stage's
staging would be removed) and for ``--keep-checkpoints 0`` while a training
runs.
"""
from __future__ import annotations

import argparse
import datetime as dt
import shutil
import time
from pathlib import Path

from jobs.core.config import PipelineConfig
from jobs.core.stage import open_stage_lake
from jobs.core.tables import USER_SEQUENCES

DELTA_SAFETY_HOURS = 168
# Great Expectations' validation results, in its file layout (jobs/core/quality/gx_run.py keeps the context in
# <lake>/_gx): <suite>/<run name>/<run time>/<batch>.json.
VALIDATION_RESULTS = Path("_gx") / "gx" / "uncommitted" / "validations"
RUN_TIME_FORMAT = "%Y%m%dT%H%M%S.%fZ"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--retention-hours", type=float, help="VACUUM retention (default $IM_VACUUM_RETENTION_HOURS "
                                                              "or 168)")
    parser.add_argument("--abandoned-after-hours", type=float,
                        help="remove staging, scratch and held-prediction folders older than this (default 24)")
    parser.add_argument("--keep-sequence-days", type=int,
                        help="keep user_sequences snapshots this many days before the newest (default 28)")
    parser.add_argument("--keep-checkpoints", type=int,
                        help="keep the training checkpoints of this many newest model versions (default 3)")
    parser.add_argument("--keep-validation-days", type=int,
                        help="keep Great Expectations validation results this many days (default 90)")
    parser.add_argument("--no-optimize", dest="optimize", action="store_false", help="skip OPTIMIZE")


def run(args: argparse.Namespace, config: PipelineConfig) -> dict:
    config = config.with_overrides(vacuum_retention_hours=args.retention_hours,
                                   abandoned_after_hours=args.abandoned_after_hours,
                                   keep_sequence_days=args.keep_sequence_days,
                                   keep_checkpoints=args.keep_checkpoints,
                                   keep_validation_days=args.keep_validation_days)  # ranges: jobs/core/config.py
    from jobs.core.runs import record_run

    lake = open_stage_lake(config, "maintain")
    summary: dict = {}
    with record_run(lake, "maintain", args.date or dt.datetime.now(dt.timezone.utc).date()) as metrics:
        summary["abandoned_removed"] = remove_abandoned(lake.root, config.abandoned_after_hours * 3600, time.time())
        summary["sequence_snapshots_deleted"] = _prune_sequences(lake, config.keep_sequence_days)
        summary["checkpoints_removed"] = prune_checkpoints(lake.root / "models" / "versions", config.keep_checkpoints)
        summary["validation_results_removed"] = prune_validation_results(
            lake.root / VALIDATION_RESULTS, config.keep_validation_days * 86400, time.time())
        summary["tables"] = {table: _compact_and_vacuum(lake, table, config.vacuum_retention_hours, args.optimize)
                             for table in delta_tables(lake.root)}
        metrics.details.update(summary)
        metrics.rows_out = sum(t["files_deleted"] for t in summary["tables"].values())
    print(f"maintain: {len(summary['tables'])} tables compacted and vacuumed ({metrics.rows_out:,} files deleted, "
          f"retention {config.vacuum_retention_hours:g} h); {len(summary['abandoned_removed'])} abandoned folders, "
          f"{len(summary['sequence_snapshots_deleted'])} user_sequences snapshots and "
          f"{len(summary['checkpoints_removed'])} checkpoint folders and "
          f"{summary['validation_results_removed']:,} validation results removed")
    return summary


def delta_tables(root: Path) -> list[str]:
    """The lake's tables: folders directly under the root that hold a Delta log."""
    return sorted(p.name for p in Path(root).iterdir() if (p / "_delta_log").is_dir()) if Path(root).is_dir() else []


def remove_abandoned(root: Path, older_than_seconds: float, now: float) -> list[str]:
    """Remove the entries of the staging, scratch and held-prediction folders last modified before the threshold."""
    from jobs.core.held import HELD_DIR
    from jobs.core.lake.delta_spark import STAGING_DIR

    removed = []
    for name in (STAGING_DIR, "_scratch", HELD_DIR):
        folder = Path(root) / name
        if not folder.is_dir():
            continue
        for entry in sorted(folder.iterdir()):
            if now - _newest_mtime(entry) >= older_than_seconds:
                shutil.rmtree(entry, ignore_errors=True) if entry.is_dir() else entry.unlink(missing_ok=True)
                removed.append(str(entry.relative_to(root)))
    return removed


def prune_validation_results(results: Path, older_than_seconds: float, now: float) -> int:
    """Remove the validation results whose run time is older than the threshold; returns how many.

    Each validation rebuilds the Data Docs index, which lists the stored results (the newest 500 of them: gx_run):
    without a retention the results of every night since the lake began pile up there. The index's next build
    drops the removed results' pages (GX removes a page whose result is gone). A run-time folder whose name is
    not GX's format is judged by its files' modification time."""
    removed = 0
    if not results.is_dir():
        return 0
    for run_time in sorted(results.glob("*/*/*")):
        if not run_time.is_dir():
            continue
        try:
            started = dt.datetime.strptime(run_time.name, RUN_TIME_FORMAT).replace(tzinfo=dt.timezone.utc).timestamp()
        except ValueError:
            started = _newest_mtime(run_time)
        if now - started >= older_than_seconds:
            removed += sum(1 for _ in run_time.glob("*.json"))
            shutil.rmtree(run_time, ignore_errors=True)
            run_name = run_time.parent
            if not any(run_name.iterdir()):
                run_name.rmdir()
    return removed


def _newest_mtime(path: Path) -> float:
    """A folder counts as touched when anything inside it was: a stage still writing keeps it young. Files a
    finishing stage removes meanwhile are skipped; a folder gone entirely counts as just touched."""
    times = []
    for item in [path, *(path.rglob("*") if path.is_dir() else ())]:
        try:
            times.append(item.stat().st_mtime)
        except FileNotFoundError:
            continue
    return max(times, default=float("inf"))


def prune_checkpoints(versions: Path, keep: int) -> list[str]:
    """Remove ``run/`` (checkpoints, worker logs) of all model versions but the newest ``keep``."""
    if not versions.is_dir():
        return []
    names = sorted((p.name for p in versions.iterdir() if (p / "run").is_dir()), key=_version_key)
    doomed = names[:max(len(names) - keep, 0)]
    for name in doomed:
        shutil.rmtree(versions / name / "run", ignore_errors=True)
    return doomed


def _version_key(version: str) -> tuple:
    """``<date>.<n>`` in numeric order (``.10`` after ``.9``)."""
    date, _, number = version.rpartition(".")
    return (date, int(number)) if number.isdigit() else (version, 0)


def _prune_sequences(lake, keep_days: int) -> list[str]:
    if not lake.exists(USER_SEQUENCES):
        return []
    snapshots = lake.partition_values(USER_SEQUENCES, "as_of_date")
    if not snapshots:
        return []
    oldest_kept = (dt.date.fromisoformat(snapshots[-1]) - dt.timedelta(days=keep_days)).isoformat()
    doomed = [s for s in snapshots if s < oldest_kept]
    if doomed:
        lake.delete_partitions(USER_SEQUENCES, {"as_of_date": doomed})
    return doomed


def _compact_and_vacuum(lake, table: str, retention_hours: float, optimize: bool) -> dict:
    """Delta's OPTIMIZE and VACUUM as SQL statements: the same commands as delta-spark's Python ``DeltaTable``, which
    over Spark Connect would need a Delta plugin on the server."""
    path = str(lake.table_path(table)).replace("`", "``")
    compacted = 0
    if optimize:
        metrics = lake.spark.sql(f"OPTIMIZE delta.`{path}`").select("metrics.numFilesRemoved").first()
        compacted = int(metrics[0] or 0) if metrics else 0
    before = _data_files(lake.table_path(table))
    # Delta refuses a retention under its floor unless told: the caller asked for it explicitly.
    lake.spark.conf.set("spark.databricks.delta.retentionDurationCheck.enabled",
                        str(retention_hours >= DELTA_SAFETY_HOURS).lower())
    lake.spark.sql(f"VACUUM delta.`{path}` RETAIN {float(retention_hours)!r} HOURS").collect()
    return {"files_compacted": compacted, "files_deleted": before - _data_files(lake.table_path(table))}


def _data_files(table_path: Path) -> int:
    return sum(1 for p in table_path.rglob("*.parquet") if "_delta_log" not in p.parts)
