"""Type, normalise and validate parsed rows; give every bad row a reason code.

A row is clean when every check passes; otherwise ``reason`` holds the first
failed check, in this order (one code per row, so counts add up):

    invalid_utf8, the parse error (oversized_line, malformed_json,
    not_one_json_object, duplicate_json_key, header_line, wrong_field_count),
    missing_<field>, invalid_<field>, unknown_event_type,
    unparseable_event_time, stale_event_time, future_event_time, and afterwards
    bot_user.

A price must be a finite number >= 0 (``NaN`` and ``Infinity`` are not
prices). A time without an offset (``2024-10-01T10:00:00``) is taken as UTC,
the zone the whole lake uses, never as the machine's local time.
"""
from __future__ import annotations

import datetime as dt
import itertools

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

EVENT_TYPE_SYNONYMS: dict[str, str] = {
    **dict.fromkeys(["view", "pv", "page_view", "pageview", "detail", "product_view"], "view"),
    **dict.fromkeys(["cart", "add_to_cart", "addtocart", "add-to-cart", "basket"], "cart"),
    **dict.fromkeys(["purchase", "buy", "order", "checkout", "transaction"], "purchase"),
    **dict.fromkeys(["fav", "favourite", "favorite", "wishlist", "like"], "fav"),
}
_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:\-]{0,127}$"
_EPOCH_SECONDS = r"^[0-9]{1,11}$"
_EPOCH_MILLIS = r"^[0-9]{12,14}$"

CLEAN_COLUMNS = (
    "event_id", "user_id", "item_id", "category", "event_type", "event_ts", "event_date",
    "price", "session_hint", "props", "source", "source_file", "ingest_date",
)
QUARANTINE_COLUMNS = ("raw_record", "reason", "source", "source_file", "ingest_date", "raw_bytes")


def parse_event_time(value: Column) -> Column:
    """Epoch seconds, epoch milliseconds, or ISO-8601 (any offset) to a UTC timestamp."""
    return (
        F.when(value.rlike(_EPOCH_SECONDS), F.timestamp_seconds(value.cast("long")))
        .when(value.rlike(_EPOCH_MILLIS), F.timestamp_millis(value.cast("long")))
        .otherwise(F.try_to_timestamp(value))
    )


