"""Ingest against input it was not written for: every line is one clean or one quarantined row, or nothing lands.

The line counts here are written down from the bytes the tests create, never taken from ingest's output.
"""
from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from jobs.core.errors import PipelineError
from jobs.core.lake import open_lake
from jobs.ingest import sources
from jobs.ingest.classify import clean_rows, quarantine_rows
from jobs.ingest.sources import count_lines, find_source_files
from tests.conftest import run_jobs
from tests.jobs.test_ingest_classify import _classify

DAY = "2024-11-02"


def _event(event_id: str, **fields) -> str:
    record = {"event_id": event_id, "user_id": "u1", "item_id": "i1", "category": "home.decor", "event_type": "view",
              "event_time": f"{DAY}T10:00:00Z", **fields}
    return json.dumps(record)


# --- counting lines from the bytes --------------------------------------------------------------------------


@pytest.mark.parametrize("data, lines", [
    (b"", 0), (b"a", 1), (b"a\n", 1), (b"a\nb", 2), (b"\n\n", 2), (b"a\r\nb\r\n", 2), (b"a\rb\r", 2),
    (b"a\r\n\rb", 3), (b"\r\n", 1), (b"\xff\xfe\x00a\n\x00", 2),
])
def test_lines_end_at_lf_cr_or_crlf_as_in_spark(tmp_path, data, lines):
    (tmp_path / "f").write_bytes(data)
    assert count_lines(tmp_path / "f") == lines


def test_a_crlf_split_across_read_chunks_is_one_line_end(tmp_path, monkeypatch):
    monkeypatch.setattr(sources, "CHUNK_BYTES", 2)
    (tmp_path / "f").write_bytes(b"a\r\nb\r\nc\r")
    assert count_lines(tmp_path / "f") == 3


def test_gzip_is_counted_decompressed_and_a_truncated_one_fails_with_its_name(tmp_path):
    good = tmp_path / "good.jsonl.gz"
    good.write_bytes(gzip.compress(b"a\nb\nc\n" * 1000))
    assert count_lines(good) == 3000
    cut = tmp_path / "cut.jsonl.gz"
    cut.write_bytes(good.read_bytes()[:-40])
    with pytest.raises(PipelineError, match="cut.jsonl.gz: cannot be read to its end"):
        count_lines(cut)
    corrupt = tmp_path / "corrupt.jsonl.gz"
    corrupt.write_bytes(good.read_bytes()[:10] + b"\x00" * 50 + good.read_bytes()[60:])
    with pytest.raises(PipelineError, match="corrupt.jsonl.gz"):
        count_lines(corrupt)
    (tmp_path / "x.jsonl.zst").write_bytes(b"\x28\xb5\x2f\xfd")
    with pytest.raises(PipelineError, match="not supported"):
        count_lines(tmp_path / "x.jsonl.zst")


def test_hidden_temporary_and_escaping_files_are_listed_not_read(tmp_path):
    landing = tmp_path / "landing"
    (landing / "_temporary" / "0").mkdir(parents=True)
    (landing / ".staging").mkdir()
    (landing / "part").mkdir()
    (landing / "events.jsonl").write_text("a\n")
    (landing / "part" / "more.jsonl").write_text("b\n")
    (landing / "_temporary" / "0" / "half.jsonl").write_text("c\n")
    (landing / ".staging" / "x.jsonl").write_text("d\n")
    (landing / "upload.jsonl.tmp").write_text("e\n")
    (landing / "_SUCCESS").write_text("")
    (tmp_path / "outside.txt").write_text("secret\n")
    (landing / "link_out.jsonl").symlink_to(tmp_path / "outside.txt")
    (landing / "link_in.jsonl").symlink_to(landing / "events.jsonl")
    (landing / "dir_link").symlink_to(tmp_path)
    found = find_source_files(landing)
    assert sorted(p.name for p in found.files) == ["events.jsonl", "link_in.jsonl", "more.jsonl"]
    assert {k: sorted(Path(p).name for p in v) for k, v in found.skipped.items()} == {
        "hidden_or_temporary_folder": [".staging", "_temporary"],
        "hidden_or_temporary_file": ["_SUCCESS", "upload.jsonl.tmp"],
        "link_outside_source": ["link_out.jsonl"],
        "link_to_folder": ["dir_link"],
    }


# --- what the parser makes of each hostile line ---------------------------------------------------------------


@pytest.mark.parametrize("line, reason", [
    (_event("e1") + _event("e2"), "malformed_json"),
    (_event("e1") + ", " + _event("e2"), "not_one_json_object"),
    (_event("e1") + "]}", "not_one_json_object"),
    (_event("e1") + " trailing words", "malformed_json"),
    ("[" + _event("e1") + "]", "malformed_json"),
    ('"just a string"', "malformed_json"),
    ("42", "malformed_json"),
    ("null", "not_one_json_object"),
    ("", "malformed_json"),
    ('{"event_id":"e1","user_id":"u1","user_id":"u2","item_id":"i1","category":"c","event_type":"view",'
     f'"event_time":"{DAY}T10:00:00Z"}}', "duplicate_json_key"),
    (_event("e1", price="NaN"), "invalid_price"),
    (_event("e1", price="Infinity"), "invalid_price"),
    (_event("e1", price="-Infinity"), "invalid_price"),
    (_event("e1", price="1e400"), "invalid_price"),
    (_event("e1", price=-3), "invalid_price"),
    (_event("e1").replace('"price"', '"p"')[:-1] + ', "price": NaN}', "invalid_price"),
    ('{"event_id":"e1","user_id":{"nested":1},"item_id":"i1","category":"c","event_type":"view",'
     f'"event_time":"{DAY}T10:00:00Z"}}', "invalid_user_id"),
    (_event("e1", padding="x" * (1 << 20)), "oversized_line"),
])
def test_each_hostile_jsonl_line_is_quarantined_with_its_reason(spark, line, reason):
    classified = _classify(spark, [line]).collect()
    assert [(r.reason) for r in classified] == [reason]


