"""The consent service's side of end-to-end freshness, on the real stack: watermarks that cover what was
committed (also a transaction that commits late), poison rows set aside without blocking the rest,
fenced relay leadership, the database's clock, and lapse evaluated when the current state is read."""

from __future__ import annotations

import asyncio
import io
import itertools
import json
import struct
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Iterator
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import fastavro
import httpx
import pytest
from aiokafka import AIOKafkaConsumer

from samtykke.adapters.kafka import assign_all, client_options
from samtykke.adapters.settings import Settings
from samtykke.consent import service as consent_service
from samtykke.consent.app import create_app
from samtykke.domain.freshness import Watermark
from tests.relay_lock import terminate_relay_leader

from .conftest import ADMIN, RunningConsent, ServerThread
from .test_consent_service import batch, own_settings, register
from .test_consent_service import consent_server as consent_server  # watermarks on the test's own topic
from .topic_reader import decode_all, read_raw


class Watermarks:
    """Follows the watermark topic from its beginning, as a reader of it would."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self.seen: list[tuple[Watermark, dict[str, Any]]] = []
        self._consumer = AIOKafkaConsumer(**client_options(settings), enable_auto_commit=False)
        self._schemas: dict[int, Any] = {}

    async def __aenter__(self) -> Watermarks:
        await self._consumer.start()
        await assign_all(
            self._consumer, client_options(self._settings), [self._settings.topic_watermarks], "beginning", 60
        )
        return self

    async def __aexit__(self, *_: object) -> None:
        await self._consumer.stop()

    async def poll(self, seconds: float) -> list[Watermark]:
        """Read for `seconds`; returns what arrived meanwhile."""
        before = len(self.seen)
        deadline = time.monotonic() + seconds
        async with httpx.AsyncClient(base_url=self._settings.registry_url) as registry:
            while (left := deadline - time.monotonic()) > 0:
                batches = await self._consumer.getmany(timeout_ms=int(min(left, 0.3) * 1000))
                for message in (m for ms in batches.values() for m in ms):
                    assert message.key == b"consent"
                    record = await self._decode(registry, message.value)
                    self.seen.append((Watermark.from_record(record), record))
        return [w for w, _ in self.seen[before:]]

    async def until(self, condition: Any, timeout: float = 30) -> Watermark:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for watermark in await self.poll(0.3):
                if condition(watermark):
                    return watermark
        raise AssertionError("no such watermark arrived")

    async def _decode(self, registry: httpx.AsyncClient, value: bytes) -> dict[str, Any]:
        (schema_id,) = struct.unpack(">I", value[1:5])
        if schema_id not in self._schemas:
            response = await registry.get(f"/schemas/ids/{schema_id}")
            response.raise_for_status()
            self._schemas[schema_id] = fastavro.parse_schema(json.loads(response.json()["schema"]))
        record: dict[str, Any] = fastavro.schemaless_reader(io.BytesIO(value[5:]), self._schemas[schema_id], None)
        return record


@pytest.fixture
async def watermarks(consent: RunningConsent) -> AsyncIterator[Watermarks]:
    async with Watermarks(consent.settings) as reader:
        yield reader


async def database_now(database_url: str) -> datetime:
    conn = await asyncpg.connect(database_url)
    try:
        now: datetime = await conn.fetchval("SELECT clock_timestamp()")
        return now
    finally:
        await conn.close()


async def test_watermarks_arrive_every_second_and_cover_a_committed_change(
    consent: RunningConsent, watermarks: Watermarks
) -> None:
    subject = await register(consent)
    response = await consent.client.post(
        f"/v1/subjects/{subject}/consents", json=batch(("direct_marketing", "sms", "withdraw"))
    )
    assert response.status_code == 201, response.text
    committed = await database_now(consent.settings.database_url)

    covering = await watermarks.until(lambda w: w.through >= committed)
    settings = consent.settings
    [change] = await read_raw(client_options(settings), settings.topic_changes, 1)
    assert change.offset < covering.offsets[(settings.topic_changes, change.partition)]
    assert covering.epoch >= 1 and covering.held == frozenset()
    partitions = {(topic, p) for topic in (settings.topic_changes, settings.topic_subjects) for p in range(3)}
    assert set(covering.offsets) == partitions

    idle = await watermarks.poll(5.0)  # nothing to publish: time still advances
    published = [record["published_at"] for _, record in watermarks.seen[-len(idle) :]] if idle else []
    gaps = sorted((b - a).total_seconds() for a, b in itertools.pairwise(published))
    print(f"\nidle watermarks: {len(idle)} in 5 s, gaps {[round(g, 2) for g in gaps]}")
    # about one a second; a loaded two-core machine may delay one now and then
    assert len(idle) >= 3 and gaps[len(gaps) // 2] < 1.3 and gaps[-1] < 2.5
    throughs = [w.through for w in idle]
    assert throughs == sorted(throughs) and len(set(throughs)) == len(throughs)
    lag = (await consent.client.get("/metrics")).text
    assert "samtykke_relay_watermark_through_seconds" in lag and "samtykke_relay_watermark_lag_seconds" in lag


async def test_a_transaction_that_commits_late_is_covered_by_a_later_watermark_only(
    consent: RunningConsent, watermarks: Watermarks
) -> None:
    subject = await register(consent)
    await consent.wait_outbox_empty()
    settings = consent.settings
    conn = await asyncpg.connect(settings.database_url)
    try:
        async with conn.transaction():
            # a copy of the subject's registration event, enqueued by a transaction held open across watermarks
            began = await conn.fetchval(
                "INSERT INTO consent.outbox (topic, message_key, schema_name, payload) "
                "SELECT topic, message_key, schema_name, payload FROM consent.outbox WHERE message_key = $1 "
                "RETURNING created_at",
                subject,
            )
            during = await watermarks.poll(2.5)
        committed = await database_now(settings.database_url)
    finally:
        await conn.close()
    await consent.wait_outbox_empty()
    later = await watermarks.until(lambda w: w.through >= committed)

    copies = [
        m for m in await read_raw(client_options(settings), settings.topic_subjects, 2) if m.key == subject.encode()
    ]
    assert len(copies) == 2
    late = copies[1]
    partition = (settings.topic_subjects, late.partition)
    opened = [w for w in during if w.through > began]
    assert len(opened) >= 2, "watermarks were published while the transaction was open"
    for watermark, _ in watermarks.seen:
        covered = watermark.offsets[partition] > late.offset
        if watermark.through >= committed:
            assert covered, watermark
        if not covered:
            assert watermark.through < committed, watermark
    assert all(w.offsets[partition] <= late.offset for w in opened)  # not yet published: not claimed
    assert later.offsets[partition] > late.offset


async def test_a_poison_row_is_set_aside_its_subject_held_and_the_rest_flows(
    consent: RunningConsent, watermarks: Watermarks
) -> None:
    poisoned, other = await register(consent), await register(consent, {"kind": "consumer", "country": "SE"})
    await consent.wait_outbox_empty()
    settings = consent.settings
    conn = await asyncpg.connect(settings.database_url)
    try:
        await conn.execute(
            "INSERT INTO consent.outbox (topic, message_key, schema_name, payload) VALUES "
            "($1, $2, 'NoSuchSchema', '{}'), ($1, $2, 'ConsentChanged', '{\"subject_id\": 42}')",
            settings.topic_changes,
            poisoned,
        )
    finally:
        await conn.close()
    response = await consent.client.post(
        f"/v1/subjects/{other}/consents", json=batch(("direct_marketing", "sms", "grant"))
    )
    assert response.status_code == 201
    await consent.wait_outbox_empty()

    [flowed] = await read_raw(client_options(settings), settings.topic_changes, 1)
    assert flowed.key == f"{other}/direct_marketing/sms".encode()
    dead = (await consent.client.get("/v1/outbox/dead-letters")).json()
    assert [(d["subject_id"], d["schema_name"]) for d in dead] == [
        (poisoned, "NoSuchSchema"),
        (poisoned, "ConsentChanged"),
    ]
    assert "no Avro schema 'NoSuchSchema'" in dead[0]["reason"] and "rejects the record" in dead[1]["reason"]
    held = await watermarks.until(lambda w: poisoned in w.held)
    assert held.held == {poisoned}
    metrics = (await consent.client.get("/metrics")).text
    assert f'samtykke_relay_dead_letters_total{{topic="{settings.topic_changes}"}} 2.0' in metrics
    assert poisoned not in metrics

    requeued = await consent.client.post(f"/v1/outbox/dead-letters/{dead[0]['id']}/requeue")
    assert requeued.status_code == 200
    await consent.wait_outbox_empty()  # still unknown: set aside again, as a new row
    again = (await consent.client.get("/v1/outbox/dead-letters")).json()
    assert [d["id"] for d in again] == sorted([dead[1]["id"], requeued.json()["outbox_id"]])
    for entry in again:
        assert (await consent.client.delete(f"/v1/outbox/dead-letters/{entry['id']}")).status_code == 200
    assert (await consent.client.delete(f"/v1/outbox/dead-letters/{dead[0]['id']}")).status_code == 404
    released = await watermarks.until(lambda w: poisoned not in w.held)
    assert released.held == frozenset()


@pytest.fixture
def two_instances(stack: Any, fresh_database: str, topic_names: Any) -> Iterator[list[Settings]]:
    first = own_settings(stack, fresh_database, topic_names)
    second = first.model_copy(update={"consent_port": first.consent_port + 1})
    with ExitStack() as running:
        for settings in (first, second):
            running.enter_context(ServerThread(create_app(settings), settings.consent_port))
        yield [first, second]


async def test_two_relays_never_both_publish_when_the_leaders_lock_session_is_terminated(
    two_instances: list[Settings],
) -> None:
    subjects_count, rounds = 4, 16
    clients = [
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{s.consent_port}", headers=ADMIN, timeout=30)
        for s in two_instances
    ]
    settings = two_instances[0]
    try:
        subjects = []
        for i in range(subjects_count):
            response = await clients[i % 2].post("/v1/subjects", json={"kind": "consumer", "country": "NO"})
            subjects.append(response.json()["subject_id"])
        async with Watermarks(settings) as watermarks:
            first = await watermarks.until(lambda w: w.epoch >= 1)
            terminated_at = 0.0
            for i in range(rounds):
                action = "grant" if i % 2 == 0 else "withdraw"
                for n, subject in enumerate(subjects):
                    response = await clients[(i + n) % 2].post(
                        f"/v1/subjects/{subject}/consents", json=batch(("direct_marketing", "sms", action))
                    )
                    assert response.status_code == 201, response.text
                if i == rounds // 2:
                    terminated_at = time.monotonic()
                    assert await terminate_relay_leader(settings.database_url) == 1
                await asyncio.sleep(0.1)
            successor = await watermarks.until(lambda w: w.epoch > first.epoch, timeout=60)
            failover = time.monotonic() - terminated_at
            await RunningConsent(f"{clients[0].base_url}", settings, clients[0]).wait_outbox_empty()
            await watermarks.poll(1.5)
        epochs = [w.epoch for w, _ in watermarks.seen]
        print(f"\nepochs published: {sorted(set(epochs))}; failover to epoch {successor.epoch}: {failover:.1f}s")
        # a new leader publishes only once the old one stopped: epochs never interleave
        assert epochs == sorted(epochs)
    finally:
        for client in clients:
            await client.aclose()

    records = await decode_all(
        settings.registry_url,
        await read_raw(client_options(settings), settings.topic_changes, subjects_count * rounds),
    )
    first_seen: dict[str, list[int]] = defaultdict(list)
    seen: set[str] = set()
    for record in sorted(records, key=lambda r: (r["_partition"], r["_offset"])):
        if str(record["event_id"]) not in seen:  # a new leader republishes what the old one left unmarked
            seen.add(str(record["event_id"]))
            first_seen[record["subject_id"]].append(record["version"])
    assert len(seen) == subjects_count * rounds
    for subject in subjects:
        assert first_seen[subject] == list(range(1, rounds + 1))


async def test_a_decision_without_occurred_at_takes_the_database_time(
    consent: RunningConsent, monkeypatch: pytest.MonkeyPatch
) -> None:
    # this replica's clock lags an hour: a withdrawal after a grant stamped by the database must not turn
    # into "older than the decision already recorded"
    monkeypatch.setattr(consent_service, "utcnow", lambda: datetime.now(UTC) - timedelta(hours=1))
    subject = await register(consent)
    granted = batch(("direct_marketing", "sms", "grant"))
    granted["decisions"][0]["occurred_at"] = (await database_now(consent.settings.database_url)).isoformat()
    assert (await consent.client.post(f"/v1/subjects/{subject}/consents", json=granted)).status_code == 201

    before = await database_now(consent.settings.database_url)
    response = await consent.client.post(
        f"/v1/subjects/{subject}/consents", json=batch(("direct_marketing", "sms", "withdraw"))
    )
    after = await database_now(consent.settings.database_url)
    assert response.status_code == 201, response.text
    stamped = datetime.fromisoformat(response.json()["changes"][0]["occurred_at"])
    assert before <= stamped <= after
    used = await consent.client.post(
        f"/v1/subjects/{subject}/usage", json={"purpose": "direct_marketing", "channel": "sms"}
    )
    assert used.status_code == 409  # withdrawn: nothing in force to use (and no 422 for a future used_at)


async def test_the_current_state_says_expired_once_valid_until_passed_before_the_sweeper_runs(
    consent: RunningConsent,
) -> None:
    subject = await register(consent)
    old = batch(("direct_marketing", "sms", "grant"), ("direct_marketing", "email", "grant"))
    old["decisions"][0]["occurred_at"] = (datetime.now(UTC) - timedelta(days=400)).isoformat()
    assert (await consent.client.post(f"/v1/subjects/{subject}/consents", json=old)).status_code == 201

    current = {c["channel"]: c for c in (await consent.client.get(f"/v1/subjects/{subject}/consents")).json()}
    assert current["sms"]["status"] == "expired" and current["sms"]["version"] == 1
    assert current["email"]["status"] == "granted"
    export = (await consent.client.get(f"/v1/subjects/{subject}/export")).json()
    assert {c["channel"]: c["status"] for c in export["consents"]} == {"sms": "expired", "email": "granted"}
    history = (await consent.client.get(f"/v1/subjects/{subject}/history")).json()
    assert [h["status"] for h in history] == ["granted", "granted"]  # nothing swept, nothing written
