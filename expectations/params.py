"""What a suite needs to know about the partition it checks, computed before validation."""
from __future__ import annotations

import datetime as dt
import statistics
from dataclasses import dataclass, field

from jobs.core.config import default


@dataclass(frozen=True)
class SuiteParams:
    """Date-dependent bounds and thresholds for one suite run.

    ``trailing_rows`` holds the row counts of up to seven earlier partitions
    (empty on a first run: the volume checks are then left out, since there
    is nothing to compare with; ``expectations/common.py`` says when they can
    stop a run). ``reference_category_mix`` is the share of
    each category over the same trailing window. The thresholds' defaults are
    the settings' (jobs/core/config.py); a stage passes the values it runs with.
    """

    run_date: dt.date
    window_start: dt.datetime
    window_end: dt.datetime
    trailing_rows: tuple[int, ...] = ()
    reference_category_mix: dict[str, float] = field(default_factory=dict)
    max_quarantine_rate: float = default("max_quarantine_rate")
    volume_warning_fraction: float = default("volume_warning_fraction")
    volume_critical_fraction: float = default("volume_critical_fraction")
    volume_baseline_partitions: int = default("volume_baseline_partitions")
    volume_acknowledged: bool = default("volume_acknowledged")
    max_category_divergence: float = default("max_category_divergence")
    max_session_hours: float = default("max_session_hours")
    max_session_events: int = default("bot_events_per_day")
    require_session_id: bool = True
    sequence_length: int = 50
    horizon_days: int = default("horizon_days")
    expected_rows: int | None = None  # predictions: the active users, one row each
    top_k: int = default("top_k")

    @property
    def trailing_median(self) -> float | None:
        return float(statistics.median(self.trailing_rows)) if self.trailing_rows else None

    @property
    def steady_rows(self) -> tuple[int, ...]:
        """The trailing partitions not themselves far below the median (a closed day, an outage, a quiet
        weekend day are left out of the baseline)."""
        median = self.trailing_median
        return tuple(r for r in self.trailing_rows if median and r >= (1 - self.volume_warning_fraction) * median)

    @property
    def steady_baseline(self) -> bool:
        """A full trailing window of which all but at most two partitions are steady: a ramp-up of a new source
        or a backfill's first week cannot tell an outage from normal, while one outage (or a weekend) in the
        window must not blind the check for the week after it."""
        return (len(self.trailing_rows) >= self.volume_baseline_partitions
                and len(self.steady_rows) >= max(1, self.volume_baseline_partitions - 2))

    @property
    def steady_median(self) -> float | None:
        return float(statistics.median(self.steady_rows)) if self.steady_rows else None
