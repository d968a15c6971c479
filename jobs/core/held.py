"""Held predictions: the hold -> validate -> publish protocol, in one place for the three stages that share it.

The nightly DAG runs ``score --hold``, ``validate --table
user_interest_predictions`` and ``publish`` as three tasks, so the prepared
rows must outlive one process:

1. ``hold``: score writes the date's three partitions as Delta tables (like
   the published ones) under ``<lake>/_candidates/score_date=D/``, with a
   manifest saying what they are;
2. ``validate_held``: the predictions' suite checks them, and the verdict is
   recorded next to them with the held tables' content fingerprint (each
   table's id, version and data files: a held write made again by a second
   ``score --hold`` has new ids and files even where its version numbers are
   the same). Content that changes while it is being validated fails;
3. ``claim`` then ``publish_held``: publish first moves the held folder aside
   (``score_date=D.publishing``), so a ``score --hold`` re-run meanwhile writes
   a new held folder and cannot change what is being published, then checks
   that the moved content is exactly what passed, commits it into the lake,
   writes a receipt (``_publish_receipts/score_date=D.json``) and drops it.
   Rows never validated, failed, or changed since they passed are refused,
   and the published tables keep their previous version.

Every step is safe to retry: a publish that stopped part-way resumes from the
moved folder (each commit is a partition overwrite of the same rows), and a
publish run again after it succeeded finds the receipt and does nothing.

A single ``score`` run without ``--hold`` does the same in one process
through ``gated_write`` (prepare, validate, commit).
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

from jobs.core.errors import PipelineError
from jobs.core.lake import GatedWrite, Lake, gated_write, open_lake
from jobs.core.quality.gate import check_partition
from jobs.core.tables import CATEGORY_DEMAND_FORECAST, MARKETING_SEGMENTS, PARTITIONS, USER_INTEREST_PREDICTIONS
from models.registry import atomic_write

# The folder's name predates the word "held"; maintain sweeps abandoned ones (older lakes have them too).
HELD_DIR = "_candidates"
MANIFEST, VERDICT = "manifest.json", "validated.json"
PUBLISHING = ".publishing"  # suffix of a held folder publish has claimed
RECEIPTS = "_publish_receipts"  # not under HELD_DIR: maintain sweeps that, and a receipt must outlive the retries
# Tables that point into others commit after them: a reader never sees predictions without their forecast.
PUBLISH_ORDER = (CATEGORY_DEMAND_FORECAST, MARKETING_SEGMENTS, USER_INTEREST_PREDICTIONS)


@dataclass(frozen=True)
class HeldManifest:
    """What a held write is: the date, the model that scored it, the row count its suite expects, its rows."""
    score_date: str
    model_version: str
    active_users: int
    top_k: int
    rows: dict[str, int]


def held_root(lake_root: Path, score_date: dt.date) -> Path:
    return Path(lake_root) / HELD_DIR / f"score_date={score_date.isoformat()}"


def held_lake(lake: Lake, score_date: dt.date) -> Lake:
    """A lake rooted at the date's held folder."""
    return open_lake(lake.spark, str(held_root(lake.root, score_date)))


def hold(lake: Lake, score_date: dt.date, model_version: str, active_users: int, top_k: int,
         write: Callable[[GatedWrite], None]) -> dict[str, int]:
    """Replace the date's held write with what ``write(gate)`` prepares, and describe it in the manifest.

    An earlier held write of the date is dropped first, so a held write never mixes with a stale one.
    """
    shutil.rmtree(held_root(lake.root, score_date), ignore_errors=True)
    # A new held write of a published date: the old receipt no longer says this date is done.
    receipt_path(lake.root, score_date).unlink(missing_ok=True)
    held = held_lake(lake, score_date)
    with gated_write(held, validate=False) as gate:
        write(gate)
    rows = {table: held.read(table).count() for table in PUBLISH_ORDER}
    manifest = HeldManifest(score_date.isoformat(), model_version, active_users, top_k, rows)
    (held_root(lake.root, score_date) / MANIFEST).write_text(json.dumps(asdict(manifest), indent=1, sort_keys=True))
    return rows


def read_manifest(lake_root: Path, score_date: dt.date) -> HeldManifest:
    path = held_root(lake_root, score_date) / MANIFEST
    if not path.is_file():
        raise PipelineError(f"no held predictions for {score_date} under {path.parent}: run score --hold first")
    return HeldManifest(**json.loads(path.read_text()))


