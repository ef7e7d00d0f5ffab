-- Analytics projection: pseudonymous. No subject id, account id or identifier is stored here:
-- subjects and accounts appear only as HMAC-SHA256 pseudonyms under the analytics key.
-- Idempotent; applied by the analytics role at every start. `{schema}` is `analytics` or a
-- rebuild schema. Purposes without channels use channel '' (a primary key cannot hold NULL).

CREATE TABLE IF NOT EXISTS {schema}.subjects (
    pseudonym         text PRIMARY KEY,
    kind              text NOT NULL,
    country           text NOT NULL,
    account_pseudonym text,
    erased            boolean NOT NULL,
    version           bigint NOT NULL
);
CREATE INDEX IF NOT EXISTS subjects_account ON {schema}.subjects (account_pseudonym);

CREATE TABLE IF NOT EXISTS {schema}.consents (
    pseudonym   text NOT NULL,
    purpose     text NOT NULL,
    channel     text NOT NULL DEFAULT '',
    status      text NOT NULL,
    valid_until timestamptz,
    version     bigint NOT NULL,
    occurred_at timestamptz NOT NULL,
    PRIMARY KEY (pseudonym, purpose, channel)
);
-- when this row last changed here (the batch commits moments later): freshness for operators,
-- and what the end-to-end benchmark measures propagation against. Added to tables created earlier.
ALTER TABLE {schema}.consents ADD COLUMN IF NOT EXISTS applied_at timestamptz NOT NULL DEFAULT clock_timestamp();

-- every change once, keyed by its version: the insert that succeeds is the one that counts
CREATE TABLE IF NOT EXISTS {schema}.status_changes (
    pseudonym       text NOT NULL,
    purpose         text NOT NULL,
    channel         text NOT NULL DEFAULT '',
    version         bigint NOT NULL,
    status          text NOT NULL,
    previous_status text,
    country         text NOT NULL,
    occurred_at     timestamptz NOT NULL,
    PRIMARY KEY (pseudonym, purpose, channel, version)
);

-- status changes per day (UTC, of occurred_at): each change enters its status and leaves its
-- previous one; a change is counted only when its status_changes row is first inserted
CREATE TABLE IF NOT EXISTS {schema}.daily_status_changes (
    day      date NOT NULL,
    purpose  text NOT NULL,
    status   text NOT NULL,
    country  text NOT NULL,
    entered  bigint NOT NULL,
    exited   bigint NOT NULL,
    PRIMARY KEY (day, purpose, status, country)
);

-- the catalog's traffic-data purposes (refreshed at every start)
CREATE TABLE IF NOT EXISTS {schema}.traffic_data_purposes (purpose text PRIMARY KEY);

-- The traffic-data purposes each subject's data may be used for now: its own grant, or for an
-- employee the grant of its company (a business with the same account). Erased subjects never.
CREATE OR REPLACE VIEW {schema}.traffic_data_use AS
SELECT s.pseudonym, c.purpose, 'self'::text AS decided_by, s.kind, s.country
  FROM {schema}.subjects s
  JOIN {schema}.consents c ON c.pseudonym = s.pseudonym
  JOIN {schema}.traffic_data_purposes p ON p.purpose = c.purpose
 WHERE NOT s.erased AND s.kind <> 'employee' AND c.status = 'granted'
   AND (c.valid_until IS NULL OR c.valid_until > now())
UNION
SELECT e.pseudonym, c.purpose, 'company'::text, e.kind, e.country
  FROM {schema}.subjects e
  JOIN {schema}.subjects b
    ON b.account_pseudonym = e.account_pseudonym AND b.kind = 'business' AND NOT b.erased
  JOIN {schema}.consents c ON c.pseudonym = b.pseudonym
  JOIN {schema}.traffic_data_purposes p ON p.purpose = c.purpose
 WHERE e.kind = 'employee' AND NOT e.erased AND c.status = 'granted'
   AND (c.valid_until IS NULL OR c.valid_until > now());

-- consent rates per day: the changes of the day and how many consents were in each status at its end
CREATE OR REPLACE VIEW {schema}.consent_rates_daily AS
SELECT day, purpose, status, country, entered, exited,
       sum(entered - exited) OVER (PARTITION BY purpose, status, country ORDER BY day) AS in_status
  FROM {schema}.daily_status_changes;
