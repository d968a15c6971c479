"""What the nightly DAG says when a run fails, runs late or finds critical data, and who it tells.

Three alerts, each a paragraph an on-call engineer can act on:

- a task failed (``FailureAlert``, the DAG's ``on_failure_callback``);
- a failure that is a **critical data-quality result**: the failed stage's
  ``pipeline_runs`` row says a critical expectation failed, and the alert
  says so in its subject, with the failed expectations and the Data Docs;
- the run **missed its deadline** (``deadline_missed``, the DAG's
  ``DeadlineAlert`` callback, run by the triggerer).

Each is logged, and sent by e-mail through the SMTP provider's hook on the
Airflow connection ``IM_ALERT_SMTP_CONN_ID`` (default ``smtp_alerts``) to
``IM_ALERT_TO``, or to the connection's extra ``to``. With no such connection,
or nobody to send to, nothing is sent and the log says why: a lake on a laptop
needs no mail server. A mail server that fails is logged too, never raised: an
alert must not turn a failed task into a different failure.

The message is plain text put in an HTML ``<pre>`` after escaping, and is never
rendered as a Jinja template (the provider's ``SmtpNotifier`` renders its
subject and body): an error line quotes input data, and ``{{ ... }}`` in a
malformed event must not run as a template. Composing is plain functions of
plain values, so tests reach them without Airflow.
"""
from __future__ import annotations

import datetime as dt
import html
import logging
from dataclasses import dataclass
from pathlib import Path

from airflow.sdk import BaseNotifier

log = logging.getLogger("interest_migration.alerts")
SUBJECT_PREFIX = "[interest-migration]"
# The stage each Spark task runs, where the two differ (its pipeline_runs rows carry the stage's name).
TASK_STAGES = {"features_training": "features", "validate_predictions": "validate"}
# The tasks that run after the night's predictions were published (or after a night with none to publish).
AFTER_PUBLISH = frozenset({"refresh_sql_catalog", "dashboard", "maintenance_due", "maintain"})


@dataclass(frozen=True)
class Alert:
    subject: str
    body: str

    def html(self) -> str:
        return f"<pre style=\"font-family: monospace; white-space: pre-wrap\">{html.escape(self.body)}</pre>"


def failure_summary(dag_id: str, run_id: str, run_date: str | None, task_id: str, try_number: int | None,
                    max_tries: int | None, error: object, lake: str) -> str:
    lines = [line.strip() for line in str(error).strip().splitlines() if line.strip()] or ["(no message)"]
    # A stage's own reason is its "error: ..." line; otherwise the exception's first line.
    first_line = next((line for line in reversed(lines) if line.startswith("error: ")), lines[0])[:500]
    retries = f"attempt {try_number} of {max_tries}" if try_number and max_tries else "final attempt"
    consequence = (f"The night's tables under {lake} were already written; only {task_id}'s own output is stale"
                   if task_id in AFTER_PUBLISH else
                   f"Nothing after {task_id} ran, so the published tables under {lake} still hold the previous "
                   "good partitions")
    return (f"{dag_id} run {run_id} for event date {run_date or '(unresolved)'} failed at task {task_id} "
            f"({retries}): {first_line}. {consequence}; the stage's one-line reason is in the task log and in "
            f"pipeline_runs (python -m jobs sql \"SELECT * FROM pipeline_runs WHERE status <> 'succeeded' "
            f"ORDER BY started_at DESC LIMIT 5\"). Fix the cause, then clear the task to resume from it.")


def failure_alert(summary: str, task_id: str, run_date: str | None, quality: dict | None) -> Alert:
    """The failure's alert; a critical data-quality result (``quality``: the stage's failed validation, from
    ``critical_quality``) gets its own subject and the failed expectations."""
    if not quality:
        return Alert(f"{SUBJECT_PREFIX} {task_id} failed for {run_date or 'an unresolved date'}", summary)
    failures = [f"  {line}" for line in quality.get("failures", []) if line.startswith("critical")]
    body = "\n".join([summary, "", f"Critical data-quality result on {quality.get('table')}:", *failures,
                      f"Data Docs: {quality.get('data_docs') or '(none written)'}"])
    return Alert(f"{SUBJECT_PREFIX} critical data-quality result: {quality.get('table')} {run_date} "
                 f"(task {task_id} stopped)", body)


def deadline_alert(dag_id: str, run_id: str | None, deadline: str) -> Alert:
    return Alert(f"{SUBJECT_PREFIX} {dag_id} run {run_id or '(unknown)'} missed its deadline",
                 f"{dag_id} run {run_id or '(unknown)'} has not finished {deadline} after it was queued: the "
                 "nightly predictions are late. Check the running task's log (a stuck sensor waits for the "
                 "landing partition); the published tables still hold the previous night's predictions.")


