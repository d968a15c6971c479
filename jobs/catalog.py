"""``python -m jobs catalog``: the lake's tables where analysts' own SQL tools find them.

Two catalogs, refreshed by the nightly run after it publishes:

- **A DuckDB database file**, ``<lake>/interest_migration.duckdb``: one view
  per lake table (``SELECT * FROM delta_scan('<table folder>')``), for DBeaver,
  the DuckDB CLI (``duckdb -readonly lake/interest_migration.duckdb``) or a BI
  tool with a DuckDB driver. It holds no data, only the views, so it is small
  and always shows the tables' current versions. It is written aside and
  renamed over the old one (a reader never sees half of it, and a session that
  has the old file open keeps reading it), and it is made read-only (mode
  0444): a tool must open it read-only, so nobody's session changes the views
  others read. Opening it needs DuckDB's ``delta`` extension, which DuckDB
  installs on first use where it can reach its extension repository (offline,
  ``INSTALL`` it from the ``duckdb-extension-delta`` wheel's file). The views
  name the folders by absolute path: a copied or moved lake needs this run
  again, and the file is for machines that see the lake at the same path.
- **Spark's catalog**: each table registered as an external Delta table in a
  database (``--spark-database``, default ``interest_migration``), so cluster
  users write ``SELECT ... FROM interest_migration.events``, or ``USE`` the
  database and run the ``sql/`` files as they are (with the database's
  ``list_extract`` function, which indexes lists from 1 as DuckDB does). This runs on the session
  the stage gets: with ``IM_SPARK_REMOTE``, the Spark Connect server's catalog,
  which its clients share while it runs; with ``--spark`` on a cluster whose
  catalog is a metastore, that metastore. A table already registered at the
  same location is left alone; one registered elsewhere is refused, never
  replaced (a ``CREATE OR REPLACE`` of a Delta table would rewrite the data).

Registering never copies or changes a table, and ``maintain``'s OPTIMIZE and
VACUUM keep every view valid.
"""
from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

from jobs.core.config import PipelineConfig
from jobs.core.errors import PipelineError
from jobs.core.tables import PLAIN_NAME

DUCKDB_FILE = "interest_migration.duckdb"
SPARK_DATABASE = "interest_migration"
# DuckDB and DataFusion index lists from 1 (``list_extract(l, 1)`` is the first element); Spark SQL's ``l[1]`` is the
# second. The ``sql/`` files use ``list_extract``, which Spark gets here as a SQL function over the predictions'
# ranked categories, so the same text means the same on every engine (past the end: NULL, as DuckDB's).
SPARK_LIST_EXTRACT = ("list_extract(items ARRAY<STRUCT<category: STRING, probability: DOUBLE>>, position INT) "
                      "RETURNS STRUCT<category: STRING, probability: DOUBLE> RETURN try_element_at(items, position)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--duckdb", type=Path, help=f"the DuckDB database to write (default <lake>/{DUCKDB_FILE})")
    parser.add_argument("--spark", action=argparse.BooleanOptionalAction, default=None,
                        help="also register the tables in the Spark session's catalog (default: when IM_SPARK_REMOTE "
                             "names a Spark Connect server, whose clients then see them)")
    parser.add_argument("--spark-database", default=SPARK_DATABASE,
                        help=f"the Spark database to register them in (default {SPARK_DATABASE})")


def run(args: argparse.Namespace, config: PipelineConfig) -> dict:
    from jobs.sql.guard import lake_tables

    tables = lake_tables(config.lake)
    if not tables:
        raise PipelineError(f"no Delta tables under {config.lake}: run the pipeline first")
    target = write_duckdb_catalog(config.lake, args.duckdb)
    print(f"catalog: {len(tables)} views in {target} (open it read-only: duckdb -readonly {target})")
    result = {"duckdb": str(target), "tables": sorted(tables)}
    if args.spark if args.spark is not None else bool(config.spark_remote):
        from jobs.core.spark import build_spark

        registered = register_spark_tables(build_spark(config, "catalog"), config.lake, args.spark_database)
        print(f"catalog: {len(tables)} tables in Spark's database {args.spark_database} "
              f"({len(registered)} newly registered)")
        result["spark_registered"] = registered
    return result


def write_duckdb_catalog(lake: Path, target: Path | None = None) -> Path:
    """Write the view-per-table database for ``lake`` to ``target`` (default ``<lake>/interest_migration.duckdb``),
    replacing the previous one atomically; returns its path."""
    import duckdb

    from jobs.sql import delta_extension_path
    from jobs.sql.guard import lake_tables, quote_identifier, quote_literal

    target = (target or lake / DUCKDB_FILE).resolve()
    target.parent.mkdir(parents=True, exist_ok=True)
    folder = tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent)
    building = Path(folder) / target.name
    try:
        connection = duckdb.connect(str(building), config={"autoinstall_known_extensions": False,
                                                           "autoload_known_extensions": False})
        try:
            connection.execute(f"LOAD {quote_literal(delta_extension_path())}")
            for name, path in lake_tables(lake).items():
                connection.execute(f"CREATE VIEW {quote_identifier(name)} AS "
                                   f"SELECT * FROM delta_scan({quote_literal(str(path))})")
            connection.execute("CHECKPOINT")
        finally:
            connection.close()
        os.chmod(building, 0o444)
        os.replace(building, target)
    finally:
        for leftover in Path(folder).iterdir():
            leftover.unlink()
        os.rmdir(folder)
    return target


def register_spark_tables(spark, lake: Path, database: str = SPARK_DATABASE) -> list[str]:
    """Register every lake table as an external Delta table in ``database``; returns the names newly registered.
    A name already registered at another location stops the stage with one line (it is not replaced)."""
    from jobs.sql.guard import lake_tables

    if not PLAIN_NAME.match(database):
        raise PipelineError(f"{database!r} is not a plain database name")
    spark.sql(f"CREATE DATABASE IF NOT EXISTS `{database}`")
    spark.sql(f"CREATE OR REPLACE FUNCTION `{database}`.{SPARK_LIST_EXTRACT}")
    known = {row.tableName for row in spark.sql(f"SHOW TABLES IN `{database}`").collect()}
    registered = []
    for name, path in lake_tables(lake).items():
        # A file: path as Hadoop reads it, unescaped (a URI's %20 would be taken literally); the scheme keeps a
        # cluster whose default file system is HDFS from looking there.
        location = f"file:{path.resolve()}"
        if name in known:
            found = _location(spark, database, name)
            if found is not None and _path_of(found) != path.resolve():
                raise PipelineError(f"Spark's {database}.{name} is registered at {found}, not at {location}: drop it "
                                    "or choose another --spark-database")
            continue
        spark.sql(f"CREATE TABLE IF NOT EXISTS `{database}`.`{name}` USING DELTA LOCATION {spark_literal(location)}")
        registered.append(name)
    return registered


def spark_literal(text: str) -> str:
    """A Spark SQL string literal: Spark escapes with backslashes, and reads ``'a''b'`` as two literals joined
    (``ab``), so DuckDB's doubled quote would silently name another folder."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _path_of(location: str) -> Path:
    """A catalog location (``file:/a/b``, ``file:///a/b`` or ``/a/b``) as a path, to compare two spellings."""
    return Path("/" + location.removeprefix("file:").lstrip("/")).resolve()


def _location(spark, database: str, name: str) -> str | None:
    rows = spark.sql(f"DESCRIBE TABLE EXTENDED `{database}`.`{name}`").collect()
    return next((row.data_type for row in rows if row.col_name == "Location"), None)
