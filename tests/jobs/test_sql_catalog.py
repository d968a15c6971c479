"""The lake's tables where analysts' own tools find them: the read-only DuckDB database and Spark's catalog, each
answering the documented ``sql/`` queries unchanged, and agreeing with ``python -m jobs sql``."""
from __future__ import annotations

import datetime as dt
import decimal
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest
from deltalake import write_deltalake

from jobs.core.config import PipelineConfig
from jobs.core.errors import PipelineError
from jobs.sql import delta_extension_path, query_duckdb
from jobs.catalog import DUCKDB_FILE, register_spark_tables, write_duckdb_catalog
from jobs.sql.guard import lake_tables

SQL_FILES = sorted((Path(__file__).resolve().parents[2] / "sql").glob("*.sql"))


def open_read_only(database: Path) -> duckdb.DuckDBPyConnection:
    connection = duckdb.connect(str(database), read_only=True)
    connection.execute(f"LOAD '{delta_extension_path()}'")  # a user's DuckDB autoloads it; the suite is offline
    return connection


def plain(rows) -> list[tuple]:
    """Rows as comparable values: dates as text, decimals and floats rounded, structs as dicts."""
    def value(v):
        if isinstance(v, (dt.date, dt.datetime)):
            return v.isoformat()
        if isinstance(v, (float, decimal.Decimal)):
            return round(float(v), 6)
        return v
    return [tuple(value(v) for v in row) for row in rows]


@pytest.fixture(scope="module")
def catalog_lake(scored_lake, tmp_path_factory) -> Path:
    """A copy of the scored lake, so writing its catalog changes nothing other tests read."""
    root = tmp_path_factory.mktemp("catalog") / "lake"
    shutil.copytree(scored_lake, root, ignore=shutil.ignore_patterns("models", "raw", "_gx"))
    return root


def test_the_duckdb_database_has_a_view_per_table_is_read_only_and_answers_like_jobs_sql(catalog_lake):
    database = write_duckdb_catalog(catalog_lake)
    assert database == catalog_lake.resolve() / DUCKDB_FILE
    assert stat.S_IMODE(database.stat().st_mode) == 0o444
    config = PipelineConfig().with_overrides(lake=catalog_lake)
    with open_read_only(database) as connection:
        views = {name for (name,) in connection.execute("SELECT view_name FROM duckdb_views() WHERE NOT internal").fetchall()}
        assert views == set(lake_tables(catalog_lake)) and {"events", "user_interest_predictions"} <= views
        for path in SQL_FILES:
            query = path.read_text()
            rows = connection.execute(query).fetchall()
            assert rows, path.name
            assert plain(rows) == plain(query_duckdb(config, query)[1]), path.name
        # Nothing a reader does changes the file: it is opened read-only.
        with pytest.raises(duckdb.Error, match="read-only"):
            connection.execute("CREATE VIEW mine AS SELECT 1")


def test_a_refresh_replaces_the_file_whole_and_an_open_reader_keeps_its_view(catalog_lake, tmp_path):
    target = tmp_path / "analysts.duckdb"
    write_duckdb_catalog(catalog_lake, target)
    reader = open_read_only(target)
    before = reader.execute("SELECT count(*) FROM events").fetchone()
    extra = catalog_lake / "late_table"
    write_deltalake(str(extra), pa.table({"a": [1, 2, 3]}))
    try:
        write_duckdb_catalog(catalog_lake, target)
        # The reader holds the old file: it still answers, and does not see the new table.
        assert reader.execute("SELECT count(*) FROM events").fetchone() == before
        with pytest.raises(duckdb.CatalogException):
            reader.execute("SELECT * FROM late_table")
        # A new reader (another process: DuckDB shares one open database per path within a process) sees it.
        code = ("import duckdb, sys; c = duckdb.connect(sys.argv[1], read_only=True); c.execute(f\"LOAD '{sys.argv[2]}'\"); "
                "print(c.execute('SELECT sum(a) FROM late_table').fetchone()[0])")
        fresh = subprocess.run([sys.executable, "-c", code, str(target), delta_extension_path()], capture_output=True,
                               text=True, timeout=60)
        assert fresh.stdout.strip() == "6", fresh.stderr
    finally:
        reader.close()
        shutil.rmtree(extra)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["analysts.duckdb"], "no leftovers beside the file"


def test_awkward_paths_and_folder_names_stay_data(tmp_path, spark):
    """A lake path with a quote and a space, and a folder whose name is SQL: the path is a literal on both engines
    (Spark reads DuckDB's doubled quote as two literals joined), the folder is left out."""
    lake = tmp_path / "o'brien lake"
    write_deltalake(str(lake / "events"), pa.table({"user_id": ["u1", "u2"]}))
    write_deltalake(str(lake / "x; DROP VIEW events"), pa.table({"a": [1]}))
    with open_read_only(write_duckdb_catalog(lake)) as connection:
        assert connection.execute("SELECT count(*) FROM events").fetchone() == (2,)
        assert {n for (n,) in connection.execute("SELECT view_name FROM duckdb_views() WHERE NOT internal").fetchall()} == {"events"}
    assert register_spark_tables(spark, lake, "im_awkward") == ["events"]
    assert spark.sql("SELECT count(*) AS n FROM im_awkward.events").first().n == 2


def test_spark_catalog_registers_once_and_runs_the_sql_files_unchanged_with_duckdbs_answers(catalog_lake, spark):
    database = "im_catalog_test"
    names = register_spark_tables(spark, catalog_lake, database)
    assert sorted(names) == sorted(lake_tables(catalog_lake))
    assert register_spark_tables(spark, catalog_lake, database) == []  # already there, at the same place
    config = PipelineConfig().with_overrides(lake=catalog_lake)
    spark.sql(f"USE {database}")
    try:
        for path in SQL_FILES:
            query = path.read_text()
            rows = [tuple(r) for r in spark.sql(query).collect()]
            assert rows and plain(rows) == plain(query_duckdb(config, query)[1]), path.name
    finally:
        spark.sql("USE default")


def test_a_name_registered_elsewhere_is_refused_not_replaced(catalog_lake, spark, tmp_path):
    other = tmp_path / "other"
    write_deltalake(str(other / "events"), pa.table({"user_id": ["x"]}))
    register_spark_tables(spark, other, "im_conflict")
    with pytest.raises(PipelineError, match="registered at .*other/events.*drop it"):
        register_spark_tables(spark, catalog_lake, "im_conflict")
    assert spark.sql("SELECT count(*) AS n FROM im_conflict.events").first().n == 1
    with pytest.raises(PipelineError, match="not a plain database name"):
        register_spark_tables(spark, catalog_lake, "x`; DROP DATABASE default; --")


def test_the_catalog_command_writes_the_database_and_says_how_to_open_it(catalog_lake, tmp_path):
    from tests.conftest import run_jobs

    target = tmp_path / "cli.duckdb"
    code, out, err = run_jobs("catalog", "--lake", str(catalog_lake), "--duckdb", str(target), "--no-spark")
    assert code == 0, err
    assert f"duckdb -readonly {target}" in out and target.is_file()
    code, out, err = run_jobs("catalog", "--lake", str(tmp_path / "empty"), "--no-spark")
    assert code == 1 and err.strip().count("\n") == 0 and "no Delta tables" in err
    assert os.access(target, os.R_OK)
