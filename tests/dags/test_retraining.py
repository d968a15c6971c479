"""The nightly branch's retraining decision, from a lake's own records (small Delta tables written here)."""
from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pytest
from deltalake import write_deltalake

from jobs.core.errors import PipelineError
from dags.nightly.retraining import decide_retraining
from models.registry import Registry

RUN = dt.date(2024, 11, 30)


def _lake(tmp_path, days: int, drift: float | None = None, champion_as_of: dt.date | None = None):
    dates = [RUN - dt.timedelta(days=d) for d in range(days)]
    write_deltalake(str(tmp_path / "events"), pa.table({"user_id": ["u"] * days, "event_date": dates}),
                    partition_by=["event_date"])
    write_deltalake(str(tmp_path / "pipeline_runs"), pa.table({
        "run_date": [RUN, RUN], "stage": ["validate", "validate"],
        "category_divergence": pa.array([None, drift], pa.float64())}), partition_by=["run_date"])
    if champion_as_of:
        registry = Registry(tmp_path)
        version = f"{champion_as_of}.1"
        registry.version_dir(version).mkdir(parents=True)
        registry.write_metadata(version, {"version": version, "as_of_date": champion_as_of.isoformat()})
        registry.set_champion(version, {"reason": "test"})
    return tmp_path


def test_a_young_lake_without_a_champion_neither_trains_nor_scores(tmp_path):
    decision = decide_retraining(_lake(tmp_path, 10), RUN, "auto")
    assert not decision.retrain and not decision.score and "at least 30 days" in decision.reason


def test_no_champion_with_enough_history_trains(tmp_path):
    decision = decide_retraining(_lake(tmp_path, 30), RUN, "auto")
    assert decision.retrain and "no champion" in decision.reason


def test_a_fresh_champion_on_a_stable_mix_keeps_scoring(tmp_path):
    decision = decide_retraining(_lake(tmp_path, 30, drift=0.02, champion_as_of=RUN - dt.timedelta(days=3)), RUN, "auto")
    assert not decision.retrain and decision.score and "drift 0.020" in decision.reason


def test_a_week_old_champion_is_retrained(tmp_path):
    decision = decide_retraining(_lake(tmp_path, 30, champion_as_of=RUN - dt.timedelta(days=7)), RUN, "auto")
    assert decision.retrain and "7 days ago" in decision.reason


def test_category_drift_above_the_threshold_retrains(tmp_path):
    lake = _lake(tmp_path, 30, drift=0.25, champion_as_of=RUN - dt.timedelta(days=1))
    decision = decide_retraining(lake, RUN, "auto", drift_threshold=0.1)
    assert decision.retrain and "drifted 0.250" in decision.reason
    assert not decide_retraining(lake, RUN, "auto", drift_threshold=0.3).retrain


def test_always_and_never_override_the_rules(tmp_path):
    lake = _lake(tmp_path, 10, champion_as_of=RUN - dt.timedelta(days=30))
    assert decide_retraining(lake, RUN, "never").retrain is False
    with pytest.raises(PipelineError, match="retrain=always, but .* too short"):
        decide_retraining(lake, RUN, "always")
    with pytest.raises(PipelineError, match="auto, always, never"):
        decide_retraining(lake, RUN, "weekly")
