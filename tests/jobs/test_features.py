"""Sequences and labels: exact contents on a few edge rows, and no leakage across the cutoff."""
from __future__ import annotations

import datetime as dt

from pyspark.sql import Row

from expectations import SUITES, SuiteParams
from jobs.features import build_sequences
from jobs.core.quality.gx_run import run_suite
from tests.conftest import ts

CUTOFF = dt.date(2024, 11, 10)


def _events(spark, rows):
    return spark.createDataFrame(
        [Row(user_id=u, event_id=e, category=c, event_type=t, event_ts=ts(when), session_id=s) for u, e, c, t, when, s in rows],
        "user_id string, event_id string, category string, event_type string, event_ts timestamp, session_id string")


EDGES = [
    # u1: four history events (two sessions), one at exactly the cutoff (a label), one past the horizon.
    ("u1", "e1", "a.x", "view", "2024-11-08 10:00:00", "s1"),
    ("u1", "e2", "a.x", "cart", "2024-11-08 10:00:30", "s1"),
    ("u1", "e3", "b.y", "view", "2024-11-09 23:00:00", "s2"),
    ("u1", "e4", "b.y", "view", "2024-11-09 23:59:59", "s2"),
    ("u1", "e5", "c.z", "view", "2024-11-10 00:00:00", "s3"),
    ("u1", "e6", "b.y", "view", "2024-11-11 12:00:00", "s4"),
    ("u1", "e7", "d.w", "view", "2024-11-12 00:00:00", "s5"),  # cutoff + 2 days: outside H = 2
    # u2: history only (an empty label: a negative for every category).
    ("u2", "e8", "a.x", "view", "2024-11-05 09:00:00", "s6"),
    # u3: only future events: no history, so no sequence.
    ("u3", "e9", "a.x", "view", "2024-11-10 08:00:00", "s7"),
    # u4: active before the history window only (history_days = 7).
    ("u4", "e10", "a.x", "view", "2024-11-01 08:00:00", "s8"),
    # u5: d.w early in the window, then three newer events: d.w is not in the last L = 3, yet not new.
    ("u5", "e11", "d.w", "view", "2024-11-04 08:00:00", "s9"),
    ("u5", "e12", "a.x", "view", "2024-11-09 08:00:00", "s10"),
    ("u5", "e13", "a.x", "view", "2024-11-09 08:01:00", "s10"),
    ("u5", "e14", "a.x", "view", "2024-11-09 08:02:00", "s10"),
    ("u5", "e15", "d.w", "view", "2024-11-10 09:00:00", "s11"),
]


def test_history_label_and_new_flags_on_edge_rows(spark):
    rows = {r["user_id"]: r for r in build_sequences(_events(spark, EDGES), CUTOFF, length=3, history_days=7,
                                                     horizon_days=2).collect()}
    assert set(rows) == {"u1", "u2", "u5"}
    u1 = rows["u1"]
    # Last L = 3 events before the cutoff, oldest first; e5 at exactly 00:00 is a label, not history.
    assert u1["history_categories"] == ["a.x", "b.y", "b.y"]
    assert u1["history_event_types"] == ["cart", "view", "view"]
    assert u1["history_session_starts"] == [False, True, False]
    # Gaps: 30 s (bucket 1), ~37 h (bucket 6: >= 1 day), 59:59 (bucket 4: >= 30 min).
    assert u1["history_gap_buckets"] == [1, 6, 4]
    assert u1["history_age_buckets"] == [3, 1, 0]
    assert u1["history_length"] == 3 and u1["history_last_ts"] == ts("2024-11-09 23:59:59")
    # The whole window, not only the last L: e1 (a.x) fell out of the sequence but stays in the counts.
    assert u1["window_categories"] == ["a.x", "b.y"]
    assert u1["window_category_events"] == [2, 2] and u1["window_category_sessions"] == [1, 1]
    # Each on one UTC day; a.x last at 11-08 10:00:30 (38 h less 30 s before the cutoff), b.y 1 s before it.
    assert u1["window_category_days"] == [1, 1]
    assert u1["window_category_age_seconds"] == [38 * 3600 - 30, 1]
    assert u1["label_categories"] == ["b.y", "c.z"] and u1["label_new"] == [False, True]
    assert u1["has_new_category"] is True
    assert u1["label_first_ts"] == ts("2024-11-10 00:00:00") and u1["label_last_ts"] == ts("2024-11-11 12:00:00")
    u5 = rows["u5"]
    assert u5["history_categories"] == ["a.x", "a.x", "a.x"] and u5["window_categories"] == ["a.x", "d.w"]
    assert u5["window_category_events"] == [3, 1] and u5["window_category_sessions"] == [1, 1]
    # d.w's 11-10 event is a label: its last history event is e11, 5 days 16 h before the cutoff.
    assert u5["window_category_days"] == [1, 1] and u5["window_category_age_seconds"] == [57_480, 5 * 86400 + 16 * 3600]
    assert u5["label_categories"] == ["d.w"] and u5["label_new"] == [False] and u5["has_new_category"] is False
    u2 = rows["u2"]
    assert u2["label_categories"] == [] and u2["has_new_category"] is False and u2["history_gap_buckets"] == [0]


