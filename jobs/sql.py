"""``python -m jobs sql "SELECT ..."``: read-only SQL over every lake table, with DuckDB.

Each Delta table under the lake root is a view of the same name (DuckDB's
``delta`` extension, loaded offline from the ``duckdb-extension-delta`` wheel).
Only read statements run. Output as an aligned table, CSV or JSON.
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

from jobs.config import PipelineConfig
from jobs.errors import PipelineError

READ_STATEMENTS = {"SELECT", "EXPLAIN"}
MAX_TABLE_WIDTH = 60


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("query", help="one SELECT (or WITH ... SELECT) statement; tables are named as in the lake")
    parser.add_argument("--format", choices=["table", "csv", "json"], default="table", help="output format (default table)")


def run(args: argparse.Namespace, config: PipelineConfig) -> dict:
    connection = connect(config.lake)
    columns, rows = run_query(connection, args.query)
    write_result(columns, rows, args.format, sys.stdout)
    return {"columns": columns, "rows": len(rows)}


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


def run_query(connection: duckdb.DuckDBPyConnection, query: str) -> tuple[list[str], list[tuple]]:
    statements = connection.extract_statements(query)
    if len(statements) != 1:
        raise PipelineError(f"expected exactly one statement, got {len(statements)}")
    kind = statements[0].type.name
    if kind not in READ_STATEMENTS:
        raise PipelineError(f"only read-only queries run here (SELECT/WITH/EXPLAIN), got a {kind} statement")
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
    candidates = sorted(root.glob(f"v{duckdb.__version__}/delta.duckdb_extension"))
    if not candidates:
        found = ", ".join(p.parent.name for p in root.glob("*/delta.duckdb_extension")) or "none"
        raise PipelineError(f"no delta extension for DuckDB v{duckdb.__version__} in {root} (found: {found}); "
                            "pin duckdb and duckdb-extension-delta to the same version")
    return str(candidates[0])
