"""What each nightly task reads and writes, as Airflow Assets: the data flow from landing to the published tables.

Every lake table the DAG writes is an Asset (``file://<lake>/<table>``), and
every task names the assets it reads (inlets) and writes (outlets), so the
Airflow UI's asset graph shows the flow, and a task's success records an asset
event per table it wrote (other DAGs can be scheduled on them). The map is
data, not code in the DAG, so ``tests/dags/test_dag_integrity.py`` can hold it
against the lake's table list: a table added to ``jobs/core/tables.py`` without
a writer here fails that test.

Left out on purpose: ``maintain`` (OPTIMIZE and VACUUM rewrite files, not
data: an asset event for every table each week would claim changes nobody
made) and the branch and sensor tasks, which write nothing.
"""
from __future__ import annotations

from pathlib import Path

from airflow.sdk import Asset

from jobs.core import tables

GROUP = "interest_migration"
LANDING = "landing"
# The model registry's folder (versions, and the champion): not a Delta table, but the train -> evaluate -> score flow
# runs through it.
MODEL_REGISTRY = "models"
# The held predictions (jobs/core/held.py): score's output, validated, then published.
HELD_PREDICTIONS = "_candidates"
# The read-only DuckDB database with a view per table (jobs/catalog.py).
SQL_CATALOG = "sql_catalog"
# The nightly dashboard pages (jobs/dashboard.py).
DASHBOARD = "dashboard"
PUBLISHED = (tables.USER_INTEREST_PREDICTIONS, tables.CATEGORY_DEMAND_FORECAST, tables.MARKETING_SEGMENTS)
EVENTS_TABLES = (tables.EVENTS_CLEAN, tables.EVENTS_QUARANTINE, tables.EVENTS, tables.SESSIONS)

# task id -> (reads, writes). Every Spark stage also appends its row to pipeline_runs (jobs/core/stage.py).
FLOW: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "wait_for_landing": ((LANDING,), ()),
    "ingest": ((LANDING,), (tables.EVENTS_CLEAN, tables.EVENTS_QUARANTINE)),
    "dedupe": ((tables.EVENTS_CLEAN, tables.EVENTS), (tables.EVENTS,)),
    "sessionize": ((tables.EVENTS,), (tables.SESSIONS,)),
    "validate": (EVENTS_TABLES, ()),
    "features_training": ((tables.EVENTS,), (tables.USER_SEQUENCES,)),
    "train": ((tables.USER_SEQUENCES, MODEL_REGISTRY), (MODEL_REGISTRY,)),
    "evaluate": ((tables.USER_SEQUENCES, tables.EVENTS, MODEL_REGISTRY), (MODEL_REGISTRY, tables.MODEL_DECISIONS)),
    "features": ((tables.EVENTS, MODEL_REGISTRY), (tables.USER_SEQUENCES,)),
    "score": ((tables.USER_SEQUENCES, MODEL_REGISTRY, tables.CATEGORY_DEMAND_FORECAST), (HELD_PREDICTIONS,)),
    "validate_predictions": ((HELD_PREDICTIONS,), ()),
    "publish": ((HELD_PREDICTIONS,), PUBLISHED),
    "refresh_sql_catalog": ((*EVENTS_TABLES, tables.PIPELINE_RUNS, tables.USER_SEQUENCES, tables.MODEL_DECISIONS,
                             *PUBLISHED), (SQL_CATALOG,)),
    "dashboard": ((tables.MODEL_DECISIONS, tables.PIPELINE_RUNS, tables.EVENTS_QUARANTINE, *PUBLISHED), (DASHBOARD,)),
}
# The tasks that run a Spark stage through jobs/core/stage.py, and so append to pipeline_runs.
RECORDS_RUNS = frozenset({"ingest", "dedupe", "sessionize", "validate", "features_training", "train", "evaluate",
                          "features", "score", "validate_predictions", "publish", "maintain"})


def asset(name: str, lake: Path) -> Asset:
    """The asset of one table (or folder) of the lake: its name, and its path as a file:// URI."""
    path = lake / ("interest_migration.duckdb" if name == SQL_CATALOG else name)
    return Asset(name=name, uri=path.resolve().as_uri(), group=GROUP)


def lineage(task_id: str, lake: Path) -> dict[str, list[Asset]]:
    """``inlets`` and ``outlets`` keyword arguments for a task (empty for a task that moves no data)."""
    reads, writes = FLOW.get(task_id, ((), ()))
    if task_id in RECORDS_RUNS:
        writes = (*writes, tables.PIPELINE_RUNS)
    return {"inlets": [asset(n, lake) for n in reads], "outlets": [asset(n, lake) for n in writes]}
