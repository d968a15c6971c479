"""dags: the nightly Airflow DAG (``nightly_interest_migration``); wiring only, the decisions it branches on
live in ``dags.nightly.retraining`` and ``dags.nightly.decisions``. docs/operations.md describes its tasks and params."""
