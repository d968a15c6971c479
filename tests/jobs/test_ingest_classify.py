"""Ingest transforms on tiny inline inputs: every reason code, synonyms, UTC, bots."""
from __future__ import annotations

import datetime as dt

from pyspark.sql import functions as F

from jobs.ingest.classify import classify_events, clean_rows, flag_bots, quarantine_rows
from jobs.ingest.formats import parse_lines
from tests.conftest import ts

INGEST_DATE = dt.date(2024, 11, 2)


def _lines(spark, records: list[str]):
    return spark.createDataFrame([(r, "f.jsonl", INGEST_DATE) for r in records],
                                 "raw_record string, source_file string, ingest_date date")


def _classify(spark, records, source="events-jsonl", categories=None, lateness=3):
    return classify_events(parse_lines(_lines(spark, records), source), categories, source, lateness, 60)


def test_jsonl_rows_are_typed_normalised_and_kept_whole(spark):
    records = [
        '{"event_id":"e1","user_id":"u1","item_id":7,"category":"Electronics.Audio","event_type":"pv",'
        '"event_time":"2024-11-02T10:00:00+05:30","price":"9.50","device":"ios"}',
        '{"event_id":"e2","user_id":"u1","item_id":"i8","category":"home.decor","event_type":"BUY","event_time":1730541600}',
        '{"event_id":"e3","user_id":"u2","item_id":"9","category":"home.decor","event_type":"add_to_cart","event_time":1730541600123}',
    ]
    clean = clean_rows(_classify(spark, records)).orderBy("event_id")
    rows = [r.asDict() for r in clean.select("event_id", "user_id", "item_id", "category", "event_type",
                                              "event_ts", "event_date", "price", "props").collect()]
    assert rows == [
        dict(event_id="e1", user_id="u1", item_id="7", category="electronics.audio", event_type="view",
             event_ts=ts("2024-11-02 04:30:00"), event_date=dt.date(2024, 11, 2), price=9.5, props={"device": "ios"}),
        dict(event_id="e2", user_id="u1", item_id="i8", category="home.decor", event_type="purchase",
             event_ts=ts("2024-11-02 10:00:00"), event_date=dt.date(2024, 11, 2), price=None, props={}),
        dict(event_id="e3", user_id="u2", item_id="9", category="home.decor", event_type="cart",
             event_ts=ts("2024-11-02 10:00:00.123"), event_date=dt.date(2024, 11, 2), price=None, props={}),
    ]


def test_each_malformed_row_gets_its_reason_and_keeps_its_raw_text(spark):
    good = '"category":"a.b","event_type":"view","event_time":"2024-11-02T01:00:00Z"'
    cases = {
        '{"event_id":"x1","user_id":"u1","item_id":1,' + good: "malformed_json",
        '[1,2,3]': "malformed_json",
        '{"event_id":"x2","user_id":null,"item_id":1,' + good + "}": "missing_user_id",
        '{"event_id":"x3","user_id":"u1",' + good + "}": "missing_item_id",
        '{"event_id":"x4","user_id":{"id":1},"item_id":1,' + good + "}": "invalid_user_id",
        '{"event_id":"x5","user_id":"u1","item_id":[1],' + good + "}": "invalid_item_id",
        '{"event_id":"x6","user_id":"u1","item_id":1,"category":"a.b","event_type":"hover","event_time":1730509200}': "unknown_event_type",
        '{"event_id":"x7","user_id":"u1","item_id":1,"category":"a.b","event_type":"view","event_time":"yesterday"}': "unparseable_event_time",
        '{"event_id":"x8","user_id":"u1","item_id":1,"category":"a.b","event_type":"view","event_time":1262304000}': "stale_event_time",
        '{"event_id":"x9","user_id":"u1","item_id":1,"category":"a.b","event_type":"view","event_time":1893456000}': "future_event_time",
        '{"event_id":"x10","user_id":"u1","item_id":1,"category":"a.b","event_type":"view"}': "missing_event_time",
        '{"event_id":"x11","user_id":"u1","item_id":1,"event_type":"view","event_time":1730509200}': "missing_category",
        '{"event_id":"x12","user_id":"u1","item_id":1,"category":"a.b","event_type":"view","event_time":1730509200,"price":"cheap"}': "invalid_price",
        '{"event_id":"x13","user_id":"u1","item_id":1,"category":"a.\ufffdb","event_type":"view","event_time":1730509200}': "invalid_utf8",
    }
    classified = _classify(spark, list(cases))
    got = {r["raw_record"]: r["reason"] for r in quarantine_rows(classified).collect()}
    assert got == cases
    assert clean_rows(classified).count() == 0


def test_invalid_utf8_bytes_are_quarantined(spark, tmp_path):
    path = tmp_path / "bad.jsonl"
    raw = b'{"event_id":"x","user_id":"u1","item_id":1,"category":"a.\xff\xfeb","event_type":"view","event_time":1730509200}'
    path.write_bytes(raw + b"\n")
    lines = spark.read.text(str(path)).select(F.col("value").alias("raw_record"), F.lit("f").alias("source_file"),
                                              F.lit(INGEST_DATE).alias("ingest_date"))
    classified = classify_events(parse_lines(lines, "events-jsonl"), None, "events-jsonl", 3, 60)
    assert [r["reason"] for r in classified.collect()] == ["invalid_utf8"]
    # Stored as valid text (readers such as DuckDB reject other bytes in a string column), exact bytes beside it.
    [row] = quarantine_rows(classified).collect()
    assert row["raw_record"] == raw.decode("utf-8", errors="replace") and bytes(row["raw_bytes"]) == raw


def test_lateness_check_can_be_disabled_for_historical_files(spark):
    old = '{"event_id":"x","user_id":"u1","item_id":1,"category":"a.b","event_type":"view","event_time":1262304000}'
    assert clean_rows(_classify(spark, [old], lateness=-1)).count() == 1


def test_bots_are_flagged_per_user_and_event_date(spark):
    rows = [f'{{"event_id":"b{i}","user_id":"bot","item_id":1,"category":"a.b","event_type":"view","event_time":{1730509200 + i}}}'
            for i in range(4)]
    rows += ['{"event_id":"h1","user_id":"human","item_id":1,"category":"a.b","event_type":"view","event_time":1730509200}']
    flagged = flag_bots(_classify(spark, rows), max_events_per_day=3)
    assert sorted((r["user_id"], r["reason"]) for r in flagged.collect()) == [("bot", "bot_user")] * 4 + [("human", None)]


def test_every_synonym_maps_onto_the_contract_s_event_types():
    from jobs.core.tables import EVENT_TYPES
    from jobs.ingest.classify import EVENT_TYPE_SYNONYMS

    assert set(EVENT_TYPE_SYNONYMS.values()) == set(EVENT_TYPES)
    assert all(event_type in EVENT_TYPE_SYNONYMS for event_type in EVENT_TYPES)
