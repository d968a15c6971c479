"""Scoring on the tiny trained lake: the three tables' contents, an idempotent re-run, and both refusals."""
from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from deltalake import DeltaTable

from models.registry import Registry
from models.cutoffs import plan_cutoffs
from tests.conftest import MIN_PROPENSITY, MODEL_AS_OF, MODEL_START, SCORE_DATES, SCORE_OPTIONS, run_jobs as run

PREVIOUS_DATE, SCORE_DATE = SCORE_DATES
BREAK_MODEL = """
import shutil, sys
import numpy as np
import tf_keras as keras
import models.transformer  # registers the custom layers
model = keras.models.load_model(sys.argv[1], compile=False)
model.set_weights([np.full_like(w, np.nan) for w in model.get_weights()])
shutil.rmtree(sys.argv[1])
model.save(sys.argv[1], include_optimizer=False)
"""


def _read(lake: Path, table: str, version: int | None = None, date: dt.date = SCORE_DATE):
    rows = DeltaTable(str(lake / table), version=version).to_pyarrow_table().to_pylist()
    return [r for r in rows if r["score_date"] == date]


@pytest.fixture(scope="module")
def scored(scored_lake):
    return scored_lake


def _active_users(lake: Path, history_days: int) -> set[str]:
    start = dt.datetime.combine(SCORE_DATE - dt.timedelta(days=history_days - 1), dt.time(), dt.timezone.utc)
    events = DeltaTable(str(lake / "events")).to_pyarrow_table(columns=["user_id", "event_ts", "category"])
    return {r["user_id"] for r in events.to_pylist() if r["event_ts"] >= start}


def _window_categories(lake: Path) -> dict[str, set[str]]:
    """Each user's categories over the champion's history window before the score cutoff (what "new" is against)."""
    registry = Registry(lake)
    history_days = registry.metadata(registry.champion())["training_window"]["history_days"]
    start = dt.datetime.combine(SCORE_DATE - dt.timedelta(days=history_days - 1), dt.time(), dt.timezone.utc)
    out: dict[str, set[str]] = {}
    for r in DeltaTable(str(lake / "events")).to_pyarrow_table(columns=["user_id", "category", "event_ts"]).to_pylist():
        if r["event_ts"] >= start:
            out.setdefault(r["user_id"], set()).add(r["category"])
    return out


def test_predictions_one_row_per_active_user_with_sorted_probabilities(scored, trained_version):
    # Scoring rebuilds sequences over the window the champion was trained on: on this young lake, the
    # history every training cutoff had (models/cutoffs.py).
    metadata = Registry(scored).metadata(trained_version)
    history_days = metadata["training_window"]["history_days"]
    assert history_days == plan_cutoffs(MODEL_AS_OF, 1, 2, first_event_date=MODEL_START).history_days == 2
    vocabulary = set(json.loads((Registry(scored).version_dir(trained_version) / "vocabulary.json").read_text())[
        "categories"])
    categories = len(vocabulary)
    rows = _read(scored, "user_interest_predictions")
    assert sorted(r["user_id"] for r in rows) == sorted(_active_users(scored, history_days))
    for row in rows:
        probabilities = [t["probability"] for t in row["top_categories"]]
        assert len(probabilities) == categories and probabilities == sorted(probabilities, reverse=True)
        assert all(0 <= p <= 1 for p in probabilities) and 0 <= row["migration_probability"] <= 1
        assert row["model_version"] == trained_version and row["score_date"] == SCORE_DATE
        # The most frequent category the model knows among the last L events: null only when every one of
        # them is in a category the model's vocabulary lacks (here a two-day training window's).
        assert row["current_top_category"] is None or row["current_top_category"] in vocabulary
        # Why: the first three top categories, each with its habit share or marked new, and recent drivers.
        shown = [t["category"] for t in row["top_categories"][:3]]
        assert row["explanation"].startswith(shown[0]) and all(c in row["explanation"] for c in shown)
        assert "own habits" in row["explanation"] or "new to the user" in row["explanation"]
    assert sum(row["current_top_category"] is None for row in rows) < len(rows) / 5
    # The scored rows' scratch copy is gone once the tables are written.
    assert not any((scored / "_scratch").glob("*"))


