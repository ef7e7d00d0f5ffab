-- Consent service schema. Idempotent: applied at every start under an advisory lock.
CREATE SCHEMA IF NOT EXISTS consent;

CREATE TABLE IF NOT EXISTS consent.subjects (
    subject_id        uuid PRIMARY KEY,
    kind              text NOT NULL,
    country           text NOT NULL,
    account_id        text,
    -- keyed hashes: enough to match and to keep an erased person suppressed
    phone_hash        text,
    email_hash        text,
    national_id_hash  text,
    -- encrypted, for the subject's own access; NULL after erasure
    phone_enc         bytea,
    email_enc         bytea,
    national_id_enc   bytea,
    version           bigint NOT NULL DEFAULT 1,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    erased_at         timestamptz
);
CREATE INDEX IF NOT EXISTS subjects_phone_hash ON consent.subjects (phone_hash);
CREATE INDEX IF NOT EXISTS subjects_email_hash ON consent.subjects (email_hash);
CREATE UNIQUE INDEX IF NOT EXISTS subjects_national_id_hash ON consent.subjects (national_id_hash);

-- current state per (subject, purpose, channel); channel '' for purposes without channels
CREATE TABLE IF NOT EXISTS consent.consents (
    subject_id     uuid NOT NULL REFERENCES consent.subjects,
    purpose        text NOT NULL,
    channel        text NOT NULL DEFAULT '',
    status         text NOT NULL,
    version        bigint NOT NULL,
    occurred_at    timestamptz NOT NULL,
    recorded_at    timestamptz NOT NULL,
    valid_until    timestamptz,
    last_used_at   timestamptz,
    notice_version text,
    source         text NOT NULL,
    PRIMARY KEY (subject_id, purpose, channel)
);
CREATE INDEX IF NOT EXISTS consents_lapsing ON consent.consents (valid_until) WHERE status = 'granted';

-- append-only documentation of every change
CREATE TABLE IF NOT EXISTS consent.ledger (
    seq             bigserial PRIMARY KEY,
    event_id        uuid NOT NULL UNIQUE,
    subject_id      uuid NOT NULL,
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
    actor_ref       text,
    notice_version  text,
    evidence_ref    text,
    correlation_id  text,
    -- the credential that made the change (OAuth2 client id or `apikey:<digest prefix>`), beside
    -- `actor_*`, which is what the request claimed
    client_id       text
);
ALTER TABLE consent.ledger ADD COLUMN IF NOT EXISTS client_id text;
CREATE INDEX IF NOT EXISTS ledger_subject ON consent.ledger (subject_id, purpose, channel, version);

CREATE TABLE IF NOT EXISTS consent.outbox (
    id            bigserial PRIMARY KEY,
    topic         text NOT NULL,
    message_key   text NOT NULL,
    schema_name   text NOT NULL,
    payload       jsonb NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    published_at  timestamptz
);
CREATE INDEX IF NOT EXISTS outbox_pending ON consent.outbox (id) WHERE published_at IS NULL;
-- a row without payload is a tombstone: its key's records leave the compacted topic
ALTER TABLE consent.outbox ALTER COLUMN payload DROP NOT NULL;

CREATE OR REPLACE FUNCTION consent.notify_outbox() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('consent_outbox', '');
    RETURN NULL;
END $$;
DROP TRIGGER IF EXISTS outbox_notify ON consent.outbox;
CREATE TRIGGER outbox_notify AFTER INSERT ON consent.outbox
    FOR EACH STATEMENT EXECUTE FUNCTION consent.notify_outbox();

CREATE TABLE IF NOT EXISTS consent.idempotency (
    idempotency_key text PRIMARY KEY,
    subject_id      uuid NOT NULL,
    request_hash    text NOT NULL,
    response        jsonb NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now()
);

-- outbox rows the relay could not encode (an unknown schema name, a record the schema rejects),
-- moved here in the transaction that settles their batch so they never block the rows behind them;
-- their subjects are listed as held in every watermark until an operator re-queues or discards them
CREATE TABLE IF NOT EXISTS consent.outbox_dead_letters (
    id               bigint PRIMARY KEY,
    topic            text NOT NULL,
    message_key      text NOT NULL,
    schema_name      text NOT NULL,
    payload          jsonb NOT NULL,
    created_at       timestamptz NOT NULL,
    reason           text NOT NULL,
    dead_lettered_at timestamptz NOT NULL DEFAULT now()
);
ALTER TABLE consent.outbox_dead_letters ALTER COLUMN payload DROP NOT NULL;

