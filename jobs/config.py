"""Pipeline configuration: one frozen dataclass, loaded once in each ``main()``.

Transforms never see this object; ``main()`` unpacks the plain values they
need. Every default works on a laptop; environment variables (``IM_*``)
override them for a deployment without code changes.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path


def _env(name: str, default: str) -> str:
    return os.environ.get(name, default)


@dataclass(frozen=True)
class PipelineConfig:
    """Where the lake is, which engines to use, and the data rules' knobs."""

    lake: Path = field(default_factory=lambda: Path(_env("IM_LAKE", "lake")).resolve())
    spark_master: str = field(default_factory=lambda: _env("IM_SPARK_MASTER", "local[*]"))
    spark_driver_memory: str = field(default_factory=lambda: _env("IM_SPARK_DRIVER_MEMORY", "3g"))
    # The driver JVM's options where Spark runs locally (the driver is the executor there): the throughput
    # collector, because G1's concurrent threads competed with the Python workers for the cores (scoring
    # was slower with G1: docs/performance.md).
    spark_driver_java_options: str = field(
        default_factory=lambda: _env("IM_SPARK_DRIVER_JAVA_OPTIONS", "-XX:+UseParallelGC"))
    shuffle_partitions: int = field(default_factory=lambda: int(_env("IM_SHUFFLE_PARTITIONS", "8")))
    session_gap_minutes: int = 30
    # Events older than this many days before their ingest date are quarantined
    # as stale; raise it for historical backfills (e.g. the public datasets).
    max_lateness_days: int = 3
    # Events this far past the end of their ingest date are quarantined as future.
    max_future_minutes: int = 60
    # More events than this for one user on one event date in one batch: a bot.
    bot_events_per_day: int = 1500
    # Replays are looked up in `events` this many days before the processed date.
    replay_lookback_days: int = 2
    # Data-quality gates (see expectations/): the producing stages validate
    # their staged partition before they publish it.
    validate_writes: bool = field(default_factory=lambda: _env("IM_VALIDATE_WRITES", "1") != "0")
    # Critical when more of an ingest batch than this is malformed (bots aside).
    max_quarantine_rate: float = field(default_factory=lambda: float(_env("IM_MAX_QUARANTINE_RATE", "0.05")))
    # Row count against the trailing 7 partitions' mean: warning / critical outside these fractions.
    volume_warning_fraction: float = field(default_factory=lambda: float(_env("IM_VOLUME_WARNING_FRACTION", "0.5")))
    volume_critical_fraction: float = field(default_factory=lambda: float(_env("IM_VOLUME_CRITICAL_FRACTION", "0.9")))
    # Category-mix KL divergence from the trailing week above this: a warning.
    max_category_divergence: float = field(default_factory=lambda: float(_env("IM_MAX_CATEGORY_DIVERGENCE", "0.1")))
    max_session_hours: float = 24.0
    # The maintain stage (jobs/maintain.py): VACUUM retention, when staging leftovers count as abandoned,
    # how many days of user_sequences snapshots and how many models' training checkpoints to keep.
    vacuum_retention_hours: float = field(default_factory=lambda: float(_env("IM_VACUUM_RETENTION_HOURS", "168")))
    abandoned_after_hours: float = 24.0
    keep_sequence_days: int = 28
    keep_checkpoints: int = 3

    @property
    def landing(self) -> Path:
        """Raw landing zone: generated or delivered files, before ingest."""
        return self.lake / "raw"

    def with_overrides(self, **values) -> "PipelineConfig":
        """A copy with the non-None values replaced (command-line overrides)."""
        return replace(self, **{k: v for k, v in values.items() if v is not None})