def test_score_sequences_have_history_and_no_label(spark):
    rows = build_sequences(_events(spark, EDGES), CUTOFF, length=50, history_days=7, horizon_days=None).collect()
    u1 = next(r for r in rows if r["user_id"] == "u1")
    assert u1["history_length"] == 4 and u1["label_categories"] is None


def test_the_suite_catches_a_history_event_at_the_cutoff(spark, tmp_path):
    sequences = build_sequences(_events(spark, EDGES), CUTOFF, length=3, history_days=7, horizon_days=2)
    framed = sequences.withColumn("split", sequences.user_id.substr(1, 0)).selectExpr(
        "*", "'test' AS split_", "DATE'2024-11-11' AS as_of_date").drop("split").withColumnRenamed("split_", "split")
    params = SuiteParams(run_date=CUTOFF, window_start=dt.datetime(2024, 1, 1), window_end=dt.datetime(2025, 1, 1),
                         sequence_length=3, horizon_days=2)
    clean = run_suite(tmp_path / "gx", "user_sequences", CUTOFF, framed, SUITES["user_sequences"](params))
    assert clean.severity == "passed", [f.line() for f in clean.failures]
    leaked = framed.selectExpr("*", "CASE WHEN user_id = 'u1' THEN cutoff_ts ELSE history_last_ts END AS leak") \
        .drop("history_last_ts").withColumnRenamed("leak", "history_last_ts")
    report = run_suite(tmp_path / "gx", "user_sequences", CUTOFF, leaked, SUITES["user_sequences"](params))
    assert report.severity == "critical"
    assert any("history strictly before the cutoff" in f.line() or "unexpected_rows" in f.line() for f in report.critical)
    # A window age at or before zero is an event at the cutoff too, whatever history_last_ts says.
    aged = framed.selectExpr("*", "CASE WHEN user_id = 'u5' THEN array(0.0D, 60.0D) "
                                  "ELSE window_category_age_seconds END AS aged") \
        .drop("window_category_age_seconds").withColumnRenamed("aged", "window_category_age_seconds")
    report = run_suite(tmp_path / "gx", "user_sequences", CUTOFF, aged, SUITES["user_sequences"](params))
    assert report.severity == "critical" and any("last inside the window" in f.line() for f in report.critical), \
        [f.line() for f in report.failures]


def _sequences(lake_root) -> list[tuple]:
    from deltalake import DeltaTable

    rows = DeltaTable(str(lake_root / "user_sequences")).to_pyarrow_table().to_pylist()
    return sorted((tuple((k, repr(v)) for k, v in sorted(r.items())) for r in rows))


def test_a_range_of_as_of_dates_in_one_pass_writes_what_its_dates_write_one_at_a_time(model_lake, tmp_path):
    """Train and score features for two as-of dates, each as one pass over the range, against the same dates run
    one by one. The lake already holds the last date's training cutoffs, one of which (H = 1) is the earlier
    date's score cutoff: a range replaces each date's own cutoffs only, so that partition survives."""
    import shutil

    from tests.conftest import MODEL_AS_OF, run_jobs

    first, last = (MODEL_AS_OF - dt.timedelta(days=1)).isoformat(), MODEL_AS_OF.isoformat()
    train = ["--mode", "train", "--horizon-days", "1", "--train-cutoffs", "2"]
    one_by_one, in_one_pass = tmp_path / "dates", tmp_path / "range"
    for root in (one_by_one, in_one_pass):
        shutil.copytree(model_lake, root)
    for args in ([*train, "--date", first], ["--mode", "score", "--date", first], ["--mode", "score", "--date", last]):
        code, out, err = run_jobs("features", "--lake", str(one_by_one), *args, "--no-validate")
        assert code == 0, err + out
    for mode in (train, ["--mode", "score"]):
        code, out, err = run_jobs("features", "--lake", str(in_one_pass), *mode, "--from-date", first, "--to-date", last)
        assert code == 0, err + out
        assert "critical" in out and " 0 critical" in out  # validated, as one suite run over both dates
    assert f"features {first} score cutoff {last}" in out and f"features {last} score cutoff" in out
    expected = _sequences(one_by_one)
    assert {dict(r)["split"] for r in expected} == {"'train'", "'validation'", "'test'", "'score'"}
    assert _sequences(in_one_pass) == expected
