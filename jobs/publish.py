"""``python -m jobs publish --date D``: commit the predictions ``score --hold`` wrote and ``validate`` passed.

The last task of the nightly DAG. It commits the date's held partitions of
``user_interest_predictions``, ``category_demand_forecast`` and
``marketing_segments`` into the lake (each an atomic partition overwrite,
predictions last so a reader never sees predictions without their
forecast), then drops the candidate. A candidate that was never validated,
failed, or changed after validation is refused, and the published tables keep
their previous version.
"""
from __future__ import annotations

import argparse
import shutil

from jobs import candidates
from jobs.config import PipelineConfig
from jobs.runs import record_run
from jobs.stage import open_stage_lake, require_date
from jobs.tables import CATEGORY_DEMAND_FORECAST, MARKETING_SEGMENTS, PARTITIONS, USER_INTEREST_PREDICTIONS

ORDER = (CATEGORY_DEMAND_FORECAST, MARKETING_SEGMENTS, USER_INTEREST_PREDICTIONS)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    pass


def run(args: argparse.Namespace, config: PipelineConfig) -> dict:
    score_date = require_date(args.date, "publish", "the score date whose held predictions to publish")
    lake = open_stage_lake(config, "publish")
    manifest = candidates.read_manifest(lake.root, score_date)
    candidates.require_passed(lake, score_date)
    held = candidates.candidate_lake(lake, score_date)
    replace = {"score_date": [score_date.isoformat()]}
    versions = {}
    with record_run(lake, "publish", score_date) as metrics:
        metrics.details.update({"model_version": manifest.model_version, "rows": manifest.rows, "versions": versions})
        for table in ORDER:  # recorded as they commit: a failure part-way still says which tables are new
            versions[table] = lake.overwrite_partitions(table, held.read(table), PARTITIONS[table], replace)
        metrics.rows_in = metrics.rows_out = manifest.rows[USER_INTEREST_PREDICTIONS]
    shutil.rmtree(candidates.candidate_root(lake.root, score_date), ignore_errors=True)
    print(f"publish {score_date}: {manifest.rows[USER_INTEREST_PREDICTIONS]:,} predictions by "
          f"{manifest.model_version}; table versions {versions}")
    return {"rows": manifest.rows, "versions": versions}
