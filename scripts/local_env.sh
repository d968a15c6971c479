# Sourced by scripts/run_local.sh and scripts/run_nights.sh: the local runs' sizes, settings and helpers.
# Override with LAKE=dir DAYS=n USERS=n START=YYYY-MM-DD HORIZON=days (and any IM_* setting).
LAKE=${LAKE:-lake}
DAYS=${DAYS:-21}
USERS=${USERS:-2000}
START=${START:-2024-11-01}
# A 3-day horizon lets three weeks hold history, train, validation and three
# test origins (4H + 2 = 14 days); production uses 7.
HORIZON=${HORIZON:-3}
# The run's Spark Connect server (scripts/run_local.sh).
CONNECT_PORT=${CONNECT_PORT:-15002}

mkdir -p "$LAKE"
export IM_LAKE=$(cd "$LAKE" && pwd)
export AIRFLOW_HOME=${AIRFLOW_HOME:-$PWD/airflow_home}
export AIRFLOW__CORE__DAGS_FOLDER=$PWD/dags AIRFLOW__CORE__LOAD_EXAMPLES=False PYTHONPATH=$PWD
# The dashboard's nav entry and pages in the Airflow UI (plugins/interest_migration.py).
export AIRFLOW__CORE__PLUGINS_FOLDER=$PWD/plugins
# The generator's simulated interest migration moves the daily category mix by 0.1-0.2 (KL), over the
# production trigger of 0.1: locally, retrain when there is no champion, then weekly.
export IM_RETRAIN_DRIFT=${IM_RETRAIN_DRIFT:-0.5}
# A young lake has a few thousand training sequences: smaller batches and more epochs give the model
# the optimizer steps the 20k-user default (4 epochs of 512) gets from its data.
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
LAST=$(day_after "$START" $((DAYS - 1)))
