"""Held predictions: the hold -> validate -> publish protocol, in one place for the three stages that share it.

The nightly DAG runs ``score --hold``, ``validate --table
user_interest_predictions`` and ``publish`` as three tasks, so the prepared
rows must outlive one process:

1. ``hold``: score writes the date's three partitions as Delta tables (like
   the published ones) under ``<lake>/_candidates/score_date=D/``, with a
   manifest saying what they are;
2. ``validate_held``: the predictions' suite checks them, and the verdict is
   recorded next to them, keyed to the held tables' versions;
3. ``publishable`` then ``publish_held``: commits them into the lake only when the verdict passed
   for exactly those versions: rows changed after validation, or never
   validated, are refused, and the published tables keep their previous
   version. Then the held folder goes.

A single ``score`` run without ``--hold`` does the same in one process
through ``gated_write`` (prepare, validate, commit).
"""
from __future__ import annotations

import datetime as dt
import json
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

from jobs.core.errors import PipelineError
from jobs.core.lake import GatedWrite, Lake, gated_write, open_lake
from jobs.core.quality.gate import check_partition
from jobs.core.tables import CATEGORY_DEMAND_FORECAST, MARKETING_SEGMENTS, PARTITIONS, USER_INTEREST_PREDICTIONS

# The folder's name predates the word "held"; maintain sweeps abandoned ones (older lakes have them too).
HELD_DIR = "_candidates"
MANIFEST, VERDICT = "manifest.json", "validated.json"
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
    manifest = read_manifest(lake.root, score_date)
    frame = held_lake(lake, score_date).read(USER_INTEREST_PREDICTIONS)
    report = check_partition(lake, config, USER_INTEREST_PREDICTIONS, [score_date], frame,
                             expected_rows=manifest.active_users, top_k=manifest.top_k)
    verdict = {"passed": not report.critical, "versions": _versions(lake, score_date), "summary": report.summary()}
    (held_root(lake.root, score_date) / VERDICT).write_text(json.dumps(verdict, indent=1, default=str))
    return manifest, report


def publishable(lake: Lake, score_date: dt.date) -> HeldManifest:
    """The manifest of the date's held write, once it is known to have passed validation as it is now."""
    manifest = read_manifest(lake.root, score_date)
    require_passed(lake, score_date)
    return manifest


def publish_held(lake: Lake, manifest: HeldManifest, versions: dict[str, int]) -> None:
    """Commit the held partitions ``publishable`` returned ``manifest`` for (each an atomic partition overwrite,
    PUBLISH_ORDER), then drop them. ``versions`` is filled as each table commits: a failure part-way still says
    which are new."""
    score_date = dt.date.fromisoformat(manifest.score_date)
    held = held_lake(lake, score_date)
    replace = {"score_date": [manifest.score_date]}
    for table in PUBLISH_ORDER:
        versions[table] = lake.overwrite_partitions(table, held.read(table), PARTITIONS[table], replace)
    shutil.rmtree(held_root(lake.root, score_date), ignore_errors=True)


def require_passed(lake: Lake, score_date: dt.date) -> None:
    """Refuse to publish a held write that was not validated, failed, or changed since it passed."""
    path = held_root(lake.root, score_date) / VERDICT
    if not path.is_file():
        raise PipelineError(f"the held predictions for {score_date} have not been validated: "
                            f"run validate --table user_interest_predictions --date {score_date} first")
    verdict = json.loads(path.read_text())
    if not verdict["passed"]:
        raise PipelineError(f"the held predictions for {score_date} failed validation; nothing was published")
    if verdict["versions"] != _versions(lake, score_date):
        raise PipelineError(f"the held predictions for {score_date} changed after validation; validate again")


def _versions(lake: Lake, score_date: dt.date) -> dict[str, int]:
    held = held_lake(lake, score_date)
    manifest = read_manifest(lake.root, score_date)
    return {table: held.version(table) for table in sorted(manifest.rows)}
