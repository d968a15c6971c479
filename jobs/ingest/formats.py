"""Parse raw lines of each supported source format into one frame of parsed rows.

Every format is read as plain text lines so the exact raw record survives for
quarantine. Parsing yields the same string columns for every format; typing and
validation happen afterwards, once, in ``classify``:

    raw_record, source_file, event_id, user_id, item_id, category, category_id,
    event_type, event_time, price, session_hint, props, parse_error
"""
from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

FORMATS = ("events-jsonl", "taobao-csv", "rees46-csv")

JSONL_FIELDS = ("event_id", "user_id", "item_id", "category", "event_type", "event_time", "price", "session_hint")
TAOBAO_FIELDS = ("user_id", "item_id", "category_id", "behavior_type", "timestamp")
REES46_FIELDS = (
    "event_time", "event_type", "product_id", "category_id", "category_code", "brand", "price", "user_id", "user_session",
)
REES46_HEADER = ",".join(REES46_FIELDS)


def parse_lines(lines: DataFrame, source_format: str) -> DataFrame:
    """``lines`` has ``raw_record`` (plus columns kept as they are); returns the parsed rows."""
    if source_format == "events-jsonl":
        return parse_events_jsonl(lines)
    if source_format == "taobao-csv":
        return parse_taobao_csv(lines)
    if source_format == "rees46-csv":
        return parse_rees46_csv(lines)
    raise ValueError(f"unknown --format {source_format!r}; expected one of {', '.join(FORMATS)}")


def parse_events_jsonl(lines: DataFrame) -> DataFrame:
    """One JSON object per line; unknown keys are kept in ``props``."""
    # Parse once: a generator is never inlined, whereas a plain column would be
    # copied into every expression that reads it (one JSON parse per field).
    parsed = lines.select(
        "*", F.explode_outer(F.array(F.from_json("raw_record", T.MapType(T.StringType(), T.StringType())))).alias("_m")
    )
    known = F.array(*[F.lit(f) for f in JSONL_FIELDS])
    return parsed.select(
        *_passthrough(lines),
        *[_blank_to_null(F.col("_m")[f]).alias(f) for f in JSONL_FIELDS if f != "session_hint"],
        _null_string().alias("category_id"),
        F.col("_m")["session_hint"].alias("session_hint"),
        F.map_filter("_m", lambda k, v: ~F.array_contains(known, k)).alias("props"),
        F.when(F.col("_m").isNull(), F.lit("malformed_json")).alias("parse_error"),
    )


def parse_taobao_csv(lines: DataFrame) -> DataFrame:
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
        F.when(F.size(fields) != len(TAOBAO_FIELDS), F.lit("wrong_field_count")).alias("parse_error"),
    )


def parse_rees46_csv(lines: DataFrame) -> DataFrame:
    """REES46 multi-category store export, with a header line (dropped here)."""
    body = lines.where(F.trim("raw_record") != REES46_HEADER)
    fields = F.split("raw_record", ",")
    col = {name: _field(fields, i) for i, name in enumerate(REES46_FIELDS)}
    return body.select(
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
        F.when(F.size(fields) != len(REES46_FIELDS), F.lit("wrong_field_count")).alias("parse_error"),
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
