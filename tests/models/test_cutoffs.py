"""The cutoff plan: splits strictly ordered, labels of one split never inside a later one."""
from __future__ import annotations

import datetime as dt

import pytest

from models.cutoffs import TEST, plan_cutoffs

D = dt.date(2024, 10, 24)


def test_train_validation_test_windows_do_not_overlap():
    plan = plan_cutoffs(D, horizon_days=7, train_cutoffs=8, test_origins=3)
    assert plan.test == (dt.date(2024, 10, 16), dt.date(2024, 10, 17), dt.date(2024, 10, 18))
    assert plan.label_end(plan.test[-1]) == D + dt.timedelta(days=1)
    assert plan.validation == plan.test[0] - dt.timedelta(days=7)
    assert max(plan.train) == plan.validation - dt.timedelta(days=7)
    assert all(plan.label_end(t) <= plan.validation for t in plan.train)
    assert plan.label_end(plan.validation) <= min(plan.test)
    assert plan.score == D + dt.timedelta(days=1)
    assert len(plan.train) == 8 and list(plan.train) == sorted(plan.train)
    assert [c for split, c in plan.labelled() if split == TEST] == list(plan.test)


def test_too_short_data_is_a_clear_error():
    with pytest.raises(ValueError, match="too short to train: a run needs at least 30 days"):
        plan_cutoffs(D, horizon_days=7, first_event_date=D - dt.timedelta(days=20))


def test_every_cutoff_has_the_whole_history_window_behind_it():
    # A lake of 60 days: room for the full 28-day history at every train cutoff.
    first = D - dt.timedelta(days=59)
    plan = plan_cutoffs(D, horizon_days=7, train_cutoffs=8, first_event_date=first)
    assert plan.history_days == 28 and len(plan.train) == 8
    assert all((t - first).days >= plan.history_days for t in plan.train)


def test_a_young_lake_shortens_everyones_history_rather_than_mixing_lengths():
    # 21 days with a 3-day horizon: the latest train cutoff has 10 days behind it.
    first = D - dt.timedelta(days=20)
    plan = plan_cutoffs(D, horizon_days=3, train_cutoffs=8, first_event_date=first, history_days=28)
    assert plan.history_days == 5
    assert all((t - first).days >= 5 for t in plan.train) and len(plan.train) == 6
