#!/usr/bin/env bash
# `make run`: the embedded default, end to end, in about ten minutes on two cores. Every Spark stage runs on one
# local Spark Connect server started for the run (`python -m jobs connect-server`), not on a driver of its own.
#   1. generate three weeks of events for 2,000 users into ./lake;
#   2. load all but the last two days as a history, with the backfill path (one ingest of the folder, one pass
#      of dedupe and of sessionize over the range);
#   3. build training sequences, train a Transformer on two TensorFlow workers, evaluate it against the
#      baselines (it becomes the champion only if it beats the strongest of them by more than noise);
#   4. run the nightly DAG in Airflow (`airflow dags test`: SQLite metadata in ./airflow_home, its Spark tasks
#      clients of the run's Spark Connect server) for each of the last two days as its delivery lands, publishing
#      the champion's predictions;
#   5. print what people want to see: rows and quarantine per stage, the champion against the baselines with
#      intervals, top migrations, the inventory and marketing queries, where the reports and Data Docs are, and
#      how to open the Airflow UI on this lake.
# One line per phase with its time and log. Override with LAKE=dir USERS=n DAYS=n NIGHTS=n START=YYYY-MM-DD
# HORIZON=days. `make run-nights` (scripts/run_nights.sh) is the longer night-by-night demonstration.
set -euo pipefail
cd "$(dirname "$0")/.."
NIGHTS=${NIGHTS:-2}
source scripts/local_env.sh
started=$SECONDS
# phase NAME LOG COMMAND...: one line with the phase's time and its log; on failure, the log's end.
phase() {
  local name=$1 log=$2 begin=$SECONDS
  shift 2
  printf '%-58s' "$name" | cut -c1-58 | tr -d '\n'
  if "$@" > "$log" 2>&1; then
    printf ' %4ss  %s\n' "$((SECONDS - begin))" "$log"
  else
    printf ' failed after %ss; the end of %s:\n' "$((SECONDS - begin))" "$log"
    grep -E "error: |failed at task|critical: |Error" "$log" | tail -8 || tail -20 "$log"
    exit 1
  fi
}

HISTORY_END=$(day_after "$START" $((DAYS - NIGHTS - 1)))
FIRST_NIGHT=$(day_after "$START" $((DAYS - NIGHTS)))
echo "== $USERS users, $DAYS days from $START into $IM_LAKE: history through $HISTORY_END, then the nights" \
     "$FIRST_NIGHT..$LAST through Airflow"
rm -rf "$IM_LAKE/raw/incoming"
# One Spark driver for the whole run: every stage below, and every Spark task of the nights, is a Spark Connect
# client of it (IM_SPARK_REMOTE), instead of starting and warming a JVM of its own. Stopped when the run ends.
# It runs long, so with the default JIT and collector, not the quick-start options of short drivers.
IM_SPARK_DRIVER_JAVA_OPTIONS=-XX:+UseParallelGC IM_SPARK_DRIVER_MEMORY=${IM_SPARK_DRIVER_MEMORY:-4g} \
  python -m jobs connect-server --port "$CONNECT_PORT" > "$LOGS/connect-server.log" 2>&1 &
connect_server=$!
# Airflow's metadata database is made meanwhile too: neither needs the other, and each waits on its own.
airflow db migrate > "$LOGS/db-migrate.log" 2>&1 &
db_migrate=$!
trap 'kill $connect_server 2>/dev/null || true' EXIT
phase "generate $DAYS days of events" "$LOGS/generate.log" \
  python -m jobs generate --lake "$IM_LAKE" --users "$USERS" --days "$DAYS" --start-date "$START"
# The nights' deliveries wait aside, and land one at a time before their night.
mkdir -p "$IM_LAKE/raw/incoming"
for ((i = DAYS - NIGHTS; i < DAYS; i++)); do
  mv "$IM_LAKE/raw/events/ingest_date=$(day_after "$START" "$i")" "$IM_LAKE/raw/incoming/"
done
phase "start a Spark Connect server (sc://127.0.0.1:$CONNECT_PORT)" "$LOGS/connect-wait.log" \
  python -m jobs connect-server --port "$CONNECT_PORT" --ready-within 120
export IM_SPARK_REMOTE=sc://127.0.0.1:$CONNECT_PORT
# A history's first week has no trailing week to compare volumes with, and a store's history may hold closed
# days: a backfill reports volume anomalies with their dates and goes on.
phase "ingest the history: one pass over the folder" "$LOGS/history-ingest.log" \
  jobs ingest --source "$IM_LAKE/raw/events" --acknowledge-volume
for stage in dedupe sessionize; do
  phase "$stage $START..$HISTORY_END in one pass" "$LOGS/history-$stage.log" \
    jobs "$stage" --from-date "$START" --to-date "$HISTORY_END" --acknowledge-volume
done
phase "features: training sequences as of $HISTORY_END" "$LOGS/features-train.log" \
  jobs features --date "$HISTORY_END" --mode train
phase "train: a Transformer on 2 TensorFlow workers" "$LOGS/train.log" jobs train --date "$HISTORY_END"
phase "evaluate: against the baselines, promote if it wins" "$LOGS/evaluate.log" jobs evaluate --date "$HISTORY_END"
sed -n 's/^ *\(\(promoted\|kept\|fallback\) .*\)/  evaluate: \1/p' "$LOGS/evaluate.log" | cut -c1-160
# The metadata database begun at the start: its status, and its log's end if it failed.
if wait "$db_migrate"; then
  printf '%-58s %5s  %s\n' "airflow db migrate (SQLite, begun at the start)" "done" "$LOGS/db-migrate.log"
else
  echo "airflow db migrate failed; the end of $LOGS/db-migrate.log:"; tail -20 "$LOGS/db-migrate.log"; exit 1
fi

for ((i = DAYS - NIGHTS; i < DAYS; i++)); do
  day=$(day_after "$START" "$i")
  mv "$IM_LAKE/raw/incoming/ingest_date=$day" "$IM_LAKE/raw/events/"
  phase "the nightly DAG for $day (airflow dags test)" "$LOGS/$day.log" \
    airflow dags test interest_migration_nightly "$(day_after "$day" 1)T02:00:00+00:00"
  published=$(grep -o "publish $day: [0-9,]* predictions[^;]*" "$LOGS/$day.log" | head -1 || true)
  # evaluate's decision, when the night retrained: "promoted <version>: ..." or "kept ...: ..."
  trained=$(sed -n 's/^[^]]*\] *\(\(promoted\|kept\) .*\) \[airflow\.task.*/\1/p' "$LOGS/$day.log" | head -1 || true)
  [ -z "$trained" ] || echo "  retrained, evaluate: $trained" | cut -c1-160
  echo "  ${published:-nothing published for $day (no champion)}"
done
rmdir "$IM_LAKE/raw/incoming" 2>/dev/null || true
echo "== done in $((SECONDS - started)) s"

source scripts/local_report.sh
