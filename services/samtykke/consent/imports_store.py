"""Bulk import on PostgreSQL: the job row, and one batch in one transaction.

A batch reads what it needs (the subjects of its references, locked as the API locks one; the
national ids taken; the current state of its subjects; which of its event ids are in the ledger),
lets `imports_batch` decide, then writes subjects and references with COPY, stages the subjects'
records and the changes by COPY and puts them in place in one statement (ledger, current state and
outbox rows as the API's `save_changes` writes them), then the rejections and the job's progress.
It commits all of that or nothing, so a crash loses only the batch in flight and a resumed run starts
after the last row committed.

A run holds a session advisory lock on its file (by digest) on its own connection, so two runs of
one file never interleave; a crashed run's lock goes with its connection.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID, uuid4

import asyncpg

from samtykke.domain.catalog import PurposeCatalog
from samtykke.domain.consent import ConsentRecord
from samtykke.domain.events import ConsentChanged
from samtykke.domain.model import SubjectKind

from .imports import ImportRow, Rejection
from .imports_batch import BatchPlan, ConsentKey, SubjectResolver, plan_decisions, plan_subjects, ref_digest
from .imports_sql import (
    ADVANCE_JOB,
    CURRENT,
    JOB_COLUMNS,
    OPEN_JOB,
    PRESENT_EVENTS,
    REF_FIELDS,
    RESOLVE,
    SAVE_REJECTS,
    STAGED_CHANGES,
    STAGED_OUTBOX,
    STAGING,
    SUBJECT_FIELDS,
    TAKEN_NATIONAL_IDS,
    UNSTAGE,
)
from .ports import OUTBOX_CONSENT, OUTBOX_SUBJECT, SubjectRow
from .store import _current, ledger_row

ANALYZE_WRITTEN = "ANALYZE consent.subjects, consent.subject_refs, consent.consents, consent.ledger, consent.outbox"
IMPORT_LOCK = 0x5A_4D_54_01  # the first key of a run's advisory lock; the second is its file's digest
_INTO: dict[str, Any] = {"schema_name": "consent"}


class ImportBusy(RuntimeError):
    """Another run is importing the same file right now."""


class EarlierBatchFailed(RuntimeError):
    """A batch is not committed because the one before it failed (the run stops; a re-run resumes)."""


@dataclass(frozen=True, slots=True)
class ImportJob:
    job_id: str
    file_name: str
    format: str
    digest: str
    state: str  # running, done or failed
    last_row: int  # the last row committed (its line): a resumed run starts after it
    imported: int
    skipped: int
    rejected: int
    client_id: str | None
    error: str | None
    started_at: datetime
    updated_at: datetime
    finished_at: datetime | None

    def view(self) -> dict[str, Any]:
        values = {name: getattr(self, name) for name in self.__slots__}
        return values | {k: v.isoformat() for k, v in values.items() if isinstance(v, datetime)}


def _job(row: asyncpg.Record) -> ImportJob:
    return ImportJob(**(dict(row) | {"job_id": str(row["job_id"])}))


@dataclass(frozen=True, slots=True)
class BatchOutcome:
    imported: int
    skipped: int
    rejected: int  # rows


async def job(db: asyncpg.Pool | asyncpg.Connection, job_id: str) -> ImportJob | None:
    row = await db.fetchrow(f"SELECT {JOB_COLUMNS} FROM consent.import_jobs WHERE job_id = $1", UUID(job_id))
    return None if row is None else _job(row)


async def rejects(db: asyncpg.Pool | asyncpg.Connection, job_id: str) -> list[Rejection]:
    rows = await db.fetch(
        "SELECT row_number, field, rule FROM consent.import_rejects WHERE job_id = $1 ORDER BY row_number, field",
        UUID(job_id),
    )
    return [Rejection(r["row_number"], r["field"], r["rule"]) for r in rows]


class ImportSession:
    """One run of one file on its own connection (which holds the run's lock)."""

    def __init__(self, conn: asyncpg.Connection, catalog: PurposeCatalog, resolver: SubjectResolver) -> None:
        self._conn, self._catalog, self._resolver = conn, catalog, resolver

    async def open(self, digest: str, file_name: str, fmt: str, client_id: str | None) -> ImportJob:
        locked = await self._conn.fetchval("SELECT pg_try_advisory_lock($1, hashtext($2))", IMPORT_LOCK, digest)
        if not locked:
            raise ImportBusy("this file is being imported by another run")
        await self._conn.execute(STAGING)  # outside a batch: a batch rolled back would take them along
        row = await self._conn.fetchrow(OPEN_JOB, uuid4(), digest, file_name, fmt, client_id)
        return _job(row)

    async def join(self) -> ImportSession:
        """A second connection of a run that holds its lock already: it writes batches only."""
        await self._conn.execute(STAGING)
        return self

    async def release(self, digest: str) -> None:
        """Let go of the run's lock (the connection may go back to a pool)."""
        await self._conn.execute("SELECT pg_advisory_unlock($1, hashtext($2))", IMPORT_LOCK, digest)

    async def analyze(self) -> None:
        """Statistics for what a run wrote. The planner otherwise keeps its picture of the tables from
        before a bulk load until autovacuum comes round: on a database that was empty, every consent
        write meanwhile read all of `consent.consents` to find one subject's rows."""
        await self._conn.execute(ANALYZE_WRITTEN)

    async def close(self, job_id: str, error: str | None = None) -> ImportJob:
        row = await self._conn.fetchrow(
            "UPDATE consent.import_jobs SET state = $2, error = $3, finished_at = now(), updated_at = now() "
            f"WHERE job_id = $1 RETURNING {JOB_COLUMNS}",
            UUID(job_id),
            "failed" if error else "done",
            error,
        )
        return _job(row)

    async def write(
        self,
        job_id: str,
        last_row: int,
        rows: Sequence[ImportRow],
        rejected: Sequence[Rejection],
        topics: Topics,
        before: Awaitable[object] | None = None,
    ) -> BatchOutcome:
        """One batch: the rows read up to `last_row`, valid ones in `rows`, the rest in `rejected`. It
        commits after `before` (the batch before it, written on another connection) did, and not at
        all if that one failed: the job's last row only ever moves past rows that are written."""
        conn = self._conn
        async with conn.transaction():
            plan = await self._plan(rows, job_id)
            plan.rejections += rejected
            await self._write_subjects(plan)
            await self._write_changes(plan, topics)
            if plan.rejections:
                await conn.execute(SAVE_REJECTS, UUID(job_id), *map(list, zip(*plan.rejections, strict=True)))
            outcome = BatchOutcome(len(plan.changes), plan.skipped, plan.rejected_rows)
            if before is not None:
                try:
                    await before
                except Exception as exc:
                    raise EarlierBatchFailed("the batch before this one was not written") from exc
            await conn.execute(ADVANCE_JOB, UUID(job_id), last_row, outcome.imported, outcome.skipped, outcome.rejected)
        return outcome

    async def _write_subjects(self, plan: BatchPlan) -> None:
        if not plan.new_subjects:
            return
        records = [tuple(_subject_value(s, name) for name in SUBJECT_FIELDS) for s in plan.new_subjects]
        await self._conn.copy_records_to_table("subjects", **_INTO, columns=SUBJECT_FIELDS, records=records)
        refs = plan.new_refs
        await self._conn.copy_records_to_table("subject_refs", **_INTO, columns=REF_FIELDS, records=refs)

    async def _write_changes(self, plan: BatchPlan, topics: Topics) -> None:
        """The outbox rows (subjects' first: a subject's record precedes its consents') and the
        decisions go to session-local staging tables by COPY, then into place in one statement."""
        conn = self._conn
        if plan.subject_events:
            events = plan.subject_events
            outbox = [(topics.subjects, e.subject_id, OUTBOX_SUBJECT, _json(e.as_record())) for e in events]
            await conn.copy_records_to_table("import_outbox", columns=STAGED_OUTBOX, records=outbox)
        if plan.changes:
            changes = [_staged_change(c, topics.client_id) for c in plan.changes]
            await conn.copy_records_to_table("import_changes", columns=STAGED_CHANGES, records=changes)
        if plan.subject_events or plan.changes:
            await conn.execute(UNSTAGE, topics.changes, OUTBOX_CONSENT)

    async def _plan(self, rows: Sequence[ImportRow], job_id: str) -> BatchPlan:
        conn, resolver, plan = self._conn, self._resolver, BatchPlan()
        hasher = resolver.hasher
        refs = sorted({ref_digest(hasher, r.subject_ref) for r in rows})
        known = {r["ref_digest"]: _known_subject(r) for r in await conn.fetch(RESOLVE, refs)}
        existing = [s.subject_id for s in known.values()]
        # stamped after the subjects' locks, as the API stamps a decision under its subject's lock
        now: datetime = await conn.fetchval("SELECT clock_timestamp()")
        resolver.now = now
        wanted = sorted({d for r in rows if (d := resolver.national_id_digest(r)) is not None})
        taken = await conn.fetch(TAKEN_NATIONAL_IDS, wanted)
        placed = plan_subjects(rows, known, {r[0] for r in taken}, resolver, plan)
        current: dict[ConsentKey, ConsentRecord] = {}
        for r in await conn.fetch(CURRENT, existing) if existing else []:
            stored = _current(r)
            current[(stored.subject_id, *stored.record.key)] = stored.record
        ids = [row.event_id for row, _ in placed]  # asyncpg encodes a uuid from its text
        present = {str(r[0]) for r in await conn.fetch(PRESENT_EVENTS, ids)}
        plan_decisions(placed, current, present, self._catalog, now, f"import:{job_id}", plan)
        return plan


@dataclass(frozen=True, slots=True)
class Topics:
    changes: str
    subjects: str
    client_id: str | None  # the credential that started the import, recorded in the ledger


def _json(record: dict[str, Any]) -> str:
    return json.dumps(record, separators=(",", ":"))


def _staged_change(c: ConsentChanged, client_id: str | None) -> tuple[Any, ...]:
    """A change as the API writes it to the ledger (no actor reference), and what else its record carries."""
    return (*ledger_row(c, None, client_id), c.subject_kind, c.account_id, c.country)


def _known_subject(row: asyncpg.Record) -> SubjectRow:
    values = {name: row[name] for name in SUBJECT_FIELDS}
    return SubjectRow(**values | {"subject_id": str(row["subject_id"]), "kind": SubjectKind(row["kind"])})


def _subject_value(subject: Any, name: str) -> Any:
    value = getattr(subject, name)
    return value.value if name == "kind" else value
