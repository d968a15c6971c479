"""Alerts reach someone: each is mailed through Airflow's SMTP provider to a real SMTP server on the loopback
interface (aiosmtpd), and read back from it. The DAG's own failure path is covered by the outage night in
test_nightly_run.py, which sends to the same kind of server."""
from __future__ import annotations

import asyncio
import datetime as dt
import email
import json
import time
from email.message import Message
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller

from dags.nightly import alerts
from tests.conftest import free_port

CONN_ID = "smtp_alerts_test"


class Inbox:
    """An aiosmtpd handler that keeps every message it is handed."""

    def __init__(self):
        self.messages: list[tuple[list[str], Message]] = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's hook name
        self.messages.append((list(envelope.rcpt_tos), email.message_from_bytes(envelope.content)))
        return "250 OK"

    def wait(self, count: int, seconds: float = 10) -> list[tuple[list[str], Message]]:
        deadline = time.monotonic() + seconds
        while len(self.messages) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.messages


def body_text(message: Message) -> str:
    parts = [p for p in message.walk() if p.get_content_type() == "text/html"]
    return parts[0].get_payload(decode=True).decode()


def smtp_connection(port: int, **extra) -> str:
    """An Airflow connection, as its environment variable's JSON: plain SMTP on the loopback, no TLS."""
    return json.dumps({"conn_type": "smtp", "host": "127.0.0.1", "port": port,
                       "extra": {"from_email": "interest-migration@example.com", "disable_ssl": True,
                                 "disable_tls": True, "timeout": 5, "retry_limit": 0, **extra}})


@pytest.fixture
def smtp_server():
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        yield inbox, controller.port
    finally:
        controller.stop()


def test_a_failure_alert_is_mailed_with_its_reason_and_never_rendered_as_a_template(smtp_server, monkeypatch):
    inbox, port = smtp_server
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", smtp_connection(port))
    # An error line quoting hostile input: a template and markup must arrive as text.
    error = "error: ingest: bad line {{ 7 * 7 }} <script>alert(1)</script>"
    summary = alerts.failure_summary("interest_migration_nightly", "scheduled__2024-11-21", "2024-11-20", "ingest",
                                     1, 3, error, "/lake")
    assert alerts.send(alerts.failure_alert(summary, "ingest", "2024-11-20", None), CONN_ID,
                       "oncall@example.com, data@example.com")
    [(recipients, message)] = inbox.wait(1)
    assert recipients == ["oncall@example.com", "data@example.com"]
    assert message["Subject"] == "[interest-migration] ingest failed for 2024-11-20"
    body = body_text(message)
    assert "{{ 7 * 7 }}" in body and "49" not in body and "<script>" not in body and "&lt;script&gt;" in body
    assert "failed at task ingest (attempt 1 of 3)" in body


def test_a_critical_data_quality_result_says_so_with_its_failed_expectations(smtp_server, monkeypatch):
    inbox, port = smtp_server
    # Recipients from the connection's extra when IM_ALERT_TO is empty.
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", smtp_connection(port, to="dq@example.com"))
    quality = {"table": "events_clean", "severity": "critical", "data_docs": "/lake/_gx/index.html",
               "failures": ["critical: expect_table_row_count_to_be_between: observed 12; expected [400, 900]",
                            "warning: expect_column_values_to_not_be_null on category: observed 2%"]}
    alert = alerts.failure_alert("the summary", "ingest", "2024-11-20", quality)
    assert alerts.send(alert, CONN_ID)
    [(recipients, message)] = inbox.wait(1)
    assert recipients == ["dq@example.com"]
    assert message["Subject"].startswith("[interest-migration] critical data-quality result: events_clean 2024-11-20")
    body = body_text(message)
    assert "observed 12; expected [400, 900]" in body and "/lake/_gx/index.html" in body
    assert "warning:" not in body


