"""dedupe_events on tiny frames: duplicate ids, a replay one day late, deterministic choice, ranges of dates."""
from __future__ import annotations

import datetime as dt

from pyspark.testing import assertDataFrameEqual

from jobs.dedupe import EVENT_COLUMNS, dedupe_events, kept_events
from tests.conftest import ts

SCHEMA = ("event_id string, user_id string, item_id string, category string, event_type string, event_ts timestamp, "
          "event_date date, price double, session_hint string, props map<string,string>, source string, "
          "source_file string, ingest_date date")
D1, D2 = dt.date(2024, 11, 1), dt.date(2024, 11, 2)


def _row(event_id, user="u1", at="2024-11-02 10:00:00", ingest=D2, source_file="a"):
    return (event_id, user, "i1", "a.b", "view", ts(at), D2, None, None, {}, "events-jsonl", source_file, ingest)


def test_duplicate_ids_collapse_to_the_earliest_ingested_copy(spark):
    clean = spark.createDataFrame(
        [_row("e1", source_file="late-copy", ingest=D2), _row("e1", source_file="first-copy", ingest=D1), _row("e2")],
        SCHEMA,
    )
    published = spark.createDataFrame([], "event_id string, event_date date")
    deduped = dedupe_events(clean, published, 2)
    expected = spark.createDataFrame([_row("e1", source_file="first-copy", ingest=D1), _row("e2")], SCHEMA)
    assertDataFrameEqual(kept_events(deduped).drop("session_id"), expected.select(*EVENT_COLUMNS))
    assert sorted((r.event_id, r.n_copies, r.replay) for r in deduped.collect()) == [("e1", 2, False), ("e2", 1, False)]


def test_replay_of_an_event_published_the_day_before_is_dropped(spark):
    clean = spark.createDataFrame([_row("e1"), _row("old", at="2024-11-02 00:10:00")], SCHEMA)
    published = spark.createDataFrame([("old", D1)], "event_id string, event_date date")
    deduped = dedupe_events(clean, published, 2)
    assert [r.event_id for r in kept_events(deduped).collect()] == ["e1"]
    assert sorted((r.event_id, r.replay) for r in deduped.collect()) == [("e1", False), ("old", True)]


def test_one_id_with_differing_contents_is_a_conflict_with_a_fixed_winner(spark):
    """Same event_id, different user: one copy wins by the total order, and the id counts as a conflict;
    copies that differ only in where they came from are plain duplicates."""
    rows = [_row("e1", user="u2", source_file="b"), _row("e1", user="u1", source_file="a"),
            _row("e2", source_file="a"), _row("e2", source_file="b", ingest=D1)]
    published = spark.createDataFrame([], "event_id string, event_date date")
    for order in (rows, rows[::-1]):
        deduped = dedupe_events(spark.createDataFrame(order, SCHEMA), published, 2)
        assert sorted((r.event_id, r.user_id, r.conflict) for r in deduped.collect()) == [
            ("e1", "u1", True), ("e2", "u1", False)]


def _on(event_id, day: dt.date, hour="10"):
    return (event_id, "u1", "i1", "a.b", "view", ts(f"{day} {hour}:00:00"), day, None, None, {}, "events-jsonl", "f",
            day)


def test_a_range_keeps_an_id_again_only_after_the_lookback_from_its_last_kept_date(spark):
    """One id on days 1, 2, 3, 4 and 6 with a 2-day lookback, as dates one by one would: kept on day 1; days 2 and
    3 are replays of day 1; day 4 is 3 days after the last kept day, kept; day 6 is a replay of day 4. An id
    published the day before the range is a replay on the range's first day."""
    days = [dt.date(2024, 11, d) for d in (1, 2, 3, 4, 6)]
    clean = spark.createDataFrame([_on("x", d) for d in days] + [_on("p", days[0], "11"), _on("p", days[0], "12")],
                                  SCHEMA)
    published = spark.createDataFrame([("p", dt.date(2024, 10, 31))], "event_id string, event_date date")
    rows = dedupe_events(clean, published, 2).collect()
    assert sorted((r.event_id, r.event_date.day, r.replay, r.n_copies) for r in rows) == [
        ("p", 1, True, 2), ("x", 1, False, 1), ("x", 2, True, 1), ("x", 3, True, 1), ("x", 4, False, 1),
        ("x", 6, True, 1)]
