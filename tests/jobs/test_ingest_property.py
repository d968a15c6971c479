"""Property: whatever lines, bytes and encodings land, every line read is one clean or one quarantined row,
and every clean row meets the events_clean contract.

The line count comes from ``count_lines`` over the written bytes (the same count ingest reconciles against)
and is checked here against a count of the separators the test itself wrote. The suite runs a small fixed
sample (``derandomize``); ``bench/fuzz_ingest.sh`` runs the same property with many more examples
(``IM_FUZZ_EXAMPLES``) and prints the totals.
"""
from __future__ import annotations

import datetime as dt
import gzip
import json
import math
import os
import re
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jobs.core.tables import EVENT_TYPES
from jobs.ingest.classify import _ID_PATTERN, EVENT_TYPE_SYNONYMS, classify_events
from jobs.ingest.formats import parse_lines
from jobs.ingest.main import read_lines
from jobs.ingest.sources import count_lines

INGEST_DATE = dt.date(2024, 11, 2)
EXAMPLES = int(os.environ.get("IM_FUZZ_EXAMPLES", "6"))
TOTALS = {"examples": 0, "lines": 0, "clean": 0, "quarantined": 0, "lost": 0}
ID = re.compile(_ID_PATTERN)

ids = st.one_of(st.from_regex(r"\A[a-z0-9][a-z0-9_.:-]{0,12}\Z"), st.text(max_size=8), st.integers(), st.none())
times = st.one_of(
    st.integers(1730419200, 1730592000),  # epoch seconds around the ingest date
    st.integers(1730419200000, 1730592000000),
    st.datetimes(dt.datetime(2024, 10, 28), dt.datetime(2024, 11, 4)).map(lambda d: d.isoformat()),
    st.datetimes(dt.datetime(2024, 10, 28), dt.datetime(2024, 11, 4),
                 timezones=st.sampled_from([dt.timezone.utc, dt.timezone(dt.timedelta(hours=-7))])).map(str),
    st.text(max_size=12), st.none(),
)
prices = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=6),
                   st.sampled_from(["NaN", "Infinity", "-0", "1e400", "12.50"]), st.none())
events = st.fixed_dictionaries(
    {"event_id": ids, "user_id": ids, "item_id": ids, "event_time": times,
     "event_type": st.one_of(st.sampled_from(sorted(EVENT_TYPE_SYNONYMS)), st.text(max_size=6)),
     "category": st.one_of(st.from_regex(r"\A[A-Za-z]{1,6}(\.[a-z]{1,6})?\Z"), st.text(max_size=6), st.none())},
    optional={"price": prices, "session_hint": ids, "extra": st.text(max_size=10)},
)
valid_ids = st.from_regex(r"\A[a-z0-9][a-z0-9_.:-]{0,12}\Z")
good_events = st.fixed_dictionaries(
    {"event_id": valid_ids, "user_id": valid_ids, "item_id": valid_ids, "event_time": times.filter(lambda t: t),
     "event_type": st.sampled_from(sorted(EVENT_TYPE_SYNONYMS)),
     "category": st.from_regex(r"\A[A-Za-z]{1,6}(\.[a-z]{1,6})?\Z")},
    optional={"price": prices, "session_hint": valid_ids, "extra": st.text(max_size=10)},
)
json_lines = events.map(lambda e: json.dumps(e).encode())
lines = st.one_of(
    good_events.map(lambda e: json.dumps(e).encode()),
    good_events.map(lambda e: json.dumps(e, ensure_ascii=False).encode()),
    json_lines,
    st.tuples(json_lines, st.sampled_from([b"", b" ", b",", b"]", b"}"]), json_lines).map(b"".join),
    st.tuples(st.text(max_size=40), st.sampled_from(["utf-8", "utf-16", "latin-1", "cp1252"]))
      .map(lambda t: t[0].encode(t[1], errors="replace")),
    st.binary(max_size=60),
    json_lines.map(lambda b: b.replace(b'"user_id"', b'"user_id": "dup", "user_id"', 1)),
)
separators = st.sampled_from([b"\n", b"\r\n", b"\r"])


@settings(max_examples=EXAMPLES, deadline=None, derandomize=EXAMPLES <= 10,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(body=st.lists(st.tuples(lines, separators), min_size=1, max_size=40), compress=st.booleans(),
       last_line_ended=st.booleans())
def test_every_generated_line_is_one_clean_or_one_quarantined_row(spark, body, compress, last_line_ended):
    data = b"".join(line + sep for line, sep in body)
    if not last_line_ended:
        data = data[:-len(body[-1][1])]
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / ("events.jsonl.gz" if compress else "events.jsonl")
        path.write_bytes(gzip.compress(data) if compress else data)
        expected = _lines_by_separators(data)
        assert count_lines(path) == expected
        classified = classify_events(parse_lines(read_lines(spark, {INGEST_DATE: [str(path)]}), "events-jsonl"),
                                     None, "events-jsonl", 3, 60).collect()
    clean = [r for r in classified if r.reason is None]
    TOTALS["examples"] += 1
    TOTALS["lines"] += expected
    TOTALS["clean"] += len(clean)
    TOTALS["quarantined"] += len(classified) - len(clean)
    TOTALS["lost"] += expected - len(classified)
    assert len(classified) == expected
    for row in clean:
        _meets_the_events_clean_contract(row)


def _lines_by_separators(data: bytes) -> int:
    """The test's own count: line ends written (CRLF is one), plus an unended last line."""
    ends = len(re.findall(rb"\r\n|\r|\n", data))
    return ends + (1 if data and not data.endswith((b"\n", b"\r")) else 0)


def _meets_the_events_clean_contract(row) -> None:
    assert all(ID.match(v) for v in (row.event_id, row.user_id, row.item_id)), row
    assert row.event_type in EVENT_TYPES and row.category and row.category == row.category.strip().lower(), row
    assert row.event_ts is not None and row.event_date == row.event_ts.date() and row.ingest_date == INGEST_DATE
    assert row.price is None or (math.isfinite(row.price) and row.price >= 0), row
    assert "\ufffd" not in row.raw_record


def teardown_module(module):
    print(f"\ningest property: {TOTALS}")
