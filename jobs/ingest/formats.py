"""Parse raw lines of each supported source format into one frame of parsed rows.

Every format is read as plain text lines so the exact raw record survives for
quarantine. Parsing yields the same string columns for every format; typing and
validation happen afterwards, once, in ``classify``:

    raw_record, source_file, event_id, user_id, item_id, category, category_id,
    event_type, event_time, price, session_hint, props, parse_error

``parse_error`` names why a line could not be parsed (the quarantine reason);
whatever the format, a line longer than ``max_line_bytes`` is quarantined as
``oversized_line`` without being parsed.
"""
from __future__ import annotations

import uuid

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from jobs.core.config import default
from jobs.ingest import FORMATS  # noqa: F401 - the names, kept beside the parsers

JSONL_FIELDS = ("event_id", "user_id", "item_id", "category", "event_type", "event_time", "price", "session_hint")
TAOBAO_FIELDS = ("user_id", "item_id", "category_id", "behavior_type", "timestamp")
REES46_FIELDS = (
    "event_time", "event_type", "product_id", "category_id", "category_code", "brand", "price", "user_id", "user_session",
)
REES46_HEADER = ",".join(REES46_FIELDS)


def parse_lines(lines: DataFrame, source_format: str, max_line_bytes: int = default("max_line_bytes")) -> DataFrame:
    """``lines`` has ``raw_record`` (plus columns kept as they are); returns the parsed rows."""
    oversized = F.octet_length("raw_record") > max_line_bytes
    if source_format == "events-jsonl":
        return parse_events_jsonl(lines, oversized)
    if source_format == "taobao-csv":
        return parse_taobao_csv(lines, oversized)
    if source_format == "rees46-csv":
        return parse_rees46_csv(lines, oversized)
    raise ValueError(f"unknown --format {source_format!r}; expected one of {', '.join(FORMATS)}")


def parse_events_jsonl(lines: DataFrame, oversized: Column) -> DataFrame:
    """Exactly one JSON object per line, without repeated keys; unknown keys are kept in ``props``.

    Spark's JSON reader stops at the end of the first value and ignores the rest
    of the line, so ``{..}{..}`` or ``{..}, {..}`` would lose an event without a
    trace. So the line is parsed as the first element of an array closed by a
    marker object only this run knows (``[<line>,{"<marker>":""}]``): it holds
    exactly one object when the array parses into exactly that object and the
    marker. A repeated key stays in the parsed map twice (Spark builds a JSON
    object's map without merging keys), so the map's keys must be distinct: one
    parse of the line, not a second one by ``json_object_keys`` (which took
    about 5 % of the classification: 1.7M lines, 20.5 s against 21.8 s, best of
    three; tests/jobs/test_ingest_hostile.py fails if Spark starts merging keys).
    """
    marker = uuid.uuid4().hex
    values = F.from_json(F.concat(F.lit("["), F.when(~oversized, F.col("raw_record")), F.lit(f',{{"{marker}":""}}]')),
                         T.ArrayType(T.MapType(T.StringType(), T.StringType())))
    # Parse once: a generator is never inlined, whereas a plain column would be
    # copied into every expression that reads it (one JSON parse per field).
    parsed = lines.select("*", F.explode_outer(F.array(values)).alias("_values"))
    one_object = ((F.size("_values") == 2) & F.col("_values")[0].isNotNull()
                  & F.map_contains_key(F.col("_values")[1], marker))
    parsed = parsed.select("*", F.when(one_object, F.col("_values")[0]).alias("_m"))
    keys = F.map_keys("_m")
    repeated_key = F.size(F.array_distinct(keys)) != F.size(keys)
    return parsed.select(
        *_passthrough(lines),
        *[_blank_to_null(F.col("_m")[f]).alias(f) for f in JSONL_FIELDS if f != "session_hint"],
        _null_string().alias("category_id"),
        F.col("_m")["session_hint"].alias("session_hint"),
        _other_entries(F.col("_m"), JSONL_FIELDS).alias("props"),
        F.when(oversized, F.lit("oversized_line"))
        .when(F.col("_values").isNull(), F.lit("malformed_json"))
        .when(~one_object, F.lit("not_one_json_object"))
        .when(repeated_key, F.lit("duplicate_json_key"))
        .alias("parse_error"),
    )


def _other_entries(parsed: Column, known: tuple[str, ...]) -> Column:
    """The map without the ``known`` keys.

    ``map_filter``, whose lambda runs interpreted, and which keeps this projection out of the generated code
    of the classification above it. Tried: removing the known keys' entries with ``array_except``, all
    generated code; the parse and the classification then fuse into one generated method too large for the
    JIT, and ingest's classification took twice as long (bench/, 1.7M lines: 61 s against 27 s)."""
    names = F.array(*[F.lit(key) for key in known])
    return F.map_filter(parsed, lambda key, _: ~F.array_contains(names, key))


def parse_taobao_csv(lines: DataFrame, oversized: Column) -> DataFrame:
    """Alibaba UserBehavior: ``user_id,item_id,category_id,behavior_type,timestamp``, no header."""
    fields = F.split("raw_record", ",")
    return lines.select(
        *_passthrough(lines),
        _null_string().alias("event_id"),
        *[_field(fields, i).alias(name) for i, name in enumerate(TAOBAO_FIELDS[:2])],
        _null_string().alias("category"),
        _field(fields, 2).alias("category_id"),
        _field(fields, 3).alias("event_type"),
        _field(fields, 4).alias("event_time"),
        _null_string().alias("price"),
        _null_string().alias("session_hint"),
        _empty_props().alias("props"),
        F.when(oversized, F.lit("oversized_line"))
        .when(F.size(fields) != len(TAOBAO_FIELDS), F.lit("wrong_field_count")).alias("parse_error"),
    )


def parse_rees46_csv(lines: DataFrame, oversized: Column) -> DataFrame:
    """REES46 multi-category store export; its header lines are quarantined as ``header_line`` (every line read
    is one clean or one quarantined row: the count a run is checked by)."""
    fields = F.split("raw_record", ",")
    col = {name: _field(fields, i) for i, name in enumerate(REES46_FIELDS)}
    return lines.select(
        *_passthrough(lines),
        _null_string().alias("event_id"),
        col["user_id"].alias("user_id"),
        col["product_id"].alias("item_id"),
        col["category_code"].alias("category"),
        col["category_id"].alias("category_id"),
        col["event_type"].alias("event_type"),
        col["event_time"].alias("event_time"),
        col["price"].alias("price"),
        col["user_session"].alias("session_hint"),
        F.when(col["brand"].isNotNull(), F.create_map(F.lit("brand"), col["brand"]))
        .otherwise(_empty_props())
        .alias("props"),
        F.when(oversized, F.lit("oversized_line"))
        .when(F.trim("raw_record") == REES46_HEADER, F.lit("header_line"))
        .when(F.size(fields) != len(REES46_FIELDS), F.lit("wrong_field_count")).alias("parse_error"),
    )


def _passthrough(lines: DataFrame) -> list[str]:
    """``raw_record`` and whatever the reader attached (source_file, ingest_date)."""
    return list(lines.columns)


def _field(fields: Column, index: int) -> Column:
    return _blank_to_null(F.trim(F.get(fields, index)))


def _blank_to_null(value: Column) -> Column:
    # nullif, not a trim: it runs on every field of every row. Values of spaces
    # only fail the id and time checks later, with their own reason.
    return F.nullif(value, F.lit(""))


def _null_string() -> Column:
    return F.lit(None).cast("string")


def _empty_props() -> Column:
    return F.create_map().cast("map<string,string>")
