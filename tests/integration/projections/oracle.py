"""Projection = recomputation: each domain's tables as the pure rules compute them from the
consent service's ledger, and the same tables as the projectors wrote them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import asyncpg

from samtykke.domain.catalog import load_catalog
from samtykke.domain.events import ConsentChanged, SubjectChanged, from_millis, to_millis
from samtykke.domain.projection import (
    NO_CHANNEL,
    account_pseudonym,
    daily_deltas,
    latest_changes,
    latest_subjects,
    marketable,
    marketing_consent,
    pseudonym,
    timeline_evidence,
    traffic_data_use,
)

CATALOG = load_catalog()
Tables = dict[str, Any]


def _ms(value: datetime | None) -> datetime | None:
    """Events carry milliseconds; the ledger keeps microseconds."""
    return from_millis(to_millis(value))


async def ledger(conn: asyncpg.Connection) -> tuple[list[ConsentChanged], list[SubjectChanged]]:
    subjects = [
        SubjectChanged(
            event_id="",
            subject_id=str(r["subject_id"]),
            kind=r["kind"],
            country=r["country"],
            account_id=r["account_id"],
            phone_hash=None,
            email_hash=None,
            national_id_hash=None,
            erased=r["erased_at"] is not None,
            version=r["version"],
            occurred_at=_ms(r["updated_at"]),
        )
        for r in await conn.fetch("SELECT * FROM consent.subjects")
    ]
    by_id = {s.subject_id: s for s in subjects}
    changes = []
    for r in await conn.fetch("SELECT * FROM consent.ledger ORDER BY seq"):
        s = by_id[str(r["subject_id"])]
        changes.append(
            ConsentChanged(
                event_id=str(r["event_id"]),
                subject_id=s.subject_id,
                subject_kind=s.kind,
                account_id=s.account_id,
                country=s.country,
                purpose=r["purpose"],
                channel=r["channel"] or None,
                status=r["status"],
                previous_status=r["previous_status"],
                version=r["version"],
                occurred_at=_ms(r["occurred_at"]),
                recorded_at=_ms(r["recorded_at"]),
                valid_until=_ms(r["valid_until"]),
                source=r["source"],
                actor_kind=r["actor_kind"],
                notice_version=r["notice_version"],
                evidence_ref=r["evidence_ref"],
                correlation_id=r["correlation_id"],
                last_used_at=_ms(r["last_used_at"]),
            )
        )
    return changes, subjects


def expected(domain: str, changes: list[ConsentChanged], subjects: list[SubjectChanged], key: bytes) -> Tables:
    people = latest_subjects(subjects)
    # erasure tombstones every consent of the subject: its consents and their history leave every
    # projection; only analytics' status changes and daily counts keep what the changes once added
    erased = {s.subject_id for s in people.values() if s.erased}
    every, changes = changes, [c for c in changes if c.subject_id not in erased]
    latest = latest_changes(changes)
    now = datetime.now(UTC)
    if domain == "marketing":
        rows = [r for r in (marketing_consent(CATALOG, c) for c in latest.values()) if r is not None]
        return {
            "subjects": {s.subject_id: (s.kind, s.country, s.account_id, s.erased, s.version) for s in people.values()},
            "consents": {
                (r.subject_id, r.purpose, r.channel): (
                    r.mechanism,
                    r.status,
                    r.in_force,
                    r.valid_until,
                    r.lapse_date,
                    r.country,
                    r.kind,
                    r.account_id,
                    r.version,
                    r.occurred_at,
                )
                for r in rows
            },
            "marketable": marketable(CATALOG, rows, people, now),
        }
    if domain == "analytics":
        p = {sid: pseudonym(key, sid) for sid in {c.subject_id for c in changes} | set(people)}
        return {
            "subjects": {
                p[s.subject_id]: (s.kind, s.country, account_pseudonym(key, s.account_id), s.erased, s.version)
                for s in people.values()
            },
            "consents": {
                (p[c.subject_id], c.purpose, c.channel or NO_CHANNEL): (
                    c.status,
                    c.valid_until,
                    c.version,
                    c.occurred_at,
                )
                for c in latest.values()
            },
            "status_changes": {
                (p[c.subject_id], c.purpose, c.channel or NO_CHANNEL, c.version): (
                    c.status,
                    c.previous_status,
                    c.country,
                    c.occurred_at,
                )
                for c in every
            },
            "daily_status_changes": daily_deltas(every),
            "traffic_data_use": {
                (p[s], purpose, by) for s, purpose, by in traffic_data_use(CATALOG, people, latest, now)
            },
        }
    return {
        "subjects": {
            s.subject_id: (s.kind, s.country, s.account_id, s.erased, s.version, s.occurred_at) for s in people.values()
        },
        "consents": {
            (c.subject_id, c.purpose, c.channel or NO_CHANNEL): (
                c.status,
                c.previous_status,
                c.version,
                c.occurred_at,
                c.recorded_at,
                c.valid_until,
                c.last_used_at,
                c.source,
                c.actor_kind,
                c.notice_version,
            )
            for c in latest.values()
        },
        "timeline": {
            (c.subject_id, c.purpose, c.channel or NO_CHANNEL, c.version): (
                c.event_id,
                c.status,
                c.previous_status,
                c.occurred_at,
                c.recorded_at,
                c.valid_until,
                c.source,
                c.actor_kind,
                c.notice_version,
                timeline_evidence(c, c.subject_id in erased),
            )
            for c in changes
        },
    }


def _keyed(rows: list[asyncpg.Record], width: int) -> dict[Any, tuple[Any, ...]]:
    return {tuple(r.values())[:width] if width > 1 else r[0]: tuple(r.values())[width:] for r in rows}


async def actual(conn: asyncpg.Connection, domain: str) -> Tables:
    async def q(sql: str) -> list[asyncpg.Record]:
        return list(await conn.fetch(sql.replace("{s}", domain)))

    if domain == "marketing":
        return {
            "subjects": _keyed(
                await q("SELECT subject_id, kind, country, account_id, erased, version FROM {s}.subjects"), 1
            ),
            "consents": _keyed(
                await q(
                    "SELECT subject_id, purpose, channel, mechanism, status, in_force, valid_until, "
                    "lapse_date, country, kind, account_id, version, occurred_at FROM {s}.consents"
                ),
                3,
            ),
            "marketable": {
                tuple(r.values())
                for r in await q("SELECT subject_id, purpose, coalesce(channel, '') FROM {s}.marketable")
            },
        }
    if domain == "analytics":
        return {
            "subjects": _keyed(
                await q("SELECT pseudonym, kind, country, account_pseudonym, erased, version FROM {s}.subjects"), 1
            ),
            "consents": _keyed(
                await q(
                    "SELECT pseudonym, purpose, channel, status, valid_until, version, occurred_at FROM {s}.consents"
                ),
                3,
            ),
            "status_changes": _keyed(
                await q(
                    "SELECT pseudonym, purpose, channel, version, status, previous_status, "
                    "country, occurred_at FROM {s}.status_changes"
                ),
                4,
            ),
            "daily_status_changes": _keyed(
                await q("SELECT day, purpose, status, country, entered, exited FROM {s}.daily_status_changes"), 4
            ),
            "traffic_data_use": {
                tuple(r.values()) for r in await q("SELECT pseudonym, purpose, decided_by FROM {s}.traffic_data_use")
            },
        }
    return {
        "subjects": _keyed(
            await q("SELECT subject_id, kind, country, account_id, erased, version, updated_at FROM {s}.subjects"), 1
        ),
        "consents": _keyed(
            await q(
                "SELECT subject_id, purpose, channel, status, previous_status, version, occurred_at, "
                "recorded_at, valid_until, last_used_at, source, actor_kind, notice_version "
                "FROM {s}.consents"
            ),
            3,
        ),
        "timeline": _keyed(
            await q(
                "SELECT subject_id, purpose, channel, version, event_id, status, previous_status, "
                "occurred_at, recorded_at, valid_until, source, actor_kind, notice_version, "
                "evidence_on_file FROM {s}.timeline"
            ),
            4,
        ),
    }


async def assert_equals_recomputation(conn: asyncpg.Connection, key: bytes, *domains: str) -> None:
    changes, subjects = await ledger(conn)
    for domain in domains:
        want, got = expected(domain, changes, subjects, key), await actual(conn, domain)
        for table in want:
            assert want[table], f"the history left {domain}.{table} empty: a vacuous comparison"
            assert got[table] == want[table], f"{domain}.{table} differs from the recomputation"


async def snapshot(conn: asyncpg.Connection, *domains: str) -> Tables:
    """Every row of every table (offsets and completeness aside: they record when, not what)."""
    tables: Tables = {}
    for domain in domains:
        names = await conn.fetch(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = $1 "
            "AND table_type = 'BASE TABLE' AND table_name NOT IN ('consumer_offsets', 'completeness')",
            domain,
        )
        for row in names:
            rows = await conn.fetch(f"SELECT t::text AS row FROM {domain}.{row['table_name']} t")
            tables[f"{domain}.{row['table_name']}"] = sorted(r["row"] for r in rows)
    return tables
