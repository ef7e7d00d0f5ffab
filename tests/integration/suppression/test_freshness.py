"""End-to-end freshness on the real stack: a replica is fresh only through the watermark it has
applied. The watermarks come from the consent service's relay, or, where a test stops them or
names what they list, from a stand-in on a topic of its own (`watermarks.WatermarkPublisher`)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from aiokafka.admin import AIOKafkaAdminClient, NewPartitions

from samtykke.adapters.avro import AvroEncoder, SchemaRegistry, load_schema
from samtykke.adapters.kafka import client_options, idempotent_producer
from samtykke.domain.events import ConsentChanged

from ..conftest import RunningConsent
from .conftest import RunningSuppression
from .helpers import decide, register
from .watermarks import WatermarkPublisher

Start = Callable[..., Awaitable[RunningSuppression]]
DM_SMS = {"purpose": "direct_marketing", "channel": "sms"}


def allowed(d: dict[str, object]) -> bool:
    return d["result"] == "allowed"


def stale(d: dict[str, object]) -> bool:
    return d["result"] == "blocked" and d["reasons"] == ["stale"]


async def test_fresh_through_watermarks_and_stale_once_they_stop(
    consent: RunningConsent, start_suppression: Start, watermarks: WatermarkPublisher
) -> None:
    subject = await register(consent, "DK")
    await decide(consent, subject, ("direct_marketing", "sms", "grant"))
    service = await start_suppression(suppression_max_lag_seconds=2.0, topic_watermarks=watermarks.topic)
    await service.wait_ready()
    await service.wait_for(allowed, subject_id=subject, **DM_SMS)
    ready = (await service.client.get("/ready")).json()
    through = datetime.fromisoformat(ready["complete_through"])
    assert (datetime.now(UTC) - through).total_seconds() < 2.0 and ready["index_age_seconds"] < 2.0
    metrics = (await service.client.get("/metrics")).text
    assert "samtykke_suppression_complete_through_seconds" in metrics

    watermarks.publishing.clear()  # a stuck relay: Kafka is quiet, and that is no longer fresh
    stopped = time.monotonic()
    decision = await service.wait_for(stale, timeout=10, subject_id=subject, **DM_SMS)
    took = time.monotonic() - stopped
    print(f"\nwatermarks stopped -> stale after {took:.2f} s (max lag 2 s)")
    assert took <= 2.0 + 1.0, decision
    assert (await service.client.get("/ready")).status_code == 503
    watermarks.publishing.set()
    await service.wait_for(allowed, subject_id=subject, **DM_SMS)


async def test_no_watermark_topic_is_never_fresh(consent: RunningConsent, start_suppression: Start) -> None:
    subject = await register(consent, "DK")
    await decide(consent, subject, ("direct_marketing", "sms", "grant"))
    await consent.wait_outbox_empty()
    service = await start_suppression(topic_watermarks=f"{consent.settings.topic_changes}.nowhere")
    await asyncio.sleep(2.0)
    ready = await service.client.get("/ready")
    assert ready.status_code == 503 and ready.json()["complete_through"] is None
    assert stale(await service.check(subject_id=subject, **DM_SMS))


async def test_a_held_subject_is_stale_while_others_are_fine(
    consent: RunningConsent, start_suppression: Start, watermarks: WatermarkPublisher
) -> None:
    suppression = await start_suppression(topic_watermarks=watermarks.topic)
    await suppression.wait_ready()
    held, fine = await register(consent, "DK"), await register(consent, "DK")
    for subject in (held, fine):
        await decide(consent, subject, ("direct_marketing", "sms", "grant"))
        await suppression.wait_for(allowed, subject_id=subject, **DM_SMS)
    watermarks.held.add(held)
    await suppression.wait_for(stale, subject_id=held, **DM_SMS)
    assert allowed(await suppression.check(subject_id=fine, **DM_SMS))
    bulk = await suppression.client.post(
        "/v1/check/bulk",
        params={"mode": "full"},
        json={**DM_SMS, "entries": [{"subject_id": held}, {"subject_id": fine}]},
    )
    assert [r["reasons"] for r in bulk.json()["results"]] == [["stale"], []]
    assert "samtykke_suppression_held_subjects 1.0" in (await suppression.client.get("/metrics")).text
    watermarks.held.clear()
    await suppression.wait_for(allowed, subject_id=held, **DM_SMS)


async def test_a_partition_added_at_run_time_is_read_and_counted(
    consent: RunningConsent, start_suppression: Start, watermarks: WatermarkPublisher
) -> None:
    settings = consent.settings
    subject = await register(consent, "DK")
    await decide(consent, subject, ("direct_marketing", "sms", "grant"))
    service = await start_suppression(
        suppression_max_lag_seconds=1.0, kafka_metadata_refresh_seconds=6.0, topic_watermarks=watermarks.topic
    )
    await service.wait_ready()
    granted = await service.wait_for(allowed, subject_id=subject, **DM_SMS)
    partitions = len(granted["position"][settings.topic_changes])

    admin = AIOKafkaAdminClient(**client_options(settings))
    await admin.start()
    try:
        await admin.create_partitions({settings.topic_changes: NewPartitions(partitions + 1)})
    finally:
        await admin.close()
    # the subject's key now hashes to the new partition: its withdrawal lands there
    registry = SchemaRegistry(settings.registry_url)
    encoder = AvroEncoder(registry, settings.topic_changes, load_schema(settings.schema_dir, "ConsentChanged"))
    await encoder.register()
    await registry.aclose()
    now = datetime.now(UTC)
    withdrawal = ConsentChanged(
        str(uuid.uuid4()), subject, "consumer", None, "DK", "direct_marketing", "sms", "withdrawn", "granted",
        2, now, now, None, "self_service", "subject", None, None, None,
    )  # fmt: skip
    producer = idempotent_producer(client_options(settings))
    await producer.start()
    committed = time.monotonic()
    try:
        await producer.send_and_wait(
            settings.topic_changes, encoder.encode(withdrawal.as_record()), key=subject.encode(), partition=partitions
        )
    finally:
        await producer.stop()
    watermarks.refresh_partitions()  # the relay lists every partition, the new one included
    seen: list[tuple[float, list[str]]] = []
    while time.monotonic() - committed < 20:
        decision = await service.check(subject_id=subject, **DM_SMS)
        seen.append((time.monotonic() - committed, decision["reasons"]))
        # within the bound (max lag, plus the publisher's interval) an answer may predate the withdrawal;
        # past it, never allowed on what the new partition holds
        assert not allowed(decision) or seen[-1][0] < 1.0 + 0.3, seen
        if decision["reasons"] == ["withdrawn"]:
            break
        await asyncio.sleep(0.05)
    assert seen[-1][1] == ["withdrawn"], seen[-5:]
    stale_from = next((t for t, reasons in seen if reasons == ["stale"]), None)
    print(f"\npartition added: stale after {stale_from:.2f} s, withdrawal enforced after {seen[-1][0]:.2f} s")
    assert stale_from is not None  # listed, not yet read: the replica said stale meanwhile
    position = (await service.check(subject_id=subject, **DM_SMS))["position"][settings.topic_changes]
    assert position[str(partitions)] == 1


async def test_the_relays_watermarks_make_a_replica_fresh(consent: RunningConsent, start_suppression: Start) -> None:
    subject = await register(consent, "DK")
    await decide(consent, subject, ("direct_marketing", "sms", "grant"))
    service = await start_suppression()  # on the consent service's own watermark topic
    await service.wait_ready()
    await service.wait_for(allowed, subject_id=subject, **DM_SMS)
    ready = (await service.client.get("/ready")).json()
    assert (datetime.now(UTC) - datetime.fromisoformat(ready["complete_through"])).total_seconds() < 5.0