def test_a_time_without_offset_is_utc(spark):
    row = _classify(spark, [_event("e1", event_time=f"{DAY}T23:30:00")]).collect()[0]
    assert row.reason is None and str(row.event_ts) == f"{DAY} 23:30:00"


def test_a_rees46_header_is_a_quarantined_line_not_a_dropped_one(spark):
    from jobs.ingest.formats import REES46_HEADER

    rows = _classify(spark, [REES46_HEADER, f"{DAY} 10:00:00 UTC,view,1,2,home.decor,acme,3.5,7,s1"],
                     source="rees46-csv").collect()
    assert sorted(str(r.reason) for r in rows) == ["None", "header_line"]


# --- the whole stage: reconciliation, catalog, corrupt input ---------------------------------------------------


def _runs(spark, lake: Path) -> list:
    return open_lake(spark, lake).read("pipeline_runs").where("stage = 'ingest'").orderBy("started_at").collect()


def test_every_line_of_a_hostile_landing_is_accounted_for(spark, tmp_path):
    landing = tmp_path / f"ingest_date={DAY}"
    landing.mkdir()
    good = [_event(f"g{i}") for i in range(6)]
    bad = [_event("b1") + _event("b2"), _event("b3", price="NaN"), "", "\x00\x01", '{"a":1,"a":2}', "[1,2]"]
    (landing / "a.jsonl").write_bytes("\n".join(good[:3] + bad[:3]).encode() + b"\r\n")   # 6 lines
    (landing / "b.jsonl.gz").write_bytes(gzip.compress("\r".join(good[3:] + bad[3:]).encode()))  # 6 lines
    (landing / "_temporary").mkdir()
    (landing / "_temporary" / "c.jsonl").write_text(good[0] + "\n")  # not read, listed
    lake = tmp_path / "lake"
    code, out, err = run_jobs("ingest", "--lake", str(lake), "--source", str(landing), "--no-validate")
    assert code == 0, err
    run = _runs(spark, lake)[-1]
    assert (run.rows_in, run.rows_out, run.rows_quarantined) == (12, 6, 6)
    details = json.loads(run.details)
    assert details["lines_read"] == 12 and list(details["skipped_files"]) == ["hidden_or_temporary_folder"]
    tables = open_lake(spark, lake)
    assert tables.read("events_clean").count() == 6 and tables.read("events_quarantine").count() == 6


def test_a_corrupt_gzip_fails_the_batch_and_leaves_every_table_as_it_was(spark, tmp_path):
    landing = tmp_path / f"ingest_date={DAY}"
    landing.mkdir()
    (landing / "a.jsonl").write_text(_event("g1") + "\n")
    lake = tmp_path / "lake"
    assert run_jobs("ingest", "--lake", str(lake), "--source", str(landing), "--no-validate")[0] == 0
    tables = open_lake(spark, lake)
    before = {t: tables.version(t) for t in ("events_clean", "events_quarantine")}
    (landing / "b.jsonl.gz").write_bytes(gzip.compress((_event("g2") + "\n").encode() * 50)[:-30])
    code, out, err = run_jobs("ingest", "--lake", str(lake), "--source", str(landing), "--no-validate")
    assert code != 0 and "b.jsonl.gz: cannot be read to its end" in err and len(err.strip().splitlines()) == 1
    assert {t: tables.version(t) for t in before} == before


def test_a_catalog_naming_one_id_twice_stops_before_writing(spark, tmp_path):
    landing = tmp_path / "landing"
    landing.mkdir()
    (landing / "t.csv").write_text("1,10,7,pv,1730541600\n2,11,8,pv,1730541600\n")
    catalog = tmp_path / "categories.csv"
    catalog.write_text("category_id,category\n7,home.decor\n7,home.decor\n8,garden\n8,toys\n")
    lake = tmp_path / "lake"
    code, out, err = run_jobs("ingest", "--lake", str(lake), "--source", str(landing), "--format", "taobao-csv",
                              "--catalog", str(catalog), "--date", DAY, "--no-validate")
    assert code != 0 and "gives 1 category ids more than one name (8: garden, toys)" in err
    assert not (lake / "events_clean").exists()
    # The same id listed twice with one name is one entry: no row is doubled.
    catalog.write_text("category_id,category\n7,home.decor\n7,home.decor\n")
    code, out, err = run_jobs("ingest", "--lake", str(lake), "--source", str(landing), "--format", "taobao-csv",
                              "--catalog", str(catalog), "--date", DAY, "--no-validate", "--max-lateness-days", "-1")
    assert code == 0, err
    rows = open_lake(spark, lake).read("events_clean").orderBy("user_id").collect()
    assert [(r.user_id, r.category) for r in rows] == [("1", "home.decor"), ("2", "taobao.8")]


def test_quarantined_rows_keep_their_raw_line(spark):
    lines = [_event("e1") + ", " + _event("e2"), _event("ok")]
    classified = _classify(spark, lines)
    assert [r.raw_record for r in quarantine_rows(classified).collect()] == [lines[0]]
    assert [r.event_id for r in clean_rows(classified).collect()] == ["ok"]
