"""Every query in ``sql/`` runs as it is on a small scored lake and returns the columns it documents."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.conftest import run_jobs

SQL = Path(__file__).resolve().parents[1] / "sql"
DUCKDB_FILES = sorted(SQL.glob("*.sql"))
SPARK_FILES = sorted((SQL / "spark").glob("*.sql"))


def documented_columns(path: Path) -> list[str]:
    found = re.findall(r"^-- columns: (.+)$", path.read_text(), re.MULTILINE)
    assert len(found) == 1, f"{path.name} needs exactly one '-- columns:' line"
    return [c.strip() for c in found[0].split(",")]


def _query(lake: Path, path: Path, engine: str) -> list[dict]:
    code, out, err = run_jobs("sql", "--lake", str(lake), "--engine", engine, "--file", str(path), "--format", "json")
    assert code == 0, f"{path.name} on {engine}: {err}"
    return json.loads(out)


def test_the_folder_has_the_queries_the_users_asked_for():
    names = {p.name for p in DUCKDB_FILES + SPARK_FILES}
    assert {"inventory_demand_shift.sql", "marketing_audience.sql", "migration_flows.sql",
            "quarantine_reasons.sql", "migration_into_categories.sql"} <= names


@pytest.mark.parametrize("engine", ["duckdb", "delta-rs"])
@pytest.mark.parametrize("path", DUCKDB_FILES, ids=lambda p: p.stem)
def test_query_returns_its_documented_columns(scored_lake, path, engine):
    rows = _query(scored_lake, path, engine)
    assert rows, f"{path.name} returned no rows on the scored lake"
    assert list(rows[0]) == documented_columns(path)


@pytest.mark.parametrize("path", SPARK_FILES, ids=lambda p: p.stem)
def test_spark_sql_example_runs_on_spark(scored_lake, path):
    rows = _query(scored_lake, path, "spark")
    assert rows and list(rows[0]) == documented_columns(path)


def test_the_engines_agree_on_the_demand_shift(scored_lake):
    """The same file on DuckDB and DataFusion: same rows (the fallback is not a different answer)."""
    path = SQL / "inventory_demand_shift.sql"
    duck, datafusion = _query(scored_lake, path, "duckdb"), _query(scored_lake, path, "delta-rs")
    assert duck == datafusion
    latest = duck[0]["score_date"]
    assert all(r["score_date"] == latest and r["expected_users_change"] is not None for r in duck)
    changes = [r["expected_users_change"] for r in duck]
    assert changes == sorted(changes, reverse=True)


def test_marketing_audience_is_one_category_ranked(scored_lake):
    rows = _query(scored_lake, SQL / "marketing_audience.sql", "duckdb")
    assert len({r["category"] for r in rows}) == 1
    assert [r["rank"] for r in rows] == list(range(1, len(rows) + 1))


@pytest.mark.parametrize("engine", ["duckdb", "delta-rs", "spark"])
@pytest.mark.parametrize("statement", ["DELETE FROM events", "DROP TABLE events", "SELECT 1; SELECT 2",
                                       "CREATE TABLE x AS SELECT 1 AS a"])
def test_every_engine_refuses_anything_but_one_read(scored_lake, engine, statement):
    code, out, err = run_jobs("sql", "--lake", str(scored_lake), "--engine", engine, statement)
    assert code != 0 and len(err.strip().splitlines()) == 1, err
    assert (scored_lake / "events" / "_delta_log").is_dir()
