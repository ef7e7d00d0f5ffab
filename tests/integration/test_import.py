"""Bulk import on the real stack: a CRM file of 10,000 rows, 50 of them bad, through
`samtykke consent import` run as a process. It is killed (SIGKILL) halfway and run again, then run
a third time; the ledger and the outbox hold every good decision exactly once, the report names each
bad row, and the projectors and the gate, fed by the consent service's relay, agree with the ledger."""

from __future__ import annotations

import asyncio
import csv
import json
import os
import signal
import subprocess
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from asyncpg.transaction import Transaction

from samtykke.adapters.settings import Settings
from samtykke.consent.imports_batch import ref_digest
from samtykke.consent.imports_store import IMPORT_LOCK
from samtykke.devstack.process import samtykke_command, settings_environment
from samtykke.domain.catalog import load_catalog
from samtykke.domain.events import ConsentChanged
from samtykke.domain.identifiers import IdentifierHasher
from samtykke.domain.model import SubjectId, SubjectKind
from samtykke.domain.registers import RegisterBook
from samtykke.domain.suppression import SubjectState, SuppressionRules
from samtykke.projections.domains import DOMAINS
from samtykke.projections.provision import provision
from samtykke.suppression.app import create_app as create_suppression_app

from .conftest import RunningConsent, ServerThread
from .import_files import CrmFile, crm_file, with_bad_rows
from .projections.conftest import ProjectionPlatform, free_port_base
from .projections.oracle import assert_equals_recomputation
from .suppression.conftest import MARKETING, suppression_settings

CATALOG = load_catalog()
CHANGE_COLUMNS = ("account_id", "country", "purpose", "status", "previous_status", "version", "occurred_at")
CHANGE_COLUMNS += ("recorded_at", "valid_until", "source", "actor_kind", "notice_version", "evidence_ref")
CHANGE_COLUMNS += ("correlation_id", "last_used_at")
# what the import process reads: the consent service's database, topics and identifier keys
IMPORT_SETTINGS = ("database_url", "topic_changes", "topic_subjects", "identifier_hash_key")
BATCH = 1000


def run_import(settings: Settings, path: Path, *args: str) -> subprocess.Popen[str]:
    command = samtykke_command("consent", "import", str(path), "--batch-size", str(BATCH), *args)
    env = settings_environment(settings, IMPORT_SETTINGS)
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finished(process: subprocess.Popen[str]) -> str:
    out, err = process.communicate(timeout=120)
    assert process.returncode == 0, err[-3000:]
    return out


@pytest.fixture
async def platform(consent: RunningConsent, tmp_path: Path) -> AsyncIterator[ProjectionPlatform]:
    settings = consent.settings.model_copy(
        update={
            "projection_web_port_base": free_port_base(),
            "projection_group_prefix": f"t{uuid.uuid4().hex[:12]}",
            "projection_batch_size": 1000,
        }
    )
    await provision(settings)
    running = ProjectionPlatform(consent, settings, tmp_path)
    try:
        yield running
    finally:
        await running.stop(running.projectors)


async def count(conn: asyncpg.Connection, sql: str) -> int:
    found: int = await conn.fetchval(sql)
    return found


