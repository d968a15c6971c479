"""``python -m jobs sql "SELECT ..."``: read-only SQL over every lake table.

Each Delta table under the lake root is visible by its own name. Three
engines, one contract (one read-only statement in, rows out as an aligned
table, CSV or JSON):

- ``duckdb`` (the default): DuckDB with its ``delta`` extension, loaded
  offline from the ``duckdb-extension-delta`` wheel;
- ``delta-rs``: delta-rs' own SQL (DataFusion, ``deltalake.QueryBuilder``),
  chosen by ``auto`` when the DuckDB extension cannot load, for example when
  a DuckDB upgrade outran the extension wheel;
- ``spark``: Spark SQL over the lake's tables as temporary views, the dialect
  cluster users write (``sql/spark/``).

Only one read-only query over the lake's tables runs: each engine is confined
by its own settings where it has them and the statement is checked first
(``guard.py`` says how, per engine), so nothing here writes a file, changes a
setting or reads outside the lake's tables.
"""
from __future__ import annotations

import argparse
import csv
import datetime as dt
import decimal
import json
import sys
from pathlib import Path

import duckdb
import pyarrow as pa

from jobs.core.config import PipelineConfig
from jobs.core.errors import PipelineError
from jobs.sql.guard import (check_duckdb_statement, check_spark_statement, confine_duckdb, confined_spark_session,
                            lake_tables, quote_identifier, quote_literal)

MAX_TABLE_WIDTH = 60


ENGINES = ("auto", "duckdb", "delta-rs", "spark")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("query", nargs="?", help="one SELECT (or WITH ... SELECT) statement; tables are named as in "
                                                 "the lake")
    parser.add_argument("--file", type=Path, help="read the statement from this file instead (e.g. sql/*.sql)")
    parser.add_argument("--format", choices=["table", "csv", "json"], default="table", help="output format (default table)")
    parser.add_argument("--engine", choices=ENGINES, default="auto",
                        help="duckdb, delta-rs (DataFusion) or spark (Spark SQL); auto: DuckDB, or delta-rs when "
                             "DuckDB's delta extension cannot load (default auto)")


def run(args: argparse.Namespace, config: PipelineConfig) -> dict:
    query = read_query(args.query, args.file)
    engine = args.engine
    if engine == "auto":
        engine = "duckdb"
        try:
            delta_extension_path()
        except PipelineError as error:
            print(f"sql: {error}; using delta-rs' SQL instead", file=sys.stderr)
            engine = "delta-rs"
    columns, rows = QUERY_ENGINES[engine](config, query)
    write_result(columns, rows, args.format, sys.stdout)
    return {"columns": columns, "rows": len(rows), "engine": engine}


def read_query(query: str | None, file: Path | None) -> str:
    if (query is None) == (file is None):
        raise PipelineError("give the statement either as an argument or with --file, not both")
    if file is None:
        return query
    if not file.is_file():
        raise PipelineError(f"no SQL file at {file}")
    return file.read_text()


def query_duckdb(config: PipelineConfig, query: str) -> tuple[list[str], list[tuple]]:
    return run_query(connect(config.lake), query, lake_tables(config.lake))


def query_delta_rs(config: PipelineConfig, query: str) -> tuple[list[str], list[tuple]]:
    """DataFusion through ``deltalake.QueryBuilder``; DuckDB's parser vets the statement first (guard.py)."""
    from deltalake import DeltaTable, QueryBuilder

    tables = lake_tables(config.lake)
    check_duckdb_statement(duckdb.connect(), query, tables)
    builder = QueryBuilder()
    for name, path in tables.items():
        builder.register(name, DeltaTable(str(path)))
    try:
        result = pa.table(builder.execute(query.strip().rstrip(";")).read_all())
    except Exception as error:  # DataFusion raises plain exceptions with the planner's message
        raise PipelineError(str(error).splitlines()[0]) from None
    return result.column_names, [tuple(row.values()) for row in result.to_pylist()]


