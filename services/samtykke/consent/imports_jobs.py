"""Bulk import, a run: a file read in batches and written batch by batch, with progress and a report.

The command line (`samtykke consent import`) and the API job (`POST /v1/imports`) both run
`ConsentImporter.run`. While one batch is written (its statements run in PostgreSQL, on the other
core) the next is read and validated here; the reading yields every few hundred rows so the batch in
flight goes on, and so an API job leaves the service's event loop free for requests. A file is known
by its digest: a run of a file whose earlier run did not finish starts after the last committed row.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import gc
import hashlib
import json
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import asyncpg

from samtykke.adapters.postgres import create_pool
from samtykke.adapters.progress import Progress as ProgressBar
from samtykke.adapters.settings import Settings
from samtykke.adapters.vault import IdentifierVault
from samtykke.domain.catalog import PurposeCatalog, load_catalog
from samtykke.domain.identifiers import IdentifierHasher

from .imports import ImportFormat, ImportRow, Rejection, RowValidator, read_rows
from .imports_batch import SubjectResolver
from .imports_store import BatchOutcome, ImportJob, ImportSession, Topics, rejects
from .ports import IdentifierKind
from .store import create_schema

log = logging.getLogger(__name__)
DEFAULT_BATCH = 10_000
YIELD_EVERY = 256  # rows read between two turns of the event loop
RETRIES = 3  # a batch that lost a race on a unique fact (a national id registered meanwhile) is redone
Progress = Callable[[int], None]  # told how many rows each committed batch held


@dataclass(frozen=True, slots=True)
class FileFacts:
    digest: str
    lines: int


def scan(path: Path) -> FileFacts:
    """The file's SHA-256 (what identifies it to a re-run) and its line count (a progress total)."""
    digest, lines = hashlib.sha256(), 0
    with path.open("rb") as source:
        while chunk := source.read(1 << 20):
            digest.update(chunk)
            lines += chunk.count(b"\n")
    return FileFacts(digest.hexdigest(), lines)


@dataclass(frozen=True, slots=True)
class ImportSummary:
    job: ImportJob  # the pass's totals, an earlier unfinished run's rows included
    resumed_after: int  # the last row an earlier run committed (0: from the start)
    rows: int  # rows read by this run
    imported: int  # decisions this run recorded
    seconds: float

    @property
    def decisions_per_second(self) -> float:
        return self.imported / max(self.seconds, 1e-9)

    @property
    def rows_per_second(self) -> float:
        return self.rows / max(self.seconds, 1e-9)

    def line(self) -> str:
        j = self.job
        resumed = f" (resumed after row {self.resumed_after:,})" if self.resumed_after else ""
        return (
            f"import {j.job_id} {j.state}{resumed}: {j.imported + j.skipped + j.rejected:,} rows: "
            f"{j.imported:,} decisions imported, "
            f"{j.skipped:,} already present, {j.rejected:,} rejected; this run {self.rows:,} rows in "
            f"{self.seconds:.1f}s, {self.decisions_per_second:,.0f} decisions/s ({self.rows_per_second:,.0f} rows/s)"
        )


class ConsentImporter:
    """What a run needs from the consent service: its catalog, identifier keys and topics."""

    def __init__(
        self,
        catalog: PurposeCatalog,
        vault: IdentifierVault,
        hash_key: bytes,
        topic_changes: str,
        topic_subjects: str,
    ) -> None:
        self._catalog, self._vault, self._hasher = catalog, vault, IdentifierHasher(hash_key)
        self._topics = (topic_changes, topic_subjects)

    def session(self, conn: asyncpg.Connection) -> ImportSession:
        return ImportSession(conn, self._catalog, SubjectResolver(self._hasher, self._vault.seal))

    async def run(
        self,
        conn: asyncpg.Connection,
        path: Path,
        fmt: ImportFormat,
        *,
        second: asyncpg.Connection | None = None,
        file_name: str | None = None,
        client_id: str | None = None,
        batch_size: int = DEFAULT_BATCH,
        progress: Progress | None = None,
        started: Callable[[ImportJob, FileFacts], None] | None = None,
    ) -> ImportSummary:
        """Import `path` on `conn` (held for the whole run, with `second` if given: then a batch is
        planned while the one before it is written); `started` is told the job once it is open."""
        facts = await asyncio.to_thread(scan, path)
        session = self.session(conn)
        job = await session.open(facts.digest, file_name or path.name, fmt.value, client_id)
        try:
            writers = [session]
            if second is not None:
                writers.append(await self.session(second).join())
            if started is not None:
                started(job, facts)
            topics = Topics(*self._topics, client_id)
            began = time.monotonic()
            validator = RowValidator(self._catalog, datetime.now(UTC))
            reader = _BatchReader(writers, job, topics, validator, progress)
            rows, imported = await reader.read(path, fmt, batch_size)
            if imported:
                await _refresh_statistics(session, job.job_id)
            job = await session.close(job.job_id)
        except BaseException as exc:
            if not isinstance(exc, asyncio.CancelledError | KeyboardInterrupt):
                await session.close(job.job_id, f"{type(exc).__name__}: {exc}"[:500])
            raise
        finally:
            await session.release(facts.digest)
        return ImportSummary(job, reader.resumed_after, rows, imported, time.monotonic() - began)