async def wait_blocked_on_a_lock(conn: asyncpg.Connection, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    sql = "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
    while await count(conn, sql) == 0:
        assert time.monotonic() < deadline, "the import never reached the locked subject"
        await asyncio.sleep(0.05)


async def wait_run_gone(conn: asyncpg.Connection, timeout: float = 30) -> None:
    """Until the killed run's sessions are gone (the server ends them when it notices), its lock with them."""
    deadline = time.monotonic() + timeout
    sql = "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND classid = $1::bigint::oid"
    while await conn.fetchval(sql, IMPORT_LOCK):
        assert time.monotonic() < deadline, "the killed run's session never ended"
        await asyncio.sleep(0.05)


def create_first(settings: Settings, tmp_path: Path, subject: dict[str, str]) -> None:
    """The subject, created by a one-row file of its own before the file that holds it is imported."""
    early = CrmFile(rows=[subject | {"purpose": "product_development", "channel": "", "status": "granted"}])
    early.rows[0] |= {"occurred_at": "2022-06-01T00:00:00+00:00", "evidence": ""}
    (tmp_path / "early.csv").write_bytes(early.csv_bytes())
    finished(run_import(settings, tmp_path / "early.csv"))


async def lock_subject(settings: Settings, holder: asyncpg.Connection, subject_ref: str) -> Transaction:
    """The subject's row lock, held by `holder` until the returned transaction ends: an import stops
    at the batch that holds the subject, after the batches before it committed."""
    digest = ref_digest(IdentifierHasher(settings.identifier_hash_key.encode()), subject_ref)
    locking = holder.transaction()
    await locking.start()
    await holder.execute(
        "SELECT 1 FROM consent.subjects JOIN consent.subject_refs USING (subject_id) WHERE ref_digest = $1 "
        "FOR UPDATE OF subjects",
        digest,
    )
    return locking


def first_consumer_from(crm: CrmFile, index: int) -> dict[str, str]:
    return next(r for r in crm.rows[index:] if r["kind"] == "consumer" and r["subject_ref"].startswith("CRM-00"))


async def test_a_crm_file_is_imported_once_resumed_after_a_kill_and_every_reader_agrees(
    platform: ProjectionPlatform, tmp_path: Path
) -> None:
    settings = platform.settings
    await platform.start()
    crm = with_bad_rows(crm_file(9_950))
    assert len(crm.rows) == 10_000 and len(crm.bad) == 50
    path = tmp_path / "crm.csv"
    path.write_bytes(crm.csv_bytes())
    # a subject from the file's middle, created first by a file of its own: its row lock, held by the
    # test, stops the big import at the batch that holds it, after the batches before it committed
    middle = first_consumer_from(crm, 5_000)
    create_first(settings, tmp_path, middle)

    conn = await platform.owner()
    holder = await platform.owner()
    try:
        locking = await lock_subject(settings, holder, middle["subject_ref"])
        killed = run_import(settings, path)
        await wait_blocked_on_a_lock(conn)
        os.kill(killed.pid, signal.SIGKILL)
        killed.wait(timeout=30)
        await locking.rollback()
        await wait_run_gone(conn)

        # nothing half-written: what committed is whole batches, each with its outbox rows (one snapshot:
        # the job row and a batch's rows commit together)
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            job = await conn.fetchrow("SELECT last_row, imported FROM consent.import_jobs WHERE file_name = 'crm.csv'")
            assert 1_000 < job["last_row"] < crm.row_of(middle["subject_ref"])
            ledger = await count(conn, "SELECT count(*) FROM consent.ledger")
            assert ledger == 1 + job["imported"] and job["imported"] > 0
            changes = "SELECT count(*) FROM consent.outbox WHERE schema_name = 'ConsentChanged'"
            assert await count(conn, changes) == ledger
            subjects = await count(conn, "SELECT count(*) FROM consent.subjects")
            assert (
                await count(conn, "SELECT count(*) FROM consent.outbox WHERE schema_name = 'SubjectChanged'")
                == subjects
            )

        resumed = finished(run_import(settings, path))
        assert f"resumed after row {job['last_row']:,}" in resumed
        assert "9,950 decisions imported, 0 already present, 50 rejected" in resumed
        await assert_imported_once(conn, crm)
        report = tmp_path / "crm.csv.rejects.csv"
        with report.open(newline="", encoding="utf-8") as lines:
            named = {int(r["row"]): (r["field"], r["rule"]) for r in csv.DictReader(lines)}
        assert named == crm.bad

        await assert_records_are_the_apis(conn)

        again = finished(run_import(settings, path))
        assert "0 decisions imported, 9,950 already present, 50 rejected" in again
        await assert_imported_once(conn, crm)

        await platform.caught_up(timeout=120)
        await assert_equals_recomputation(conn, settings.analytics_pseudonym_key.encode(), *DOMAINS)
        await assert_the_gate_agrees(settings, conn)
    finally:
        await holder.close()
        await conn.close()


async def test_a_batch_that_fails_takes_the_one_written_after_it_along(consent: RunningConsent, tmp_path: Path) -> None:
    """Two connections: batch K+1 is planned and written while K waits for a subject's lock. When K's
    connection is cut, K+1 must not commit (it is held until K has): the job's last row stays before
    K, and a re-run imports the rest once."""
    settings = consent.settings
    crm = crm_file(3_000)
    path = tmp_path / "crm.csv"
    path.write_bytes(crm.csv_bytes())
    middle = first_consumer_from(crm, 1_400)  # in the second batch of 1,000 rows
    create_first(settings, tmp_path, middle)

    conn = await asyncpg.connect(settings.database_url)
    holder = await asyncpg.connect(settings.database_url)
    try:
        locking = await lock_subject(settings, holder, middle["subject_ref"])
        failing = run_import(settings, path)
        await wait_blocked_on_a_lock(conn)
        # the next batch, on the run's other connection, has written its rows and waits for this one
        others = "state = 'idle in transaction' AND pid <> $1 AND datname = current_database()"
        deadline = time.monotonic() + 60
        while not await conn.fetchval(f"SELECT count(*) FROM pg_stat_activity WHERE {others}", holder.get_server_pid()):
            assert time.monotonic() < deadline, "the batch after the blocked one never wrote"
            await asyncio.sleep(0.05)
        cut = "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND pid <> $1"
        await conn.execute(cut, holder.get_server_pid())
        _, err = failing.communicate(timeout=60)
        assert failing.returncode != 0
        await locking.rollback()
        await wait_run_gone(conn)

        job = await conn.fetchrow("SELECT last_row, imported FROM consent.import_jobs WHERE file_name = 'crm.csv'")
        assert job["last_row"] == 1_001, err[-2000:]  # the first batch only: neither the cut one nor the next
        assert await count(conn, "SELECT count(*) FROM consent.ledger") == 1 + job["imported"]
        assert await count(conn, "SELECT count(*) FROM consent.outbox WHERE schema_name = 'ConsentChanged'") == (
            1 + job["imported"]
        )

        resumed = finished(run_import(settings, path))
        assert "resumed after row 1,001" in resumed and "3,000 decisions imported" in resumed
        await assert_imported_once(conn, crm)
    finally:
        await holder.close()
        await conn.close()


async def test_an_import_whose_tables_cannot_be_analyzed_is_still_done(consent: RunningConsent, tmp_path: Path) -> None:
    """The closing ANALYZE comes after every row is committed: when it fails (here it cannot get its lock
    within the run's lock_timeout) the statistics are left to autovacuum and the job is done."""
    crm = crm_file(300)
    path = tmp_path / "crm.csv"
    path.write_bytes(crm.csv_bytes())
    impatient = consent.settings.model_copy(
        update={"database_url": consent.settings.database_url + "?lock_timeout=500"}
    )
    holder = await asyncpg.connect(consent.settings.database_url)
    try:
        async with holder.transaction():  # what ANALYZE needs, not what writing needs
            await holder.execute("LOCK TABLE consent.subject_refs IN SHARE UPDATE EXCLUSIVE MODE")
            process = run_import(impatient, path)
            out, err = process.communicate(timeout=120)
        assert process.returncode == 0, err[-3000:]
        assert f"{crm.good:,} decisions imported" in out and "left to autovacuum" in err
        job = await holder.fetchrow("SELECT state, imported FROM consent.import_jobs WHERE file_name = 'crm.csv'")
        assert (job["state"], job["imported"]) == ("done", crm.good)
        assert await count(holder, "SELECT count(*) FROM consent.ledger") == crm.good
    finally:
        await holder.close()


async def assert_imported_once(conn: asyncpg.Connection, crm: CrmFile) -> None:
    ledger = await count(conn, "SELECT count(*) FROM consent.ledger")
    assert ledger == 1 + crm.good
    assert await count(conn, "SELECT count(DISTINCT event_id) FROM consent.ledger") == ledger
    outbox = "SELECT count(*) FROM consent.outbox WHERE schema_name = 'ConsentChanged'"
    assert await count(conn, outbox) == ledger
    distinct = "SELECT count(DISTINCT payload->>'event_id') FROM consent.outbox WHERE schema_name = 'ConsentChanged'"
    assert await count(conn, distinct) == ledger
    subjects = await count(conn, "SELECT count(*) FROM consent.subjects")
    assert subjects == len({r["subject_ref"] for r in crm.rows if r["subject_ref"].startswith("CRM-00")})
    assert await count(conn, "SELECT count(*) FROM consent.subject_refs") == subjects
    assert await count(conn, "SELECT count(*) FROM consent.outbox WHERE schema_name = 'SubjectChanged'") == subjects
    # the evidence stays in the ledger, the records only say whether there is some
    assert await count(conn, "SELECT count(*) FROM consent.outbox WHERE payload->>'evidence_ref' IS NOT NULL") == 0
    with_evidence = sum(1 for r in crm.rows if r["evidence"] and r["subject_ref"].startswith("CRM-00"))
    assert await count(conn, "SELECT count(*) FROM consent.ledger WHERE evidence_ref IS NOT NULL") == with_evidence


async def assert_records_are_the_apis(conn: asyncpg.Connection) -> None:
    """Every outbox record of an imported change is `ConsentChanged.as_record()` of its ledger row, which
    is what the API's `save_changes` enqueues for a change it records."""
    rows = await conn.fetch(
        "SELECT o.payload, l.*, s.kind, s.country, s.account_id FROM consent.outbox o "
        "JOIN consent.ledger l ON l.event_id = (o.payload->>'event_id')::uuid "
        "JOIN consent.subjects s USING (subject_id) WHERE o.schema_name = 'ConsentChanged'"
    )
    assert rows
    for r in rows:
        change = ConsentChanged(
            **{name: r[name] for name in CHANGE_COLUMNS},
            event_id=str(r["event_id"]),
            subject_id=str(r["subject_id"]),
            subject_kind=r["kind"],
            channel=r["channel"] or None,
        )
        assert json.loads(r["payload"]) == change.as_record()


async def expected_states(conn: asyncpg.Connection) -> dict[str, SubjectState]:
    rules = SuppressionRules(CATALOG)
    states = {
        str(r["subject_id"]): SubjectState(
            SubjectId(str(r["subject_id"])),
            r["kind"],
            r["country"],
            phone_hash=r["phone_hash"],
            email_hash=r["email_hash"],
        )
        for r in await conn.fetch("SELECT subject_id, kind, country, phone_hash, email_hash FROM consent.subjects")
    }
    for r in await conn.fetch("SELECT * FROM consent.consents ORDER BY subject_id, version"):
        until = r["valid_until"].timestamp() if r["valid_until"] else None
        rules.apply_consent(
            states[str(r["subject_id"])], r["purpose"], r["channel"] or None, r["status"], r["version"], until
        )
    return states


async def assert_the_gate_agrees(settings: Settings, conn: asyncpg.Connection) -> None:
    """Every imported subject, for every marketing purpose and channel of its kind: the gate's answer
    is what the rules give for the ledger's state (no register is loaded in the test's gate)."""
    states, rules, no_registers = await expected_states(conn), SuppressionRules(CATALOG), RegisterBook({})
    gate = suppression_settings(settings)
    with ServerThread(create_suppression_app(gate), gate.suppression_port):
        url = f"http://127.0.0.1:{gate.suppression_port}"
        async with httpx.AsyncClient(base_url=url, headers=MARKETING, timeout=60) as client:
            deadline = time.monotonic() + 60
            while (await client.get("/ready")).status_code != 200:
                assert time.monotonic() < deadline, "the gate never caught up"
                await asyncio.sleep(0.1)
            at = datetime.now(UTC)
            results: dict[str, int] = {}
            for kind in SubjectKind:
                ids = [s for s, state in states.items() if state.kind == kind.value]
                for plan in rules.marketing_plans[kind.value]:
                    answers = await bulk(client, ids, plan.purpose.code, plan.channel, at)
                    for subject_id, answer in zip(ids, answers, strict=True):
                        want = rules.decide(
                            states[subject_id], plan.purpose, plan.channel, at.timestamp(), no_registers
                        )
                        got = (answer["result"], answer["reasons"])
                        assert got == ("allowed" if want.allowed else "blocked", [r.value for r in want.reasons]), (
                            subject_id,
                            plan.purpose.code,
                            plan.channel,
                        )
                        results[answer["result"]] = results.get(answer["result"], 0) + 1
            assert sum(results.values()) > 10_000 and min(results.values()) > 1_000, results


async def bulk(client: httpx.AsyncClient, ids: list[str], purpose: str, channel: str | None, at: datetime) -> list[Any]:
    answers: list[Any] = []
    for start in range(0, len(ids), 10_000):
        body = {
            "purpose": purpose,
            "channel": channel,
            "at": at.isoformat(),
            "entries": [{"subject_id": s} for s in ids[start : start + 10_000]],
        }
        response = await client.post("/v1/check/bulk", params={"mode": "full"}, json=body)
        assert response.status_code == 200, response.text
        answers += sorted(response.json()["results"], key=lambda r: r["index"])
    return answers


async def test_an_import_job_on_the_api_runs_to_done_and_names_its_rejected_rows(consent: RunningConsent) -> None:
    crm = with_bad_rows(crm_file(290), each=1)
    client, csv_type = consent.client, {"Content-Type": "text/csv"}
    analyzed = "SELECT analyze_count FROM pg_stat_user_tables WHERE relid = 'consent.consents'::regclass"
    conn = await asyncpg.connect(consent.settings.database_url)
    try:
        analyzed_before = await count(conn, analyzed)
    finally:
        await conn.close()
    posted = await client.post("/v1/imports", content=crm.csv_bytes(), params={"name": "crm.csv"}, headers=csv_type)
    assert posted.status_code == 202, posted.text
    job_id = posted.json()["job_id"]
    assert posted.headers["Location"] == f"/v1/imports/{job_id}"
    job = await wait_done(client, job_id)
    assert (job["imported"], job["skipped"], job["rejected"]) == (crm.good, 0, len(crm.bad) == 10 and 10)
    assert job["file_name"] == "crm.csv" and job["last_row"] == len(crm.rows) + 1
    rejects = (await client.get(f"/v1/imports/{job_id}/rejects")).json()["rejects"]
    assert {r["row"]: (r["field"], r["rule"]) for r in rejects} == crm.bad
    conn = await asyncpg.connect(consent.settings.database_url)
    try:
        assert await count(conn, "SELECT count(*) FROM consent.ledger") == crm.good
        # the planner learns what the run loaded (ANALYZE by command; autovacuum counts apart)
        assert await count(conn, analyzed) == analyzed_before + 1
        assert (
            await count(conn, "SELECT count(DISTINCT client_id) FROM consent.ledger WHERE client_id LIKE 'apikey:%'")
            == 1
        )
    finally:
        await conn.close()

    again = await client.post("/v1/imports", content=crm.csv_bytes(), headers=csv_type)
    assert again.status_code == 202 and again.json()["job_id"] == job_id  # the same file is the same job
    job = await wait_done(client, job_id)
    assert (job["imported"], job["skipped"], job["rejected"]) == (0, crm.good, 10)

    # the same decisions as NDJSON are another file, whose decisions are all in the ledger already
    ndjson = "".join(json.dumps({k: v for k, v in r.items() if v}) + "\n" for r in crm.rows).encode()
    posted = await client.post("/v1/imports", content=ndjson, headers={"Content-Type": "application/x-ndjson"})
    assert posted.status_code == 202 and posted.json()["job_id"] != job_id
    other = await wait_done(client, posted.json()["job_id"])
    assert (other["format"], other["imported"], other["skipped"], other["rejected"]) == ("ndjson", 0, crm.good, 10)
    rejects = (await client.get(f"/v1/imports/{other['job_id']}/rejects")).json()["rejects"]
    assert {r["row"] + 1: (r["field"], r["rule"]) for r in rejects} == crm.bad  # NDJSON has no header line

    writer = {"Authorization": "Bearer dev-writer"}
    assert (await client.post("/v1/imports", content=b"x", headers=csv_type | writer)).status_code == 403
    assert (await client.get(f"/v1/imports/{job_id}", headers=writer)).status_code == 403
    assert (await client.get(f"/v1/imports/{uuid.uuid4()}")).status_code == 404
    unknown = await client.post("/v1/imports", content=b"a,b\n", headers={"Content-Type": "application/pdf"})
    assert unknown.status_code == 415 and unknown.json()["problems"][0]["field"] == "Content-Type"
    header = await client.post("/v1/imports", content=b"subject_ref,shoe_size\n", params={"format": "csv"})
    assert header.status_code == 422 and header.json()["problems"][0]["field"] == "header"


async def wait_done(client: httpx.AsyncClient, job_id: str, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        job: dict[str, Any] = (await client.get(f"/v1/imports/{job_id}")).json()
        if job["state"] != "running":
            assert job["state"] == "done", str(job)
            return job
        assert time.monotonic() < deadline, job
        await asyncio.sleep(0.05)
