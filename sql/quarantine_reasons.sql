-- Data quality: quarantined rows per ingest date and reason, as a share of the rows
-- that ingest read (the latest ingest run of each date, from pipeline_runs).
-- Run: python -m jobs sql --file sql/quarantine_reasons.sql
-- columns: ingest_date, reason, rows, share_of_quarantined, share_of_rows_read, rows_read
WITH reasons AS (
    SELECT ingest_date, reason, count(*) AS rows
    FROM events_quarantine
    GROUP BY ingest_date, reason
),
ingest_runs AS (
    SELECT run_date, rows_in,
           row_number() OVER (PARTITION BY run_date ORDER BY started_at DESC) AS newest
    FROM pipeline_runs
    WHERE stage = 'ingest' AND status = 'succeeded'
)
SELECT r.ingest_date,
       r.reason,
       r.rows,
       round(CAST(r.rows AS DOUBLE) / sum(r.rows) OVER (PARTITION BY r.ingest_date), 3) AS share_of_quarantined,
       round(CAST(r.rows AS DOUBLE) / nullif(i.rows_in, 0), 4) AS share_of_rows_read,
       i.rows_in AS rows_read
FROM reasons AS r
LEFT JOIN ingest_runs AS i ON i.run_date = r.ingest_date AND i.newest = 1
ORDER BY r.ingest_date, r.rows DESC, r.reason
