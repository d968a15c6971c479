"""What a statement given to ``jobs sql`` may do: read the lake's tables, and nothing else.

Each engine is confined by its own settings where it has them, and every
statement is also checked before it runs, because no engine's settings alone
are enough here:

- DuckDB: external access is switched off except for the lake tables' own
  folders, and the configuration is then locked, so no statement can reach
  another file, install or load an extension, or switch that back on. Inside
  the lake's folders DuckDB could still write (``COPY ... TO``), so the
  statement check below must also pass.
- delta-rs (DataFusion): no setting stops ``COPY``, ``SET`` or
  ``CREATE EXTERNAL TABLE``, so only the statement check protects it; it is
  parsed by DuckDB, whose parser nests comments and quotes strings the way
  DataFusion's does (tests/jobs/test_sql_guard.py tries the differences).
- Spark SQL: a session of its own with file-source syntax (``parquet.`/path```)
  switched off and the Java-reflection functions removed, plus a walk over
  Spark's parsed plan (script transforms run shell commands).

The statement check: exactly one statement, a plain query, whose relations
are all lake tables or CTEs in scope where they are named (plain identifiers
only: a quoted path is never a relation) and whose table functions only
compute rows (``range``) or read a lake table (DuckDB's ``delta_scan`` on one
of the lake's table folders, for time travel).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator

import duckdb

from jobs.core.errors import PipelineError
from jobs.core.tables import PLAIN_NAME

# A lake folder becomes a table only under a plain SQL identifier: it is put in SQL as a name.
TABLE_NAME = PLAIN_NAME
ROW_FUNCTIONS = {"range", "generate_series", "unnest", "generate_subscripts"}  # compute rows, read no file
SPARK_REFLECTION_FUNCTIONS = ("reflect", "java_method", "try_reflect")
SPARK_REFUSED_NODES = {
    "ScriptTransformation": "script transforms (TRANSFORM ... USING) run shell commands",
    "PlanWithUnresolvedIdentifier": "IDENTIFIER(...) names a relation from an expression",
}


class RefusedStatement(PipelineError):
    """The statement could write, change settings or read outside the lake's tables."""


def lake_tables(lake: Path) -> dict[str, Path]:
    """Every Delta table directly under the lake root whose folder name is a plain identifier."""
    if not lake.is_dir():
        return {}
    return {p.name: p.resolve() for p in sorted(lake.iterdir())
            if TABLE_NAME.match(p.name) and not p.is_symlink() and (p / "_delta_log").is_dir()}


def quote_identifier(name: str) -> str:
    """A name as a double-quoted SQL identifier (DuckDB and Spark alike accept the doubled quote)."""
    if not TABLE_NAME.match(name):
        raise RefusedStatement(f"{name!r} is not a table name")
    return '"' + name + '"'


def quote_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


# --- DuckDB (also vets statements for delta-rs) ------------------------------------------------------------


def check_duckdb_statement(connection: duckdb.DuckDBPyConnection, query: str, tables: dict[str, Path]) -> None:
    """Refuse anything but one query over the lake's tables (DuckDB's own parse tree decides)."""
    try:
        statements = connection.extract_statements(query)
    except duckdb.Error as error:
        raise PipelineError(str(error).splitlines()[0]) from None
    if len(statements) != 1:
        raise RefusedStatement(f"expected exactly one statement, got {len(statements)}")
    kind = statements[0].type.name
    if kind != "SELECT":
        raise RefusedStatement(f"only one read-only query runs here (SELECT or WITH ... SELECT), got a {kind} statement")
    tree = json.loads(connection.execute("SELECT json_serialize_sql(?)", [query]).fetchone()[0])
    if tree.get("error") or len(tree.get("statements", [])) != 1:
        raise RefusedStatement(f"only plain queries run here: {tree.get('error_message', 'not one statement')}")
    lake = {name.lower() for name in tables}
    table_folders = {str(path) for path in tables.values()}
    for node, in_scope in _json_nodes_in_scope(tree):
        if node.get("type") == "BASE_TABLE":
            name = node.get("table_name", "")
            qualified = node.get("schema_name") or node.get("catalog_name")
            # A name that is not a plain identifier could reach DuckDB's replacement scan (a path as a table).
            if qualified or not TABLE_NAME.match(name) or name.lower() not in lake | in_scope:
                raise RefusedStatement(f"{'.'.join(filter(None, [node.get('catalog_name'), node.get('schema_name'), name]))}"
                                       " is not a lake table or a CTE of the query (see the lake's folders)")
        elif node.get("type") == "TABLE_FUNCTION":
            _check_table_function(node["function"], table_folders)


