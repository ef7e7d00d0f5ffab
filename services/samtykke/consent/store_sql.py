"""The longer SQL statements of the PostgreSQL consent store, kept apart from the code that binds them."""

from __future__ import annotations

from .ports import IdentifierKind

SUBJECT_COLUMNS = (
    "subject_id, kind, country, account_id, phone_hash, email_hash, national_id_hash, "
    "phone_enc, email_enc, national_id_enc, version, created_at, updated_at, erased_at"
)
# The subject locked, and the database's clock once the lock is held: the outer row's projection runs
# after the CTE's LockRows returned (waited for) the row. No subject: one row of NULLs.
LOCK_SUBJECT_AT = (
    f"WITH locked AS (SELECT {SUBJECT_COLUMNS} FROM consent.subjects WHERE subject_id = $1 FOR UPDATE) "
    "SELECT clock_timestamp() AS locked_at, locked.* FROM (SELECT 1) AS one LEFT JOIN locked ON true"
)
CURRENT_COLUMNS = (
    "subject_id, purpose, channel, status, version, occurred_at, recorded_at, valid_until, last_used_at, "
    "notice_version, source"
)
LEDGER_COLUMNS = (
    "event_id, subject_id, purpose, channel, status, previous_status, version, occurred_at, "
    "recorded_at, valid_until, last_used_at, source, actor_kind, actor_ref, notice_version, "
    "evidence_ref, correlation_id, client_id"
)
LEDGER_TYPES = (
    "uuid",
    "uuid",
    "text",
    "text",
    "text",
    "text",
    "bigint",
    "timestamptz",
    "timestamptz",
    "timestamptz",
    "timestamptz",
    "text",
    "text",
    "text",
    "text",
    "text",
    "text",
    "text",
)

_IDENTIFIER_COLUMNS = {
    IdentifierKind.PHONE: "phone_hash",
    IdentifierKind.EMAIL: "email_hash",
    IdentifierKind.NATIONAL_ID: "national_id_hash",
}
FIND_SUBJECTS = {
    kind: f"SELECT subject_id FROM consent.subjects WHERE {column} = $1 ORDER BY created_at"
    for kind, column in _IDENTIFIER_COLUMNS.items()
}

# One round trip: the subject loses its clear identifiers (the hashes stay, so suppression survives),
# its hold on its phone and e-mail ends, the ledger loses its evidence and actor references, and
# stored responses go.
ERASE_SUBJECT = (
    "WITH holdings AS (INSERT INTO consent.identifier_holdings (subject_id, kind, hash, since, until, reason) "
    "SELECT s.subject_id, v.kind, v.hash, s.created_at, $2, 'erased' FROM consent.subjects s, "
    "LATERAL (VALUES ('phone', s.phone_hash), ('email', s.email_hash)) AS v(kind, hash) "
    "WHERE s.subject_id = $1 AND v.hash IS NOT NULL ON CONFLICT DO NOTHING), "
    "ledger AS (UPDATE consent.ledger SET evidence_ref = NULL, actor_ref = NULL WHERE subject_id = $1), "
    "responses AS (DELETE FROM consent.idempotency WHERE subject_id = $1) "
    "UPDATE consent.subjects SET phone_enc = NULL, email_enc = NULL, national_id_enc = NULL, "
    f"erased_at = $2, updated_at = $2, version = version + 1 WHERE subject_id = $1 RETURNING {SUBJECT_COLUMNS}"
)

# One round trip for a whole batch: the ledger rows, the current state (the latest change per key,
# since a batch may decide one key twice) and the outbox rows in the order of the changes.
SAVE_CHANGES = (
    "WITH rows AS (SELECT * FROM unnest("
    + ", ".join(f"${i}::{t}[]" for i, t in enumerate(LEDGER_TYPES, start=1))
    + f") WITH ORDINALITY AS r({LEDGER_COLUMNS}, ord)), "
    f"ledger AS (INSERT INTO consent.ledger ({LEDGER_COLUMNS}) SELECT {LEDGER_COLUMNS} FROM rows ORDER BY ord), "
    f"current AS (INSERT INTO consent.consents ({CURRENT_COLUMNS}) "
    f"SELECT DISTINCT ON (subject_id, purpose, channel) {CURRENT_COLUMNS} FROM rows "
    "ORDER BY subject_id, purpose, channel, version DESC "
    "ON CONFLICT (subject_id, purpose, channel) DO UPDATE SET "
    "status = EXCLUDED.status, version = EXCLUDED.version, occurred_at = EXCLUDED.occurred_at, "
    "recorded_at = EXCLUDED.recorded_at, valid_until = EXCLUDED.valid_until, "
    "last_used_at = EXCLUDED.last_used_at, notice_version = EXCLUDED.notice_version, "
    "source = EXCLUDED.source) "
    "INSERT INTO consent.outbox (topic, message_key, schema_name, payload) "
    "SELECT $19, o.key, $20, o.payload FROM unnest($21::text[], $22::jsonb[]) WITH ORDINALITY AS o(key, payload, ord) "
    "ORDER BY o.ord"
)

