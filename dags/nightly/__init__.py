"""The nightly DAG's decisions and alerts as plain functions of plain values, so tests reach them without Airflow
(the DAG file beside this folder only wires them to tasks)."""
