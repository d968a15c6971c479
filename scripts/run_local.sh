#!/usr/bin/env bash
# `make run`: the embedded default, end to end, in about ten minutes on two cores.
#   1. generate three weeks of events for 2,000 users into ./lake;
#   2. load all but the last two days as a history, with the backfill path (one ingest of the folder, one pass
#      of dedupe and of sessionize over the range);
#   3. build training sequences, train a Transformer on two TensorFlow workers, evaluate it against the
#      baselines (it becomes the champion only if it beats the strongest of them by more than noise);
#   4. run the nightly DAG in Airflow (`airflow dags test`: SQLite metadata in ./airflow_home, local Spark through
#      spark-submit) for each of the last two days as its delivery lands, publishing the champion's predictions;
#   5. print what people want to see: rows and quarantine per stage, the champion against the baselines with
#      intervals, top migrations, the inventory and marketing queries, where the reports and Data Docs are, and
#      how to open the Airflow UI on this lake.
# One line per phase with its time and log. Override with LAKE=dir USERS=n DAYS=n NIGHTS=n START=YYYY-MM-DD
# HORIZON=days. `make run-nights` (scripts/run_nights.sh) is the longer night-by-night demonstration.
set -euo pipefail
cd "$(dirname "$0")/.."
LAKE=${LAKE:-lake}
USERS=${USERS:-2000}
DAYS=${DAYS:-21}
NIGHTS=${NIGHTS:-2}
START=${START:-2024-11-01}
# A 3-day horizon lets three weeks hold history, train, validation and three test origins; production uses 7.
HORIZON=${HORIZON:-3}

mkdir -p "$LAKE"
export IM_LAKE=$(cd "$LAKE" && pwd)
export AIRFLOW_HOME=${AIRFLOW_HOME:-$PWD/airflow_home}
export AIRFLOW__CORE__DAGS_FOLDER=$PWD/dags AIRFLOW__CORE__LOAD_EXAMPLES=False PYTHONPATH=$PWD
# The generator's simulated migration moves the daily category mix by 0.1-0.2 (KL), over the production
# retraining trigger of 0.1: here the champion trained in step 3 serves the nights (weekly retraining).
export IM_RETRAIN_DRIFT=${IM_RETRAIN_DRIFT:-0.5}
# A young lake has a few thousand training sequences: smaller batches and more epochs give the model the
# optimizer steps the 20k-user default (4 epochs of 512) gets from its data.
export IM_HORIZON_DAYS=$HORIZON IM_TRAINING_EPOCHS=${IM_TRAINING_EPOCHS:-20} IM_TRAINING_BATCH_SIZE=${IM_TRAINING_BATCH_SIZE:-128}
export IM_SHUFFLE_PARTITIONS=${IM_SHUFFLE_PARTITIONS:-2}
export IM_TASK_RETRIES=${IM_TASK_RETRIES:-1} IM_RETRY_DELAY_SECONDS=${IM_RETRY_DELAY_SECONDS:-10}
export IM_LANDING_POKE_SECONDS=5 IM_LANDING_TIMEOUT_MINUTES=1
# Each Spark task is a short local JVM: the C1-only JIT and the serial GC start it faster.
export IM_SPARK_DRIVER_JAVA_OPTIONS=${IM_SPARK_DRIVER_JAVA_OPTIONS:--XX:TieredStopAtLevel=1 -XX:+UseSerialGC}
# `airflow dags test` in Airflow 3.3.2 cannot run a DAG with a DeadlineAlert; the deployed DAG keeps its own.
export IM_DEADLINE_HOURS=0
export TF_CPP_MIN_LOG_LEVEL=2
LOGS=$AIRFLOW_HOME/runs
mkdir -p "$LOGS"
jobs() { python -m jobs "$@" --lake "$IM_LAKE"; }
day_after() { python -c "import datetime as d, sys; print(d.date.fromisoformat(sys.argv[1]) + d.timedelta(days=int(sys.argv[2])))" "$@"; }
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

LAST=$(day_after "$START" $((DAYS - 1)))
HISTORY_END=$(day_after "$START" $((DAYS - NIGHTS - 1)))
FIRST_NIGHT=$(day_after "$START" $((DAYS - NIGHTS)))
echo "== $USERS users, $DAYS days from $START into $IM_LAKE: history through $HISTORY_END, then the nights" \
     "$FIRST_NIGHT..$LAST through Airflow"
rm -rf "$IM_LAKE/raw/incoming"
phase "generate $DAYS days of events" "$LOGS/generate.log" \
  python -m jobs generate --lake "$IM_LAKE" --users "$USERS" --days "$DAYS" --start-date "$START"
# The nights' deliveries wait aside, and land one at a time before their night.
mkdir -p "$IM_LAKE/raw/incoming"
for ((i = DAYS - NIGHTS; i < DAYS; i++)); do
  mv "$IM_LAKE/raw/events/ingest_date=$(day_after "$START" "$i")" "$IM_LAKE/raw/incoming/"
