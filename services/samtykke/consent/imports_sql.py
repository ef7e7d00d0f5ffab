"""The SQL statements of the bulk import (`imports_store`), kept apart from the code that binds them."""

from __future__ import annotations

from .store_sql import CURRENT_COLUMNS, LEDGER_COLUMNS, LEDGER_TYPES, SUBJECT_COLUMNS

JOB_COLUMNS = (
    "job_id, file_name, format, digest, state, last_row, imported, skipped, rejected, client_id, error, "
    "started_at, updated_at, finished_at"
)
RESOLVE = (
    f"SELECT r.ref_digest, {SUBJECT_COLUMNS} FROM consent.subject_refs r JOIN consent.subjects USING (subject_id) "
    "WHERE r.ref_digest = ANY($1::text[]) ORDER BY subject_id FOR UPDATE OF subjects"
)
CURRENT = (
    "SELECT subject_id, purpose, channel, status, version, occurred_at, recorded_at, valid_until, last_used_at, "
    "notice_version, source FROM consent.consents WHERE subject_id = ANY($1::uuid[])"
)
# a new pass over a finished file counts afresh; an unfinished one resumes with its counts
OPEN_JOB = (
    "INSERT INTO consent.import_jobs (job_id, digest, file_name, format, state, client_id) "
    "VALUES ($1, $2, $3, $4, 'running', $5) ON CONFLICT (digest) DO UPDATE SET state = 'running', error = NULL, "
    "finished_at = NULL, updated_at = now(), file_name = EXCLUDED.file_name, client_id = EXCLUDED.client_id, "
    "last_row = CASE WHEN j.state = 'done' THEN 0 ELSE j.last_row END, "
    "imported = CASE WHEN j.state = 'done' THEN 0 ELSE j.imported END, "
    "skipped = CASE WHEN j.state = 'done' THEN 0 ELSE j.skipped END, "
    "rejected = CASE WHEN j.state = 'done' THEN 0 ELSE j.rejected END "
    f"RETURNING {JOB_COLUMNS}"
).replace("consent.import_jobs (", "consent.import_jobs AS j (", 1)
ADVANCE_JOB = (
    "UPDATE consent.import_jobs SET last_row = $2, imported = imported + $3, skipped = skipped + $4, "
    "rejected = rejected + $5, updated_at = now() WHERE job_id = $1"
)
SAVE_REJECTS = (
    "INSERT INTO consent.import_rejects (job_id, row_number, field, rule) "
    "SELECT $1, * FROM unnest($2::bigint[], $3::text[], $4::text[]) ON CONFLICT DO NOTHING"
)
TAKEN_NATIONAL_IDS = "SELECT national_id_hash FROM consent.subjects WHERE national_id_hash = ANY($1::text[])"
PRESENT_EVENTS = "SELECT event_id FROM consent.ledger WHERE event_id = ANY($1::uuid[])"
# Staging tables of this connection, emptied at each commit; COPY keeps their order in `ord`. A
# subject's record is JSON text from Python (asyncpg has no binary COPY encoder for jsonb); a change's
# is built here from its ledger row, so its millions of records cost the import no JSON.
_STAGED_TYPES = ", ".join(f"{n} {t}" for n, t in zip(LEDGER_COLUMNS.split(", "), LEDGER_TYPES, strict=True))
STAGING = (
    f"CREATE TEMP TABLE IF NOT EXISTS import_changes (ord bigserial, {_STAGED_TYPES}, subject_kind text, "
    "account_id text, country text) ON COMMIT DELETE ROWS; "
    "CREATE TEMP TABLE IF NOT EXISTS import_outbox (ord bigserial, topic text, message_key text, "
    "schema_name text, payload text) ON COMMIT DELETE ROWS"
)


def _millis(column: str) -> str:
    # `events.to_millis` exactly: the epoch seconds as the nearest double (what datetime.timestamp()
    # gives), times 1000 in double arithmetic, truncated
    return f"trunc(extract(epoch FROM {column})::float8 * 1000)::bigint"


# `ConsentChanged.as_record()` of a staged change: no evidence on the topic, only whether there is some
CHANGE_RECORD = (
    "jsonb_build_object("
    + ", ".join(
        f"'{name}', {value}"
        for name, value in {
            "event_id": "event_id::text",
            "subject_id": "subject_id::text",
            "subject_kind": "subject_kind",
            "account_id": "account_id",
            "country": "country",
            "purpose": "purpose",
            "channel": "NULLIF(channel, '')",
            "status": "status",
            "previous_status": "previous_status",
            "version": "version",
            "occurred_at": _millis("occurred_at"),
            "recorded_at": _millis("recorded_at"),
            "valid_until": _millis("valid_until"),
            "source": "source",
            "actor_kind": "actor_kind",
            "notice_version": "notice_version",
            "evidence_ref": "NULL",
            "correlation_id": "correlation_id",
            "last_used_at": _millis("last_used_at"),
            "evidence_on_file": "evidence_ref IS NOT NULL",
        }.items()
    )
    + ")"
)
# the record key is `domain.consent_keys.consent_key` spelled in SQL (as the sweeper's purge spells it)
CHANGE_KEY = "subject_id::text || '/' || purpose || '/' || COALESCE(NULLIF(channel, ''), '-')"
# the current state takes each consent's latest version, as `SAVE_CHANGES` does for the API
UNSTAGE = (
    f"WITH ledger AS (INSERT INTO consent.ledger ({LEDGER_COLUMNS}) SELECT {LEDGER_COLUMNS} FROM import_changes "
    "ORDER BY ord), "
    f"current AS (INSERT INTO consent.consents ({CURRENT_COLUMNS}) "
    f"SELECT DISTINCT ON (subject_id, purpose, channel) {CURRENT_COLUMNS} FROM import_changes "
    "ORDER BY subject_id, purpose, channel, version DESC "
    "ON CONFLICT (subject_id, purpose, channel) DO UPDATE SET "
    "status = EXCLUDED.status, version = EXCLUDED.version, occurred_at = EXCLUDED.occurred_at, "
    "recorded_at = EXCLUDED.recorded_at, valid_until = EXCLUDED.valid_until, "
    "last_used_at = EXCLUDED.last_used_at, notice_version = EXCLUDED.notice_version, source = EXCLUDED.source) "
    "INSERT INTO consent.outbox (topic, message_key, schema_name, payload) "
    "SELECT topic, message_key, schema_name, payload FROM ("
    "SELECT 0 AS part, ord, topic, message_key, schema_name, payload::jsonb AS payload FROM import_outbox "
    f"UNION ALL SELECT 1, ord, $1, {CHANGE_KEY}, $2, {CHANGE_RECORD} FROM import_changes) o ORDER BY part, ord"
)
STAGED_CHANGES = [*LEDGER_COLUMNS.split(", "), "subject_kind", "account_id", "country"]
STAGED_OUTBOX = ["topic", "message_key", "schema_name", "payload"]
SUBJECT_FIELDS = [c.strip() for c in SUBJECT_COLUMNS.split(",")]
REF_FIELDS = ["ref_digest", "subject_id"]
