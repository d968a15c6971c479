"""dags: the nightly Airflow DAG (``nightly_interest_migration``); wiring only, the decisions it branches on
live in ``jobs.retraining`` and ``jobs.orchestration``. docs/operations.md describes its tasks and params."""
