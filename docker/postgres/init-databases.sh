#!/bin/sh
# First start of the PostgreSQL volume: one database per service (MLflow, Prefect, Optuna),
# all owned by POSTGRES_USER. Runs once, from /docker-entrypoint-initdb.d.
set -eu
for db in mlflow prefect optuna; do
  psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres -c "CREATE DATABASE $db OWNER \"$POSTGRES_USER\";"
done