def validate_held(lake: Lake, config, score_date: dt.date):
    """Run the predictions' suite on the held predictions of ``score_date`` with the row count score recorded,
    and record the verdict that gates ``publish_held``. Returns the report (the caller raises on critical)."""
    folder = held_root(lake.root, score_date)
    manifest = read_manifest(lake.root, score_date)
    before = content_fingerprint(folder, manifest)
    frame = held_lake(lake, score_date).read(USER_INTEREST_PREDICTIONS)
    report = check_partition(lake, config, USER_INTEREST_PREDICTIONS, [score_date], frame,
                             expected_rows=manifest.active_users, top_k=manifest.top_k)
    after = content_fingerprint(folder, manifest) if folder.is_dir() else None
    if after != before:
        raise PipelineError(f"the held predictions for {score_date} changed while they were validated (score "
                            "--hold ran again): validate them again")
    verdict = {"passed": not report.critical, "content": before, "summary": report.summary()}
    atomic_write(folder / VERDICT, json.dumps(verdict, indent=1, default=str))
    return manifest, report


def content_fingerprint(folder: Path, manifest: HeldManifest) -> str:
    """What the held tables hold, independent of where the folder is: each table's id (new for every table
    created), version and data files (names carry a random id)."""
    from deltalake import DeltaTable

    parts = {}
    for table in sorted(manifest.rows):
        delta = DeltaTable(str(folder / table))
        root = str((folder / table).resolve())
        files = sorted(os.path.relpath(uri.removeprefix("file://"), root) for uri in delta.file_uris())
        parts[table] = {"id": delta.metadata().id, "version": delta.version(), "files": files}
    parts["manifest"] = asdict(manifest)
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def claim(lake: Lake, score_date: dt.date) -> tuple[HeldManifest, Path] | None:
    """The held write to publish, moved where no later ``score --hold`` can touch it, and checked to be exactly
    what validation passed; None when the date's held write was already published (a retry after success)."""
    folder = held_root(lake.root, score_date)
    claimed = folder.with_name(folder.name + PUBLISHING)
    if not claimed.is_dir():
        if not folder.is_dir():
            if receipt_path(lake.root, score_date).is_file():
                return None
            raise PipelineError(f"no held predictions for {score_date} under {folder}: run score --hold first")
        require_passed(folder, score_date)
        os.rename(folder, claimed)  # atomic: score --hold now writes a new folder, this one is publish's
    try:
        manifest = require_passed(claimed, score_date)
    except PipelineError:
        shutil.rmtree(claimed, ignore_errors=True)  # not what passed: never to be published; score again
        raise
    return manifest, claimed


def publish_held(lake: Lake, manifest: HeldManifest, folder: Path, versions: dict[str, int]) -> None:
    """Commit the claimed held partitions (each an atomic partition overwrite, PUBLISH_ORDER), record the
    receipt, then drop them. ``versions`` is filled as each table commits: a failure part-way still says which
    are new, and a retry commits the same rows again."""
    held = open_lake(lake.spark, str(folder))
    replace = {"score_date": [manifest.score_date]}
    for table in PUBLISH_ORDER:
        versions[table] = lake.overwrite_partitions(table, held.read(table), PARTITIONS[table], replace)
    receipt = {"manifest": asdict(manifest), "content": content_fingerprint(folder, manifest),
               "versions": versions, "published_at": dt.datetime.now(dt.timezone.utc).isoformat()}
    atomic_write(receipt_path(lake.root, dt.date.fromisoformat(manifest.score_date)), json.dumps(receipt, indent=1))
    shutil.rmtree(folder, ignore_errors=True)


def receipt_path(lake_root: Path, score_date: dt.date) -> Path:
    return Path(lake_root) / RECEIPTS / f"score_date={score_date.isoformat()}.json"


def read_receipt(lake_root: Path, score_date: dt.date) -> dict:
    return json.loads(receipt_path(lake_root, score_date).read_text())


def require_passed(folder: Path, score_date: dt.date) -> HeldManifest:
    """The held write's manifest, if it was validated, passed, and holds exactly what passed."""
    path = folder / VERDICT
    if not path.is_file():
        raise PipelineError(f"the held predictions for {score_date} have not been validated: "
                            f"run validate --table user_interest_predictions --date {score_date} first")
    verdict = json.loads(path.read_text())
    if not verdict["passed"]:
        raise PipelineError(f"the held predictions for {score_date} failed validation; nothing was published")
    manifest = HeldManifest(**json.loads((folder / MANIFEST).read_text()))
    if verdict.get("content") != content_fingerprint(folder, manifest):
        raise PipelineError(f"the held predictions for {score_date} changed after validation; validate again")
    return manifest