def test_demand_forecast_sums_the_users_probabilities(scored):
    predictions = _read(scored, "user_interest_predictions")
    seen = _window_categories(scored)
    expected, expected_new = {}, {}
    for row in predictions:
        for top in row["top_categories"]:
            expected[top["category"]] = expected.get(top["category"], 0) + top["probability"]
            if top["category"] not in seen[row["user_id"]]:
                expected_new[top["category"]] = expected_new.get(top["category"], 0) + top["probability"]
    demand = {r["category"]: r for r in _read(scored, "category_demand_forecast")}
    assert set(demand) == set(expected)
    for category, row in demand.items():
        assert row["expected_users"] == pytest.approx(expected[category], rel=1e-9)
        assert row["expected_new_users"] == pytest.approx(expected_new.get(category, 0), rel=1e-9, abs=1e-9)
        assert row["active_users"] == len(predictions)
        assert row["users_new_to_category"] == sum(category not in seen[r["user_id"]] for r in predictions)
    # Against the previous score date's forecast.
    previous = {r["category"]: r for r in _read(scored, "category_demand_forecast", date=PREVIOUS_DATE)}
    for category, row in demand.items():
        assert row["previous_score_date"] == PREVIOUS_DATE
        assert row["expected_users_change"] == pytest.approx(
            row["expected_users"] - previous[category]["expected_users"], rel=1e-9, abs=1e-9)
        assert row["expected_new_users_change"] == pytest.approx(
            row["expected_new_users"] - previous[category]["expected_new_users"], rel=1e-9, abs=1e-9)


def test_marketing_segments_rank_users_new_to_the_category(scored):
    probability = {(r["user_id"], t["category"]): t["probability"]
                   for r in _read(scored, "user_interest_predictions") for t in r["top_categories"]}
    seen = _window_categories(scored)
    by_category: dict[str, list[dict]] = {}
    for row in _read(scored, "marketing_segments"):
        by_category.setdefault(row["category"], []).append(row)
    assert by_category, f"no segment rows at a {MIN_PROPENSITY} threshold"
    for category, members in by_category.items():
        members.sort(key=lambda r: r["rank"])
        assert [m["rank"] for m in members] == list(range(1, len(members) + 1)) and len(members) <= 20
        propensities = [m["propensity"] for m in members]
        assert propensities == sorted(propensities, reverse=True) and min(propensities) >= MIN_PROPENSITY
        for m in members:
            assert category not in seen[m["user_id"]]
            assert m["propensity"] == pytest.approx(probability[(m["user_id"], category)])
        # Nobody left out ranks above the last member.
        outside = [p for (u, c), p in probability.items() if c == category and c not in seen[u]
                   and u not in {m["user_id"] for m in members}]
        assert len(members) == 20 or all(p < MIN_PROPENSITY for p in outside)
        assert all(p <= propensities[-1] + 1e-12 for p in outside)


def test_a_rerun_replaces_the_date_with_the_same_rows_and_history_keeps_the_first(scored):
    def snapshot(version=None):
        return {table: sorted((tuple(sorted((k, str(v)) for k, v in r.items() if k != "scored_at"))
                               for r in _read(scored, table, version)))
                for table in ("user_interest_predictions", "category_demand_forecast", "marketing_segments")}

    before = snapshot()
    first_version = DeltaTable(str(scored / "user_interest_predictions")).version()
    code, out, err = run("score", "--lake", str(scored), "--date", SCORE_DATE.isoformat(), *SCORE_OPTIONS)
    assert code == 0, err
    assert snapshot() == before
    assert DeltaTable(str(scored / "user_interest_predictions")).version() == first_version + 1
    # Time travel, as sql/README.md documents it: the first run's rows are still readable at their version.
    assert sorted(r["user_id"] for r in _read(scored, "user_interest_predictions", first_version)) == \
        sorted(r["user_id"] for r in _read(scored, "user_interest_predictions"))
    code, out, err = run("sql", "--lake", str(scored), "--format", "json",
                         f"SELECT count(*) AS users, min(scored_at) AS scored_at FROM delta_scan("
                         f"'{scored / 'user_interest_predictions'}', version => {first_version}) "
                         f"WHERE score_date = DATE '{SCORE_DATE}'")
    assert code == 0, err
    [old] = json.loads(out)
    assert old["users"] == len(before["user_interest_predictions"])
    assert dt.datetime.fromisoformat(old["scored_at"]) < _read(scored, "user_interest_predictions")[0]["scored_at"]


