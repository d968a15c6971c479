"""``python -m jobs ingest``: landing files to ``events_clean`` and ``events_quarantine``.

Reads one landing partition (``--date``) or any file or folder (``--source``) in
one of the supported formats, enforces the schema, maps event-type synonyms,
converts times to UTC and names categories from the catalog where the source
only has ids. Every row ends in exactly one of the two tables: clean rows by
event date, bad rows with their raw text and a reason code. A re-run replaces
the batch's ingest dates in both tables.
"""
from jobs.ingest.main import add_arguments, run

__all__ = ["add_arguments", "run"]