def critical_quality(lake: Path, stage: str, run_date: str | None, since: dt.datetime | None) -> dict | None:
    """The critical validation of ``stage``'s newest failed ``pipeline_runs`` row for ``run_date`` (started at or
    after ``since``), or None: the failure was something else, or the table cannot be read."""
    import json

    from deltalake import DeltaTable

    if run_date is None:
        return None
    try:
        rows = DeltaTable(str(lake / "pipeline_runs")).to_pyarrow_table(
            filters=[("run_date", "=", dt.date.fromisoformat(run_date)), ("stage", "=", stage)]).to_pylist()
    except Exception:  # noqa: BLE001 - no table yet, or a date that is not one: not a data-quality failure
        return None
    failed = [r for r in rows if r["status"] == "failed" and r["dq_severity"] == "critical"
              and (since is None or r["started_at"] >= since)]
    if not failed:
        return None
    details = json.loads(max(failed, key=lambda r: r["started_at"])["details"] or "{}")
    return next((v for v in details.get("validation", []) if v.get("severity") == "critical"), None)


class FailureAlert(BaseNotifier):
    """The DAG's failure callback: logs the failure's paragraph and mails it (critical data as such)."""

    def notify(self, context) -> None:
        from jobs.core.config import PipelineConfig

        ti = context["ti"]
        settings = PipelineConfig()
        run_date = ti.xcom_pull(task_ids="check_params")
        summary = failure_summary(ti.dag_id, ti.run_id, run_date, ti.task_id, ti.try_number,
                                  ti.max_tries + 1 if ti.max_tries is not None else None,
                                  context.get("exception"), str(settings.lake))
        log.error(summary)
        since = getattr(ti, "start_date", None)
        quality = critical_quality(settings.lake, TASK_STAGES.get(ti.task_id, ti.task_id), run_date, since)
        send(failure_alert(summary, ti.task_id, run_date, quality), settings.alert_smtp_conn_id, settings.alert_to)


async def deadline_missed(context: dict | None = None, **kwargs) -> None:
    """The DAG's DeadlineAlert callback (runs in the triggerer)."""
    from jobs.core.config import PipelineConfig

    dag_run = (context or {}).get("dag_run") or {}
    run_id = getattr(dag_run, "run_id", None) or (dag_run.get("run_id") if isinstance(dag_run, dict) else None)
    alert = deadline_alert(kwargs.get("dag_id", "interest_migration_nightly"), run_id,
                           kwargs.get("deadline", "the configured interval"))
    log.warning("%s", alert.body)
    settings = PipelineConfig()
    await asend(alert, settings.alert_smtp_conn_id, settings.alert_to)


def _recipients(conn_id: str, to: str, connection=None):
    """The SMTP hook and the addresses to send to, or None (logged) when alerts are not configured."""
    from airflow.providers.smtp.hooks.smtp import SmtpHook
    from airflow.sdk.exceptions import AirflowNotFoundException

    if connection is None:
        try:
            connection = SmtpHook.get_connection(conn_id)
        except AirflowNotFoundException:
            log.info("alert not sent: no Airflow connection %r (IM_ALERT_SMTP_CONN_ID)", conn_id)
            return None
        except Exception as error:  # noqa: BLE001 - a lookup that fails is logged, never raised
            log.error("alert not sent: the connection %r could not be read: %s", conn_id, error)
            return None
    addresses = [a.strip() for a in (to or connection.extra_dejson.get("to") or "").split(",") if a.strip()]
    if not addresses:
        log.info("alert not sent: nobody to send it to (IM_ALERT_TO, or the connection's extra 'to')")
        return None
    return SmtpHook(smtp_conn_id=conn_id), addresses


def send(alert: Alert, conn_id: str, to: str = "") -> bool:
    """Mail ``alert``; False (and a log line) when not configured or the server failed."""
    found = _recipients(conn_id, to)
    if found is None:
        return False
    hook, addresses = found
    try:
        with hook:
            hook.send_email_smtp(to=addresses, subject=alert.subject, html_content=alert.html())
    except Exception as error:  # noqa: BLE001 - an alert that cannot be sent is logged, never raised
        log.error("alert not sent: %s: %s", type(error).__name__, error)
        return False
    log.info("alert sent to %s: %s", ", ".join(addresses), alert.subject)
    return True


async def asend(alert: Alert, conn_id: str, to: str = "") -> bool:
    """``send`` for the triggerer's event loop: the connection is looked up and the mail sent without blocking
    it (aiosmtplib, through the same hook)."""
    from airflow.providers.smtp.hooks.smtp import SmtpHook
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        connection = await SmtpHook.aget_connection(conn_id)
    except AirflowNotFoundException:
        log.info("alert not sent: no Airflow connection %r (IM_ALERT_SMTP_CONN_ID)", conn_id)
        return False
    except Exception as error:  # noqa: BLE001
        log.error("alert not sent: the connection %r could not be read: %s", conn_id, error)
        return False
    found = _recipients(conn_id, to, connection)
    if found is None:
        return False
    hook, addresses = found
    try:
        async with hook:
            await hook.asend_email_smtp(to=addresses, subject=alert.subject, html_content=alert.html())
    except Exception as error:  # noqa: BLE001
        log.error("alert not sent: %s: %s", type(error).__name__, error)
        return False
    log.info("alert sent to %s: %s", ", ".join(addresses), alert.subject)
    return True
