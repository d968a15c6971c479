#!/usr/bin/env bash
# PostgreSQL's first start (docker-entrypoint-initdb.d): the MLflow tracking server's database, owned by the same
# user as Airflow's. A volume initialised before this file existed needs it once by hand:
#   docker compose exec postgres createdb -U "$POSTGRES_USER" mlflow
set -euo pipefail
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "${POSTGRES_DB:-airflow}" \
  -c "CREATE DATABASE ${MLFLOW_DB:-mlflow} OWNER \"$POSTGRES_USER\""
