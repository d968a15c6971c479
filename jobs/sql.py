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

Only read statements run: DuckDB's parser (for DuckDB and delta-rs) or
Spark's query parser must accept the text as one query before any engine
sees it, so nothing here can write to the lake.
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

READ_STATEMENTS = {"SELECT", "EXPLAIN"}
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
            _delta_extension_path()
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
    return run_query(connect(config.lake), query)


def query_delta_rs(config: PipelineConfig, query: str) -> tuple[list[str], list[tuple]]:
    """DataFusion through ``deltalake.QueryBuilder``; DuckDB's parser vets the statement first."""
    from deltalake import DeltaTable, QueryBuilder

    require_read_only(duckdb.connect(), query)
    builder = QueryBuilder()
    for name, path in lake_tables(config.lake).items():
        builder.register(name, DeltaTable(str(path)))
    try:
        result = pa.table(builder.execute(query.strip().rstrip(";")).read_all())
    except Exception as error:  # DataFusion raises plain exceptions with the planner's message
        raise PipelineError(str(error).splitlines()[0]) from None
    return result.column_names, [tuple(row.values()) for row in result.to_pylist()]


def query_spark(config: PipelineConfig, query: str) -> tuple[list[str], list[tuple]]:
    """Spark SQL over temporary views of the lake's tables; Spark's own query parser vets the statement."""
    from jobs.core.lake import open_lake
    from jobs.core.spark import build_spark

    spark = build_spark(config, "sql")
    statement = query.strip().rstrip(";")
    try:
        spark._jsparkSession.sessionState().sqlParser().parseQuery(statement)
    except Exception as error:
        detail = " ".join(str(error).split())[:300]
        raise PipelineError(f"only one read-only query runs here (SELECT/WITH); Spark's parser said: {detail}") from None
    lake = open_lake(spark, config.lake)
    for name in lake_tables(config.lake):
        lake.read(name).createOrReplaceTempView(name)
    try:
        frame = spark.sql(statement)
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


def lake_tables(lake: Path) -> dict[str, Path]:
    """Every Delta table directly under the lake root, by name."""
    if not lake.is_dir():
        return {}
    return {p.name: p for p in sorted(lake.iterdir()) if (p / "_delta_log").is_dir()}


def connect(lake: Path) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with one view per lake table."""
    connection = duckdb.connect(config={"autoinstall_known_extensions": False, "autoload_known_extensions": False})
    connection.execute(f"LOAD '{_delta_extension_path()}'")
    for name, path in lake_tables(lake).items():
        connection.execute(f"CREATE VIEW \"{name}\" AS SELECT * FROM delta_scan('{_quote(str(path))}')")
    return connection


def require_read_only(connection: duckdb.DuckDBPyConnection, query: str) -> None:
    try:
        statements = connection.extract_statements(query)
    except duckdb.Error as error:
        raise PipelineError(str(error).splitlines()[0]) from None
    if len(statements) != 1:
        raise PipelineError(f"expected exactly one statement, got {len(statements)}")
    kind = statements[0].type.name
    if kind not in READ_STATEMENTS:
        raise PipelineError(f"only read-only queries run here (SELECT/WITH/EXPLAIN), got a {kind} statement")


def run_query(connection: duckdb.DuckDBPyConnection, query: str) -> tuple[list[str], list[tuple]]:
    require_read_only(connection, query)
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


def _quote(text: str) -> str:
    return text.replace("'", "''")


def _delta_extension_path() -> str:
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
