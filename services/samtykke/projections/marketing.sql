-- Marketing projection: who may be marketed to, per purpose and channel, until when.
-- Idempotent; applied by the marketing role at every start. `{schema}` is `marketing`, or
-- `marketing_rebuild_<n>` while a rebuild fills fresh tables. Purposes without channels use
-- channel '' in tables (a primary key cannot hold NULL); the view shows NULL.

CREATE TABLE IF NOT EXISTS {schema}.subjects (
    subject_id  text PRIMARY KEY,
    kind        text NOT NULL,
    country     text NOT NULL,
    account_id  text,
    erased      boolean NOT NULL,
    version     bigint NOT NULL
);

CREATE TABLE IF NOT EXISTS {schema}.consents (
    subject_id  text NOT NULL,
    purpose     text NOT NULL,
    channel     text NOT NULL DEFAULT '',
    mechanism   text NOT NULL,
    status      text NOT NULL,
    in_force    boolean NOT NULL,
    valid_until timestamptz,
    lapse_date  date,
    country     text NOT NULL,
    kind        text NOT NULL,
    account_id  text,
    version     bigint NOT NULL,
    occurred_at timestamptz NOT NULL,
    PRIMARY KEY (subject_id, purpose, channel)
);
-- when this row last changed here (the batch commits moments later): freshness for operators,
-- and what the end-to-end benchmark measures propagation against. Added to tables created earlier.
ALTER TABLE {schema}.consents ADD COLUMN IF NOT EXISTS applied_at timestamptz NOT NULL DEFAULT clock_timestamp();
CREATE INDEX IF NOT EXISTS consents_in_force ON {schema}.consents (purpose, channel) WHERE in_force;

-- the catalog's opt-out purposes and their channels per kind (refreshed at every start)
CREATE TABLE IF NOT EXISTS {schema}.purpose_channels (
    purpose   text NOT NULL,
    kind      text NOT NULL,
    channel   text NOT NULL,
    mechanism text NOT NULL,
    PRIMARY KEY (purpose, kind, channel)
);

-- Who may be marketed to now, per purpose and channel. valid_until is checked against now(), so a
-- lapsed grant leaves the list before the sweeper's `expired` event arrives. Opt-out purposes list
-- every known customer of a kind they apply to unless objected. Erased subjects never appear.
CREATE OR REPLACE VIEW {schema}.marketable AS
SELECT c.subject_id, c.purpose, NULLIF(c.channel, '') AS channel, c.country, c.kind, c.account_id,
       c.valid_until, c.lapse_date
  FROM {schema}.consents c
 WHERE c.mechanism = 'opt_in' AND c.status = 'granted'
   AND (c.valid_until IS NULL OR c.valid_until > now())
   AND NOT EXISTS (SELECT 1 FROM {schema}.subjects s WHERE s.subject_id = c.subject_id AND s.erased)
UNION ALL
SELECT s.subject_id, pc.purpose, pc.channel, s.country, s.kind, s.account_id,
       NULL::timestamptz, NULL::date
  FROM {schema}.subjects s
  JOIN {schema}.purpose_channels pc ON pc.kind = s.kind AND pc.mechanism = 'opt_out'
  LEFT JOIN {schema}.consents c
         ON c.subject_id = s.subject_id AND c.purpose = pc.purpose AND c.channel = pc.channel
 WHERE NOT s.erased AND (c.status IS NULL OR c.status = 'granted');

-- What readers query for a consent's state now. `consents.in_force` is as of the change (the row is
-- written when the change is applied, and a grant's lapse is an event the sweeper emits up to a
-- minute later); this view evaluates lapse at read time against now(), as the gate and
-- `marketable` do, so no reader is told "in force" past valid_until.
CREATE OR REPLACE VIEW {schema}.consents_now AS
SELECT c.subject_id, c.purpose, NULLIF(c.channel, '') AS channel, c.mechanism,
       CASE WHEN c.status = 'granted' AND c.valid_until <= now() THEN 'expired' ELSE c.status END AS status,
       (c.status = 'granted' AND (c.valid_until IS NULL OR c.valid_until > now())) AS in_force,
       c.valid_until, c.lapse_date, c.country, c.kind, c.account_id, c.version, c.occurred_at, c.applied_at
  FROM {schema}.consents c;
COMMENT ON COLUMN {schema}.consents.in_force IS
    'As of the change, not now: a lapsed grant stays true until its expired change arrives. Read consents_now.';
