"""Histories as real stores have them, through the real command line with default settings: a new source whose
volume ramps up, and a closed day with no events at all."""
from __future__ import annotations

import datetime as dt
import json
import random

from jobs.core.lake import open_lake
from tests.conftest import run_jobs as run

START = dt.date(2017, 11, 25)
DAYS = 4


def _taobao_history(path, closed: dt.date | None = None) -> dict[dt.date, int]:
    """Alibaba UserBehavior lines: a few dozen events on the first day, hundreds on each later one."""
    rng = random.Random(7)
    per_day, lines = {}, []
    for d in range(DAYS):
        day = START + dt.timedelta(days=d)
        n = 0 if day == closed else 30 if d == 0 else 300 + rng.randint(-40, 40)
        midnight = int(dt.datetime(day.year, day.month, day.day, tzinfo=dt.timezone.utc).timestamp())
        for _ in range(n):
            lines.append(f"{rng.randint(1, 60)},{rng.randint(1, 500)},{rng.randint(1, 12)},"
                         f"{rng.choice(['pv', 'pv', 'pv', 'cart', 'fav', 'buy'])},{midnight + rng.randint(0, 86399)}")
        per_day[day] = n
    rng.shuffle(lines)  # a real export is not sorted by day
    path.write_text("\n".join(lines) + "\n")
    return per_day


def test_a_historical_file_that_ramps_up_publishes_every_date_with_defaults(spark, tmp_path):
    history = tmp_path / "UserBehavior.csv"
    per_day = _taobao_history(history)
    lake = ["--lake", str(tmp_path / "lake")]
    code, out, err = run("ingest", *lake, "--source", str(history), "--format", "taobao-csv")
    assert code == 0, err
    first, last = min(per_day).isoformat(), max(per_day).isoformat()
    for stage in ("dedupe", "sessionize"):  # the backfill path: every date in one pass
        code, out, err = run(stage, *lake, "--from-date", first, "--to-date", last)
        assert code == 0, f"{stage}: {err}"
        assert f"expect_table_row_count_to_be_between ({START + dt.timedelta(days=1)})" in out  # the ramp-up
    tables = open_lake(spark, tmp_path / "lake")
    clean = {r["event_date"]: r["count"] for r in tables.read("events_clean").groupBy("event_date").count().collect()}
    assert clean == per_day  # every line dated by its own event, none stale, none lost
    events = {r["event_date"] for r in tables.read("events").select("event_date").distinct().collect()}
    assert events == set(per_day)
    runs = tables.read("pipeline_runs").where("stage = 'dedupe'").collect()
    assert {r.status for r in runs} == {"succeeded"} and "warning" in {r.dq_severity for r in runs}
    # Importing it again would replace dates the lake holds: refused unless asked for.
    code, out, err = run("ingest", *lake, "--source", str(history), "--format", "taobao-csv")
    assert code != 0 and "--replace-existing" in err and len(err.strip().splitlines()) == 1
    assert run("ingest", *lake, "--source", str(history), "--format", "taobao-csv", "--replace-existing")[0] == 0
    clean = {r["event_date"]: r["count"] for r in tables.read("events_clean").groupBy("event_date").count().collect()}
    assert clean == per_day


def test_a_closed_day_in_a_backfill_is_an_acknowledged_empty_date_and_the_next_dates_go_on(spark, tmp_path):
    closed = START + dt.timedelta(days=2)
    landing = tmp_path / "lake" / "raw" / "events"
    history = tmp_path / "history.csv"
    per_day = _taobao_history(history, closed=closed)
    for day in per_day:  # the store's history as daily deliveries: none for the closed day
        if per_day[day]:
            folder = landing / f"ingest_date={day.isoformat()}"
            folder.mkdir(parents=True)
            rows = [line for line in history.read_text().splitlines()
                    if dt.datetime.fromtimestamp(int(line.split(",")[4]), dt.timezone.utc).date() == day]
            (folder / "part-0.csv").write_text("\n".join(rows) + "\n")
    lake = ["--lake", str(tmp_path / "lake"), "--format", "taobao-csv"]
    code, out, err = run("ingest", *lake, "--date", closed.isoformat())
    assert code != 0 and "nothing to ingest" in err  # the nightly run: a missing delivery stops the night
    copying = landing / f"ingest_date={closed.isoformat()}"
    copying.mkdir()
    (copying / "part-0.csv._COPYING_").write_text("1,2,3,pv,1511740800\n")
    code, out, err = run("ingest", *lake, "--date", closed.isoformat(), "--acknowledge-volume")
    assert code != 0 and "holds no files to ingest (skipped: 1 hidden_or_temporary_file)" in err  # not empty: pending
    (copying / "part-0.csv._COPYING_").unlink()
    copying.rmdir()
    code, out, err = run("ingest", *lake, "--date", closed.isoformat(), "--acknowledge-volume")
    assert code == 0 and "empty batch" in out, err
    assert run("ingest", *lake, "--source", str(landing))[0] == 0  # the other dates' deliveries, in one batch
    for stage in ("dedupe", "sessionize"):  # the backfill path: every date in one pass, the closed day included
        code, out, err = run(stage, "--lake", str(tmp_path / "lake"), "--from-date", min(per_day).isoformat(),
                             "--to-date", max(per_day).isoformat())
        assert code == 0, f"{stage}: {err}"
        assert f"expect_table_row_count_to_be_between ({closed})" in out  # reported, with its date
    tables = open_lake(spark, tmp_path / "lake")
    ingests = {r.run_date: r for r in tables.read("pipeline_runs").where("stage = 'ingest' AND status = 'succeeded'")
               .collect()}
    assert ingests[closed].rows_in == 0 and "empty_batch" in json.loads(ingests[closed].details)
    assert {r["event_date"] for r in tables.read("events").select("event_date").distinct().collect()} == {
        d for d, n in per_day.items() if n}
