#!/usr/bin/env bash
# The embedded default, end to end: generate a few days of events into ./lake,
# then ingest -> dedupe -> sessionize each day (each write gated by its Great
# Expectations suite), then a summary and one query.
# Override with LAKE=dir DAYS=n USERS=n START=YYYY-MM-DD.
set -euo pipefail
cd "$(dirname "$0")/.."
LAKE=${LAKE:-lake}
DAYS=${DAYS:-3}
USERS=${USERS:-3000}
START=${START:-2024-11-01}
jobs() { python -m jobs "$@" --lake "$LAKE"; }

python -m jobs generate --lake "$LAKE" --users "$USERS" --days "$DAYS" --start-date "$START"
dates=$(python -c "import datetime as d,sys; s=d.date.fromisoformat('$START'); print(' '.join((s+d.timedelta(days=i)).isoformat() for i in range($DAYS)))")
# Ingest every landing day first, so late events (landing a day after they
# happened) are in events_clean before their event date is deduplicated.
for day in $dates; do jobs ingest --date "$day"; done
for day in $dates; do
  jobs dedupe --date "$day"
  jobs sessionize --date "$day"
done

echo
echo "== rows and quality gates per stage (pipeline_runs)"
jobs sql "SELECT stage, run_date, rows_in, rows_out, rows_quarantined, rows_duplicate, round(seconds, 1) AS seconds, status,
                 expectations_evaluated AS checks, expectations_failed AS failed, dq_severity AS quality,
                 round(category_divergence, 3) AS drift
          FROM pipeline_runs ORDER BY started_at"
echo
echo "== quarantined rows by reason"
jobs sql "SELECT reason, count(*) AS rows FROM events_quarantine GROUP BY reason ORDER BY rows DESC"
echo
echo "== a downstream query: top categories by users and sessions per day"
jobs sql "WITH daily AS (
            SELECT event_date, category, count(DISTINCT user_id) AS users, count(DISTINCT session_id) AS sessions
            FROM events GROUP BY event_date, category)
          SELECT * FROM daily QUALIFY row_number() OVER (PARTITION BY event_date ORDER BY users DESC) <= 3
          ORDER BY event_date, users DESC"
echo
echo "Data Docs: $LAKE/_gx/gx/uncommitted/data_docs/local_site/index.html"
echo "Lake: $LAKE  (try: .venv/bin/python -m jobs sql \"SELECT * FROM sessions LIMIT 5\" --lake $LAKE)"
