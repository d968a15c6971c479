"""Which cutoff dates a training run uses, and which split each belongs to.

A cutoff T splits time: a sequence sees only events before T (00:00 UTC), its
label is what the user does in [T, T + horizon). For a run whose last complete
event date is D:

- the **test** cutoffs (rolling origins) are D + 1 - horizon, and the
  ``test_origins - 1`` days before it: the latest one's label window ends
  with D; a model is judged on every origin, not on one lucky week;
- the **validation** cutoff is one horizon before the earliest test origin,
  so its labels end where the first test window starts;
- the **train** cutoffs step back from one horizon before validation, so no
  training label reaches the validation or test windows: the test users'
  future never reaches training;
- the **score** cutoff is D + 1: history through D, no label yet.

Every cutoff's history reaches back the same ``history_days``, and each
cutoff has events over all of it: a training sequence must look like the
test and score sequences (a train cutoff near the start of the lake would
otherwise have a few days of history where the test cutoff has weeks). On a
young lake that means a shorter history for everyone: what the earliest train
cutoff has, or if that is less, half of what the latest one has (at least
``min_history_days``), and train cutoffs with less are left out.

Pure Python (no Spark, no TensorFlow) so every stage shares one definition.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

TRAIN, VALIDATION, TEST, SCORE = "train", "validation", "test", "score"
SPLITS = (TRAIN, VALIDATION, TEST, SCORE)


@dataclass(frozen=True)
class CutoffPlan:
    """Cutoff dates per split for one as-of date (the last complete event date)."""

    as_of: dt.date
    horizon_days: int
    train: tuple[dt.date, ...]
    validation: dt.date
    test: tuple[dt.date, ...]
    history_days: int

    @property
    def score(self) -> dt.date:
        return self.as_of + dt.timedelta(days=1)

    def labelled(self) -> list[tuple[str, dt.date]]:
        """(split, cutoff) pairs, oldest first."""
        return [*((TRAIN, t) for t in self.train), (VALIDATION, self.validation), *((TEST, t) for t in self.test)]

    def label_end(self, cutoff: dt.date) -> dt.date:
        """First date after the label window of ``cutoff``."""
        return cutoff + dt.timedelta(days=self.horizon_days)


def plan_cutoffs(
    as_of: dt.date, horizon_days: int = 7, train_cutoffs: int = 8, step_days: int = 1,
    first_event_date: dt.date | None = None, min_history_days: int | None = None, test_origins: int = 3,
    history_days: int = 28,
) -> CutoffPlan:
    """The cutoffs for a training run on data through ``as_of``.

    With ``first_event_date``, the plan's ``history_days`` is the most that
    every kept cutoff can have; if no train cutoff has ``min_history_days``
    (by default one horizon) of events before it, a ValueError says how many
    days are needed.
    """
    min_history_days = horizon_days if min_history_days is None else min_history_days
    if min(horizon_days, train_cutoffs, step_days, test_origins, history_days) < 1:
        raise ValueError("horizon, train cutoffs, step, test origins and history must all be at least 1")
    latest_test = as_of + dt.timedelta(days=1 - horizon_days)
    test = tuple(sorted(latest_test - dt.timedelta(days=i * step_days) for i in range(test_origins)))
    validation = test[0] - dt.timedelta(days=horizon_days)
    latest_train = validation - dt.timedelta(days=horizon_days)
    train = [latest_train - dt.timedelta(days=i * step_days) for i in range(train_cutoffs)]
    if first_event_date is not None:
        available = (latest_train - first_event_date).days
        if available < min_history_days:
            needed = min_history_days + 2 * horizon_days + horizon_days + (test_origins - 1) * step_days
            raise ValueError(
                f"events from {first_event_date} to {as_of} are too short to train: a run needs at least "
                f"{needed} days ({min_history_days} of history, then train and validation label windows of "
                f"{horizon_days} days each, and {test_origins} test origins {step_days} day(s) apart with "
                f"{horizon_days}-day label windows)")
        earliest_available = (train[-1] - first_event_date).days
        history_days = min(history_days, max(min_history_days, available // 2, earliest_available))
        train = [t for t in train if (t - first_event_date).days >= history_days]
    return CutoffPlan(as_of, horizon_days, tuple(sorted(train)), validation, test, history_days)
