-- Customer-service projection: the full current state per subject and the whole timeline, the
-- shape an agent's screen needs ("what did I agree to, when, through which channel, which notice").
-- Idempotent; applied by the customer-service role at every start. `{schema}` is
-- `customer_service` or a rebuild schema. Purposes without channels use channel ''.

CREATE TABLE IF NOT EXISTS {schema}.subjects (
    subject_id  text PRIMARY KEY,
    kind        text NOT NULL,
    country     text NOT NULL,
    account_id  text,
    erased      boolean NOT NULL,
    version     bigint NOT NULL,
    updated_at  timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS subjects_account ON {schema}.subjects (account_id);

CREATE TABLE IF NOT EXISTS {schema}.consents (
    subject_id      text NOT NULL,
    purpose         text NOT NULL,
    channel         text NOT NULL DEFAULT '',
    status          text NOT NULL,
    previous_status text,
    version         bigint NOT NULL,
    occurred_at     timestamptz NOT NULL,
    recorded_at     timestamptz NOT NULL,
    valid_until     timestamptz,
    last_used_at    timestamptz,
    source          text NOT NULL,
    actor_kind      text NOT NULL,
    notice_version  text,
    PRIMARY KEY (subject_id, purpose, channel)
);
-- when this row last changed here (the batch commits moments later): freshness for operators,
-- and what the end-to-end benchmark measures propagation against. Added to tables created earlier.
ALTER TABLE {schema}.consents ADD COLUMN IF NOT EXISTS applied_at timestamptz NOT NULL DEFAULT clock_timestamp();

-- every change, once (duplicates are the same version of the same consent)
CREATE TABLE IF NOT EXISTS {schema}.timeline (
    subject_id      text NOT NULL,
    purpose         text NOT NULL,
    channel         text NOT NULL DEFAULT '',
    version         bigint NOT NULL,
    event_id        text NOT NULL UNIQUE,
    status          text NOT NULL,
    previous_status text,
    occurred_at     timestamptz NOT NULL,
    recorded_at     timestamptz NOT NULL,
    valid_until     timestamptz,
    source          text NOT NULL,
    actor_kind      text NOT NULL,
    notice_version  text,
    evidence_on_file boolean NOT NULL DEFAULT false,
    PRIMARY KEY (subject_id, purpose, channel, version)
);
-- Tables made before the topics stopped carrying evidence held the reference itself: keep only
-- whether there was one (an agent opens the evidence through the consent API, scope evidence:read).
ALTER TABLE {schema}.timeline ADD COLUMN IF NOT EXISTS evidence_on_file boolean NOT NULL DEFAULT false;
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM information_schema.columns
                WHERE table_schema = '{schema}' AND table_name = 'timeline' AND column_name = 'evidence_ref') THEN
        UPDATE {schema}.timeline SET evidence_on_file = true WHERE evidence_ref IS NOT NULL;
        ALTER TABLE {schema}.timeline DROP COLUMN evidence_ref;
    END IF;
END $$;
CREATE INDEX IF NOT EXISTS timeline_by_subject ON {schema}.timeline (subject_id, occurred_at);

-- The current state an agent's screen shows. `consents.status` is the last change applied; a grant
-- past its valid_until has lapsed whether or not the sweeper's `expired` change has arrived yet, so
-- this view evaluates lapse at read time against now() (the gate's rule, `domain.consent.in_force`).
CREATE OR REPLACE VIEW {schema}.current_consents AS
SELECT c.subject_id, c.purpose, NULLIF(c.channel, '') AS channel,
       CASE WHEN c.status = 'granted' AND c.valid_until <= now() THEN 'expired' ELSE c.status END AS status,
       (c.status = 'granted' AND (c.valid_until IS NULL OR c.valid_until > now())) AS in_force,
       c.previous_status, c.version, c.occurred_at, c.recorded_at, c.valid_until, c.last_used_at, c.source,
       c.actor_kind, c.notice_version, c.applied_at
  FROM {schema}.consents c;
COMMENT ON COLUMN {schema}.consents.status IS
    'The last change applied: a lapsed grant reads granted until its expired change arrives. Read current_consents.';
