#!/usr/bin/env bash
# `make run-nights`: the longer demonstration, night by night from an empty lake, through Airflow: generate about three weeks
# of events into ./lake, then run the nightly DAG with `airflow dags test` for
# each day in order (SQLite metadata in ./airflow_home, local Spark through
# spark-submit, the local lake). The first day with enough history trains and
# evaluates a candidate; while no candidate has beaten the baselines there is
# no champion, so each night retrains (on one more day of data) and publishes
# nothing; once one is promoted, every night scores and publishes. Then a
# summary and one downstream query.
# Override with LAKE=dir DAYS=n USERS=n START=YYYY-MM-DD HORIZON=days.
set -euo pipefail
cd "$(dirname "$0")/.."
LAKE=${LAKE:-lake}
DAYS=${DAYS:-21}
USERS=${USERS:-2000}
START=${START:-2024-11-01}
# A 3-day horizon lets three weeks hold history, train, validation and three
# test origins (4H + 2 = 14 days), so training is due on day 14; production uses 7.
HORIZON=${HORIZON:-3}

mkdir -p "$LAKE"
export IM_LAKE=$(cd "$LAKE" && pwd)
export AIRFLOW_HOME=${AIRFLOW_HOME:-$PWD/airflow_home}
export AIRFLOW__CORE__DAGS_FOLDER=$PWD/dags AIRFLOW__CORE__LOAD_EXAMPLES=False PYTHONPATH=$PWD
# The generator's simulated interest migration moves the daily category mix by 0.1-0.2 (KL), over the
# production trigger of 0.1: locally, retrain on the first day it is due, then weekly.
export IM_RETRAIN_DRIFT=${IM_RETRAIN_DRIFT:-0.5}
# A young lake has a few thousand training sequences: smaller batches and more epochs give the model
# the optimizer steps the 20k-user default (4 epochs of 512) gets from its data.
export IM_HORIZON_DAYS=$HORIZON IM_TRAINING_EPOCHS=${IM_TRAINING_EPOCHS:-20} IM_TRAINING_BATCH_SIZE=${IM_TRAINING_BATCH_SIZE:-128}
export IM_SHUFFLE_PARTITIONS=${IM_SHUFFLE_PARTITIONS:-2}
export IM_TASK_RETRIES=${IM_TASK_RETRIES:-1} IM_RETRY_DELAY_SECONDS=${IM_RETRY_DELAY_SECONDS:-10}
export IM_LANDING_POKE_SECONDS=5 IM_LANDING_TIMEOUT_MINUTES=1
# Each Spark task is a short local JVM: the C1-only JIT and the serial GC start it about 15% faster.
export IM_SPARK_DRIVER_JAVA_OPTIONS=${IM_SPARK_DRIVER_JAVA_OPTIONS:--XX:TieredStopAtLevel=1 -XX:+UseSerialGC}
# `airflow dags test` in Airflow 3.3.2 cannot run a DAG with a DeadlineAlert; the deployed DAG keeps its own.
export IM_DEADLINE_HOURS=0
export TF_CPP_MIN_LOG_LEVEL=2
jobs() { python -m jobs "$@" --lake "$IM_LAKE"; }
day_after() { python -c "import datetime as d, sys; print(d.date.fromisoformat(sys.argv[1]) + d.timedelta(days=int(sys.argv[2])))" "$@"; }

python -m jobs generate --lake "$IM_LAKE" --users "$USERS" --days "$DAYS" --start-date "$START"
mkdir -p "$AIRFLOW_HOME/runs"
airflow db migrate > "$AIRFLOW_HOME/db-migrate.log" 2>&1 || { cat "$AIRFLOW_HOME/db-migrate.log"; exit 1; }

echo
echo "== the nightly DAG, one run per event date (logs: $AIRFLOW_HOME/runs/)"
for ((i = 0; i < DAYS; i++)); do
  day=$(day_after "$START" "$i")
  logical="$(day_after "$day" 1)T02:00:00+00:00"
  log="$AIRFLOW_HOME/runs/$day.log"
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
                 round(best_baseline_value, 4) AS baseline_ndcg_at_10, test_cutoff
          FROM model_decisions ORDER BY decided_at"
echo
echo "== the champion against the baselines (test cutoff)"
python scripts/local_summary.py "$IM_LAKE"
if [ ! -d "$IM_LAKE/user_interest_predictions/_delta_log" ]; then
  echo
  echo "No predictions were published: no candidate beat the baselines (see the evaluate lines in $AIRFLOW_HOME/runs/)."
  exit 0
fi
echo
echo "== the top migrations the latest predictions expect (sql/migration_flows.sql)"
jobs sql "SELECT * FROM ($(grep -v '^--' sql/migration_flows.sql | sed 's/;\s*$//')) f
          WHERE score_date = (SELECT max(score_date) FROM user_interest_predictions)
            AND current_top_category <> predicted_top_category
          ORDER BY users DESC LIMIT 8"
echo
echo "== a downstream query: inventory's demand shift for tomorrow (sql/inventory_demand_shift.sql)"
jobs sql "SELECT * FROM ($(grep -v '^--' sql/inventory_demand_shift.sql | sed 's/;\s*$//')) d LIMIT 12"
cat <<EOT

Lake: $IM_LAKE   (try: .venv/bin/python -m jobs sql --lake $IM_LAKE --file sql/marketing_audience.sql)
Data Docs: $IM_LAKE/_gx/gx/uncommitted/data_docs/local_site/index.html
The Airflow UI on this lake:
  export AIRFLOW_HOME=$AIRFLOW_HOME AIRFLOW__CORE__DAGS_FOLDER=$PWD/dags PYTHONPATH=$PWD IM_LAKE=$IM_LAKE PATH=$PWD/.venv/bin:\$PATH
  export IM_HORIZON_DAYS=$HORIZON IM_RETRAIN_DRIFT=$IM_RETRAIN_DRIFT IM_TRAINING_EPOCHS=$IM_TRAINING_EPOCHS IM_TRAINING_BATCH_SIZE=$IM_TRAINING_BATCH_SIZE
  airflow standalone        # about 5 GB; prints the admin password; http://localhost:8080
  then DAGs > interest_migration_nightly > Trigger, with params such as {"run_date": "$(day_after "$START" $((DAYS - 1)))", "retrain": "always"}
EOT