async def _refresh_statistics(session: ImportSession, job_id: str) -> None:
    """Statistics for what the run loaded. Every row is committed by now: a failure here leaves the
    statistics to autovacuum and the job done, rather than marking a complete import failed."""
    try:
        await session.analyze()
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        log.warning("import %s: tables not analyzed, left to autovacuum: %s", job_id, type(exc).__name__)


@dataclass(frozen=True, slots=True)
class _InFlight:
    task: asyncio.Task[BatchOutcome]
    refs: set[str]
    national_ids: set[str]


class _BatchReader:
    """Reads batches and hands each to a writer. With two writers (connections) a batch is planned and
    written while the one before it is still being written, when the two share no subject reference
    and no national id (so neither can see, lock or wait for what the other writes); it commits only
    after the one before it did. Batches end between two subjects where they can, so that is the rule."""

    def __init__(
        self,
        writers: list[ImportSession],
        job: ImportJob,
        topics: Topics,
        validator: RowValidator,
        progress: Progress | None,
    ) -> None:
        self._writers, self._job, self._topics, self._validator = writers, job, topics, validator
        self._progress = progress
        self.resumed_after = job.last_row
        self._inflight: list[_InFlight] = []
        self._handed = 0
        self._imported = 0

    async def read(self, path: Path, fmt: ImportFormat, batch_size: int) -> tuple[int, int]:
        try:
            return await self._read(path, fmt, batch_size)
        except BaseException:
            # the batches in flight end (written, or rolled back after the one that failed) before the
            # run goes on to record the failure on a connection one of them may still be using
            await asyncio.gather(*(f.task for f in self._inflight), return_exceptions=True)
            raise

    async def _read(self, path: Path, fmt: ImportFormat, batch_size: int) -> tuple[int, int]:
        rows: list[ImportRow] = []
        rejected: list[Rejection] = []
        read = in_batch = last = 0
        previous_ref: str | None = None
        with path.open("rb") as source:
            for n, (row, value) in enumerate(read_rows(source, fmt), start=1):
                if n % YIELD_EVERY == 0:
                    await asyncio.sleep(0)  # the batch in flight (and an API's requests) go on
                if row <= self.resumed_after:
                    continue  # committed by an earlier run
                ref = None if isinstance(value, Rejection) else value.get("subject_ref")
                full = in_batch >= batch_size and (ref != previous_ref or in_batch >= 2 * batch_size)
                if full:
                    await self._hand_over(last, rows, rejected, in_batch)
                    rows, rejected, in_batch = [], [], 0
                previous_ref = ref if ref is not None else previous_ref
                checked = value if isinstance(value, Rejection) else self._validator.validate(row, value)
                if isinstance(checked, ImportRow):
                    rows.append(checked)
                elif isinstance(checked, Rejection):
                    rejected.append(checked)
                else:
                    rejected += checked
                read, in_batch, last = read + 1, in_batch + 1, row
        if in_batch:
            await self._hand_over(last, rows, rejected, in_batch)
        while self._inflight:
            await self._settle_oldest()
        return read, self._imported

    async def _hand_over(self, last: int, rows: list[ImportRow], rejected: list[Rejection], count: int) -> None:
        refs = {r.subject_ref for r in rows}
        national_ids = {v for r in rows if (v := r.identifiers.get(IdentifierKind.NATIONAL_ID)) is not None}
        if len(self._inflight) == len(self._writers):
            await self._settle_oldest()  # its writer is the one this batch gets
        if self._inflight and (self._inflight[-1].refs & refs or self._inflight[-1].national_ids & national_ids):
            await self._settle_oldest()  # they share a subject: plan this one on what that one wrote
        before = self._inflight[-1].task if self._inflight else None
        writer = self._writers[self._handed % len(self._writers)]
        self._handed += 1
        task = asyncio.create_task(self._write(writer, last, rows, rejected, count, before))
        self._inflight.append(_InFlight(task, refs, national_ids))

    async def _settle_oldest(self) -> None:
        oldest = self._inflight.pop(0)
        self._imported += (await oldest.task).imported

    async def _write(
        self,
        writer: ImportSession,
        last: int,
        rows: list[ImportRow],
        rejected: list[Rejection],
        count: int,
        before: asyncio.Task[BatchOutcome] | None,
    ) -> BatchOutcome:
        for attempt in range(1, RETRIES + 1):
            try:
                outcome = await writer.write(self._job.job_id, last, rows, rejected, self._topics, before)
                break
            except asyncpg.UniqueViolationError:
                if attempt == RETRIES:
                    raise
                log.warning("import %s: a batch met a concurrent write; redoing it", self._job.job_id)
        if self._progress is not None:
            self._progress(count)
        return outcome