def _check_table_function(function: dict, table_folders: set[str]) -> None:
    name = function.get("function_name", "").lower()
    if name in ROW_FUNCTIONS and not function.get("schema") and not function.get("catalog"):
        return
    if name == "delta_scan":
        first = (function.get("children") or [{}])[0]
        path = first.get("value", {}).get("value") if first.get("class") == "CONSTANT" else None
        if isinstance(path, str) and str(Path(path).resolve()) in table_folders:
            return
        raise RefusedStatement("delta_scan reads only a lake table's folder, given as a literal path")
    raise RefusedStatement(f"table function {name}() is not allowed here: only lake tables are read")


def _json_nodes_in_scope(tree) -> Iterator[tuple[dict, frozenset[str]]]:
    """Every object of DuckDB's parse tree, with the CTE names in scope there: a query node's ``cte_map`` binds
    its names for that node's own subtree only (its CTE bodies included), never for the query around it."""
    todo: list[tuple[object, frozenset[str]]] = [(tree, frozenset())]
    while todo:
        node, scope = todo.pop()
        if isinstance(node, dict):
            defined = {entry["key"].lower() for entry in (node.get("cte_map") or {}).get("map", [])}
            scope = scope | defined if defined else scope
            yield node, scope
            todo.extend((child, scope) for child in node.values())
        elif isinstance(node, list):
            todo.extend((child, scope) for child in node)


def confine_duckdb(connection: duckdb.DuckDBPyConnection, tables: dict[str, Path]) -> None:
    """Switch off file access beyond the lake tables' folders, extensions and settings changes, for good."""
    folders = [str(path) + "/" for path in tables.values()]
    connection.execute("SET allowed_directories = ?", [folders])
    connection.execute("SET enable_external_access = false")
    connection.execute("SET allow_community_extensions = false")
    connection.execute("SET lock_configuration = true")


# --- Spark SQL ---------------------------------------------------------------------------------------------


def confined_spark_session(spark):
    """A session of its own (own settings, views and functions) that cannot read files or call Java."""
    session = spark.newSession()
    session.conf.set("spark.sql.runSQLOnFiles", "false")
    registry = session._jsparkSession.sessionState().functionRegistry()
    identifier = session._jvm.org.apache.spark.sql.catalyst.FunctionIdentifier
    for name in SPARK_REFLECTION_FUNCTIONS:
        registry.dropFunction(identifier.apply(name))
    return session


def check_spark_statement(session, statement: str, tables: dict[str, Path]) -> None:
    """Spark's parser must read one query whose relations are lake tables or its own CTEs."""
    try:
        plan = session._jsparkSession.sessionState().sqlParser().parseQuery(statement)
    except Exception as error:
        detail = " ".join(str(error).split())[:300]
        raise RefusedStatement(f"only one read-only query runs here (SELECT/WITH); Spark's parser said: {detail}") from None
    lake = {name.lower() for name in tables}
    for node, in_scope in _spark_nodes_in_scope(plan):
        kind = node.nodeName()
        if kind in SPARK_REFUSED_NODES:
            raise RefusedStatement(f"not allowed here: {SPARK_REFUSED_NODES[kind]}")
        if kind == "UnresolvedRelation":
            parts = _scala_seq(node.multipartIdentifier())
            if len(parts) != 1 or not TABLE_NAME.match(parts[0]) or parts[0].lower() not in lake | in_scope:
                raise RefusedStatement(f"{'.'.join(parts)} is not a lake table or a CTE of the query "
                                       "(see the lake's folders)")
        if kind == "UnresolvedTableValuedFunction":
            name = ".".join(_scala_seq(node.name()))
            if name.lower() not in ROW_FUNCTIONS:
                raise RefusedStatement(f"table function {name}() is not allowed here: only lake tables are read")


def _spark_nodes_in_scope(plan) -> Iterator[tuple[object, frozenset[str]]]:
    """Every plan node, with CTE definitions and subqueries (``innerChildren``) included, and the CTE names in
    scope there (an ``UnresolvedWith`` binds its names for its own subtree)."""
    todo = [(plan, frozenset())]
    while todo:
        node, scope = todo.pop()
        if node.nodeName() == "UnresolvedWith":
            relations = node.cteRelations()
            scope = scope | {relations.apply(i)._1().lower() for i in range(relations.size())}
        yield node, scope
        todo.extend((child, scope) for child in _scala_seq(node.children()))
        todo.extend((child, scope) for child in _scala_seq(node.innerChildren()))


def _scala_seq(seq) -> list:
    return [seq.apply(i) for i in range(seq.size())]
