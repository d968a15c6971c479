# Sourced by scripts/run_local.sh and scripts/run_nights.sh after their runs: what people want to see.
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
  echo "No predictions were published: no candidate beat the strongest baseline by more than noise"
  echo "(model_decisions above; the evaluate lines in $LOGS/)."
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
Dashboard: $IM_LAKE/dashboard/index.html   (the newest night; also under Browse > Interest migration in the UI)
SQL from your own tools: duckdb -readonly $IM_LAKE/interest_migration.duckdb   (the DuckDB CLI or DBeaver, read-only: a view per table)
Model report: $(ls -d "$IM_LAKE"/models/versions/*/report/report.html 2>/dev/null | tail -1)
MLflow (runs, registered model, champion alias): .venv/bin/mlflow ui --backend-store-uri sqlite:///$IM_LAKE/mlflow/mlflow.db
TensorBoard (training curves): .venv/bin/tensorboard --logdir $IM_LAKE/models/versions
Data Docs: $IM_LAKE/_gx/gx/uncommitted/data_docs/local_site/index.html
Logs: $LOGS/
The Airflow UI on this lake:
  export AIRFLOW_HOME=$AIRFLOW_HOME AIRFLOW__CORE__DAGS_FOLDER=$PWD/dags AIRFLOW__CORE__PLUGINS_FOLDER=$PWD/plugins PYTHONPATH=$PWD IM_LAKE=$IM_LAKE PATH=$PWD/.venv/bin:\$PATH
  export IM_HORIZON_DAYS=$HORIZON IM_RETRAIN_DRIFT=$IM_RETRAIN_DRIFT IM_TRAINING_EPOCHS=$IM_TRAINING_EPOCHS IM_TRAINING_BATCH_SIZE=$IM_TRAINING_BATCH_SIZE
  airflow standalone        # about 5 GB; prints the admin password; http://localhost:8080
  then DAGs > interest_migration_nightly > Trigger, with params such as {"run_date": "$LAST", "retrain": "always"}
EOT
