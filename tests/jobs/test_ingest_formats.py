"""Hand-written samples in the public Taobao and REES46 layouts."""
from __future__ import annotations

import datetime as dt
from pathlib import Path

from jobs.ingest.classify import classify_events, clean_rows, quarantine_rows
from jobs.ingest.formats import parse_lines
from tests.conftest import ts

DATA = Path(__file__).resolve().parent.parent / "data"


def _read(spark, name: str, ingest_date: dt.date):
    from pyspark.sql import functions as F

    return spark.read.text(str(DATA / name)).select(
        F.col("value").alias("raw_record"), F.lit(name).alias("source_file"), F.lit(ingest_date).alias("ingest_date")
    )


def test_taobao_rows_get_catalog_categories_and_fingerprint_ids(spark):
    categories = spark.createDataFrame([("4756105", "apparel.tops")], "category_id string, category string")
    classified = classify_events(parse_lines(_read(spark, "taobao_sample.csv", dt.date(2017, 11, 25)), "taobao-csv"),
                                 categories, "taobao-csv", max_lateness_days=30, max_future_minutes=60)
    clean = clean_rows(classified).orderBy("event_ts", "item_id").collect()
    assert [(r.user_id, r.item_id, r.category, r.event_type, r.event_ts) for r in clean] == [
        ("1", "2268318", "taobao.2520377", "view", ts("2017-11-24 17:22:58")),
        ("1", "2333346", "apparel.tops", "view", ts("2017-11-24 23:15:33")),
        ("1", "2333346", "apparel.tops", "view", ts("2017-11-24 23:15:33")),
        ("100", "1603476", "taobao.2951233", "fav", ts("2017-11-25 01:33:05")),
        ("100", "2971043", "taobao.4869428", "cart", ts("2017-11-25 03:30:32")),
        ("100", "2087357", "taobao.2131531", "purchase", ts("2017-11-25 13:01:13")),
    ]
    # The exact duplicate has the same fingerprint, so dedupe collapses it.
    assert clean[1].event_id == clean[2].event_id and clean[1].event_id.startswith("fp-")
    assert len({r.event_id for r in clean}) == 5
    assert sorted(r.reason for r in quarantine_rows(classified).collect()) == ["unknown_event_type", "wrong_field_count"]


def test_rees46_rows_fall_back_to_category_id_and_keep_brand(spark):
    classified = classify_events(parse_lines(_read(spark, "rees46_sample.csv", dt.date(2019, 10, 1)), "rees46-csv"),
                                 None, "rees46-csv", max_lateness_days=3, max_future_minutes=60)
    clean = clean_rows(classified).orderBy("event_ts").collect()
    assert [(r.user_id, r.item_id, r.category, r.event_type, r.price, r.session_hint, r.props) for r in clean] == [
        ("541312140", "44600062", "rees46.2103807459595387724", "view", 35.79, "72d76fde-8bb3-4e00-8c23-a032dfed738c", {"brand": "shiseido"}),
        ("554748717", "3900821", "appliances.environment.water_heater", "view", 33.2, "9333dfbd-b087-4d97-86b1-5302c1d4d63d", {"brand": "aqua"}),
        ("550050854", "1307067", "computers.notebook", "cart", 251.74, "7c90fc70-0e80-4590-96f3-13c02c18c713", {"brand": "lenovo"}),
    ]
    assert clean[0].event_ts == ts("2019-10-01 00:00:00")
    # The header is a line read like any other: it is quarantined as such, so the line count still adds up.
    assert sorted(r.reason for r in quarantine_rows(classified).collect()) == ["header_line", "unknown_event_type"]


def test_a_landing_folder_of_many_dates_is_read_in_one_scan_each_line_dated_by_its_folder(spark, tmp_path):
    """The landing layout (files directly in ``ingest_date=`` folders of one parent) is one scan, the date a
    partition column; any other layout (here a file one folder deeper) is one read per date. Same rows."""
    from jobs.ingest.main import _files_by_ingest_date, read_lines

    files = {"landing/ingest_date=2024-11-01/a.jsonl": ["a1", "a2"], "landing/ingest_date=2024-11-02/b.jsonl": ["b1"],
             "other/ingest_date=2024-11-03/late/c.jsonl": ["c1"], "history/all.jsonl": ["h1"]}
    for name, lines in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("".join(f"{line}\n" for line in lines))

    def read(*names):
        frame = read_lines(spark, _files_by_ingest_date([tmp_path / n for n in names], None))
        scans = frame._jdf.queryExecution().executedPlan().toString().count("FileScan text")
        return sorted((r["raw_record"], r["ingest_date"], Path(r["source_file"]).name) for r in frame.collect()), scans

    day = dt.date.fromisoformat
    landing = [("a1", day("2024-11-01"), "a.jsonl"), ("a2", day("2024-11-01"), "a.jsonl"),
               ("b1", day("2024-11-02"), "b.jsonl")]
    assert read(*list(files)[:2]) == (landing, 1)
    assert read(*list(files)[:3]) == (sorted([*landing, ("c1", day("2024-11-03"), "c.jsonl")]), 3)
    assert read(*files) == (sorted([*landing, ("c1", day("2024-11-03"), "c.jsonl"), ("h1", None, "all.jsonl")]), 4)