def test_the_deadline_callback_mails_from_the_triggerers_event_loop(smtp_server, monkeypatch):
    inbox, port = smtp_server
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", smtp_connection(port))
    monkeypatch.setenv("IM_ALERT_SMTP_CONN_ID", CONN_ID)
    monkeypatch.setenv("IM_ALERT_TO", "oncall@example.com")
    asyncio.run(alerts.deadline_missed({"dag_run": {"run_id": "scheduled__2024-11-21"}},
                                       dag_id="interest_migration_nightly", deadline="4:00:00"))
    [(_, message)] = inbox.wait(1)
    assert message["Subject"] == "[interest-migration] interest_migration_nightly run scheduled__2024-11-21 missed its deadline"
    assert "has not finished 4:00:00 after it was queued" in body_text(message)


def test_nothing_is_sent_without_a_connection_or_anyone_to_send_to(smtp_server, monkeypatch, caplog):
    inbox, port = smtp_server
    alert = alerts.deadline_alert("interest_migration_nightly", "manual__x", "1:00:00")
    with caplog.at_level("INFO", logger="interest_migration.alerts"):
        assert not alerts.send(alert, "no_such_connection", "oncall@example.com")
        monkeypatch.setenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", smtp_connection(port))
        assert not alerts.send(alert, CONN_ID, "")
    assert "no Airflow connection 'no_such_connection'" in caplog.text and "nobody to send it to" in caplog.text
    time.sleep(0.2)
    assert inbox.messages == []


def test_a_mail_server_that_is_down_is_logged_not_raised(monkeypatch, caplog):
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", smtp_connection(free_port()))  # nothing listens there
    with caplog.at_level("ERROR", logger="interest_migration.alerts"):
        assert not alerts.send(alerts.deadline_alert("d", "r", "1:00:00"), CONN_ID, "oncall@example.com")
    assert "alert not sent" in caplog.text


def test_the_failed_stages_pipeline_runs_row_tells_a_critical_result_from_another_failure(tmp_path):
    from deltalake import write_deltalake
    import pyarrow as pa

    lake = tmp_path
    started = dt.datetime(2024, 11, 21, 2, 5, tzinfo=dt.timezone.utc)
    validation = {"table": "events_clean", "severity": "critical", "failures": ["critical: x"], "data_docs": None}
    rows = [("ingest", "failed", "critical", started, {"validation": [validation]}),
            ("dedupe", "failed", None, started, {"error": "OSError: disk full"}),
            ("sessionize", "failed", "critical", started - dt.timedelta(days=1), {"validation": [validation]})]
    write_deltalake(str(lake / "pipeline_runs"), pa.table({
        "run_date": [dt.date(2024, 11, 20)] * 3, "stage": [r[0] for r in rows], "status": [r[1] for r in rows],
        "dq_severity": [r[2] for r in rows], "started_at": [r[3] for r in rows],
        "details": [json.dumps(r[4]) for r in rows]}))
    since = started - dt.timedelta(minutes=1)
    assert alerts.critical_quality(lake, "ingest", "2024-11-20", since) == validation
    assert alerts.critical_quality(lake, "dedupe", "2024-11-20", since) is None
    assert alerts.critical_quality(lake, "sessionize", "2024-11-20", since) is None  # an earlier attempt's
    assert alerts.critical_quality(lake, "ingest", "2024-11-19", since) is None
    assert alerts.critical_quality(Path(tmp_path / "nowhere"), "ingest", "2024-11-20", since) is None


def test_a_task_after_publish_does_not_claim_the_night_published_nothing():
    after = alerts.failure_summary("d", "r", "2024-11-20", "dashboard", 1, 1, "error: dashboard: disk full", "/lake")
    before = alerts.failure_summary("d", "r", "2024-11-20", "score", 1, 1, "error: score: x", "/lake")
    assert "were already written; only dashboard's own output is stale" in after and "Nothing after" not in after
    assert "Nothing after score ran" in before