async def write_report(db: asyncpg.Pool | asyncpg.Connection, job_id: str, path: Path, fmt: ImportFormat) -> int:
    """The job's rejected rows (row, field, rule; never a value) as CSV or NDJSON; how many lines."""
    found = await rejects(db, job_id)
    with path.open("w", encoding="utf-8", newline="") as out:
        if fmt is ImportFormat.CSV:
            writer = csv.writer(out)
            writer.writerow(("row", "field", "rule"))
            writer.writerows(found)
        else:
            out.writelines(json.dumps(r._asdict(), ensure_ascii=False) + "\n" for r in found)
    return len(found)


def report_path(source: Path, fmt: ImportFormat) -> Path:
    return source.with_name(f"{source.name}.rejects.{fmt.value}")


@contextlib.contextmanager
def fewer_collections() -> Iterator[None]:
    """A batch allocates a few objects per row and keeps most until it commits: the collector's default
    threshold (700 allocations) would traverse them again and again, about a sixth of the time per row.
    For a process that runs one import; the consent service keeps its defaults."""
    before = gc.get_threshold()
    gc.freeze()  # what the process holds already is never garbage here
    gc.set_threshold(100_000, 50, 100)
    try:
        yield
    finally:
        gc.set_threshold(*before)
        gc.unfreeze()


async def import_file(
    settings: Settings, path: Path, fmt: ImportFormat, rejects_path: Path, batch_size: int = DEFAULT_BATCH
) -> ImportSummary:
    """`samtykke consent import`: the file into the database of the consent service's settings."""
    pool = await create_pool(settings.database_url, min_size=2, max_size=2)
    try:
        await create_schema(pool)
        importer = ConsentImporter(
            load_catalog(),
            IdentifierVault(settings.identifier_encryption_key, settings.identifier_encryption_retired_keys),
            settings.identifier_hash_key.encode(),
            settings.topic_changes,
            settings.topic_subjects,
        )
        async with pool.acquire() as conn, pool.acquire() as second:
            with fewer_collections(), ProgressBar(0, f"import {path.name}", unit="rows") as progress:

                def started(job: ImportJob, facts: FileFacts) -> None:
                    # about one row a line, less the header and the rows an earlier run committed
                    progress.total = max(facts.lines - max(job.last_row, 1), 0)
                    if job.last_row:
                        log.info("import %s: resuming after row %d", job.job_id, job.last_row)

                summary = await importer.run(
                    conn, path, fmt, second=second, batch_size=batch_size, progress=progress.advance, started=started
                )
            await write_report(conn, summary.job.job_id, rejects_path, fmt)
        return summary
    finally:
        await pool.close()