def test_held_predictions_publish_only_after_validation_and_equal_a_one_shot_run(scored):
    """The DAG's path: features --mode score, score --hold --from-features, validate, publish."""
    def rows(table):
        return sorted(tuple(sorted((k, str(v)) for k, v in r.items() if k != "scored_at"))
                      for r in _read(scored, table))

    tables = ("user_interest_predictions", "category_demand_forecast", "marketing_segments")
    one_shot = {table: rows(table) for table in tables}
    version = DeltaTable(str(scored / "user_interest_predictions")).version()
    lake, date = ["--lake", str(scored)], ["--date", SCORE_DATE.isoformat()]
    assert run("features", *lake, *date, "--mode", "score")[0] == 0
    code, out, err = run("score", *lake, *date, *SCORE_OPTIONS, "--hold", "--from-features")
    assert code == 0, err
    assert DeltaTable(str(scored / "user_interest_predictions")).version() == version  # nothing published yet
    code, out, err = run("publish", *lake, *date)
    assert code != 0 and "have not been validated" in err and len(err.strip().splitlines()) == 1
    code, out, err = run("validate", *lake, *date, "--table", "user_interest_predictions")
    assert code == 0, err
    code, out, err = run("publish", *lake, *date)
    assert code == 0, err
    assert {table: rows(table) for table in tables} == one_shot
    assert not (scored / "_candidates" / f"score_date={SCORE_DATE}").exists()
    # A retry after success (the task's own, or a manual re-run): nothing to do, nothing committed again.
    versions = {table: DeltaTable(str(scored / table)).version() for table in tables}
    code, out, err = run("publish", *lake, *date)
    assert code == 0 and "already published" in out, err
    assert {table: DeltaTable(str(scored / table)).version() for table in tables} == versions
    # A new held write of the date voids that receipt: if it then disappears, publish says so, not "done".
    assert run("score", *lake, *date, *SCORE_OPTIONS, "--hold")[0] == 0
    shutil.rmtree(scored / "_candidates" / f"score_date={SCORE_DATE}")
    code, out, err = run("publish", *lake, *date)
    assert code != 0 and "run score --hold first" in err, out


def test_publish_commits_only_the_content_that_passed_and_resumes_after_a_crash(scored, spark):
    """score --hold re-run while validate runs: its verdict lands beside a held write with the same table
    versions but other rows. publish refuses it (content, not version numbers). Then a publish that died after
    its first commit is finished by the retry, from the folder it had claimed."""
    from jobs.core import held
    from jobs.core.lake import open_lake

    lake, date = ["--lake", str(scored)], ["--date", SCORE_DATE.isoformat()]
    folder = scored / "_candidates" / f"score_date={SCORE_DATE}"
    assert run("score", *lake, *date, *SCORE_OPTIONS, "--hold")[0] == 0
    assert run("validate", *lake, *date, "--table", "user_interest_predictions")[0] == 0
    verdict = (folder / "validated.json").read_text()
    code, out, err = run("score", *lake, *date, *SCORE_OPTIONS, "--hold", "--segment-size", "5")
    assert code == 0, err
    (folder / "validated.json").write_text(verdict)  # the race: the earlier validation's verdict, written late
    before = {t: DeltaTable(str(scored / t)).version() for t in held.PUBLISH_ORDER}
    code, out, err = run("publish", *lake, *date)
    assert code != 0 and "changed after validation" in err, err
    assert {t: DeltaTable(str(scored / t)).version() for t in held.PUBLISH_ORDER} == before
    # A crash after the first of three commits.
    assert run("score", *lake, *date, *SCORE_OPTIONS, "--hold")[0] == 0
    assert run("validate", *lake, *date, "--table", "user_interest_predictions")[0] == 0
    published = open_lake(spark, str(scored))
    manifest, claimed = held.claim(published, SCORE_DATE)
    first = held.PUBLISH_ORDER[0]
    published.overwrite_partitions(first, open_lake(spark, str(claimed)).read(first), ["score_date"],
                                   {"score_date": [SCORE_DATE.isoformat()]})
    code, out, err = run("publish", *lake, *date)
    assert code == 0, err
    assert not claimed.exists() and held.receipt_path(scored, SCORE_DATE).is_file()
    for table in held.PUBLISH_ORDER:  # what was claimed and validated, whole, in every table
        assert len(_read(scored, table)) == manifest.rows[table], table


