"""What the nightly DAG says when a run fails or runs late: one paragraph an on-call engineer can act on.

Plain functions of plain values, so tests reach them without Airflow; the DAG's
callbacks only pick the values out of the Airflow context and log the result.
"""
from __future__ import annotations

import logging

log = logging.getLogger("interest_migration.alerts")


def failure_summary(dag_id: str, run_id: str, run_date: str | None, task_id: str, try_number: int | None,
                    max_tries: int | None, error: object, lake: str) -> str:
    lines = [line.strip() for line in str(error).strip().splitlines() if line.strip()] or ["(no message)"]
    # A stage's own reason is its "error: ..." line; otherwise the exception's first line.
    first_line = next((line for line in reversed(lines) if line.startswith("error: ")), lines[0])[:500]
    retries = f"attempt {try_number} of {max_tries}" if try_number and max_tries else "final attempt"
    return (f"{dag_id} run {run_id} for event date {run_date or '(unresolved)'} failed at task {task_id} "
            f"({retries}): {first_line}. Nothing after {task_id} ran, so the published tables under {lake} "
            f"still hold the previous good partitions; the stage's one-line reason is in the task log and in "
            f"pipeline_runs (python -m jobs sql \"SELECT * FROM pipeline_runs WHERE status <> 'succeeded' "
            f"ORDER BY started_at DESC LIMIT 5\"). Fix the cause, then clear the task to resume from it.")


async def deadline_missed(context: dict | None = None, **kwargs) -> None:
    """The DAG's DeadlineAlert callback (runs in the triggerer)."""
    dag_run = (context or {}).get("dag_run") or {}
    run_id = getattr(dag_run, "run_id", None) or (dag_run.get("run_id") if isinstance(dag_run, dict) else None)
    log.warning("%s run %s missed its deadline of %s after it was queued: the nightly predictions are late; "
                "check the running task's log (a stuck sensor waits for the landing partition).",
                kwargs.get("dag_id", "interest_migration_nightly"), run_id or "(unknown)",
                kwargs.get("deadline", "the configured interval"))