def query_spark(config: PipelineConfig, query: str) -> tuple[list[str], list[tuple]]:
    """Spark SQL over temporary views of the lake's tables, in a session confined by guard.py."""
    from jobs.core.lake import open_lake
    from jobs.core.spark import build_spark
    from jobs.catalog import SPARK_LIST_EXTRACT

    spark = build_spark(config, "sql", remote=False)  # the guard parses with the JVM's own parser
    session = confined_spark_session(spark)
    statement = query.strip().rstrip(";")
    tables = lake_tables(config.lake)
    check_spark_statement(session, statement, tables)
    session.sql(f"CREATE OR REPLACE TEMPORARY FUNCTION {SPARK_LIST_EXTRACT}")  # sql/ files index lists from 1
    lake = open_lake(session, config.lake)
    for name in tables:
        lake.read(name).createOrReplaceTempView(name)  # in the confined session: the views are its own
    try:
        frame = session.sql(statement)
        rows = [tuple(_spark_value(v) for v in row) for row in frame.collect()]
    except Exception as error:
        raise PipelineError(" ".join(str(error).split())[:300]) from None
    return frame.columns, rows


def _spark_value(value):
    """Spark Rows as the plain values the DuckDB engine returns (structs become dicts)."""
    from pyspark.sql import Row

    if isinstance(value, Row):
        return {k: _spark_value(v) for k, v in value.asDict().items()}
    if isinstance(value, list):
        return [_spark_value(v) for v in value]
    return value


QUERY_ENGINES = {"duckdb": query_duckdb, "delta-rs": query_delta_rs, "spark": query_spark}


def connect(lake: Path) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with one view per lake table, confined to those tables' folders (guard.py)."""
    connection = duckdb.connect(config={"autoinstall_known_extensions": False, "autoload_known_extensions": False})
    connection.execute(f"LOAD {quote_literal(delta_extension_path())}")
    tables = lake_tables(lake)
    for name, path in tables.items():
        connection.execute(f"CREATE VIEW {quote_identifier(name)} AS SELECT * FROM delta_scan({quote_literal(str(path))})")
    confine_duckdb(connection, tables)
    return connection


def run_query(connection: duckdb.DuckDBPyConnection, query: str, tables: dict[str, Path]) -> tuple[list[str], list[tuple]]:
    check_duckdb_statement(connection, query, tables)
    try:
        result = connection.execute(query)
    except duckdb.Error as error:
        raise PipelineError(str(error).splitlines()[0]) from None
    return [d[0] for d in result.description], result.fetchall()


def write_result(columns: list[str], rows: list[tuple], fmt: str, out) -> None:
    if fmt == "csv":
        writer = csv.writer(out)
        writer.writerow(columns)
        writer.writerows([[_csv_value(v) for v in row] for row in rows])
    elif fmt == "json":
        json.dump([dict(zip(columns, map(_plain, row))) for row in rows], out, indent=1, default=str)
        out.write("\n")
    else:
        cells = [[_cell(v) for v in row] for row in rows]
        widths = [min(MAX_TABLE_WIDTH, max([len(c)] + [len(r[i]) for r in cells])) for i, c in enumerate(columns)]
        line = lambda values: "  ".join(v[:w].ljust(w) for v, w in zip(values, widths)).rstrip()  # noqa: E731
        out.write(line(columns) + "\n" + line(["-" * w for w in widths]) + "\n")
        for row in cells:
            out.write(line(row) + "\n")
        out.write(f"({len(rows)} row{'s' if len(rows) != 1 else ''})\n")


def _plain(value):
    """JSON/CSV-friendly values: dates as ISO text, decimals as floats."""
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, (list, dict)):
        return json.loads(json.dumps(value, default=_plain))
    return value


def _csv_value(value):
    if isinstance(value, (list, dict)):
        return json.dumps(_plain(value))
    return "" if value is None else _plain(value)


def _cell(value) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (list, dict)):
        return json.dumps(_plain(value))
    return str(_plain(value))


def delta_extension_path() -> str:
    """The packaged extension file matching the installed DuckDB (no download)."""
    try:
        import duckdb_extension_delta
    except ImportError:
        raise PipelineError("the duckdb-extension-delta package is not installed (see requirements.txt)") from None
    root = Path(duckdb_extension_delta.__file__).parent / "extensions"
    found = sorted(root.glob(f"v{duckdb.__version__}/delta.duckdb_extension"))
    if not found:
        found = ", ".join(p.parent.name for p in root.glob("*/delta.duckdb_extension")) or "none"
        raise PipelineError(f"no delta extension for DuckDB v{duckdb.__version__} in {root} (found: {found}); "
                            "pin duckdb and duckdb-extension-delta to the same version")
    return str(found[0])