def test_refuses_without_a_champion(model_lake, tmp_path):
    lake = tmp_path / "lake"
    shutil.copytree(model_lake, lake)
    Registry(lake).clear_champion()
    code, out, err = run("score", "--lake", str(lake), "--date", SCORE_DATE.isoformat())
    assert code != 0 and "no champion model" in err and len(err.strip().splitlines()) == 1
    assert not (lake / "user_interest_predictions").exists()


def test_refuses_to_publish_predictions_that_fail_their_suite(scored, trained_version, tmp_path):
    """A champion whose weights went NaN: every probability is NaN, the suite fails, the published date stays."""
    registry = Registry(scored)
    broken = registry.new_version(SCORE_DATE)
    shutil.rmtree(registry.version_dir(broken))
    shutil.copytree(registry.version_dir(trained_version), registry.version_dir(broken))
    # In a child process: TensorFlow initialised in the test process aborted a later in-process fit.
    saved = registry.version_dir(broken) / "saved_model"
    subprocess.run([sys.executable, "-c", BREAK_MODEL, str(saved)], check=True, capture_output=True,
                   env={**os.environ, "TF_USE_LEGACY_KERAS": "1"})
    # Registered as it now is (hashes of the NaN weights): the suite, not the file check, must stop it.
    registry.write_metadata(broken, {**registry.metadata(trained_version), "version": broken,
                                     "files": registry.file_hashes(broken)})
    registry.set_champion(broken, {"reason": "a broken model, for the test"})
    before = _read(scored, "user_interest_predictions")
    version = DeltaTable(str(scored / "user_interest_predictions")).version()
    try:
        code, out, err = run("score", "--lake", str(scored), "--date", SCORE_DATE.isoformat(), *SCORE_OPTIONS)
    finally:
        registry.set_champion(trained_version, {"reason": "restored by the test"})
    assert code != 0 and "critical" in err, err
    assert DeltaTable(str(scored / "user_interest_predictions")).version() == version
    assert not any((scored / "_scratch").glob("*"))  # removed on the refusal too
    assert _read(scored, "user_interest_predictions") == before


def test_batches_are_regrouped_into_one_model_shape():
    """Spark's Arrow batches, whatever their sizes, reach the model as full batches of the same rows in order."""
    import pyarrow as pa

    from jobs.score.workers import regrouped

    sizes, start, batches = [0, 5, 3, 11, 0, 1, 7], 0, []
    for size in sizes:
        batches.append(pa.record_batch([pa.array(range(start, start + size))], names=["row"]))
        start += size
    tables = list(regrouped(iter(batches), 4))
    assert [t.num_rows for t in tables] == [4, 4, 4, 4, 4, 4, 3]
    assert [v for t in tables for v in t["row"].to_pylist()] == list(range(sum(sizes)))
    assert list(regrouped(iter([]), 4)) == []


@pytest.mark.parametrize("categories", [5, 36, 3000])
def test_the_top_categories_are_those_of_a_full_stable_sort(categories):
    """A partial selection past FULL_SORT_CATEGORIES: the same k columns in the same order as sorting every row,
    ties (rounded probabilities) to the lower column."""
    import numpy as np

    from jobs.score.workers import top_positions

    rng = np.random.default_rng(categories)
    probabilities = rng.random((500, categories))
    probabilities[:, ::2] = np.round(probabilities[:, ::2], 1)  # many ties, some at the k-th value
    expected = np.argsort(-probabilities, axis=1, kind="stable")[:, :10]
    np.testing.assert_array_equal(top_positions(probabilities, 10), expected)


