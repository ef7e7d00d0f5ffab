#!/bin/sh
# The schema registry's own login and database (Apicurio's SQL storage creates its tables at first
# start). Run once by the postgres image when its data volume is new; the password comes from the
# postgres service's REGISTRY_DATABASE_PASSWORD, the same variable the registry's datasource reads.
set -eu
psql -v ON_ERROR_STOP=1 -v password="$REGISTRY_DATABASE_PASSWORD" \
  --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" <<'SQL'
CREATE ROLE samtykke_registry LOGIN PASSWORD :'password';
CREATE DATABASE samtykke_registry OWNER samtykke_registry;
SQL
