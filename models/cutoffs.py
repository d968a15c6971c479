"""Which cutoff dates a training run uses, and which split each belongs to.

A cutoff T splits time: a sequence sees only events before T (00:00 UTC), its
label is what the user does in [T, T + horizon). For a run whose last complete
event date is D:

- the **test** cutoff is D + 1 - horizon, so its label window ends with D;
- the **validation** cutoff is one horizon earlier, so its labels end where
  the test window starts;
- the **train** cutoffs step back from one horizon before validation, so no
  training label reaches the validation or test windows: the test users'
  future never reaches training;
- the **score** cutoff is D + 1: history through D, no label yet.

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
    test: dt.date

    @property
    def score(self) -> dt.date:
        return self.as_of + dt.timedelta(days=1)

    def labelled(self) -> list[tuple[str, dt.date]]:
        """(split, cutoff) pairs, oldest first."""
        return [*((TRAIN, t) for t in sorted(self.train)), (VALIDATION, self.validation), (TEST, self.test)]

    def label_end(self, cutoff: dt.date) -> dt.date:
        """First date after the label window of ``cutoff``."""
        return cutoff + dt.timedelta(days=self.horizon_days)


def plan_cutoffs(
    as_of: dt.date, horizon_days: int = 7, train_cutoffs: int = 8, step_days: int = 1,
    first_event_date: dt.date | None = None, min_history_days: int | None = None,
) -> CutoffPlan:
    """The cutoffs for a training run on data through ``as_of``.

    Train cutoffs earlier than ``first_event_date + min_history_days`` are left
    out (too little history; by default one horizon); if none is left the data is too short and a
    ValueError says how many days are needed.
    """
    min_history_days = horizon_days if min_history_days is None else min_history_days
    if horizon_days < 1 or train_cutoffs < 1 or step_days < 1:
        raise ValueError("horizon, train cutoffs and step must all be at least 1")
    test = as_of + dt.timedelta(days=1 - horizon_days)
    validation = test - dt.timedelta(days=horizon_days)
    latest_train = validation - dt.timedelta(days=horizon_days)
    train = [latest_train - dt.timedelta(days=i * step_days) for i in range(train_cutoffs)]
    if first_event_date is not None:
        earliest = first_event_date + dt.timedelta(days=min_history_days)
        train = [t for t in train if t >= earliest]
        if not train:
            needed = 3 * horizon_days + min_history_days
            raise ValueError(
                f"events from {first_event_date} to {as_of} are too short to train: a run needs at least "
                f"{needed} days ({min_history_days} of history, then train, validation and test label windows "
                f"of {horizon_days} days each)")
    return CutoffPlan(as_of, horizon_days, tuple(sorted(train)), validation, test)