def test_a_snapshot_without_the_newer_columns_is_refused_in_one_line(tmp_path):
    """The workers read the files raw, so the driver checks every file's columns before any task starts."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from jobs.core.errors import PipelineError
    from jobs.score.driver import SequenceFiles
    from jobs.score.workers import SEQUENCE_COLUMNS

    old = pa.table({c: pa.array([None], pa.string()) for c in SEQUENCE_COLUMNS
                    if c not in ("window_category_days", "window_category_age_seconds")})
    pq.write_table(old, tmp_path / "old.parquet")
    pq.write_table(pa.table({c: pa.array([None], pa.string()) for c in SEQUENCE_COLUMNS}), tmp_path / "new.parquet",
                   row_group_size=1)
    assert SequenceFiles.of([str(tmp_path / "new.parquet")]).pieces == ((str(tmp_path / "new.parquet"), 0),)
    with pytest.raises(PipelineError, match="lack window_category_days, window_category_age_seconds .*run features "
                                            "again") as refused:
        SequenceFiles.of([str(tmp_path / "new.parquet"), str(tmp_path / "old.parquet")])
    assert "\n" not in str(refused.value)


def test_a_retried_task_replaces_its_file_and_a_dead_attempt_leaves_nothing_readable(spark, tmp_path):
    """The workers' own Parquet (ScoredFiles): one file per partition whatever the attempts, complete or absent."""
    import pyarrow as pa

    from jobs.score.schemas import PROSPECTS_SCHEMA
    from jobs.score.workers import ScoredFiles

    def prospects(*users):
        return pa.RecordBatch.from_arrays([pa.array(users), pa.array([1] * len(users), pa.int32()),
                                           pa.array([0.5] * len(users))], schema=ScoredFiles.KINDS["prospects"])

    first = ScoredFiles(tmp_path, partition=3, attempt=0)
    first.write("prospects", prospects("a", "b"))
    first.close()
    dead = ScoredFiles(tmp_path, partition=4, attempt=0)
    dead.write("prospects", prospects("x"))
    dead._flush("prospects")  # wrote a row group, then its worker died before closing the file
    retry = ScoredFiles(tmp_path, partition=3, attempt=1)
    retry.write("prospects", prospects("a", "b"))
    retry.close()
    rows = spark.read.schema(PROSPECTS_SCHEMA).parquet(str(tmp_path / "prospects")).collect()
    assert sorted(r["user_id"] for r in rows) == ["a", "b"]
    assert sorted(f.name for f in (tmp_path / "prospects").glob("part-*")) == ["part-00003.parquet"]


@pytest.mark.parametrize("buffer_rows", [10, 1_000_000])
def test_a_task_keeps_every_prospect_that_can_make_a_segment(monkeypatch, buffer_rows):
    """The per-task cut (SegmentProspects) leaves the segments as ranking every prospect would, ties included."""
    import numpy as np
    import pyarrow as pa

    from jobs.score.schemas import PROSPECTS_SCHEMA
    from jobs.score.workers import ScoredFiles, SegmentProspects

    monkeypatch.setattr(SegmentProspects, "BUFFER_ROWS", buffer_rows)
    rng, size, every, kept = np.random.default_rng(7), 5, [], []
    for task in range(3):
        prospects, rows = SegmentProspects(size), []
        for batch in range(4):
            users = [f"t{task}b{batch}u{i:02d}" for i in range(40)]
            positions, probabilities = rng.integers(0, 3, 40), rng.integers(1, 30, 40) / 30  # with ties
            prospects.add(pa.array(users), positions, probabilities)
            rows += list(zip(users, positions.tolist(), probabilities.tolist()))
        task_kept = [tuple(r.values()) for r in prospects.batch(ScoredFiles.KINDS["prospects"]).to_pylist()]
        # Exactly the rows at or above each category's size-th highest probability in the task.
        for pos in range(3):
            cutoff = sorted((p for _, q, p in rows if q == pos), reverse=True)[size - 1]
            assert sorted(r for r in task_kept if r[1] == pos) == sorted(r for r in rows if r[1] == pos and r[2] >= cutoff)
        every, kept = every + rows, kept + task_kept

    def segments(rows):
        return {pos: sorted((-p, u) for u, q, p in rows if q == pos)[:size] for pos in range(3)}

    assert segments(kept) == segments(every)
    assert PROSPECTS_SCHEMA.fieldNames() == ["user_id", "pos", "probability"]
