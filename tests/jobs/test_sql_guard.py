"""``jobs sql`` against hostile statements: each engine refuses, writes no file and reads nothing outside the lake.

The lake here is two tiny Delta tables written by delta-rs, next to a secret file outside the lake, another Delta
table outside it and a lake folder whose name is an SQL injection. Every statement must raise a one-line
``PipelineError`` and leave every file under the test folder exactly as it was (no new file, none changed).
"""
from __future__ import annotations

from pathlib import Path

import duckdb
import pyarrow as pa
import pytest
from deltalake import write_deltalake

from jobs.core.config import PipelineConfig
from jobs.core.errors import PipelineError
from jobs.sql import QUERY_ENGINES, connect
from jobs.sql.guard import lake_tables

SECRET = "top-secret-line"


@pytest.fixture(scope="module")
def hostile_site(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("sql_guard")
    lake = root / "lake"
    write_deltalake(str(lake / "events"), pa.table({"user_id": ["u1", "u2"], "n": [1, 2]}))
    write_deltalake(str(lake / "pipeline_runs"), pa.table({"stage": ["ingest"], "rows": [2]}))
    # A folder whose name would close the identifier and run a second statement if pasted into SQL.
    write_deltalake(str(lake / 'x" AS SELECT 1; DROP VIEW events; --'), pa.table({"a": [1]}))
    write_deltalake(str(root / "elsewhere"), pa.table({"secret": [SECRET]}))
    (root / "secret.txt").write_text(f"{SECRET}\n")
    return {"root": root, "lake": lake, "secret": root / "secret.txt", "elsewhere": root / "elsewhere",
            "out": root / "written.csv"}


def _tree(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*") if p.is_file()}


def _refused(engine: str, site: dict[str, Path], template: str) -> None:
    statement = template.format(**{k: str(v) for k, v in site.items()})
    before = _tree(site["root"])
    with pytest.raises(PipelineError) as refusal:
        QUERY_ENGINES[engine](PipelineConfig(lake=site["lake"]), statement)
    assert len(str(refusal.value).strip().splitlines()) == 1
    assert SECRET not in str(refusal.value)
    assert _tree(site["root"]) == before, f"{engine} changed files for: {statement}"


# Statements DuckDB's parser sees; the same text goes to DuckDB itself and to delta-rs' DataFusion.
WRITES = [
    "COPY (SELECT 1) TO '{out}'",
    "COPY (SELECT 1) TO '{lake}/events/part-0.parquet' (FORMAT parquet)",
    "EXPLAIN ANALYZE COPY (SELECT 42) TO '{out}'",
    "EXPLAIN SELECT * FROM events",
    "DELETE FROM events",
    "INSERT INTO events VALUES ('u3', 3)",
    "UPDATE events SET n = 0",
    "CREATE TABLE t AS SELECT * FROM events",
    "CREATE EXTERNAL TABLE t STORED AS CSV LOCATION '{secret}'",
    "DROP VIEW events",
    "ATTACH '{root}/attached.db' AS other",
    "EXPORT DATABASE '{root}/export'",
    "CHECKPOINT",
    "SELECT 1; COPY (SELECT 1) TO '{out}'",
    "SELECT * FROM query('COPY (SELECT 1) TO ''{out}''')",
    "SELECT * FROM query_table('events')",
]
OUTSIDE_READS = [
    "SELECT * FROM read_text('{secret}')",
    "SELECT * FROM read_csv('{secret}')",
    "SELECT * FROM read_blob('{secret}')",
    "SELECT * FROM '{secret}'",
    "SELECT * FROM \"{secret}\"",
    "SELECT * FROM glob('{root}/*')",
    "SELECT * FROM read_text('{lake}/events/_delta_log/00000000000000000000.json')",
    "SELECT * FROM parquet_scan('{elsewhere}/*.parquet')",
    "SELECT * FROM delta_scan('{elsewhere}')",
    "SELECT * FROM delta_scan('{lake}/../elsewhere')",
    "SELECT * FROM delta_scan('{lake}/events' || '/../../elsewhere')",
    "SELECT * FROM events, read_text('{secret}')",
    "SELECT * FROM events WHERE user_id IN (SELECT content FROM read_text('{secret}'))",
    "WITH s AS (SELECT * FROM read_text('{secret}')) SELECT * FROM s",
    "SELECT * FROM main.secret_table",
    "SELECT * FROM system.main.duckdb_settings()",
    "SELECT * FROM duckdb_settings()",
    "SELECT * FROM sqlite_scan('{root}/x.db', 't')",
    # A CTE named like a path binds it inside its own query only: outside, the name is DuckDB's replacement scan.
    "SELECT * FROM (WITH \"{lake}/events/_delta_log/00000000000000000000.json\" AS (SELECT 1) SELECT 1), "
    "\"{lake}/events/_delta_log/00000000000000000000.json\"",
    "SELECT * FROM (WITH x AS (SELECT 1 AS a) SELECT * FROM x) t, x",
]
EXTENSIONS_AND_SETTINGS = [
    "INSTALL httpfs",
    "LOAD httpfs",
    "FORCE INSTALL delta FROM core_nightly",
    "SET enable_external_access = true",
    "SET allowed_directories = ['/']",
    "RESET lock_configuration",
    "PRAGMA enable_profiling",
    "SET datafusion.execution.batch_size = 1",
    "CALL pragma_version()",
]


@pytest.mark.parametrize("engine", ["duckdb", "delta-rs"])
@pytest.mark.parametrize("template", WRITES + OUTSIDE_READS + EXTENSIONS_AND_SETTINGS)
def test_duckdb_parsed_engines_refuse(hostile_site, engine, template):
    _refused(engine, hostile_site, template)


@pytest.mark.parametrize("engine", ["duckdb", "delta-rs"])
@pytest.mark.parametrize("statement", [
    # DuckDB and DataFusion both nest block comments: both see only the SELECT, and nothing is written.
    "/* /* */ COPY (SELECT 1 AS a) TO '{out}' -- */ SELECT count(*) AS n FROM events",
    # Dollar quoting and backslashes: a string to both parsers, not the end of one.
    "SELECT $$'; COPY (SELECT 1) TO '{out}'; --$$ AS s, count(*) AS n FROM events",
    "SELECT 'a\\' AS s, count(*) AS n FROM events",
])
def test_parser_differences_do_not_smuggle_a_statement(hostile_site, engine, statement):
    site = hostile_site
    before = _tree(site["root"])
    columns, rows = QUERY_ENGINES[engine](PipelineConfig(lake=site["lake"]), statement.format(out=site["out"]))
    assert rows[0][columns.index("n")] == 2
    assert _tree(site["root"]) == before


def test_the_engines_still_read_the_lake_and_time_travel(hostile_site):
    config = PipelineConfig(lake=hostile_site["lake"])
    for engine in ("duckdb", "delta-rs"):
        _, rows = QUERY_ENGINES[engine](config, "WITH e AS (SELECT * FROM events) SELECT sum(n) FROM e")
        assert rows == [(3,)]
    _, rows = QUERY_ENGINES["duckdb"](config, f"SELECT count(*) FROM delta_scan('{hostile_site['lake']}/events', "
                                              "version => 0)")
    assert rows == [(2,)]
    _, rows = QUERY_ENGINES["duckdb"](config, "SELECT count(*) FROM range(3)")
    assert rows == [(3,)]


def test_a_folder_name_is_never_pasted_into_sql(hostile_site):
    assert sorted(lake_tables(hostile_site["lake"])) == ["events", "pipeline_runs"]
    _, rows = QUERY_ENGINES["duckdb"](PipelineConfig(lake=hostile_site["lake"]), "SELECT count(*) FROM events")
    assert rows == [(2,)]


def test_duckdb_itself_refuses_files_and_settings_without_the_statement_check(hostile_site):
    """The engine's own settings, not only the check: a raw statement on the confined connection fails."""
    connection = connect(hostile_site["lake"])
    for statement in (f"SELECT * FROM read_text('{hostile_site['secret']}')", f"COPY (SELECT 1) TO '{hostile_site['out']}'",
                      "SET enable_external_access = true", "INSTALL httpfs"):
        with pytest.raises(duckdb.Error):
            connection.execute(statement)
    assert not hostile_site["out"].exists()


SPARK_HOSTILE = [
    # writes and state changes
    "INSERT INTO events SELECT 'u3', 3",
    "INSERT OVERWRITE DIRECTORY '{root}/dir' USING parquet SELECT 1",
    "CREATE TABLE t USING parquet LOCATION '{root}/t' AS SELECT 1 AS a",
    "DROP VIEW events",
    "CACHE TABLE events",
    "SET spark.sql.runSQLOnFiles = true",
    "RESET",
    "ADD JAR {root}/x.jar",
    "CREATE TEMPORARY FUNCTION f AS 'java.lang.Runtime'",
    "SELECT 1; SELECT 2",
    # Java reflection
    "SELECT reflect('java.lang.System', 'getProperty', 'user.home')",
    "SELECT java_method('java.lang.System', 'getenv', 'HOME')",
    "SELECT try_reflect('java.io.File', 'createTempFile', 'pwn', '.x')",
    "SELECT * FROM events WHERE n = (SELECT reflect('java.lang.Thread', 'sleep', 1L))",
    # file-source syntax and file-reading table functions
    "SELECT * FROM text.`{secret}`",
    "SELECT * FROM csv.`{secret}`",
    "SELECT * FROM json.`{secret}`",
    "SELECT * FROM parquet.`{elsewhere}`",
    "SELECT * FROM delta.`{elsewhere}`",
    "SELECT * FROM events WHERE user_id IN (SELECT value FROM text.`{secret}`)",
    "WITH s AS (SELECT * FROM text.`{secret}`) SELECT * FROM s",
    "SELECT * FROM IDENTIFIER('text.`{secret}`')",
    "SELECT * FROM read_files('{secret}')",
    "SELECT * FROM global_temp.events",
    "SELECT * FROM (WITH x AS (SELECT 1 AS a) SELECT * FROM x) t, x",
    # shell commands through script transforms
    "SELECT TRANSFORM(user_id) USING 'touch {out}' AS (x) FROM events",
    "SELECT * FROM events WHERE user_id IN (SELECT TRANSFORM(user_id) USING 'touch {out}' AS (x) FROM events)",
]


@pytest.mark.parametrize("template", SPARK_HOSTILE)
def test_spark_sql_refuses(spark, hostile_site, template):
    _refused("spark", hostile_site, template)
    assert not list(Path("/tmp").glob("pwn*.x"))


def test_spark_sql_still_reads_the_lake(spark, hostile_site):
    columns, rows = QUERY_ENGINES["spark"](PipelineConfig(lake=hostile_site["lake"]),
                                           "WITH e AS (SELECT * FROM events) SELECT sum(n) AS total FROM e "
                                           "WHERE n IN (SELECT n FROM events) AND n < (SELECT max(id) FROM range(10))")
    assert (columns, rows) == (["total"], [(3,)])
    # The confined session is its own: the shared one keeps its functions.
    assert spark.sql("SELECT reflect('java.lang.Math', 'abs', -1) AS a").collect()[0].a == "1"


def test_the_confined_spark_session_itself_refuses_files_and_reflection(spark, hostile_site):
    """Spark's own settings, not only the plan check: the raw session cannot read a file by path or call Java."""
    from jobs.sql.guard import confined_spark_session

    session = confined_spark_session(spark)
    for statement in (f"SELECT * FROM text.`{hostile_site['secret']}`", "SELECT java_method('java.lang.Math', 'abs', -1)"):
        with pytest.raises(Exception) as refusal:
            session.sql(statement).collect()
        assert SECRET not in str(refusal.value)
