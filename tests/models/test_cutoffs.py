"""The cutoff plan: splits strictly ordered, labels of one split never inside a later one."""
from __future__ import annotations

import datetime as dt

import pytest

from models.cutoffs import plan_cutoffs

D = dt.date(2024, 10, 24)


def test_train_validation_test_windows_do_not_overlap():
    plan = plan_cutoffs(D, horizon_days=7, train_cutoffs=8)
    assert plan.test == dt.date(2024, 10, 18) and plan.label_end(plan.test) == D + dt.timedelta(days=1)
    assert plan.validation == plan.test - dt.timedelta(days=7)
    assert max(plan.train) == plan.validation - dt.timedelta(days=7)
    assert all(plan.label_end(t) <= plan.validation for t in plan.train)
    assert plan.label_end(plan.validation) <= plan.test
    assert plan.score == D + dt.timedelta(days=1)
    assert len(plan.train) == 8 and list(plan.train) == sorted(plan.train)


def test_too_short_data_is_a_clear_error():
    with pytest.raises(ValueError, match="too short to train: a run needs at least 28 days"):
        plan_cutoffs(D, horizon_days=7, first_event_date=D - dt.timedelta(days=20))


def test_train_cutoffs_without_enough_history_are_dropped():
    plan = plan_cutoffs(D, horizon_days=2, train_cutoffs=5, first_event_date=D - dt.timedelta(days=9))
    assert min(plan.train) >= D - dt.timedelta(days=9) + dt.timedelta(days=2)
