"""Names and partitioning of the lake's tables: the contract other stages rely on."""
from __future__ import annotations

import re

# What may be put in SQL as a table (or database) name: a plain identifier, never quoted text.
PLAIN_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")

# What an event is, in every clean table (ingest maps the sources' synonyms onto these).
EVENT_TYPES = ("view", "cart", "purchase", "fav")

EVENTS_CLEAN = "events_clean"
EVENTS_QUARANTINE = "events_quarantine"
EVENTS = "events"
SESSIONS = "sessions"
PIPELINE_RUNS = "pipeline_runs"
USER_SEQUENCES = "user_sequences"
MODEL_DECISIONS = "model_decisions"
USER_INTEREST_PREDICTIONS = "user_interest_predictions"
CATEGORY_DEMAND_FORECAST = "category_demand_forecast"
MARKETING_SEGMENTS = "marketing_segments"

# events_clean is replaced per ingest batch (ingest_date) and read per event date.
PARTITIONS: dict[str, list[str]] = {
    EVENTS_CLEAN: ["event_date", "ingest_date"],
    EVENTS_QUARANTINE: ["ingest_date"],
    EVENTS: ["event_date"],
    SESSIONS: ["event_date"],
    PIPELINE_RUNS: ["run_date"],
    # One snapshot per as-of date (the last event date it may see), one partition per cutoff.
    USER_SEQUENCES: ["as_of_date", "cutoff_date"],
    MODEL_DECISIONS: [],
    # One partition per score date, replaced by a re-run of that date.
    USER_INTEREST_PREDICTIONS: ["score_date"],
    CATEGORY_DEMAND_FORECAST: ["score_date"],
    MARKETING_SEGMENTS: ["score_date"],
}
