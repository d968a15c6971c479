"""Airflow for the DAG tests: its own home (SQLite) per session, no examples, the repository's dags/ folder."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# Before anything imports airflow: it reads its home and configuration once, at import.
AIRFLOW_HOME = Path(tempfile.mkdtemp(prefix="im-airflow-"))
os.environ.setdefault("AIRFLOW_HOME", str(AIRFLOW_HOME))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ.setdefault("AIRFLOW__CORE__DAGS_FOLDER", str(ROOT / "dags"))
