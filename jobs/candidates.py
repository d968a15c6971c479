"""Held score outputs: what ``score --hold`` wrote and ``publish`` may commit.

The nightly DAG runs score, validate predictions and publish as three tasks,
so the staged rows must outlive one process. They are held as Delta tables
under ``<lake>/_candidates/score_date=D/`` (Delta tables like the published
ones), with a manifest saying what they are. ``validate``
records its verdict next to them, keyed to the candidate's table versions,
and ``publish`` commits only a candidate whose verdict passed: rows changed
after validation, or never validated, are refused.
"""
from __future__ import annotations

import datetime as dt
import json
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

from jobs.errors import PipelineError
from jobs.lake import Lake, open_lake

MANIFEST, VERDICT = "manifest.json", "validated.json"


@dataclass(frozen=True)
class Candidate:
    score_date: str
    model_version: str
    active_users: int
    top_k: int
    rows: dict[str, int]


def candidate_root(lake_root: Path, score_date: dt.date) -> Path:
    return Path(lake_root) / "_candidates" / f"score_date={score_date.isoformat()}"


def candidate_lake(lake: Lake, score_date: dt.date) -> Lake:
    """A lake rooted at the date's candidate folder."""
    return open_lake(lake.spark, str(candidate_root(lake.root, score_date)))


def reset(lake_root: Path, score_date: dt.date) -> None:
    """Drop an earlier candidate of the date, so a held write never mixes with a stale one."""
    shutil.rmtree(candidate_root(lake_root, score_date), ignore_errors=True)


def write_manifest(lake_root: Path, candidate: Candidate) -> None:
    root = candidate_root(lake_root, dt.date.fromisoformat(candidate.score_date))
    (root / MANIFEST).write_text(json.dumps(asdict(candidate), indent=1, sort_keys=True))


def read_manifest(lake_root: Path, score_date: dt.date) -> Candidate:
    path = candidate_root(lake_root, score_date) / MANIFEST
    if not path.is_file():
        raise PipelineError(f"no held predictions for {score_date} under {path.parent}: run score --hold first")
    return Candidate(**json.loads(path.read_text()))


def record_verdict(lake: Lake, score_date: dt.date, passed: bool, summary: dict) -> None:
    versions = _versions(lake, score_date)
    path = candidate_root(lake.root, score_date) / VERDICT
    path.write_text(json.dumps({"passed": passed, "versions": versions, "summary": summary}, indent=1, default=str))


def require_passed(lake: Lake, score_date: dt.date) -> None:
    """Refuse to publish a candidate that was not validated, failed, or changed since it passed."""
    path = candidate_root(lake.root, score_date) / VERDICT
    if not path.is_file():
        raise PipelineError(f"the held predictions for {score_date} have not been validated: "
                            f"run validate --table user_interest_predictions --date {score_date} first")
    verdict = json.loads(path.read_text())
    if not verdict["passed"]:
        raise PipelineError(f"the held predictions for {score_date} failed validation; nothing was published")
    if verdict["versions"] != _versions(lake, score_date):
        raise PipelineError(f"the held predictions for {score_date} changed after validation; validate again")


def _versions(lake: Lake, score_date: dt.date) -> dict[str, int]:
    held = candidate_lake(lake, score_date)
    manifest = read_manifest(lake.root, score_date)
    return {table: held.version(table) for table in sorted(manifest.rows)}