def classify_events(
    parsed: DataFrame,
    categories: DataFrame | None,
    source: str,
    max_lateness_days: int,
    max_future_minutes: int,
) -> DataFrame:
    """Typed event columns plus ``reason`` (null for a clean row).

    ``parsed`` comes from ``formats.parse_lines`` with an ``ingest_date``
    column; ``categories`` (category_id, category) names categories for sources
    that only give ids. Rows without an event_id get a deterministic fingerprint
    of user, item, event type and second, so their duplicates collapse in dedupe.
    """
    df = parsed
    if categories is not None:
        df = df.join(
            F.broadcast(categories.select(F.col("category_id").cast("string").alias("category_id"),
                                          F.col("category").alias("_catalog_category"))),
            "category_id",
            "left",
        )
    else:
        df = df.withColumn("_catalog_category", F.lit(None).cast("string"))

    event_ts = parse_event_time(F.col("event_time"))
    synonyms = F.create_map(*[F.lit(x) for x in itertools.chain(*EVENT_TYPE_SYNONYMS.items())])
    event_type = synonyms[F.lower(F.trim("event_type"))]
    category = F.lower(F.trim(F.coalesce(
        "category", "_catalog_category", F.concat(F.lit(source.split("-")[0] + "."), "category_id")
    )))
    price = F.col("price").try_cast("double")
    df = df.select(
        "*",
        event_ts.alias("event_ts"),
        event_type.alias("_event_type"),
        category.alias("_category"),
        price.alias("_price"),
    )
    # A historical file (no ingest date): each line counts as delivered on its event's own date, so its age is
    # never "late". A line without a usable time, or dated after now, keeps a null ingest date here: the stage
    # gives it the batch's last date (ingest/main.py). "Now" is one literal, so a recomputed partition agrees.
    now_limit = F.lit(dt.datetime.now(dt.timezone.utc) + dt.timedelta(minutes=max_future_minutes))
    df = df.withColumn("ingest_date", F.coalesce(
        "ingest_date", F.when(F.col("event_ts") < now_limit, F.to_date("event_ts"))))
    window_start = F.to_timestamp(F.date_sub("ingest_date", max_lateness_days))
    window_end = F.to_timestamp(F.date_add("ingest_date", 1)) + F.make_dt_interval(F.lit(0), F.lit(0), F.lit(max_future_minutes))
    checks: list[tuple[Column, str]] = [
        (~F.is_valid_utf8("raw_record") | F.col("raw_record").contains("\ufffd"), "invalid_utf8"),
        (F.col("parse_error").isNotNull(), None),  # reason is the parse error itself
        (F.col("user_id").isNull(), "missing_user_id"),
        (F.col("item_id").isNull(), "missing_item_id"),
        (F.col("event_type").isNull(), "missing_event_type"),
        (F.col("event_time").isNull(), "missing_event_time"),
        (F.col("_category").isNull(), "missing_category"),
        (~F.col("user_id").rlike(_ID_PATTERN), "invalid_user_id"),
        (~F.col("item_id").rlike(_ID_PATTERN), "invalid_item_id"),
        (F.col("event_id").isNotNull() & ~F.col("event_id").rlike(_ID_PATTERN), "invalid_event_id"),
        (F.col("price").isNotNull() & (F.col("_price").isNull() | F.isnan("_price") | (F.col("_price") < 0)
                                        | (F.col("_price") == float("inf"))), "invalid_price"),
        (F.col("_event_type").isNull(), "unknown_event_type"),
        (F.col("event_ts").isNull(), "unparseable_event_time"),
        (F.lit(max_lateness_days >= 0) & (F.col("event_ts") < window_start), "stale_event_time"),
        ((F.col("event_ts") >= window_end) | (F.col("event_ts") >= now_limit), "future_event_time"),
    ]
    # One flat CASE WHEN: the first failing check names the reason.
    reason = F
    for condition, code in checks:
        reason = reason.when(condition, F.col("parse_error") if code is None else F.lit(code))

    fingerprint = F.concat(F.lit("fp-"), F.substring(F.sha2(F.concat_ws(
        "|", "user_id", "item_id", "_event_type", F.unix_seconds("event_ts").cast("string")), 256), 1, 24))
    return df.select(
        F.coalesce("event_id", fingerprint).alias("event_id"),
        "user_id",
        "item_id",
        F.col("_category").alias("category"),
        F.col("_event_type").alias("event_type"),
        "event_ts",
        F.to_date("event_ts").alias("event_date"),
        F.col("_price").alias("price"),
        "session_hint",
        "props",
        F.lit(source).alias("source"),
        "source_file",
        "ingest_date",
        "raw_record",
        reason.alias("reason"),
    )


def flag_bots(events: DataFrame, max_events_per_day: int) -> DataFrame:
    """Mark clean rows of users with inhuman volume on one event date as ``bot_user``."""
    bots = (
        events.where(F.col("reason").isNull())
        .groupBy("user_id", "event_date")
        .count()
        .where(F.col("count") > max_events_per_day)
        .select("user_id", "event_date", F.lit(True).alias("_bot"))
    )
    return (
        events.join(F.broadcast(bots), ["user_id", "event_date"], "left")
        .withColumn("reason", F.when(F.col("reason").isNull() & F.col("_bot"), F.lit("bot_user")).otherwise(F.col("reason")))
        .drop("_bot")
    )


def clean_rows(classified: DataFrame) -> DataFrame:
    return classified.where(F.col("reason").isNull()).select(*CLEAN_COLUMNS)


def quarantine_rows(classified: DataFrame) -> DataFrame:
    """Rejected rows with their reason. ``raw_record`` is always valid UTF-8 (invalid
    sequences become U+FFFD), since a Parquet string column holding other bytes
    breaks downstream readers such as DuckDB; ``raw_bytes`` keeps those rows'
    exact bytes, so nothing is lost."""
    valid = F.is_valid_utf8("raw_record")
    return classified.where(F.col("reason").isNotNull()).select(
        F.make_valid_utf8("raw_record").alias("raw_record"), "reason", "source", "source_file", "ingest_date",
        F.when(~valid, F.col("raw_record").cast("binary")).alias("raw_bytes"))
