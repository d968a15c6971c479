#!/usr/bin/env bash
# `make run-nights`: the longer demonstration, night by night from an empty lake, through Airflow: generate about three weeks
# of events into ./lake, then run the nightly DAG with `airflow dags test` for
# each day in order (SQLite metadata in ./airflow_home, local Spark through
# spark-submit, the local lake). The first day with enough history trains and
# evaluates a candidate; when it does not beat the baselines, the shallow baseline
# fitted beside it is the fallback champion (jobs/evaluate/fallback.py) until a
# weekly retrain's candidate does; every night from then on scores and publishes. Then a
# summary and one downstream query.
# Override with LAKE=dir DAYS=n USERS=n START=YYYY-MM-DD HORIZON=days.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/local_env.sh

python -m jobs generate --lake "$IM_LAKE" --users "$USERS" --days "$DAYS" --start-date "$START"
airflow db migrate > "$LOGS/db-migrate.log" 2>&1 || { cat "$LOGS/db-migrate.log"; exit 1; }

echo
echo "== the nightly DAG, one run per event date (logs: $LOGS/)"
for ((i = 0; i < DAYS; i++)); do
  day=$(day_after "$START" "$i")
  logical="$(day_after "$day" 1)T02:00:00+00:00"
  log="$LOGS/$day.log"
  begin=$SECONDS
  if ! airflow dags test interest_migration_nightly "$logical" > "$log" 2>&1; then
    echo "$day: the run failed; the end of its log ($log):"
    grep -E "error: |failed at task|critical: " "$log" | tail -5
    exit 1
  fi
  decision=$(sed -n "s/.*retraining for $day: \(.*\) \[unusual_prefix.*/\1/p" "$log" | head -1 || true)
  published=$(grep -o "publish $day: [0-9,]* predictions" "$log" | head -1 | sed "s/publish $day: //" || true)
  # evaluate's decision, when this night trained: "promoted <version>: ..." or "kept ...: ... does not beat ..."
  trained=$(sed -n 's/.*\] \(\(promoted\|kept\) [^[]*\) \[.*/\1/p' "$log" | head -1 || true)
  printf '%s  %4ss  %-22s retrain %s\n' "$day" "$((SECONDS - begin))" "${published:-nothing published}" \
    "${decision:-?}" | cut -c1-160
  [ -z "$trained" ] || echo "            evaluate: $trained"
done

source scripts/local_report.sh
