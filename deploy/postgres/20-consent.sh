#!/bin/sh
# The consent service's own login: no superuser, it owns schema `consent` (its start-up applies
# schema.sql there) and may create schemas in the database (CREATE SCHEMA IF NOT EXISTS checks that
# right even when the schema exists). Provisioning of the projector roles stays with the owner login
# (POSTGRES_USER), which the one-shot `provision` service uses. Run once by the postgres image when its
# data volume is new; the password comes from the postgres service's CONSENT_DATABASE_PASSWORD, the
# same variable the consent service's database URL carries.
set -eu
psql -v ON_ERROR_STOP=1 -v password="$CONSENT_DATABASE_PASSWORD" -v database="$POSTGRES_DB" \
  --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" <<'SQL'
CREATE ROLE samtykke_consent LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT PASSWORD :'password';
GRANT CREATE ON DATABASE :"database" TO samtykke_consent;
CREATE SCHEMA consent AUTHORIZATION samtykke_consent;
SQL
