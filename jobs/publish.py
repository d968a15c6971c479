"""``python -m jobs publish --date D``: commit the predictions ``score --hold`` wrote and ``validate`` passed.

The last task of the nightly DAG. It commits the date's held partitions of
``user_interest_predictions``, ``category_demand_forecast`` and
``marketing_segments`` into the lake (each an atomic partition overwrite,
predictions last so a reader never sees predictions without their
forecast), then drops the held write. One that was never validated,
failed, or changed after validation is refused, and the published tables keep
their previous version (``jobs/core/held.py``). Run again after it succeeded, it
finds the date's receipt and does nothing; run again after it stopped part-way,
it finishes the same commits.
"""
from __future__ import annotations

import argparse

from jobs.core.config import PipelineConfig
from jobs.core.stage import open_stage_lake, require_date
from jobs.core.tables import USER_INTEREST_PREDICTIONS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    pass


def run(args: argparse.Namespace, config: PipelineConfig) -> dict:
    from jobs.core import held
    from jobs.core.runs import record_run

    score_date = require_date(args.date, "publish", "the score date whose held predictions to publish")
    lake = open_stage_lake(config, "publish")
    claimed = held.claim(lake, score_date)  # refused before a run is recorded
    if claimed is None:
        receipt = held.read_receipt(lake.root, score_date)
        print(f"publish {score_date}: already published (model {receipt['manifest']['model_version']}, table "
              f"versions {receipt['versions']}); nothing to do")
        return {"rows": receipt["manifest"]["rows"], "versions": receipt["versions"], "already_published": True}
    manifest, folder = claimed
    versions: dict[str, int] = {}
    with record_run(lake, "publish", score_date) as metrics:
        metrics.details.update({"model_version": manifest.model_version, "rows": manifest.rows, "versions": versions})
        held.publish_held(lake, manifest, folder, versions)
        metrics.rows_in = metrics.rows_out = manifest.rows[USER_INTEREST_PREDICTIONS]
    print(f"publish {score_date}: {manifest.rows[USER_INTEREST_PREDICTIONS]:,} predictions by "
          f"{manifest.model_version}; table versions {versions}")
    return {"rows": manifest.rows, "versions": versions}