# Candidates only: `occurred_at` before the cutoff is necessary for a passed deadline (the deadline
# counts from the later of decision and last use), the sweeper decides with the domain rule. Keys
# whose ledger is already purged are skipped, so a sweep's work does not grow with old withdrawals.
_DOCUMENTED = (
    f"SELECT {CURRENT_COLUMNS} FROM consent.consents c "
    "WHERE c.purpose = $1 AND c.status <> 'granted' AND c.occurred_at < $2 "
    "AND EXISTS (SELECT 1 FROM consent.ledger l "
    "WHERE l.subject_id = c.subject_id AND l.purpose = c.purpose AND l.channel = c.channel)"
)
_PAGE = " ORDER BY c.subject_id, c.channel LIMIT $3"
DOCUMENTED_WITHDRAWALS = _DOCUMENTED + _PAGE
DOCUMENTED_WITHDRAWALS_AFTER = _DOCUMENTED + " AND (c.subject_id, c.channel) > ($4::uuid, $5::text)" + _PAGE

# Each key's ledger goes only while its current version is the one the sweeper judged: a decision
# committed since then keeps its documentation.
# The tombstones of the keys purged commit with the purge, so the topic's copy goes with the ledger's.
# Their record key is `domain.consent_keys.consent_key` spelled in SQL.
PURGE_DOCUMENTATION = (
    "WITH purged AS (DELETE FROM consent.ledger l "
    "USING unnest($1::uuid[], $2::text[], $3::text[], $4::bigint[]) AS k(subject_id, purpose, channel, version), "
    "consent.consents c "
    "WHERE l.subject_id = k.subject_id AND l.purpose = k.purpose AND l.channel = k.channel "
    "AND c.subject_id = k.subject_id AND c.purpose = k.purpose AND c.channel = k.channel "
    "AND c.version = k.version RETURNING l.subject_id, l.purpose, l.channel), "
    "tombstones AS (INSERT INTO consent.outbox (topic, message_key, schema_name, payload) "
    "SELECT $5, subject_id::text || '/' || purpose || '/' || COALESCE(NULLIF(channel, ''), '-'), $6, NULL "
    "FROM (SELECT DISTINCT subject_id, purpose, channel FROM purged) p ORDER BY subject_id, purpose, channel) "
    "SELECT count(*) FROM purged"
)

HOLDING_COLUMNS = "subject_id, kind, hash, since, until, reason"

# The subject's hold on each named kind it holds ends (one row each), and the hash and sealed value
# leave the subject; a kind not held is left as it is.
RELEASE_IDENTIFIERS = (
    f"WITH ended AS (INSERT INTO consent.identifier_holdings ({HOLDING_COLUMNS}) "
    "SELECT s.subject_id, v.kind, v.hash, s.created_at, $3, $4 FROM consent.subjects s, "
    "LATERAL (VALUES ('phone', s.phone_hash), ('email', s.email_hash)) AS v(kind, hash) "
    "WHERE s.subject_id = $1 AND v.kind = ANY($2::text[]) AND v.hash IS NOT NULL ON CONFLICT DO NOTHING) "
    "UPDATE consent.subjects SET "
    "phone_hash = CASE WHEN 'phone' = ANY($2::text[]) THEN NULL ELSE phone_hash END, "
    "phone_enc = CASE WHEN 'phone' = ANY($2::text[]) THEN NULL ELSE phone_enc END, "
    "email_hash = CASE WHEN 'email' = ANY($2::text[]) THEN NULL ELSE email_hash END, "
    "email_enc = CASE WHEN 'email' = ANY($2::text[]) THEN NULL ELSE email_enc END, "
    f"updated_at = $3, version = version + 1 WHERE subject_id = $1 RETURNING {SUBJECT_COLUMNS}"
)