done
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
sed -n 's/^\(promoted\|kept\) /  evaluate: &/p' "$LOGS/evaluate.log" | cut -c1-160
phase "airflow db migrate (SQLite in $AIRFLOW_HOME)" "$LOGS/db-migrate.log" airflow db migrate

for ((i = DAYS - NIGHTS; i < DAYS; i++)); do
  day=$(day_after "$START" "$i")
  mv "$IM_LAKE/raw/incoming/ingest_date=$day" "$IM_LAKE/raw/events/"
  phase "the nightly DAG for $day (airflow dags test)" "$LOGS/$day.log" \
    airflow dags test interest_migration_nightly "$(day_after "$day" 1)T02:00:00+00:00"
  published=$(grep -o "publish $day: [0-9,]* predictions[^;]*" "$LOGS/$day.log" | head -1 || true)
  echo "  ${published:-nothing published for $day (no champion: see the evaluate line above)}"
done
rmdir "$IM_LAKE/raw/incoming" 2>/dev/null || true
echo "== done in $((SECONDS - started)) s"

echo
echo "== rows and quality gates per stage (pipeline_runs)"
jobs sql "SELECT stage, count(*) AS runs, sum(rows_in) AS rows_in, sum(rows_out) AS rows_out,
                 sum(rows_quarantined) AS quarantined, sum(rows_duplicate) AS duplicates,
                 round(sum(seconds), 1) AS seconds, sum(expectations_failed) AS failed_checks,
                 max(category_divergence) AS max_drift
          FROM pipeline_runs WHERE status = 'succeeded' GROUP BY stage ORDER BY min(started_at)"
echo
echo "== quarantined rows by reason"
jobs sql --file sql/quarantine_reasons.sql --format csv | python -c "
import csv, sys, collections
totals = collections.Counter()
for row in csv.DictReader(sys.stdin): totals[row['reason']] += int(row['rows'])
for reason, rows in totals.most_common(): print(f'{reason:24} {rows:8,}')"
echo
echo "== every promotion decision (model_decisions)"
jobs sql "SELECT candidate, promoted, round(candidate_value, 4) AS ndcg_at_10, best_baseline,
                 round(best_baseline_value, 4) AS baseline_ndcg_at_10, round(baseline_low, 4) AS lead_low,
                 round(baseline_high, 4) AS lead_high, test_cutoff
          FROM model_decisions ORDER BY decided_at"
echo
echo "== the champion against the baselines (test origins, paired bootstrap intervals)"
python scripts/local_summary.py "$IM_LAKE"
if [ ! -d "$IM_LAKE/user_interest_predictions/_delta_log" ]; then
  echo
  echo "No predictions were published: no candidate beat the strongest baseline by more than noise (model_decisions"
  echo "above; $LOGS/evaluate.log and the nights' logs, which retrained on one more day each)."
  exit 0
fi
echo
echo "== the top migrations the latest predictions expect (sql/migration_flows.sql)"
jobs sql "SELECT * FROM ($(grep -v '^--' sql/migration_flows.sql | sed 's/;\s*$//')) f
          WHERE score_date = (SELECT max(score_date) FROM user_interest_predictions)
            AND current_top_category <> predicted_top_category
          ORDER BY users DESC LIMIT 8"
echo
echo "== inventory: the demand shift for the days after $LAST (sql/inventory_demand_shift.sql)"
jobs sql "SELECT * FROM ($(grep -v '^--' sql/inventory_demand_shift.sql | sed 's/;\s*$//')) d LIMIT 10"
echo
echo "== marketing: who to target for which category (sql/marketing_audience.sql)"
jobs sql "SELECT * FROM ($(grep -v '^--' sql/marketing_audience.sql | sed 's/;\s*$//')) a LIMIT 10"
cat <<EOT

Lake: $IM_LAKE   (try: .venv/bin/python -m jobs sql --lake $IM_LAKE --file sql/marketing_audience.sql)
Model report: $(ls -d "$IM_LAKE"/models/versions/*/report/report.html 2>/dev/null | tail -1)
Data Docs: $IM_LAKE/_gx/gx/uncommitted/data_docs/local_site/index.html
Logs: $LOGS/
The Airflow UI on this lake:
  export AIRFLOW_HOME=$AIRFLOW_HOME AIRFLOW__CORE__DAGS_FOLDER=$PWD/dags PYTHONPATH=$PWD IM_LAKE=$IM_LAKE PATH=$PWD/.venv/bin:\$PATH
  export IM_HORIZON_DAYS=$HORIZON IM_RETRAIN_DRIFT=$IM_RETRAIN_DRIFT IM_TRAINING_EPOCHS=$IM_TRAINING_EPOCHS IM_TRAINING_BATCH_SIZE=$IM_TRAINING_BATCH_SIZE
  airflow standalone        # about 5 GB; prints the admin password; http://localhost:8080
  then DAGs > interest_migration_nightly > Trigger, with params such as {"run_date": "$LAST", "retrain": "always"}
EOT
