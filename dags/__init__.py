"""dags: filled in by later issues (see README)."""
