"""Names and partitioning of the lake's tables: the contract other stages rely on."""
from __future__ import annotations

EVENTS_CLEAN = "events_clean"
EVENTS_QUARANTINE = "events_quarantine"
EVENTS = "events"
SESSIONS = "sessions"
PIPELINE_RUNS = "pipeline_runs"

# events_clean is replaced per ingest batch (ingest_date) and read per event date.
PARTITIONS: dict[str, list[str]] = {
    EVENTS_CLEAN: ["event_date", "ingest_date"],
    EVENTS_QUARANTINE: ["ingest_date"],
    EVENTS: ["event_date"],
    SESSIONS: ["event_date"],
    PIPELINE_RUNS: ["run_date"],
}