-- one row: the relay leader's epoch and when it last renewed its lease (the database's clock), so a
-- new leader knows how long the previous one may still be publishing
CREATE TABLE IF NOT EXISTS consent.relay_leadership (
    singleton  boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    epoch      bigint NOT NULL,
    renewed_at timestamptz NOT NULL
);

-- one-off data changes that have been applied, so a start-up does not scan for them again
CREATE TABLE IF NOT EXISTS consent.applied_migrations (
    name       text PRIMARY KEY,
    applied_at timestamptz NOT NULL DEFAULT now()
);

-- Outbox rows written before the topics stopped carrying evidence held the reference itself (kept 7
-- days after publishing, for ever when never published): keep only whether there was one. Rows
-- written since never hold it, so this runs once, not at every start (it scans the outbox).
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM consent.applied_migrations WHERE name = 'outbox-without-evidence') THEN
        UPDATE consent.outbox SET payload = payload || '{"evidence_ref": null, "evidence_on_file": true}'::jsonb
         WHERE schema_name = 'ConsentChanged' AND payload->>'evidence_ref' IS NOT NULL;
        UPDATE consent.outbox_dead_letters
           SET payload = payload || '{"evidence_ref": null, "evidence_on_file": true}'::jsonb
         WHERE schema_name = 'ConsentChanged' AND payload->>'evidence_ref' IS NOT NULL;
        INSERT INTO consent.applied_migrations (name) VALUES ('outbox-without-evidence');
    END IF;
END $$;

-- Phones and e-mails a subject held and no longer holds (erased, released when a subscription ended
-- or the number was ported out, replaced), by keyed hash only: numbers are recycled, so a check by
-- one answers with this subject's block from `since` to `until` (and the gate's quarantine), and
-- with the later holder's own decisions after that. The identifier a subject holds now is on
-- consent.subjects, held since the subject registered.
CREATE TABLE IF NOT EXISTS consent.identifier_holdings (
    subject_id  uuid NOT NULL REFERENCES consent.subjects,
    kind        text NOT NULL CHECK (kind IN ('phone', 'email')),
    hash        text NOT NULL,
    since       timestamptz NOT NULL,
    until       timestamptz NOT NULL,
    reason      text,
    PRIMARY KEY (subject_id, kind, since)
);
CREATE INDEX IF NOT EXISTS identifier_holdings_hash ON consent.identifier_holdings (hash);

-- Subjects erased before holdings were recorded held their phone and e-mail until their erasure.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM consent.applied_migrations WHERE name = 'identifier-holdings-of-erased') THEN
        INSERT INTO consent.identifier_holdings (subject_id, kind, hash, since, until, reason)
        SELECT s.subject_id, v.kind, v.hash, s.created_at, s.erased_at, 'erased'
          FROM consent.subjects s, LATERAL (VALUES ('phone', s.phone_hash), ('email', s.email_hash)) AS v(kind, hash)
         WHERE s.erased_at IS NOT NULL AND v.hash IS NOT NULL
        ON CONFLICT DO NOTHING;
        INSERT INTO consent.applied_migrations (name) VALUES ('identifier-holdings-of-erased');
    END IF;
END $$;

-- Bulk imports (`samtykke consent import`, `POST /v1/imports`). The operator's own reference of an
-- imported subject (its CRM id), as a keyed hash like every identifier: what finds the subject again
-- when a file is re-run, never shown in clear.
CREATE TABLE IF NOT EXISTS consent.subject_refs (
    ref_digest text PRIMARY KEY,
    subject_id uuid NOT NULL UNIQUE REFERENCES consent.subjects
);
-- one row per file (by its digest): how far its batches have committed, so a crashed run resumes
CREATE TABLE IF NOT EXISTS consent.import_jobs (
    job_id      uuid PRIMARY KEY,
    digest      text NOT NULL UNIQUE,
    file_name   text NOT NULL,
    format      text NOT NULL,
    state       text NOT NULL,
    last_row   bigint NOT NULL DEFAULT 0,
    imported    bigint NOT NULL DEFAULT 0,
    skipped     bigint NOT NULL DEFAULT 0,
    rejected    bigint NOT NULL DEFAULT 0,
    client_id   text,
    error       text,
    started_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz
);
-- the rejected rows: row number, column and rule, never the value
CREATE TABLE IF NOT EXISTS consent.import_rejects (
    job_id     uuid NOT NULL REFERENCES consent.import_jobs ON DELETE CASCADE,
    row_number bigint NOT NULL,
    field      text NOT NULL,
    rule       text NOT NULL,
    PRIMARY KEY (job_id, row_number, field)
);
